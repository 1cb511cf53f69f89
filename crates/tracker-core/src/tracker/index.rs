//! The torrent index: entries added through the API or kept from `[access] index_dir`, their
//! listing and search, the peers listing operators see, and the sync of the `.torrent`
//! directory (the one place this crate reads files besides snapshots). The index lives in the
//! same swarm records as the announce state ([`IndexMeta`] on a swarm), so an indexed torrent
//! and its swarm are one entry under one shard lock.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::Ordering;

use dashmap::mapref::entry::Entry;

use super::Tracker;
use crate::sink::PeerView;
use crate::swarm::{IndexMeta, Swarm};
use crate::types::{InfoHash, PeerId, PeerStatus};

/// Errors of the torrent index.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    /// The info hash is indexed already.
    #[error("torrent {0} is already in the index")]
    Duplicate(InfoHash),
    /// The info hash is not indexed.
    #[error("torrent {0} is not in the index")]
    NotFound(InfoHash),
    /// The name is empty or too long.
    #[error("invalid torrent name: {0}")]
    BadName(&'static str),
}

/// An index entry with its swarm's current counts.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TorrentSummary {
    /// Info hash (hex in JSON).
    pub info_hash: InfoHash,
    /// Display name.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// RFC 3339, UTC.
    pub added_at: String,
    /// The truncated v2 hash of a hybrid torrent, which resolves to this entry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub info_hash_v2: Option<InfoHash>,
    /// Live seeders.
    pub seeders: u32,
    /// Live leechers.
    pub leechers: u32,
    /// Completed downloads.
    pub downloaded: u32,
}

/// One peer of a torrent, as operators see it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PeerInfo {
    /// Peer id (hex in JSON); `null` when the tracker keeps no peer ids
    /// (`[swarm] keep_peer_ids = false`).
    pub peer_id: Option<PeerId>,
    /// IP address.
    pub ip: IpAddr,
    /// Port.
    pub port: u16,
    /// seeding / leeching.
    pub status: PeerStatus,
    /// Seconds until it expires unless it announces again.
    pub expires_in: u32,
}

/// A torrent with its peers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TorrentDetail {
    /// The index entry and counts.
    #[serde(flatten)]
    pub summary: TorrentSummary,
    /// Every live peer.
    pub peers: Vec<PeerInfo>,
}

/// How to order an index listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortBy {
    /// By name, case-insensitively (ties by info hash).
    #[default]
    Name,
    /// Newest first.
    Added,
}

/// An index query: filter, order, page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexQuery {
    /// Case-insensitive name substring, or an info-hash hex prefix. Empty matches all.
    pub q: String,
    /// Order.
    pub sort: SortBy,
    /// 1-based page number.
    pub page: usize,
    /// Entries per page (at least 1).
    pub per_page: usize,
}

impl Default for IndexQuery {
    fn default() -> Self {
        Self {
            q: String::new(),
            sort: SortBy::Name,
            page: 1,
            per_page: 50,
        }
    }
}

/// One page of an index listing.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IndexPage {
    /// Entries matching the query, all pages.
    pub total: usize,
    /// This page's number.
    pub page: usize,
    /// Entries per page.
    pub per_page: usize,
    /// This page.
    pub torrents: Vec<TorrentSummary>,
}

/// What re-reading the list files and the index directory did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReloadReport {
    /// Entries in the allow-list file.
    pub allow_file_entries: usize,
    /// Entries in the deny-list file.
    pub deny_file_entries: usize,
    /// Index entries added from new `.torrent` files.
    pub index_added: usize,
    /// Index entries removed because their file is gone.
    pub index_removed: usize,
    /// `.torrent` files that could not be used, with the reason (they are skipped).
    pub index_errors: Vec<String>,
}

/// Why reloading failed (nothing was changed by the failing part).
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// A list file is unreadable or malformed.
    #[error(transparent)]
    Lists(#[from] crate::access::AccessListError),
    /// The index directory cannot be read.
    #[error("cannot read the index directory {path}: {source}")]
    IndexDir {
        /// The directory.
        path: std::path::PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Longest torrent name accepted in the index, in bytes.
pub const MAX_NAME_LEN: usize = 1024;

impl Tracker {
    /// Live peers of one torrent (operators' view). `None` if the torrent is unknown.
    pub fn peers(&self, info_hash: &InfoHash, now: u32) -> Option<Vec<PeerInfo>> {
        let s = self.swarms.get(&self.resolve(info_hash))?;
        Some(s.peers(now).map(|p| peer_info(&p, now)).collect())
    }

    /// Adds an entry to the index. The torrent counts towards `max_torrents` but is never refused
    /// for it: the operator asked for it explicitly.
    pub fn index_add(&self, info_hash: InfoHash, meta: IndexMeta) -> Result<(), IndexError> {
        if meta.name.trim().is_empty() {
            return Err(IndexError::BadName("empty"));
        }
        if meta.name.len() > MAX_NAME_LEN {
            return Err(IndexError::BadName("longer than 1024 bytes"));
        }
        let v2 = meta.v2.filter(|v2| *v2 != info_hash);
        if let Some(v2) = v2 {
            // The v2 hash must not already stand for another torrent.
            if self.aliases.load().contains_key(&v2) || self.is_indexed(&v2) {
                return Err(IndexError::Duplicate(v2));
            }
        }
        if self.aliases.load().contains_key(&info_hash) {
            return Err(IndexError::Duplicate(info_hash));
        }
        match self.swarms.entry(info_hash) {
            Entry::Occupied(mut o) => {
                if o.get().meta().is_some() {
                    return Err(IndexError::Duplicate(info_hash));
                }
                o.get_mut().set_meta(Some(meta));
            }
            Entry::Vacant(v) => {
                self.torrents.fetch_add(1, Ordering::Relaxed);
                v.insert(Swarm::default()).set_meta(Some(meta));
            }
        }
        if let Some(v2) = v2 {
            self.edit_aliases(|a| a.insert(v2, info_hash));
        }
        Ok(())
    }

    pub(super) fn edit_aliases<R>(
        &self,
        f: impl FnOnce(&mut HashMap<InfoHash, InfoHash>) -> R,
    ) -> R {
        // Index edits are rare and come from the admin API; copy-on-write keeps every announce
        // lock-free on this map.
        let mut map = HashMap::clone(&self.aliases.load());
        let r = f(&mut map);
        let any = !map.is_empty();
        self.aliases.store(std::sync::Arc::new(map));
        self.has_aliases.store(any, Ordering::Release);
        r
    }

    /// Removes an index entry (the swarm, if any, stays until its peers leave).
    pub fn index_remove(&self, info_hash: &InfoHash) -> Result<(), IndexError> {
        let info_hash = &self.resolve(info_hash);
        let mut gone = None;
        let removed = self.swarms.remove_if_mut(info_hash, |_, s| {
            let Some(meta) = s.meta() else { return false };
            gone = Some(meta.v2);
            s.set_meta(None);
            s.is_disposable()
        });
        if let Some(Some(v2)) = gone {
            self.edit_aliases(|a| a.remove(&v2));
        }
        let gone = gone.is_some();
        if removed.is_some() {
            self.torrents.fetch_sub(1, Ordering::Relaxed);
        }
        if gone {
            Ok(())
        } else {
            Err(IndexError::NotFound(*info_hash))
        }
    }

    /// Whether the torrent is in the index.
    pub fn is_indexed(&self, info_hash: &InfoHash) -> bool {
        self.swarms
            .get(&self.resolve(info_hash))
            .is_some_and(|s| s.meta().is_some())
    }

    /// One indexed torrent with its peers.
    pub fn index_get(&self, info_hash: &InfoHash, now: u32) -> Option<TorrentDetail> {
        let info_hash = &self.resolve(info_hash);
        let s = self.swarms.get(info_hash)?;
        let meta = s.meta()?;
        Some(TorrentDetail {
            summary: summary(info_hash, meta, &s, now),
            peers: s.peers(now).map(|p| peer_info(&p, now)).collect(),
        })
    }

    /// Lists, filters and pages the index. Walks every shard (read locks, one at a time).
    pub fn index_list(&self, query: &IndexQuery, now: u32) -> IndexPage {
        let q = query.q.trim().to_lowercase();
        let mut all: Vec<TorrentSummary> = Vec::new();
        for r in self.swarms.iter() {
            let Some(meta) = r.value().meta() else {
                continue;
            };
            if !q.is_empty()
                && !meta.name.to_lowercase().contains(&q)
                && !r.key().to_string().starts_with(&q)
                && !meta.v2.is_some_and(|v2| v2.to_string().starts_with(&q))
            {
                continue;
            }
            all.push(summary(r.key(), meta, r.value(), now));
        }
        match query.sort {
            SortBy::Name => all.sort_by(|a, b| {
                a.name
                    .to_lowercase()
                    .cmp(&b.name.to_lowercase())
                    .then(a.info_hash.cmp(&b.info_hash))
            }),
            SortBy::Added => all.sort_by(|a, b| {
                b.added_at
                    .cmp(&a.added_at)
                    .then(a.info_hash.cmp(&b.info_hash))
            }),
        }
        let per_page = query.per_page.max(1);
        let page = query.page.max(1);
        let total = all.len();
        let torrents = all
            .into_iter()
            .skip((page - 1).saturating_mul(per_page))
            .take(per_page)
            .collect();
        IndexPage {
            total,
            page,
            per_page,
            torrents,
        }
    }

    /// Re-reads the access list files and syncs the index directory (start, SIGHUP, API). Swarms
    /// are never touched.
    pub fn reload_files(&self) -> Result<ReloadReport, ReloadError> {
        let (allow, deny) = self.access.reload_files()?;
        let mut report = ReloadReport {
            allow_file_entries: allow,
            deny_file_entries: deny,
            ..Default::default()
        };
        if let Some(dir) = self.config.access.index_path().map(Path::to_path_buf) {
            self.sync_index_dir(&dir, &mut report)?;
        }
        Ok(report)
    }

    /// Makes the index hold exactly one entry per usable `.torrent` file in `dir` among the
    /// entries that came from it: new files are added, entries whose file is gone removed.
    /// Entries added through the API are left alone.
    fn sync_index_dir(
        &self,
        dir: &std::path::Path,
        report: &mut ReloadReport,
    ) -> Result<(), ReloadError> {
        let io = |source| ReloadError::IndexDir {
            path: dir.to_owned(),
            source,
        };
        let mut present = std::collections::HashSet::new();
        let now = u64::from(self.clock.now());
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .map_err(io)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "torrent"))
            .collect();
        files.sort();
        for path in files {
            let parsed = read_bounded(&path, crate::torrent_file::MAX_TORRENT_BYTES)
                .map_err(|e| e.to_string())
                .and_then(|b| crate::torrent_file::parse(&b).map_err(|e| e.to_string()));
            let t = match parsed {
                Ok(t) => t,
                Err(e) => {
                    report.index_errors.push(format!("{}: {e}", path.display()));
                    continue;
                }
            };
            let ih = t.primary();
            present.insert(ih);
            if self.is_indexed(&ih) {
                continue;
            }
            let meta = IndexMeta {
                name: t.name.clone(),
                size: t.size,
                added_at: now,
                v2: t.linked_v2(),
                from_dir: true,
            };
            match self.index_add(ih, meta) {
                Ok(()) => report.index_added += 1,
                Err(e) => report.index_errors.push(format!("{}: {e}", path.display())),
            }
        }
        // Collected first, removed after: no map call while a shard is locked.
        let gone: Vec<InfoHash> = self
            .swarms
            .iter()
            .filter(|r| r.value().meta().is_some_and(|m| m.from_dir) && !present.contains(r.key()))
            .map(|r| *r.key())
            .collect();
        for ih in gone {
            if self.index_remove(&ih).is_ok() {
                report.index_removed += 1;
            }
        }
        Ok(())
    }

    // ---- for the snapshot module ---------------------------------------------------------
}

fn summary(info_hash: &InfoHash, meta: &IndexMeta, s: &Swarm, now: u32) -> TorrentSummary {
    let (seeders, leechers) = s.live_counts(now);
    TorrentSummary {
        info_hash: *info_hash,
        name: meta.name.clone(),
        size: meta.size,
        added_at: rfc3339(meta.added_at),
        info_hash_v2: meta.v2,
        seeders,
        leechers,
        downloaded: s.downloaded,
    }
}

fn peer_info(p: &PeerView, now: u32) -> PeerInfo {
    PeerInfo {
        peer_id: p.peer_id,
        ip: p.addr.ip(),
        port: p.addr.port(),
        status: p.status,
        expires_in: p.expiry.saturating_sub(now),
    }
}

/// Unix seconds as RFC 3339 in UTC, e.g. `2025-10-29T12:00:00Z`.
pub fn rfc3339(unix: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Parses RFC 3339 (as written by [`rfc3339`]) into unix seconds.
pub fn parse_rfc3339(s: &str) -> Option<u64> {
    let t = humantime::parse_rfc3339(s).ok()?;
    t.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

/// Reads at most `max + 1` bytes of `path`: enough for the parser to refuse an oversized file
/// without the whole of it ever being held in memory.
fn read_bounded(path: &std::path::Path, max: usize) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut out = Vec::new();
    std::fs::File::open(path)?
        .take(max as u64 + 1)
        .read_to_end(&mut out)?;
    Ok(out)
}
