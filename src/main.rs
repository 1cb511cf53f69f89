//! # mini-torrust
//!
//! The daemon: command line, configuration (`config.toml`), logging, and the wiring of
//! tracker-core, the HTTP and UDP front ends, the admin listener (`/metrics`, `/health`),
//! snapshots, sweeps, signals and systemd notification.
//!
//! What does not live here: tracker rules and state (tracker-core), wire protocols
//! (tracker-http, tracker-udp). Nothing in this crate runs per request except the admin
//! listener's handlers.

mod admin;
mod api;
mod client;
mod config;
mod daemon;
mod jobs;
mod listeners;
mod logging;
mod metrics;
mod notify;
mod reload;
mod state;
mod status;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;

use crate::config::{Config, Source};

/// A fast, lean BitTorrent tracker (HTTP and UDP) that keeps its swarms across restarts.
#[derive(Debug, Parser)]
#[command(name = "mini-torrust", version, about, after_help = ENV_HELP)]
struct Cli {
    /// Config file. Default: `config.toml` in the working directory if it exists, else the
    /// built-in defaults (the shipped config.toml).
    #[arg(short, long, value_name = "PATH", env = "MINI_TORRUST_CONFIG")]
    config: Option<PathBuf>,
    /// Print the effective configuration (file plus environment overrides) as TOML and exit.
    #[arg(long, conflicts_with = "check_config")]
    print_config: bool,
    /// Validate the configuration (and load the files it names: the HTTPS certificate and key),
    /// list every problem, and exit 0 (valid) or 1 (not).
    #[arg(long)]
    check_config: bool,
    /// Send SIGHUP to the running daemon with this process id (the unit's `$MAINPID`) and
    /// exit: what `ExecReload=` runs, so that reload needs no `/bin/kill` (minimal images and
    /// containers have none). Reads no configuration.
    #[arg(long, value_name = "PID", conflicts_with_all = ["print_config", "check_config"])]
    reload_pid: Option<i32>,
    /// For subcommands: the admin listener's `host:port` (default: the first `admin.bind`).
    #[arg(
        long,
        value_name = "HOST:PORT",
        env = "MINI_TORRUST_ADMIN_ADDR",
        global = true
    )]
    admin: Option<String>,
    /// For subcommands: the bearer token (default: `admin.token` from the config).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "MINI_TORRUST_ADMIN_TOKEN",
        hide_env_values = true,
        global = true
    )]
    token: Option<String>,
    /// For subcommands: print the API's JSON instead of the human format.
    #[arg(long, global = true)]
    json: bool,
    /// Talk to a running daemon's admin API instead of starting one.
    #[command(subcommand)]
    command: Option<client::Command>,
}

const ENV_HELP: &str = "\
Environment:
  MINI_TORRUST_CONFIG            config file (like --config)
  MINI_TORRUST_<SECTION>_<KEY>   overrides one option, e.g. MINI_TORRUST_LOG_FILTER=debug,
                                 MINI_TORRUST_UDP_BIND=0.0.0.0:6969,[::]:6969,
                                 MINI_TORRUST_ADMIN_TOKEN=..., MINI_TORRUST_SNAPSHOT_PATH=...
  NOTIFY_SOCKET, WATCHDOG_USEC   set by systemd (Type=notify, WatchdogSec=)

Signals: SIGHUP reloads the log filter, the access list files and index_dir; SIGTERM and
SIGINT write a final snapshot and exit 0 (1 if that snapshot could not be written).";

/// The process environment as UTF-8 pairs (others are not overrides and are skipped).
pub(crate) fn env_vars() -> impl Iterator<Item = (String, String)> {
    std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(pid) = cli.reload_pid {
        return match notify::send_sighup(pid) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("mini-torrust: cannot signal process {pid}: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let source = match cli.config {
        Some(p) => Source::File(p),
        None if Path::new("config.toml").is_file() => Source::File(PathBuf::from("config.toml")),
        None => Source::Embedded,
    };
    let config = match Config::load(&source, env_vars()) {
        Ok(c) => c,
        Err(problems) => return invalid(&source, &problems.0),
    };
    if let Some(cmd) = cli.command {
        return run_client(cmd, &config, cli.admin, cli.token, cli.json);
    }
    if cli.check_config {
        let problems = config.check_files();
        if !problems.is_empty() {
            return invalid(&source, &problems);
        }
        println!("{source}: configuration OK");
        return ExitCode::SUCCESS;
    }
    if cli.print_config {
        return match config.to_toml_redacted() {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("mini-torrust: cannot print the configuration: {e}");
                ExitCode::FAILURE
            }
        };
    }
    match run(config, source) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mini-torrust: error: {e:#}");

            ExitCode::FAILURE
        }
    }
}

/// Lists the problems of an invalid configuration on stderr.
fn invalid(source: &Source, problems: &[String]) -> ExitCode {
    eprintln!(
        "mini-torrust: invalid configuration ({source}), {} problem(s):",
        problems.len()
    );
    for p in problems {
        eprintln!("  - {p}");
    }
    ExitCode::FAILURE
}

fn run_client(
    cmd: client::Command,
    config: &Config,
    admin: Option<String>,
    token: Option<String>,
    json: bool,
) -> ExitCode {
    let addr = admin.or_else(|| config.admin.bind.first().map(|a| a.to_string()));
    let Some(addr) = addr else {
        eprintln!("mini-torrust: no admin address: admin.bind is empty; pass --admin HOST:PORT");
        return ExitCode::FAILURE;
    };
    let target = client::Target {
        addr,
        token: token.unwrap_or_else(|| config.admin.token.clone()),
        json,
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mini-torrust: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(client::run(cmd, &target)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mini-torrust: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(config: Config, source: Source) -> anyhow::Result<()> {
    let log = logging::init(&config.log)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("mini-torrust")
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(daemon::run(config, source, log));
    // Do not wait for stragglers (a connection mid-request) beyond this.
    runtime.shutdown_timeout(std::time::Duration::from_secs(2));
    result
}
