//! The issuer's datastore: nodes, attestations, registration entries,
//! CA/JWT keys, bans, and the tamper-evident audit log (DESIGN §6).
//!
//! [`Datastore`] is the interface the issuer's services use; [`SqliteStore`]
//! is the embedded default (one file under the data dir), and a PostgreSQL
//! backend for several issuers behind one address can implement the same
//! trait later. The offline checks — [`verify_audit_chain`],
//! [`verify_store`], [`export_audit`] — open the SQLite file read-only, so
//! `rootmark-issuer audit verify|export` work with the issuer stopped.
//!
//! # Atomicity
//!
//! Every call that changes state appends its audit record **in the same
//! transaction** as the change: an attestation row, the node it accepted
//! and the audit record are committed together or not at all, and so are
//! an entry and its `entry.create` record, a ban and its `node.ban`
//! record, and so on. Writes take SQLite's write lock up front
//! (`BEGIN IMMEDIATE`), so concurrent writers — threads, several
//! `SqliteStore`s, several processes — queue instead of forking the chain.
//! With WAL and `synchronous=FULL`, a call that returned is on disk: a
//! SIGKILL or power loss afterwards loses nothing.
//!
//! # The audit chain
//!
//! Table `audit (seq, time, kind, actor, subject, payload, prev_hash, hash)`:
//!
//! - `seq` is 1, 2, 3… without gaps; `time` is Unix milliseconds;
//!   `kind` is one of [`audit::kind`] (or a custom event's kind); `actor`
//!   is `issuer` or `uid:<n>`; `subject` is the node ID, EK hash, entry id
//!   or key id the record is about (possibly empty); `payload` is JSON text.
//! - `prev_hash` is the previous record's `hash` (64 zeros for record 1);
//!   `hash = hex(sha256(prev_hash_bytes ‖ record_bytes))`, lowercase hex,
//!   where `prev_hash_bytes` are the 32 raw bytes and `record_bytes` is:
//!
//! ```text
//! "rootmark-audit-v1" 0x00                  18 bytes, names the format
//! seq                                       u64, big-endian
//! time                                      i64, big-endian
//! len(kind)    ‖ kind                       u32 big-endian length ‖ UTF-8 bytes
//! len(actor)   ‖ actor                      ditto
//! len(subject) ‖ subject                    ditto
//! len(payload) ‖ payload                    ditto: the stored text, byte for byte
//! ```
//!
//! The payload is hashed as stored, so checking needs no JSON
//! canonicalisation. An auditor can recompute the chain with nothing but
//! Python's standard library:
//!
//! ```text
//! import hashlib, sqlite3, struct, sys
//! db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
//! prev, n = bytes(32), 0
//! for seq, time, kind, actor, subject, payload, prev_hex, hash_hex in db.execute(
//!         "SELECT seq, time, kind, actor, subject, payload, prev_hash, hash FROM audit ORDER BY seq"):
//!     n += 1
//!     assert seq == n, f"record {n} missing"
//!     assert bytes.fromhex(prev_hex) == prev, f"record {seq}: prev_hash"
//!     rec = b"rootmark-audit-v1\0" + struct.pack(">Qq", seq, time)
//!     for f in (kind, actor, subject, payload):
//!         b = f.encode()
//!         rec += struct.pack(">I", len(b)) + b
//!     prev = hashlib.sha256(prev + rec).digest()
//!     assert prev.hex() == hash_hex, f"record {seq}: hash"
//! head_seq, head_hash = db.execute("SELECT seq, hash FROM audit_head").fetchone()
//! assert (head_seq, head_hash) == (n, prev.hex()), "records after the last one missing"
//! print(n, prev.hex())
//! ```
//!
//! Table `audit_head` holds the last record's seq and hash, updated in the
//! same transaction as every append, so deleting the *last* records is
//! detected too (a gap check alone cannot see a missing tail).
//!
//! What each built-in kind's payload holds (JSON objects, keys sorted):
//!
//! | kind | payload |
//! |---|---|
//! | `attestation` | `attestation_id`, `spiffe_id`, `peer`, `verdict` (the verifier's [`Verdict`](crate::verdict::Verdict)), `node` (`{"created": bool}` when accepted, else null) |
//! | `entry.create`, `entry.delete` | `entry`: the whole [`Entry`] |
//! | `node.ban`, `node.unban` | `ban`: the [`Ban`] set or lifted; `node`: its node ID or null |
//! | `node.evict` | `spiffe_id`, `ek_sha256` |
//! | `key.insert` | `table`, `id`, `kind`, `public_sha256`, `not_before`, `not_after`, `state` (never the private key) |
//! | `key.state` | `table`, `id`, `from`, `to` |
//!
//! # What the chain proves, and what it does not
//!
//! [`verify_audit_chain`] finds any record edited, removed or inserted by
//! someone who did not recompute the hashes after it, and names the first
//! such record. [`verify_store`] also checks that the tables hold what the
//! log says was written (an attestation row edited by hand is named by its
//! id). **Someone with write access to the whole file can rewrite the whole
//! chain** from the edited record on, head included, and it will verify:
//! the hashes are not secret. The defence is to keep heads elsewhere —
//! `audit export` to another machine or a ticket, periodically — and check
//! them with [`verify_audit_chain_with`]: a rewrite cannot keep an
//! exported head.
//!
//! # Secrets
//!
//! CA and JWT private keys are stored in the database file (PKCS#8 DER,
//! plaintext). The file is created mode 0600 (an existing file is
//! tightened to 0600, and SQLite gives its `-wal` and `-shm` files the same
//! mode); anyone who can read it can sign as the issuer. A KMS or TPM for
//! the keys comes later. Private keys never enter the audit log.
//!
//! # Threads and async
//!
//! Every method blocks (disk I/O and an fsync per write). From async code
//! call it in `tokio::task::spawn_blocking` or from a dedicated datastore
//! thread; never on the runtime's worker threads. `SqliteStore` is `Send +
//! Sync` and can be shared behind an `Arc`.

pub mod audit;
mod error;
pub mod limits;
mod replay;
mod sqlite;
mod types;
mod verify;

pub use error::{AuditBreak, StoreError};
pub use sqlite::{SCHEMA_VERSION, SqliteOptions, SqliteStore};
pub use types::{
    Actor, Attestation, AttestationQuery, AuditEvent, AuditHead, AuditRecord, AuditSummary, Ban,
    Entry, KeyRecord, KeyState, KeyTable, NewAttestation, NewEntry, NewKey, Node, Pcrs,
    RecordedAttestation, UnixMillis,
};
pub use verify::{export_audit, verify_audit_chain, verify_audit_chain_with, verify_store};

use serde::Serialize;

/// What [`verify_store`] checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoreReport {
    /// The audit chain.
    pub audit: AuditSummary,
    /// Attestation rows, each matched to its audit record.
    pub attestations: u64,
    /// Live entries, equal to the audit log's replay.
    pub entries: u64,
    /// Current bans, equal to the replay.
    pub bans: u64,
    /// CA and JWT keys, equal to the replay.
    pub keys: u64,
    /// Nodes, equal to the replay.
    pub nodes: u64,
}

/// The issuer's datastore.
///
/// Every method blocks: call it from `tokio::task::spawn_blocking` or a
/// dedicated thread. Every method that changes state writes its audit
/// record in the same transaction (see the [module docs](self)); `actor`
/// is who asked (an admin's uid from SO_PEERCRED, or [`Actor::Issuer`]).
/// Implementations must be safe to share between threads.
pub trait Datastore: Send + Sync {
    /// Records one attestation attempt, accepted or refused: inserts the
    /// attestation row, creates or updates the node when the verdict is
    /// accepted (clearing an eviction), and appends an `attestation` audit
    /// record, atomically.
    fn record_attestation(
        &self,
        att: &NewAttestation<'_>,
    ) -> Result<RecordedAttestation, StoreError>;

    /// One attestation by id.
    fn attestation(&self, id: i64) -> Result<Option<Attestation>, StoreError>;

    /// Attestations matching `query`, newest first.
    fn list_attestations(&self, query: &AttestationQuery) -> Result<Vec<Attestation>, StoreError>;

    /// A node by SPIFFE ID.
    fn node(&self, spiffe_id: &str) -> Result<Option<Node>, StoreError>;

    /// A node by EK hash.
    fn node_by_ek(&self, ek_sha256: &str) -> Result<Option<Node>, StoreError>;

    /// Every node, by SPIFFE ID.
    fn list_nodes(&self) -> Result<Vec<Node>, StoreError>;

    /// Marks a node evicted: it must attest in full (credential activation)
    /// before it gets a node SVID again. Audited as `node.evict`.
    fn evict_node(&self, spiffe_id: &str, actor: &Actor) -> Result<Node, StoreError>;

    /// Bans an EK (whether or not it has attested yet); its node, if any,
    /// is marked banned. Audited as `node.ban`. A second ban of the same
    /// EK is a [`StoreError::Conflict`].
    fn ban_node(&self, ek_sha256: &str, reason: &str, actor: &Actor) -> Result<Ban, StoreError>;

    /// Lifts a ban and returns it. Audited as `node.unban`.
    fn unban_node(&self, ek_sha256: &str, actor: &Actor) -> Result<Ban, StoreError>;

    /// The ban of an EK, if banned.
    fn ban(&self, ek_sha256: &str) -> Result<Option<Ban>, StoreError>;

    /// Every current ban.
    fn list_bans(&self) -> Result<Vec<Ban>, StoreError>;

    /// Creates a registration entry (validated and bounded by [`limits`];
    /// an identical entry is a [`StoreError::Conflict`]). Audited as
    /// `entry.create`.
    fn create_entry(&self, entry: &NewEntry, actor: &Actor) -> Result<Entry, StoreError>;

    /// One entry by id.
    fn entry(&self, id: &str) -> Result<Option<Entry>, StoreError>;

    /// Every entry, by SPIFFE ID.
    fn list_entries(&self) -> Result<Vec<Entry>, StoreError>;

    /// Deletes an entry and returns it. Audited as `entry.delete`.
    fn delete_entry(&self, id: &str, actor: &Actor) -> Result<Entry, StoreError>;

    /// Stores a CA or JWT key. Audited as `key.insert` (without the private
    /// key). Inserting a second active key is a [`StoreError::Conflict`].
    fn insert_key(
        &self,
        table: KeyTable,
        key: &NewKey,
        actor: &Actor,
    ) -> Result<KeyRecord, StoreError>;

    /// Moves a key through its rotation (prepared → active → retired).
    /// Activating a key retires the active one in the same transaction and
    /// returns its id. Each change is audited as `key.state`.
    fn set_key_state(
        &self,
        table: KeyTable,
        id: &str,
        state: KeyState,
        actor: &Actor,
    ) -> Result<Option<String>, StoreError>;

    /// Every key of a table, by `not_before`.
    fn list_keys(&self, table: KeyTable) -> Result<Vec<KeyRecord>, StoreError>;

    /// Appends an audit record for something that is not one of the calls
    /// above (a refused admin call, a configuration reload…). Built-in
    /// kinds are refused.
    fn append_event(&self, event: &AuditEvent<'_>) -> Result<AuditRecord, StoreError>;

    /// The chain's newest record.
    fn audit_head(&self) -> Result<AuditHead, StoreError>;

    /// Audit records after `after_seq`, oldest first, at most `limit`
    /// (0 = [`limits::DEFAULT_PAGE`]).
    fn audit_records(&self, after_seq: u64, limit: u32) -> Result<Vec<AuditRecord>, StoreError>;
}
