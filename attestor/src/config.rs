//! Attestor configuration (the TPM part; the daemon's sections join it later).

use std::path::PathBuf;

use serde::Deserialize;

use crate::eventlog::{DEFAULT_EVENT_LOG_PATH, DEFAULT_MAX_EVENT_LOG_BYTES};
use crate::tpm::DEFAULT_TCTI;

/// `[tpm]` in `attestor.toml`. Unknown keys are refused.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TpmConfig {
    /// TCTI string, e.g. `device:/dev/tpmrm0` or `swtpm:host=127.0.0.1,port=2321`.
    pub tcti: String,
    /// EK type: `rsa2048`, `ecc-p256`, `ecc-p384`, or unset for the first one
    /// whose certificate is provisioned.
    pub ek_algorithm: Option<String>,
    /// AK type: `ecc-p256` (default) or `rsa2048`.
    pub ak_algorithm: String,
    /// Boot PCRs (SHA-256) the node key and the sealed cache key are bound to.
    pub boot_pcrs: Vec<u8>,
    /// Path of the TCG event log.
    pub event_log_path: PathBuf,
    /// Largest event log accepted, in bytes.
    pub max_event_log_bytes: u64,
}

impl Default for TpmConfig {
    fn default() -> Self {
        Self {
            tcti: DEFAULT_TCTI.to_owned(),
            ek_algorithm: None,
            ak_algorithm: "ecc-p256".to_owned(),
            boot_pcrs: vec![0, 2, 4, 7],
            event_log_path: PathBuf::from(DEFAULT_EVENT_LOG_PATH),
            max_event_log_bytes: DEFAULT_MAX_EVENT_LOG_BYTES,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_section_gives_defaults() {
        let config: TpmConfig = toml::from_str("").unwrap();
        assert_eq!(config, TpmConfig::default());
        assert_eq!(config.tcti, "device:/dev/tpmrm0");
    }

    #[test]
    fn unknown_key_is_refused_by_name() {
        let err = toml::from_str::<TpmConfig>("tcit = \"x\"").unwrap_err();
        assert!(err.to_string().contains("tcit"), "{err}");
    }
}
