//! The records the datastore keeps, as the issuer reads and writes them.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::verdict::{ClockSummary, Verdict};

/// PCR values, bank name (`sha1`, `sha256`, …) → PCR index → lowercase hex;
/// the shape of [`Verdict::pcrs`].
pub type Pcrs = BTreeMap<String, BTreeMap<u32, String>>;

/// Unix time in milliseconds (UTC), as every time column stores it.
pub type UnixMillis = i64;

/// Who made a change; recorded as the audit record's `actor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Actor {
    /// The issuer itself (attestations, key rotation). Recorded as `issuer`.
    Issuer,
    /// An admin on the admin socket, identified by the kernel (SO_PEERCRED).
    /// Recorded as `uid:<n>`.
    Admin {
        /// The peer's uid.
        uid: u32,
    },
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Issuer => f.write_str("issuer"),
            Actor::Admin { uid } => write!(f, "uid:{uid}"),
        }
    }
}

/// One attestation attempt to record, with the verifier's verdict.
#[derive(Debug, Clone, Copy)]
pub struct NewAttestation<'a> {
    /// The verifier's verdict (accepted or refused).
    pub verdict: &'a Verdict,
    /// The node's SPIFFE ID (`spiffe://<td>/rootmark/node/<ek sha256>`): the
    /// store does not know the trust domain. Required when the verdict is
    /// accepted (the node row is keyed by it); recorded when known otherwise.
    pub spiffe_id: Option<&'a str>,
    /// The remote address of the attestor, for the audit trail.
    pub peer: Option<&'a str>,
}

impl<'a> NewAttestation<'a> {
    /// An attestation of `verdict` with no SPIFFE ID and no peer yet.
    pub fn new(verdict: &'a Verdict) -> Self {
        NewAttestation {
            verdict,
            spiffe_id: None,
            peer: None,
        }
    }

    /// Sets the node's SPIFFE ID.
    pub fn spiffe_id(mut self, spiffe_id: &'a str) -> Self {
        self.spiffe_id = Some(spiffe_id);
        self
    }

    /// Sets the remote address.
    pub fn peer(mut self, peer: &'a str) -> Self {
        self.peer = Some(peer);
        self
    }
}

/// What [`Datastore::record_attestation`](super::Datastore::record_attestation) wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordedAttestation {
    /// The new attestation row's id.
    pub attestation_id: i64,
    /// The audit record's sequence number.
    pub audit_seq: u64,
    /// The node as it is now (accepted verdicts only).
    pub node: Option<Node>,
}

/// One recorded attestation attempt.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attestation {
    /// Row id, increasing with time.
    pub id: i64,
    /// When it was recorded.
    pub time: UnixMillis,
    /// The EK hash, when the EK parsed.
    pub ek_sha256: Option<String>,
    /// The node's SPIFFE ID, when known.
    pub spiffe_id: Option<String>,
    /// Whether the node was accepted.
    pub accepted: bool,
    /// The first failed check (snake_case name of [`crate::verdict::Check`]).
    pub failed_check: Option<String>,
    /// Why it failed.
    pub reason: Option<String>,
    /// The AK's name, hex.
    pub ak_name: Option<String>,
    /// The nonce, hex.
    pub nonce: Option<String>,
    /// The quoted PCR values.
    pub pcrs: Pcrs,
    /// SHA-256 of the event log, hex.
    pub event_log_sha256: Option<String>,
    /// The node policies' results (the verdict's `policies`).
    pub policies: serde_json::Value,
    /// The whole verdict as JSON.
    pub verdict: serde_json::Value,
    /// The attestor's remote address.
    pub peer: Option<String>,
}

/// Which attestations [`Datastore::list_attestations`](super::Datastore::list_attestations) returns,
/// newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttestationQuery {
    /// Only this EK's.
    pub ek_sha256: Option<String>,
    /// Only accepted (`Some(true)`) or refused (`Some(false)`) ones.
    pub accepted: Option<bool>,
    /// Only those with a smaller id (paging; and "the attestation before
    /// this one" for PCR drift).
    pub before_id: Option<i64>,
    /// At most this many; 0 means [`limits::DEFAULT_PAGE`](super::limits::DEFAULT_PAGE),
    /// and more than [`limits::MAX_PAGE`](super::limits::MAX_PAGE) is capped.
    pub limit: u32,
}

/// A node that passed attestation at least once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node {
    /// `spiffe://<td>/rootmark/node/<ek sha256>`.
    pub spiffe_id: String,
    /// Lowercase hex SHA-256 of the EK's TPMT_PUBLIC.
    pub ek_sha256: String,
    /// The AK's name at the last accepted attestation, hex.
    pub ak_name: Option<String>,
    /// The TPM manufacturer from the EK certificate.
    pub manufacturer: Option<String>,
    /// The first accepted attestation's time.
    pub first_seen: UnixMillis,
    /// The last accepted attestation's time.
    pub last_attested: UnixMillis,
    /// The last accepted attestation's id.
    pub last_attestation_id: i64,
    /// The PCR values of the last accepted attestation.
    pub last_pcrs: Pcrs,
    /// The TPM clock of the last accepted attestation (the clock check
    /// compares the next one against it).
    pub clock: Option<ClockSummary>,
    /// Secure Boot state from the last accepted event log.
    pub secure_boot: Option<bool>,
    /// The node selectors of the last accepted attestation.
    pub selectors: Vec<String>,
    /// Whether the node's EK is banned.
    pub banned: bool,
    /// Why, when banned.
    pub ban_reason: Option<String>,
    /// Whether an admin evicted the node since its last accepted
    /// attestation: it must attest in full (credential activation) again.
    pub evicted: bool,
}

/// A ban of a TPM, by EK hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ban {
    /// The banned EK.
    pub ek_sha256: String,
    /// Why.
    pub reason: String,
    /// When.
    pub time: UnixMillis,
    /// Who (the actor, e.g. `uid:0`).
    pub banned_by: String,
}

/// A registration entry to create.
///
/// Selectors are `type:value` (e.g. `unix:uid:1000`, `tpm:policy:prod`);
/// the store sorts and deduplicates them, so order does not matter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewEntry {
    /// The SPIFFE ID workloads matching the entry get.
    pub spiffe_id: String,
    /// Node selectors that must all match the node.
    pub node_selectors: Vec<String>,
    /// Or/and: the one node (SPIFFE ID) the entry is for.
    pub node_id: Option<String>,
    /// Workload selectors that must all match the caller (at least one).
    pub selectors: Vec<String>,
    /// X509-SVID TTL in seconds; `None` = the issuer's default.
    pub x509_ttl_s: Option<u32>,
    /// JWT-SVID TTL in seconds; `None` = the issuer's default.
    pub jwt_ttl_s: Option<u32>,
    /// DNS SANs for the X509-SVID.
    pub dns_names: Vec<String>,
    /// The SVID hint (Workload API `hint`).
    pub hint: Option<String>,
    /// Whether the identity may use the admin API.
    pub admin: bool,
}

/// A stored registration entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Random UUID (v4) text.
    pub id: String,
    /// The SPIFFE ID workloads matching the entry get.
    pub spiffe_id: String,
    /// Node selectors, sorted.
    pub node_selectors: Vec<String>,
    /// The one node the entry is for, if any.
    pub node_id: Option<String>,
    /// Workload selectors, sorted.
    pub selectors: Vec<String>,
    /// X509-SVID TTL in seconds; `None` = the issuer's default.
    pub x509_ttl_s: Option<u32>,
    /// JWT-SVID TTL in seconds; `None` = the issuer's default.
    pub jwt_ttl_s: Option<u32>,
    /// DNS SANs, in the order given.
    pub dns_names: Vec<String>,
    /// The SVID hint.
    pub hint: Option<String>,
    /// Whether the identity may use the admin API.
    pub admin: bool,
    /// When it was created.
    pub created: UnixMillis,
    /// Bumped by every change (1 at creation), so the issuance stream can
    /// tell nodes what changed.
    pub revision: u64,
}

/// Which key table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyTable {
    /// X.509 CA keys (`ca_keys`).
    Ca,
    /// JWT signing keys (`jwt_keys`).
    Jwt,
}

impl KeyTable {
    /// The SQL table name.
    pub fn table(self) -> &'static str {
        match self {
            KeyTable::Ca => "ca_keys",
            KeyTable::Jwt => "jwt_keys",
        }
    }

    pub(crate) fn id_column(self) -> &'static str {
        match self {
            KeyTable::Ca => "id",
            KeyTable::Jwt => "kid",
        }
    }
}

/// Where a key is in its rotation (DESIGN §4: prepared at 1/2 of the
/// lifetime, active at 5/6, retired keys stay in the bundle until expiry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    /// Published in the bundle, not yet signing.
    Prepared,
    /// The one key that signs. At most one per table.
    Active,
    /// No longer signing; in the bundle until `not_after`.
    Retired,
}

impl KeyState {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Prepared => "prepared",
            KeyState::Active => "active",
            KeyState::Retired => "retired",
        }
    }

    /// Parses the stored text.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "prepared" => Some(KeyState::Prepared),
            "active" => Some(KeyState::Active),
            "retired" => Some(KeyState::Retired),
            _ => None,
        }
    }

    /// Whether rotation ever moves a key from `self` to `to`.
    pub fn can_become(self, to: KeyState) -> bool {
        matches!(
            (self, to),
            (KeyState::Prepared, KeyState::Active)
                | (KeyState::Prepared, KeyState::Retired)
                | (KeyState::Active, KeyState::Retired)
        )
    }
}

impl fmt::Display for KeyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A CA or JWT key to store.
///
/// **The private key is stored in the database file in plaintext** (PKCS#8
/// DER): the file is created mode 0600 in the issuer's data dir, and
/// anyone who can read it can sign as the issuer. Keeping keys in a KMS
/// or TPM is a later step.
#[derive(Clone)]
pub struct NewKey {
    /// The key id (`kid` for JWT keys).
    pub id: String,
    /// The algorithm, e.g. `ec-p256`.
    pub kind: String,
    /// CA keys: the DER certificate chain of this CA, itself first
    /// (concatenated). JWT keys: the SubjectPublicKeyInfo DER.
    pub public: Vec<u8>,
    /// PKCS#8 DER of the private key.
    pub private: Zeroizing<Vec<u8>>,
    /// Start of validity.
    pub not_before: UnixMillis,
    /// End of validity.
    pub not_after: UnixMillis,
    /// Initial state (normally `Prepared`, or `Active` for the very first key).
    pub state: KeyState,
}

impl fmt::Debug for NewKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewKey")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("public_len", &self.public.len())
            .field("private", &"<redacted>")
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .field("state", &self.state)
            .finish()
    }
}

/// A stored CA or JWT key. `Debug` does not print the private key.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyRecord {
    /// The key id (`kid` for JWT keys).
    pub id: String,
    /// The algorithm, e.g. `ec-p256`.
    pub kind: String,
    /// See [`NewKey::public`].
    pub public: Vec<u8>,
    /// PKCS#8 DER of the private key (wiped from memory on drop).
    pub private: Zeroizing<Vec<u8>>,
    /// Start of validity.
    pub not_before: UnixMillis,
    /// End of validity.
    pub not_after: UnixMillis,
    /// Rotation state.
    pub state: KeyState,
    /// When it was stored.
    pub created: UnixMillis,
}

impl fmt::Debug for KeyRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRecord")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("public_len", &self.public.len())
            .field("private", &"<redacted>")
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .field("state", &self.state)
            .field("created", &self.created)
            .finish()
    }
}

/// An audit event that is not one of the store's own writes (e.g. a
/// refused admin call, a configuration reload). Built-in kinds
/// ([`super::audit::kind`]) are refused here so that `verify_store`'s replay
/// can trust them.
#[derive(Debug, Clone, Copy)]
pub struct AuditEvent<'a> {
    /// Dotted lowercase name, e.g. `admin.denied`.
    pub kind: &'a str,
    /// Who.
    pub actor: Actor,
    /// What it is about (an ID, a path); may be empty.
    pub subject: &'a str,
    /// Details.
    pub payload: &'a serde_json::Value,
}

/// One audit record as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// 1, 2, 3… without gaps.
    pub seq: u64,
    /// When it was appended.
    pub time: UnixMillis,
    /// What happened (see [`super::audit::kind`]).
    pub kind: String,
    /// `issuer` or `uid:<n>`.
    pub actor: String,
    /// What it is about (node SPIFFE ID, EK hash, entry id, key id), or empty.
    pub subject: String,
    /// The details: JSON text, exactly the bytes the hash covers.
    pub payload: String,
    /// The previous record's hash (64 zeros for record 1), lowercase hex.
    pub prev_hash: String,
    /// This record's hash, lowercase hex.
    pub hash: String,
}

/// The newest record of the chain: export it elsewhere to detect a
/// rewrite of the whole chain later.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AuditHead {
    /// Its sequence number (0 for an empty chain).
    pub seq: u64,
    /// Its hash, lowercase hex (64 zeros for an empty chain).
    pub hash: String,
}

/// The result of a successful verification or export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditSummary {
    /// How many records the chain holds.
    pub records: u64,
    /// Its head.
    pub head: AuditHead,
}
