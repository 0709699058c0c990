//! TLS for the node API: the issuer's own X509-SVID
//! (`spiffe://<td>/rootmark/issuer`, minted by its CA over a key it
//! generates and renewed at half-life), and the attestor-side check of
//! that SVID against the bundle and the expected SPIFFE ID (which lives in
//! the SDK, [`rootmark_sdk::tls::SpiffeServerVerifier`], re-exported here).
//!
//! Everything uses the aws-lc-rs provider explicitly, so no process-wide
//! default provider is needed.

use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use rootmark_sdk::id::SpiffeId;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::convert::{half_life, p256_spki};
use super::error::ServiceError;
use crate::ca::{WorkloadKey, X509Authority};

pub use rootmark_sdk::tls::provider;

/// The issuer's SPIFFE ID in `trust_domain`: `spiffe://<td>/rootmark/issuer`.
pub fn issuer_spiffe_id(ca: &X509Authority) -> Result<SpiffeId, ServiceError> {
    SpiffeId::from_path(ca.trust_domain(), "/rootmark/issuer")
        .map_err(|e| ServiceError::Setup(format!("issuer SPIFFE ID: {e}")))
}

/// Serves the issuer's current SVID to every TLS handshake; [`renew`](Self::renew)
/// replaces it.
#[derive(Debug)]
pub struct IssuerCertResolver {
    current: RwLock<Arc<CertifiedKey>>,
    not_before: RwLock<(SystemTime, SystemTime)>,
}

impl IssuerCertResolver {
    /// Mints a first SVID for the issuer.
    pub fn new(ca: &X509Authority, ttl: Duration) -> Result<Self, ServiceError> {
        let (key, validity) = mint_issuer_svid(ca, ttl)?;
        Ok(IssuerCertResolver {
            current: RwLock::new(Arc::new(key)),
            not_before: RwLock::new(validity),
        })
    }

    /// When the current SVID should be renewed (its half-life).
    pub fn renew_at(&self) -> SystemTime {
        let (nb, na) = *self
            .not_before
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        half_life(nb, na)
    }

    /// Mints a new SVID over a new key and serves it from now on.
    pub fn renew(&self, ca: &X509Authority, ttl: Duration) -> Result<(), ServiceError> {
        let (key, validity) = mint_issuer_svid(ca, ttl)?;
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(key);
        *self
            .not_before
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = validity;
        Ok(())
    }
}

impl ResolvesServerCert for IssuerCertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(
            &self
                .current
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        ))
    }
}

fn mint_issuer_svid(
    ca: &X509Authority,
    ttl: Duration,
) -> Result<(CertifiedKey, (SystemTime, SystemTime)), ServiceError> {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
        .map_err(|_| ServiceError::Setup("cannot generate the issuer's TLS key".to_owned()))?;
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref())
        .map_err(|_| ServiceError::Setup("cannot load the issuer's TLS key".to_owned()))?;
    let spki = p256_spki(pair.public_key().as_ref())
        .ok_or_else(|| ServiceError::Setup("issuer TLS key is not a P-256 point".to_owned()))?;
    let key = WorkloadKey::from_spki_der(&spki)?;
    let id = issuer_spiffe_id(ca)?;
    let svid = ca.mint_x509_svid(&id, &key, ttl, &[])?;
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pkcs8.as_ref().to_vec()));
    let signing = rustls::crypto::aws_lc_rs::sign::any_ecdsa_type(&der)?;
    let chain = svid
        .chain_der
        .iter()
        .map(|c| CertificateDer::from(c.clone()))
        .collect();
    tracing::info!(spiffe_id = %id, not_after = ?svid.not_after, "minted the issuer's TLS SVID");
    Ok((
        CertifiedKey::new(chain, signing),
        (svid.not_before, svid.not_after),
    ))
}

/// The server side: TLS 1.2/1.3, no client authentication (the TPM
/// evidence authenticates the node), ALPN `h2`.
pub fn server_config(
    resolver: Arc<IssuerCertResolver>,
) -> Result<rustls::ServerConfig, ServiceError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

pub use rootmark_sdk::tls::SpiffeServerVerifier;

/// The URI SANs of a DER certificate.
pub fn uri_sans(der: &[u8]) -> Result<Vec<String>, String> {
    rootmark_sdk::tls::uri_sans(der).map_err(|e| e.to_string())
}
