//! The attestor's moving parts after start-up: keeping the node attested
//! (renewal at half-life with a fresh quote, backoff with jitter while the
//! issuer is unreachable), following the issuance stream, rotating
//! X509-SVIDs, caching JWT-SVIDs, and writing the sealed cache before any
//! change is served.
//!
//! Everything the Workload API serves is one [`Snapshot`] published through
//! a `tokio::sync::watch` channel: it starts [`Readiness::Starting`] (the
//! API answers Unavailable) and only holds validated material.

pub mod issuer_link;
pub mod jwt_cache;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use issuer_link::{Backoff, IssuerLink};
pub use jwt_cache::{CachedJwt, JwtCache};

use crate::cache::SealedCache;
use crate::cache::state::{Entry, Readiness, Snapshot, from_unix_ms, to_unix_ms};
use crate::node::{NodeAttestor, NodeError, NodeIdentity};

/// How the attestor paces its retries.
#[derive(Debug, Clone)]
pub struct Timing {
    /// First retry delay after a failure.
    pub retry_base: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
    /// How often SVIDs are checked for rotation and expiry.
    pub rotation_tick: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            retry_base: Duration::from_millis(500),
            retry_max: Duration::from_secs(30),
            rotation_tick: Duration::from_millis(500),
        }
    }
}

/// The node's attestation status, for logs and health checks.
#[derive(Debug, Clone)]
pub struct NodeStatus {
    /// The node's SPIFFE ID.
    pub spiffe_id: String,
    /// When the node SVID expires.
    pub expires: SystemTime,
    /// When the next attestation is due.
    pub renew_after: SystemTime,
}

/// The running attestor's shared state.
#[derive(Debug)]
pub struct Agent {
    state: watch::Sender<Arc<Snapshot>>,
    node: watch::Sender<Option<NodeStatus>>,
    link: IssuerLink,
    jwt: JwtCache,
    timing: Timing,
    cache: Option<Arc<SealedCache>>,
    /// Serialises [`update`](Self::update)s (read, write to disk, publish).
    writer: tokio::sync::Mutex<()>,
}

impl Agent {
    /// An agent that serves `initial` (e.g. what the sealed cache held) until
    /// the issuer says otherwise, writing every change to `cache` if given.
    pub fn new(
        link: IssuerLink,
        jwt_capacity: usize,
        initial: Snapshot,
        timing: Timing,
        cache: Option<Arc<SealedCache>>,
    ) -> Arc<Self> {
        Arc::new(Agent {
            state: watch::Sender::new(Arc::new(initial)),
            node: watch::Sender::new(None),
            link,
            jwt: JwtCache::new(jwt_capacity),
            timing,
            cache,
            writer: tokio::sync::Mutex::new(()),
        })
    }

    /// The current state.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.state.borrow().clone()
    }

    /// A receiver that sees every new state.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.state.subscribe()
    }

    /// The node's attestation status (`None` before the first attestation
    /// and after the node SVID expired).
    pub fn node_status(&self) -> Option<NodeStatus> {
        self.node.borrow().clone()
    }

    /// Starts the background tasks: node attestation, issuance stream and
    /// rotation. `bundle` is the issuer CA the first attestation trusts.
    pub fn start(
        self: &Arc<Self>,
        attestor: NodeAttestor,
        bundle: Vec<Vec<u8>>,
    ) -> Vec<JoinHandle<()>> {
        vec![
            tokio::spawn(Arc::clone(self).node_loop(attestor, bundle)),
            tokio::spawn(Arc::clone(self).sync_loop()),
            tokio::spawn(Arc::clone(self).rotation_loop()),
        ]
    }

    /// Keeps the node attested: at start, at each `renew_after`, and with
    /// backoff after a failure. The node SVID is dropped once it expires.
    async fn node_loop(self: Arc<Self>, attestor: NodeAttestor, mut bundle: Vec<Vec<u8>>) {
        let mut backoff = Backoff::new(self.timing.retry_base, self.timing.retry_max);
        let mut current: Option<NodeIdentity> = None;
        loop {
            match attestor.attest(&bundle).await {
                Ok(identity) => {
                    backoff.reset();
                    // A key replaced on the way to this success is the key
                    // this identity certifies: nothing to drop.
                    attestor.take_node_key_replaced();
                    if let Err(e) = self.link.update(&identity) {
                        tracing::error!(error = %e, "cannot use the new node SVID for the issuance API");
                    }
                    bundle = identity.bundle.clone();
                    self.node.send_replace(Some(NodeStatus {
                        spiffe_id: identity.spiffe_id.to_string(),
                        expires: identity.expires,
                        renew_after: identity.renew_after,
                    }));
                    let wait = identity
                        .renew_after
                        .duration_since(SystemTime::now())
                        .unwrap_or_default();
                    current = Some(identity);
                    tokio::time::sleep(wait).await;
                }
                Err(e) => {
                    let delay = backoff.next_delay();
                    let still_valid = current
                        .as_ref()
                        .is_some_and(|id| id.expires > SystemTime::now());
                    if e.is_transient() {
                        tracing::warn!(error = %e, retry_in = ?delay, node_svid_valid = still_valid, "issuer unreachable; attestation will be retried");
                    } else {
                        tracing::error!(error = %e, retry_in = ?delay, node_svid_valid = still_valid, "attestation failed");
                    }
                    if still_valid && attestor.take_node_key_replaced() {
                        // The TPM no longer signs with the key the node SVID
                        // certifies: the boot changed. Nothing can be minted
                        // with it, and it must not be presented again.
                        tracing::error!(
                            "the boot changed and the node key with it; the node SVID is dropped until an attestation of the new boot succeeds"
                        );
                        current = None;
                        self.link.clear();
                        self.node.send_replace(None);
                    } else if !still_valid && current.take().is_some() {
                        tracing::warn!(
                            "the node SVID expired; the issuance API is out of reach until an attestation succeeds"
                        );
                        self.link.clear();
                        self.node.send_replace(None);
                    }
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// Follows the issuance `Sync` stream while the node has an identity.
    async fn sync_loop(self: Arc<Self>) {
        let mut backoff = Backoff::new(self.timing.retry_base, self.timing.retry_max);
        let mut node = self.node.subscribe();
        loop {
            if node.wait_for(Option::is_some).await.is_err() {
                return;
            }
            match self.follow_sync().await {
                Ok(()) => backoff.reset(),
                Err(e) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(error = %e, retry_in = ?delay, "issuance stream failed");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    async fn follow_sync(&self) -> Result<(), NodeError> {
        let addr = self.link.addr().to_owned();
        let mut stream = self
            .link
            .client()?
            .sync(rootmark_proto::node::v1::SyncRequest {})
            .await
            .map_err(NodeError::status("Sync", &addr))?
            .into_inner();
        while let Some(message) = stream
            .message()
            .await
            .map_err(NodeError::status("Sync", &addr))?
        {
            self.apply_sync(message).await;
        }
        // The issuer ends the stream after a ban, or when it shuts down.
        tokio::time::sleep(self.timing.retry_base).await;
        Ok(())
    }

    /// Changes the published state with `change` (which says whether it
    /// changed anything), writing the result to the sealed cache *before*
    /// publishing it: nothing is served that a restart would lose.
    async fn update(&self, change: impl FnOnce(&mut Snapshot) -> bool) {
        let _writer = self.writer.lock().await;
        let mut next = (*self.snapshot()).clone();
        if !change(&mut next) {
            return;
        }
        if let Some(cache) = &self.cache
            && next.readiness != Readiness::Starting
        {
            let cache = Arc::clone(cache);
            let copy = next.clone();
            match tokio::task::spawn_blocking(move || cache.store(&copy)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "cannot write the sealed cache"),
                Err(e) => tracing::error!(error = %e, "the sealed cache writer stopped"),
            }
        }
        self.state.send_replace(Arc::new(next));
    }

    /// Applies one `SyncResponse`: the full state of the node.
    async fn apply_sync(&self, message: rootmark_proto::node::v1::SyncResponse) {
        if message.banned {
            tracing::error!("the issuer banned this node: every identity is withdrawn");
            self.jwt.retain_entries(|_| false);
            self.update(|s| {
                s.readiness = Readiness::Banned;
                s.entries.clear();
                s.svids.clear();
                true
            })
            .await;
            return;
        }
        let entries: std::collections::BTreeMap<String, Entry> = message
            .entries
            .into_iter()
            .map(|e| (e.id.clone(), Entry::from(e)))
            .collect();
        self.jwt.retain_entries(|id| entries.contains_key(id));
        let bundle = message.bundle.map(Into::into);
        let now = SystemTime::now();
        self.update(|s| {
            let mut next = Snapshot {
                readiness: Readiness::Ready,
                entries,
                svids: std::mem::take(&mut s.svids),
                bundle: bundle.or_else(|| s.bundle.take()),
            };
            next.prune(now);
            let changed = *s != next;
            if changed {
                tracing::info!(entries = next.entries.len(), "issuance state updated");
            }
            *s = next;
            changed
        })
        .await;
    }

    /// Mints missing SVIDs, rotates those past their rotation time and drops
    /// expired ones.
    async fn rotation_loop(self: Arc<Self>) {
        let mut changes = self.state.subscribe();
        let mut backoff = Backoff::new(self.timing.retry_base, self.timing.retry_max);
        loop {
            let delay = match self.rotate_once().await {
                Ok(()) => {
                    backoff.reset();
                    self.timing.rotation_tick
                }
                Err(e) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(error = %e, retry_in = ?delay, "X509-SVID rotation failed");
                    delay
                }
            };
            tokio::select! {
                _ = changes.changed() => {}
                () = tokio::time::sleep(delay) => {}
            }
        }
    }

    async fn rotate_once(&self) -> Result<(), NodeError> {
        let now = SystemTime::now();
        self.update(|s| {
            let pruned = s.prune(now);
            if pruned {
                tracing::info!("expired X509-SVIDs withdrawn");
            }
            pruned
        })
        .await;
        let snapshot = self.snapshot();
        if snapshot.readiness != Readiness::Ready || self.node_status().is_none() {
            return Ok(());
        }
        for entry in snapshot.entries.values() {
            let due = snapshot
                .svids
                .get(&entry.id)
                .is_none_or(|svid| svid.needs_rotation(now, entry));
            if !due {
                continue;
            }
            let svid = self.link.mint_x509(entry).await?;
            tracing::info!(
                entry_id = %entry.id,
                spiffe_id = %svid.spiffe_id,
                expires = ?from_unix_ms(svid.expires_unix_ms),
                "X509-SVID minted"
            );
            self.update(|s| {
                let current = s.entries.get(&entry.id);
                if current.is_none_or(|e| e.revision != entry.revision) {
                    return false; // the entry changed or went away meanwhile
                }
                s.svids.insert(entry.id.clone(), svid);
                true
            })
            .await;
        }
        Ok(())
    }

    /// A JWT-SVID for `entry` and `audience`: cached while less than half
    /// its lifetime has passed, else minted. If the issuer cannot be reached,
    /// a cached token that has not expired is still served.
    pub async fn jwt_svid(
        &self,
        entry: &Entry,
        audience: &[String],
    ) -> Result<CachedJwt, NodeError> {
        let now = SystemTime::now();
        if let Some(token) = self.jwt.get(&entry.id, audience, now) {
            return Ok(token);
        }
        match self.link.mint_jwt(&entry.id, audience).await {
            Ok(minted) => {
                let token = CachedJwt {
                    spiffe_id: minted.spiffe_id,
                    token: minted.token,
                    issued_unix_ms: to_unix_ms(now),
                    expires_unix_ms: minted.expires_unix_ms,
                };
                self.jwt.insert(&entry.id, audience, token.clone(), now);
                Ok(token)
            }
            Err(e) => {
                if let Some(token) = self.jwt.get_unexpired(&entry.id, audience, now) {
                    tracing::warn!(error = %e, entry_id = %entry.id, "issuer unreachable; serving a cached JWT-SVID");
                    return Ok(token);
                }
                Err(e)
            }
        }
    }
}
