//! The daemon's configuration: `config.toml` sections, environment overrides, validation.
//!
//! `[udp]` and `[http]` are the protocol crates' own structs embedded as-is; the other
//! sections are defined here. Every struct is `#[serde(default, deny_unknown_fields)]`: a
//! missing key takes its default, an unknown key is an error naming the key and the file.
//!
//! The shipped `config.toml` at the repository root is the documented default. It is embedded
//! in the binary ([`DEFAULT_TOML`]) and a test asserts it parses to exactly
//! [`Config::default()`].

use std::fmt;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The shipped `config.toml`, embedded: what runs when no file is given.
pub const DEFAULT_TOML: &str = include_str!("../config.toml");

/// Prefix of the environment overrides: `MINI_TORRUST_<SECTION>_<KEY>`.
pub const ENV_PREFIX: &str = "MINI_TORRUST_";

/// Environment variables with the prefix that are not config overrides.
const ENV_NOT_OVERRIDES: &[&str] = &["MINI_TORRUST_CONFIG"];

/// The section names, in file order.
pub const SECTIONS: &[&str] = &[
    "udp", "http", "admin", "protocol", "swarm", "snapshot", "access", "limits", "log",
];

/// The whole configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `[udp]`: the UDP tracker (BEP 15).
    pub udp: tracker_udp::UdpConfig,
    /// `[http]`: the HTTP tracker.
    pub http: tracker_http::HttpConfig,
    /// `[admin]`: the admin listener (metrics, health, API).
    pub admin: AdminConfig,
    /// `[protocol]`: what clients are told.
    pub protocol: ProtocolConfig,
    /// `[swarm]`: the swarm store.
    pub swarm: SwarmConfig,
    /// `[snapshot]`: state kept across restarts.
    pub snapshot: SnapshotConfig,
    /// `[access]`: who may use the tracker.
    pub access: AccessConfig,
    /// `[limits]`: per-address request rates and bans (tracker-core's own struct).
    pub limits: tracker_core::LimitsConfig,
    /// `[log]`: logging.
    pub log: LogConfig,
}

/// `[admin]`: the admin HTTP listener.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Addresses of the admin listener (`/metrics`, `/health`, `/api/*`). Empty disables it.
    /// Default: `["127.0.0.1:7070"]`.
    pub bind: Vec<SocketAddr>,
    /// Bearer token for `/api/*` (at least 16 characters). Empty: `/api/*` is disabled;
    /// `/metrics` and `/health` never need it. Default: `""`.
    pub token: String,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            bind: vec![SocketAddr::from(([127, 0, 0, 1], 7070))],
            token: String::new(),
        }
    }
}

impl fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminConfig")
            .field("bind", &self.bind)
            .field(
                "token",
                &if self.token.is_empty() {
                    ""
                } else {
                    "<redacted>"
                },
            )
            .finish()
    }
}

/// `[protocol]`: announce intervals and peer counts told to clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProtocolConfig {
    /// Seconds between announces told to clients (`interval`), before jitter. Default: `1800`.
    pub interval: u32,
    /// `min interval` told to clients, in seconds; at most `interval`. Default: `900`.
    pub min_interval: u32,
    /// `interval` is drawn from `interval` +- this many percent (0 to 50). Default: `10`.
    pub interval_jitter_percent: u32,
    /// Peers returned when a client does not say how many it wants. Default: `50`.
    pub default_numwant: u32,
}

impl Default for ProtocolConfig {
    fn default() -> Self {
        let c = tracker_core::CoreConfig::default();
        Self {
            interval: c.interval,
            min_interval: c.min_interval,
            interval_jitter_percent: c.interval_jitter_percent,
            default_numwant: c.default_numwant,
        }
    }
}

/// `[swarm]`: the swarm store and expiry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SwarmConfig {
    /// Independent locks in the swarm map, rounded up to a power of two. Default: `1024`.
    pub shards: usize,
    /// Most torrents kept at once. Default: `10000000`.
    pub max_torrents: usize,
    /// Most peers kept per torrent (both families). Default: `100000`.
    pub max_peers_per_swarm: usize,
    /// Seconds a peer stays after its last announce; more than `protocol.interval`, at most
    /// 8191. Default: `2700`.
    pub peer_timeout: u32,
    /// Seconds between sweeps that drop expired peers and empty torrents. Default: `60`.
    pub sweep_interval: u32,
}

impl Default for SwarmConfig {
    fn default() -> Self {
        let c = tracker_core::CoreConfig::default();
        Self {
            shards: c.shards,
            max_torrents: c.max_torrents,
            max_peers_per_swarm: c.max_peers_per_swarm,
            peer_timeout: c.peer_timeout,
            sweep_interval: 60,
        }
    }
}

/// `[snapshot]`: the state file written periodically and at shutdown, read at start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SnapshotConfig {
    /// Load a snapshot at start and write them. Default: `true`.
    pub enabled: bool,
    /// The snapshot file; relative paths are relative to the working directory (the unit's
    /// `StateDirectory`). Default: `"mini-torrust.snapshot.json"`.
    pub path: PathBuf,
    /// Seconds between periodic snapshots. Default: `300`.
    pub interval: u32,
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            path: PathBuf::from("mini-torrust.snapshot.json"),
            interval: 300,
        }
    }
}

/// `[access]`: which torrents are tracked and who may announce.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccessConfig {
    /// Which torrents are tracked: `"open"` (all), `"whitelist"` (indexed torrents and the
    /// allow list), `"blacklist"` (all but the deny list), `"both"` (whitelisted and not
    /// denied). Default: `"open"`.
    pub mode: tracker_core::AccessMode,
    /// Private mode: announces and scrapes need a passkey (`/{passkey}/announce` over HTTP,
    /// BEP 41 URL data `/{passkey}/announce` over UDP). Default: false
    pub private: bool,
    /// Allow-list file: one 40-character hex info hash per line, `#` comments. Re-read on
    /// SIGHUP and `POST /api/access/reload`. Empty: none. Default: `""`
    pub allow_file: String,
    /// Deny-list file, same format. Default: `""`
    pub deny_file: String,
    /// Shared secret (at least 16 characters) for stateless passkeys that a site derives with
    /// HMAC-SHA256 from a user id and a version. Empty: only stored passkeys. Default: `""`
    pub passkey_secret: String,
    /// A directory of `.torrent` files kept in the torrent index: read at start, on SIGHUP and
    /// on `POST /api/access/reload`; new files are added, entries whose file is gone removed
    /// (entries added through the API are never touched). Empty: none. Default: `""`
    pub index_dir: String,
}

impl fmt::Debug for AccessConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessConfig")
            .field("mode", &self.mode)
            .field("private", &self.private)
            .field("allow_file", &self.allow_file)
            .field("deny_file", &self.deny_file)
            .field(
                "passkey_secret",
                &if self.passkey_secret.is_empty() {
                    ""
                } else {
                    "<redacted>"
                },
            )
            .field("index_dir", &self.index_dir)
            .finish()
    }
}

/// `[log]`: logging to stderr (the journal under systemd).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// Filter in `RUST_LOG` syntax, e.g. `"info"` or `"info,tracker_udp=debug"`. Reloaded on
    /// SIGHUP. Default: `"info"`.
    pub filter: String,
    /// `"human"` (one readable line per event) or `"json"` (one JSON object per line).
    /// Default: `"human"`.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            filter: "info".into(),
            format: LogFormat::Human,
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Readable text.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// Where the configuration came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A file.
    File(PathBuf),
    /// The embedded defaults (no file).
    Embedded,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::File(p) => write!(f, "{}", p.display()),
            Source::Embedded => f.write_str("<embedded defaults>"),
        }
    }
}

/// Every problem found while loading or validating, one message each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problems(pub Vec<String>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

impl Config {
    /// Reads the file (or the embedded defaults), applies the `MINI_TORRUST_*` environment
    /// overrides from `env`, and validates. Every problem is listed, each naming the option
    /// and the file.
    pub fn load(
        source: &Source,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, Problems> {
        let text = match source {
            Source::File(path) => std::fs::read_to_string(path)
                .map_err(|e| Problems(vec![format!("{}: cannot read: {e}", path.display())]))?,
            Source::Embedded => DEFAULT_TOML.to_owned(),
        };
        let file = source.to_string();
        let (config, mut problems, failed) = Self::parse_lenient(&text, &file, env)?;
        // Semantic checks of the sections that parsed (a failed one holds defaults).
        problems.extend(
            config
                .validate()
                .into_iter()
                .filter(|p| {
                    !failed
                        .iter()
                        .any(|s| p.starts_with(&format!("{s}.")) || p.contains(&format!("[{s}]")))
                })
                .map(|p| format!("{file}: {p}")),
        );
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(Problems(problems))
        }
    }

    /// Parses TOML text (naming `file` in messages) and applies environment overrides, without
    /// the semantic checks of [`Config::validate`]. Lists a problem per bad section.
    #[cfg(test)]
    pub fn parse(
        text: &str,
        file: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, Problems> {
        let (config, problems, _) = Self::parse_lenient(text, file, env)?;
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(Problems(problems))
        }
    }

    /// Like [`Config::parse`], but returns the config with failed sections left at their
    /// defaults, the problems, and the names of the failed sections. Only a TOML syntax error
    /// is an `Err`.
    fn parse_lenient(
        text: &str,
        file: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(Config, Vec<String>, Vec<&'static str>), Problems> {
        let mut table: toml::Table =
            toml::from_str(text).map_err(|e| Problems(vec![format!("{file}: {e}")]))?;
        let mut problems = Vec::new();
        apply_env(&mut table, env, &mut problems);
        for key in table.keys() {
            if !SECTIONS.contains(&key.as_str()) {
                problems.push(format!(
                    "{file}: unknown section or key `{key}`, expected one of: {}",
                    SECTIONS.join(", ")
                ));
            }
        }
        let mut failed = Vec::new();
        let mut s = Sections {
            table: &table,
            file,
            problems: &mut problems,
            failed: &mut failed,
        };
        let config = Config {
            udp: s.get("udp"),
            http: s.get("http"),
            admin: s.get("admin"),
            protocol: s.get("protocol"),
            swarm: s.get("swarm"),
            snapshot: s.get("snapshot"),
            access: s.get("access"),
            limits: s.get("limits"),
            log: s.get("log"),
        };
        Ok((config, problems, failed))
    }

    /// Semantic checks: every problem, each naming its option. Includes whether the snapshot
    /// directory is writable (it creates and removes a probe file there).
    pub fn validate(&self) -> Vec<String> {
        let mut p = Vec::new();
        if let Err(e) = self.udp.validate() {
            p.push(e.to_string());
        }
        p.extend(self.http.validate().err().map(|e| e.to_string()));
        p.extend(self.limits.validate());
        let pr = &self.protocol;
        if pr.interval == 0 {
            p.push("protocol.interval must be at least 1 second".into());
        }
        if pr.min_interval == 0 {
            p.push("protocol.min_interval must be at least 1 second".into());
        }
        if pr.min_interval > pr.interval {
            p.push(format!(
                "protocol.min_interval ({}) must not be greater than protocol.interval ({})",
                pr.min_interval, pr.interval
            ));
        }
        if pr.interval_jitter_percent > 50 {
            p.push(format!(
                "protocol.interval_jitter_percent ({}) must be 0 to 50",
                pr.interval_jitter_percent
            ));
        }
        let sw = &self.swarm;
        if sw.shards == 0 || sw.shards > 1 << 20 {
            p.push(format!("swarm.shards ({}) must be 1 to 1048576", sw.shards));
        }
        if sw.max_torrents == 0 {
            p.push("swarm.max_torrents must be at least 1".into());
        }
        if sw.max_peers_per_swarm == 0 {
            p.push("swarm.max_peers_per_swarm must be at least 1".into());
        }
        if sw.peer_timeout <= pr.interval {
            p.push(format!(
                "swarm.peer_timeout ({}) must be greater than protocol.interval ({}), or peers expire before they announce again",
                sw.peer_timeout, pr.interval
            ));
        }
        if sw.peer_timeout > tracker_core::MAX_PEER_TIMEOUT {
            p.push(format!(
                "swarm.peer_timeout ({}) must be at most {} seconds",
                sw.peer_timeout,
                tracker_core::MAX_PEER_TIMEOUT
            ));
        }
        if sw.sweep_interval == 0 {
            p.push("swarm.sweep_interval must be at least 1 second".into());
        }
        let tok = &self.admin.token;
        if !tok.is_empty()
            && (tok.len() < 16 || tok.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            p.push("admin.token must be empty (API disabled) or at least 16 characters without whitespace".into());
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.filter) {
            p.push(format!(
                "log.filter ({:?}) is not a valid filter: {e}",
                self.log.filter
            ));
        }
        let ac = &self.access;
        for (name, file) in [
            ("access.allow_file", &ac.allow_file),
            ("access.deny_file", &ac.deny_file),
        ] {
            if !file.is_empty() {
                if let Err(e) = tracker_core::access::read_hex_file(std::path::Path::new(file)) {
                    p.push(format!("{name}: {e}"));
                }
            }
        }
        if !ac.index_dir.is_empty() {
            if let Err(e) = std::fs::read_dir(&ac.index_dir) {
                p.push(format!("access.index_dir ({}): {e}", ac.index_dir));
            }
        }
        if !ac.passkey_secret.is_empty() && ac.passkey_secret.len() < 16 {
            p.push("access.passkey_secret must be empty or at least 16 characters".into());
        }
        let sn = &self.snapshot;
        if sn.enabled {
            if sn.interval == 0 {
                p.push("snapshot.interval must be at least 1 second".into());
            }
            if sn.path.as_os_str().is_empty() {
                p.push("snapshot.path must not be empty when snapshot.enabled is true".into());
            } else if let Err(e) = probe_writable(&sn.path) {
                p.push(format!("snapshot.path ({}): {e}", sn.path.display()));
            }
        }
        p
    }

    /// The tracker-core settings from `[protocol]` and `[swarm]`.
    pub fn to_core(&self) -> tracker_core::CoreConfig {
        tracker_core::CoreConfig {
            shards: self.swarm.shards,
            max_torrents: self.swarm.max_torrents,
            max_peers_per_swarm: self.swarm.max_peers_per_swarm,
            peer_timeout: self.swarm.peer_timeout,
            default_numwant: self.protocol.default_numwant,
            interval: self.protocol.interval,
            min_interval: self.protocol.min_interval,
            interval_jitter_percent: self.protocol.interval_jitter_percent,
            limits: self.limits.clone(),
            access: tracker_core::AccessConfig {
                mode: self.access.mode,
                private: self.access.private,
                allow_file: non_empty_path(&self.access.allow_file),
                deny_file: non_empty_path(&self.access.deny_file),
                passkey_secret: (!self.access.passkey_secret.is_empty())
                    .then(|| self.access.passkey_secret.as_bytes().to_vec()),
                index_dir: non_empty_path(&self.access.index_dir),
            },
        }
    }

    /// The effective config as TOML, with a non-empty admin token and passkey secret replaced
    /// by `<redacted>`.
    pub fn to_toml_redacted(&self) -> Result<String, toml::ser::Error> {
        let mut c = self.clone();
        if !c.admin.token.is_empty() {
            c.admin.token = "<redacted>".into();
        }
        if !c.access.passkey_secret.is_empty() {
            c.access.passkey_secret = "<redacted>".into();
        }
        toml::to_string(&c)
    }

    /// One section as a TOML value (to tell which sections changed on reload).
    pub fn section_value(&self, name: &str) -> Option<toml::Value> {
        let v = toml::Value::try_from(self).ok()?;
        v.get(name).cloned()
    }
}

/// Deserializes sections one by one, recording problems (naming file, section and key) and
/// leaving a failed section at its default so that the others are still checked.
struct Sections<'a> {
    table: &'a toml::Table,
    file: &'a str,
    problems: &'a mut Vec<String>,
    failed: &'a mut Vec<&'static str>,
}

impl Sections<'_> {
    fn get<T: DeserializeOwned + Default>(&mut self, name: &'static str) -> T {
        let Some(value) = self.table.get(name) else {
            return T::default();
        };
        let file = self.file;
        if !value.is_table() {
            self.problems.push(format!(
                "{file}: `{name}` must be a section ([{name}]), found {}",
                value.type_str()
            ));
            self.failed.push(name);
            return T::default();
        }
        match T::deserialize(value.clone()) {
            Ok(v) => v,
            Err(e) => {
                // toml's message ends in "\nin `key`" when it knows the key: make it "name.key".
                let msg = e.to_string().trim().to_owned();
                let msg = match msg.rsplit_once("\nin `") {
                    Some((what, key)) => {
                        format!("{name}.{}: {}", key.trim_end_matches('`'), what.trim())
                    }
                    None => format!("[{name}] {msg}"),
                };
                self.problems.push(format!("{file}: {msg}"));
                self.failed.push(name);
                T::default()
            }
        }
    }
}

/// Applies `MINI_TORRUST_<SECTION>_<KEY>=value` overrides to the parsed table. The value is
/// read as a TOML value (`1800`, `true`, `["a", "b"]`), else taken as a string; for a key whose
/// default is a list, a plain string is split on commas.
fn apply_env(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
    problems: &mut Vec<String>,
) {
    let defaults = toml::Value::try_from(Config::default()).ok();
    let mut vars: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX) && !ENV_NOT_OVERRIDES.contains(&k.as_str()))
        .collect();
    vars.sort();
    for (var, raw) in vars {
        let rest = var[ENV_PREFIX.len()..].to_ascii_lowercase();
        let Some((sec, key)) = rest.split_once('_') else {
            problems.push(format!(
                "environment: {var} names no option (expected {ENV_PREFIX}<SECTION>_<KEY>)"
            ));
            continue;
        };
        let default = defaults
            .as_ref()
            .and_then(|d| d.get(sec))
            .and_then(|s| s.get(key));
        let Some(default) = default else {
            problems.push(format!(
                "environment: {var} is not an option (no `{key}` in [{sec}])"
            ));
            continue;
        };
        let value = match toml::from_str::<toml::Table>(&format!("v = {raw}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
        {
            Some(v) if v.same_type(default) => v,
            _ if default.is_array() => toml::Value::Array(
                raw.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| toml::Value::String(s.into()))
                    .collect(),
            ),
            _ => toml::Value::String(raw),
        };
        let entry = table
            .entry(sec.to_owned())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        match entry.as_table_mut() {
            Some(t) => {
                t.insert(key.to_owned(), value);
            }
            None => problems.push(format!(
                "environment: {var}: `{sec}` is not a section in the file"
            )),
        }
    }
}

/// Checks that the snapshot's directory exists and is writable by creating and removing a
/// probe file in it.
fn probe_writable(path: &Path) -> Result<(), String> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(format!("directory {} does not exist", dir.display()));
    }
    let probe = dir.join(format!(".mini-torrust-probe-{}", std::process::id()));
    let result = std::fs::File::create(&probe).and_then(|mut f| f.write_all(b"probe"));
    let _ = std::fs::remove_file(&probe);
    result.map_err(|e| format!("directory {} is not writable: {e}", dir.display()))
}

fn non_empty_path(s: &str) -> Option<PathBuf> {
    (!s.is_empty()).then(|| PathBuf::from(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env() -> Vec<(String, String)> {
        Vec::new()
    }

    fn value(c: &Config) -> toml::Value {
        toml::Value::try_from(c).unwrap()
    }

    #[test]
    fn shipped_file_is_exactly_the_default() {
        let shipped = Config::parse(DEFAULT_TOML, "config.toml", no_env()).unwrap();
        assert_eq!(value(&shipped), value(&Config::default()));
        // And it documents every option: each key of the default appears in the file itself.
        let file: toml::Table = toml::from_str(DEFAULT_TOML).unwrap();
        let default = value(&Config::default());
        for (sec, keys) in default.as_table().unwrap() {
            for key in keys.as_table().unwrap().keys() {
                assert!(
                    file.get(sec).and_then(|s| s.get(key)).is_some(),
                    "config.toml does not set [{sec}] {key}"
                );
            }
        }
        assert_eq!(file.len(), SECTIONS.len());
    }

    #[test]
    fn unknown_keys_name_key_and_file() {
        let e = Config::parse("[swarm]\nshard = 4\n", "/etc/mt.toml", no_env()).unwrap_err();
        assert_eq!(e.0.len(), 1, "{e}");
        assert!(
            e.0[0].contains("/etc/mt.toml") && e.0[0].contains("`shard`"),
            "{e}"
        );
        let e = Config::parse("[swarms]\nshards = 4\n", "/etc/mt.toml", no_env()).unwrap_err();
        assert!(
            e.0[0].contains("/etc/mt.toml") && e.0[0].contains("`swarms`"),
            "{e}"
        );
    }

    #[test]
    fn every_bad_section_is_listed() {
        let text = "[protocol]\ninterval = \"soon\"\n[admin]\nbind = [\"nowhere\"]\n[log]\nformat = \"xml\"\n";
        let e = Config::parse(text, "c.toml", no_env()).unwrap_err();
        assert_eq!(e.0.len(), 3, "{e}");
        assert!(e.0[0].contains("admin.bind"), "{e}");
        assert!(e.0[1].contains("protocol.interval"), "{e}");
    }

    #[test]
    fn validate_lists_every_problem_naming_the_option() {
        let mut c = Config::default();
        c.protocol.interval = 0;
        c.swarm.sweep_interval = 0;
        c.admin.token = "short".into();
        c.log.filter = "info,=[".into();
        c.snapshot.path = "/nonexistent-dir-mt/x.json".into();
        let p = c.validate();
        for opt in [
            "protocol.interval",
            "protocol.min_interval",
            "swarm.sweep_interval",
            "admin.token",
            "log.filter",
            "snapshot.path",
        ] {
            assert!(
                p.iter().any(|m| m.starts_with(opt)),
                "{opt} missing in {p:?}"
            );
        }
        let mut c = Config::default();
        c.protocol.min_interval = 2000;
        assert_eq!(c.validate().len(), 1);
    }

    #[test]
    fn env_overrides_typed_values_lists_and_strings() {
        let env = vec![
            (
                "MINI_TORRUST_PROTOCOL_INTERVAL".to_owned(),
                "600".to_owned(),
            ),
            (
                "MINI_TORRUST_HTTP_BIND".to_owned(),
                "127.0.0.1:1, [::1]:2".to_owned(),
            ),
            ("MINI_TORRUST_LOG_FILTER".to_owned(), "debug".to_owned()),
            (
                "MINI_TORRUST_SNAPSHOT_ENABLED".to_owned(),
                "false".to_owned(),
            ),
            ("MINI_TORRUST_CONFIG".to_owned(), "ignored".to_owned()),
            ("OTHER".to_owned(), "x".to_owned()),
        ];
        let c = Config::parse("[protocol]\ninterval = 1000\n", "c.toml", env).unwrap();
        assert_eq!(c.protocol.interval, 600);
        assert_eq!(c.http.bind.len(), 2);
        assert_eq!(c.log.filter, "debug");
        assert!(!c.snapshot.enabled);
        let bad = vec![("MINI_TORRUST_SWARM_NOPE".to_owned(), "1".to_owned())];
        let e = Config::parse("", "c.toml", bad).unwrap_err();
        assert!(e.0[0].contains("MINI_TORRUST_SWARM_NOPE"), "{e}");
        let bad = vec![("MINI_TORRUST_SWARM_SHARDS".to_owned(), "many".to_owned())];
        let e = Config::parse("", "c.toml", bad).unwrap_err();
        assert!(e.0[0].contains("swarm.shards"), "{e}");
    }

    #[test]
    fn printed_config_parses_back() {
        let mut c = Config::default();
        c.protocol.interval = 1234;
        let text = c.to_toml_redacted().unwrap();
        let back = Config::parse(&text, "printed", no_env()).unwrap();
        assert_eq!(value(&back), value(&c));
    }

    #[test]
    fn to_core_maps_sections() {
        let mut c = Config::default();
        c.swarm.shards = 2048;
        c.protocol.min_interval = 60;
        let core = c.to_core();
        assert_eq!(core.shards, 2048);
        assert_eq!(core.min_interval, 60);
        assert_eq!(
            Config::default().to_core(),
            tracker_core::CoreConfig::default()
        );
    }
}
