//! The daemon's configuration: `config.toml` sections, environment overrides, validation.
//!
//! `[udp]`, `[http]` and `[https]` are the protocol crates' own structs embedded as-is; the other
//! sections are defined here. Every struct is `#[serde(default, deny_unknown_fields)]`: a
//! missing key takes its default, an unknown key is an error naming the key and the file.
//!
//! The shipped `config.toml` at the repository root is written from these structs' doc comments
//! and defaults ([`template`]); a test keeps it equal to that output byte for byte. It is
//! embedded in the binary ([`DEFAULT_TOML`]).

use std::fmt;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use documented::{Documented, DocumentedFields};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub mod template;

/// The shipped `config.toml`, embedded: what runs when no file is given.
pub const DEFAULT_TOML: &str = include_str!("../../config.toml");

/// Prefix of the environment overrides: `MINI_TORRUST_<SECTION>_<KEY>`.
pub const ENV_PREFIX: &str = "MINI_TORRUST_";

/// Environment variables with the prefix that are not config overrides.
const ENV_NOT_OVERRIDES: &[&str] = &["MINI_TORRUST_CONFIG"];

/// The section names, in file order: [`Config`]'s fields.
pub const SECTIONS: &[&str] = <Config as DocumentedFields>::FIELD_NAMES;

/// The whole configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize, DocumentedFields)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `[udp]`: the UDP tracker (BEP 15).
    pub udp: tracker_udp::UdpConfig,
    /// `[http]`: the HTTP tracker.
    pub http: tracker_http::HttpConfig,
    /// `[https]`: the HTTP tracker over TLS.
    pub https: tracker_http::HttpsConfig,
    /// `[admin]`: the admin listener (metrics, health, API).
    pub admin: AdminConfig,
    /// `[protocol]`: what clients are told (tracker-core's own struct).
    pub protocol: tracker_core::ProtocolConfig,
    /// `[swarm]`: the swarm store (tracker-core's own struct).
    pub swarm: tracker_core::SwarmConfig,
    /// `[snapshot]`: state kept across restarts.
    pub snapshot: SnapshotConfig,
    /// `[access]`: who may use the tracker (tracker-core's own struct).
    pub access: tracker_core::AccessConfig,
    /// `[limits]`: per-address request rates and bans (tracker-core's own struct).
    pub limits: tracker_core::LimitsConfig,
    /// `[cluster]`: several nodes sharing swarms through Redis (tracker-cluster's own struct).
    pub cluster: tracker_cluster::ClusterConfig,
    /// `[log]`: logging.
    pub log: LogConfig,
}

/// The admin listener: GET / (the status page), GET /metrics (Prometheus), GET /health and
/// the /api/* of the torrent index, access lists and passkeys. Keep it on loopback or a
/// private network.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Documented, DocumentedFields)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Addresses of the admin listener. An empty list disables it.
    pub bind: Vec<SocketAddr>,
    /// Bearer token for `/api/*` (at least 16 characters). Empty: `/api/*` is disabled; `/metrics`,
    /// `/health` and the status page never need it, except for the status page's top 20 in
    /// private mode. Prefer MINI_TORRUST_ADMIN_TOKEN to writing it here.
    pub token: String,
    /// Seconds between the status page's samples, 1 to 60: its request charts show one point
    /// per sample over the last hour (a ring of 3600 / this many samples, allocated at start),
    /// and its torrent, peer and top-20 figures are counted once per sample.
    pub status_sample_secs: u32,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            bind: vec![SocketAddr::from(([127, 0, 0, 1], 7070))],
            token: String::new(),
            status_sample_secs: 10,
        }
    }
}

impl fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminConfig")
            .field("bind", &self.bind)
            .field("token", &tracker_core::config::redacted(&self.token))
            .field("status_sample_secs", &self.status_sample_secs)
            .finish()
    }
}

/// The state file written periodically and at shutdown and read at start, so that swarms, the
/// torrent index, passkeys and the connection-id key survive restarts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Documented, DocumentedFields)]
#[serde(default, deny_unknown_fields)]
pub struct SnapshotConfig {
    /// Load the snapshot at start and write it periodically and at shutdown.
    pub enabled: bool,
    /// The snapshot file; a relative path is relative to the working directory (the systemd
    /// unit's `StateDirectory`, /var/lib/mini-torrust). Its directory must be writable.
    pub path: PathBuf,
    /// Seconds between periodic snapshots.
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

/// Logging to stderr (the journal under systemd).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Documented, DocumentedFields)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// Log filter in `RUST_LOG` syntax, e.g. `"info"` or `"info,tracker_udp=debug"`. Reloaded
    /// on SIGHUP.
    pub filter: String,
    /// Log line format: `"human"` (one readable line per event) or `"json"` (one JSON object
    /// per line).
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
            https: s.get("https"),
            admin: s.get("admin"),
            protocol: s.get("protocol"),
            swarm: s.get("swarm"),
            snapshot: s.get("snapshot"),
            access: s.get("access"),
            limits: s.get("limits"),
            cluster: s.get("cluster"),
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
        p.extend(self.https.validate().err().map(|e| e.to_string()));
        p.extend(self.to_core().validate());
        if self.http.full_scrape != tracker_http::FullScrape::Off && self.access.private {
            p.push(
                "http.full_scrape must be \"off\" when access.private is true (a private tracker refuses full scrapes)"
                    .into(),
            );
        }
        if self.http.full_scrape == tracker_http::FullScrape::Token && self.admin.token.is_empty() {
            p.push(
                "http.full_scrape = \"token\" needs admin.token (the bearer token it asks for)"
                    .into(),
            );
        }
        p.extend(self.cluster.validate().err().map(|e| e.to_string()));
        let tok = &self.admin.token;
        if !tok.is_empty()
            && (tok.len() < 16 || tok.chars().any(|c| c.is_whitespace() || c.is_control()))
        {
            p.push("admin.token must be empty (API disabled) or at least 16 characters without whitespace".into());
        }
        if !(1..=60).contains(&self.admin.status_sample_secs) {
            p.push("admin.status_sample_secs must be 1 to 60".into());
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.filter) {
            p.push(format!(
                "log.filter ({:?}) is not a valid filter: {e}",
                self.log.filter
            ));
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

    /// What [`Config::validate`] leaves to the start: whether the files the config names load
    /// (the `[https]` certificate and key, when `https.bind` is set). `--check-config` runs it;
    /// a reload does not (a bad certificate file is refused alone, the rest reloads).
    pub fn check_files(&self) -> Vec<String> {
        let h = &self.https;
        if h.bind.is_empty() {
            return Vec::new();
        }
        match tracker_http::tls::load_certified_key(&h.cert_file, &h.key_file) {
            Ok(_) => Vec::new(),
            Err(e) => vec![format!("https.cert_file/key_file: {e}")],
        }
    }

    /// The tracker-core settings: its four sections as they are.
    pub fn to_core(&self) -> tracker_core::CoreConfig {
        tracker_core::CoreConfig {
            protocol: self.protocol.clone(),
            swarm: self.swarm.clone(),
            access: self.access.clone(),
            limits: self.limits.clone(),
        }
    }

    /// The effective config as the documented TOML file ([`template::render`]), with a
    /// non-empty admin token and passkey secret replaced by `<redacted>`.
    pub fn to_toml_redacted(&self) -> Result<String, String> {
        let mut c = self.clone();
        if !c.admin.token.is_empty() {
            c.admin.token = "<redacted>".into();
        }
        if !c.access.passkey_secret.is_empty() {
            c.access.passkey_secret = "<redacted>".into();
        }
        if c.cluster.redis_url.contains('@') {
            c.cluster.redis_url = "<redacted>".into();
        }
        template::render(&c)
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
        c.admin.status_sample_secs = 61;
        c.log.filter = "info,=[".into();
        c.snapshot.path = "/nonexistent-dir-mt/x.json".into();
        let p = c.validate();
        for opt in [
            "protocol.interval",
            "protocol.min_interval",
            "swarm.sweep_interval",
            "admin.token",
            "admin.status_sample_secs",
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
        let mut c = Config::default();
        c.http.full_scrape = tracker_http::FullScrape::Token;
        let p = c.validate();
        assert!(
            p.len() == 1 && p[0].starts_with("http.full_scrape"),
            "{p:?}"
        );
        c.admin.token = "a-token-of-16-characters".into();
        assert_eq!(c.validate(), Vec::<String>::new());
        c.access.private = true;
        let p = c.validate();
        assert!(p.len() == 1 && p[0].contains("access.private"), "{p:?}");
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
    fn printed_config_hides_a_redis_password_and_checks_the_cluster_section() {
        let mut c = Config::default();
        c.cluster.redis_url = "redis://:s3cret@10.0.0.5:6379/0".into();
        let text = c.to_toml_redacted().unwrap();
        assert!(!text.contains("s3cret"), "{text}");
        assert!(text.contains("redis_url = \"<redacted>\""), "{text}");
        let bad = "[cluster]\nredis_url = \"http://x\"\n";
        let c = Config::parse(bad, "c.toml", no_env()).unwrap();
        assert!(
            c.validate().iter().any(|p| p.contains("cluster.redis_url")),
            "{:?}",
            c.validate()
        );
    }

    #[test]
    fn to_core_maps_sections() {
        let mut c = Config::default();
        c.swarm.shards = 2048;
        c.protocol.min_interval = 60;
        let core = c.to_core();
        assert_eq!(core.swarm.shards, 2048);
        assert_eq!(core.protocol.min_interval, 60);
        assert_eq!(
            Config::default().to_core(),
            tracker_core::CoreConfig::default()
        );
    }
}
