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
//!    "peers":[{"ip":"10.0.0.1","port":6881,"peer_id":"<40 hex; absent without ids>","status":"seeding",
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
    /// Absent when the tracker keeps no peer ids (`[swarm] keep_peer_ids = false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    peer_id: Option<PeerId>,
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
mod tests;
