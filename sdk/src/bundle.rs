//! Trust bundles: [`X509Bundle`] (one trust domain's root CA certificates)
//! and [`BundleSet`] (trust domain → bundle), used for both X.509
//! ([`X509BundleSet`]) and JWT ([`JwtBundleSet`](crate::jwt::JwtBundleSet))
//! bundles.
//!
//! The Workload API sends X.509 bundles as concatenated DER certificates;
//! [`X509Bundle::parse`] reads that form and [`X509Bundle::from_jwks`] reads
//! the `x509-svid` entries of a SPIFFE bundle (JWKS).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, OnceLock};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use serde_json::Value;

use crate::id::TrustDomain;

/// Most certificates one X.509 bundle or one SVID chain holds.
pub const MAX_CERTIFICATES: usize = 64;

/// Largest concatenated-DER input accepted, in bytes.
pub const MAX_DER_LEN: usize = 1024 * 1024;

/// Why an X.509 bundle was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// The bundle has no certificate.
    #[error("X.509 bundle of {trust_domain}: no certificate")]
    Empty {
        /// The bundle's trust domain.
        trust_domain: TrustDomain,
    },
    /// The input is larger than [`MAX_DER_LEN`] or has more than
    /// [`MAX_CERTIFICATES`] certificates.
    #[error("X.509 bundle: {reason}")]
    TooLarge {
        /// Which limit was exceeded.
        reason: String,
    },
    /// A certificate could not be parsed.
    #[error("X.509 bundle: certificate {index}: {reason}")]
    Certificate {
        /// Its position in the bundle (0-based).
        index: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A certificate cannot be used as a trust anchor.
    #[error("X.509 bundle: certificate {index} is not usable as a trust anchor: {reason}")]
    TrustAnchor {
        /// Its position in the bundle (0-based).
        index: usize,
        /// Why.
        reason: String,
    },
    /// A SPIFFE bundle (JWKS) could not be read.
    #[error("SPIFFE bundle: {reason}")]
    Jwks {
        /// What is wrong with it.
        reason: String,
    },
}

/// Splits concatenated DER into certificates, each checked to parse as
/// X.509 with nothing between or after them.
pub(crate) fn split_der_certificates(
    der: &[u8],
) -> Result<Vec<CertificateDer<'static>>, (usize, String)> {
    if der.len() > MAX_DER_LEN {
        return Err((
            0,
            format!("expected at most {MAX_DER_LEN} bytes, found {}", der.len()),
        ));
    }
    let mut certificates = Vec::new();
    let mut rest = der;
    while !rest.is_empty() {
        let index = certificates.len();
        if index >= MAX_CERTIFICATES {
            return Err((
                index,
                format!("expected at most {MAX_CERTIFICATES} certificates"),
            ));
        }
        let (after, _) = x509_parser::parse_x509_certificate(rest)
            .map_err(|e| (index, format!("not a DER X.509 certificate: {e}")))?;
        let used = rest.len() - after.len();
        let (one, after) = rest.split_at(used);
        certificates.push(CertificateDer::from(one.to_vec()));
        rest = after;
    }
    Ok(certificates)
}

/// One trust domain's X.509 authorities (root CA certificates).
#[derive(Clone)]
pub struct X509Bundle {
    trust_domain: TrustDomain,
    authorities: Vec<CertificateDer<'static>>,
    roots: Arc<RootCertStore>,
    /// rustls client-certificate verifier over `roots`, built on first use
    /// (see `tls::config`), shared by clones.
    pub(crate) client_verifier: Arc<OnceLock<ClientVerifierSlot>>,
}

/// A cached client-certificate verifier, or why it could not be built.
pub(crate) type ClientVerifierSlot =
    Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, String>;

impl X509Bundle {
    /// Parses the Workload API form: certificates as concatenated DER.
    ///
    /// # Errors
    /// [`BundleError::Empty`] for no certificate, [`BundleError::Certificate`]
    /// naming the first one that does not parse, [`BundleError::TrustAnchor`]
    /// for one rustls cannot use as a root, [`BundleError::TooLarge`].
    pub fn parse(trust_domain: TrustDomain, der: &[u8]) -> Result<Self, BundleError> {
        let certificates = split_der_certificates(der).map_err(|(index, reason)| {
            if reason.starts_with("expected at most") {
                BundleError::TooLarge { reason }
            } else {
                BundleError::Certificate { index, reason }
            }
        })?;
        Self::from_certificates(trust_domain, certificates)
    }

    /// A bundle from DER certificates.
    ///
    /// # Errors
    /// As [`X509Bundle::parse`].
    pub fn from_certificates(
        trust_domain: TrustDomain,
        certificates: Vec<CertificateDer<'static>>,
    ) -> Result<Self, BundleError> {
        if certificates.is_empty() {
            return Err(BundleError::Empty { trust_domain });
        }
        if certificates.len() > MAX_CERTIFICATES {
            return Err(BundleError::TooLarge {
                reason: format!(
                    "expected at most {MAX_CERTIFICATES} certificates, found {}",
                    certificates.len()
                ),
            });
        }
        let mut roots = RootCertStore::empty();
        for (index, certificate) in certificates.iter().enumerate() {
            x509_parser::parse_x509_certificate(certificate).map_err(|e| {
                BundleError::Certificate {
                    index,
                    reason: format!("not a DER X.509 certificate: {e}"),
                }
            })?;
            roots
                .add(certificate.clone())
                .map_err(|e| BundleError::TrustAnchor {
                    index,
                    reason: e.to_string(),
                })?;
        }
        Ok(X509Bundle {
            trust_domain,
            authorities: certificates,
            roots: Arc::new(roots),
            client_verifier: Arc::new(OnceLock::new()),
        })
    }

    /// Reads the `use: x509-svid` entries of a SPIFFE bundle (JWKS): each
    /// has an `x5c` with exactly one base64 DER certificate. Other entries
    /// are skipped.
    ///
    /// # Errors
    /// [`BundleError::Jwks`] for a malformed document or entry, otherwise
    /// as [`X509Bundle::from_certificates`].
    pub fn from_jwks(trust_domain: TrustDomain, json: &[u8]) -> Result<Self, BundleError> {
        let jwks = |reason: String| BundleError::Jwks { reason };
        if json.len() > MAX_DER_LEN {
            return Err(BundleError::TooLarge {
                reason: format!(
                    "expected a JWKS of at most {MAX_DER_LEN} bytes, found {}",
                    json.len()
                ),
            });
        }
        let document: Value =
            serde_json::from_slice(json).map_err(|e| jwks(format!("not JSON: {e}")))?;
        let Some(Value::Array(keys)) = document.get("keys") else {
            return Err(jwks("expected an object with a \"keys\" array".into()));
        };
        let mut certificates = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            if key.get("use").and_then(Value::as_str) != Some("x509-svid") {
                continue;
            }
            let x5c = match key.get("x5c") {
                Some(Value::Array(x5c)) => x5c,
                _ => {
                    return Err(jwks(format!(
                        "keys[{i}]: x509-svid entry without an x5c array"
                    )));
                }
            };
            let [Value::String(b64)] = x5c.as_slice() else {
                return Err(jwks(format!(
                    "keys[{i}]: expected exactly one certificate in x5c, found {}",
                    x5c.len()
                )));
            };
            let der = BASE64
                .decode(b64)
                .map_err(|e| jwks(format!("keys[{i}]: x5c is not base64: {e}")))?;
            certificates.push(CertificateDer::from(der));
        }
        Self::from_certificates(trust_domain, certificates)
    }

    /// The trust domain these roots issue for.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    /// The root certificates (DER).
    pub fn authorities(&self) -> &[CertificateDer<'static>] {
        &self.authorities
    }

    /// The roots as concatenated DER (the Workload API form).
    pub fn to_der(&self) -> Vec<u8> {
        self.authorities
            .iter()
            .flat_map(|c| c.as_ref().iter().copied())
            .collect()
    }

    /// The roots as a rustls trust store.
    pub fn root_store(&self) -> &Arc<RootCertStore> {
        &self.roots
    }
}

impl fmt::Debug for X509Bundle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("X509Bundle")
            .field("trust_domain", &self.trust_domain)
            .field("authorities", &self.authorities.len())
            .finish()
    }
}

impl PartialEq for X509Bundle {
    fn eq(&self, other: &Self) -> bool {
        self.trust_domain == other.trust_domain && self.authorities == other.authorities
    }
}

impl Eq for X509Bundle {}

/// A bundle that belongs to one trust domain, so it can be kept in a
/// [`BundleSet`].
pub trait TrustDomainBundle {
    /// The bundle's trust domain.
    fn bundle_trust_domain(&self) -> &TrustDomain;
}

impl TrustDomainBundle for X509Bundle {
    fn bundle_trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }
}

impl TrustDomainBundle for crate::jwt::JwtBundle {
    fn bundle_trust_domain(&self) -> &TrustDomain {
        self.trust_domain()
    }
}

/// Bundles of several trust domains (one's own and federated ones), at
/// most one per trust domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleSet<B> {
    bundles: BTreeMap<TrustDomain, B>,
}

/// X.509 bundles by trust domain.
pub type X509BundleSet = BundleSet<X509Bundle>;

impl<B> Default for BundleSet<B> {
    fn default() -> Self {
        BundleSet {
            bundles: BTreeMap::new(),
        }
    }
}

impl<B: TrustDomainBundle> BundleSet<B> {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `bundle`, replacing the one of the same trust domain (returned).
    pub fn insert(&mut self, bundle: B) -> Option<B> {
        self.bundles
            .insert(bundle.bundle_trust_domain().clone(), bundle)
    }

    /// The bundle of `trust_domain`.
    pub fn get(&self, trust_domain: &TrustDomain) -> Option<&B> {
        self.bundles.get(trust_domain)
    }

    /// Removes the bundle of `trust_domain`, returning it.
    pub fn remove(&mut self, trust_domain: &TrustDomain) -> Option<B> {
        self.bundles.remove(trust_domain)
    }

    /// The bundles, ordered by trust domain.
    pub fn iter(&self) -> impl Iterator<Item = &B> {
        self.bundles.values()
    }

    /// The trust domains, in order.
    pub fn trust_domains(&self) -> impl Iterator<Item = &TrustDomain> {
        self.bundles.keys()
    }

    /// Number of trust domains.
    pub fn len(&self) -> usize {
        self.bundles.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.bundles.is_empty()
    }
}

impl<B: TrustDomainBundle> FromIterator<B> for BundleSet<B> {
    fn from_iter<I: IntoIterator<Item = B>>(iter: I) -> Self {
        let mut set = BundleSet::new();
        for bundle in iter {
            set.insert(bundle);
        }
        set
    }
}

impl<B: TrustDomainBundle> Extend<B> for BundleSet<B> {
    fn extend<I: IntoIterator<Item = B>>(&mut self, iter: I) {
        for bundle in iter {
            self.insert(bundle);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn td(s: &str) -> TrustDomain {
        TrustDomain::parse(s).unwrap()
    }

    fn ca(name: &str) -> Vec<u8> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn parses_concatenated_der() {
        let (a, b) = (ca("a"), ca("b"));
        let bundle =
            X509Bundle::parse(td("example.org"), &[a.clone(), b.clone()].concat()).unwrap();
        assert_eq!(bundle.authorities().len(), 2);
        assert_eq!(bundle.authorities()[1].as_ref(), b.as_slice());
        assert_eq!(bundle.to_der(), [a, b].concat());
        assert_eq!(bundle.root_store().len(), 2);
    }

    #[test]
    fn refuses_bad_der() {
        let a = ca("a");
        assert_eq!(
            X509Bundle::parse(td("example.org"), &[]),
            Err(BundleError::Empty {
                trust_domain: td("example.org")
            })
        );
        let mut trailing = a.clone();
        trailing.push(0);
        assert!(matches!(
            X509Bundle::parse(td("example.org"), &trailing),
            Err(BundleError::Certificate { index: 1, .. })
        ));
        assert!(matches!(
            X509Bundle::parse(td("example.org"), &a[..a.len() - 1]),
            Err(BundleError::Certificate { index: 0, .. })
        ));
        assert!(matches!(
            X509Bundle::parse(td("example.org"), b"garbage"),
            Err(BundleError::Certificate { index: 0, .. })
        ));
    }

    #[test]
    fn reads_x509_entries_of_a_spiffe_bundle() {
        let a = ca("a");
        let doc = serde_json::json!({"keys": [
            {"use": "x509-svid", "kty": "EC", "x5c": [BASE64.encode(&a)]},
            {"use": "jwt-svid", "kty": "EC", "kid": "k"},
        ]});
        let bundle = X509Bundle::from_jwks(td("example.org"), doc.to_string().as_bytes()).unwrap();
        assert_eq!(bundle.authorities().len(), 1);
        let bad = serde_json::json!({"keys": [{"use": "x509-svid", "x5c": []}]});
        assert!(matches!(
            X509Bundle::from_jwks(td("example.org"), bad.to_string().as_bytes()),
            Err(BundleError::Jwks { .. })
        ));
    }

    #[test]
    fn set_keeps_one_bundle_per_trust_domain() {
        let mut set = X509BundleSet::new();
        assert!(
            set.insert(X509Bundle::parse(td("a.org"), &ca("1")).unwrap())
                .is_none()
        );
        assert!(
            set.insert(X509Bundle::parse(td("b.org"), &ca("2")).unwrap())
                .is_none()
        );
        assert!(
            set.insert(X509Bundle::parse(td("a.org"), &ca("3")).unwrap())
                .is_some()
        );
        assert_eq!(set.len(), 2);
        assert!(set.get(&td("a.org")).is_some());
        assert!(set.get(&td("c.org")).is_none());
    }
}
