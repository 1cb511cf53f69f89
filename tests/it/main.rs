//! End-to-end tests: one test binary (builds are slow on 2 cores), one module per area.
//! Every test talks to servers on 127.0.0.1 / ::1 port 0 with real bytes on the wire (the
//! systemd module boots a container on a private network; only its first run, with no cached
//! rootfs, fetches Debian packages with debootstrap).

mod access;
mod api;
mod browser;
mod cluster;
mod cluster_keys;
mod cluster_state;
mod cluster_tls;
mod daemon;
mod harness;
mod hostile;
mod http;
mod https;
mod monitoring;
mod peer_ids;
mod redis_cluster;
mod status_page;
mod systemd;
mod udp;
