//! rustls configurations backed by an [`X509Source`]: mutual TLS where
//! each side presents its current X509-SVID and accepts the other side when
//! its chain verifies against the *current* bundle of the peer's trust
//! domain and its SPIFFE ID satisfies an [`Authorizer`].
//!
//! Certificates rotate without rebuilding anything: the resolvers read the
//! source's current SVID at every handshake, and the verifiers read its
//! current bundles. Session resumption is disabled in both configurations,
//! because a resumed session would skip verification against the current
//! bundle. No DNS name is checked, so the `ServerName` a client
//! connects with is irrelevant (any valid name will do).
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use rootmark_sdk::{SpiffeId, X509Source};
//! use rootmark_sdk::tls::{Authorizer, client_config, server_config, peer_spiffe_id};
//!
//! let source = Arc::new(X509Source::new().await?);
//! let frontend = SpiffeId::parse("spiffe://example.org/frontend")?;
//! let server = Arc::new(server_config(source.clone(), Authorizer::exact(frontend))?);
//! // … accept with tokio-rustls using `server`; after the handshake:
//! # let connection = rustls::ServerConnection::new(server.clone())?;
//! let peer: Option<SpiffeId> = peer_spiffe_id(&connection);
//! # Ok(()) }
//! ```

use std::sync::{Arc, OnceLock};

use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, verify_server_cert_signed_by_trust_anchor};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ParsedCertificate, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{CommonState, DistinguishedName, SignatureScheme};

use super::{Authorizer, TlsError, certificate_error, svid_spiffe_id};
use crate::SpiffeId;
use crate::bundle::X509Bundle;
use crate::source::X509Source;
use crate::workload::X509Context;

/// The aws-lc-rs provider, built once.
fn shared_provider() -> &'static Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER.get_or_init(super::provider)
}

/// A server configuration: presents the source's current SVID, requires a
/// client certificate, and accepts clients whose SVID verifies against the
/// current bundle of their trust domain and satisfies `authorizer`.
///
/// # Errors
/// [`TlsError::Rustls`] if rustls refuses the protocol versions.
pub fn server_config(
    source: Arc<X509Source>,
    authorizer: Authorizer,
) -> Result<rustls::ServerConfig, TlsError> {
    let provider = Arc::clone(shared_provider());
    let verifier = SpiffeClientVerifier::new(Arc::clone(&source), authorizer);
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_cert_resolver(Arc::new(SvidResolver::new(source)));
    // A resumed session skips certificate verification: every connection
    // must be checked against the current bundle and SVID.
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    Ok(config)
}

/// A client configuration: presents the source's current SVID as client
/// certificate and accepts servers whose SVID verifies against the current
/// bundle of their trust domain and satisfies `authorizer`.
///
/// # Errors
/// [`TlsError::Rustls`] if rustls refuses the protocol versions.
pub fn client_config(
    source: Arc<X509Source>,
    authorizer: Authorizer,
) -> Result<rustls::ClientConfig, TlsError> {
    let provider = Arc::clone(shared_provider());
    let verifier = SourceServerVerifier::new(Arc::clone(&source), authorizer);
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_cert_resolver(Arc::new(SvidResolver::new(source)));
    // See `server_config`: no resumption, every handshake is verified.
    config.resumption = rustls::client::Resumption::disabled();
    Ok(config)
}

/// The SPIFFE ID of the peer of an established connection: the URI SAN of
/// the certificate it presented (which the verifiers above checked and
/// authorized). `None` before the handshake or without a valid SVID.
pub fn peer_spiffe_id(connection: &CommonState) -> Option<SpiffeId> {
    let leaf = connection.peer_certificates()?.first()?;
    svid_spiffe_id(leaf.as_ref()).ok()
}

/// Serves the source's current default SVID, on both sides of a handshake.
#[derive(Debug)]
pub struct SvidResolver {
    source: Arc<X509Source>,
}

impl SvidResolver {
    /// Serves `source`'s current default SVID.
    pub fn new(source: Arc<X509Source>) -> Self {
        SvidResolver { source }
    }

    fn current(&self) -> Arc<CertifiedKey> {
        Arc::clone(self.source.context().default_svid().certified_key())
    }
}

impl ResolvesServerCert for SvidResolver {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

impl ResolvesClientCert for SvidResolver {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// The peer's SPIFFE ID and the source's current context, which holds the
/// bundle of the peer's trust domain (checked to exist).
fn peer_context(
    source: &X509Source,
    end_entity: &CertificateDer<'_>,
    role: &str,
) -> Result<(SpiffeId, Arc<X509Context>), rustls::Error> {
    let id = svid_spiffe_id(end_entity.as_ref())
        .map_err(|e| certificate_error(format!("{role} SVID: {e}")))?;
    let context = source.context();
    if context.bundles().get(id.trust_domain()).is_none() {
        return Err(certificate_error(format!(
            "{role} SVID {id}: no X.509 bundle for trust domain {}",
            id.trust_domain()
        )));
    }
    Ok((id, context))
}

/// The bundle [`peer_context`] checked.
fn bundle_of<'a>(context: &'a X509Context, id: &SpiffeId) -> Result<&'a X509Bundle, rustls::Error> {
    context
        .bundles()
        .get(id.trust_domain())
        .ok_or_else(|| certificate_error(format!("no X.509 bundle for {}", id.trust_domain())))
}

fn authorize(authorizer: &Authorizer, id: &SpiffeId, role: &str) -> Result<(), rustls::Error> {
    if authorizer.authorize(id) {
        Ok(())
    } else {
        Err(certificate_error(format!(
            "{role} SPIFFE ID {id} is not authorized ({authorizer:?})"
        )))
    }
}

/// Client side: checks the server's SVID against the source's current
/// bundle of the server's trust domain, then the [`Authorizer`].
#[derive(Debug)]
pub struct SourceServerVerifier {
    source: Arc<X509Source>,
    authorizer: Authorizer,
    provider: Arc<CryptoProvider>,
}

impl SourceServerVerifier {
    /// Verifies against `source`'s bundles and accepts what `authorizer` accepts.
    pub fn new(source: Arc<X509Source>, authorizer: Authorizer) -> Self {
        SourceServerVerifier {
            source,
            authorizer,
            provider: Arc::clone(shared_provider()),
        }
    }
}

impl ServerCertVerifier for SourceServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let (id, context) = peer_context(&self.source, end_entity, "server")?;
        let bundle = bundle_of(&context, &id)?;
        let parsed = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(
            &parsed,
            bundle.root_store(),
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        authorize(&self.authorizer, &id, "server")?;
        Ok(ServerCertVerified::assertion())
    }

    verify_handshake_signatures_with_provider!();
}

/// Server side: requires a client SVID, checks it against the source's
/// current bundle of the client's trust domain, then the [`Authorizer`].
#[derive(Debug)]
pub struct SpiffeClientVerifier {
    source: Arc<X509Source>,
    authorizer: Authorizer,
    provider: Arc<CryptoProvider>,
}

impl SpiffeClientVerifier {
    /// Verifies against `source`'s bundles and accepts what `authorizer` accepts.
    pub fn new(source: Arc<X509Source>, authorizer: Authorizer) -> Self {
        SpiffeClientVerifier {
            source,
            authorizer,
            provider: Arc::clone(shared_provider()),
        }
    }

    /// The webpki client verifier over `bundle`'s roots, built once per
    /// bundle version.
    fn chain_verifier(
        &self,
        bundle: &X509Bundle,
    ) -> Result<Arc<dyn ClientCertVerifier>, rustls::Error> {
        bundle
            .client_verifier
            .get_or_init(|| {
                WebPkiClientVerifier::builder_with_provider(
                    Arc::clone(bundle.root_store()),
                    Arc::clone(&self.provider),
                )
                .build()
                .map_err(|e| e.to_string())
            })
            .clone()
            .map_err(|e| {
                certificate_error(format!(
                    "bundle of {} cannot verify clients: {e}",
                    bundle.trust_domain()
                ))
            })
    }
}

impl ClientCertVerifier for SpiffeClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let (id, context) = peer_context(&self.source, end_entity, "client")?;
        self.chain_verifier(bundle_of(&context, &id)?)?
            .verify_client_cert(end_entity, intermediates, now)?;
        authorize(&self.authorizer, &id, "client")?;
        Ok(ClientCertVerified::assertion())
    }

    verify_handshake_signatures_with_provider!();
}

#[cfg(test)]
mod tests;
