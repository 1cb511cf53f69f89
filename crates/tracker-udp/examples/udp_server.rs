//! A bare UDP tracker for benchmarks: `udp_server PORT [WORKERS] [HOST]`.
//!
//! Serves BEP 15 on HOST:PORT (default 127.0.0.1) with WORKERS workers (default: available
//! cores) and default settings, ticks the coarse clock once a second, sweeps once a minute, and
//! runs in the foreground until killed (SIGTERM's default action ends it).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tracker_core::{CoreConfig, Tracker};
use tracker_udp::{UdpConfig, UdpServer, UdpSockets};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args
        .next()
        .ok_or("usage: udp_server PORT [WORKERS] [HOST]")?
        .parse()?;
    let workers: usize = args.next().map(|w| w.parse()).transpose()?.unwrap_or(0);
    let host: IpAddr = args
        .next()
        .map(|h| h.parse())
        .transpose()?
        .unwrap_or([127, 0, 0, 1].into());
    let tracker = Arc::new(Tracker::new(CoreConfig::default()));
    let config = UdpConfig {
        bind: vec![SocketAddr::new(host, port)],
        workers,
        ..UdpConfig::default()
    };
    let sockets = UdpSockets::bind(&config)?;
    let server = UdpServer::start(Arc::clone(&tracker), &config, rand::random(), sockets)?;
    eprintln!("udp_server on {:?}", server.local_addrs());
    let ticker = Arc::clone(&tracker);
    std::thread::spawn(move || {
        let mut secs = 0u64;
        loop {
            std::thread::sleep(Duration::from_secs(1));
            ticker.clock().tick();
            secs += 1;
            if secs % 60 == 0 {
                ticker.sweep(ticker.clock().now());
            }
        }
    });
    server.join()?;
    Ok(())
}
