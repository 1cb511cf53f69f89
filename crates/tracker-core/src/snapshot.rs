//! JSON snapshots of the whole tracker state (DESIGN.md section 6).
//!
//! # Format (version 1)
//!
//! ```json
//! {"format":1,"written_at":"2026-11-21T01:00:00Z","written_at_unix":1795222800,
//!  "connection_id_key":"<32 hex>",
//!  "access":{"allow":[...],"deny":[...],"passkeys":[{"key":"...","expires_at":1795222800}],
//!            "min_versions":[[42,2]]},
//!  "torrents":[
//!   {"info_hash":"<40 hex>","downloaded":3,
//!    "index":{"name":"Example","size":734003200,"added_at":"2025-10-29T12:00:00Z",
//!             "info_hash_v2":"<40 hex, hybrid torrents only>"},
//!    "peers":[{"ip":"10.0.0.1","port":6881,"peer_id":"<40 hex>","status":"seeding",
//!              "completed":true,"expires_in":1790}]}
//!  ]}
//! ```
//!
//! `index` is absent for torrents that are not in the torrent index. `expires_in` is the peer's
//! remaining lifetime when the file was written; on load a peer expires at
//! `written_at_unix + expires_in`, so time the tracker spent down counts, and peers that expired
//! meanwhile are dropped.
//!
//! # Writing
//!
//! Streamed shard by shard: each shard is serialised into a reused in-memory buffer under its
//! read lock, the lock is released, and only then is the buffer written to the file, so no lock is
//! ever held during disk I/O and memory stays bounded by one shard's worth of JSON. The file is
//! written as `<path>.tmp` in the same directory, fsynced, renamed over `<path>`, and the directory
//! fsynced: a crash at any moment leaves the previous or the new snapshot, never a torn one.
//!
//! # Loading
//!
//! Streamed too: torrents are inserted as they are parsed, one at a time. A file that does not
//! parse completely (truncated, corrupt) is an error; [`restore`] then empties the tracker again,
//! moves the file aside and lets the daemon start empty. A file with a newer format version is
//! refused and left in place.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::sink::PeerView;
use crate::swarm::{IndexMeta, Swarm};
use crate::tracker::{Tracker, parse_rfc3339, rfc3339};
use crate::types::{InfoHash, PeerId, PeerStatus};

/// Snapshot format version written by this build.
pub const FORMAT_VERSION: u32 = 1;

/// Why a snapshot could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// File system trouble.
    #[error("snapshot I/O on {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Not valid JSON or not our format (truncated, corrupt).
    #[error("snapshot {path} is corrupt: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },
    /// Written by a newer mini-torrust.
    #[error(
        "snapshot {path} has format version {found}, newer than the {supported} this build reads; refusing to load or overwrite it"
    )]
    FutureVersion {
        /// The file.
        path: PathBuf,
        /// Its version.
        found: u32,
        /// Ours.
        supported: u32,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SnapshotError + '_ {
    move |source| SnapshotError::Io {
        path: path.to_owned(),
        source,
    }
}

/// What a write did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteReport {
    /// Torrents written.
    pub torrents: usize,
    /// Peers written.
    pub peers: usize,
    /// File size in bytes.
    pub bytes: u64,
}

/// What a load did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Torrents restored.
    pub torrents: usize,
    /// Peers restored.
    pub peers: usize,
    /// Peers dropped because they had expired (or did not fit the limits).
    pub dropped: usize,
    /// The UDP connection-id key the file kept (the UDP crate's; the tracker does not hold it).
    pub connection_id_key: Option<[u8; 16]>,
}

/// What starting from a snapshot file came to.
#[derive(Debug)]
pub enum RestoreOutcome {
    /// No file: start empty.
    Missing,
    /// Loaded.
    Loaded(LoadReport),
    /// Corrupt: moved aside to `moved_to`, the tracker starts empty.
    MovedAside {
        /// Where the bad file went.
        moved_to: PathBuf,
        /// Why it was refused.
        error: SnapshotError,
    },
}

// ---- writing ---------------------------------------------------------------------------------

#[derive(Serialize)]
struct Header<'a> {
    format: u32,
    written_at: &'a str,
    written_at_unix: u32,
    connection_id_key: &'a str,
    access: &'a crate::access::AccessState,
}

#[derive(Serialize, Deserialize)]
struct IndexRecord {
    name: String,
    size: u64,
    added_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    info_hash_v2: Option<InfoHash>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    from_dir: bool,
}

#[derive(Serialize)]
struct TorrentOut<'a> {
    info_hash: &'a InfoHash,
    downloaded: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<IndexRecord>,
    peers: PeersOut<'a>,
}

struct PeersOut<'a> {
    swarm: &'a Swarm,
    now: u32,
}

impl Serialize for PeersOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.swarm.peers(self.now).map(|p| PeerRecord {
            ip: p.addr.ip(),
            port: p.addr.port(),
            peer_id: p.peer_id,
            status: p.status,
            completed: p.completed,
            expires_in: p.expiry.saturating_sub(self.now),
        }))
    }
}

#[derive(Serialize, Deserialize)]
struct PeerRecord {
    ip: IpAddr,
    port: u16,
    peer_id: PeerId,
    status: PeerStatus,
    #[serde(default)]
    completed: bool,
    expires_in: u32,
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Writes the whole state to `path` atomically (temp file, fsync, rename, fsync directory). On
/// any failure the temp file is removed and `path` is left as it was.
/// Concurrent calls on one tracker (a periodic and the final snapshot) take turns, since they
/// share the temp file.
///
/// `connection_id_key` is the UDP connection-id key, kept so that ids issued before a restart
/// stay valid after it.
pub fn write(
    tracker: &Tracker,
    path: &Path,
    connection_id_key: [u8; 16],
) -> Result<WriteReport, SnapshotError> {
    let _one_writer = tracker
        .snapshot_write
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let written = write_temp(tracker, path, connection_id_key).and_then(|(tmp, report)| {
        fs::rename(&tmp, path)
            .map(|()| report)
            .map_err(io_err(path))
    });
    if written.is_err() {
        // A partial temp file (disk full, say) would only take more room from a full disk.
        let _ = fs::remove_file(tmp_path(path));
    }
    let report = written?;
    sync_dir(path)?;
    Ok(report)
}

/// Writes `<path>.tmp` completely and fsyncs it, without renaming (the crash-safety test stops
/// here to play a crash between write and rename).
pub(crate) fn write_temp(
    tracker: &Tracker,
    path: &Path,
    connection_id_key: [u8; 16],
) -> Result<(PathBuf, WriteReport), SnapshotError> {
    let now = tracker.clock().now();
    let tmp = tmp_path(path);
    let file = File::create(&tmp).map_err(io_err(&tmp))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut report = WriteReport::default();

    let written_at = rfc3339(u64::from(now));
    let key = hex::encode(connection_id_key);
    let access = tracker.access().state();
    let header = Header {
        format: FORMAT_VERSION,
        written_at: &written_at,
        written_at_unix: now,
        connection_id_key: &key,
        access: &access,
    };
    let mut head = serde_json::to_vec(&header).map_err(|e| corrupt(&tmp, &e))?;
    // Reopen the object to append the torrents array: `{...}` -> `{...,"torrents":[`.
    head.pop();
    head.extend_from_slice(b",\"torrents\":[\n");
    out.write_all(&head).map_err(io_err(&tmp))?;

    let mut buf = Vec::with_capacity(64 * 1024);
    let mut first = true;
    let mut ser_error = None;
    for shard in 0..tracker.shard_count() {
        buf.clear();
        // The shard's read lock is held only while serialising into `buf` (memory)...
        tracker.for_each_in_shard(shard, |info_hash, swarm| {
            let index = swarm.meta().map(|m| IndexRecord {
                name: m.name.clone(),
                size: m.size,
                added_at: rfc3339(m.added_at),
                info_hash_v2: m.v2,
                from_dir: m.from_dir,
            });
            if index.is_none() && swarm.live_counts(now) == (0, 0) {
                return;
            }
            if !first {
                buf.extend_from_slice(b",\n");
            }
            first = false;
            let record = TorrentOut {
                info_hash,
                downloaded: swarm.downloaded,
                index,
                peers: PeersOut { swarm, now },
            };
            if let Err(e) = serde_json::to_writer(&mut buf, &record) {
                ser_error.get_or_insert(e);
            }
            report.torrents += 1;
            report.peers += swarm.peers(now).count();
        });
        // ...and released before the buffer goes to the file.
        out.write_all(&buf).map_err(io_err(&tmp))?;
    }
    if let Some(e) = ser_error {
        return Err(corrupt(&tmp, &e));
    }
    out.write_all(b"\n]}\n").map_err(io_err(&tmp))?;
    let file = out.into_inner().map_err(|e| io_err(&tmp)(e.into_error()))?;
    file.sync_all().map_err(io_err(&tmp))?;
    report.bytes = file.metadata().map_err(io_err(&tmp))?.len();
    Ok((tmp, report))
}

fn sync_dir(path: &Path) -> Result<(), SnapshotError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

fn corrupt(path: &Path, e: &dyn fmt::Display) -> SnapshotError {
    SnapshotError::Corrupt {
        path: path.to_owned(),
        reason: e.to_string(),
    }
}

// ---- loading ---------------------------------------------------------------------------------

#[derive(Deserialize)]
struct TorrentIn {
    info_hash: InfoHash,
    #[serde(default)]
    downloaded: u32,
    #[serde(default)]
    index: Option<IndexRecord>,
    #[serde(default)]
    peers: Vec<PeerRecord>,
}

struct FileSeed<'a> {
    tracker: &'a Tracker,
    now: u32,
    future: &'a mut Option<u32>,
}

impl<'de> DeserializeSeed<'de> for FileSeed<'_> {
    type Value = LoadReport;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<LoadReport, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for FileSeed<'_> {
    type Value = LoadReport;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a mini-torrust snapshot object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<LoadReport, A::Error> {
        let mut format = None;
        let mut written_at = None;
        let mut key = None;
        let mut access = None;
        let mut report = None;
        while let Some(k) = map.next_key::<String>()? {
            match k.as_str() {
                "format" => {
                    let v: u32 = map.next_value()?;
                    if v > FORMAT_VERSION {
                        *self.future = Some(v);
                        return Err(de::Error::custom("future format version"));
                    }
                    if v == 0 {
                        return Err(de::Error::custom("format version 0 does not exist"));
                    }
                    format = Some(v);
                }
                "written_at_unix" => written_at = Some(map.next_value::<u32>()?),
                "connection_id_key" => {
                    let s: String = map.next_value()?;
                    let mut k = [0u8; 16];
                    hex::decode_to_slice(&s, &mut k).map_err(|_| {
                        de::Error::custom("connection_id_key is not 32 hex characters")
                    })?;
                    key = Some(k);
                }
                "access" => access = Some(map.next_value::<crate::access::AccessState>()?),
                "torrents" => {
                    if format.is_none() {
                        return Err(de::Error::custom("\"torrents\" before \"format\""));
                    }
                    let written_at = written_at.ok_or_else(|| {
                        de::Error::custom("\"torrents\" before \"written_at_unix\"")
                    })?;
                    report = Some(map.next_value_seed(TorrentsSeed {
                        tracker: self.tracker,
                        now: self.now,
                        written_at,
                    })?);
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let mut report = report.ok_or_else(|| de::Error::missing_field("torrents"))?;
        report.connection_id_key = key;
        if let Some(a) = access {
            self.tracker.access().restore_state(a);
        }
        Ok(report)
    }
}

struct TorrentsSeed<'a> {
    tracker: &'a Tracker,
    now: u32,
    written_at: u32,
}

impl<'de> DeserializeSeed<'de> for TorrentsSeed<'_> {
    type Value = LoadReport;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<LoadReport, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for TorrentsSeed<'_> {
    type Value = LoadReport;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of torrents")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<LoadReport, A::Error> {
        let mut report = LoadReport::default();
        let mut peers: Vec<PeerView> = Vec::new();
        while let Some(t) = seq.next_element::<TorrentIn>()? {
            peers.clear();
            for p in &t.peers {
                let expiry = self.written_at.saturating_add(p.expires_in);
                if expiry <= self.now {
                    report.dropped += 1;
                    continue;
                }
                peers.push(PeerView {
                    addr: std::net::SocketAddr::new(p.ip, p.port),
                    peer_id: p.peer_id,
                    status: p.status,
                    completed: p.completed,
                    expiry,
                });
            }
            let meta = match t.index {
                Some(ix) => Some(IndexMeta {
                    added_at: parse_rfc3339(&ix.added_at).ok_or_else(|| {
                        de::Error::custom(format!("bad added_at {:?}", ix.added_at))
                    })?,
                    name: ix.name,
                    size: ix.size,
                    v2: ix.info_hash_v2,
                    from_dir: ix.from_dir,
                }),
                None => None,
            };
            let has_meta = meta.is_some();
            let stored = self
                .tracker
                .restore_torrent(t.info_hash, t.downloaded, meta, &peers);
            report.dropped += peers.len() - stored;
            report.peers += stored;
            report.torrents += usize::from(stored > 0 || has_meta);
        }
        Ok(report)
    }
}

/// Loads `path` into `tracker` (which should be empty). On error the tracker may hold part of
/// the file: [`restore`] empties it again.
pub fn load(tracker: &Tracker, path: &Path) -> Result<LoadReport, SnapshotError> {
    let file = File::open(path).map_err(io_err(path))?;
    let mut de = serde_json::Deserializer::from_reader(BufReader::with_capacity(1 << 20, file));
    let mut future = None;
    let seed = FileSeed {
        tracker,
        now: tracker.clock().now(),
        future: &mut future,
    };
    let result = seed.deserialize(&mut de).and_then(|r| de.end().map(|()| r));
    match (result, future) {
        (_, Some(found)) => Err(SnapshotError::FutureVersion {
            path: path.to_owned(),
            found,
            supported: FORMAT_VERSION,
        }),
        (Ok(r), None) => Ok(r),
        (Err(e), None) if e.is_io() => Err(SnapshotError::Io {
            path: path.to_owned(),
            source: io::Error::other(e.to_string()),
        }),
        (Err(e), None) => Err(corrupt(path, &e)),
    }
}

/// Start-up: load `path` if it exists. A corrupt or truncated file is moved aside to
/// `<path>.corrupt-<unix time>` and the tracker is left empty; a file from a future version is an
/// error and stays where it is (the daemon must neither load nor overwrite it).
pub fn restore(tracker: &Tracker, path: &Path) -> Result<RestoreOutcome, SnapshotError> {
    match fs::metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(RestoreOutcome::Missing),
        Err(e) => return Err(io_err(path)(e)),
        Ok(_) => {}
    }
    match load(tracker, path) {
        Ok(r) => Ok(RestoreOutcome::Loaded(r)),
        Err(error @ SnapshotError::Corrupt { .. }) => {
            tracker.clear();
            let mut name = path
                .file_name()
                .map(|n| n.to_os_string())
                .unwrap_or_default();
            name.push(format!(".corrupt-{}", crate::clock::unix_now()));
            let moved_to = path.with_file_name(name);
            fs::rename(path, &moved_to).map_err(io_err(path))?;
            Ok(RestoreOutcome::MovedAside { moved_to, error })
        }
        Err(e) => {
            tracker.clear();
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The connection-id key the tests' snapshots keep.
    const KEY: [u8; 16] = [0x4b; 16];
    use crate::sink::CompactPeers;
    use crate::swarm::{v4, v6};
    use crate::{AnnounceRequest, Clock, CoreConfig, Event, IndexQuery};

    const T0: u32 = 1_800_000_000;

    fn tracker() -> Tracker {
        Tracker::with_clock(
            CoreConfig {
                swarm: crate::SwarmConfig {
                    shards: 16,
                    ..Default::default()
                },
                ..CoreConfig::default()
            },
            Clock::manual(T0),
        )
    }

    fn ann(t: &Tracker, ih: u8, ip: IpAddr, port: u16, left: u64, event: Event) {
        let req = AnnounceRequest {
            info_hash: InfoHash([ih; 20]),
            peer_id: PeerId([port as u8; 20]),
            ip,
            port,
            event,
            left,
            numwant: None,
            max_peers: 200,
            both_families: true,
        };
        t.announce(&req, t.clock().now(), &mut CompactPeers::default())
            .unwrap();
    }

    fn populate(t: &Tracker) {
        for ih in 1..=30u8 {
            for port in 1..=(u16::from(ih) * 3) {
                ann(
                    t,
                    ih,
                    v4(10, 0, ih, 1),
                    port,
                    u64::from(port % 3),
                    Event::Started,
                );
            }
            ann(t, ih, v6(u16::from(ih)), 7000, 0, Event::Started);
            ann(t, ih, v4(10, 0, ih, 1), 2, 0, Event::Completed);
        }
        t.index_add(
            InfoHash([5; 20]),
            IndexMeta {
                name: "Five".into(),
                size: 5,
                added_at: 1_700_000_000,
                v2: None,
                from_dir: false,
            },
        )
        .unwrap();
        t.index_add(
            InfoHash([99; 20]),
            IndexMeta {
                name: "Only indexed".into(),
                size: 9,
                added_at: 1_700_000_001,
                v2: None,
                from_dir: false,
            },
        )
        .unwrap();
        t.index_add(
            InfoHash([7; 20]),
            IndexMeta {
                name: "Hybrid".into(),
                size: 7,
                added_at: 1_700_000_002,
                v2: Some(InfoHash([0x77; 20])),
                from_dir: false,
            },
        )
        .unwrap();
        t.access().allow(InfoHash([0xa1; 20]));
        t.access().deny(InfoHash([0xd1; 20]));
        t.access().add_passkey(crate::PasskeyEntry {
            key: "abcdefghijklmnopqrstuvwxyz012345".parse().unwrap(),
            expires_at: Some(1_900_000_000),
            label: "alice".into(),
        });
        t.access().set_min_version(42, 3);
    }

    /// Everything a client or operator can observe, in a comparable form.
    fn observe(t: &Tracker) -> Vec<String> {
        let now = t.clock().now();
        let mut out = Vec::new();
        for ih in (1..=30u8).chain([99]) {
            let h = InfoHash([ih; 20]);
            out.push(format!("{h} {:?}", t.scrape_one(&h, now)));
            let mut peers = t.peers(&h, now).unwrap_or_default();
            peers.sort_by_key(|p| (p.ip, p.port));
            out.push(format!("{peers:?}"));
        }
        out.push(format!("{:?}", t.index_list(&IndexQuery::default(), now)));
        out.push(format!("{:?}", t.access().state()));
        out.push(format!(
            "alias {:?}",
            t.scrape_one(&InfoHash([0x77; 20]), now)
        ));
        out.push(format!("torrents {}", t.torrent_count()));
        out
    }

    #[test]
    fn round_trip_keeps_swarms_counts_index_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snap.json");
        let a = tracker();
        populate(&a);
        let w = write(&a, &path, KEY).unwrap();
        assert_eq!(w.torrents, 31);
        assert!(!tmp_path(&path).exists());

        let b = tracker();
        let r = load(&b, &path).unwrap();
        assert_eq!((r.torrents, r.peers, r.dropped), (31, w.peers, 0));
        assert_eq!(r.connection_id_key, Some(KEY));
        assert_eq!(observe(&a), observe(&b));
    }

    #[test]
    fn restore_drops_expired_peers_and_keeps_remaining_lifetime() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snap.json");
        let a = tracker();
        ann(&a, 1, v4(10, 0, 0, 1), 1, 5, Event::Started);
        a.clock().advance(1000);
        ann(&a, 1, v4(10, 0, 0, 2), 2, 5, Event::Started);
        write(&a, &path, KEY).unwrap();
        // Down for long enough that the first peer (timeout 2700 s, 1000 s old) expires.
        let b = tracker();
        b.clock().set(T0 + 1000 + 1800);
        let r = load(&b, &path).unwrap();
        assert_eq!((r.peers, r.dropped), (1, 1));
        let peers = b.peers(&InfoHash([1; 20]), b.clock().now()).unwrap();
        assert_eq!(peers.len(), 1);
        assert_eq!(peers[0].port, 2);
        assert_eq!(peers[0].expires_in, 2700 - 1800);
    }

    #[test]
    fn truncated_file_at_every_tenth_is_moved_aside_and_tracker_starts_empty() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.json");
        let a = tracker();
        populate(&a);
        write(&a, &good, KEY).unwrap();
        let bytes = fs::read(&good).unwrap();
        for tenth in 0..10 {
            let path = dir.path().join(format!("cut{tenth}.json"));
            fs::write(&path, &bytes[..bytes.len() * tenth / 10]).unwrap();
            let b = tracker();
            match restore(&b, &path).unwrap() {
                RestoreOutcome::MovedAside { moved_to, error } => {
                    assert!(moved_to.exists(), "{tenth}: moved file must exist");
                    assert!(!path.exists(), "{tenth}: original must be gone");
                    assert!(error.to_string().contains("corrupt"), "{error}");
                }
                other => panic!("{tenth}0%: expected MovedAside, got {other:?}"),
            }
            assert_eq!(b.torrent_count(), 0, "{tenth}0%");
            assert_eq!(b.peer_counts(b.clock().now()).total(), 0);
        }
    }

    #[test]
    fn a_failed_write_removes_its_temp_file_and_keeps_the_old_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snap.json");
        let a = tracker();
        populate(&a);
        write(&a, &path, KEY).unwrap();
        let before = std::fs::read(&path).unwrap();
        // The temp file is a link to /dev/full: every write fails with ENOSPC, as on a full disk.
        std::os::unix::fs::symlink("/dev/full", tmp_path(&path)).unwrap();
        ann(&a, 78, v4(10, 9, 9, 8), 1, 1, Event::Started);
        assert!(matches!(
            write(&a, &path, KEY),
            Err(SnapshotError::Io { .. })
        ));
        assert!(
            std::fs::symlink_metadata(tmp_path(&path)).is_err(),
            "temp file left behind"
        );
        assert_eq!(std::fs::read(&path).unwrap(), before);
        // A rename that fails (the target became a directory) also cleans up.
        let dir_path = dir.path().join("is_a_dir");
        std::fs::create_dir(&dir_path).unwrap();
        std::fs::write(dir_path.join("x"), b"x").unwrap();
        assert!(write(&a, &dir_path, KEY).is_err());
        assert!(
            !tmp_path(&dir_path).exists(),
            "temp file left behind after a failed rename"
        );
    }

    #[test]
    fn crash_between_write_and_rename_leaves_previous_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snap.json");
        let a = tracker();
        populate(&a);
        write(&a, &path, KEY).unwrap();
        let before = observe(&a);
        // More state, then a "crash" after the temp file is complete but before the rename.
        for port in 1..50 {
            ann(&a, 77, v4(10, 9, 9, 9), port, 1, Event::Started);
        }
        let (tmp, _) = write_temp(&a, &path, KEY).unwrap();
        assert!(tmp.exists());
        let b = tracker();
        assert!(matches!(
            restore(&b, &path).unwrap(),
            RestoreOutcome::Loaded(LoadReport {
                connection_id_key: Some(KEY),
                ..
            })
        ));
        assert_eq!(observe(&b), before);
        // The next write replaces the stale temp file.
        write(&a, &path, KEY).unwrap();
        assert!(!tmp.exists());
    }

    #[test]
    fn concurrent_writers_take_turns_on_the_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snap.json");
        let a = tracker();
        populate(&a);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..10 {
                        write(&a, &path, KEY).unwrap();
                    }
                });
            }
        });
        let b = tracker();
        assert_eq!(load(&b, &path).unwrap().connection_id_key, Some(KEY));
        assert_eq!(observe(&a), observe(&b));
    }

    #[test]
    fn future_version_is_refused_and_left_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snap.json");
        fs::write(&path, br#"{"format":2,"written_at_unix":1,"torrents":[]}"#).unwrap();
        let t = tracker();
        let err = restore(&t, &path).unwrap_err();
        assert!(
            matches!(err, SnapshotError::FutureVersion { found: 2, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("format version 2"));
        assert!(path.exists());
    }

    #[test]
    fn missing_file_is_a_clean_start() {
        let dir = tempfile::tempdir().unwrap();
        let t = tracker();
        assert!(matches!(
            restore(&t, &dir.path().join("none.json")).unwrap(),
            RestoreOutcome::Missing
        ));
    }
}
