//! A stand-alone HTTP tracker for load tests: `http_server [PORT=6969] [THREADS=1|mtN] [HOST=127.0.0.1]`.
//!
//! Serves `tracker_http::serve` in the foreground on HOST:PORT with the default config, ticks the
//! coarse clock once a second, and exits on SIGTERM or Ctrl-C. THREADS = 1 runs a current-thread
//! tokio runtime (the benchmark rig pins the tracker to one CPU); more, or `mtN`, runs a
//! multi-thread one with N workers (the daemon's kind of runtime).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tracker_core::{CoreConfig, Tracker};
use tracker_http::HttpConfig;

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let port: u16 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(6969);
    // "mtN": a multi-thread runtime with N workers even for N = 1 (what the daemon runs).
    let threads_arg = args.get(2).map(String::as_str).unwrap_or("1");
    let force_mt = threads_arg.starts_with("mt");
    let threads: usize = threads_arg.trim_start_matches("mt").parse().unwrap_or(1);
    let host = args.get(3).map(String::as_str).unwrap_or("127.0.0.1");
    let addr: SocketAddr = format!("{host}:{port}")
        .parse()
        .or_else(|_| format!("[{host}]:{port}").parse())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let rt = if threads <= 1 && !force_mt {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()?
    };
    rt.block_on(async move {
        let tracker = Arc::new(Tracker::new(CoreConfig::default()));
        let ticker = Arc::clone(&tracker);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            loop {
                every.tick().await;
                ticker.clock().tick();
            }
        });
        let listener = tokio::net::TcpListener::bind(addr).await?;
        eprintln!("http_server listening on {}", listener.local_addr()?);
        let shutdown = async {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(_) => return std::future::pending().await,
                };
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        };
        tracker_http::serve(listener, tracker, Arc::new(HttpConfig::default()), shutdown).await
    })
}
