//! Access control: which torrents are tracked (open, whitelist, blacklist, both) and who may
//! announce (private mode with passkeys).
//!
//! # Lists
//!
//! The allow and deny lists are each the union of a hex file (one 40-character info hash per
//! line, `#` comments; re-read on SIGHUP) and entries added through the admin API (kept in the
//! snapshot). In whitelist mode a torrent is tracked when it is in the torrent index or in the
//! allow list; in blacklist mode when it is not in the deny list; `both` requires both.
//!
//! The lists are immutable hash sets behind [`ArcSwap`]: the announce path reads them with one
//! atomic load and no lock, and an edit builds a new set and swaps it in (edits are rare).
//!
//! # Passkeys
//!
//! In private mode every announce and scrape must carry a 32-character passkey (HTTP path
//! `/{passkey}/announce`, UDP BEP 41 URL data `/{passkey}/announce`). A key is valid when it is
//! either
//! - stored: added through the admin API, with an optional expiry (unix seconds), or
//! - stateless: `UUUUUUUUVVVVMMMMMMMMMMMMMMMMMMMM` in lower-case hex, where `U` is a user id
//!   (u32), `V` a version (u16), and `M` the first 10 bytes of
//!   HMAC-SHA256(secret, "mini-torrust passkey v1" || user id BE || version BE). A site that
//!   shares the secret issues keys without calling the tracker; raising a user's minimum version
//!   through the admin API revokes that user's older keys.
//!
//! An 80-bit MAC makes forging a stateless key a 2^-80 guess per attempt.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::clients::ClientFilter;
use crate::config::AccessConfig;
use crate::types::InfoHash;

/// Which torrents are tracked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessMode {
    /// Every torrent.
    #[default]
    Open,
    /// Only torrents in the index or the allow list.
    Whitelist,
    /// Every torrent not in the deny list.
    Blacklist,
    /// Whitelisted and not blacklisted.
    Both,
}

/// Why a request is refused. The Display text ([`AccessError::message`]) is what the client is
/// told, by both protocols.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.message())]
pub enum AccessError {
    /// Whitelist mode and the torrent is not listed.
    Unregistered,
    /// Blacklist mode and the torrent is listed.
    Blacklisted,
    /// Private mode and no passkey given.
    PasskeyMissing,
    /// Private mode and the passkey is unknown, malformed, revoked or expired.
    PasskeyInvalid,
    /// The peer id's client is denied, or not on the client allow list.
    ClientNotAllowed,
}

impl AccessError {
    /// The text the client is told (static: UDP writes it per packet without allocating).
    pub const fn message(self) -> &'static str {
        match self {
            AccessError::Unregistered => "unregistered torrent",
            AccessError::Blacklisted => "torrent is blacklisted",
            AccessError::PasskeyMissing => "passkey required",
            AccessError::PasskeyInvalid => "invalid passkey",
            AccessError::ClientNotAllowed => "client not allowed",
        }
    }
}

/// Errors of list files and passkey management.
#[derive(Debug, thiserror::Error)]
pub enum AccessListError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A line is not a 40-character hex info hash.
    #[error("{path}:{line}: not a 40-character hex info hash: {text:?}")]
    BadLine {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// The line.
        text: String,
    },
    /// A passkey is not 32 characters of [0-9A-Za-z].
    #[error("a passkey is 32 characters of [0-9A-Za-z]")]
    BadPasskey,
}

/// A passkey: exactly 32 ASCII alphanumerics.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Passkey([u8; 32]);

impl Passkey {
    /// Parses the 32 bytes of a key; anything else is `None`.
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        let arr = <[u8; 32]>::try_from(bytes).ok()?;
        arr.iter()
            .all(u8::is_ascii_alphanumeric)
            .then_some(Self(arr))
    }

    /// The key as text.
    pub fn as_str(&self) -> &str {
        // Checked ASCII on construction.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// A fresh random key (62-character alphabet, ~190 bits).
    pub fn random() -> Self {
        use rand::Rng;
        const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        let mut rng = rand::rng();
        let mut k = [0u8; 32];
        for b in &mut k {
            *b = ALPHABET[rng.random_range(0..ALPHABET.len())];
        }
        Self(k)
    }
}

impl fmt::Display for Passkey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Passkey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Keys are secrets: never printed whole.
        write!(f, "Passkey({}…)", &self.as_str()[..4])
    }
}

impl std::str::FromStr for Passkey {
    type Err = AccessListError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s.as_bytes()).ok_or(AccessListError::BadPasskey)
    }
}

impl serde::Serialize for Passkey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Passkey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A stored passkey's attributes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PasskeyEntry {
    /// The key.
    pub key: Passkey,
    /// Unix seconds after which it is refused; `None`: never expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    /// A free-form label (user name, id) for operators.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub label: String,
}

/// The persistent, API-editable part of access control (written to the snapshot).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AccessState {
    /// Info hashes allowed through the API.
    #[serde(default)]
    pub allow: Vec<InfoHash>,
    /// Info hashes denied through the API.
    #[serde(default)]
    pub deny: Vec<InfoHash>,
    /// Stored passkeys.
    #[serde(default)]
    pub passkeys: Vec<PasskeyEntry>,
    /// Per-user minimum version of stateless keys (user id -> version).
    #[serde(default)]
    pub min_versions: Vec<(u32, u16)>,
    /// Client (peer id) prefixes allowed through the API.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub client_allow: Vec<String>,
    /// Client (peer id) prefixes denied through the API.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub client_deny: Vec<String>,
}

#[derive(Debug, Default)]
struct Lists {
    /// From the files.
    file_allow: HashSet<InfoHash>,
    file_deny: HashSet<InfoHash>,
    /// From the API.
    api_allow: HashSet<InfoHash>,
    api_deny: HashSet<InfoHash>,
}

#[derive(Debug, Default, Clone)]
struct Keys {
    stored: HashMap<Passkey, PasskeyEntry>,
    min_versions: HashMap<u32, u16>,
}

/// Access control state, read lock-free on the hot path.
#[derive(Debug)]
pub struct Access {
    config: AccessConfig,
    lists: ArcSwap<Lists>,
    keys: ArcSwap<Keys>,
    clients: ClientFilter,
    /// Serialises writers (API edits, reloads); readers never take it.
    edit: std::sync::Mutex<()>,
}

const MAC_DOMAIN: &[u8] = b"mini-torrust passkey v1";

impl Access {
    /// Access control with no lists loaded yet (call [`Access::reload_files`]).
    pub fn new(config: AccessConfig) -> Self {
        let clients = ClientFilter::default();
        clients.set_config(&config.client_allow, &config.client_deny);
        Self {
            config,
            lists: ArcSwap::from_pointee(Lists::default()),
            keys: ArcSwap::from_pointee(Keys::default()),
            clients,
            edit: std::sync::Mutex::new(()),
        }
    }

    /// The client (peer id prefix) filter.
    pub fn clients(&self) -> &ClientFilter {
        &self.clients
    }

    /// The settings.
    pub fn config(&self) -> &AccessConfig {
        &self.config
    }

    /// Whether nothing is ever refused (open mode, not private): the fast path.
    pub fn is_open(&self) -> bool {
        self.config.mode == AccessMode::Open && !self.config.private
    }

    /// Whether a torrent is tracked. `indexed` says whether it is in the torrent index.
    pub fn check_torrent(&self, info_hash: &InfoHash, indexed: bool) -> Result<(), AccessError> {
        let mode = self.config.mode;
        if mode == AccessMode::Open {
            return Ok(());
        }
        let lists = self.lists.load();
        if matches!(mode, AccessMode::Blacklist | AccessMode::Both)
            && (lists.file_deny.contains(info_hash) || lists.api_deny.contains(info_hash))
        {
            return Err(AccessError::Blacklisted);
        }
        if matches!(mode, AccessMode::Whitelist | AccessMode::Both)
            && !indexed
            && !lists.file_allow.contains(info_hash)
            && !lists.api_allow.contains(info_hash)
        {
            return Err(AccessError::Unregistered);
        }
        Ok(())
    }

    /// Checks the passkey of a request in private mode (always Ok when not private).
    pub fn check_passkey(&self, key: Option<&[u8]>, now: u64) -> Result<(), AccessError> {
        if !self.config.private {
            return Ok(());
        }
        let key = key.ok_or(AccessError::PasskeyMissing)?;
        let key = Passkey::parse(key).ok_or(AccessError::PasskeyInvalid)?;
        let keys = self.keys.load();
        if let Some(e) = keys.stored.get(&key) {
            return match e.expires_at {
                Some(t) if t <= now => Err(AccessError::PasskeyInvalid),
                _ => Ok(()),
            };
        }
        match (self.config.secret(), parse_stateless(&key)) {
            (Some(secret), Some((user, version, mac))) => {
                let min = keys.min_versions.get(&user).copied().unwrap_or(0);
                if version >= min && stateless_mac(secret, user, version) == mac {
                    Ok(())
                } else {
                    Err(AccessError::PasskeyInvalid)
                }
            }
            _ => Err(AccessError::PasskeyInvalid),
        }
    }

    /// Re-reads the allow and deny files (SIGHUP). On error nothing changes.
    pub fn reload_files(&self) -> Result<(usize, usize), AccessListError> {
        let allow = match self.config.allow_path() {
            Some(p) => read_hex_file(p)?,
            None => HashSet::new(),
        };
        let deny = match self.config.deny_path() {
            Some(p) => read_hex_file(p)?,
            None => HashSet::new(),
        };
        let counts = (allow.len(), deny.len());
        let _guard = self.edit.lock().unwrap_or_else(|e| e.into_inner());
        let old = self.lists.load();
        self.lists.store(Arc::new(Lists {
            file_allow: allow,
            file_deny: deny,
            api_allow: old.api_allow.clone(),
            api_deny: old.api_deny.clone(),
        }));
        Ok(counts)
    }

    fn edit_lists(
        &self,
        f: impl FnOnce(&mut HashSet<InfoHash>, &mut HashSet<InfoHash>) -> bool,
    ) -> bool {
        let _guard = self.edit.lock().unwrap_or_else(|e| e.into_inner());
        let old = self.lists.load();
        let mut allow = old.api_allow.clone();
        let mut deny = old.api_deny.clone();
        let changed = f(&mut allow, &mut deny);
        if changed {
            self.lists.store(Arc::new(Lists {
                file_allow: old.file_allow.clone(),
                file_deny: old.file_deny.clone(),
                api_allow: allow,
                api_deny: deny,
            }));
        }
        changed
    }

    /// Adds to the API allow list. Returns false if it was there.
    pub fn allow(&self, ih: InfoHash) -> bool {
        self.edit_lists(|a, _| a.insert(ih))
    }

    /// Removes from the API allow list. Returns false if it was not there.
    pub fn unallow(&self, ih: &InfoHash) -> bool {
        self.edit_lists(|a, _| a.remove(ih))
    }

    /// Adds to the API deny list. Returns false if it was there.
    pub fn deny(&self, ih: InfoHash) -> bool {
        self.edit_lists(|_, d| d.insert(ih))
    }

    /// Removes from the API deny list. Returns false if it was not there.
    pub fn undeny(&self, ih: &InfoHash) -> bool {
        self.edit_lists(|_, d| d.remove(ih))
    }

    /// Everything in both lists, sorted: (allow, deny), files and API together.
    pub fn lists(&self) -> (Vec<InfoHash>, Vec<InfoHash>) {
        let l = self.lists.load();
        let mut allow: Vec<_> = l.file_allow.union(&l.api_allow).copied().collect();
        let mut deny: Vec<_> = l.file_deny.union(&l.api_deny).copied().collect();
        allow.sort();
        deny.sort();
        (allow, deny)
    }

    fn edit_keys<R>(&self, f: impl FnOnce(&mut Keys) -> R) -> R {
        let _guard = self.edit.lock().unwrap_or_else(|e| e.into_inner());
        let mut keys = Keys::clone(&self.keys.load());
        let r = f(&mut keys);
        self.keys.store(Arc::new(keys));
        r
    }

    /// Stores a passkey (replacing one with the same key).
    pub fn add_passkey(&self, entry: PasskeyEntry) {
        self.edit_keys(|k| k.stored.insert(entry.key, entry));
    }

    /// Revokes a stored passkey. Returns false if it was not stored.
    pub fn revoke_passkey(&self, key: &Passkey) -> bool {
        self.edit_keys(|k| k.stored.remove(key).is_some())
    }

    /// Stored passkeys, sorted by key.
    pub fn passkeys(&self) -> Vec<PasskeyEntry> {
        let mut v: Vec<_> = self.keys.load().stored.values().cloned().collect();
        v.sort_by_key(|e| e.key);
        v
    }

    /// Refuses stateless keys of `user` with a version below `version`.
    pub fn set_min_version(&self, user: u32, version: u16) {
        self.edit_keys(|k| k.min_versions.insert(user, version));
    }

    /// The stateless key of a user and version, if a secret is configured.
    pub fn stateless_key(&self, user: u32, version: u16) -> Option<Passkey> {
        let secret = self.config.secret()?;
        Some(make_stateless(secret, user, version))
    }

    /// The API-edited state, for the snapshot.
    pub fn state(&self) -> AccessState {
        let l = self.lists.load();
        let k = self.keys.load();
        let mut s = AccessState {
            allow: l.api_allow.iter().copied().collect(),
            deny: l.api_deny.iter().copied().collect(),
            passkeys: k.stored.values().cloned().collect(),
            min_versions: k.min_versions.iter().map(|(u, v)| (*u, *v)).collect(),
            client_allow: Vec::new(),
            client_deny: Vec::new(),
        };
        (s.client_allow, s.client_deny) = self.clients.api_lists();
        s.allow.sort();
        s.deny.sort();
        s.passkeys.sort_by_key(|e| e.key);
        s.min_versions.sort();
        s
    }

    /// Restores the API-edited state from a snapshot.
    pub fn restore_state(&self, s: AccessState) {
        self.edit_lists(|a, d| {
            a.extend(s.allow);
            d.extend(s.deny);
            true
        });
        self.edit_keys(|k| {
            k.stored.extend(s.passkeys.into_iter().map(|e| (e.key, e)));
            k.min_versions.extend(s.min_versions);
        });
        self.clients.restore_api(&s.client_allow, &s.client_deny);
    }
}

fn stateless_mac(secret: &[u8], user: u32, version: u16) -> [u8; 10] {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        // HMAC takes keys of any length; this cannot happen.
        Err(_) => return [0; 10],
    };
    mac.update(MAC_DOMAIN);
    mac.update(&user.to_be_bytes());
    mac.update(&version.to_be_bytes());
    let full = mac.finalize().into_bytes();
    let mut out = [0u8; 10];
    out.copy_from_slice(&full[..10]);
    out
}

fn make_stateless(secret: &[u8], user: u32, version: u16) -> Passkey {
    let mut raw = [0u8; 16];
    raw[..4].copy_from_slice(&user.to_be_bytes());
    raw[4..6].copy_from_slice(&version.to_be_bytes());
    raw[6..].copy_from_slice(&stateless_mac(secret, user, version));
    let mut k = [0u8; 32];
    // Cannot fail: 16 bytes encode to exactly 32 hex characters.
    let _ = hex::encode_to_slice(raw, &mut k);
    Passkey(k)
}

fn parse_stateless(key: &Passkey) -> Option<(u32, u16, [u8; 10])> {
    let mut raw = [0u8; 16];
    hex::decode_to_slice(key.0, &mut raw).ok()?;
    let user = u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]);
    let version = u16::from_be_bytes([raw[4], raw[5]]);
    let mut mac = [0u8; 10];
    mac.copy_from_slice(&raw[6..]);
    Some((user, version, mac))
}

/// Reads a list file: one hex info hash per line; blank lines and `#` comments ignored.
pub fn read_hex_file(path: &Path) -> Result<HashSet<InfoHash>, AccessListError> {
    let text = std::fs::read_to_string(path).map_err(|source| AccessListError::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut out = HashSet::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.split('#').next().unwrap_or("").trim();
        if t.is_empty() {
            continue;
        }
        let ih = t
            .parse::<InfoHash>()
            .map_err(|_| AccessListError::BadLine {
                path: path.to_owned(),
                line: i + 1,
                text: line.to_owned(),
            })?;
        out.insert(ih);
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
