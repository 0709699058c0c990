//! The issuance API (`rootmark.node.v1.Issuance`, DESIGN §4), served over
//! mutual TLS authenticated by the node SVID.
//!
//! * **Authentication.** The TLS layer ([`NodeClientVerifier`]) requires a
//!   client certificate that chains to the issuer's current X.509 bundle and
//!   carries exactly one URI SAN, a node ID
//!   `spiffe://<td>/rootmark/node/<64 hex>`; anything else fails the
//!   handshake. Handlers read the peer certificate again
//!   ([`tonic::Request::peer_certs`]) and extract the node ID from it, so a
//!   call that somehow arrives without one is answered `UNAUTHENTICATED`.
//! * **Authorisation.** Every call looks the node up in the datastore: an
//!   unknown or evicted node is refused, a banned one too. An entry matches
//!   a node when its `node_id` (if set) is the node's ID and all of its node
//!   selectors (if any) are among the node's selectors from its last
//!   accepted attestation; the store requires at least one of the two, so
//!   an entry never matches every node. Minting for an entry that does not
//!   exist or does not match answers `PERMISSION_DENIED` with
//!   "entry … does not match node …" in both cases.
//! * **Sync.** The stream sends the node's full state (matching entries,
//!   bundle, ban flag) at once, then re-reads it every
//!   [`IssuanceParts::sync_interval`] and sends it again only when it
//!   changed (periodic re-read with change detection; a push from the
//!   writers through a `tokio::sync::watch` can replace the polling later
//!   without changing the protocol). A banned node gets a last message with
//!   `banned` set and the stream ends with status OK.

use std::pin::Pin;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use rootmark_proto::node::v1 as pb;
use rootmark_proto::node::v1::issuance_server::{Issuance, IssuanceServer};
use rootmark_sdk::id::{SpiffeId, TrustDomain};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DistinguishedName, RootCertStore};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::convert::unix_ms;
use super::error::ServiceError;
use super::tls::{IssuerCertResolver, provider, uri_sans};
use crate::ca::{
    DEFAULT_JWT_SVID_TTL, DEFAULT_REFRESH_HINT, DEFAULT_X509_SVID_TTL, JwtAuthority, TrustBundle,
    WorkloadKey, X509Authority, verify_csr,
};
use crate::store::{Datastore, Entry, Node};

/// Largest issuance request accepted (a CSR or a list of audiences).
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// Largest issuance response sent (a sync message with many entries).
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// Default period of the sync stream's re-read.
pub const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_secs(5);

/// The path prefix of node SPIFFE IDs.
const NODE_PATH_PREFIX: &str = "/rootmark/node/";

/// What the issuance API needs.
pub struct IssuanceParts {
    /// The datastore (nodes, bans, entries).
    pub store: Arc<dyn Datastore>,
    /// The X.509 CA (SVIDs and the X.509 half of the bundle; also the
    /// trust anchor for node SVIDs).
    pub x509: Arc<X509Authority>,
    /// The JWT authority (JWT-SVIDs and the JWKS half of the bundle).
    pub jwt: Arc<JwtAuthority>,
    /// X509-SVID lifetime for entries without their own.
    pub x509_ttl: Duration,
    /// JWT-SVID lifetime for entries without their own.
    pub jwt_ttl: Duration,
    /// Lifetime of the issuer's own TLS SVID on this listener.
    pub issuer_svid_ttl: Duration,
    /// How often the sync stream re-reads the node's state.
    pub sync_interval: Duration,
}

impl IssuanceParts {
    /// Parts with the default TTLs (DESIGN §4) and sync interval.
    pub fn new(
        store: Arc<dyn Datastore>,
        x509: Arc<X509Authority>,
        jwt: Arc<JwtAuthority>,
    ) -> Self {
        IssuanceParts {
            store,
            x509,
            jwt,
            x509_ttl: DEFAULT_X509_SVID_TTL,
            jwt_ttl: DEFAULT_JWT_SVID_TTL,
            issuer_svid_ttl: DEFAULT_X509_SVID_TTL,
            sync_interval: DEFAULT_SYNC_INTERVAL,
        }
    }
}

/// The `Issuance` gRPC service.
#[derive(Clone)]
pub struct IssuanceService {
    inner: Arc<Inner>,
}

struct Inner {
    trust_domain: TrustDomain,
    store: Arc<dyn Datastore>,
    x509: Arc<X509Authority>,
    jwt: Arc<JwtAuthority>,
    x509_ttl: Duration,
    jwt_ttl: Duration,
    issuer_svid_ttl: Duration,
    sync_interval: Duration,
}

impl IssuanceService {
    /// A service over `parts`.
    pub fn new(parts: IssuanceParts) -> Self {
        IssuanceService {
            inner: Arc::new(Inner {
                trust_domain: parts.x509.trust_domain().clone(),
                store: parts.store,
                x509: parts.x509,
                jwt: parts.jwt,
                x509_ttl: parts.x509_ttl,
                jwt_ttl: parts.jwt_ttl,
                issuer_svid_ttl: parts.issuer_svid_ttl,
                sync_interval: parts.sync_interval.max(Duration::from_millis(10)),
            }),
        }
    }

    /// The gRPC server for this service, with the message size limits.
    pub fn into_server(self) -> IssuanceServer<Self> {
        IssuanceServer::new(self)
            .max_decoding_message_size(MAX_REQUEST_BYTES)
            .max_encoding_message_size(MAX_RESPONSE_BYTES)
    }
}

/// Serves the issuance API on `listener` over mutual TLS (the issuer's own
/// SVID, renewed at half-life; client certificates checked by
/// [`NodeClientVerifier`]) until the listener fails.
///
/// # Errors
/// [`ServiceError`] when the issuer SVID cannot be minted, the TLS
/// configuration cannot be built, or the server stops with an error.
pub async fn run_issuance_api(
    service: IssuanceService,
    listener: TcpListener,
) -> Result<(), ServiceError> {
    let ca = Arc::clone(&service.inner.x509);
    let ttl = service.inner.issuer_svid_ttl;
    let resolver = Arc::new(IssuerCertResolver::new(&ca, ttl)?);
    let verifier = Arc::new(NodeClientVerifier::new(Arc::clone(&ca))?);
    let tls = Arc::new(server_config(Arc::clone(&resolver), verifier)?);
    let renewer = tokio::spawn(super::renew_issuer_svid(
        Arc::clone(&ca),
        Arc::clone(&resolver),
        ttl,
    ));
    let incoming = super::tls_incoming(listener, tokio_rustls::TlsAcceptor::from(tls));
    tracing::info!("issuance API serving over mutual TLS");
    let result = tonic::transport::Server::builder()
        .add_service(service.into_server())
        .serve_with_incoming(incoming)
        .await;
    renewer.abort();
    result.map_err(ServiceError::from)
}

/// The node API's server configuration (TLS 1.2/1.3, the issuer's SVID,
/// ALPN `h2`) with client authentication required by `verifier`.
///
/// # Errors
/// [`ServiceError::Tls`] when rustls refuses the protocol versions.
pub fn server_config(
    resolver: Arc<IssuerCertResolver>,
    verifier: Arc<NodeClientVerifier>,
) -> Result<rustls::ServerConfig, ServiceError> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// The node ID a node SVID carries: its only URI SAN, which must be
/// `spiffe://<trust_domain>/rootmark/node/<64 lowercase hex>`.
///
/// # Errors
/// A message saying what is wrong with the certificate.
pub fn node_id_from_cert(der: &[u8], trust_domain: &TrustDomain) -> Result<SpiffeId, String> {
    let uris = uri_sans(der)?;
    let [uri] = uris.as_slice() else {
        return Err(format!(
            "expected exactly one URI SAN, found {}",
            uris.len()
        ));
    };
    let id = SpiffeId::parse(uri).map_err(|e| format!("URI SAN {uri:?}: {e}"))?;
    if !id.is_member_of(trust_domain) {
        return Err(format!("{id} is not in trust domain {trust_domain}"));
    }
    let ek = id
        .path()
        .strip_prefix(NODE_PATH_PREFIX)
        .ok_or_else(|| format!("{id} is not a node ID ({NODE_PATH_PREFIX}<ek sha256>)"))?;
    if ek.len() != 64
        || !ek
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(format!(
            "{id} is not a node ID (the last segment must be 64 lowercase hex digits)"
        ));
    }
    Ok(id)
}

/// The EK hash of a node ID checked by [`node_id_from_cert`].
fn ek_of(node_id: &SpiffeId) -> &str {
    node_id
        .path()
        .strip_prefix(NODE_PATH_PREFIX)
        .unwrap_or_default()
}

/// The server's client-certificate check: a certificate chain to the X.509
/// CA's current bundle (rebuilt when the bundle changes, so rotation is
/// followed) and a node ID as the only URI SAN.
pub struct NodeClientVerifier {
    ca: Arc<X509Authority>,
    provider: Arc<CryptoProvider>,
    cached: RwLock<CachedVerifier>,
}

/// The bundle a chain verifier was built for, and the verifier.
type CachedVerifier = (Vec<Vec<u8>>, Arc<dyn ClientCertVerifier>);

impl std::fmt::Debug for NodeClientVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeClientVerifier")
            .field("trust_domain", self.ca.trust_domain())
            .finish_non_exhaustive()
    }
}

impl NodeClientVerifier {
    /// A verifier trusting `ca`'s bundle.
    ///
    /// # Errors
    /// [`ServiceError::Setup`] when the bundle cannot be used as roots.
    pub fn new(ca: Arc<X509Authority>) -> Result<Self, ServiceError> {
        let provider = provider();
        let bundle = ca.bundle();
        let webpki = webpki_verifier(&bundle, &provider).map_err(ServiceError::Setup)?;
        Ok(NodeClientVerifier {
            ca,
            provider,
            cached: RwLock::new((bundle, webpki)),
        })
    }

    /// The chain verifier for the CA's current bundle.
    fn current(&self) -> Result<Arc<dyn ClientCertVerifier>, rustls::Error> {
        let bundle = self.ca.bundle();
        {
            let cached = self.cached.read().unwrap_or_else(PoisonError::into_inner);
            if cached.0 == bundle {
                return Ok(Arc::clone(&cached.1));
            }
        }
        let webpki = webpki_verifier(&bundle, &self.provider).map_err(rustls::Error::General)?;
        *self.cached.write().unwrap_or_else(PoisonError::into_inner) =
            (bundle, Arc::clone(&webpki));
        Ok(webpki)
    }
}

fn webpki_verifier(
    bundle: &[Vec<u8>],
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, String> {
    let mut roots = RootCertStore::empty();
    for der in bundle {
        roots
            .add(CertificateDer::from(der.clone()))
            .map_err(|e| format!("bundle root: {e}"))?;
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(provider))
        .build()
        .map_err(|e| format!("client verifier: {e}"))
}

fn bad_cert(reason: String) -> rustls::Error {
    rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
        Arc::new(std::io::Error::other(reason)),
    )))
}

impl ClientCertVerifier for NodeClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // No hints: the attestor has exactly one certificate to offer.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.current()?
            .verify_client_cert(end_entity, intermediates, now)?;
        node_id_from_cert(end_entity.as_ref(), self.ca.trust_domain()).map_err(bad_cert)?;
        Ok(ClientCertVerified::assertion())
    }

    // Handshake signatures are checked as by every SDK verifier.
    rootmark_sdk::verify_handshake_signatures_with_provider!();
}

/// Whether `entry` matches `node` (see the module docs).
pub fn entry_matches(entry: &Entry, node: &Node) -> bool {
    if entry.node_id.is_none() && entry.node_selectors.is_empty() {
        return false;
    }
    if let Some(id) = &entry.node_id
        && *id != node.spiffe_id
    {
        return false;
    }
    entry
        .node_selectors
        .iter()
        .all(|s| node.selectors.contains(s))
}

fn entry_to_proto(entry: &Entry) -> pb::RegistrationEntry {
    pb::RegistrationEntry {
        id: entry.id.clone(),
        spiffe_id: entry.spiffe_id.clone(),
        selectors: entry.selectors.clone(),
        x509_ttl_s: entry.x509_ttl_s.unwrap_or(0),
        jwt_ttl_s: entry.jwt_ttl_s.unwrap_or(0),
        dns_names: entry.dns_names.clone(),
        hint: entry.hint.clone().unwrap_or_default(),
        revision: entry.revision,
    }
}

/// A node as the issuance API sees it on one call.
enum NodeState {
    /// Attested and not banned.
    Active(Node),
    /// Banned (by the ban table or the node row).
    Banned(String),
}

type SyncStream = Pin<Box<dyn Stream<Item = Result<pb::SyncResponse, Status>> + Send>>;

impl Inner {
    /// The calling node's ID, from its TLS client certificate.
    fn peer_node<T>(&self, request: &Request<T>) -> Result<SpiffeId, ServiceError> {
        self.peer_node_until(request).map(|(id, _)| id)
    }

    /// The calling node's ID and when its node SVID expires. An HTTP/2
    /// connection outlives the certificate it was opened with, so expiry is
    /// checked on every call, not only at the handshake: a node that could
    /// not renew (its boot drifted out of policy) loses the issuance API
    /// when its node SVID runs out.
    fn peer_node_until<T>(
        &self,
        request: &Request<T>,
    ) -> Result<(SpiffeId, SystemTime), ServiceError> {
        let certs = request.peer_certs().ok_or_else(|| {
            ServiceError::Unauthenticated("no client certificate was presented".to_owned())
        })?;
        let leaf = certs.first().ok_or_else(|| {
            ServiceError::Unauthenticated("no client certificate was presented".to_owned())
        })?;
        let id = node_id_from_cert(leaf.as_ref(), &self.trust_domain)
            .map_err(ServiceError::Unauthenticated)?;
        let not_after = x509_parser::parse_x509_certificate(leaf.as_ref())
            .map_err(|e| ServiceError::Unauthenticated(format!("node SVID: {e}")))?
            .1
            .validity()
            .not_after
            .timestamp();
        let not_after =
            std::time::UNIX_EPOCH + Duration::from_secs(u64::try_from(not_after).unwrap_or(0));
        if not_after <= SystemTime::now() {
            return Err(ServiceError::Unauthenticated(format!(
                "the node SVID of {id} presented on this connection has expired; attest again and reconnect"
            )));
        }
        Ok((id, not_after))
    }

    /// The node's current state, read on a blocking thread.
    async fn node_state(&self, node_id: &SpiffeId) -> Result<NodeState, ServiceError> {
        let store = Arc::clone(&self.store);
        let id = node_id.to_string();
        let ek = ek_of(node_id).to_owned();
        tokio::task::spawn_blocking(move || {
            if let Some(ban) = store.ban(&ek)? {
                return Ok(NodeState::Banned(ban.reason));
            }
            let node = store
                .node(&id)?
                .ok_or_else(|| ServiceError::NodeNotAttested {
                    node_id: id.clone(),
                    reason: "is not attested",
                })?;
            if node.banned {
                return Ok(NodeState::Banned(
                    node.ban_reason
                        .clone()
                        .unwrap_or_else(|| "banned".to_owned()),
                ));
            }
            if node.evicted {
                return Err(ServiceError::NodeNotAttested {
                    node_id: id,
                    reason: "was evicted and must attest again",
                });
            }
            Ok(NodeState::Active(node))
        })
        .await?
    }

    /// The active node, or the error that refuses it.
    async fn active_node(&self, node_id: &SpiffeId) -> Result<Node, ServiceError> {
        match self.node_state(node_id).await? {
            NodeState::Active(node) => Ok(node),
            NodeState::Banned(reason) => Err(ServiceError::Banned { reason }),
        }
    }

    /// The entry `entry_id` if it matches `node`.
    async fn matching_entry(&self, node: &Node, entry_id: &str) -> Result<Entry, ServiceError> {
        if entry_id.is_empty() {
            return Err(ServiceError::InvalidRequest {
                field: "entry_id",
                reason: "required".to_owned(),
            });
        }
        let store = Arc::clone(&self.store);
        let id = entry_id.to_owned();
        let entry = tokio::task::spawn_blocking(move || store.entry(&id)).await??;
        match entry {
            Some(entry) if entry_matches(&entry, node) => Ok(entry),
            _ => Err(ServiceError::EntryNotMatching {
                entry_id: entry_id.chars().take(128).collect(),
                node_id: node.spiffe_id.clone(),
            }),
        }
    }

    fn bundle(&self) -> Result<pb::Bundle, ServiceError> {
        let bundle = TrustBundle::from_authorities(&self.x509, &self.jwt, 0, DEFAULT_REFRESH_HINT);
        Ok(pb::Bundle {
            trust_domain: bundle.trust_domain.to_string(),
            jwt_jwks: bundle.to_jwt_jwks_json()?,
            x509_authorities: bundle.x509_authorities,
        })
    }

    /// The node's full sync state (`sent_unix_ms` left at 0).
    async fn sync_state(&self, node_id: &SpiffeId) -> Result<pb::SyncResponse, ServiceError> {
        let node = match self.node_state(node_id).await? {
            NodeState::Active(node) => node,
            NodeState::Banned(reason) => {
                tracing::info!(node_id = %node_id, reason, "telling a banned node");
                return Ok(pb::SyncResponse {
                    entries: Vec::new(),
                    bundle: None,
                    banned: true,
                    sent_unix_ms: 0,
                });
            }
        };
        let store = Arc::clone(&self.store);
        let entries = tokio::task::spawn_blocking(move || store.list_entries()).await??;
        let mut entries: Vec<pb::RegistrationEntry> = entries
            .iter()
            .filter(|e| entry_matches(e, &node))
            .map(entry_to_proto)
            .collect();
        entries.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(pb::SyncResponse {
            entries,
            bundle: Some(self.bundle()?),
            banned: false,
            sent_unix_ms: 0,
        })
    }

    /// Feeds `tx` until the node is banned, the client goes away or reading
    /// the state fails.
    async fn sync_loop(
        self: Arc<Self>,
        node_id: SpiffeId,
        node_svid_expires: SystemTime,
        first: pb::SyncResponse,
        tx: mpsc::Sender<Result<pb::SyncResponse, Status>>,
    ) {
        let mut last = first;
        loop {
            tokio::select! {
                () = tokio::time::sleep(self.sync_interval) => {}
                () = tx.closed() => return,
            }
            if SystemTime::now() >= node_svid_expires {
                tracing::info!(node_id = %node_id, "sync stream ends: the node SVID expired");
                let _ = tx
                    .send(Err(Status::from(ServiceError::Unauthenticated(format!(
                        "the node SVID of {node_id} expired; attest again and reconnect"
                    )))))
                    .await;
                return;
            }
            let state = match self.sync_state(&node_id).await {
                Ok(state) => state,
                Err(e) => {
                    tracing::info!(node_id = %node_id, error = %e, "sync stream ends");
                    let _ = tx.send(Err(Status::from(e))).await;
                    return;
                }
            };
            if state == last {
                continue;
            }
            let banned = state.banned;
            let mut message = state.clone();
            message.sent_unix_ms = unix_ms(SystemTime::now());
            if tx.send(Ok(message)).await.is_err() || banned {
                return;
            }
            tracing::debug!(node_id = %node_id, entries = state.entries.len(), "sync update sent");
            last = state;
        }
    }
}

#[tonic::async_trait]
impl Issuance for IssuanceService {
    type SyncStream = SyncStream;

    async fn sync(
        &self,
        request: Request<pb::SyncRequest>,
    ) -> Result<Response<Self::SyncStream>, Status> {
        let (node_id, node_svid_expires) = self.inner.peer_node_until(&request)?;
        // The first state is read before answering, so an unknown or
        // evicted node gets an error status rather than an empty stream.
        let first = self.inner.sync_state(&node_id).await?;
        let (tx, rx) = mpsc::channel(4);
        let mut message = first.clone();
        message.sent_unix_ms = unix_ms(SystemTime::now());
        let banned = first.banned;
        // The channel is fresh and has room: this cannot fail or wait.
        let _ = tx.try_send(Ok(message));
        if !banned {
            tracing::info!(node_id = %node_id, entries = first.entries.len(), "sync stream opened");
            tokio::spawn(Arc::clone(&self.inner).sync_loop(node_id, node_svid_expires, first, tx));
        }
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn mint_x509_svid(
        &self,
        request: Request<pb::MintX509SvidRequest>,
    ) -> Result<Response<pb::X509SvidResponse>, Status> {
        let inner = &self.inner;
        let node_id = inner.peer_node(&request)?;
        let node = inner.active_node(&node_id).await?;
        let request = request.into_inner();
        let entry = inner.matching_entry(&node, &request.entry_id).await?;
        let spiffe_id = SpiffeId::parse(&entry.spiffe_id).map_err(|e| {
            ServiceError::Setup(format!("entry {} has a bad SPIFFE ID: {e}", entry.id))
        })?;
        let ttl = entry
            .x509_ttl_s
            .map_or(inner.x509_ttl, |s| Duration::from_secs(u64::from(s)));
        let ca = Arc::clone(&inner.x509);
        let dns = entry.dns_names.clone();
        let svid = tokio::task::spawn_blocking(move || {
            let key = match request.key {
                Some(pb::mint_x509_svid_request::Key::Csr(csr)) => {
                    verify_csr(&csr).map_err(ServiceError::Mint)?
                }
                Some(pb::mint_x509_svid_request::Key::Spki(spki)) => {
                    WorkloadKey::from_spki_der(&spki).map_err(ServiceError::Mint)?
                }
                None => {
                    return Err(ServiceError::InvalidRequest {
                        field: "key",
                        reason: "either csr or spki is required".to_owned(),
                    });
                }
            };
            ca.mint_x509_svid(&spiffe_id, &key, ttl, &dns)
                .map_err(ServiceError::Mint)
        })
        .await
        .map_err(ServiceError::from)??;
        tracing::info!(
            node_id = %node_id,
            entry_id = %entry.id,
            spiffe_id = %svid.spiffe_id,
            not_after = ?svid.not_after,
            "X509-SVID issued"
        );
        Ok(Response::new(pb::X509SvidResponse {
            spiffe_id: svid.spiffe_id.to_string(),
            expires_unix_ms: unix_ms(svid.not_after),
            chain: svid.chain_der,
        }))
    }

    async fn mint_jwt_svid(
        &self,
        request: Request<pb::MintJwtSvidRequest>,
    ) -> Result<Response<pb::JwtSvidResponse>, Status> {
        let inner = &self.inner;
        let node_id = inner.peer_node(&request)?;
        let node = inner.active_node(&node_id).await?;
        let request = request.into_inner();
        let entry = inner.matching_entry(&node, &request.entry_id).await?;
        if request.audience.is_empty() {
            return Err(ServiceError::InvalidRequest {
                field: "audience",
                reason: "at least one non-empty audience is required".to_owned(),
            }
            .into());
        }
        let spiffe_id = SpiffeId::parse(&entry.spiffe_id).map_err(|e| {
            ServiceError::Setup(format!("entry {} has a bad SPIFFE ID: {e}", entry.id))
        })?;
        let ttl = entry
            .jwt_ttl_s
            .map_or(inner.jwt_ttl, |s| Duration::from_secs(u64::from(s)));
        let svid = inner
            .jwt
            .mint_jwt_svid(&spiffe_id, &request.audience, ttl)
            .map_err(ServiceError::Mint)?;
        tracing::info!(
            node_id = %node_id,
            entry_id = %entry.id,
            spiffe_id = %svid.spiffe_id,
            "JWT-SVID issued"
        );
        Ok(Response::new(pb::JwtSvidResponse {
            spiffe_id: svid.spiffe_id.to_string(),
            expires_unix_ms: unix_ms(svid.expires_at),
            token: svid.token,
        }))
    }
}
