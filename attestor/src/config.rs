//! `attestor.toml`: defaults that work out of the box, unknown keys refused
//! by name.

use std::path::{Path, PathBuf};

use rootmark_sdk::{SpiffeId, TrustDomain};
use serde::Deserialize;

use crate::eventlog::{DEFAULT_EVENT_LOG_PATH, DEFAULT_MAX_EVENT_LOG_BYTES};
use crate::tpm::{AkAlgorithm, DEFAULT_TCTI, EkAlgorithm, PcrBank, PcrSelection};

/// The environment variable the attestor's commands read when `--config` is absent.
pub const ATTESTOR_CONFIG_ENV: &str = "ROOTMARK_ATTESTOR_CONFIG";

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML is malformed or has an unknown key.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What serde said, naming the key.
        message: String,
    },
    /// A value is out of range.
    #[error("{path}: `{field}`: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The key.
        field: &'static str,
        /// What was expected.
        reason: String,
    },
}

/// The whole `attestor.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AttestorConfig {
    /// The SPIFFE trust domain of the issuer, e.g. `example.org`.
    pub trust_domain: String,
    /// Where the AK, node key, sealed cache and its key live.
    pub data_dir: PathBuf,
    /// The Workload API Unix socket.
    pub socket_path: PathBuf,
    /// How to reach and trust the issuer.
    pub issuer: IssuerEndpointConfig,
    /// The TPM.
    pub tpm: TpmConfig,
    /// Workload attestation.
    pub workload: WorkloadConfig,
}

/// `[issuer]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IssuerEndpointConfig {
    /// `host:port` of the node attestation API.
    pub node_api: String,
    /// `host:port` of the issuance API.
    pub issuance_api: String,
    /// The issuer's CA certificates (PEM or concatenated DER) the first
    /// attestation trusts; afterwards the bundle the issuer sends is used.
    pub bundle_path: PathBuf,
    /// The issuer's SPIFFE ID; default `spiffe://<trust_domain>/rootmark/issuer`.
    pub spiffe_id: Option<String>,
    /// Longest pause between retries while the issuer is unreachable, in
    /// seconds (retries start at 0.5 s and double, with jitter).
    pub retry_max_seconds: u64,
}

/// `[tpm]`.
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
    /// Close the TPM connection after every operation. Unset: yes for
    /// `swtpm:` and `mssim:` TCTIs (they serve one client at a time, so this
    /// lets tpm2-tools in between), no for devices.
    pub release_between_operations: Option<bool>,
}

/// `[workload]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkloadConfig {
    /// Largest executable hashed for the `unix:sha256` selector, in bytes.
    pub max_exe_bytes: u64,
    /// Largest number of JWT-SVIDs kept in the cache.
    pub max_cached_jwt_svids: usize,
}

impl Default for AttestorConfig {
    fn default() -> Self {
        AttestorConfig {
            trust_domain: "example.org".to_owned(),
            data_dir: PathBuf::from("/var/lib/rootmark-attestor"),
            socket_path: PathBuf::from("/run/rootmark/workload.sock"),
            issuer: IssuerEndpointConfig::default(),
            tpm: TpmConfig::default(),
            workload: WorkloadConfig::default(),
        }
    }
}

impl Default for IssuerEndpointConfig {
    fn default() -> Self {
        IssuerEndpointConfig {
            node_api: "127.0.0.1:8443".to_owned(),
            issuance_api: "127.0.0.1:8444".to_owned(),
            bundle_path: PathBuf::from("/etc/rootmark/bundle.pem"),
            spiffe_id: None,
            retry_max_seconds: 30,
        }
    }
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
            release_between_operations: None,
        }
    }
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        WorkloadConfig {
            max_exe_bytes: 64 * 1024 * 1024,
            max_cached_jwt_svids: 10_000,
        }
    }
}

impl AttestorConfig {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates `text`, naming `path` in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let config: AttestorConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        config.validate(path)?;
        Ok(config)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |field: &'static str, reason: String| ConfigError::Invalid {
            path: path.to_owned(),
            field,
            reason,
        };
        self.trust_domain()
            .map_err(|e| invalid("trust_domain", e))?;
        self.issuer_spiffe_id()
            .map_err(|e| invalid("issuer.spiffe_id", e))?;
        self.tpm
            .ek_algorithm()
            .map_err(|e| invalid("tpm.ek_algorithm", e))?;
        self.tpm
            .ak_algorithm()
            .map_err(|e| invalid("tpm.ak_algorithm", e))?;
        self.tpm
            .boot_selection()
            .map_err(|e| invalid("tpm.boot_pcrs", e))?;
        for (field, addr) in [
            ("issuer.node_api", &self.issuer.node_api),
            ("issuer.issuance_api", &self.issuer.issuance_api),
        ] {
            if addr
                .rsplit_once(':')
                .is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err())
            {
                return Err(invalid(
                    field,
                    format!("{addr:?} is not host:port (e.g. issuer.example.org:8443)"),
                ));
            }
        }
        if self.issuer.retry_max_seconds == 0 {
            return Err(invalid(
                "issuer.retry_max_seconds",
                "must be above 0".to_owned(),
            ));
        }
        if self.workload.max_exe_bytes == 0 {
            return Err(invalid(
                "workload.max_exe_bytes",
                "must be above 0".to_owned(),
            ));
        }
        Ok(())
    }

    /// The trust domain.
    pub fn trust_domain(&self) -> Result<TrustDomain, String> {
        TrustDomain::parse(&self.trust_domain).map_err(|e| e.to_string())
    }

    /// The SPIFFE ID the issuer must present.
    pub fn issuer_spiffe_id(&self) -> Result<SpiffeId, String> {
        match &self.issuer.spiffe_id {
            Some(id) => SpiffeId::parse(id).map_err(|e| e.to_string()),
            None => SpiffeId::from_path(&self.trust_domain()?, "/rootmark/issuer")
                .map_err(|e| e.to_string()),
        }
    }
}

impl TpmConfig {
    /// The configured EK type, if any.
    pub fn ek_algorithm(&self) -> Result<Option<EkAlgorithm>, String> {
        match self.ek_algorithm.as_deref() {
            None => Ok(None),
            Some("rsa2048") => Ok(Some(EkAlgorithm::Rsa2048)),
            Some("ecc-p256") => Ok(Some(EkAlgorithm::EccP256)),
            Some("ecc-p384") => Ok(Some(EkAlgorithm::EccP384)),
            Some(other) => Err(format!(
                "{other:?} is not an EK type; use rsa2048, ecc-p256 or ecc-p384"
            )),
        }
    }

    /// Whether to close the TPM connection after every operation.
    pub fn release_between_operations(&self) -> bool {
        self.release_between_operations
            .unwrap_or_else(|| self.tcti.starts_with("swtpm:") || self.tcti.starts_with("mssim:"))
    }

    /// The configured AK type.
    pub fn ak_algorithm(&self) -> Result<AkAlgorithm, String> {
        match self.ak_algorithm.as_str() {
            "ecc-p256" => Ok(AkAlgorithm::EccP256),
            "rsa2048" => Ok(AkAlgorithm::Rsa2048),
            other => Err(format!(
                "{other:?} is not an AK type; use ecc-p256 or rsa2048"
            )),
        }
    }

    /// The boot PCRs as a SHA-256 selection.
    pub fn boot_selection(&self) -> Result<PcrSelection, String> {
        if self.boot_pcrs.is_empty() {
            return Err("at least one PCR is needed (default 0, 2, 4, 7)".to_owned());
        }
        PcrSelection::new()
            .with(PcrBank::Sha256, &self.boot_pcrs)
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn parse(text: &str) -> Result<AttestorConfig, ConfigError> {
        AttestorConfig::parse(text, Path::new("attestor.toml"))
    }

    #[test]
    fn empty_file_gives_working_defaults() {
        let config = parse("").unwrap();
        assert_eq!(config, AttestorConfig::default());
        assert_eq!(config.tpm.tcti, "device:/dev/tpmrm0");
        assert_eq!(
            config.issuer_spiffe_id().unwrap().as_str(),
            "spiffe://example.org/rootmark/issuer"
        );
    }

    #[test]
    fn unknown_key_is_refused_by_name() {
        let err = parse("[tpm]\ntcit = \"x\"").unwrap_err();
        assert!(err.to_string().contains("tcit"), "{err}");
        let err = parse("socket = \"/tmp/x\"").unwrap_err();
        assert!(err.to_string().contains("socket"), "{err}");
    }

    #[test]
    fn bad_values_name_their_key() {
        let err = parse("trust_domain = \"Example.org\"").unwrap_err();
        assert!(err.to_string().contains("`trust_domain`"), "{err}");
        let err = parse("[issuer]\nnode_api = \"localhost\"").unwrap_err();
        assert!(err.to_string().contains("`issuer.node_api`"), "{err}");
        let err = parse("[tpm]\nak_algorithm = \"ecc-p521\"").unwrap_err();
        assert!(err.to_string().contains("`tpm.ak_algorithm`"), "{err}");
        let err = parse("[tpm]\nboot_pcrs = [24]").unwrap_err();
        assert!(err.to_string().contains("`tpm.boot_pcrs`"), "{err}");
    }
}
