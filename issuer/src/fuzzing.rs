//! Entry points for the fuzz targets in `fuzz/` and for the corpus replay
//! test, so both drive exactly the same code. Each function feeds arbitrary
//! bytes to one parser; the only failure is a panic.

use crate::eventlog::{EventLog, EventLogLimits};
use crate::tpm::{PcrSelection, TpmsAttest, TpmtPublic, TpmtSignature};

/// The names of every target, matching the files in `fuzz/fuzz_targets/`.
pub const TARGETS: &[&str] = &[
    "tpmt_public",
    "tpms_attest",
    "tpmt_signature",
    "pcr_selection",
    "event_log",
    "pcr_file",
    "public_key_file",
    "credential_file",
    "ek_certificate",
    "node_policy",
    "spiffe_id",
    "workload_key",
    "csr",
    "issuer_config",
];

/// Runs the target called `name` on `data`; `false` if there is no such target.
pub fn run(name: &str, data: &[u8]) -> bool {
    match name {
        "tpmt_public" => tpmt_public(data),
        "tpms_attest" => tpms_attest(data),
        "tpmt_signature" => tpmt_signature(data),
        "pcr_selection" => pcr_selection(data),
        "event_log" => event_log(data),
        "pcr_file" => pcr_file(data),
        "public_key_file" => public_key_file(data),
        "credential_file" => credential_file(data),
        "ek_certificate" => ek_certificate(data),
        "node_policy" => node_policy(data),
        "spiffe_id" => spiffe_id(data),
        "workload_key" => workload_key(data),
        "csr" => csr(data),
        "issuer_config" => issuer_config(data),
        _ => return false,
    }
    true
}

/// TPM2B_PUBLIC and TPMT_PUBLIC; a parsed key also computes its name and point.
pub fn tpmt_public(data: &[u8]) {
    for public in [TpmtPublic::from_tpm2b(data), TpmtPublic::from_tpmt(data)]
        .into_iter()
        .flatten()
    {
        let _ = public.name();
        let _ = public.ecc_point();
        let _ = crate::ak::check_ak(&public);
    }
}

/// TPMS_ATTEST.
pub fn tpms_attest(data: &[u8]) {
    if let Ok(attest) = TpmsAttest::from_bytes(data)
        && let crate::tpm::AttestBody::Quote { selection, .. } = attest.body
    {
        let _ = selection.to_tpm2_tools_string();
    }
}

/// TPMT_SIGNATURE.
pub fn tpmt_signature(data: &[u8]) {
    let _ = TpmtSignature::from_bytes(data);
}

/// TPML_PCR_SELECTION.
pub fn pcr_selection(data: &[u8]) {
    let _ = PcrSelection::from_bytes(data);
}

/// TCG event logs, then replay and the typed views.
pub fn event_log(data: &[u8]) {
    if let Ok(log) = EventLog::parse(data, &EventLogLimits::default()) {
        let replay = log.replay();
        let _ = log.check_quote(&replay);
        let _ = log.secure_boot();
        let _ = log.boot_applications();
        let _ = log.ipl_strings();
        let _ = log.efi_variables();
        let _ = crate::policy::policy_from_event_log("fuzz", &log);
    }
}

/// tpm2-tools PCR files: byte 0 is the length N of a TPML_PCR_SELECTION in
/// bytes 1..=N, the rest is the file.
pub fn pcr_file(data: &[u8]) {
    let Some((&len, rest)) = data.split_first() else {
        return;
    };
    let split = usize::from(len % 64).min(rest.len());
    let (selection, file) = rest.split_at(split);
    let selection = PcrSelection::from_bytes(selection).unwrap_or_default();
    let _ = crate::tpm2_tools::parse_pcr_file(file, &selection);
}

/// Public key files as `quote verify` / `credential make` read them.
pub fn public_key_file(data: &[u8]) {
    let _ = crate::tpm2_tools::load_public(data, "fuzz", crate::tpm2_tools::PemTemplate::Ek);
    let _ = crate::tpm2_tools::load_public(data, "fuzz", crate::tpm2_tools::PemTemplate::Signing);
}

/// tpm2-tools credential files.
pub fn credential_file(data: &[u8]) {
    let _ = crate::credential::MadeCredential::from_tpm2_tools_file(data);
}

/// EK certificates (DER) through the trust check with an empty root store.
pub fn ek_certificate(data: &[u8]) {
    crate::ek::fuzz_certificate(data);
}

/// Node policy TOML.
pub fn node_policy(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(config) = toml::from_str::<crate::policy::NodePolicyConfig>(text)
    {
        let _ = crate::policy::NodePolicy::compile(&config);
    }
}

/// SPIFFE IDs and trust domains.
pub fn spiffe_id(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(id) = rootmark_sdk::id::SpiffeId::parse(text) {
            let _ = id.trust_domain().id();
            let _ = id.segments().count();
        }
        let _ = rootmark_sdk::id::TrustDomain::parse(text);
    }
}

/// Workload public keys (SubjectPublicKeyInfo DER) the attestor sends for signing.
pub fn workload_key(data: &[u8]) {
    let _ = crate::ca::WorkloadKey::from_spki_der(data);
}

/// PKCS#10 certificate requests.
pub fn csr(data: &[u8]) {
    let _ = crate::ca::verify_csr(data);
}

/// `issuer.toml`.
pub fn issuer_config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::config::IssuerConfig::parse(text, std::path::Path::new("fuzz.toml"));
    }
}
