//! The service under a real systemd, installed from the `.deb`: `tests/systemd/run.sh` builds
//! it with `cargo deb`, installs it into a Debian 12 minbase rootfs (debootstrap, cached in
//! `target/systemd-test/`), boots that with `systemd-nspawn` on a private network and drives
//! the unit as an operator would (`tests/systemd/check.sh`: READY, STATUS, watchdog, reload,
//! restart, privileges, a port below 1024, stop, remove and purge).
//!
//! Needs root, `systemd-nspawn`, `debootstrap` and `cargo deb`; without them it prints
//! `skipped: <why>` ([`tool_present`]), unless `MINI_TORRUST_REQUIRE_TOOLS=1` (`.ci/run`, which
//! installs them).

use std::os::unix::fs::MetadataExt as _;
use std::process::{Command, Stdio};

use super::harness::{on_path, tool_present};

/// Why the test cannot run here, if it cannot.
fn missing() -> Option<&'static str> {
    // The owner of /proc/self is this process's effective user.
    if std::fs::metadata("/proc/self").map(|m| m.uid()).ok() != Some(0) {
        return Some("not root (systemd-nspawn and debootstrap need root)");
    }
    if !on_path("systemd-nspawn") {
        return Some("systemd-nspawn missing (apt-get install systemd-container)");
    }
    if !on_path("debootstrap") {
        return Some("debootstrap missing (apt-get install debootstrap)");
    }
    let cargo_deb = Command::new("cargo")
        .args(["deb", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    (!cargo_deb).then_some("cargo-deb missing (cargo install cargo-deb --locked)")
}

#[test]
fn the_deb_under_a_real_systemd() {
    let why = missing();
    if !tool_present(
        why.is_none(),
        &format!("the systemd test: {}", why.unwrap_or("")),
    ) {
        return;
    }
    let out = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/systemd/run.sh"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(out.status.success(), "tests/systemd/run.sh failed:\n{text}");
    assert!(text.contains(" passed, 0 failed"), "{text}");
}
