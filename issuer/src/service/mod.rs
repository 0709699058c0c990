//! The node attestation API (`rootmark.node.v1.NodeAttestation`, DESIGN §3)
//! served over TLS with the issuer's own SVID.
//!
//! One bidirectional stream is one attestation: `Hello` → `Challenge` →
//! `ChallengeResponse` → `AttestResult`. Every attempt that reaches the
//! verifier (accepted, refused, banned) is recorded in the datastore with
//! its verdict, in one call, before the node hears the outcome; protocol
//! errors (a missing or out-of-order message) and rate-limited attempts are
//! only logged, so a flood cannot grow the audit log.
//!
//! Limits: the first message and the answer must each arrive within the
//! challenge lifetime; nonces are single use (tracked from `Challenge` to
//! `ChallengeResponse`, consumed by the first answer whatever its outcome);
//! `attestation.max_attestations_per_node_per_minute` per EK hash; at most
//! [`MAX_PENDING`] attestations in flight; messages up to
//! [`MAX_MESSAGE_BYTES`].

mod convert;
mod error;
pub mod issuance;
mod rate_limit;
mod status;
pub mod tls;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use rootmark_proto::node::v1 as pb;
use rootmark_proto::node::v1::node_attestation_server::{NodeAttestation, NodeAttestationServer};
use rootmark_sdk::id::{SpiffeId, TrustDomain};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

pub use error::ServiceError;
pub use rate_limit::RateLimiter;
pub use tls::{IssuerCertResolver, SpiffeServerVerifier};

use crate::ca::{WorkloadKey, X509Authority, X509CaConfig};
use crate::config::IssuerConfig;
use crate::ek::{EkAllowList, EkRoots, EkVerifier};
use crate::evidence::EvidenceVerifier;
use crate::policy::PolicySet;
use crate::store::{Datastore, NewAttestation, SqliteStore};
use crate::tpm::{ClockInfo, HashAlg, TpmtPublic};
use crate::verdict::{Check, Verdict};

/// Largest gRPC message accepted (event logs up to 2 MiB plus the rest).
pub const MAX_MESSAGE_BYTES: usize = 3 * 1024 * 1024;

/// Most attestations in flight (between `Challenge` and the answer).
pub const MAX_PENDING: usize = 10_000;

/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the node API needs, built from the configuration by
/// [`NodeAttestationService::from_config`] or by hand (tests).
pub struct NodeApiParts {
    /// The evidence verifier (EK trust, policies, challenge lifetime).
    pub verifier: EvidenceVerifier,
    /// The datastore.
    pub store: Arc<dyn Datastore>,
    /// The X.509 CA.
    pub ca: Arc<X509Authority>,
    /// Node SVID lifetime.
    pub node_ttl: Duration,
    /// How long the node has for each message (should equal the
    /// verifier's challenge lifetime).
    pub challenge_ttl: Duration,
    /// Attestations allowed per node per minute.
    pub max_attestations_per_node_per_minute: u32,
}

/// The `NodeAttestation` gRPC service.
#[derive(Clone)]
pub struct NodeAttestationService {
    inner: Arc<Inner>,
}

struct Inner {
    trust_domain: TrustDomain,
    verifier: EvidenceVerifier,
    store: Arc<dyn Datastore>,
    ca: Arc<X509Authority>,
    node_ttl: Duration,
    challenge_ttl: Duration,
    limiter: RateLimiter,
    nonces: Mutex<HashSet<[u8; 32]>>,
}

impl NodeAttestationService {
    /// A service over `parts`.
    pub fn new(parts: NodeApiParts) -> Self {
        let trust_domain = parts.ca.trust_domain().clone();
        NodeAttestationService {
            inner: Arc::new(Inner {
                trust_domain,
                verifier: parts.verifier,
                store: parts.store,
                ca: parts.ca,
                node_ttl: parts.node_ttl,
                challenge_ttl: parts.challenge_ttl,
                limiter: RateLimiter::new(parts.max_attestations_per_node_per_minute),
                nonces: Mutex::new(HashSet::new()),
            }),
        }
    }

    /// Builds everything from the issuer configuration: EK roots and
    /// allow-list, node policies, the SQLite store and the CA under
    /// `data_dir` (the CA in `data_dir/ca`).
    ///
    /// # Errors
    /// [`ServiceError::Setup`] naming the file or key that is unusable.
    pub fn from_config(config: &IssuerConfig) -> Result<Self, ServiceError> {
        let setup =
            |what: &str, e: &dyn std::fmt::Display| ServiceError::Setup(format!("{what}: {e}"));
        let roots = EkRoots::load_dir(&config.attestation.ek_roots)
            .map_err(|e| setup("attestation.ek_roots", &e))?;
        let allow = match &config.attestation.ek_allow_list {
            Some(path) => {
                EkAllowList::load_file(path).map_err(|e| setup("attestation.ek_allow_list", &e))?
            }
            None => EkAllowList::empty(),
        };
        let policies =
            PolicySet::compile(&config.node_policy).map_err(|e| setup("node_policy", &e))?;
        let challenge_ttl = config.attestation.challenge_ttl.0;
        let verifier = EvidenceVerifier::new(EkVerifier::new(roots, allow), policies)
            .with_challenge_lifetime(challenge_ttl);
        let store = SqliteStore::open_in_dir(&config.data_dir)?;
        let trust_domain =
            TrustDomain::parse(&config.trust_domain).map_err(|e| setup("trust_domain", &e))?;
        let mut ca_config = X509CaConfig::new(trust_domain).with_ca_ttl(config.ca.ttl.0);
        if let (Some(cert), Some(key)) = (&config.ca.upstream_cert, &config.ca.upstream_key) {
            ca_config = ca_config.with_upstream(crate::ca::UpstreamCa::load(cert, key, None)?);
        }
        let ca = X509Authority::open(
            ca_config,
            &config.data_dir.join("ca"),
            Arc::new(crate::ca::SystemClock),
        )?;
        Ok(Self::new(NodeApiParts {
            verifier,
            store: Arc::new(store),
            ca: Arc::new(ca),
            node_ttl: config.svid.node_ttl.0,
            challenge_ttl,
            max_attestations_per_node_per_minute: config
                .attestation
                .max_attestations_per_node_per_minute,
        }))
    }

    /// The CA the service mints with.
    pub fn ca(&self) -> &Arc<X509Authority> {
        &self.inner.ca
    }

    /// The gRPC server for this service, with the message size limits.
    pub fn into_server(self) -> NodeAttestationServer<Self> {
        NodeAttestationServer::new(self)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES)
    }
}

/// Serves the node API on `listener` over TLS with a freshly minted issuer
/// SVID (renewed at half-life) until the listener fails.
///
/// # Errors
/// [`ServiceError`] when the issuer SVID cannot be minted or the server
/// stops with an error.
pub async fn run_node_api(
    service: NodeAttestationService,
    listener: TcpListener,
) -> Result<(), ServiceError> {
    let ca = Arc::clone(service.ca());
    let ttl = service.inner.node_ttl;
    let resolver = Arc::new(IssuerCertResolver::new(&ca, ttl)?);
    let tls = Arc::new(tls::server_config(Arc::clone(&resolver))?);
    let renewer = tokio::spawn(renew_issuer_svid(ca, Arc::clone(&resolver), ttl));
    let incoming = tls_incoming(listener, tokio_rustls::TlsAcceptor::from(tls));
    tracing::info!("node attestation API serving over TLS");
    let result = tonic::transport::Server::builder()
        .add_service(service.into_server())
        .serve_with_incoming(incoming)
        .await;
    renewer.abort();
    result.map_err(ServiceError::from)
}

/// Renews the issuer's TLS SVID at half-life, for ever.
async fn renew_issuer_svid(
    ca: Arc<X509Authority>,
    resolver: Arc<IssuerCertResolver>,
    ttl: Duration,
) {
    loop {
        let wait = resolver
            .renew_at()
            .duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
            .max(Duration::from_secs(5));
        tokio::time::sleep(wait).await;
        let (ca2, resolver2) = (Arc::clone(&ca), Arc::clone(&resolver));
        match tokio::task::spawn_blocking(move || resolver2.renew(&ca2, ttl)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "cannot renew the issuer's TLS SVID"),
            Err(e) => tracing::error!(error = %e, "issuer SVID renewal task failed"),
        }
    }
}

/// Accepts TCP connections and completes TLS handshakes concurrently (a
/// slow client does not hold up the others), yielding finished streams.
fn tls_incoming(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
) -> ReceiverStream<Result<tokio_rustls::server::TlsStream<tokio::net::TcpStream>, std::io::Error>>
{
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "node API accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            if tx.is_closed() {
                break;
            }
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => {
                        let _ = tx.send(Ok(tls)).await;
                    }
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

type AttestStream = Pin<Box<dyn Stream<Item = Result<pb::AttestResponse, Status>> + Send>>;

#[tonic::async_trait]
impl NodeAttestation for NodeAttestationService {
    type AttestStream = AttestStream;

    async fn attest(
        &self,
        request: Request<Streaming<pb::AttestRequest>>,
    ) -> Result<Response<Self::AttestStream>, Status> {
        let peer = request.remote_addr();
        let inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(2);
        let inner = Arc::clone(&self.inner);
        tokio::spawn(async move {
            let outcome = inner.attestation(inbound, &tx, peer).await;
            let last = match outcome {
                Ok(result) => Ok(pb::AttestResponse {
                    step: Some(pb::attest_response::Step::Result(result)),
                }),
                Err(e) => {
                    tracing::info!(peer = ?peer, error = %e, "attestation ended with an error");
                    Err(Status::from(e))
                }
            };
            let _ = tx.send(last).await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

impl Inner {
    async fn next(
        &self,
        inbound: &mut Streaming<pb::AttestRequest>,
        step: &'static str,
    ) -> Result<pb::attest_request::Step, ServiceError> {
        let message = tokio::time::timeout(self.challenge_ttl, inbound.message())
            .await
            .map_err(|_| ServiceError::Timeout {
                step,
                seconds: self.challenge_ttl.as_secs(),
            })?
            .map_err(|status| ServiceError::protocol(step, status.message().to_owned()))?
            .ok_or_else(|| ServiceError::protocol(step, "the stream ended before it"))?;
        message
            .step
            .ok_or_else(|| ServiceError::protocol(step, "the message has no step set"))
    }

    /// Records `verdict` (on a blocking thread) and returns what was written.
    async fn record(
        &self,
        verdict: Verdict,
        spiffe_id: Option<String>,
        peer: Option<SocketAddr>,
    ) -> Result<Verdict, ServiceError> {
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || {
            let peer = peer.map(|p| p.to_string());
            let mut att = NewAttestation::new(&verdict);
            if let Some(id) = spiffe_id.as_deref() {
                att = att.spiffe_id(id);
            }
            if let Some(peer) = peer.as_deref() {
                att = att.peer(peer);
            }
            let recorded = store.record_attestation(&att)?;
            tracing::info!(
                attestation_id = recorded.attestation_id,
                audit_seq = recorded.audit_seq,
                accepted = verdict.accepted,
                failed_check = ?verdict.failed_check,
                ek_sha256 = verdict.ek_sha256.as_deref().unwrap_or(""),
                "attestation recorded"
            );
            Ok::<_, ServiceError>(verdict)
        })
        .await?
    }

    fn node_id(&self, ek_sha256: &str) -> Result<SpiffeId, ServiceError> {
        SpiffeId::from_path(&self.trust_domain, &format!("/rootmark/node/{ek_sha256}"))
            .map_err(|e| ServiceError::Setup(format!("node SPIFFE ID: {e}")))
    }

    async fn attestation(
        &self,
        mut inbound: Streaming<pb::AttestRequest>,
        tx: &mpsc::Sender<Result<pb::AttestResponse, Status>>,
        peer: Option<SocketAddr>,
    ) -> Result<pb::AttestResult, ServiceError> {
        let hello = match self.next(&mut inbound, "hello").await? {
            pb::attest_request::Step::Hello(hello) => hello,
            pb::attest_request::Step::ChallengeResponse(_) => {
                return Err(ServiceError::protocol(
                    "hello",
                    "the first message must be hello, found challenge_response",
                ));
            }
        };
        let hello = convert::hello_from_proto(hello);

        // The EK hash keys the rate limit and the ban. An EK public that does
        // not parse goes on to the verifier, which refuses and audits it.
        let ek_sha256 = TpmtPublic::from_tpm2b(&hello.ek_public)
            .ok()
            .map(|ek| hex::encode(HashAlg::Sha256.hash(ek.tpmt_bytes())));
        if let Some(ek) = ek_sha256.as_deref()
            && let Err(wait) = self.limiter.check(ek, Instant::now())
        {
            tracing::warn!(ek_sha256 = ek, peer = ?peer, "attestation rate limited");
            return Err(ServiceError::RateLimited {
                limit: self.limiter.limit(),
                retry_after_s: wait.as_secs().max(1),
            });
        }
        let (ban, previous) = match ek_sha256.clone() {
            Some(ek) => {
                let store = Arc::clone(&self.store);
                tokio::task::spawn_blocking(move || {
                    Ok::<_, ServiceError>((store.ban(&ek)?, store.node_by_ek(&ek)?))
                })
                .await??
            }
            None => (None, None),
        };
        let node_id = match ek_sha256.as_deref() {
            Some(ek) => Some(self.node_id(ek)?),
            None => None,
        };

        let now = SystemTime::now();
        let (pending, challenge) = match self.verifier.begin(&hello, now) {
            Ok(started) => started,
            Err(verdict) => {
                let verdict = self
                    .record(*verdict, node_id.map(|id| id.to_string()), peer)
                    .await?;
                return Err(refused(&verdict));
            }
        };
        if let Some(ban) = ban {
            let verdict = pending
                .verdict()
                .clone()
                .refuse(Check::EkTrust, format!("node is banned: {}", ban.reason));
            self.record(verdict, node_id.map(|id| id.to_string()), peer)
                .await?;
            return Err(ServiceError::Banned { reason: ban.reason });
        }
        let nonce = *pending.nonce();
        {
            let mut nonces = self.nonces.lock().unwrap_or_else(PoisonError::into_inner);
            if nonces.len() >= MAX_PENDING {
                return Err(ServiceError::Busy { limit: MAX_PENDING });
            }
            nonces.insert(nonce);
        }
        let _nonce_guard = NonceGuard {
            nonces: &self.nonces,
            nonce,
        };
        let wire = convert::challenge_to_proto(&challenge, now)?;
        tracing::debug!(
            ek_sha256 = ek_sha256.as_deref().unwrap_or(""),
            "challenge sent"
        );
        tx.send(Ok(pb::AttestResponse {
            step: Some(pb::attest_response::Step::Challenge(wire)),
        }))
        .await
        .map_err(|_| ServiceError::protocol("challenge", "the attestor went away"))?;

        let response = match self.next(&mut inbound, "challenge_response").await? {
            pb::attest_request::Step::ChallengeResponse(response) => response,
            _ => {
                return Err(ServiceError::protocol(
                    "challenge_response",
                    "the second message must be challenge_response",
                ));
            }
        };
        let response = convert::response_from_proto(response)?;
        // Single use: the nonce is consumed by the first answer.
        let fresh = self
            .nonces
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&nonce);
        let previous_clock = previous.as_ref().and_then(|n| n.clock).map(|c| ClockInfo {
            clock: c.clock,
            reset_count: c.reset_count,
            restart_count: c.restart_count,
            safe: true,
        });
        let mut verdict = if fresh {
            self.verifier
                .finish(pending, &response, previous_clock.as_ref(), Instant::now())
        } else {
            pending
                .verdict()
                .clone()
                .refuse(Check::Nonce, "the nonce was already used")
        };
        let mut node_key = None;
        if verdict.accepted {
            match convert::node_key_spki(&hello.node_key_public)
                .and_then(|spki| WorkloadKey::from_spki_der(&spki).map_err(|e| e.to_string()))
            {
                Ok(key) => node_key = Some(key),
                Err(reason) => verdict = verdict.refuse(Check::NodeKeyPublic, reason),
            }
        }
        let verdict = self
            .record(verdict, node_id.as_ref().map(ToString::to_string), peer)
            .await?;
        let (Some(key), Some(id), true) = (node_key, node_id, verdict.accepted) else {
            return Err(refused(&verdict));
        };

        let ca = Arc::clone(&self.ca);
        let ttl = self.node_ttl;
        let id2 = id.clone();
        let (svid, bundle) = tokio::task::spawn_blocking(move || {
            let svid = ca.mint_x509_svid(&id2, &key, ttl, &[])?;
            Ok::<_, ServiceError>((svid, ca.bundle()))
        })
        .await??;
        tracing::info!(spiffe_id = %id, not_after = ?svid.not_after, "node SVID issued");
        Ok(pb::AttestResult {
            node_svid_chain: svid.chain_der.clone(),
            trust_bundle: bundle,
            node_selectors: verdict.selectors.clone(),
            spiffe_id: id.to_string(),
            renew_after_unix_ms: convert::unix_ms(convert::half_life(
                svid.not_before,
                svid.not_after,
            )),
            expires_unix_ms: convert::unix_ms(svid.not_after),
        })
    }
}

/// The error for a refused verdict.
fn refused(verdict: &Verdict) -> ServiceError {
    ServiceError::Refused {
        check: verdict.failed_check.unwrap_or(Check::Policy),
        reason: verdict
            .reason
            .clone()
            .unwrap_or_else(|| "refused".to_owned()),
    }
}

/// Forgets an outstanding nonce when the attestation ends in any way.
struct NonceGuard<'a> {
    nonces: &'a Mutex<HashSet<[u8; 32]>>,
    nonce: [u8; 32],
}

impl Drop for NonceGuard<'_> {
    fn drop(&mut self) {
        self.nonces
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.nonce);
    }
}
