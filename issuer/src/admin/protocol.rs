//! The admin socket's messages (newline-delimited JSON).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Longest request line accepted, in bytes (newline included).
pub const MAX_REQUEST_BYTES: usize = 256 * 1024;

/// Longest response line a client accepts, in bytes.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// A registration entry to create, as the CLI sends it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntrySpec {
    /// The SPIFFE ID workloads matching the entry get.
    pub spiffe_id: String,
    /// Workload selectors, `TYPE:VALUE` (at least one).
    #[serde(default)]
    pub selectors: Vec<String>,
    /// Node selectors, `TYPE:VALUE`.
    #[serde(default)]
    pub node_selectors: Vec<String>,
    /// The one node (SPIFFE ID) the entry is for.
    #[serde(default)]
    pub node_id: Option<String>,
    /// X509-SVID TTL in seconds.
    #[serde(default)]
    pub x509_ttl_s: Option<u32>,
    /// JWT-SVID TTL in seconds.
    #[serde(default)]
    pub jwt_ttl_s: Option<u32>,
    /// DNS SANs.
    #[serde(default)]
    pub dns_names: Vec<String>,
    /// The SVID hint.
    #[serde(default)]
    pub hint: Option<String>,
    /// Whether the identity may use the admin API.
    #[serde(default)]
    pub admin: bool,
}

/// One admin request. `id` of nodes is a node SPIFFE ID
/// (`spiffe://<td>/rootmark/node/<EK hash>`) or the EK hash itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Create a registration entry.
    EntryCreate {
        /// The entry.
        entry: EntrySpec,
    },
    /// Every entry.
    EntryList,
    /// One entry.
    EntryShow {
        /// Entry id.
        id: String,
    },
    /// Delete an entry.
    EntryDelete {
        /// Entry id.
        id: String,
    },
    /// Every node.
    NodeList,
    /// One node.
    NodeShow {
        /// Node SPIFFE ID or EK hash.
        id: String,
    },
    /// Ban a TPM (by its node or EK hash; an EK hash need not have attested yet).
    NodeBan {
        /// Node SPIFFE ID or EK hash.
        id: String,
        /// Why.
        reason: String,
    },
    /// Lift a ban.
    NodeUnban {
        /// Node SPIFFE ID or EK hash.
        id: String,
    },
    /// Force a node to attest in full again.
    NodeEvict {
        /// Node SPIFFE ID or EK hash.
        id: String,
    },
    /// Recent attestations, newest first.
    AttestationList {
        /// Only this node's (SPIFFE ID or EK hash).
        #[serde(default)]
        node: Option<String>,
        /// At most this many.
        #[serde(default)]
        limit: Option<u32>,
    },
    /// One attestation with its PCR drift from the node's previous accepted one.
    AttestationShow {
        /// Attestation id.
        id: i64,
    },
    /// The trust bundle: X.509 roots and JWKS.
    BundleShow,
}

impl Request {
    /// The `op` name, for logs and audit records.
    pub fn op(&self) -> &'static str {
        match self {
            Request::EntryCreate { .. } => "entry_create",
            Request::EntryList => "entry_list",
            Request::EntryShow { .. } => "entry_show",
            Request::EntryDelete { .. } => "entry_delete",
            Request::NodeList => "node_list",
            Request::NodeShow { .. } => "node_show",
            Request::NodeBan { .. } => "node_ban",
            Request::NodeUnban { .. } => "node_unban",
            Request::NodeEvict { .. } => "node_evict",
            Request::AttestationList { .. } => "attestation_list",
            Request::AttestationShow { .. } => "attestation_show",
            Request::BundleShow => "bundle_show",
        }
    }
}

/// One response line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Response {
    /// Whether the request succeeded.
    pub ok: bool,
    /// The result, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// What went wrong (and how to fix it), when it did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Response {
    /// A success.
    pub fn success(result: Value) -> Self {
        Response {
            ok: true,
            result: Some(result),
            error: None,
        }
    }

    /// A failure.
    pub fn failure(error: impl Into<String>) -> Self {
        Response {
            ok: false,
            result: None,
            error: Some(error.into()),
        }
    }
}
