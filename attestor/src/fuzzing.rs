//! Entry points for the fuzz targets in `fuzz/` and for the corpus replay
//! test (`tests/fuzz_corpus.rs`), so both drive exactly the same code. Each
//! function feeds arbitrary bytes to one parser; the only failure is a panic.
//!
//! Not API: the workload parsers it reaches are crate-private.

use std::path::Path;

use crate::workload::process::parse_stat;
use crate::workload::selectors::systemd_unit_from_cgroup;
use crate::workload::users::{DbKind, parse_db};

/// The names of every target, matching the files in `fuzz/fuzz_targets/`.
pub const TARGETS: &[&str] = &[
    "attestor_config",
    "proc_stat",
    "cgroup",
    "name_db",
    "certificate_bundle",
];

/// Runs the target called `name` on `data`; `false` if there is no such target.
pub fn run(name: &str, data: &[u8]) -> bool {
    match name {
        "attestor_config" => attestor_config(data),
        "proc_stat" => proc_stat(data),
        "cgroup" => cgroup(data),
        "name_db" => name_db(data),
        "certificate_bundle" => certificate_bundle(data),
        _ => return false,
    }
    true
}

/// `attestor.toml`; a valid configuration also derives everything the
/// daemon derives from it.
pub fn attestor_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = crate::config::AttestorConfig::parse(text, Path::new("fuzz.toml")) {
        let _ = config.trust_domain();
        let _ = config.issuer_spiffe_id();
        let _ = config.tpm.ek_algorithm();
        let _ = config.tpm.ak_algorithm();
        let _ = config.tpm.boot_selection();
        let _ = config.tpm.release_between_operations();
    }
}

/// `/proc/<pid>/stat`.
pub fn proc_stat(data: &[u8]) {
    if let Ok(stat) = parse_stat(data) {
        let _ = stat.is_gone();
    }
}

/// `/proc/<pid>/cgroup` → systemd unit.
pub fn cgroup(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(unit) = systemd_unit_from_cgroup(text) {
        assert!(!unit.is_empty() && unit.contains('.'), "unit {unit:?}");
    }
}

/// `/etc/passwd` and `/etc/group`.
pub fn name_db(data: &[u8]) {
    for kind in [DbKind::Passwd, DbKind::Group] {
        for name in parse_db(data, kind).values() {
            assert!(!name.is_empty(), "empty name");
        }
    }
}

/// The issuer bundle file (`issuer.bundle_path`): PEM or concatenated DER.
pub fn certificate_bundle(data: &[u8]) {
    if let Ok(certs) = crate::daemon::parse_certificates(data) {
        assert!(!certs.is_empty(), "Ok with no certificate");
    }
}
