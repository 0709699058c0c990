//! Offline verification and export of a SQLite datastore: read-only, so
//! `rootmark-issuer audit verify|export` work with the issuer stopped (or
//! running: WAL lets readers in).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use rusqlite::Connection;
use sha2::{Digest, Sha256};

use super::StoreReport;
use super::audit::ChainWalker;
use super::error::{StoreError, sql};
use super::replay::{self, ExpectedAttestation, Replay};
use super::sqlite::{
    AUDIT_COLS, ENTRY_COLS, NODE_COLS, attestation_by_id, audit_from_row, ban_from_row, collect,
    entry_from_row, get, key_cols, key_from_row, node_from_row, open_read_only, read_head, to_json,
};
use super::types::{AuditHead, AuditRecord, AuditSummary, KeyTable};

/// Streams the audit chain in seq order through `f`, inside one read
/// transaction so the records and the head are one consistent snapshot even
/// while the issuer appends.
fn walk_audit(
    conn: &Connection,
    walker: &mut ChainWalker,
    mut f: impl FnMut(&AuditRecord) -> Result<(), StoreError>,
) -> Result<Option<AuditHead>, StoreError> {
    let mut stmt = conn
        .prepare(&format!("SELECT {AUDIT_COLS} FROM audit ORDER BY seq"))
        .map_err(sql("select", "audit"))?;
    let mut rows = stmt.query([]).map_err(sql("select", "audit"))?;
    let mut expected = 1u64;
    while let Some(row) = rows.next().map_err(sql("select", "audit"))? {
        let rec = audit_from_row(row, expected)?;
        walker.push(&rec)?;
        f(&rec)?;
        expected = rec.seq + 1;
    }
    read_head(conn)
}

fn with_snapshot<T>(
    path: &Path,
    f: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let conn = open_read_only(path)?;
    conn.execute_batch("BEGIN").map_err(sql("begin", "audit"))?;
    let out = f(&conn);
    // A read transaction: ending it cannot lose anything.
    let _ = conn.execute_batch("COMMIT");
    out
}

/// Verifies the audit chain of the datastore at `path`, read-only (the
/// issuer may be running or stopped): every record's hash, its link to the
/// previous record, the absence of gaps, and the stored head (so deleting
/// the last records is detected). Returns the record count and head, or
/// [`StoreError::AuditBroken`] naming the first broken record.
pub fn verify_audit_chain(path: &Path) -> Result<AuditSummary, StoreError> {
    verify_audit_chain_with(path, &[])
}

/// Like [`verify_audit_chain`], and also checks that the chain still holds
/// each of `checkpoints` (heads exported earlier, e.g. by `audit export`
/// to another machine): the only defence against someone who rewrote the
/// whole file.
pub fn verify_audit_chain_with(
    path: &Path,
    checkpoints: &[AuditHead],
) -> Result<AuditSummary, StoreError> {
    with_snapshot(path, |conn| {
        let mut walker = ChainWalker::new().with_checkpoints(checkpoints);
        let head = walk_audit(conn, &mut walker, |_| Ok(()))?;
        walker.finish(head.as_ref())
    })
}

/// Writes the audit log of the datastore at `path` to `out` as JSON lines,
/// one [`AuditRecord`] per line in seq order (`payload` is the stored JSON
/// text as a string, so the hash can be recomputed from the export alone).
/// Verifies the chain while writing: on a broken chain the records before
/// the break have been written and the error names the break.
pub fn export_audit(path: &Path, out: &mut dyn Write) -> Result<AuditSummary, StoreError> {
    with_snapshot(path, |conn| {
        let mut walker = ChainWalker::new();
        let head = walk_audit(conn, &mut walker, |rec| {
            let line = to_json("audit record", rec)?;
            writeln!(out, "{line}").map_err(|source| StoreError::Io {
                what: "cannot write the audit export",
                path: PathBuf::from("-"),
                source,
            })
        })?;
        out.flush().map_err(|source| StoreError::Io {
            what: "cannot write the audit export",
            path: PathBuf::from("-"),
            source,
        })?;
        walker.finish(head.as_ref())
    })
}

/// Verifies the audit chain (as [`verify_audit_chain`]) and then that the
/// tables hold what the audit log says was written: each attestation row
/// matches its audit record column by column and no row lacks one; entries,
/// bans, CA/JWT keys (all but the private key, which is never logged) and
/// nodes equal the state replayed from the log. Names the first row that
/// differs ([`StoreError::RowMismatch`]).
pub fn verify_store(path: &Path) -> Result<StoreReport, StoreError> {
    with_snapshot(path, |conn| {
        let mut walker = ChainWalker::new();
        let mut replay = Replay::default();
        let head = walk_audit(conn, &mut walker, |rec| {
            if let Some(expected) = replay.apply(rec)? {
                check_attestation_row(conn, &expected)?;
            }
            Ok(())
        })?;
        let audit = walker.finish(head.as_ref())?;
        let attestations = check_unaudited_attestations(conn, &replay.attestation_ids)?;
        let entries = check_entries(conn, &replay)?;
        let bans = check_bans(conn, &replay)?;
        let keys = check_keys(conn, &replay)?;
        let nodes = check_nodes(conn, &replay)?;
        Ok(StoreReport {
            audit,
            attestations,
            entries,
            bans,
            keys,
            nodes,
        })
    })
}

fn mismatch(table: &'static str, id: impl ToString, reason: String) -> StoreError {
    StoreError::RowMismatch {
        table,
        id: id.to_string(),
        reason,
    }
}

fn check_attestation_row(conn: &Connection, e: &ExpectedAttestation) -> Result<(), StoreError> {
    const T: &str = "attestations";
    let row = attestation_by_id(conn, e.id)?.ok_or_else(|| {
        mismatch(
            T,
            e.id,
            format!("row missing (deleted); audit record {} wrote it", e.seq),
        )
    })?;
    let c = &e.cols;
    let differs: Option<&str> = if row.time != e.time {
        Some("time")
    } else if row.ek_sha256 != c.ek_sha256 {
        Some("ek_sha256")
    } else if row.spiffe_id != e.spiffe_id {
        Some("spiffe_id")
    } else if row.accepted != c.accepted {
        Some("accepted")
    } else if row.failed_check != c.failed_check {
        Some("failed_check")
    } else if row.reason != c.reason {
        Some("reason")
    } else if row.ak_name != c.ak_name {
        Some("ak_name")
    } else if row.nonce != c.nonce {
        Some("nonce")
    } else if row.pcrs != c.pcrs {
        Some("pcrs")
    } else if row.event_log_sha256 != c.event_log_sha256 {
        Some("event_log_sha256")
    } else if row.policies != c.policies {
        Some("policies")
    } else if row.verdict != e.verdict {
        Some("verdict")
    } else if row.peer != e.peer {
        Some("peer")
    } else {
        None
    };
    match differs {
        Some(column) => Err(mismatch(
            T,
            e.id,
            format!(
                "column {column} differs from audit record {} (row edited)",
                e.seq
            ),
        )),
        None => Ok(()),
    }
}

/// Every attestation row must have been written by an audited call.
fn check_unaudited_attestations(conn: &Connection, audited: &[i64]) -> Result<u64, StoreError> {
    let mut audited = audited.to_vec();
    audited.sort_unstable();
    let mut stmt = conn
        .prepare("SELECT id FROM attestations ORDER BY id")
        .map_err(sql("select", "attestations"))?;
    let mut rows = stmt.query([]).map_err(sql("select", "attestations"))?;
    let mut count = 0u64;
    let mut next = audited.iter().peekable();
    while let Some(row) = rows.next().map_err(sql("select", "attestations"))? {
        let id: i64 = get(row, 0, "attestations")?;
        // Audited ids absent from the table were reported by
        // check_attestation_row already; skip past them.
        while next.next_if(|a| **a < id).is_some() {}
        if next.next_if(|a| **a == id).is_none() {
            return Err(mismatch(
                "attestations",
                id,
                "no audit record wrote this row (inserted outside the issuer)".into(),
            ));
        }
        count += 1;
    }
    Ok(count)
}

fn check_entries(conn: &Connection, replay: &Replay) -> Result<u64, StoreError> {
    const T: &str = "entries";
    let rows = collect(
        conn,
        T,
        &format!("SELECT {ENTRY_COLS} FROM entries ORDER BY id"),
        [],
        entry_from_row,
    )?;
    for row in &rows {
        match replay.entries.get(&row.id) {
            None => {
                return Err(mismatch(
                    T,
                    &row.id,
                    "no audit record created this entry (or its deletion was undone)".into(),
                ));
            }
            Some((seq, expected)) if expected != row => {
                return Err(mismatch(
                    T,
                    &row.id,
                    format!("differs from audit record {seq} (row edited)"),
                ));
            }
            Some(_) => {}
        }
    }
    let present: BTreeSet<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    if let Some((id, (seq, _))) = replay
        .entries
        .iter()
        .find(|(id, _)| !present.contains(id.as_str()))
    {
        return Err(mismatch(
            T,
            id,
            format!("row missing (deleted without an audit record); audit record {seq} created it"),
        ));
    }
    Ok(rows.len() as u64)
}

fn check_bans(conn: &Connection, replay: &Replay) -> Result<u64, StoreError> {
    const T: &str = "bans";
    let rows = collect(
        conn,
        T,
        "SELECT ek_sha256, reason, time, banned_by FROM bans ORDER BY ek_sha256",
        [],
        ban_from_row,
    )?;
    for row in &rows {
        match replay.bans.get(&row.ek_sha256) {
            None => {
                return Err(mismatch(
                    T,
                    &row.ek_sha256,
                    "no audit record set this ban (or it was lifted)".into(),
                ));
            }
            Some((seq, expected)) if expected != row => {
                return Err(mismatch(
                    T,
                    &row.ek_sha256,
                    format!("differs from audit record {seq} (row edited)"),
                ));
            }
            Some(_) => {}
        }
    }
    let present: BTreeSet<&str> = rows.iter().map(|r| r.ek_sha256.as_str()).collect();
    if let Some((ek, (seq, _))) = replay
        .bans
        .iter()
        .find(|(ek, _)| !present.contains(ek.as_str()))
    {
        return Err(mismatch(
            T,
            ek,
            format!("ban missing (deleted without an audit record); audit record {seq} set it"),
        ));
    }
    Ok(rows.len() as u64)
}

fn check_keys(conn: &Connection, replay: &Replay) -> Result<u64, StoreError> {
    let mut count = 0u64;
    for table in [KeyTable::Ca, KeyTable::Jwt] {
        let t = table.table();
        let rows = collect(
            conn,
            t,
            &format!(
                "SELECT {} FROM {t} ORDER BY {}",
                key_cols(table),
                table.id_column()
            ),
            [],
            |r| key_from_row(table, r),
        )?;
        for row in &rows {
            let Some(expected) = replay.keys.get(&(table, row.id.clone())) else {
                return Err(mismatch(
                    t,
                    &row.id,
                    "no audit record stored this key".into(),
                ));
            };
            let actual = replay::ExpectedKey {
                seq: expected.seq,
                kind: row.kind.clone(),
                public_sha256: hex::encode(Sha256::digest(&row.public)),
                not_before: row.not_before,
                not_after: row.not_after,
                state: row.state,
                created: row.created,
            };
            if actual != *expected {
                return Err(mismatch(
                    t,
                    &row.id,
                    format!("differs from audit record {} (row edited)", expected.seq),
                ));
            }
        }
        let present: BTreeSet<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        if let Some(((_, id), key)) = replay
            .keys
            .iter()
            .filter(|((tb, _), _)| *tb == table)
            .find(|((_, id), _)| !present.contains(id.as_str()))
        {
            return Err(mismatch(
                t,
                id,
                format!("key missing (deleted); audit record {} stored it", key.seq),
            ));
        }
        count += rows.len() as u64;
    }
    Ok(count)
}

fn check_nodes(conn: &Connection, replay: &Replay) -> Result<u64, StoreError> {
    const T: &str = "nodes";
    let rows = collect(
        conn,
        T,
        &format!("SELECT {NODE_COLS} FROM nodes ORDER BY spiffe_id"),
        [],
        node_from_row,
    )?;
    for row in &rows {
        match replay.nodes.get(&row.spiffe_id) {
            None => {
                return Err(mismatch(
                    T,
                    &row.spiffe_id,
                    "no accepted attestation in the audit log created this node".into(),
                ));
            }
            Some((seq, expected)) if expected != row => {
                return Err(mismatch(
                    T,
                    &row.spiffe_id,
                    format!("differs from the state after audit record {seq} (row edited)"),
                ));
            }
            Some(_) => {}
        }
    }
    let present: BTreeSet<&str> = rows.iter().map(|r| r.spiffe_id.as_str()).collect();
    if let Some((id, (seq, _))) = replay
        .nodes
        .iter()
        .find(|(id, _)| !present.contains(id.as_str()))
    {
        return Err(mismatch(
            T,
            id,
            format!("node missing (deleted); audit record {seq} last changed it"),
        ));
    }
    Ok(rows.len() as u64)
}
