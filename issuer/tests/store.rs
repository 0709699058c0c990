//! The datastore and its tamper-evident audit log, on real SQLite files,
//! tampered with by the real `sqlite3` CLI (Debian package `sqlite3`).
#![allow(clippy::unwrap_used)] // tests and benches fail loudly by design

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rootmark_issuer::policy::{PolicyResults, RuleViolation};
use rootmark_issuer::store::audit::{GENESIS_HASH, record_hash};
use rootmark_issuer::store::{
    Actor, AttestationQuery, AuditBreak, AuditEvent, AuditHead, AuditRecord, Datastore, KeyState,
    KeyTable, NewAttestation, NewEntry, NewKey, SqliteStore, StoreError, export_audit,
    verify_audit_chain, verify_audit_chain_with, verify_store,
};
use rootmark_issuer::verdict::{Check, ClockSummary, Verdict};
use zeroize::Zeroizing;

const ADMIN: Actor = Actor::Admin { uid: 1000 };

fn ek(n: u32) -> String {
    format!("{n:064x}")
}

fn node_id(ek: &str) -> String {
    format!("spiffe://example.org/rootmark/node/{ek}")
}

fn pcrs(boot: u32) -> BTreeMap<String, BTreeMap<u32, String>> {
    let bank: BTreeMap<u32, String> = [0u32, 2, 4, 7]
        .into_iter()
        .map(|i| (i, format!("{:064x}", boot * 100 + i)))
        .collect();
    BTreeMap::from([("sha256".to_owned(), bank)])
}

fn accepted(ek_hex: &str, boot: u32) -> Verdict {
    Verdict {
        accepted: true,
        failed_check: None,
        reason: None,
        ek_sha256: Some(ek_hex.to_owned()),
        ek_manufacturer: Some("id:1014".into()),
        ek_trust: Some("certificate".into()),
        ak_name: Some(format!("000b{:060x}", boot)),
        nonce: Some(format!("{:032x}", boot)),
        pcrs: pcrs(boot),
        event_log_sha256: Some(format!("{:064x}", boot + 7)),
        secure_boot: Some(true),
        clock: Some(ClockSummary {
            clock: 1000 * u64::from(boot),
            reset_count: boot,
            restart_count: 0,
        }),
        policies: PolicyResults {
            passed: vec!["prod".into()],
            failed: vec![],
        },
        selectors: vec![
            format!("tpm:ek-sha256:{ek_hex}"),
            "tpm:secure-boot:enabled".into(),
            "tpm:policy:prod".into(),
        ],
    }
}

fn refused(ek_hex: &str, boot: u32) -> Verdict {
    Verdict {
        accepted: false,
        failed_check: Some(Check::Policy),
        reason: Some("prod: pcrs.sha256.7: value differs".into()),
        selectors: vec![],
        policies: PolicyResults {
            passed: vec![],
            failed: vec![(
                "prod".into(),
                vec![RuleViolation {
                    rule: "pcrs.sha256.7".into(),
                    detail: "value differs".into(),
                }],
            )],
        },
        ..accepted(ek_hex, boot)
    }
}

fn record(store: &dyn Datastore, v: &Verdict) -> u64 {
    let id = v.ek_sha256.as_deref().map(node_id);
    let mut att = NewAttestation::new(v).peer("127.0.0.1:4000");
    if let Some(id) = &id {
        att = att.spiffe_id(id);
    }
    store
        .record_attestation(&att)
        .expect("record attestation")
        .audit_seq
}

fn entry(n: u32) -> NewEntry {
    NewEntry {
        spiffe_id: format!("spiffe://example.org/svc/{n}"),
        node_selectors: vec!["tpm:policy:prod".into()],
        selectors: vec![format!("unix:uid:{n}"), "unix:user:svc".into()],
        x509_ttl_s: Some(3600),
        dns_names: vec![format!("svc{n}.example.org")],
        hint: Some("internal".into()),
        ..NewEntry::default()
    }
}

fn key(id: &str, state: KeyState) -> NewKey {
    NewKey {
        id: id.to_owned(),
        kind: "ec-p256".into(),
        public: format!("public of {id}").into_bytes(),
        private: Zeroizing::new(format!("secret of {id}").into_bytes()),
        not_before: 1_000,
        not_after: 2_000_000,
        state,
    }
}

/// A store with `n` rounds of mixed writes; returns the path.
fn mixed_store(dir: &Path, rounds: u32) -> PathBuf {
    let path = dir.join("rootmark.db");
    let store = SqliteStore::open(&path).expect("open");
    store
        .insert_key(KeyTable::Ca, &key("ca-1", KeyState::Active), &Actor::Issuer)
        .expect("ca key");
    store
        .insert_key(
            KeyTable::Jwt,
            &key("jwt-1", KeyState::Prepared),
            &Actor::Issuer,
        )
        .expect("jwt key");
    let mut entries = Vec::new();
    for i in 0..rounds {
        let node = ek(i % 5);
        record(&store, &accepted(&node, i));
        record(&store, &refused(&node, i));
        // An attestation that failed before the EK parsed.
        let early = Verdict {
            ek_sha256: None,
            ..refused(&node, i)
        };
        record(&store, &early);
        entries.push(store.create_entry(&entry(i), &ADMIN).expect("entry"));
        if i % 3 == 0 {
            let e = entries.remove(0);
            store.delete_entry(&e.id, &ADMIN).expect("delete entry");
        }
        if i % 7 == 0 {
            store.ban_node(&ek(100 + i), "stolen", &ADMIN).expect("ban");
        }
        if i % 14 == 0 {
            store.unban_node(&ek(100 + i), &ADMIN).expect("unban");
        }
    }
    store
        .ban_node(&ek(1), "decommissioned", &ADMIN)
        .expect("ban node");
    store.evict_node(&node_id(&ek(0)), &ADMIN).expect("evict");
    store
        .set_key_state(KeyTable::Jwt, "jwt-1", KeyState::Active, &Actor::Issuer)
        .expect("activate");
    store
        .append_event(&AuditEvent {
            kind: "admin.denied",
            actor: Actor::Admin { uid: 4242 },
            subject: "entry create",
            payload: &serde_json::json!({"why": "uid not allowed"}),
        })
        .expect("event");
    path
}

fn sqlite3(path: &Path, sql: &str) -> String {
    let out = Command::new("sqlite3")
        .arg(path)
        .arg(sql)
        .output()
        .expect("run sqlite3 (Debian package sqlite3)");
    assert!(
        out.status.success(),
        "sqlite3 {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn broken(r: Result<impl std::fmt::Debug, StoreError>) -> (u64, AuditBreak, String) {
    match r {
        Err(e @ StoreError::AuditBroken { .. }) => {
            let msg = e.to_string();
            match e {
                StoreError::AuditBroken { seq, reason } => (seq, reason, msg),
                _ => unreachable!(),
            }
        }
        other => panic!("expected a broken chain, got {other:?}"),
    }
}

#[test]
fn audit_verify_passes_on_a_store_with_over_100_mixed_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = mixed_store(dir.path(), 30);
    let summary = verify_audit_chain(&path).expect("chain verifies");
    assert!(summary.records >= 100, "{} records", summary.records);
    let kinds = sqlite3(&path, "SELECT group_concat(DISTINCT kind) FROM audit");
    for k in [
        "attestation",
        "entry.create",
        "entry.delete",
        "node.ban",
        "node.unban",
        "node.evict",
        "key.insert",
        "key.state",
        "admin.denied",
    ] {
        assert!(kinds.contains(k), "{k} missing from {kinds}");
    }
    let refused: u64 = sqlite3(
        &path,
        "SELECT count(*) FROM attestations WHERE accepted = 0",
    )
    .parse()
    .expect("count");
    assert_eq!(refused, 60);
    let report = verify_store(&path).expect("store verifies");
    assert_eq!(report.audit, summary);
    assert_eq!(report.attestations, 90);
    assert_eq!(report.nodes, 5);
    assert_eq!(report.keys, 2);
    // The head the store reports is the one verification computed.
    let store = SqliteStore::open(&path).expect("reopen");
    assert_eq!(store.audit_head().expect("head"), summary.head);
}

#[test]
fn the_documented_python_script_recomputes_the_chain() {
    // The module docs promise an auditor can recompute the chain with a
    // script; run that very script, taken from the docs.
    if Command::new("python3").arg("--version").output().is_err() {
        eprintln!("python3 not installed: skipping the documented-script check");
        return;
    }
    let docs = include_str!("../src/store/mod.rs");
    let script: String = docs
        .lines()
        .map(|l| l.strip_prefix("//!").unwrap_or(l))
        .map(|l| l.strip_prefix(' ').unwrap_or(l))
        .skip_while(|l| !l.starts_with("import hashlib"))
        .take_while(|l| !l.starts_with("```"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(script.contains("sha256"), "script not found in the docs");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = mixed_store(dir.path(), 10);
    let summary = verify_audit_chain(&path).expect("verifies");
    let out = Command::new("python3")
        .arg("-c")
        .arg(&script)
        .arg(&path)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("{} {}", summary.records, summary.head.hash)
    );
    // And it catches an edit too.
    sqlite3(&path, "UPDATE audit SET actor = 'uid:0' WHERE seq = 3");
    let out = Command::new("python3")
        .arg("-c")
        .arg(&script)
        .arg(&path)
        .output()
        .expect("python3");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("record 3: hash"));
}

#[test]
fn editing_record_5_payload_with_sqlite3_is_named_as_a_hash_mismatch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = mixed_store(dir.path(), 5);
    sqlite3(
        &path,
        r#"UPDATE audit SET payload = '{"edited":true}' WHERE seq = 5"#,
    );
    let (seq, reason, msg) = broken(verify_audit_chain(&path));
    assert_eq!((seq, reason), (5, AuditBreak::HashMismatch));
    assert_eq!(
        msg,
        "audit chain broken at record 5: hash mismatch (record edited)"
    );
    // verify_store reports the chain first.
    assert_eq!(broken(verify_store(&path)).0, 5);
}

#[test]
fn an_edit_with_a_recomputed_hash_breaks_the_next_link() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = mixed_store(dir.path(), 5);
    let row = sqlite3(
        &path,
        "SELECT time || '|' || kind || '|' || actor || '|' || subject || '|' || prev_hash FROM audit WHERE seq = 5",
    );
    let parts: Vec<&str> = row.split('|').collect();
    let prev: [u8; 32] = hex::decode(parts[4])
        .expect("hex")
        .try_into()
        .expect("32 bytes");
    let time: i64 = parts[0].parse().expect("time");
    let forged = r#"{"forged":true}"#;
    let hash = hex::encode(record_hash(
        &prev, 5, time, parts[1], parts[2], parts[3], forged,
    ));
    sqlite3(
        &path,
        &format!("UPDATE audit SET payload = '{forged}', hash = '{hash}' WHERE seq = 5"),
    );
    let (seq, reason, msg) = broken(verify_audit_chain(&path));
    assert_eq!((seq, reason), (6, AuditBreak::PrevHashMismatch));
    assert!(msg.contains("prev_hash does not match the previous record's hash"));
}

#[test]
fn deleting_record_7_with_sqlite3_is_named_as_a_sequence_gap() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = mixed_store(dir.path(), 5);
    sqlite3(&path, "DELETE FROM audit WHERE seq = 7");
    let (seq, reason, msg) = broken(verify_audit_chain(&path));
    assert_eq!(
        (seq, reason),
        (
            7,
            AuditBreak::SequenceGap {
                missing: 7,
                next_present: 8
            }
        )
    );
    assert!(
        msg.contains("sequence gap: record 7 missing (deleted)"),
        "{msg}"
    );
}

#[test]
fn deleting_the_last_record_is_detected_through_the_head() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = mixed_store(dir.path(), 5);
    let last: u64 = sqlite3(&path, "SELECT max(seq) FROM audit")
        .parse()
        .expect("seq");
    sqlite3(&path, &format!("DELETE FROM audit WHERE seq = {last}"));
    let (seq, reason, msg) = broken(verify_audit_chain(&path));
    assert_eq!(
        (seq, reason),
        (
            last,
            AuditBreak::Truncated {
                last_present: last - 1,
                head_seq: last
            }
        )
    );
    assert!(msg.contains("missing (deleted)"), "{msg}");

    // Deleting the head row too is also caught.
    sqlite3(&path, "DELETE FROM audit_head");
    assert_eq!(broken(verify_audit_chain(&path)).1, AuditBreak::HeadMissing);

    // A record appended by hand beyond the head is caught.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = mixed_store(dir.path(), 2);
    let head: u64 = sqlite3(&path, "SELECT seq FROM audit_head")
        .parse()
        .expect("seq");
    sqlite3(
        &path,
        &format!(
            "INSERT INTO audit SELECT seq + 1, time, kind, actor, subject, payload, hash, hash FROM audit WHERE seq = {head}"
        ),
    );
    let (seq, _, _) = broken(verify_audit_chain(&path));
    assert_eq!(seq, head + 1);
}

#[test]
fn verify_store_names_attestation_rows_edited_deleted_or_forged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = mixed_store(dir.path(), 5);
    verify_store(&path).expect("intact store verifies");

    // Turn a refusal into an acceptance in the table (not in the audit).
    sqlite3(
        &path,
        "UPDATE attestations SET accepted = 1, reason = NULL WHERE id = 5",
    );
    verify_audit_chain(&path).expect("the audit log itself is intact");
    match verify_store(&path) {
        Err(StoreError::RowMismatch { table, id, reason }) => {
            assert_eq!((table, id.as_str()), ("attestations", "5"));
            assert!(reason.contains("column accepted"), "{reason}");
        }
        other => panic!("expected a mismatch, got {other:?}"),
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let path = mixed_store(dir.path(), 5);
    sqlite3(
        &path,
        "UPDATE attestations SET pcrs = replace(pcrs, '0000', '1111') WHERE id = 4",
    );
    let seq = sqlite3(
        &path,
        "SELECT seq FROM audit WHERE kind = 'attestation' AND json_extract(payload, '$.attestation_id') = 4",
    );
    let err = verify_store(&path).expect_err("PCR edit");
    assert_eq!(
        err.to_string(),
        format!(
            "attestations 4 does not match the audit log: column pcrs differs from audit record {seq} (row edited)"
        )
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let path = mixed_store(dir.path(), 5);
    sqlite3(&path, "DELETE FROM attestations WHERE id = 2");
    let err = verify_store(&path).expect_err("deleted row");
    assert!(
        matches!(&err, StoreError::RowMismatch { table: "attestations", id, .. } if id == "2"),
        "{err}"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let path = mixed_store(dir.path(), 5);
    sqlite3(
        &path,
        "INSERT INTO attestations (ek_sha256, spiffe_id, time, accepted, pcrs, policies, verdict)
         SELECT ek_sha256, spiffe_id, time, 1, pcrs, policies, verdict FROM attestations WHERE id = 1",
    );
    let forged: String = sqlite3(&path, "SELECT max(id) FROM attestations");
    let err = verify_store(&path).expect_err("forged row");
    assert!(
        matches!(&err, StoreError::RowMismatch { table: "attestations", id, reason } if *id == forged && reason.contains("no audit record")),
        "{err}"
    );
}

#[test]
fn verify_store_names_entries_bans_nodes_and_keys_changed_behind_its_back() {
    let cases: &[(&str, &str)] = &[
        (
            "UPDATE entries SET admin = 1 WHERE rowid = (SELECT min(rowid) FROM entries)",
            "entries",
        ),
        (
            "DELETE FROM entries WHERE rowid = (SELECT max(rowid) FROM entries)",
            "entries",
        ),
        (
            "UPDATE entries SET selectors = '[\"unix:uid:0\"]'",
            "entries",
        ),
        ("DELETE FROM bans", "bans"),
        (
            "UPDATE nodes SET banned = 0, ban_reason = NULL WHERE banned = 1",
            "nodes",
        ),
        ("UPDATE nodes SET evicted = 0", "nodes"),
        ("UPDATE ca_keys SET public = x'00'", "ca_keys"),
        ("UPDATE jwt_keys SET state = 'prepared'", "jwt_keys"),
    ];
    for (tamper, table) in cases {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = mixed_store(dir.path(), 6);
        verify_store(&path).expect("intact");
        sqlite3(&path, tamper);
        match verify_store(&path) {
            Err(StoreError::RowMismatch { table: t, .. }) => assert_eq!(t, *table, "{tamper}"),
            other => panic!("{tamper}: expected a mismatch in {table}, got {other:?}"),
        }
    }
}

#[test]
fn exported_heads_catch_a_rewrite_of_the_whole_chain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = mixed_store(dir.path(), 5);
    let checkpoint: AuditHead = verify_audit_chain(&path).expect("verifies").head;

    // An attacker with the whole file edits record 3 and recomputes every
    // hash after it, and the head: the chain verifies on its own…
    let rows = sqlite3(
        &path,
        "SELECT seq || '|' || time || '|' || kind || '|' || actor || '|' || subject FROM audit ORDER BY seq",
    );
    let mut prev = GENESIS_HASH;
    let mut sql = String::from("BEGIN;");
    for line in rows.lines() {
        let p: Vec<&str> = line.splitn(5, '|').collect();
        let seq: u64 = p[0].parse().expect("seq");
        let payload = sqlite3(
            &path,
            &format!("SELECT payload FROM audit WHERE seq = {seq}"),
        );
        // Record 3 gains a space: still JSON, different bytes.
        let payload = if seq == 3 { payload + " " } else { payload };
        let time: i64 = p[1].parse().expect("time");
        let hash = record_hash(&prev, seq, time, p[2], p[3], p[4], &payload);
        sql.push_str(&format!(
            "UPDATE audit SET payload = '{}', prev_hash = '{}', hash = '{}' WHERE seq = {seq};",
            payload.replace('\'', "''"),
            hex::encode(prev),
            hex::encode(hash)
        ));
        prev = hash;
    }
    sql.push_str(&format!(
        "UPDATE audit_head SET hash = '{}'; COMMIT;",
        hex::encode(prev)
    ));
    sqlite3(&path, &sql);
    verify_audit_chain(&path).expect("a full rewrite verifies by itself (documented limit)");

    // …but not against a head exported before.
    let (seq, reason, _) = broken(verify_audit_chain_with(
        &path,
        std::slice::from_ref(&checkpoint),
    ));
    assert_eq!(seq, checkpoint.seq);
    assert!(matches!(reason, AuditBreak::CheckpointMismatch { .. }));
}

#[test]
fn export_writes_json_lines_from_which_every_hash_recomputes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = mixed_store(dir.path(), 5);
    let mut out = Vec::new();
    let summary = export_audit(&path, &mut out).expect("export");
    let text = String::from_utf8(out).expect("utf-8");
    let records: Vec<AuditRecord> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(records.len() as u64, summary.records);
    let mut prev = GENESIS_HASH;
    for r in &records {
        let h = record_hash(
            &prev, r.seq, r.time, &r.kind, &r.actor, &r.subject, &r.payload,
        );
        assert_eq!(hex::encode(h), r.hash, "record {}", r.seq);
        serde_json::from_str::<serde_json::Value>(&r.payload).expect("payload is JSON");
        prev = h;
    }
    assert_eq!(hex::encode(prev), summary.head.hash);
    // Private keys never reach the audit log.
    assert!(!text.contains(&hex::encode("secret of")) && !text.contains("secret of"));
}

#[test]
fn eight_threads_writing_through_separate_connections_never_fork_the_chain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rootmark.db");
    let start = Arc::new(std::sync::Barrier::new(8));
    let threads: Vec<_> = (0..8u32)
        .map(|t| {
            let path = path.clone();
            let start = Arc::clone(&start);
            std::thread::spawn(move || {
                // Each thread opens its own store (its own connections),
                // all at once on a fresh file: migrations race too.
                start.wait();
                let store = SqliteStore::open(&path).expect("open");
                (0..50u32)
                    .map(|i| {
                        if i % 2 == 0 {
                            record(&store, &accepted(&ek(t), i))
                        } else {
                            record(&store, &refused(&ek(t), i))
                        }
                    })
                    .collect::<Vec<u64>>()
            })
        })
        .collect();
    let mut seqs = BTreeSet::new();
    for t in threads {
        for seq in t.join().expect("writer thread") {
            assert!(seqs.insert(seq), "seq {seq} handed out twice");
        }
    }
    assert_eq!(seqs, (1..=400).collect::<BTreeSet<u64>>());
    let summary = verify_audit_chain(&path).expect("chain verifies");
    assert_eq!(summary.records, 400);
    let report = verify_store(&path).expect("store verifies");
    assert_eq!((report.attestations, report.nodes), (400, 8));
    assert_eq!(sqlite3(&path, "SELECT count(*) FROM schema_version"), "1");
}

/// Not a test by itself: the writer the SIGKILL test runs in a child
/// process (this same test binary) when the variable is set.
#[test]
fn crash_writer_child() {
    let Some(path) = std::env::var_os("ROOTMARK_STORE_CRASH_DB") else {
        return;
    };
    let path = PathBuf::from(path);
    let writers: Vec<_> = (0..4u32)
        .map(|t| {
            let path = path.clone();
            std::thread::spawn(move || {
                let store = SqliteStore::open(&path).expect("open");
                for i in 0.. {
                    let seq = if i % 3 == 0 {
                        record(&store, &refused(&ek(t), i))
                    } else {
                        record(&store, &accepted(&ek(t), i))
                    };
                    // Printed only after the commit returned.
                    println!("committed {seq}");
                }
            })
        })
        .collect();
    for w in writers {
        let _ = w.join();
    }
}

#[test]
fn sigkill_mid_write_keeps_a_verifying_chain_with_every_committed_record() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rootmark.db");
    // Create the schema first so the child starts writing at once.
    drop(SqliteStore::open(&path).expect("create"));
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "crash_writer_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("ROOTMARK_STORE_CRASH_DB", &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the writer");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(seq) = line.strip_prefix("committed ") {
                let _ = tx.send(seq.parse::<u64>().expect("seq"));
            }
        }
    });
    // About a second of writing, and at least some commits, then SIGKILL.
    let started = Instant::now();
    let mut committed = BTreeSet::new();
    while started.elapsed() < Duration::from_secs(1) || committed.len() < 20 {
        if let Ok(seq) = rx.recv_timeout(Duration::from_millis(50)) {
            committed.insert(seq);
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the writer made no progress"
        );
    }
    child.kill().expect("SIGKILL the writer");
    let status = child.wait().expect("reap");
    assert!(!status.success());
    reader.join().expect("reader");
    committed.extend(rx.try_iter());
    assert!(
        std::fs::metadata(dir.path().join("rootmark.db-wal")).is_ok(),
        "killed mid-flight: the WAL is still there to recover"
    );

    // Verified read-only first, as `audit verify` would, straight after the crash.
    let summary = verify_audit_chain(&path).expect("chain verifies after SIGKILL");
    verify_store(&path).expect("tables match the log after SIGKILL");
    let max = *committed.last().expect("some commits");
    assert!(summary.records >= max, "{} < {max}", summary.records);
    let store = SqliteStore::open(&path).expect("reopen");
    let present: BTreeSet<u64> = store
        .audit_records(0, 10_000)
        .expect("records")
        .iter()
        .map(|r| r.seq)
        .collect();
    let lost: Vec<_> = committed.difference(&present).collect();
    assert!(lost.is_empty(), "committed but lost: {lost:?}");
    // The chain continues after the crash.
    let seq = record(&store, &accepted(&ek(9), 1));
    assert_eq!(seq, summary.records + 1);
    verify_audit_chain(&path).expect("verifies after more writes");
    eprintln!(
        "SIGKILL test: {} commits reported, {} records on disk",
        committed.len(),
        summary.records
    );
}

#[test]
fn reopening_keeps_the_data_and_the_schema() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = mixed_store(dir.path(), 3);
    let before = verify_audit_chain(&path).expect("verifies");
    let store = SqliteStore::open(&path).expect("reopen");
    assert_eq!(store.list_nodes().expect("nodes").len(), 3);
    assert_eq!(store.audit_head().expect("head"), before.head);
    drop(store);
    let store = SqliteStore::open_in_dir(dir.path()).expect("reopen by data dir");
    assert_eq!(store.path(), path);
    record(&store, &accepted(&ek(0), 99));
    assert_eq!(
        sqlite3(&path, "SELECT group_concat(version) FROM schema_version"),
        "1"
    );
    assert_eq!(sqlite3(&path, "PRAGMA journal_mode"), "wal");
    assert_eq!(
        sqlite3(&path, "PRAGMA application_id"),
        "1382902577",
        "'Rmk1'"
    );
    let after = verify_audit_chain(&path).expect("verifies");
    assert_eq!(after.records, before.records + 1);
}

#[test]
fn a_schema_from_the_future_is_refused_with_a_message_saying_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = mixed_store(dir.path(), 1);
    sqlite3(
        &path,
        "INSERT INTO schema_version (version, applied) VALUES (99, 0)",
    );
    let err = SqliteStore::open(&path).expect_err("newer schema");
    assert!(
        matches!(
            err,
            StoreError::SchemaTooNew {
                found: 99,
                supported: 1,
                ..
            }
        ),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("schema version 99, newer than version 1") && msg.contains("upgrade"),
        "{msg}"
    );
    assert!(matches!(
        verify_audit_chain(&path),
        Err(StoreError::SchemaTooNew { found: 99, .. })
    ));
    // Nothing was changed by the refused open.
    assert_eq!(
        sqlite3(&path, "SELECT max(version) FROM schema_version"),
        "99"
    );
}

#[test]
fn other_sqlite_files_and_missing_files_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let other = dir.path().join("other.db");
    sqlite3(&other, "PRAGMA application_id = 7; CREATE TABLE t (x);");
    assert!(matches!(
        SqliteStore::open(&other),
        Err(StoreError::NotADatastore {
            application_id: 7,
            ..
        })
    ));
    let missing = dir.path().join("missing.db");
    assert!(matches!(
        verify_audit_chain(&missing),
        Err(StoreError::Io { .. })
    ));
    assert!(!missing.exists(), "verification never creates a file");
}

#[cfg(unix)]
#[test]
fn the_database_file_and_data_dir_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let store = SqliteStore::open_in_dir(&data).expect("open");
    record(&store, &accepted(&ek(1), 1));
    let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(store.path()), 0o600);
    assert_eq!(mode(&data.join("rootmark.db-wal")), 0o600);
    drop(store);
    std::fs::set_permissions(
        data.join("rootmark.db"),
        std::fs::Permissions::from_mode(0o644),
    )
    .expect("chmod");
    let store = SqliteStore::open_in_dir(&data).expect("reopen");
    assert_eq!(mode(store.path()), 0o600, "an existing file is tightened");
}

#[test]
fn absurd_inputs_are_refused_with_the_field_and_nothing_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("rootmark.db")).expect("open");
    let head = store.audit_head().expect("head");
    fn field_of<T>(r: Result<T, StoreError>) -> String {
        match r {
            Err(StoreError::InvalidInput { field, reason }) => format!("{field}: {reason}"),
            Err(other) => panic!("expected invalid input, got {other}"),
            Ok(_) => panic!("expected invalid input, got Ok"),
        }
    }

    let many = NewEntry {
        selectors: (0..65).map(|i| format!("unix:uid:{i}")).collect(),
        ..entry(1)
    };
    assert_eq!(
        field_of(store.create_entry(&many, &ADMIN)),
        "entry.selectors: 65 selectors, more than the limit of 64"
    );
    let long = NewEntry {
        spiffe_id: format!("spiffe://example.org/{}", "a".repeat(3000)),
        ..entry(1)
    };
    assert!(field_of(store.create_entry(&long, &ADMIN)).starts_with("entry.spiffe_id: 3021 bytes"));
    let bad_selector = NewEntry {
        selectors: vec!["unix:uid:1".into(), "no-colon".into()],
        ..entry(1)
    };
    assert!(field_of(store.create_entry(&bad_selector, &ADMIN)).starts_with("entry.selectors[1]"));
    let everywhere = NewEntry {
        node_selectors: vec![],
        ..entry(1)
    };
    assert!(field_of(store.create_entry(&everywhere, &ADMIN)).contains("match every node"));
    let ttl = NewEntry {
        jwt_ttl_s: Some(0),
        ..entry(1)
    };
    assert!(field_of(store.create_entry(&ttl, &ADMIN)).starts_with("entry.jwt_ttl_s"));
    let dns = NewEntry {
        dns_names: vec!["bad name".into()],
        ..entry(1)
    };
    assert!(field_of(store.create_entry(&dns, &ADMIN)).starts_with("entry.dns_names[0]"));
    assert!(field_of(store.ban_node("ABC", "x", &ADMIN)).starts_with("ban.ek_sha256"));
    assert!(field_of(store.ban_node(&ek(1), &"r".repeat(4000), &ADMIN)).starts_with("ban.reason"));
    // An accepted verdict must say which node it accepted.
    let v = accepted(&ek(1), 1);
    assert!(
        field_of(store.record_attestation(&NewAttestation::new(&v)))
            .starts_with("attestation.spiffe_id")
    );
    let other_node = node_id(&ek(2));
    assert!(
        field_of(store.record_attestation(&NewAttestation::new(&v).spiffe_id(&other_node)))
            .contains("is not the node ID of EK")
    );
    let huge = Verdict {
        reason: Some("x".repeat(2 << 20)),
        ..refused(&ek(1), 1)
    };
    assert!(field_of(store.record_attestation(&NewAttestation::new(&huge))).starts_with("verdict"));
    assert!(
        field_of(store.append_event(&AuditEvent {
            kind: "attestation",
            actor: ADMIN,
            subject: "",
            payload: &serde_json::Value::Null,
        }))
        .contains("written only by the store")
    );
    assert!(
        field_of(store.insert_key(
            KeyTable::Ca,
            &NewKey {
                not_after: 0,
                ..key("k", KeyState::Prepared)
            },
            &ADMIN
        ))
        .starts_with("ca_keys.not_after")
    );

    assert_eq!(
        store.audit_head().expect("head"),
        head,
        "nothing was written"
    );
}

#[test]
fn entries_bans_nodes_and_attestations_read_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("rootmark.db")).expect("open");

    // Entries: created normalised, duplicates refused, deleted.
    let mut new = entry(1);
    new.selectors.reverse();
    new.selectors.push("unix:user:svc".into());
    let e = store.create_entry(&new, &ADMIN).expect("create");
    assert_eq!(
        e.selectors,
        vec!["unix:uid:1".to_owned(), "unix:user:svc".into()]
    );
    assert_eq!(e.revision, 1);
    assert_eq!(e.id.len(), 36);
    assert_eq!(store.entry(&e.id).expect("read"), Some(e.clone()));
    match store.create_entry(&entry(1), &ADMIN) {
        Err(StoreError::Conflict {
            table: "entries",
            constraint,
            ..
        }) => {
            assert!(constraint.contains("same SPIFFE ID"), "{constraint}")
        }
        other => panic!("expected a duplicate, got {other:?}"),
    }
    assert_eq!(store.list_entries().expect("list").len(), 1);
    assert_eq!(store.delete_entry(&e.id, &ADMIN).expect("delete"), e);
    assert!(matches!(
        store.delete_entry(&e.id, &ADMIN),
        Err(StoreError::NotFound {
            table: "entries",
            ..
        })
    ));

    // Nodes: created by acceptance, updated by the next, untouched by refusals.
    let ek1 = ek(1);
    let r1 = store
        .record_attestation(&NewAttestation::new(&accepted(&ek1, 1)).spiffe_id(&node_id(&ek1)))
        .expect("first");
    let n1 = r1.node.expect("node created");
    assert_eq!(
        (n1.clock.map(|c| c.reset_count), n1.banned),
        (Some(1), false)
    );
    record(&store, &refused(&ek1, 5));
    let r2 = store
        .record_attestation(&NewAttestation::new(&accepted(&ek1, 2)).spiffe_id(&node_id(&ek1)))
        .expect("second");
    let n = store.node(&node_id(&ek1)).expect("read").expect("node");
    assert_eq!(n.first_seen, n1.first_seen);
    assert_eq!(n.last_attestation_id, r2.attestation_id);
    assert_eq!(n.last_pcrs, pcrs(2));
    assert_eq!(store.node_by_ek(&ek1).expect("by ek"), Some(n.clone()));

    // PCR drift: the accepted attestation before the latest one.
    let previous = store
        .list_attestations(&AttestationQuery {
            ek_sha256: Some(ek1.clone()),
            accepted: Some(true),
            before_id: Some(r2.attestation_id),
            limit: 1,
        })
        .expect("query");
    assert_eq!(previous.len(), 1);
    assert_eq!(previous[0].id, r1.attestation_id);
    assert_eq!(previous[0].pcrs, pcrs(1));
    let refusals = store
        .list_attestations(&AttestationQuery {
            accepted: Some(false),
            ..AttestationQuery::default()
        })
        .expect("query");
    assert_eq!(refusals.len(), 1);
    assert_eq!(refusals[0].failed_check.as_deref(), Some("policy"));
    assert_eq!(
        refusals[0].verdict["reason"],
        "prod: pcrs.sha256.7: value differs"
    );
    assert_eq!(refusals[0].peer.as_deref(), Some("127.0.0.1:4000"));

    // Bans: by EK, mirrored on the node, conflict on a second ban.
    store.ban_node(&ek1, "stolen", &ADMIN).expect("ban");
    assert!(matches!(
        store.ban_node(&ek1, "again", &ADMIN),
        Err(StoreError::Conflict { table: "bans", .. })
    ));
    let n = store.node(&node_id(&ek1)).expect("read").expect("node");
    assert_eq!((n.banned, n.ban_reason.as_deref()), (true, Some("stolen")));
    assert_eq!(
        store.ban(&ek1).expect("ban").map(|b| b.banned_by),
        Some("uid:1000".into())
    );
    // A pre-emptive ban of an EK that never attested, inherited on acceptance.
    store.ban_node(&ek(2), "pre-emptive", &ADMIN).expect("ban");
    let r = record(&store, &accepted(&ek(2), 1));
    assert!(r > 0);
    assert!(
        store
            .node_by_ek(&ek(2))
            .expect("read")
            .expect("node")
            .banned
    );
    store.unban_node(&ek1, &ADMIN).expect("unban");
    assert!(
        !store
            .node(&node_id(&ek1))
            .expect("read")
            .expect("node")
            .banned
    );
    assert!(matches!(
        store.unban_node(&ek1, &ADMIN),
        Err(StoreError::NotFound { table: "bans", .. })
    ));

    // Eviction, cleared by the next accepted attestation.
    assert!(
        store
            .evict_node(&node_id(&ek1), &ADMIN)
            .expect("evict")
            .evicted
    );
    assert!(matches!(
        store.evict_node(&node_id(&ek(77)), &ADMIN),
        Err(StoreError::NotFound { table: "nodes", .. })
    ));
    record(&store, &accepted(&ek1, 3));
    assert!(
        !store
            .node(&node_id(&ek1))
            .expect("read")
            .expect("node")
            .evicted
    );

    // Audit records: actors and kinds as documented.
    let recs = store.audit_records(0, 0).expect("records");
    assert_eq!(recs.first().map(|r| r.kind.as_str()), Some("entry.create"));
    assert_eq!(recs.first().map(|r| r.actor.as_str()), Some("uid:1000"));
    assert!(
        recs.iter()
            .filter(|r| r.kind == "attestation")
            .all(|r| r.actor == "issuer")
    );
    verify_store(store.path()).expect("verifies");
}

#[test]
fn keys_rotate_prepared_active_retired_with_one_active_at_a_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("rootmark.db")).expect("open");
    store
        .insert_key(KeyTable::Ca, &key("ca-1", KeyState::Active), &Actor::Issuer)
        .expect("first key");
    assert!(matches!(
        store.insert_key(KeyTable::Ca, &key("ca-x", KeyState::Active), &Actor::Issuer),
        Err(StoreError::Conflict {
            table: "ca_keys",
            ..
        })
    ));
    store
        .insert_key(
            KeyTable::Ca,
            &key("ca-2", KeyState::Prepared),
            &Actor::Issuer,
        )
        .expect("next key");
    let retired = store
        .set_key_state(KeyTable::Ca, "ca-2", KeyState::Active, &Actor::Issuer)
        .expect("activate");
    assert_eq!(retired.as_deref(), Some("ca-1"));
    let keys = store.list_keys(KeyTable::Ca).expect("keys");
    let states: Vec<(String, KeyState)> = keys.iter().map(|k| (k.id.clone(), k.state)).collect();
    assert_eq!(
        states,
        vec![
            ("ca-1".into(), KeyState::Retired),
            ("ca-2".into(), KeyState::Active)
        ]
    );
    assert_eq!(&keys[1].private[..], b"secret of ca-2");
    assert!(
        !format!("{:?}", keys[1]).contains("secret"),
        "Debug redacts the private key"
    );
    match store.set_key_state(KeyTable::Ca, "ca-1", KeyState::Active, &Actor::Issuer) {
        Err(e @ StoreError::KeyTransition { .. }) => {
            assert_eq!(
                e.to_string(),
                "ca_keys ca-1: cannot change state from retired to active"
            )
        }
        other => panic!("expected a refused transition, got {other:?}"),
    }
    // JWT keys are a separate table with their own active key.
    store
        .insert_key(
            KeyTable::Jwt,
            &key("kid-1", KeyState::Active),
            &Actor::Issuer,
        )
        .expect("jwt");
    assert_eq!(store.list_keys(KeyTable::Jwt).expect("jwt keys").len(), 1);
    let report = verify_store(store.path()).expect("verifies");
    assert_eq!(report.keys, 3);
}
