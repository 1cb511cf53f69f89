//! The documented `config.toml`, written from the config structs themselves: each section's
//! and each option's text is its doc comment (via `documented`), each value comes from a
//! [`Config`]. So an option is documented once (its field doc) and its default stated once (its
//! `Default`). The shipped `config.toml` is [`render`] of `Config::default()`, byte for byte (a
//! test checks it, and `--print-config` without a file prints it); `--print-config` with a file
//! or environment overrides prints the same text with the effective values.
//!
//! Layout: [`HEADER`], then per section a blank line, `[name]`, the section's doc as `#`
//! lines, a `#` line, and per option its doc as `#` lines followed by `key = value`.

use std::fmt::Write as _;

use documented::{Documented, DocumentedFields};
use serde::Serialize;

use super::Config;

/// The text above the first section: how the file is found and how to override it.
pub const HEADER: &str = "\
# mini-torrust configuration.
#
# Every option is listed with its documentation, its unit and its value; the shipped file holds
# the defaults, which are also built into the binary. A missing option takes its default; an
# unknown option or section is an error. `mini-torrust --check-config` validates a file and
# lists every problem; `mini-torrust --print-config` prints this file with the effective values.
#
# Where the file is read from: `--config PATH` (or MINI_TORRUST_CONFIG), else `config.toml` in
# the working directory if it exists, else the built-in defaults.
#
# Environment overrides: MINI_TORRUST_<SECTION>_<KEY> sets one option, the value written as in
# TOML or as a plain string; lists may be given comma-separated. Examples:
#   MINI_TORRUST_LOG_FILTER=debug
#   MINI_TORRUST_UDP_BIND=0.0.0.0:6969,[::]:6969
#   MINI_TORRUST_ADMIN_TOKEN=a-long-random-secret
#   MINI_TORRUST_SNAPSHOT_PATH=/var/lib/mini-torrust/mini-torrust.snapshot.json
#   MINI_TORRUST_PROTOCOL_INTERVAL=900
#
# Wildcard IPv6 addresses (\"[::]:...\") are skipped with a warning on a machine without IPv6;
# any other address that cannot be bound stops the start with an error naming the option.
";

/// `config` as a documented TOML file. Fails only if a section does not serialize to a table
/// holding exactly its documented fields (a field skipped or renamed by serde, a nested table):
/// the shipped-file test catches that when it is introduced.
pub fn render(config: &Config) -> Result<String, String> {
    let mut out = String::from(HEADER);
    section(&mut out, "udp", &config.udp)?;
    section(&mut out, "http", &config.http)?;
    section(&mut out, "https", &config.https)?;
    section(&mut out, "admin", &config.admin)?;
    section(&mut out, "protocol", &config.protocol)?;
    section(&mut out, "swarm", &config.swarm)?;
    section(&mut out, "snapshot", &config.snapshot)?;
    section(&mut out, "access", &config.access)?;
    section(&mut out, "limits", &config.limits)?;
    section(&mut out, "cluster", &config.cluster)?;
    section(&mut out, "log", &config.log)?;
    Ok(out)
}

fn section<T: Serialize + Documented + DocumentedFields>(
    out: &mut String,
    name: &str,
    value: &T,
) -> Result<(), String> {
    let table = match toml::Value::try_from(value) {
        Ok(toml::Value::Table(t)) => t,
        Ok(_) => return Err(format!("[{name}] is not a table")),
        Err(e) => return Err(format!("[{name}]: {e}")),
    };
    if table.len() != T::FIELD_NAMES.len() {
        return Err(format!(
            "[{name}] serializes {} keys but documents {} fields",
            table.len(),
            T::FIELD_NAMES.len()
        ));
    }
    let _ = writeln!(out, "\n[{name}]");
    comment(out, T::DOCS);
    out.push_str("#\n");
    for (field, doc) in T::FIELD_NAMES.iter().zip(T::FIELD_DOCS) {
        let v = table
            .get(*field)
            .ok_or_else(|| format!("[{name}] {field} is documented but not serialized"))?;
        if v.is_table() {
            return Err(format!(
                "[{name}] {field} is a table; options must be values"
            ));
        }
        comment(out, doc);
        let _ = writeln!(out, "{field} = {v}");
    }
    Ok(())
}

/// Writes `text` as `#` comment lines (an empty line as a bare `#`).
fn comment(out: &mut String, text: &str) {
    for line in text.lines() {
        match line {
            "" => out.push_str("#\n"),
            l => {
                let _ = writeln!(out, "# {l}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shipped file is the rendering of the defaults, byte for byte. To update it after
    /// changing a doc comment or a default (no `MINI_TORRUST_*` variables set):
    /// `cargo run -q -- --config /dev/null --print-config > config.toml`.
    #[test]
    fn shipped_config_toml_is_the_rendered_default() {
        let rendered = render(&Config::default()).unwrap();
        if rendered != super::super::DEFAULT_TOML {
            let first = rendered
                .lines()
                .zip(super::super::DEFAULT_TOML.lines())
                .position(|(a, b)| a != b);
            panic!(
                "config.toml differs from the rendered defaults (first differing line: {:?}); \
                 regenerate it with `cargo run -q -- --config /dev/null --print-config > config.toml`",
                first.map(|i| i + 1)
            );
        }
    }

    #[test]
    fn every_option_is_documented_without_restating_its_default() {
        let rendered = render(&Config::default()).unwrap();
        assert!(!rendered.contains("Default:"), "a doc restates a default");
        // Each option line is preceded by at least one comment line.
        let lines: Vec<&str> = rendered.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            if l.contains(" = ") && !l.starts_with('#') {
                assert!(lines[i - 1].starts_with("# "), "{l} has no documentation");
            }
        }
    }

    #[test]
    fn rendered_values_are_the_given_ones() {
        let mut c = Config::default();
        c.protocol.interval = 1234;
        c.udp.bind.clear();
        c.access.index_dir = "/srv/torrents".into();
        let text = render(&c).unwrap();
        let t: toml::Table = toml::from_str(&text).unwrap();
        assert_eq!(t["protocol"]["interval"].as_integer(), Some(1234));
        assert_eq!(t["udp"]["bind"].as_array().map(Vec::len), Some(0));
        assert_eq!(t["access"]["index_dir"].as_str(), Some("/srv/torrents"));
        let sections: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix('[')?.strip_suffix(']'))
            .collect();
        assert_eq!(sections, super::super::SECTIONS);
        assert_eq!(t.len(), sections.len());
    }
}
