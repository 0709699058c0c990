//! TLS for the node API: the issuer's own X509-SVID
//! (`spiffe://<td>/rootmark/issuer`, minted by its CA over a key it
//! generates and renewed at half-life), and the attestor-side check of
//! that SVID against the bundle and the expected SPIFFE ID.
//!
//! Everything uses the aws-lc-rs provider explicitly, so no process-wide
//! default provider is needed.

use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use rootmark_sdk::id::SpiffeId;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::convert::{half_life, p256_spki};
use super::error::ServiceError;
use crate::ca::{WorkloadKey, X509Authority};

/// The aws-lc-rs crypto provider.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

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

/// The attestor side: a server certificate is accepted when it chains to
/// one of the bundle's roots and its only URI SAN is the expected SPIFFE ID
/// (no DNS name is checked: SVIDs are identified by SPIFFE ID).
#[derive(Debug)]
pub struct SpiffeServerVerifier {
    roots: RootCertStore,
    expected: SpiffeId,
    provider: Arc<CryptoProvider>,
}

impl SpiffeServerVerifier {
    /// Trusts `bundle` (DER CA certificates) and expects `expected`.
    pub fn new(bundle: &[Vec<u8>], expected: SpiffeId) -> Result<Self, ServiceError> {
        let mut roots = RootCertStore::empty();
        for der in bundle {
            roots.add(CertificateDer::from(der.clone()))?;
        }
        Ok(SpiffeServerVerifier {
            roots,
            expected,
            provider: provider(),
        })
    }

    /// A client config with this verifier and ALPN `h2`.
    pub fn client_config(self) -> Result<rustls::ClientConfig, ServiceError> {
        let provider = Arc::clone(&self.provider);
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(self))
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(config)
    }
}

/// The URI SANs of a DER certificate.
pub fn uri_sans(der: &[u8]) -> Result<Vec<String>, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| e.to_string())?;
    let mut uris = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::URI(uri) = name {
                uris.push((*uri).to_owned());
            }
        }
    }
    Ok(uris)
}

impl ServerCertVerifier for SpiffeServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &self.roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        let uris = uri_sans(end_entity.as_ref()).map_err(|e| {
            rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
                Arc::new(std::io::Error::other(e)),
            )))
        })?;
        if uris.len() != 1 || uris[0] != self.expected.as_str() {
            return Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Other(rustls::OtherError(Arc::new(
                    std::io::Error::other(format!(
                        "server SPIFFE ID: expected {}, found {uris:?}",
                        self.expected
                    )),
                ))),
            ));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
