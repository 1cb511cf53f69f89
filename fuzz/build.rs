//! Turns on the `HeadScanner` checks of the http_query target once tracker-http exports a
//! `head` module (another change adds it): `cfg(has_head_scanner)`.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(has_head_scanner)");
    let lib = "../crates/tracker-http/src/lib.rs";
    println!("cargo::rerun-if-changed={lib}");
    let src = std::fs::read_to_string(lib).unwrap_or_default();
    if src.lines().any(|l| l.trim_start().starts_with("pub mod head;")) {
        println!("cargo::rustc-cfg=has_head_scanner");
    }
}
