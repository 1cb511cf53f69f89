//! `tracing` set-up: an `EnvFilter` from `[log] filter` (reloadable on SIGHUP), human or JSON
//! lines on stderr. Under systemd (`JOURNAL_STREAM` set) human lines leave out the timestamp,
//! which the journal already records; colours only when stderr is a terminal.

use std::io::IsTerminal as _;

use anyhow::Context as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Registry, fmt, reload};

use crate::config::{LogConfig, LogFormat};

/// Changes the log filter of the running process.
#[derive(Debug, Clone)]
pub struct LogControl {
    handle: reload::Handle<EnvFilter, Registry>,
}

impl LogControl {
    /// Replaces the filter; on error the old one stays.
    pub fn set_filter(&self, filter: &str) -> anyhow::Result<()> {
        let f = EnvFilter::try_new(filter)
            .with_context(|| format!("log.filter {filter:?} is not a valid filter"))?;
        self.handle.reload(f).context("replacing the log filter")
    }
}

/// Installs the global subscriber.
pub fn init(config: &LogConfig) -> anyhow::Result<LogControl> {
    let filter = EnvFilter::try_new(&config.filter)
        .with_context(|| format!("log.filter {:?} is not a valid filter", config.filter))?;
    let (filter, handle) = reload::Layer::new(filter);
    let journal = std::env::var_os("JOURNAL_STREAM").is_some();
    let ansi = std::io::stderr().is_terminal();
    let human = (config.format == LogFormat::Human && !journal)
        .then(|| fmt::layer().with_writer(std::io::stderr).with_ansi(ansi));
    let human_journal = (config.format == LogFormat::Human && journal).then(|| {
        fmt::layer()
            .with_writer(std::io::stderr)
            .without_time()
            .with_ansi(false)
    });
    let json = (config.format == LogFormat::Json)
        .then(|| fmt::layer().json().with_writer(std::io::stderr));
    tracing_subscriber::registry()
        .with(filter)
        .with(human)
        .with(human_journal)
        .with(json)
        .try_init()
        .context("installing the log subscriber")?;
    Ok(LogControl { handle })
}
