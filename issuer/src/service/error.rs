//! What can go wrong while serving the node API.

use crate::verdict::Check;

/// Why a node-API call or the server failed. Turned into a gRPC status in
/// one place, `service/status.rs`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The attestor broke the protocol: a message is missing, out of
    /// order, or a field is malformed. Names the step or field.
    #[error("{step}: {reason}")]
    Protocol {
        /// The protocol step or field (`hello`, `challenge_response.pcr_banks`…).
        step: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// The attestor did not send the next message in time.
    #[error("timed out waiting for {step} after {seconds}s")]
    Timeout {
        /// The message that was awaited.
        step: &'static str,
        /// How long the issuer waited.
        seconds: u64,
    },
    /// The verifier refused the evidence (the verdict is in the audit log).
    #[error("attestation refused at {check:?}: {reason}")]
    Refused {
        /// The first check that failed.
        check: Check,
        /// Why.
        reason: String,
    },
    /// The node's EK is banned.
    #[error("node is banned: {reason}")]
    Banned {
        /// The ban's reason.
        reason: String,
    },
    /// The node attested too often.
    #[error(
        "rate limit: at most {limit} attestations per node per minute; retry in {retry_after_s}s"
    )]
    RateLimited {
        /// Attempts allowed per minute.
        limit: u32,
        /// Seconds until the next attempt is allowed.
        retry_after_s: u64,
    },
    /// Too many attestations are in flight on this issuer.
    #[error("too many attestations in progress ({limit}); retry later")]
    Busy {
        /// Most pending attestations.
        limit: usize,
    },
    /// The datastore failed.
    #[error("datastore: {0}")]
    Store(#[from] crate::store::StoreError),
    /// The CA failed to mint.
    #[error("CA: {0}")]
    Ca(#[from] crate::ca::CaError),
    /// A configuration value or file could not be used at start-up.
    #[error("node API setup: {0}")]
    Setup(String),
    /// TLS configuration failed.
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// An I/O error (listener, files).
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// A blocking task panicked or was cancelled.
    #[error("internal task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// The gRPC server failed.
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// Issuance API: the caller did not present a usable node SVID (no
    /// client certificate, or not exactly one node SPIFFE ID in it).
    #[error("node SVID: {0}")]
    Unauthenticated(String),
    /// Issuance API: the node is not (or no longer) attested: unknown to the
    /// datastore, or evicted.
    #[error("node {node_id} {reason}")]
    NodeNotAttested {
        /// The caller's node SPIFFE ID.
        node_id: String,
        /// Why it cannot be served (`is not attested`, `was evicted`…).
        reason: &'static str,
    },
    /// Issuance API: the entry does not exist or does not match the calling
    /// node (both answered alike, so entry ids cannot be probed).
    #[error("entry {entry_id} does not match node {node_id}")]
    EntryNotMatching {
        /// The entry id asked for.
        entry_id: String,
        /// The caller's node SPIFFE ID.
        node_id: String,
    },
    /// Issuance API: a request field is missing or malformed.
    #[error("{field}: {reason}")]
    InvalidRequest {
        /// The request field (`entry_id`, `key`, `audience`…).
        field: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// Issuance API: the CA refused to mint for what the request carried
    /// (a bad key or CSR, an empty audience…); the error names the field.
    #[error("{0}")]
    Mint(crate::ca::CaError),
}

impl ServiceError {
    pub(crate) fn protocol(step: &'static str, reason: impl Into<String>) -> Self {
        ServiceError::Protocol {
            step,
            reason: reason.into(),
        }
    }
}
