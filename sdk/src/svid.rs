//! X509-SVIDs: [`X509Svid`], a certificate chain whose leaf names one
//! SPIFFE ID, with its private key.
//!
//! [`X509Svid::parse`] enforces the SPIFFE X509-SVID rules (as go-spiffe
//! does) and fails with an [`SvidError`] naming the first broken one:
//!
//! * the leaf has exactly one URI SAN and it is a [`SpiffeId`];
//! * the leaf is not a CA (`cA` false), has key usage `digitalSignature`
//!   and neither `keyCertSign` nor `cRLSign`;
//! * every intermediate is a CA with `keyCertSign`;
//! * the private key (PKCS#8 DER) is one aws-lc-rs can sign with and
//!   matches the leaf's public key.
//!
//! The private key is held in memory that is zeroed on drop.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use zeroize::Zeroizing;

use crate::bundle::split_der_certificates;
use crate::id::{IdError, SpiffeId};

/// Why an X509-SVID was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SvidError {
    /// No certificate in the chain.
    #[error("X509-SVID: the certificate chain is empty")]
    EmptyChain,
    /// A certificate of the chain could not be parsed, or the chain is too long.
    #[error("X509-SVID: certificate {index}: {reason}")]
    Certificate {
        /// Its position in the chain (0 = leaf).
        index: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// The leaf does not have exactly one URI SAN.
    #[error("X509-SVID: the leaf must have exactly one URI SAN, found {count}")]
    UriSanCount {
        /// How many it has.
        count: usize,
    },
    /// The leaf's URI SAN is not a SPIFFE ID.
    #[error("X509-SVID: URI SAN {uri:?} is not a SPIFFE ID: {error}")]
    BadSpiffeId {
        /// The URI SAN (truncated to 256 bytes).
        uri: String,
        /// Why it is not a SPIFFE ID.
        error: IdError,
    },
    /// The leaf is a CA certificate.
    #[error("X509-SVID: the leaf has cA=true; a leaf SVID must not be a CA")]
    LeafIsCa,
    /// The leaf's key usage is missing or wrong.
    #[error("X509-SVID: leaf key usage: {reason}")]
    LeafKeyUsage {
        /// What is wrong.
        reason: &'static str,
    },
    /// An intermediate is not a signing CA.
    #[error("X509-SVID: certificate {index} (intermediate): {reason}")]
    Intermediate {
        /// Its position in the chain.
        index: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// The private key cannot be used.
    #[error("X509-SVID: private key: {reason}")]
    PrivateKey {
        /// Why.
        reason: String,
    },
    /// The private key does not belong to the leaf certificate.
    #[error("X509-SVID: the private key does not match the leaf certificate's public key")]
    KeyMismatch,
}

/// An X509-SVID: certificate chain (leaf first), private key and the SPIFFE
/// ID of the leaf. Cloning is cheap.
#[derive(Clone)]
pub struct X509Svid {
    spiffe_id: SpiffeId,
    expiry: SystemTime,
    hint: Option<String>,
    private_key: Arc<Zeroizing<Vec<u8>>>,
    certified_key: Arc<CertifiedKey>,
}

impl X509Svid {
    /// Parses the Workload API form: the chain as concatenated DER (leaf
    /// first) and the private key as PKCS#8 DER. See the module docs for
    /// what is checked.
    ///
    /// # Errors
    /// The [`SvidError`] naming the first rule the SVID breaks.
    pub fn parse(chain_der: &[u8], key_pkcs8: &[u8]) -> Result<Self, SvidError> {
        let chain = split_der_certificates(chain_der)
            .map_err(|(index, reason)| SvidError::Certificate { index, reason })?;
        Self::from_parts(chain, key_pkcs8)
    }

    /// As [`X509Svid::parse`], from certificates already split.
    ///
    /// # Errors
    /// As [`X509Svid::parse`].
    pub fn from_parts(
        chain: Vec<CertificateDer<'static>>,
        key_pkcs8: &[u8],
    ) -> Result<Self, SvidError> {
        let Some(leaf_der) = chain.first() else {
            return Err(SvidError::EmptyChain);
        };
        if chain.len() > crate::bundle::MAX_CERTIFICATES {
            return Err(SvidError::Certificate {
                index: crate::bundle::MAX_CERTIFICATES,
                reason: format!(
                    "expected at most {} certificates",
                    crate::bundle::MAX_CERTIFICATES
                ),
            });
        }
        let leaf = parse_certificate(0, leaf_der)?;
        let spiffe_id = leaf_spiffe_id(&leaf)?;
        check_leaf(&leaf)?;
        for (index, der) in chain.iter().enumerate().skip(1) {
            check_intermediate(index, &parse_certificate(index, der)?)?;
        }
        let not_after = leaf.validity().not_after.timestamp();
        let expiry = u64::try_from(not_after)
            .ok()
            .and_then(|secs| UNIX_EPOCH.checked_add(Duration::from_secs(secs)))
            .unwrap_or(UNIX_EPOCH);

        let private_key = Arc::new(Zeroizing::new(key_pkcs8.to_vec()));
        let signing_key = {
            let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(private_key.as_slice()));
            rustls::crypto::aws_lc_rs::sign::any_supported_type(&der).map_err(|e| {
                SvidError::PrivateKey {
                    reason: format!("not a supported PKCS#8 private key: {e}"),
                }
            })?
        };
        let certified_key = CertifiedKey::new(chain, signing_key);
        match certified_key.keys_match() {
            Ok(()) => {}
            Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
                return Err(SvidError::KeyMismatch);
            }
            Err(e) => {
                return Err(SvidError::PrivateKey {
                    reason: format!("cannot compare with the leaf's public key: {e}"),
                });
            }
        }
        Ok(X509Svid {
            spiffe_id,
            expiry,
            hint: None,
            private_key,
            certified_key: Arc::new(certified_key),
        })
    }

    /// The SPIFFE ID of the leaf.
    pub fn spiffe_id(&self) -> &SpiffeId {
        &self.spiffe_id
    }

    /// The certificate chain, leaf first.
    pub fn cert_chain(&self) -> &[CertificateDer<'static>] {
        &self.certified_key.cert
    }

    /// The leaf certificate.
    pub fn leaf(&self) -> &CertificateDer<'static> {
        // `from_parts` refuses an empty chain.
        &self.certified_key.cert[0]
    }

    /// The private key, PKCS#8 DER.
    pub fn private_key_pkcs8(&self) -> &[u8] {
        &self.private_key
    }

    /// The leaf's notAfter.
    pub fn expiry(&self) -> SystemTime {
        self.expiry
    }

    /// The Workload API's hint for this SVID, if one was set.
    pub fn hint(&self) -> Option<&str> {
        self.hint.as_deref()
    }

    /// Sets the hint (the Workload API sends one next to the SVID).
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        let hint = hint.into();
        self.hint = (!hint.is_empty()).then_some(hint);
        self
    }

    /// The chain and key as rustls signs with them (built once at parse).
    pub fn certified_key(&self) -> &Arc<CertifiedKey> {
        &self.certified_key
    }
}

impl fmt::Debug for X509Svid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("X509Svid")
            .field("spiffe_id", &self.spiffe_id)
            .field("chain_len", &self.certified_key.cert.len())
            .field("expiry", &self.expiry)
            .field("hint", &self.hint)
            .finish_non_exhaustive()
    }
}

impl PartialEq for X509Svid {
    fn eq(&self, other: &Self) -> bool {
        self.certified_key.cert == other.certified_key.cert
            && *self.private_key == *other.private_key
            && self.hint == other.hint
    }
}

impl Eq for X509Svid {}

fn parse_certificate<'a>(
    index: usize,
    der: &'a CertificateDer<'_>,
) -> Result<X509Certificate<'a>, SvidError> {
    match x509_parser::parse_x509_certificate(der) {
        Ok(([], cert)) => Ok(cert),
        Ok(_) => Err(SvidError::Certificate {
            index,
            reason: "trailing bytes after the certificate".into(),
        }),
        Err(e) => Err(SvidError::Certificate {
            index,
            reason: format!("not a DER X.509 certificate: {e}"),
        }),
    }
}

fn leaf_spiffe_id(leaf: &X509Certificate<'_>) -> Result<SpiffeId, SvidError> {
    let san = leaf
        .subject_alternative_name()
        .map_err(|e| SvidError::Certificate {
            index: 0,
            reason: format!("subjectAltName: {e}"),
        })?;
    let uris: Vec<&str> = san
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    GeneralName::URI(uri) => Some(*uri),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let [uri] = uris.as_slice() else {
        return Err(SvidError::UriSanCount { count: uris.len() });
    };
    SpiffeId::parse(uri).map_err(|error| SvidError::BadSpiffeId {
        uri: uri.chars().take(256).collect(),
        error,
    })
}

fn check_leaf(leaf: &X509Certificate<'_>) -> Result<(), SvidError> {
    let constraints = leaf
        .basic_constraints()
        .map_err(|e| SvidError::Certificate {
            index: 0,
            reason: format!("basicConstraints: {e}"),
        })?;
    if constraints.is_some_and(|bc| bc.value.ca) {
        return Err(SvidError::LeafIsCa);
    }
    let usage = leaf
        .key_usage()
        .map_err(|e| SvidError::Certificate {
            index: 0,
            reason: format!("keyUsage: {e}"),
        })?
        .ok_or(SvidError::LeafKeyUsage {
            reason: "no keyUsage extension (digitalSignature is required)",
        })?
        .value;
    if !usage.digital_signature() {
        return Err(SvidError::LeafKeyUsage {
            reason: "digitalSignature is required",
        });
    }
    if usage.key_cert_sign() {
        return Err(SvidError::LeafKeyUsage {
            reason: "keyCertSign is not allowed on a leaf",
        });
    }
    if usage.crl_sign() {
        return Err(SvidError::LeafKeyUsage {
            reason: "cRLSign is not allowed on a leaf",
        });
    }
    Ok(())
}

fn check_intermediate(index: usize, cert: &X509Certificate<'_>) -> Result<(), SvidError> {
    let constraints = cert
        .basic_constraints()
        .map_err(|e| SvidError::Certificate {
            index,
            reason: format!("basicConstraints: {e}"),
        })?;
    if !constraints.is_some_and(|bc| bc.value.ca) {
        return Err(SvidError::Intermediate {
            index,
            reason: "not a CA (cA=true is required)",
        });
    }
    let usage = cert.key_usage().map_err(|e| SvidError::Certificate {
        index,
        reason: format!("keyUsage: {e}"),
    })?;
    if !usage.is_some_and(|ku| ku.value.key_cert_sign()) {
        return Err(SvidError::Intermediate {
            index,
            reason: "keyCertSign is required",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
