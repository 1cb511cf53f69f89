//! udp end-to-end tests (in progress)
