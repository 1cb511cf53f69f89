//! End-to-end tests: one test binary (builds are slow on 2 cores), one module per area.
//! Every test talks to servers on 127.0.0.1 / ::1 port 0 with real bytes on the wire.

mod access;
mod api;
mod daemon;
mod harness;
mod hostile;
mod http;
mod https;
mod monitoring;
mod peer_ids;
mod udp;
