//! Errors of the TLS glue.

/// Why TLS material could not be built or a certificate was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A certificate could not be parsed or is not a valid SVID.
    #[error("certificate: {0}")]
    Certificate(String),
    /// A trust bundle certificate could not be used as a trust anchor.
    #[error("trust bundle: {0}")]
    Bundle(String),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}
