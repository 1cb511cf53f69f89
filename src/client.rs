//! CLI subcommands that talk to a running daemon's admin API (`mini-torrust torrent ...`,
//! `mini-torrust peers ...`). Address and token come from the config file (`[admin]`) or flags.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::Value;

/// Commands for a running daemon.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Manage the torrent index.
    Torrent {
        /// What to do.
        #[command(subcommand)]
        cmd: TorrentCmd,
    },
    /// List a torrent's live peers with their status.
    Peers {
        /// Info hash (40 hex characters).
        info_hash: String,
    },
}

/// `mini-torrust torrent ...`
#[derive(Debug, clap::Subcommand)]
pub enum TorrentCmd {
    /// Add a torrent from a .torrent file, or from explicit values.
    Add {
        /// A .torrent file.
        #[arg(conflicts_with_all = ["info_hash", "name", "size"], required_unless_present_all = ["info_hash", "name", "size"])]
        file: Option<PathBuf>,
        /// Info hash (40 hex characters).
        #[arg(long)]
        info_hash: Option<String>,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
        /// Size in bytes.
        #[arg(long)]
        size: Option<u64>,
    },
    /// List indexed torrents.
    List {
        /// Order: name or added.
        #[arg(long, default_value = "name")]
        sort: String,
        /// Page number (from 1).
        #[arg(long, default_value_t = 1)]
        page: usize,
        /// Entries per page.
        #[arg(long, default_value_t = 50)]
        per_page: usize,
    },
    /// Search by name (case-insensitive substring) or info-hash hex prefix.
    Search {
        /// The text to look for.
        query: String,
    },
    /// Show one torrent with its peers.
    Show {
        /// Info hash (40 hex characters).
        info_hash: String,
    },
    /// Remove a torrent from the index (its swarm stays until the peers leave).
    Remove {
        /// Info hash (40 hex characters).
        info_hash: String,
    },
}

/// Where the admin API is and how to authenticate.
#[derive(Debug, Clone)]
pub struct Target {
    /// `host:port` of the admin listener.
    pub addr: String,
    /// Bearer token.
    pub token: String,
    /// Print raw JSON instead of the human format.
    pub json: bool,
}

/// Runs a command; an `Err` is printed by `main` and exits 1.
pub async fn run(cmd: Command, target: &Target) -> anyhow::Result<()> {
    let (method, path, ctype, body) = match &cmd {
        Command::Torrent {
            cmd: TorrentCmd::Add { file: Some(f), .. },
        } => {
            let bytes = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
            (
                Method::POST,
                "/api/torrents".to_owned(),
                "application/x-bittorrent",
                bytes,
            )
        }
        Command::Torrent {
            cmd:
                TorrentCmd::Add {
                    info_hash,
                    name,
                    size,
                    ..
                },
        } => {
            let body = serde_json::json!({ "info_hash": info_hash, "name": name, "size": size });
            (
                Method::POST,
                "/api/torrents".to_owned(),
                "application/json",
                body.to_string().into_bytes(),
            )
        }
        Command::Torrent {
            cmd:
                TorrentCmd::List {
                    sort,
                    page,
                    per_page,
                },
        } => (
            Method::GET,
            format!(
                "/api/torrents?sort={}&page={page}&per_page={per_page}",
                enc(sort)
            ),
            "",
            vec![],
        ),
        Command::Torrent {
            cmd: TorrentCmd::Search { query },
        } => (
            Method::GET,
            format!("/api/torrents?q={}&per_page=1000", enc(query)),
            "",
            vec![],
        ),
        Command::Torrent {
            cmd: TorrentCmd::Show { info_hash },
        } => (
            Method::GET,
            format!("/api/torrents/{}", enc(info_hash)),
            "",
            vec![],
        ),
        Command::Torrent {
            cmd: TorrentCmd::Remove { info_hash },
        } => (
            Method::DELETE,
            format!("/api/torrents/{}", enc(info_hash)),
            "",
            vec![],
        ),
        Command::Peers { info_hash } => (
            Method::GET,
            format!("/api/peers/{}", enc(info_hash)),
            "",
            vec![],
        ),
    };
    let (status, text) = request(target, method, &path, ctype, body).await?;
    let value: Value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text.clone()))
    };
    if !(200..300).contains(&status) {
        let msg = value.get("error").and_then(Value::as_str).unwrap_or(&text);
        if status == 401 {
            bail!(
                "the admin API at {} refused the token (401): {msg}",
                target.addr
            );
        }
        bail!("{msg} ({status})");
    }
    if target.json {
        println!(
            "{}",
            if value.is_null() {
                "{}".to_owned()
            } else {
                value.to_string()
            }
        );
        return Ok(());
    }
    print!("{}", human(&cmd, &value));
    Ok(())
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

async fn request(
    target: &Target,
    method: Method,
    path: &str,
    ctype: &str,
    body: Vec<u8>,
) -> anyhow::Result<(u16, String)> {
    let work = async {
        let stream = tokio::net::TcpStream::connect(&target.addr)
            .await
            .with_context(|| {
                format!(
                    "cannot reach the admin API at http://{} (is mini-torrust running?)",
                    target.addr
                )
            })?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .context("HTTP handshake with the admin API")?;
        tokio::spawn(conn);
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", &target.addr)
            .header("authorization", format!("Bearer {}", target.token));
        if !ctype.is_empty() {
            req = req.header("content-type", ctype);
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .context("building the request")?;
        let resp = send
            .send_request(req)
            .await
            .context("sending the request to the admin API")?;
        let status = resp.status().as_u16();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .context("reading the admin API's answer")?
            .to_bytes();
        Ok::<_, anyhow::Error>((status, String::from_utf8_lossy(&bytes).into_owned()))
    };
    tokio::time::timeout(Duration::from_secs(30), work)
        .await
        .with_context(|| {
            format!(
                "the admin API at {} did not answer within 30 s",
                target.addr
            )
        })?
}

fn field<'a>(v: &'a Value, k: &str) -> &'a Value {
    v.get(k).unwrap_or(&Value::Null)
}

fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

fn torrent_block(out: &mut String, t: &Value) {
    let _ = writeln!(out, "  Name: {}", plain(field(t, "name")));
    let _ = writeln!(out, "  Info Hash: {}", plain(field(t, "info_hash")));
    if let Some(v2) = t.get("info_hash_v2") {
        let _ = writeln!(out, "  Info Hash v2 (truncated): {}", plain(v2));
    }
    let _ = writeln!(out, "  Size: {} bytes", plain(field(t, "size")));
    let _ = writeln!(out, "  Added At: {}", plain(field(t, "added_at")));
    let _ = writeln!(
        out,
        "  Seeders: {}, Leechers: {}, Downloads: {}",
        plain(field(t, "seeders")),
        plain(field(t, "leechers")),
        plain(field(t, "downloaded"))
    );
}

fn peer_lines(out: &mut String, peers: &Value) {
    let list = peers.as_array().map(Vec::as_slice).unwrap_or_default();
    if list.is_empty() {
        out.push_str("  (no live peers)\n");
    }
    for p in list {
        let ip = plain(field(p, "ip"));
        let addr = if ip.contains(':') {
            format!("[{ip}]")
        } else {
            ip
        };
        let _ = writeln!(
            out,
            "  {}  {addr}:{}  {}  expires in {} s",
            match field(p, "peer_id") {
                Value::Null => "(peer id not kept)".to_owned(),
                id => plain(id),
            },
            plain(field(p, "port")),
            plain(field(p, "status")),
            plain(field(p, "expires_in"))
        );
    }
}

fn human(cmd: &Command, v: &Value) -> String {
    let mut out = String::new();
    match cmd {
        Command::Torrent {
            cmd: TorrentCmd::Add { .. },
        } => {
            out.push_str("Added:\n");
            torrent_block(&mut out, v);
        }
        Command::Torrent {
            cmd: TorrentCmd::List { .. } | TorrentCmd::Search { .. },
        } => {
            let list = field(v, "torrents")
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default();
            out.push_str("Torrents:\n");
            if list.is_empty() {
                out.push_str("  (none)\n");
            }
            for (i, t) in list.iter().enumerate() {
                if i > 0 {
                    out.push('\n');
                }
                torrent_block(&mut out, t);
            }
            let total = field(v, "total").as_u64().unwrap_or(list.len() as u64);
            if total > list.len() as u64 {
                let _ = writeln!(
                    out,
                    "({} of {total}, page {})",
                    list.len(),
                    plain(field(v, "page"))
                );
            }
        }
        Command::Torrent {
            cmd: TorrentCmd::Show { .. },
        } => {
            out.push_str("Torrent:\n");
            torrent_block(&mut out, v);
            out.push_str("Peers:\n");
            peer_lines(&mut out, field(v, "peers"));
        }
        Command::Torrent {
            cmd: TorrentCmd::Remove { info_hash },
        } => {
            let _ = writeln!(out, "Removed {info_hash} from the index.");
        }
        Command::Peers { .. } => {
            out.push_str("Peers:\n");
            peer_lines(&mut out, v);
        }
    }
    out
}
