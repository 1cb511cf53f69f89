//! SIGHUP: what a reload re-reads and applies without a restart (the log filter, the access
//! list files, the index directory, the client allow and deny lists, the HTTPS certificate),
//! and what it only names as needing one.

use std::sync::Arc;
use std::time::Instant;

use tracker_core::Tracker;
use tracker_http::TlsCerts;

use crate::config::{Config, Source};
use crate::jobs::status_line;
use crate::logging::LogControl;
use crate::notify::{self, Notifier};

/// SIGHUP: re-reads the config file; applies the log filter, re-reads the access list files
/// and syncs the index directory, re-reads the HTTPS certificate (`tls`, when HTTPS listens);
/// names settings that need a restart. Swarms and open connections are untouched.
pub(crate) async fn reload(
    running: &mut Config,
    source: &Source,
    log: &LogControl,
    notifier: Option<&Notifier>,
    tracker: &Arc<Tracker>,
    tls: Option<&Arc<TlsCerts>>,
) {
    let t0 = Instant::now();
    notify::notify(notifier, "RELOADING=1\nSTATUS=reloading");
    let src = source.clone();
    let loaded = tokio::task::spawn_blocking(move || Config::load(&src, crate::env_vars())).await;
    match loaded {
        Ok(Ok(new)) => {
            let mut applied = Vec::new();
            if new.log.filter != running.log.filter {
                match log.set_filter(&new.log.filter) {
                    Ok(()) => {
                        applied.push("log.filter");
                        running.log.filter = new.log.filter.clone();
                    }
                    Err(e) => {
                        tracing::error!(error = %format!("{e:#}"), "reload: log filter not changed")
                    }
                }
            }
            // Client filters: the config's prefixes replaced (the file was validated).
            let (allow, deny) = (&new.access.client_allow, &new.access.client_deny);
            if *allow != running.access.client_allow || *deny != running.access.client_deny {
                tracker.access().clients().set_config(allow, deny);
                running.access.client_allow = allow.clone();
                running.access.client_deny = deny.clone();
                applied.push("access.client_allow/client_deny");
            }
            // Access list files: re-read; on error the old lists stay.
            let t = Arc::clone(tracker);
            match tokio::task::spawn_blocking(move || t.reload_files()).await {
                Ok(Ok(r)) => {
                    if r.allow_file_entries + r.deny_file_entries > 0 {
                        applied.push("access lists");
                    }
                    if r.index_added + r.index_removed > 0 {
                        applied.push("index directory");
                        tracing::info!(
                            added = r.index_added,
                            removed = r.index_removed,
                            "reload: index directory synced"
                        );
                    }
                    for e in &r.index_errors {
                        tracing::warn!(error = %e, "reload: index directory file skipped");
                    }
                }
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "reload: access lists not changed")
                }
                Err(e) => tracing::error!(error = %e, "reload: access list task failed"),
            }
            if let Some(certs) = tls {
                if reload_cert(certs, &new.https).await {
                    applied.push("https certificate");
                    running.https.cert_file = new.https.cert_file.clone();
                    running.https.key_file = new.https.key_file.clone();
                }
            }
            let restart: Vec<&str> = crate::config::SECTIONS
                .iter()
                .copied()
                .filter(|s| {
                    let mut a = running.section_value(s);
                    let mut b = new.section_value(s);
                    // Applied live above; the rest of these sections needs a restart.
                    let live: &[&str] = match *s {
                        "log" => &["filter"],
                        "access" => &["client_allow", "client_deny"],
                        "https" => &["cert_file", "key_file"],
                        _ => &[],
                    };
                    for v in [&mut a, &mut b].into_iter().flatten() {
                        if let Some(t) = v.as_table_mut() {
                            for k in live {
                                t.remove(*k);
                            }
                        }
                    }
                    a != b
                })
                .collect();
            if !restart.is_empty() {
                tracing::warn!(sections = ?restart, "reload: these sections changed and take effect only after a restart");
            }
            tracing::info!(config = %source, applied = ?applied, ms = t0.elapsed().as_millis() as u64, "config reloaded");
        }
        Ok(Err(problems)) => {
            tracing::error!(config = %source, problems = %problems, "reload refused: keeping the running config");
        }
        Err(e) => tracing::error!(error = %e, "reload task failed"),
    }
    let line = status_line(tracker, None).await;
    notify::notify(notifier, &format!("READY=1\nSTATUS={line}"));
}

/// Re-reads the certificate and key `https` names; true if they replaced the served ones. On an
/// error, one line names the file and the reason, and the old certificate stays.
async fn reload_cert(certs: &Arc<TlsCerts>, https: &tracker_http::HttpsConfig) -> bool {
    let (c, cert, key) = (
        Arc::clone(certs),
        https.cert_file.clone(),
        https.key_file.clone(),
    );
    match tokio::task::spawn_blocking(move || c.reload(&cert, &key)).await {
        Ok(Ok(chain)) => {
            tracing::info!(
                cert_file = %https.cert_file.display(),
                key_file = %https.key_file.display(),
                chain,
                "reload: HTTPS certificate replaced; new connections get it"
            );
            true
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "reload: HTTPS certificate refused, still serving the previous one");
            false
        }
        Err(e) => {
            tracing::error!(error = %e, "reload: HTTPS certificate task failed");
            false
        }
    }
}
