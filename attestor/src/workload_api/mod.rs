//! The SPIFFE Workload API on a Unix socket (DESIGN §5): the five RPCs of
//! `SpiffeWorkloadAPI`, the security header, caller identification by the
//! kernel, and full-state streams re-sent on every change.

pub mod connection;
mod status;
mod watch;

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use rootmark_proto::workload as pb;
use rootmark_proto::workload::spiffe_workload_api_server::{
    SpiffeWorkloadApi, SpiffeWorkloadApiServer,
};
use rootmark_sdk::jwt::{JwtBundle, claims_to_struct, validate_jwt_svid};
use rootmark_sdk::{TrustDomain, WORKLOAD_API_SECURITY_HEADER};
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

pub use connection::{ConnectionInfo, bind, incoming};
pub use status::WorkloadApiError;
use watch::SnapshotStream;

use crate::agent::Agent;
use crate::cache::state::{Entry, Readiness, Snapshot};
use crate::workload::{WorkloadAttestor, WorkloadSelectors};

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

/// The Workload API service.
#[derive(Debug, Clone)]
pub struct WorkloadApi {
    agent: Arc<Agent>,
    attestor: Arc<WorkloadAttestor>,
}

impl WorkloadApi {
    /// Serves what `agent` holds to callers identified by `attestor`.
    pub fn new(agent: Arc<Agent>, attestor: Arc<WorkloadAttestor>) -> Self {
        WorkloadApi { agent, attestor }
    }

    /// The tonic service.
    pub fn into_service(self) -> SpiffeWorkloadApiServer<Self> {
        SpiffeWorkloadApiServer::new(self)
    }

    /// Checks the security header and attests the caller.
    async fn caller<T>(&self, request: &Request<T>) -> Result<WorkloadSelectors, WorkloadApiError> {
        let header = request
            .metadata()
            .get(WORKLOAD_API_SECURITY_HEADER)
            .and_then(|v| v.to_str().ok());
        if header != Some("true") {
            return Err(WorkloadApiError::MissingSecurityHeader);
        }
        let info = request
            .extensions()
            .get::<ConnectionInfo>()
            .cloned()
            .ok_or(WorkloadApiError::NoIdentity)?;
        let peer = info.peer.ok_or(WorkloadApiError::NoIdentity)?;
        let attestor = Arc::clone(&self.attestor);
        let accepted_at = info.accepted_at;
        let attested =
            tokio::task::spawn_blocking(move || attestor.attest(peer, accepted_at)).await;
        match attested {
            Ok(Ok(selectors)) => {
                // What /proc described must still be the process that
                // connected: if that process has exited, its pid may now
                // name another one, whose selectors were just read.
                match info.process.as_ref().map(|p| p.still_alive()) {
                    Some(Some(true)) => Ok(selectors),
                    // Before Linux 5.3 the start-time check is the guard.
                    Some(None) => Ok(selectors),
                    _ => {
                        tracing::warn!(
                            pid = peer.pid,
                            uid = peer.uid,
                            "workload attestation failed: pid {} no longer names the caller: the process that connected has exited",
                            peer.pid
                        );
                        Err(WorkloadApiError::NoIdentity)
                    }
                }
            }
            Ok(Err(e)) => {
                tracing::warn!(pid = peer.pid, uid = peer.uid, error = %e, "workload attestation failed");
                Err(WorkloadApiError::NoIdentity)
            }
            Err(e) => {
                tracing::error!(error = %e, "workload attestation task failed");
                Err(WorkloadApiError::NoIdentity)
            }
        }
    }

    /// The caller's entries in `snapshot`, or why it has none.
    fn entries_for<'a>(
        snapshot: &'a Snapshot,
        selectors: &WorkloadSelectors,
    ) -> Result<Vec<&'a Entry>, WorkloadApiError> {
        match snapshot.readiness {
            Readiness::Starting => return Err(WorkloadApiError::NotReady),
            Readiness::Banned => return Err(WorkloadApiError::NoIdentity),
            Readiness::Ready => {}
        }
        let entries: Vec<&Entry> = snapshot
            .matching(|s| selectors.contains(s), SystemTime::now())
            .into_iter()
            .map(|(entry, _)| entry)
            .collect();
        if entries.is_empty() {
            return Err(WorkloadApiError::NoIdentity);
        }
        Ok(entries)
    }

    /// Streams `build(snapshot)` now and again whenever the result changes;
    /// an error ends the stream with that status.
    fn watch<T, F>(&self, build: F) -> ResponseStream<T>
    where
        T: prost::Message + Send + 'static,
        F: Fn(&Snapshot) -> Result<T, WorkloadApiError> + Send + Unpin + 'static,
    {
        Box::pin(SnapshotStream::new(self.agent.subscribe(), build))
    }
}

/// The X509-SVIDs of the caller's entries that have a valid SVID.
fn x509_response(
    snapshot: &Snapshot,
    selectors: &WorkloadSelectors,
) -> Result<pb::X509svidResponse, WorkloadApiError> {
    let entries = WorkloadApi::entries_for(snapshot, selectors)?;
    let now = SystemTime::now();
    let bundle = x509_bundle_der(snapshot);
    let svids: Vec<pb::X509svid> = entries
        .iter()
        .filter_map(|entry| {
            let svid = snapshot.svids.get(&entry.id)?;
            svid.is_valid_at(now).then(|| pb::X509svid {
                spiffe_id: svid.spiffe_id.clone(),
                x509_svid: svid.chain.concat(),
                x509_svid_key: svid.key_pkcs8.to_vec(),
                bundle: bundle.clone(),
                hint: entry.hint.clone(),
            })
        })
        .collect();
    if svids.is_empty() {
        // Entries match, but nothing valid is held: neither minted yet nor
        // left from before (issuer down, or expired).
        return Err(WorkloadApiError::NoIdentity);
    }
    Ok(pb::X509svidResponse {
        svids,
        crl: Vec::new(),
        federated_bundles: HashMap::new(),
    })
}

fn x509_bundle_der(snapshot: &Snapshot) -> Vec<u8> {
    snapshot
        .bundle
        .as_ref()
        .map(|b| b.x509_authorities.concat())
        .unwrap_or_default()
}

/// `spiffe://<td>`: the key of bundle maps.
fn trust_domain_key(snapshot: &Snapshot) -> Option<String> {
    snapshot
        .bundle
        .as_ref()
        .map(|b| format!("spiffe://{}", b.trust_domain))
}

fn x509_bundles_response(
    snapshot: &Snapshot,
    selectors: &WorkloadSelectors,
) -> Result<pb::X509BundlesResponse, WorkloadApiError> {
    WorkloadApi::entries_for(snapshot, selectors)?;
    let key = trust_domain_key(snapshot).ok_or(WorkloadApiError::NotReady)?;
    Ok(pb::X509BundlesResponse {
        crl: Vec::new(),
        bundles: HashMap::from([(key, x509_bundle_der(snapshot))]),
    })
}

fn jwt_bundles_response(
    snapshot: &Snapshot,
    selectors: &WorkloadSelectors,
) -> Result<pb::JwtBundlesResponse, WorkloadApiError> {
    WorkloadApi::entries_for(snapshot, selectors)?;
    let bundle = snapshot.bundle.as_ref().ok_or(WorkloadApiError::NotReady)?;
    Ok(pb::JwtBundlesResponse {
        bundles: HashMap::from([(
            format!("spiffe://{}", bundle.trust_domain),
            bundle.jwt_jwks.clone().into_bytes(),
        )]),
    })
}

#[tonic::async_trait]
impl SpiffeWorkloadApi for WorkloadApi {
    type FetchX509SVIDStream = ResponseStream<pb::X509svidResponse>;
    type FetchX509BundlesStream = ResponseStream<pb::X509BundlesResponse>;
    type FetchJWTBundlesStream = ResponseStream<pb::JwtBundlesResponse>;

    async fn fetch_x509svid(
        &self,
        request: Request<pb::X509svidRequest>,
    ) -> Result<Response<Self::FetchX509SVIDStream>, Status> {
        let selectors = self.caller(&request).await?;
        // Refuse up front rather than in the stream, so a caller without an
        // identity gets its status at once.
        x509_response(&self.agent.snapshot(), &selectors)?;
        Ok(Response::new(self.watch(move |snapshot| {
            x509_response(snapshot, &selectors)
        })))
    }

    async fn fetch_x509_bundles(
        &self,
        request: Request<pb::X509BundlesRequest>,
    ) -> Result<Response<Self::FetchX509BundlesStream>, Status> {
        let selectors = self.caller(&request).await?;
        x509_bundles_response(&self.agent.snapshot(), &selectors)?;
        Ok(Response::new(self.watch(move |snapshot| {
            x509_bundles_response(snapshot, &selectors)
        })))
    }

    async fn fetch_jwtsvid(
        &self,
        request: Request<pb::JwtsvidRequest>,
    ) -> Result<Response<pb::JwtsvidResponse>, Status> {
        let selectors = self.caller(&request).await?;
        let request = request.into_inner();
        if request.audience.is_empty() || request.audience.iter().any(String::is_empty) {
            return Err(WorkloadApiError::InvalidRequest(
                "audience must be specified (at least one, none empty)".to_owned(),
            )
            .into());
        }
        let snapshot = self.agent.snapshot();
        let mut entries = Self::entries_for(&snapshot, &selectors)?;
        if !request.spiffe_id.is_empty() {
            entries.retain(|e| e.spiffe_id == request.spiffe_id);
            if entries.is_empty() {
                return Err(WorkloadApiError::NoIdentity.into());
            }
        }
        let mut svids = Vec::with_capacity(entries.len());
        for entry in entries {
            let token = self
                .agent
                .jwt_svid(entry, &request.audience)
                .await
                .map_err(|e| {
                    tracing::warn!(entry_id = %entry.id, error = %e, "cannot mint a JWT-SVID");
                    if e.is_transient() {
                        WorkloadApiError::IssuerUnavailable(e.to_string())
                    } else {
                        WorkloadApiError::NoIdentity
                    }
                })?;
            svids.push(pb::Jwtsvid {
                spiffe_id: token.spiffe_id,
                svid: token.token,
                hint: entry.hint.clone(),
            });
        }
        Ok(Response::new(pb::JwtsvidResponse { svids }))
    }

    async fn fetch_jwt_bundles(
        &self,
        request: Request<pb::JwtBundlesRequest>,
    ) -> Result<Response<Self::FetchJWTBundlesStream>, Status> {
        let selectors = self.caller(&request).await?;
        jwt_bundles_response(&self.agent.snapshot(), &selectors)?;
        Ok(Response::new(self.watch(move |snapshot| {
            jwt_bundles_response(snapshot, &selectors)
        })))
    }

    async fn validate_jwtsvid(
        &self,
        request: Request<pb::ValidateJwtsvidRequest>,
    ) -> Result<Response<pb::ValidateJwtsvidResponse>, Status> {
        self.caller(&request).await?;
        let request = request.into_inner();
        if request.audience.is_empty() {
            return Err(
                WorkloadApiError::InvalidRequest("audience must be specified".to_owned()).into(),
            );
        }
        if request.svid.is_empty() {
            return Err(
                WorkloadApiError::InvalidRequest("svid must be specified".to_owned()).into(),
            );
        }
        let snapshot = self.agent.snapshot();
        let bundle = snapshot.bundle.as_ref().ok_or(WorkloadApiError::NotReady)?;
        let trust_domain =
            TrustDomain::parse(&bundle.trust_domain).map_err(|_| WorkloadApiError::NotReady)?;
        let jwt_bundle =
            JwtBundle::from_jwks(trust_domain, bundle.jwt_jwks.as_bytes()).map_err(|e| {
                tracing::error!(error = %e, "the issuer's JWT bundle is unusable");
                WorkloadApiError::NotReady
            })?;
        let svid = validate_jwt_svid(
            &request.svid,
            &jwt_bundle,
            &request.audience,
            SystemTime::now(),
        )
        .map_err(|e| WorkloadApiError::InvalidRequest(format!("invalid JWT-SVID: {e}")))?;
        Ok(Response::new(pb::ValidateJwtsvidResponse {
            spiffe_id: svid.spiffe_id().to_string(),
            claims: Some(claims_to_struct(svid.claims())),
        }))
    }
}
