//! The client side's check of a server's X509-SVID.

use std::sync::Arc;

use rustls::RootCertStore;
use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

use super::{Authorizer, TlsError, certificate_error, provider, svid_spiffe_id};
use crate::SpiffeId;

/// Accepts a server certificate when it chains to one of the bundle's roots
/// and its SPIFFE ID (its only URI SAN) satisfies the [`Authorizer`]. No
/// DNS name is checked: SVIDs are identified by SPIFFE ID.
#[derive(Debug)]
pub struct SpiffeServerVerifier {
    roots: RootCertStore,
    authorizer: Authorizer,
    provider: Arc<CryptoProvider>,
}

impl SpiffeServerVerifier {
    /// Trusts `bundle` (DER CA certificates) and expects exactly `expected`.
    pub fn new(bundle: &[Vec<u8>], expected: SpiffeId) -> Result<Self, TlsError> {
        Self::with_authorizer(bundle, Authorizer::exact(expected))
    }

    /// Trusts `bundle` (DER CA certificates) and accepts whatever
    /// `authorizer` accepts.
    pub fn with_authorizer(bundle: &[Vec<u8>], authorizer: Authorizer) -> Result<Self, TlsError> {
        let mut roots = RootCertStore::empty();
        for (i, der) in bundle.iter().enumerate() {
            roots
                .add(CertificateDer::from(der.clone()))
                .map_err(|e| TlsError::Bundle(format!("certificate {i}: {e}")))?;
        }
        if roots.is_empty() {
            return Err(TlsError::Bundle(
                "no CA certificate in the bundle".to_owned(),
            ));
        }
        Ok(SpiffeServerVerifier {
            roots,
            authorizer,
            provider: provider(),
        })
    }

    /// A client config with this verifier, no client certificate and ALPN `h2`.
    pub fn client_config(self) -> Result<rustls::ClientConfig, TlsError> {
        let provider = Arc::clone(&self.provider);
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(self))
            .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(config)
    }

    /// A client config with this verifier that authenticates itself with
    /// whatever `client_cert` resolves at each handshake, and ALPN `h2`.
    pub fn client_config_with_client_cert(
        self,
        client_cert: Arc<dyn rustls::client::ResolvesClientCert>,
    ) -> Result<rustls::ClientConfig, TlsError> {
        let provider = Arc::clone(&self.provider);
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(self))
            .with_client_cert_resolver(client_cert);
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(config)
    }
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
        let id = svid_spiffe_id(end_entity.as_ref())
            .map_err(|e| certificate_error(format!("server SVID: {e}")))?;
        if !self.authorizer.authorize(&id) {
            return Err(certificate_error(format!(
                "server SPIFFE ID {id} is not authorized ({:?})",
                self.authorizer
            )));
        }
        Ok(ServerCertVerified::assertion())
    }

    verify_handshake_signatures_with_provider!();
}
