//! rustls glue for SPIFFE: certificates are checked against a trust bundle
//! and the peer is identified by the single URI SAN of its X509-SVID, never
//! by a DNS name.
//!
//! | concept | module |
//! |---|---|
//! | who may be the peer | [`authorizer`] |
//! | server certificate check (client side) | [`server_verifier`] |
//! | live mTLS configs from an `X509Source` | [`config`] |
//!
//! Everything uses the aws-lc-rs provider explicitly, so no process-wide
//! default provider is needed.

/// The handshake-signature half of a rustls certificate verifier. Every
/// verifier in this module checks TLS 1.2/1.3 handshake signatures the same
/// way, with its `provider` field's algorithms; only the certificate checks
/// differ.
///
/// Not API: exported (hidden) so that the issuer's node-client verifier
/// shares it.
#[doc(hidden)]
#[macro_export]
macro_rules! verify_handshake_signatures_with_provider {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &$crate::__rustls::pki_types::CertificateDer<'_>,
            dss: &$crate::__rustls::DigitallySignedStruct,
        ) -> Result<
            $crate::__rustls::client::danger::HandshakeSignatureValid,
            $crate::__rustls::Error,
        > {
            $crate::__rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.provider.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &$crate::__rustls::pki_types::CertificateDer<'_>,
            dss: &$crate::__rustls::DigitallySignedStruct,
        ) -> Result<
            $crate::__rustls::client::danger::HandshakeSignatureValid,
            $crate::__rustls::Error,
        > {
            $crate::__rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.provider.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<$crate::__rustls::SignatureScheme> {
            self.provider
                .signature_verification_algorithms
                .supported_schemes()
        }
    };
}

pub mod authorizer;
pub mod config;
mod error;
pub mod server_verifier;

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

pub use authorizer::Authorizer;
pub use config::{
    SourceServerVerifier, SpiffeClientVerifier, SvidResolver, client_config, peer_spiffe_id,
    server_config,
};
pub use error::TlsError;
pub use server_verifier::SpiffeServerVerifier;

/// The aws-lc-rs crypto provider.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The URI SANs of a DER certificate, in order.
pub fn uri_sans(der: &[u8]) -> Result<Vec<String>, TlsError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| TlsError::Certificate(format!("not an X.509 certificate: {e}")))?;
    let mut uris = Vec::new();
    let san = cert
        .subject_alternative_name()
        .map_err(|e| TlsError::Certificate(format!("subjectAltName: {e}")))?;
    if let Some(san) = san {
        for name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::URI(uri) = name {
                uris.push((*uri).to_owned());
            }
        }
    }
    Ok(uris)
}

/// The SPIFFE ID of an X509-SVID: its one and only URI SAN, parsed.
pub fn svid_spiffe_id(der: &[u8]) -> Result<crate::SpiffeId, TlsError> {
    let uris = uri_sans(der)?;
    match uris.as_slice() {
        [one] => crate::SpiffeId::parse(one)
            .map_err(|e| TlsError::Certificate(format!("URI SAN {one:?}: {e}"))),
        _ => Err(TlsError::Certificate(format!(
            "an X509-SVID has exactly one URI SAN, found {}",
            uris.len()
        ))),
    }
}

/// Wraps a message as a rustls certificate error, so a handshake refusal
/// says why.
pub(crate) fn certificate_error(message: String) -> rustls::Error {
    rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
        Arc::new(TlsError::Certificate(message)),
    )))
}
