//! Errors of the datastore, each naming what failed.

use std::fmt;
use std::path::PathBuf;

/// Everything that can go wrong in the datastore.
///
/// Each variant names the table, the row and, where there is one, the
/// constraint or column, so an error reaches the admin (or the log) with
/// enough to act on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database file could not be opened or created.
    #[error("cannot open the datastore {path}: {source}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },

    /// A file-system operation around the database failed (data dir,
    /// permissions, the export writer).
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done, e.g. "cannot create the data dir".
        what: &'static str,
        /// The file or directory (or `-` for a caller-supplied writer).
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// SQLite would not switch the file to WAL mode (e.g. a network file
    /// system without shared memory); durability and concurrent reads
    /// depend on it, so the store refuses to run without it.
    #[error("cannot put the datastore {path} in WAL mode (journal mode stays {mode})")]
    NoWal {
        /// The database file.
        path: PathBuf,
        /// The journal mode SQLite kept.
        mode: String,
    },

    /// The file is a SQLite database but not a Rootmark datastore.
    #[error("{path} is not a Rootmark datastore (SQLite application_id {application_id:#x})")]
    NotADatastore {
        /// The database file.
        path: PathBuf,
        /// The application_id found in its header.
        application_id: i64,
    },

    /// The database was written by a newer release.
    #[error(
        "the datastore {path} has schema version {found}, newer than version {supported} that \
         this rootmark-issuer supports: it was written by a newer release; upgrade \
         rootmark-issuer (downgrading a datastore is not supported)"
    )]
    SchemaTooNew {
        /// The database file.
        path: PathBuf,
        /// The schema version found in the file.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },

    /// The database has no Rootmark schema (read-only opens never create one).
    #[error("the datastore {path} has no schema (was it ever opened by the issuer?)")]
    NoSchema {
        /// The database file.
        path: PathBuf,
    },

    /// A migration failed; nothing of it was applied.
    #[error("schema migration to version {version} failed: {source}")]
    Migration {
        /// The version being applied.
        version: i64,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },

    /// A SQL statement failed for a reason other than a constraint.
    #[error("datastore {op} on table {table} failed: {source}")]
    Sqlite {
        /// The operation, e.g. "insert", "select", "begin".
        op: &'static str,
        /// The table.
        table: &'static str,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },

    /// A row conflicts with an existing one (unique key, one active key…).
    #[error("{table} {id}: {constraint}")]
    Conflict {
        /// The table.
        table: &'static str,
        /// The row's key.
        id: String,
        /// The constraint, in words, with SQLite's own text when it came from SQLite.
        constraint: String,
    },

    /// The row does not exist.
    #[error("{table} {id} not found")]
    NotFound {
        /// The table.
        table: &'static str,
        /// The key looked up.
        id: String,
    },

    /// An input was refused before anything was written.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The field, e.g. `entry.selectors[3]`.
        field: String,
        /// Why it was refused.
        reason: String,
    },

    /// A key state change that rotation never makes (e.g. retired → active).
    #[error("{table} {id}: cannot change state from {from} to {to}")]
    KeyTransition {
        /// `ca_keys` or `jwt_keys`.
        table: &'static str,
        /// The key id.
        id: String,
        /// Its current state.
        from: String,
        /// The state asked for.
        to: String,
    },

    /// A value read back from the database is not what the issuer writes:
    /// the file was edited by hand or is damaged.
    #[error("{table} {id}: column {column} is malformed: {reason}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// The row's key.
        id: String,
        /// The column.
        column: &'static str,
        /// What is wrong with it.
        reason: String,
    },

    /// The audit chain does not verify; `seq` is the first broken record.
    #[error("audit chain broken at record {seq}: {reason}")]
    AuditBroken {
        /// The sequence number of the first broken (or missing) record.
        seq: u64,
        /// What is wrong.
        reason: AuditBreak,
    },

    /// A row of a table does not match the audit record that wrote it.
    #[error("{table} {id} does not match the audit log: {reason}")]
    RowMismatch {
        /// The table.
        table: &'static str,
        /// The row's key.
        id: String,
        /// What differs (naming the audit record when there is one).
        reason: String,
    },

    /// Encoding a record as JSON failed.
    #[error("cannot encode {what} as JSON: {source}")]
    Json {
        /// What was being encoded.
        what: &'static str,
        /// The encoder's error.
        #[source]
        source: serde_json::Error,
    },

    /// The system random generator failed (entry ids).
    #[error("the system random generator failed")]
    Random,
}

/// Why an audit record breaks the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuditBreak {
    /// The record's stored hash is not the hash of its contents: one of
    /// its fields (or the hash) was edited.
    HashMismatch,
    /// The record's prev_hash is not the previous record's hash: the
    /// previous record was rewritten (with a recomputed hash), or this one
    /// was moved.
    PrevHashMismatch,
    /// Records are numbered 1, 2, 3…; `missing` is absent (deleted).
    SequenceGap {
        /// The first absent number.
        missing: u64,
        /// The record that follows the gap.
        next_present: u64,
    },
    /// The chain ends before the head the issuer recorded: the last
    /// records were deleted. `seq` of the error is the first missing one.
    Truncated {
        /// The last record present.
        last_present: u64,
        /// The last record the head says exists.
        head_seq: u64,
    },
    /// The head names the last record but with another hash.
    HeadHashMismatch,
    /// A record lies beyond the head: it was appended outside the issuer.
    BeyondHead {
        /// The last record the head says exists.
        head_seq: u64,
    },
    /// The audit_head row is missing.
    HeadMissing,
    /// The record's hash differs from a checkpoint exported earlier: the
    /// chain was rewritten from this record on.
    CheckpointMismatch {
        /// The hash in the checkpoint, hex.
        expected: String,
    },
    /// A column does not hold what the issuer writes (type, hex format).
    Malformed {
        /// The column.
        column: &'static str,
        /// What is wrong.
        detail: String,
    },
}

impl fmt::Display for AuditBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuditBreak::HashMismatch => f.write_str("hash mismatch (record edited)"),
            AuditBreak::PrevHashMismatch => {
                f.write_str("prev_hash does not match the previous record's hash")
            }
            AuditBreak::SequenceGap {
                missing,
                next_present,
            } => write!(
                f,
                "sequence gap: record {missing} missing (deleted); the next record present is \
                 {next_present}"
            ),
            AuditBreak::Truncated {
                last_present,
                head_seq,
            } => write!(
                f,
                "the chain ends at record {last_present} but its head records {head_seq}: \
                 records {}..={head_seq} missing (deleted)",
                last_present + 1
            ),
            AuditBreak::HeadHashMismatch => f.write_str(
                "the chain head's hash differs from this record's hash (record or head rewritten)",
            ),
            AuditBreak::BeyondHead { head_seq } => write!(
                f,
                "record lies beyond the chain head ({head_seq}): appended outside the issuer"
            ),
            AuditBreak::HeadMissing => f.write_str("the audit_head row is missing"),
            AuditBreak::CheckpointMismatch { expected } => write!(
                f,
                "hash differs from the exported checkpoint {expected} (chain rewritten)"
            ),
            AuditBreak::Malformed { column, detail } => {
                write!(f, "column {column} is malformed: {detail}")
            }
        }
    }
}

/// Maps a SQLite error of a write to [`StoreError::Conflict`] when it is a
/// constraint violation (SQLite's message names the constraint), else to
/// [`StoreError::Sqlite`].
pub(crate) fn write_error(
    op: &'static str,
    table: &'static str,
    id: &str,
    source: rusqlite::Error,
) -> StoreError {
    match &source {
        rusqlite::Error::SqliteFailure(e, msg)
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            StoreError::Conflict {
                table,
                id: id.to_owned(),
                constraint: msg.clone().unwrap_or_else(|| e.to_string()),
            }
        }
        _ => StoreError::Sqlite { op, table, source },
    }
}

/// A closure for `map_err` that wraps a SQLite error as [`StoreError::Sqlite`].
pub(crate) fn sql(op: &'static str, table: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |source| StoreError::Sqlite { op, table, source }
}
