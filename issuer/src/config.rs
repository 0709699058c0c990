//! `issuer.toml`: the issuer's configuration. Every key has a default that
//! works out of the box; unknown keys are errors that name the key.
//!
//! ```toml
//! trust_domain = "example.org"
//! data_dir = "/var/lib/rootmark-issuer"
//! listen = "0.0.0.0:8443"               # node attestation (gRPC over TLS)
//! issuance_listen = "0.0.0.0:8444"      # issuance to attested nodes (gRPC over mTLS with the node SVID)
//! admin_socket = "/run/rootmark/issuer-admin.sock"
//! admin_uid = 0                          # besides root, who may use the admin socket
//!
//! [ca]
//! ttl = "7d"                             # X.509 CA lifetime; rotation prepares at 1/2, activates at 5/6
//! jwt_key_ttl = "7d"
//! # upstream_cert = "/etc/rootmark/upstream.pem"   # become an intermediate under this CA
//! # upstream_key = "/etc/rootmark/upstream.key"
//!
//! [svid]
//! node_ttl = "1h"
//! x509_ttl = "1h"
//! jwt_ttl = "5m"
//!
//! [attestation]
//! ek_roots = "/etc/rootmark/ek-roots"   # manufacturer CA certificates (PEM/DER)
//! # ek_allow_list = "/etc/rootmark/ek-allow-list"   # hex EK hashes for TPMs without certificates
//! challenge_ttl = "30s"
//! max_attestations_per_node_per_minute = 6
//! quote_pcrs = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
//!
//! [[node_policy]]
//! name = "prod"
//! require_secure_boot = true
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::policy::NodePolicyConfig;

/// Why the configuration could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the issuer config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The TOML is malformed, has an unknown key or a value of the wrong type.
    #[error("issuer config {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What toml said (names the key and line).
        message: String,
    },
    /// A value is out of range.
    #[error("issuer config: {field}: {reason}")]
    Invalid {
        /// The key.
        field: &'static str,
        /// What is expected.
        reason: String,
    },
}

/// A duration written as `90s`, `5m`, `1h`, `7d` (or a bare number of seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigDuration(pub Duration);

impl<'de> Deserialize<'de> for ConfigDuration {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Seconds(u64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Seconds(s) => Ok(ConfigDuration(Duration::from_secs(s))),
            Raw::Text(text) => parse_duration(&text)
                .map(ConfigDuration)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// Parses `90s`, `5m`, `1h`, `7d`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration; write e.g. 90s, 5m, 1h or 7d"))?;
    let seconds = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        other => {
            return Err(format!(
                "unknown duration unit {other:?} in {text:?}; use s, m, h or d"
            ));
        }
    };
    number
        .checked_mul(seconds)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{text:?} is too long"))
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IssuerConfig {
    /// The SPIFFE trust domain, e.g. `example.org`.
    pub trust_domain: String,
    /// Where the datastore and keys live.
    pub data_dir: PathBuf,
    /// Address of the node attestation API (gRPC over TLS).
    pub listen: String,
    /// Address of the issuance API (gRPC over mTLS with the node SVID).
    pub issuance_listen: String,
    /// The admin Unix socket.
    pub admin_socket: PathBuf,
    /// A uid besides root allowed on the admin socket.
    pub admin_uid: Option<u32>,
    /// CA settings.
    pub ca: CaConfig,
    /// SVID lifetimes.
    pub svid: SvidConfig,
    /// Node attestation settings.
    pub attestation: AttestationConfig,
    /// Node policies.
    pub node_policy: Vec<NodePolicyConfig>,
}

/// `[ca]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CaConfig {
    /// X.509 CA lifetime.
    pub ttl: ConfigDuration,
    /// JWT signing key lifetime.
    pub jwt_key_ttl: ConfigDuration,
    /// Upstream CA certificate (PEM): the issuer becomes its intermediate.
    pub upstream_cert: Option<PathBuf>,
    /// Upstream CA private key (PKCS#8 PEM).
    pub upstream_key: Option<PathBuf>,
}

/// `[svid]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SvidConfig {
    /// Node SVID lifetime (renewal needs a fresh quote).
    pub node_ttl: ConfigDuration,
    /// Default workload X509-SVID lifetime.
    pub x509_ttl: ConfigDuration,
    /// Default JWT-SVID lifetime.
    pub jwt_ttl: ConfigDuration,
}

/// `[attestation]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AttestationConfig {
    /// Directory of manufacturer CA certificates.
    pub ek_roots: PathBuf,
    /// File of allow-listed EK hashes.
    pub ek_allow_list: Option<PathBuf>,
    /// How long a node has to answer a challenge.
    pub challenge_ttl: ConfigDuration,
    /// Attestation attempts allowed per node per minute.
    pub max_attestations_per_node_per_minute: u32,
    /// SHA-256 PCRs every quote covers.
    pub quote_pcrs: Vec<u32>,
}

impl Default for IssuerConfig {
    fn default() -> Self {
        IssuerConfig {
            trust_domain: "example.org".to_owned(),
            data_dir: PathBuf::from("/var/lib/rootmark-issuer"),
            listen: "0.0.0.0:8443".to_owned(),
            issuance_listen: "0.0.0.0:8444".to_owned(),
            admin_socket: PathBuf::from("/run/rootmark/issuer-admin.sock"),
            admin_uid: None,
            ca: CaConfig::default(),
            svid: SvidConfig::default(),
            attestation: AttestationConfig::default(),
            node_policy: Vec::new(),
        }
    }
}

impl Default for CaConfig {
    fn default() -> Self {
        CaConfig {
            ttl: ConfigDuration(Duration::from_secs(7 * 86_400)),
            jwt_key_ttl: ConfigDuration(Duration::from_secs(7 * 86_400)),
            upstream_cert: None,
            upstream_key: None,
        }
    }
}

impl Default for SvidConfig {
    fn default() -> Self {
        SvidConfig {
            node_ttl: ConfigDuration(Duration::from_secs(3600)),
            x509_ttl: ConfigDuration(Duration::from_secs(3600)),
            jwt_ttl: ConfigDuration(Duration::from_secs(300)),
        }
    }
}

impl Default for AttestationConfig {
    fn default() -> Self {
        AttestationConfig {
            ek_roots: PathBuf::from("/etc/rootmark/ek-roots"),
            ek_allow_list: None,
            challenge_ttl: ConfigDuration(Duration::from_secs(30)),
            max_attestations_per_node_per_minute: 6,
            quote_pcrs: (0..10).collect(),
        }
    }
}

impl IssuerConfig {
    /// Reads and validates `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates TOML text; `path` is used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let config: IssuerConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks values serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        rootmark_sdk_trust_domain_check(&self.trust_domain)?;
        if self.ca.upstream_cert.is_some() != self.ca.upstream_key.is_some() {
            return Err(ConfigError::Invalid {
                field: "ca.upstream_cert / ca.upstream_key",
                reason: "give both or neither".to_owned(),
            });
        }
        let node_ttl = self.svid.node_ttl.0;
        // Renewal needs a fresh quote at half-life; under 10 s that is a
        // quote every few seconds per node, which only tests want.
        if node_ttl < Duration::from_secs(10) || node_ttl >= self.ca.ttl.0 {
            return Err(ConfigError::Invalid {
                field: "svid.node_ttl",
                reason: "must be at least 10s and shorter than ca.ttl".to_owned(),
            });
        }
        if self.svid.jwt_ttl.0 < Duration::from_secs(10) {
            return Err(ConfigError::Invalid {
                field: "svid.jwt_ttl",
                reason: "must be at least 10s".to_owned(),
            });
        }
        if let Some(pcr) = self.attestation.quote_pcrs.iter().find(|&&p| p >= 24) {
            return Err(ConfigError::Invalid {
                field: "attestation.quote_pcrs",
                reason: format!("PCR {pcr} does not exist; PCRs are 0 to 23"),
            });
        }
        if self.attestation.max_attestations_per_node_per_minute == 0 {
            return Err(ConfigError::Invalid {
                field: "attestation.max_attestations_per_node_per_minute",
                reason: "must be at least 1".to_owned(),
            });
        }
        crate::policy::PolicySet::compile(&self.node_policy).map_err(|e| ConfigError::Invalid {
            field: "node_policy",
            reason: e.to_string(),
        })?;
        Ok(())
    }
}

/// Trust domain names per the SPIFFE ID spec: lowercase letters, digits,
/// `.`, `-`, `_`; 1 to 255 characters.
fn rootmark_sdk_trust_domain_check(trust_domain: &str) -> Result<(), ConfigError> {
    let ok = !trust_domain.is_empty()
        && trust_domain.len() <= 255
        && trust_domain
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_'));
    if ok {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            field: "trust_domain",
            reason: format!(
                "{trust_domain:?} is not a SPIFFE trust domain (lowercase letters, digits, '.', '-', '_')"
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_working_defaults() {
        let config = IssuerConfig::parse("", Path::new("issuer.toml")).unwrap();
        assert_eq!(config, IssuerConfig::default());
        assert_eq!(config.svid.jwt_ttl.0, Duration::from_secs(300));
    }

    #[test]
    fn unknown_key_is_named() {
        let err = IssuerConfig::parse("[svid]\nnode_tll = \"1h\"\n", Path::new("issuer.toml"))
            .unwrap_err();
        assert!(err.to_string().contains("node_tll"), "{err}");
    }

    #[test]
    fn durations_parse_with_units() {
        let config = IssuerConfig::parse(
            "[svid]\nnode_ttl = \"2h\"\nx509_ttl = 600\njwt_ttl = \"90s\"\n",
            Path::new("x"),
        )
        .unwrap();
        assert_eq!(config.svid.node_ttl.0, Duration::from_secs(7200));
        assert_eq!(config.svid.x509_ttl.0, Duration::from_secs(600));
        let err =
            IssuerConfig::parse("[svid]\njwt_ttl = \"5 parsecs\"\n", Path::new("x")).unwrap_err();
        assert!(err.to_string().contains("unit"), "{err}");
    }

    #[test]
    fn invalid_values_name_the_field() {
        let err =
            IssuerConfig::parse("trust_domain = \"Example.org\"\n", Path::new("x")).unwrap_err();
        assert!(err.to_string().contains("trust_domain"), "{err}");
        let err =
            IssuerConfig::parse("[attestation]\nquote_pcrs = [24]\n", Path::new("x")).unwrap_err();
        assert!(err.to_string().contains("attestation.quote_pcrs"), "{err}");
        let err =
            IssuerConfig::parse("[ca]\nupstream_cert = \"/x\"\n", Path::new("x")).unwrap_err();
        assert!(err.to_string().contains("upstream"), "{err}");
        let err =
            IssuerConfig::parse("[[node_policy]]\nname = \"Bad\"\n", Path::new("x")).unwrap_err();
        assert!(err.to_string().contains("node_policy"), "{err}");
    }
}
