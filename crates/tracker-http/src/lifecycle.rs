//! [`HttpServer`]: the HTTP tracker on a set of bound listeners, plain and TLS, with the UDP
//! tracker's lifecycle: bound sockets in ([`HttpServer::start`], [`HttpServer::start_with_tls`]),
//! [`HttpServer::local_addrs`] / [`HttpServer::tls_addrs`], [`HttpServer::stop`] (or a
//! [`HttpStopper`] kept aside), [`HttpServer::join`]. Each listener is one [`crate::serve`] (or
//! [`crate::serve_tls`]) task; what a connection sees is all in `server.rs` and `guard.rs`.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracker_core::Tracker;

use crate::config::HttpConfig;
use crate::handler::Handler;
use crate::tls::TlsCerts;

/// Tells an [`HttpServer`] to stop: its listeners stop accepting and their connections get
/// `shutdown_timeout_ms` to finish. Cheap to clone and to keep after the server moved into
/// whatever joins it.
#[derive(Debug, Clone)]
pub struct HttpStopper(Arc<watch::Sender<bool>>);

impl HttpStopper {
    /// Asks every listener to stop.
    pub fn stop(&self) {
        self.0.send_replace(true);
    }
}

/// HTTPS listeners (already bound) and the certificate they serve.
#[derive(Debug)]
pub struct TlsListeners {
    /// The bound listeners.
    pub listeners: Vec<TcpListener>,
    /// The certificate, shared by every listener; reloading it reaches them all.
    pub certs: Arc<TlsCerts>,
}

/// A running HTTP tracker: one serve task per bound listener.
#[derive(Debug)]
pub struct HttpServer {
    addrs: Vec<SocketAddr>,
    tls_addrs: Vec<SocketAddr>,
    stop: HttpStopper,
    tasks: JoinSet<io::Result<()>>,
}

impl HttpServer {
    /// Validates `config` and serves every listener (already bound by the caller, so a bind
    /// failure is the caller's to name) on the current tokio runtime. `InvalidInput` if the
    /// config does not validate; nothing is started then.
    /// `full_scrape_token` is what `full_scrape = "token"` asks for (the admin token; "" refuses
    /// every full scrape in that mode). All listeners share one handler, so one counter block.
    pub fn start(
        listeners: Vec<TcpListener>,
        tracker: Arc<Tracker>,
        config: Arc<HttpConfig>,
        full_scrape_token: &str,
    ) -> io::Result<HttpServer> {
        Self::start_with_tls(listeners, None, tracker, config, full_scrape_token)
    }

    /// [`HttpServer::start`] with HTTPS listeners too: the same handler (so the same counters)
    /// and limits, each listener with its own connection slots.
    pub fn start_with_tls(
        listeners: Vec<TcpListener>,
        tls: Option<TlsListeners>,
        tracker: Arc<Tracker>,
        config: Arc<HttpConfig>,
        full_scrape_token: &str,
    ) -> io::Result<HttpServer> {
        config
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let addrs_of = |ls: &[TcpListener]| {
            ls.iter()
                .map(TcpListener::local_addr)
                .collect::<io::Result<Vec<_>>>()
        };
        let addrs = addrs_of(&listeners)?;
        let tls_addrs = match &tls {
            Some(t) => addrs_of(&t.listeners)?,
            None => Vec::new(),
        };
        let handler =
            Arc::new(Handler::new(tracker, config).with_full_scrape_token(full_scrape_token));
        let (tx, rx) = watch::channel(false);
        let stopped = || {
            let mut rx = rx.clone();
            async move {
                let _ = rx.wait_for(|s| *s).await;
            }
        };
        let mut tasks = JoinSet::new();
        for listener in listeners {
            tasks.spawn(crate::serve_handler(
                listener,
                Arc::clone(&handler),
                stopped(),
            ));
        }
        if let Some(t) = tls {
            for listener in t.listeners {
                tasks.spawn(crate::serve_tls(
                    listener,
                    Arc::clone(&handler),
                    Arc::clone(&t.certs),
                    stopped(),
                ));
            }
        }
        Ok(HttpServer {
            addrs,
            tls_addrs,
            stop: HttpStopper(Arc::new(tx)),
            tasks,
        })
    }

    /// The plain HTTP addresses served, in the order of the listeners given.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.addrs.clone()
    }

    /// The HTTPS addresses served, in the order of the listeners given.
    pub fn tls_addrs(&self) -> Vec<SocketAddr> {
        self.tls_addrs.clone()
    }

    /// Asks every listener to stop; [`HttpServer::join`] then returns once their connections
    /// are done or their grace period is over.
    pub fn stop(&self) {
        self.stop.stop();
    }

    /// A handle that stops this server, for whoever keeps it after the server moved into a
    /// joining task.
    pub fn stopper(&self) -> HttpStopper {
        self.stop.clone()
    }

    /// Waits for every listener. Returns the first failure (an I/O error or a panic); a
    /// listener that fails stops the others, so this returns soon after any failure, not only
    /// after [`HttpServer::stop`].
    pub async fn join(mut self) -> io::Result<()> {
        let mut first = None;
        while let Some(done) = self.tasks.join_next().await {
            let err = match done {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e),
                Err(e) => Some(io::Error::other(format!(
                    "an HTTP listener task failed: {e}"
                ))),
            };
            if let Some(e) = err {
                self.stop.stop();
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tracker_core::CoreConfig;

    #[tokio::test]
    async fn serves_every_listener_until_stopped_then_joins() {
        let tracker = Arc::new(Tracker::new(CoreConfig::default()));
        let a = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let b = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let want = vec![a.local_addr().unwrap(), b.local_addr().unwrap()];
        let server =
            HttpServer::start(vec![a, b], tracker, Arc::new(HttpConfig::default()), "").unwrap();
        assert_eq!(server.local_addrs(), want);
        for addr in &want {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(b"GET /scrape HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
                .await
                .unwrap();
            let mut reply = Vec::new();
            s.read_to_end(&mut reply).await.unwrap();
            let reply = String::from_utf8_lossy(&reply);
            assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
            assert!(reply.contains("failure reason"), "{reply}");
        }
        let stopper = server.stopper();
        let joined = tokio::spawn(server.join());
        stopper.stop();
        tokio::time::timeout(std::time::Duration::from_secs(10), joined)
            .await
            .expect("join returns after stop")
            .unwrap()
            .unwrap();
        for addr in &want {
            assert!(tokio::net::TcpStream::connect(addr).await.is_err());
        }
    }

    #[tokio::test]
    async fn an_invalid_config_starts_nothing() {
        let tracker = Arc::new(Tracker::new(CoreConfig::default()));
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let config = HttpConfig {
            max_connections: 0,
            ..HttpConfig::default()
        };
        let err = HttpServer::start(vec![l], tracker, Arc::new(config), "").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
