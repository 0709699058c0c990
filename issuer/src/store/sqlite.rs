//! The embedded SQLite datastore: one file under the issuer's data dir.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::types::FromSql;
use rusqlite::{
    Connection, OpenFlags, OptionalExtension, Row, Transaction, TransactionBehavior, params,
};
use serde_json::Value;
use zeroize::Zeroizing;

use super::Datastore;
use super::audit::{decode_hash, kind, record_hash};
use super::error::{AuditBreak, StoreError, sql, write_error};
use super::limits::{self, invalid};
use super::replay::{self, VerdictColumns};
use super::types::*;
use crate::verdict::ClockSummary;

/// The newest schema version this build writes and reads.
pub const SCHEMA_VERSION: i64 = 1;

/// `PRAGMA application_id` of a Rootmark datastore ('Rmk1').
const APPLICATION_ID: i64 = 0x526d_6b31;

/// The migrations, applied in order; version N is the N-th.
const MIGRATIONS: &[(i64, &str)] = &[(1, include_str!("../../migrations/sqlite/0001_initial.sql"))];

/// Options for [`SqliteStore::open_with`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SqliteOptions {
    /// How long a writer waits for another connection's write transaction
    /// before failing with "database is locked". Writes are short (one
    /// fsync each), so waiting long only matters under heavy contention.
    pub busy_timeout: Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            busy_timeout: Duration::from_secs(30),
        }
    }
}

impl SqliteOptions {
    /// Sets the busy timeout.
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }
}

/// The SQLite datastore.
///
/// One file (WAL mode, `synchronous=FULL`: a write that returned is on
/// disk, and a SIGKILL or power loss never loses or tears a committed
/// transaction), mode 0600 because it holds the CA's private keys.
///
/// It holds two connections: one for writes (serialised by a mutex in
/// this process, and by `BEGIN IMMEDIATE` against other processes or
/// other `SqliteStore`s on the same file) and one for reads, which WAL
/// lets run while a write is in progress. All calls block: call them from
/// `tokio::task::spawn_blocking` or a dedicated thread.
#[derive(Debug)]
pub struct SqliteStore {
    path: PathBuf,
    writer: Mutex<Connection>,
    reader: Mutex<Connection>,
}

fn lock(m: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    // A panic while holding the lock dropped the transaction, which rolls
    // back; the connection itself is fine to reuse.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The current time for new rows and audit records.
fn now_ms() -> UnixMillis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        // A clock before 1970 is broken; 0 keeps the record rather than failing it.
        .unwrap_or(0)
}

impl SqliteStore {
    /// The database file's name inside the data dir.
    pub const FILE_NAME: &'static str = "rootmark.db";

    /// The database path for a data dir.
    pub fn path_in(data_dir: &Path) -> PathBuf {
        data_dir.join(Self::FILE_NAME)
    }

    /// Opens (creating if needed, mode 0700) `data_dir` and the datastore in it.
    pub fn open_in_dir(data_dir: &Path) -> Result<Self, StoreError> {
        create_private_dir(data_dir)?;
        Self::open(&Self::path_in(data_dir))
    }

    /// Opens or creates the datastore file at `path` with default options.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, &SqliteOptions::default())
    }

    /// Opens or creates the datastore file at `path`: creates it mode
    /// 0600 (tightening an existing file's mode), sets WAL and
    /// `synchronous=FULL`, and applies pending migrations. Refuses a file
    /// written by a newer release ([`StoreError::SchemaTooNew`]).
    pub fn open_with(path: &Path, options: &SqliteOptions) -> Result<Self, StoreError> {
        prepare_file(path)?;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let open_err = |source| StoreError::Open {
            path: path.to_owned(),
            source,
        };
        let mut writer = Connection::open_with_flags(path, flags).map_err(open_err)?;
        writer
            .busy_timeout(options.busy_timeout)
            .map_err(open_err)?;
        check_application_id(&writer, path)?;
        // Read-only check first, so a newer file is refused before anything
        // (even the journal mode) is changed in it.
        let version = schema_version(&writer, path)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                path: path.to_owned(),
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        let mode: String = writer
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(open_err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::NoWal {
                path: path.to_owned(),
                mode,
            });
        }
        configure(&writer).map_err(open_err)?;
        migrate(&mut writer, path)?;

        let reader = Connection::open_with_flags(path, flags).map_err(open_err)?;
        reader
            .busy_timeout(options.busy_timeout)
            .map_err(open_err)?;
        configure(&reader).map_err(open_err)?;
        // The reader never writes; make SQLite enforce that.
        reader
            .pragma_update(None, "query_only", true)
            .map_err(open_err)?;
        Ok(SqliteStore {
            path: path.to_owned(),
            writer: Mutex::new(writer),
            reader: Mutex::new(reader),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` in a `BEGIN IMMEDIATE` transaction: the write lock is taken
    /// up front, so the audit head read inside cannot be changed by another
    /// writer before this transaction appends to it (no fork of the chain),
    /// and a busy database is waited for (busy_timeout) rather than failing
    /// half-way. Commits if `f` succeeds; rolls back (on drop) if not.
    fn write<T>(
        &self,
        table: &'static str,
        f: impl FnOnce(&Transaction<'_>, UnixMillis) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = lock(&self.writer);
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql("begin", table))?;
        // Taken under the write lock, so audit times follow seq order
        // across processes as long as the clock does.
        let now = now_ms();
        let out = f(&tx, now)?;
        tx.commit().map_err(sql("commit", table))?;
        Ok(out)
    }

    fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        f(&lock(&self.reader))
    }
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    // FULL: in WAL mode, every commit fsyncs the WAL, so a commit that
    // returned survives SIGKILL and power loss (NORMAL could lose the last
    // commits on power loss). Foreign keys are off by default in SQLite.
    // trusted_schema off: the schema cannot make us run SQL functions with
    // side effects (the file may have been tampered with).
    conn.execute_batch(
        "PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;
         PRAGMA trusted_schema = OFF;",
    )
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| StoreError::Io {
            what: "cannot create the data dir",
            path: dir.to_owned(),
            source,
        })
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
    fs::create_dir_all(dir).map_err(|source| StoreError::Io {
        what: "cannot create the data dir",
        path: dir.to_owned(),
        source,
    })
}

/// Creates the database file 0600 before SQLite does (SQLite would use the
/// umask, typically 0644), and tightens an existing file and its -wal and
/// -shm (SQLite creates those with the database file's mode).
#[cfg(unix)]
fn prepare_file(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let io = |what, path: &Path| {
        let path = path.to_owned();
        move |source| StoreError::Io { what, path, source }
    };
    fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(io("cannot create the datastore", path))?;
    let mut files = vec![path.to_owned()];
    for suffix in ["-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        files.push(PathBuf::from(p));
    }
    for file in files {
        let meta = match fs::metadata(&file) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io("cannot stat", &file)(e)),
        };
        if meta.permissions().mode() & 0o077 != 0 {
            fs::set_permissions(&file, fs::Permissions::from_mode(0o600))
                .map_err(io("cannot make private (0600)", &file))?;
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn prepare_file(_path: &Path) -> Result<(), StoreError> {
    Ok(())
}

fn check_application_id(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let id: i64 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(|source| StoreError::Open {
            path: path.to_owned(),
            source,
        })?;
    if id != 0 && id != APPLICATION_ID {
        return Err(StoreError::NotADatastore {
            path: path.to_owned(),
            application_id: id,
        });
    }
    Ok(())
}

/// The applied schema version, 0 when there is no schema_version table.
/// Only reads, so it works on read-only connections.
fn schema_version(conn: &Connection, path: &Path) -> Result<i64, StoreError> {
    let open_err = |source| StoreError::Open {
        path: path.to_owned(),
        source,
    };
    let exists: bool = conn
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version')",
            [],
            |r| r.get(0),
        )
        .map_err(open_err)?;
    if !exists {
        return Ok(0);
    }
    conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_version",
        [],
        |r| r.get(0),
    )
    .map_err(open_err)
}

/// Applies the pending migrations in one IMMEDIATE transaction (so two
/// issuers opening a fresh file at once cannot both apply version 1), and
/// re-checks the version inside it.
fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql("begin", "schema_version"))?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_version (
             version INTEGER PRIMARY KEY,
             applied INTEGER NOT NULL
         ) STRICT",
    )
    .map_err(|source| StoreError::Migration { version: 0, source })?;
    let current = schema_version(&tx, path)?;
    if current > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            path: path.to_owned(),
            found: current,
            supported: SCHEMA_VERSION,
        });
    }
    for (version, script) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        tx.execute_batch(script)
            .and_then(|()| {
                tx.execute(
                    "INSERT INTO schema_version (version, applied) VALUES (?1, ?2)",
                    params![version, now_ms()],
                )
            })
            .map_err(|source| StoreError::Migration {
                version: *version,
                source,
            })?;
    }
    tx.commit().map_err(sql("commit", "schema_version"))
}

/// Opens an existing datastore read-only, for verification and export: it
/// works with the issuer stopped (or running: WAL lets readers in), never
/// changes the file, and refuses a newer schema.
pub(super) fn open_read_only(path: &Path) -> Result<Connection, StoreError> {
    let open_err = |source| StoreError::Open {
        path: path.to_owned(),
        source,
    };
    // SQLite would report a missing file as "unable to open database file";
    // say which file and why.
    fs::metadata(path).map_err(|source| StoreError::Io {
        what: "cannot read the datastore",
        path: path.to_owned(),
        source,
    })?;
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(open_err)?;
    conn.busy_timeout(Duration::from_secs(30))
        .map_err(open_err)?;
    conn.pragma_update(None, "trusted_schema", false)
        .map_err(open_err)?;
    check_application_id(&conn, path)?;
    let version = schema_version(&conn, path)?;
    if version == 0 {
        return Err(StoreError::NoSchema {
            path: path.to_owned(),
        });
    }
    if version > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            path: path.to_owned(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(conn)
}

// ---------------------------------------------------------------------------
// Row decoding. Every value read back is checked: the file may have been
// edited by hand, and a bad value must become an error naming the row.

pub(super) fn get<T: FromSql>(
    row: &Row<'_>,
    idx: usize,
    table: &'static str,
) -> Result<T, StoreError> {
    row.get(idx).map_err(sql("read", table))
}

fn json_col<T: serde::de::DeserializeOwned>(
    table: &'static str,
    id: &str,
    column: &'static str,
    text: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        table,
        id: id.to_owned(),
        column,
        reason: e.to_string(),
    })
}

pub(super) fn to_json<T: serde::Serialize + ?Sized>(
    what: &'static str,
    v: &T,
) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|source| StoreError::Json { what, source })
}

fn narrow<T: TryFrom<i64>>(
    table: &'static str,
    id: &str,
    column: &'static str,
    v: i64,
) -> Result<T, StoreError> {
    T::try_from(v).map_err(|_| StoreError::Corrupt {
        table,
        id: id.to_owned(),
        column,
        reason: format!("{v} is out of range"),
    })
}

fn widen(field: &str, v: u64) -> Result<i64, StoreError> {
    i64::try_from(v)
        .map_err(|_| invalid(field, format!("{v} exceeds the range of a SQLite integer")))
}

pub(super) const NODE_COLS: &str = "spiffe_id, ek_sha256, ak_name, manufacturer, first_seen, last_attested, \
     last_attestation_id, last_pcrs, reset_count, restart_count, clock, secure_boot, selectors, \
     banned, ban_reason, evicted";

pub(super) fn node_from_row(row: &Row<'_>) -> Result<Node, StoreError> {
    const T: &str = "nodes";
    let spiffe_id: String = get(row, 0, T)?;
    let last_pcrs: String = get(row, 7, T)?;
    let selectors: String = get(row, 12, T)?;
    let reset: Option<i64> = get(row, 8, T)?;
    let restart: Option<i64> = get(row, 9, T)?;
    let clock: Option<i64> = get(row, 10, T)?;
    let clock = match (clock, reset, restart) {
        (Some(c), Some(r), Some(s)) => Some(ClockSummary {
            clock: narrow(T, &spiffe_id, "clock", c)?,
            reset_count: narrow(T, &spiffe_id, "reset_count", r)?,
            restart_count: narrow(T, &spiffe_id, "restart_count", s)?,
        }),
        (None, None, None) => None,
        _ => {
            return Err(StoreError::Corrupt {
                table: T,
                id: spiffe_id,
                column: "clock",
                reason: "clock, reset_count and restart_count must be all set or all NULL".into(),
            });
        }
    };
    Ok(Node {
        ek_sha256: get(row, 1, T)?,
        ak_name: get(row, 2, T)?,
        manufacturer: get(row, 3, T)?,
        first_seen: get(row, 4, T)?,
        last_attested: get(row, 5, T)?,
        last_attestation_id: get(row, 6, T)?,
        last_pcrs: json_col(T, &spiffe_id, "last_pcrs", &last_pcrs)?,
        clock,
        secure_boot: get(row, 11, T)?,
        selectors: json_col(T, &spiffe_id, "selectors", &selectors)?,
        banned: get(row, 13, T)?,
        ban_reason: get(row, 14, T)?,
        evicted: get(row, 15, T)?,
        spiffe_id,
    })
}

const ATTESTATION_COLS: &str = "id, time, ek_sha256, spiffe_id, accepted, failed_check, reason, \
     ak_name, nonce, pcrs, event_log_sha256, policies, verdict, peer";

fn attestation_from_row(row: &Row<'_>) -> Result<Attestation, StoreError> {
    const T: &str = "attestations";
    let id: i64 = get(row, 0, T)?;
    let key = id.to_string();
    let pcrs: String = get(row, 9, T)?;
    let policies: String = get(row, 11, T)?;
    let verdict: String = get(row, 12, T)?;
    Ok(Attestation {
        id,
        time: get(row, 1, T)?,
        ek_sha256: get(row, 2, T)?,
        spiffe_id: get(row, 3, T)?,
        accepted: get(row, 4, T)?,
        failed_check: get(row, 5, T)?,
        reason: get(row, 6, T)?,
        ak_name: get(row, 7, T)?,
        nonce: get(row, 8, T)?,
        pcrs: json_col(T, &key, "pcrs", &pcrs)?,
        event_log_sha256: get(row, 10, T)?,
        policies: json_col(T, &key, "policies", &policies)?,
        verdict: json_col(T, &key, "verdict", &verdict)?,
        peer: get(row, 13, T)?,
    })
}

pub(super) const ENTRY_COLS: &str = "id, spiffe_id, node_selectors, node_id, selectors, x509_ttl_s, \
     jwt_ttl_s, dns_names, hint, admin, created, revision";

pub(super) fn entry_from_row(row: &Row<'_>) -> Result<Entry, StoreError> {
    const T: &str = "entries";
    let id: String = get(row, 0, T)?;
    let node_selectors: String = get(row, 2, T)?;
    let selectors: String = get(row, 4, T)?;
    let dns_names: String = get(row, 7, T)?;
    let x509: Option<i64> = get(row, 5, T)?;
    let jwt: Option<i64> = get(row, 6, T)?;
    let revision: i64 = get(row, 11, T)?;
    Ok(Entry {
        spiffe_id: get(row, 1, T)?,
        node_selectors: json_col(T, &id, "node_selectors", &node_selectors)?,
        node_id: get(row, 3, T)?,
        selectors: json_col(T, &id, "selectors", &selectors)?,
        x509_ttl_s: x509.map(|v| narrow(T, &id, "x509_ttl_s", v)).transpose()?,
        jwt_ttl_s: jwt.map(|v| narrow(T, &id, "jwt_ttl_s", v)).transpose()?,
        dns_names: json_col(T, &id, "dns_names", &dns_names)?,
        hint: get(row, 8, T)?,
        admin: get(row, 9, T)?,
        created: get(row, 10, T)?,
        revision: narrow(T, &id, "revision", revision)?,
        id,
    })
}

pub(super) fn ban_from_row(row: &Row<'_>) -> Result<Ban, StoreError> {
    const T: &str = "bans";
    Ok(Ban {
        ek_sha256: get(row, 0, T)?,
        reason: get(row, 1, T)?,
        time: get(row, 2, T)?,
        banned_by: get(row, 3, T)?,
    })
}

pub(super) fn key_from_row(table: KeyTable, row: &Row<'_>) -> Result<KeyRecord, StoreError> {
    let t = table.table();
    let id: String = get(row, 0, t)?;
    let state: String = get(row, 6, t)?;
    let state = KeyState::parse(&state).ok_or_else(|| StoreError::Corrupt {
        table: t,
        id: id.clone(),
        column: "state",
        reason: format!("{state:?} is not prepared, active or retired"),
    })?;
    Ok(KeyRecord {
        kind: get(row, 1, t)?,
        public: get(row, 2, t)?,
        private: Zeroizing::new(get(row, 3, t)?),
        not_before: get(row, 4, t)?,
        not_after: get(row, 5, t)?,
        state,
        created: get(row, 7, t)?,
        id,
    })
}

pub(super) fn key_cols(table: KeyTable) -> String {
    format!(
        "{}, kind, public, private, not_before, not_after, state, created",
        table.id_column()
    )
}

pub(super) const AUDIT_COLS: &str = "seq, time, kind, actor, subject, payload, prev_hash, hash";

/// Reads an audit row. Any type problem is reported as a broken chain at
/// that record: only someone editing the file can cause one.
pub(super) fn audit_from_row(row: &Row<'_>, expected_seq: u64) -> Result<AuditRecord, StoreError> {
    let malformed = |seq, column, e: rusqlite::Error| StoreError::AuditBroken {
        seq,
        reason: AuditBreak::Malformed {
            column,
            detail: e.to_string(),
        },
    };
    let seq: i64 = row.get(0).map_err(|e| malformed(expected_seq, "seq", e))?;
    let seq = u64::try_from(seq).map_err(|_| StoreError::AuditBroken {
        seq: expected_seq,
        reason: AuditBreak::Malformed {
            column: "seq",
            detail: format!("{seq} is negative"),
        },
    })?;
    Ok(AuditRecord {
        seq,
        time: row.get(1).map_err(|e| malformed(seq, "time", e))?,
        kind: row.get(2).map_err(|e| malformed(seq, "kind", e))?,
        actor: row.get(3).map_err(|e| malformed(seq, "actor", e))?,
        subject: row.get(4).map_err(|e| malformed(seq, "subject", e))?,
        payload: row.get(5).map_err(|e| malformed(seq, "payload", e))?,
        prev_hash: row.get(6).map_err(|e| malformed(seq, "prev_hash", e))?,
        hash: row.get(7).map_err(|e| malformed(seq, "hash", e))?,
    })
}

pub(super) fn read_head(conn: &Connection) -> Result<Option<AuditHead>, StoreError> {
    let head: Option<(i64, String)> = conn
        .query_row("SELECT seq, hash FROM audit_head WHERE id = 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()
        .map_err(sql("select", "audit_head"))?;
    head.map(|(seq, hash)| {
        Ok(AuditHead {
            seq: narrow("audit_head", "1", "seq", seq)?,
            hash,
        })
    })
    .transpose()
}

// ---------------------------------------------------------------------------
// Writes. Each helper takes the open transaction, so one public call can
// change several tables and append its audit record atomically.

/// Appends one audit record after the stored head, and moves the head.
fn append_audit(
    tx: &Transaction<'_>,
    time: UnixMillis,
    kind: &str,
    actor: &str,
    subject: &str,
    payload: &str,
) -> Result<AuditRecord, StoreError> {
    // Chained from the head row, not from MAX(seq): if someone deleted the
    // last records, new records keep pointing at the real head and the gap
    // stays visible instead of being papered over.
    let head = read_head(tx)?.ok_or(StoreError::AuditBroken {
        seq: 0,
        reason: AuditBreak::HeadMissing,
    })?;
    let prev = decode_hash(&head.hash).ok_or_else(|| StoreError::AuditBroken {
        seq: head.seq,
        reason: AuditBreak::Malformed {
            column: "audit_head.hash",
            detail: format!("{:?} is not 64 lowercase hex digits", head.hash),
        },
    })?;
    let seq = head.seq + 1;
    let hash = hex::encode(record_hash(&prev, seq, time, kind, actor, subject, payload));
    let seq_i = widen("audit.seq", seq)?;
    tx.execute(
        "INSERT INTO audit (seq, time, kind, actor, subject, payload, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![seq_i, time, kind, actor, subject, payload, head.hash, hash],
    )
    .map_err(|e| write_error("insert", "audit", &seq.to_string(), e))?;
    let updated = tx
        .execute(
            "UPDATE audit_head SET seq = ?1, hash = ?2 WHERE id = 1",
            params![seq_i, hash],
        )
        .map_err(sql("update", "audit_head"))?;
    if updated != 1 {
        return Err(StoreError::AuditBroken {
            seq,
            reason: AuditBreak::HeadMissing,
        });
    }
    Ok(AuditRecord {
        seq,
        time,
        kind: kind.to_owned(),
        actor: actor.to_owned(),
        subject: subject.to_owned(),
        payload: payload.to_owned(),
        prev_hash: head.hash,
        hash,
    })
}

fn node_by(conn: &Connection, column: &str, value: &str) -> Result<Option<Node>, StoreError> {
    let sql_text = format!("SELECT {NODE_COLS} FROM nodes WHERE {column} = ?1");
    let mut stmt = conn
        .prepare_cached(&sql_text)
        .map_err(sql("select", "nodes"))?;
    let mut rows = stmt.query([value]).map_err(sql("select", "nodes"))?;
    match rows.next().map_err(sql("select", "nodes"))? {
        Some(row) => Ok(Some(node_from_row(row)?)),
        None => Ok(None),
    }
}

fn ban_of(conn: &Connection, ek_sha256: &str) -> Result<Option<Ban>, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT ek_sha256, reason, time, banned_by FROM bans WHERE ek_sha256 = ?1")
        .map_err(sql("select", "bans"))?;
    let mut rows = stmt.query([ek_sha256]).map_err(sql("select", "bans"))?;
    match rows.next().map_err(sql("select", "bans"))? {
        Some(row) => Ok(Some(ban_from_row(row)?)),
        None => Ok(None),
    }
}

fn entry_by_id(conn: &Connection, id: &str) -> Result<Option<Entry>, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!("SELECT {ENTRY_COLS} FROM entries WHERE id = ?1"))
        .map_err(sql("select", "entries"))?;
    let mut rows = stmt.query([id]).map_err(sql("select", "entries"))?;
    match rows.next().map_err(sql("select", "entries"))? {
        Some(row) => Ok(Some(entry_from_row(row)?)),
        None => Ok(None),
    }
}

pub(super) fn attestation_by_id(
    conn: &Connection,
    id: i64,
) -> Result<Option<Attestation>, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {ATTESTATION_COLS} FROM attestations WHERE id = ?1"
        ))
        .map_err(sql("select", "attestations"))?;
    let mut rows = stmt.query([id]).map_err(sql("select", "attestations"))?;
    match rows.next().map_err(sql("select", "attestations"))? {
        Some(row) => Ok(Some(attestation_from_row(row)?)),
        None => Ok(None),
    }
}

fn key_by_id(
    conn: &Connection,
    table: KeyTable,
    id: &str,
) -> Result<Option<KeyRecord>, StoreError> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {} FROM {} WHERE {} = ?1",
            key_cols(table),
            table.table(),
            table.id_column()
        ))
        .map_err(sql("select", table.table()))?;
    let mut rows = stmt.query([id]).map_err(sql("select", table.table()))?;
    match rows.next().map_err(sql("select", table.table()))? {
        Some(row) => Ok(Some(key_from_row(table, row)?)),
        None => Ok(None),
    }
}

pub(super) fn collect<T>(
    conn: &Connection,
    table: &'static str,
    query: &str,
    params: impl rusqlite::Params,
    mut f: impl FnMut(&Row<'_>) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut stmt = conn.prepare_cached(query).map_err(sql("select", table))?;
    let mut rows = stmt.query(params).map_err(sql("select", table))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(sql("select", table))? {
        out.push(f(row)?);
    }
    Ok(out)
}

/// Validates an attestation before anything is written.
fn check_attestation(att: &NewAttestation<'_>, cols: &VerdictColumns) -> Result<(), StoreError> {
    if let Some(ek) = &cols.ek_sha256 {
        limits::check_sha256_hex("verdict.ek_sha256", ek)?;
    }
    if let Some(id) = att.spiffe_id {
        limits::check_spiffe_id("attestation.spiffe_id", id)?;
    }
    if let Some(peer) = att.peer {
        limits::check_text("attestation.peer", peer, limits::MAX_STRING)?;
    }
    if cols.accepted {
        if cols.ek_sha256.is_none() {
            return Err(invalid(
                "verdict.ek_sha256",
                "an accepted verdict must name the EK (the node is keyed by it)",
            ));
        }
        match (att.spiffe_id, &cols.ek_sha256) {
            (None, _) => {
                return Err(invalid(
                    "attestation.spiffe_id",
                    "an accepted attestation must name the node's SPIFFE ID",
                ));
            }
            // DESIGN §2: the node ID ends in the EK hash. A node row keyed
            // by one EK under another's ID would let entries and bans miss.
            (Some(id), Some(ek)) if !id.ends_with(&format!("/rootmark/node/{ek}")) => {
                return Err(invalid(
                    "attestation.spiffe_id",
                    format!("{id:?} is not the node ID of EK {ek} (…/rootmark/node/{ek})"),
                ));
            }
            _ => {}
        }
    }
    if cols.selectors.len() > limits::MAX_NODE_SELECTORS {
        return Err(invalid(
            "verdict.selectors",
            format!(
                "{} selectors, more than the limit of {}",
                cols.selectors.len(),
                limits::MAX_NODE_SELECTORS
            ),
        ));
    }
    Ok(())
}

/// Inserts or updates the node of an accepted attestation. Returns whether
/// it was created.
fn upsert_node(
    tx: &Transaction<'_>,
    now: UnixMillis,
    attestation_id: i64,
    spiffe_id: &str,
    ek: &str,
    cols: &VerdictColumns,
) -> Result<bool, StoreError> {
    // The node ID is derived from the EK, so the two must stay paired; a
    // mismatch means a trust-domain change or a bug, and must not silently
    // re-key a node.
    if let Some(existing) = node_by(tx, "ek_sha256", ek)?
        && existing.spiffe_id != spiffe_id
    {
        return Err(StoreError::Conflict {
            table: "nodes",
            id: spiffe_id.to_owned(),
            constraint: format!("EK {ek} already belongs to node {}", existing.spiffe_id),
        });
    }
    let existing = node_by(tx, "spiffe_id", spiffe_id)?;
    if let Some(n) = &existing
        && n.ek_sha256 != ek
    {
        return Err(StoreError::Conflict {
            table: "nodes",
            id: spiffe_id.to_owned(),
            constraint: format!("node has EK {}, not {ek}", n.ek_sha256),
        });
    }
    let ban = ban_of(tx, ek)?;
    let pcrs = to_json("node PCRs", &cols.pcrs)?;
    let selectors = to_json("node selectors", &cols.selectors)?;
    let clock = cols
        .clock
        .map(|c| widen("verdict.clock.clock", c.clock))
        .transpose()?;
    tx.execute(
        "INSERT INTO nodes (spiffe_id, ek_sha256, ak_name, manufacturer, first_seen, last_attested,
             last_attestation_id, last_pcrs, reset_count, restart_count, clock, secure_boot,
             selectors, banned, ban_reason, evicted)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, 0)
         ON CONFLICT (spiffe_id) DO UPDATE SET
             ak_name = excluded.ak_name,
             manufacturer = excluded.manufacturer,
             last_attested = excluded.last_attested,
             last_attestation_id = excluded.last_attestation_id,
             last_pcrs = excluded.last_pcrs,
             reset_count = excluded.reset_count,
             restart_count = excluded.restart_count,
             clock = excluded.clock,
             secure_boot = excluded.secure_boot,
             selectors = excluded.selectors,
             banned = excluded.banned,
             ban_reason = excluded.ban_reason,
             evicted = 0",
        params![
            spiffe_id,
            ek,
            cols.ak_name,
            cols.manufacturer,
            now,
            attestation_id,
            pcrs,
            cols.clock.map(|c| c.reset_count),
            cols.clock.map(|c| c.restart_count),
            clock,
            cols.secure_boot,
            selectors,
            ban.is_some(),
            ban.map(|b| b.reason),
        ],
    )
    .map_err(|e| write_error("upsert", "nodes", spiffe_id, e))?;
    Ok(existing.is_none())
}

fn validate_entry(e: &NewEntry) -> Result<(Vec<String>, Vec<String>), StoreError> {
    limits::check_spiffe_id("entry.spiffe_id", &e.spiffe_id)?;
    if let Some(node) = &e.node_id {
        limits::check_spiffe_id("entry.node_id", node)?;
    }
    let node_selectors = limits::normalise_selectors(
        "entry.node_selectors",
        &e.node_selectors,
        limits::MAX_ENTRY_SELECTORS,
    )?;
    let selectors =
        limits::normalise_selectors("entry.selectors", &e.selectors, limits::MAX_ENTRY_SELECTORS)?;
    if node_selectors.is_empty() && e.node_id.is_none() {
        // An entry matching every node is almost certainly a mistake, and
        // SPIRE refuses it too.
        return Err(invalid(
            "entry",
            "needs a node ID or at least one node selector (it would match every node)",
        ));
    }
    if selectors.is_empty() {
        return Err(invalid(
            "entry.selectors",
            "needs at least one workload selector (it would match every process)",
        ));
    }
    limits::check_ttl("entry.x509_ttl_s", e.x509_ttl_s)?;
    limits::check_ttl("entry.jwt_ttl_s", e.jwt_ttl_s)?;
    if e.dns_names.len() > limits::MAX_DNS_NAMES {
        return Err(invalid(
            "entry.dns_names",
            format!(
                "{} names, more than the limit of {}",
                e.dns_names.len(),
                limits::MAX_DNS_NAMES
            ),
        ));
    }
    for (i, name) in e.dns_names.iter().enumerate() {
        limits::check_dns_name(&format!("entry.dns_names[{i}]"), name)?;
    }
    if let Some(hint) = &e.hint {
        limits::check_text("entry.hint", hint, limits::MAX_STRING)?;
    }
    Ok((node_selectors, selectors))
}

/// A random UUID (version 4) as text.
fn new_uuid() -> Result<String, StoreError> {
    use aws_lc_rs::rand::{SecureRandom, SystemRandom};
    let mut b = [0u8; 16];
    SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| StoreError::Random)?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

fn set_key_state_tx(
    tx: &Transaction<'_>,
    now: UnixMillis,
    table: KeyTable,
    id: &str,
    from: KeyState,
    to: KeyState,
    actor: &str,
) -> Result<(), StoreError> {
    tx.execute(
        &format!(
            "UPDATE {} SET state = ?1 WHERE {} = ?2",
            table.table(),
            table.id_column()
        ),
        params![to.as_str(), id],
    )
    .map_err(|e| write_error("update", table.table(), id, e))?;
    let payload =
        replay::payload_text("key.state", &replay::key_state_payload(table, id, from, to))?;
    append_audit(tx, now, kind::KEY_STATE, actor, id, &payload)?;
    Ok(())
}

impl Datastore for SqliteStore {
    fn record_attestation(
        &self,
        att: &NewAttestation<'_>,
    ) -> Result<RecordedAttestation, StoreError> {
        let verdict = serde_json::to_value(att.verdict).map_err(|source| StoreError::Json {
            what: "verdict",
            source,
        })?;
        let verdict_text = to_json("verdict", &verdict)?;
        if verdict_text.len() > limits::MAX_VERDICT_JSON {
            return Err(invalid(
                "verdict",
                format!(
                    "{} bytes of JSON, more than the limit of {}",
                    verdict_text.len(),
                    limits::MAX_VERDICT_JSON
                ),
            ));
        }
        let cols = verdict_columns(&verdict)?;
        check_attestation(att, &cols)?;
        let pcrs = to_json("PCRs", &cols.pcrs)?;
        let policies = to_json("policies", &cols.policies)?;
        self.write("attestations", |tx, now| {
            tx.execute(
                "INSERT INTO attestations (ek_sha256, spiffe_id, time, accepted, failed_check,
                     reason, ak_name, nonce, pcrs, event_log_sha256, policies, verdict, peer)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                params![
                    cols.ek_sha256,
                    att.spiffe_id,
                    now,
                    cols.accepted,
                    cols.failed_check,
                    cols.reason,
                    cols.ak_name,
                    cols.nonce,
                    pcrs,
                    cols.event_log_sha256,
                    policies,
                    verdict_text,
                    att.peer,
                ],
            )
            .map_err(|e| write_error("insert", "attestations", "(new)", e))?;
            let id = tx.last_insert_rowid();
            let node_created = match (cols.accepted, att.spiffe_id, &cols.ek_sha256) {
                (true, Some(spiffe_id), Some(ek)) => {
                    Some(upsert_node(tx, now, id, spiffe_id, ek, &cols)?)
                }
                _ => None,
            };
            let payload = replay::payload_text(
                "attestation audit payload",
                &replay::attestation_payload(id, att.spiffe_id, att.peer, &verdict, node_created),
            )?;
            let subject = att
                .spiffe_id
                .or(cols.ek_sha256.as_deref())
                .unwrap_or_default();
            let rec = append_audit(tx, now, kind::ATTESTATION, "issuer", subject, &payload)?;
            let node = match att.spiffe_id {
                Some(spiffe_id) if node_created.is_some() => node_by(tx, "spiffe_id", spiffe_id)?,
                _ => None,
            };
            Ok(RecordedAttestation {
                attestation_id: id,
                audit_seq: rec.seq,
                node,
            })
        })
    }

    fn attestation(&self, id: i64) -> Result<Option<Attestation>, StoreError> {
        self.read(|c| attestation_by_id(c, id))
    }

    fn list_attestations(&self, q: &AttestationQuery) -> Result<Vec<Attestation>, StoreError> {
        // One static statement with optional filters (NULL = no filter)
        // rather than SQL assembled from strings.
        let query = format!(
            "SELECT {ATTESTATION_COLS} FROM attestations
             WHERE (?1 IS NULL OR ek_sha256 = ?1)
               AND (?2 IS NULL OR accepted = ?2)
               AND (?3 IS NULL OR id < ?3)
             ORDER BY id DESC LIMIT ?4"
        );
        let limit = limits::clamp_page(q.limit);
        self.read(|c| {
            collect(
                c,
                "attestations",
                &query,
                params![q.ek_sha256, q.accepted, q.before_id, limit],
                attestation_from_row,
            )
        })
    }

    fn node(&self, spiffe_id: &str) -> Result<Option<Node>, StoreError> {
        self.read(|c| node_by(c, "spiffe_id", spiffe_id))
    }

    fn node_by_ek(&self, ek_sha256: &str) -> Result<Option<Node>, StoreError> {
        self.read(|c| node_by(c, "ek_sha256", ek_sha256))
    }

    fn list_nodes(&self) -> Result<Vec<Node>, StoreError> {
        let query = format!("SELECT {NODE_COLS} FROM nodes ORDER BY spiffe_id");
        self.read(|c| collect(c, "nodes", &query, [], node_from_row))
    }

    fn evict_node(&self, spiffe_id: &str, actor: &Actor) -> Result<Node, StoreError> {
        let actor = actor.to_string();
        self.write("nodes", |tx, now| {
            let node =
                node_by(tx, "spiffe_id", spiffe_id)?.ok_or_else(|| StoreError::NotFound {
                    table: "nodes",
                    id: spiffe_id.to_owned(),
                })?;
            if node.evicted {
                return Err(StoreError::Conflict {
                    table: "nodes",
                    id: spiffe_id.to_owned(),
                    constraint: "already evicted".into(),
                });
            }
            tx.execute(
                "UPDATE nodes SET evicted = 1 WHERE spiffe_id = ?1",
                [spiffe_id],
            )
            .map_err(|e| write_error("update", "nodes", spiffe_id, e))?;
            let payload = replay::payload_text(
                "node.evict",
                &replay::evict_payload(spiffe_id, &node.ek_sha256),
            )?;
            append_audit(tx, now, kind::NODE_EVICT, &actor, spiffe_id, &payload)?;
            Ok(Node {
                evicted: true,
                ..node
            })
        })
    }

    fn ban_node(&self, ek_sha256: &str, reason: &str, actor: &Actor) -> Result<Ban, StoreError> {
        limits::check_sha256_hex("ban.ek_sha256", ek_sha256)?;
        limits::check_nonempty_text("ban.reason", reason, limits::MAX_STRING)?;
        let actor = actor.to_string();
        self.write("bans", |tx, now| {
            if let Some(existing) = ban_of(tx, ek_sha256)? {
                return Err(StoreError::Conflict {
                    table: "bans",
                    id: ek_sha256.to_owned(),
                    constraint: format!(
                        "already banned by {} ({})",
                        existing.banned_by, existing.reason
                    ),
                });
            }
            let ban = Ban {
                ek_sha256: ek_sha256.to_owned(),
                reason: reason.to_owned(),
                time: now,
                banned_by: actor.clone(),
            };
            tx.execute(
                "INSERT INTO bans (ek_sha256, reason, time, banned_by) VALUES (?1, ?2, ?3, ?4)",
                params![ban.ek_sha256, ban.reason, ban.time, ban.banned_by],
            )
            .map_err(|e| write_error("insert", "bans", ek_sha256, e))?;
            let node = node_by(tx, "ek_sha256", ek_sha256)?;
            if node.is_some() {
                tx.execute(
                    "UPDATE nodes SET banned = 1, ban_reason = ?1 WHERE ek_sha256 = ?2",
                    params![reason, ek_sha256],
                )
                .map_err(|e| write_error("update", "nodes", ek_sha256, e))?;
            }
            let payload = replay::payload_text(
                "node.ban",
                &replay::ban_payload(&ban, node.as_ref().map(|n| n.spiffe_id.as_str())),
            )?;
            append_audit(tx, now, kind::NODE_BAN, &actor, ek_sha256, &payload)?;
            Ok(ban)
        })
    }

    fn unban_node(&self, ek_sha256: &str, actor: &Actor) -> Result<Ban, StoreError> {
        limits::check_sha256_hex("ban.ek_sha256", ek_sha256)?;
        let actor = actor.to_string();
        self.write("bans", |tx, now| {
            let ban = ban_of(tx, ek_sha256)?.ok_or_else(|| StoreError::NotFound {
                table: "bans",
                id: ek_sha256.to_owned(),
            })?;
            tx.execute("DELETE FROM bans WHERE ek_sha256 = ?1", [ek_sha256])
                .map_err(|e| write_error("delete", "bans", ek_sha256, e))?;
            let node = node_by(tx, "ek_sha256", ek_sha256)?;
            if node.is_some() {
                tx.execute(
                    "UPDATE nodes SET banned = 0, ban_reason = NULL WHERE ek_sha256 = ?1",
                    [ek_sha256],
                )
                .map_err(|e| write_error("update", "nodes", ek_sha256, e))?;
            }
            let payload = replay::payload_text(
                "node.unban",
                &replay::ban_payload(&ban, node.as_ref().map(|n| n.spiffe_id.as_str())),
            )?;
            append_audit(tx, now, kind::NODE_UNBAN, &actor, ek_sha256, &payload)?;
            Ok(ban)
        })
    }

    fn ban(&self, ek_sha256: &str) -> Result<Option<Ban>, StoreError> {
        self.read(|c| ban_of(c, ek_sha256))
    }

    fn list_bans(&self) -> Result<Vec<Ban>, StoreError> {
        self.read(|c| {
            collect(
                c,
                "bans",
                "SELECT ek_sha256, reason, time, banned_by FROM bans ORDER BY ek_sha256",
                [],
                ban_from_row,
            )
        })
    }

    fn create_entry(&self, new: &NewEntry, actor: &Actor) -> Result<Entry, StoreError> {
        let (node_selectors, selectors) = validate_entry(new)?;
        let actor = actor.to_string();
        let id = new_uuid()?;
        self.write("entries", |tx, now| {
            let entry = Entry {
                id: id.clone(),
                spiffe_id: new.spiffe_id.clone(),
                node_selectors,
                node_id: new.node_id.clone(),
                selectors,
                x509_ttl_s: new.x509_ttl_s,
                jwt_ttl_s: new.jwt_ttl_s,
                dns_names: new.dns_names.clone(),
                hint: new.hint.clone(),
                admin: new.admin,
                created: now,
                revision: 1,
            };
            tx.execute(
                "INSERT INTO entries (id, spiffe_id, node_selectors, node_id, selectors,
                     x509_ttl_s, jwt_ttl_s, dns_names, hint, admin, created, revision)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                params![
                    entry.id,
                    entry.spiffe_id,
                    to_json("entry node selectors", &entry.node_selectors)?,
                    entry.node_id,
                    to_json("entry selectors", &entry.selectors)?,
                    entry.x509_ttl_s,
                    entry.jwt_ttl_s,
                    to_json("entry DNS names", &entry.dns_names)?,
                    entry.hint,
                    entry.admin,
                    entry.created,
                    widen("entry.revision", entry.revision)?,
                ],
            )
            .map_err(|e| match write_error("insert", "entries", &id, e) {
                StoreError::Conflict {
                    table, constraint, ..
                } if constraint.contains("entries_unique") => StoreError::Conflict {
                    table,
                    id: entry.spiffe_id.clone(),
                    constraint: format!(
                        "an entry with the same SPIFFE ID, node selectors, node ID and \
                             workload selectors exists ({constraint})"
                    ),
                },
                other => other,
            })?;
            let payload = replay::payload_text("entry.create", &replay::entry_payload(&entry))?;
            append_audit(tx, now, kind::ENTRY_CREATE, &actor, &entry.id, &payload)?;
            Ok(entry)
        })
    }

    fn entry(&self, id: &str) -> Result<Option<Entry>, StoreError> {
        self.read(|c| entry_by_id(c, id))
    }

    fn list_entries(&self) -> Result<Vec<Entry>, StoreError> {
        let query = format!("SELECT {ENTRY_COLS} FROM entries ORDER BY spiffe_id, id");
        self.read(|c| collect(c, "entries", &query, [], entry_from_row))
    }

    fn delete_entry(&self, id: &str, actor: &Actor) -> Result<Entry, StoreError> {
        let actor = actor.to_string();
        self.write("entries", |tx, now| {
            let entry = entry_by_id(tx, id)?.ok_or_else(|| StoreError::NotFound {
                table: "entries",
                id: id.to_owned(),
            })?;
            tx.execute("DELETE FROM entries WHERE id = ?1", [id])
                .map_err(|e| write_error("delete", "entries", id, e))?;
            let payload = replay::payload_text("entry.delete", &replay::entry_payload(&entry))?;
            append_audit(tx, now, kind::ENTRY_DELETE, &actor, id, &payload)?;
            Ok(entry)
        })
    }

    fn insert_key(
        &self,
        table: KeyTable,
        key: &NewKey,
        actor: &Actor,
    ) -> Result<KeyRecord, StoreError> {
        let t = table.table();
        limits::check_nonempty_text(&format!("{t}.id"), &key.id, limits::MAX_NAME)?;
        limits::check_nonempty_text(&format!("{t}.kind"), &key.kind, limits::MAX_NAME)?;
        for (field, bytes, max) in [
            ("public", &key.public[..], limits::MAX_KEY_PUBLIC),
            ("private", &key.private[..], limits::MAX_KEY_PRIVATE),
        ] {
            if bytes.is_empty() || bytes.len() > max {
                return Err(invalid(
                    format!("{t}.{field}"),
                    format!("{} bytes; must be 1 to {max}", bytes.len()),
                ));
            }
        }
        if key.not_before >= key.not_after {
            return Err(invalid(
                format!("{t}.not_after"),
                "must be later than not_before",
            ));
        }
        let actor = actor.to_string();
        self.write(t, |tx, now| {
            if key.state == KeyState::Active
                && let Some(active) = active_key_id(tx, table)?
            {
                return Err(StoreError::Conflict {
                    table: t,
                    id: key.id.clone(),
                    constraint: format!(
                        "key {active} is already active; insert the new key prepared and \
                         activate it with set_key_state"
                    ),
                });
            }
            tx.execute(
                &format!(
                    "INSERT INTO {t} ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    key_cols(table)
                ),
                params![
                    key.id,
                    key.kind,
                    key.public,
                    &key.private[..],
                    key.not_before,
                    key.not_after,
                    key.state.as_str(),
                    now
                ],
            )
            .map_err(|e| write_error("insert", t, &key.id, e))?;
            let payload = replay::payload_text(
                "key.insert",
                &replay::key_insert_payload(
                    table,
                    &key.id,
                    &key.kind,
                    &key.public,
                    key.not_before,
                    key.not_after,
                    key.state,
                ),
            )?;
            append_audit(tx, now, kind::KEY_INSERT, &actor, &key.id, &payload)?;
            Ok(KeyRecord {
                id: key.id.clone(),
                kind: key.kind.clone(),
                public: key.public.clone(),
                private: key.private.clone(),
                not_before: key.not_before,
                not_after: key.not_after,
                state: key.state,
                created: now,
            })
        })
    }

    fn set_key_state(
        &self,
        table: KeyTable,
        id: &str,
        state: KeyState,
        actor: &Actor,
    ) -> Result<Option<String>, StoreError> {
        let t = table.table();
        let actor = actor.to_string();
        self.write(t, |tx, now| {
            let key = key_by_id(tx, table, id)?.ok_or_else(|| StoreError::NotFound {
                table: t,
                id: id.to_owned(),
            })?;
            if !key.state.can_become(state) {
                return Err(StoreError::KeyTransition {
                    table: t,
                    id: id.to_owned(),
                    from: key.state.to_string(),
                    to: state.to_string(),
                });
            }
            // Activation retires the previous active key in the same
            // transaction: there is never a moment with two active keys or
            // with none.
            let mut retired = None;
            if state == KeyState::Active
                && let Some(active) = active_key_id(tx, table)?
            {
                set_key_state_tx(
                    tx,
                    now,
                    table,
                    &active,
                    KeyState::Active,
                    KeyState::Retired,
                    &actor,
                )?;
                retired = Some(active);
            }
            set_key_state_tx(tx, now, table, id, key.state, state, &actor)?;
            Ok(retired)
        })
    }

    fn list_keys(&self, table: KeyTable) -> Result<Vec<KeyRecord>, StoreError> {
        let query = format!(
            "SELECT {} FROM {} ORDER BY not_before, {}",
            key_cols(table),
            table.table(),
            table.id_column()
        );
        self.read(|c| collect(c, table.table(), &query, [], |r| key_from_row(table, r)))
    }

    fn append_event(&self, event: &AuditEvent<'_>) -> Result<AuditRecord, StoreError> {
        limits::check_kind("audit.kind", event.kind)?;
        if kind::BUILT_IN.contains(&event.kind) {
            return Err(invalid(
                "audit.kind",
                format!(
                    "{:?} is written only by the store's own calls (verify_store replays it)",
                    event.kind
                ),
            ));
        }
        limits::check_text("audit.subject", event.subject, limits::MAX_STRING)?;
        let payload = replay::payload_text("audit event payload", event.payload)?;
        if payload.len() > limits::MAX_EVENT_PAYLOAD {
            return Err(invalid(
                "audit.payload",
                format!(
                    "{} bytes of JSON, more than the limit of {}",
                    payload.len(),
                    limits::MAX_EVENT_PAYLOAD
                ),
            ));
        }
        let actor = event.actor.to_string();
        self.write("audit", |tx, now| {
            append_audit(tx, now, event.kind, &actor, event.subject, &payload)
        })
    }

    fn audit_head(&self) -> Result<AuditHead, StoreError> {
        self.read(|c| {
            read_head(c)?.ok_or(StoreError::AuditBroken {
                seq: 0,
                reason: AuditBreak::HeadMissing,
            })
        })
    }

    fn audit_records(&self, after_seq: u64, limit: u32) -> Result<Vec<AuditRecord>, StoreError> {
        let after = widen("after_seq", after_seq)?;
        let limit = limits::clamp_page(limit);
        self.read(|c| {
            let query =
                format!("SELECT {AUDIT_COLS} FROM audit WHERE seq > ?1 ORDER BY seq LIMIT ?2");
            collect(c, "audit", &query, params![after, limit], |r| {
                audit_from_row(r, 0)
            })
        })
    }
}

fn active_key_id(conn: &Connection, table: KeyTable) -> Result<Option<String>, StoreError> {
    conn.query_row(
        &format!(
            "SELECT {} FROM {} WHERE state = 'active'",
            table.id_column(),
            table.table()
        ),
        [],
        |r| r.get(0),
    )
    .optional()
    .map_err(sql("select", table.table()))
}

fn verdict_columns(v: &Value) -> Result<VerdictColumns, StoreError> {
    replay::verdict_columns(v).map_err(|reason| invalid("verdict", reason))
}
