//! JSON snapshots of the whole tracker state (DESIGN.md section 6). Implementation in progress.

use std::path::{Path, PathBuf};

use crate::tracker::Tracker;

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
        source: std::io::Error,
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
    #[error("snapshot {path} has format version {found}, newer than the {supported} this build reads; refusing to load or overwrite it")]
    FutureVersion {
        /// The file.
        path: PathBuf,
        /// Its version.
        found: u32,
        /// Ours.
        supported: u32,
    },
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
    /// Peers dropped because they had expired.
    pub expired: usize,
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

/// Writes the whole state to `path` atomically (temp file, fsync, rename, fsync dir).
pub fn write(tracker: &Tracker, path: &Path) -> Result<WriteReport, SnapshotError> {
    let _ = (tracker, path);
    Ok(WriteReport::default())
}

/// Loads `path` into `tracker` (which should be empty).
pub fn load(tracker: &Tracker, path: &Path) -> Result<LoadReport, SnapshotError> {
    let _ = (tracker, path);
    Ok(LoadReport::default())
}

/// Start-up: load if present; a corrupt file is moved aside and the tracker left empty; a file
/// from a future version is an error (the daemon must not overwrite it).
pub fn restore(tracker: &Tracker, path: &Path) -> Result<RestoreOutcome, SnapshotError> {
    let _ = (tracker, path);
    Ok(RestoreOutcome::Missing)
}
