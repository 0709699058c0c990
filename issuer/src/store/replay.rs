//! What each audit record's payload holds, and the replay of the audit log
//! into the state the tables must hold (for `verify_store`).
//!
//! Backend-independent: the SQLite store builds its payloads here and a
//! PostgreSQL store would too, so both verify the same way.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::audit::kind;
use super::error::StoreError;
use super::types::{AuditRecord, Ban, Entry, KeyState, KeyTable, Node, Pcrs, UnixMillis};
use crate::verdict::ClockSummary;

/// The attestation row's columns, derived from the verdict's JSON.
///
/// Derived from the JSON (not from the `Verdict` struct) so that writing
/// and verifying use one function: what verify_store expects a row to
/// hold is computed exactly as the row was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VerdictColumns {
    pub accepted: bool,
    pub failed_check: Option<String>,
    pub reason: Option<String>,
    pub ek_sha256: Option<String>,
    pub ak_name: Option<String>,
    pub nonce: Option<String>,
    pub event_log_sha256: Option<String>,
    pub manufacturer: Option<String>,
    pub secure_boot: Option<bool>,
    pub clock: Option<ClockSummary>,
    pub selectors: Vec<String>,
    pub pcrs: Pcrs,
    pub policies: Value,
}

fn opt_str(v: &Value, field: &str) -> Result<Option<String>, String> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(format!("verdict.{field} is {other}, not a string")),
    }
}

pub(crate) fn verdict_columns(v: &Value) -> Result<VerdictColumns, String> {
    let accepted = v
        .get("accepted")
        .and_then(Value::as_bool)
        .ok_or("verdict.accepted is missing or not a boolean")?;
    let secure_boot = match v.get("secure_boot") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(other) => return Err(format!("verdict.secure_boot is {other}, not a boolean")),
    };
    let clock = match v.get("clock") {
        None | Some(Value::Null) => None,
        Some(c) => {
            let field = |name: &str| {
                c.get(name)
                    .and_then(Value::as_u64)
                    .ok_or_else(|| format!("verdict.clock.{name} is missing or not a number"))
            };
            let narrow = |name: &str| {
                field(name).and_then(|n| {
                    u32::try_from(n).map_err(|_| format!("verdict.clock.{name} {n} exceeds u32"))
                })
            };
            Some(ClockSummary {
                clock: field("clock")?,
                reset_count: narrow("reset_count")?,
                restart_count: narrow("restart_count")?,
            })
        }
    };
    let selectors: Vec<String> = match v.get("selectors") {
        None | Some(Value::Null) => Vec::new(),
        Some(s) => serde_json::from_value(s.clone())
            .map_err(|e| format!("verdict.selectors is not a list of strings: {e}"))?,
    };
    let pcrs: Pcrs = match v.get("pcrs") {
        None | Some(Value::Null) => Pcrs::new(),
        Some(p) => serde_json::from_value(p.clone())
            .map_err(|e| format!("verdict.pcrs is not bank → PCR → hex: {e}"))?,
    };
    Ok(VerdictColumns {
        accepted,
        failed_check: opt_str(v, "failed_check")?,
        reason: opt_str(v, "reason")?,
        ek_sha256: opt_str(v, "ek_sha256")?,
        ak_name: opt_str(v, "ak_name")?,
        nonce: opt_str(v, "nonce")?,
        event_log_sha256: opt_str(v, "event_log_sha256")?,
        manufacturer: opt_str(v, "ek_manufacturer")?,
        secure_boot,
        clock,
        selectors,
        pcrs,
        policies: v.get("policies").cloned().unwrap_or(Value::Null),
    })
}

/// `attestation` payload: the row's id, what the verdict does not hold,
/// and the verdict itself (every other column is derived from it).
pub(crate) fn attestation_payload(
    id: i64,
    spiffe_id: Option<&str>,
    peer: Option<&str>,
    verdict: &Value,
    node_created: Option<bool>,
) -> Value {
    json!({
        "attestation_id": id,
        "spiffe_id": spiffe_id,
        "peer": peer,
        "verdict": verdict,
        "node": node_created.map(|created| json!({ "created": created })),
    })
}

/// `entry.create` / `entry.delete` payload: the whole entry.
pub(crate) fn entry_payload(entry: &Entry) -> Value {
    json!({ "entry": entry })
}

/// `node.ban` / `node.unban` payload: the ban set or lifted, and the node
/// it affects if the EK has attested.
pub(crate) fn ban_payload(ban: &Ban, node: Option<&str>) -> Value {
    json!({ "ban": ban, "node": node })
}

/// `node.evict` payload.
pub(crate) fn evict_payload(spiffe_id: &str, ek_sha256: &str) -> Value {
    json!({ "spiffe_id": spiffe_id, "ek_sha256": ek_sha256 })
}

/// `key.insert` payload: never the private key; the public part by hash.
pub(crate) fn key_insert_payload(
    table: KeyTable,
    id: &str,
    kind: &str,
    public: &[u8],
    not_before: UnixMillis,
    not_after: UnixMillis,
    state: KeyState,
) -> Value {
    json!({
        "table": table,
        "id": id,
        "kind": kind,
        "public_sha256": hex::encode(Sha256::digest(public)),
        "not_before": not_before,
        "not_after": not_after,
        "state": state,
    })
}

/// `key.state` payload.
pub(crate) fn key_state_payload(table: KeyTable, id: &str, from: KeyState, to: KeyState) -> Value {
    json!({ "table": table, "id": id, "from": from, "to": to })
}

/// Canonical JSON text of a payload (serde_json's compact output; maps
/// sorted by key as serde_json's default `Map` is a BTreeMap).
pub(crate) fn payload_text(what: &'static str, v: &Value) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|source| StoreError::Json { what, source })
}

/// An attestation row as the audit log says it was written.
#[derive(Debug, Clone)]
pub(crate) struct ExpectedAttestation {
    pub seq: u64,
    pub id: i64,
    pub time: UnixMillis,
    pub spiffe_id: Option<String>,
    pub peer: Option<String>,
    pub verdict: Value,
    pub cols: VerdictColumns,
}

/// A key row as the audit log says it is (the private key is not in the
/// log, so it cannot be checked; the public part is, by hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExpectedKey {
    pub seq: u64,
    pub kind: String,
    pub public_sha256: String,
    pub not_before: UnixMillis,
    pub not_after: UnixMillis,
    pub state: KeyState,
    pub created: UnixMillis,
}

/// The state the tables must hold, rebuilt from the audit log.
#[derive(Debug, Default)]
pub(crate) struct Replay {
    /// Every audited attestation id, in log order.
    pub attestation_ids: Vec<i64>,
    /// Live entries and the seq that created them.
    pub entries: BTreeMap<String, (u64, Entry)>,
    /// Current bans and the seq that set them.
    pub bans: BTreeMap<String, (u64, Ban)>,
    /// Keys per table.
    pub keys: BTreeMap<(KeyTable, String), ExpectedKey>,
    /// Nodes and the seq that last changed them.
    pub nodes: BTreeMap<String, (u64, Node)>,
}

fn corrupt(seq: u64, reason: String) -> StoreError {
    StoreError::Corrupt {
        table: "audit",
        id: seq.to_string(),
        column: "payload",
        reason,
    }
}

fn field<T: serde::de::DeserializeOwned>(
    rec: &AuditRecord,
    v: &Value,
    name: &str,
) -> Result<T, StoreError> {
    let value = v.get(name).cloned().unwrap_or(Value::Null);
    serde_json::from_value(value)
        .map_err(|e| corrupt(rec.seq, format!("{} record: field {name}: {e}", rec.kind)))
}

impl Replay {
    /// Applies one (chain-verified) record. Returns the attestation row the
    /// record wrote, for the caller to compare with the table right away.
    pub(crate) fn apply(
        &mut self,
        rec: &AuditRecord,
    ) -> Result<Option<ExpectedAttestation>, StoreError> {
        if !kind::BUILT_IN.contains(&rec.kind.as_str()) {
            return Ok(None);
        }
        let v: Value = serde_json::from_str(&rec.payload)
            .map_err(|e| corrupt(rec.seq, format!("not JSON: {e}")))?;
        match rec.kind.as_str() {
            kind::ATTESTATION => {
                let id: i64 = field(rec, &v, "attestation_id")?;
                let spiffe_id: Option<String> = field(rec, &v, "spiffe_id")?;
                let peer: Option<String> = field(rec, &v, "peer")?;
                let verdict = v.get("verdict").cloned().unwrap_or(Value::Null);
                let cols = verdict_columns(&verdict).map_err(|e| corrupt(rec.seq, e))?;
                self.attestation_ids.push(id);
                if cols.accepted
                    && let (Some(spiffe), Some(ek)) = (&spiffe_id, &cols.ek_sha256)
                {
                    let first_seen = self
                        .nodes
                        .get(spiffe)
                        .map(|(_, n)| n.first_seen)
                        .unwrap_or(rec.time);
                    let ban = self.bans.get(ek).map(|(_, b)| b);
                    let node = Node {
                        spiffe_id: spiffe.clone(),
                        ek_sha256: ek.clone(),
                        ak_name: cols.ak_name.clone(),
                        manufacturer: cols.manufacturer.clone(),
                        first_seen,
                        last_attested: rec.time,
                        last_attestation_id: id,
                        last_pcrs: cols.pcrs.clone(),
                        clock: cols.clock,
                        secure_boot: cols.secure_boot,
                        selectors: cols.selectors.clone(),
                        banned: ban.is_some(),
                        ban_reason: ban.map(|b| b.reason.clone()),
                        evicted: false,
                    };
                    self.nodes.insert(spiffe.clone(), (rec.seq, node));
                }
                return Ok(Some(ExpectedAttestation {
                    seq: rec.seq,
                    id,
                    time: rec.time,
                    spiffe_id,
                    peer,
                    verdict,
                    cols,
                }));
            }
            kind::ENTRY_CREATE => {
                let entry: Entry = field(rec, &v, "entry")?;
                self.entries.insert(entry.id.clone(), (rec.seq, entry));
            }
            kind::ENTRY_DELETE => {
                let entry: Entry = field(rec, &v, "entry")?;
                self.entries.remove(&entry.id);
            }
            kind::NODE_BAN | kind::NODE_UNBAN => {
                let ban: Ban = field(rec, &v, "ban")?;
                let banned = rec.kind == kind::NODE_BAN;
                for (seq, node) in self.nodes.values_mut() {
                    if node.ek_sha256 == ban.ek_sha256 {
                        node.banned = banned;
                        node.ban_reason = banned.then(|| ban.reason.clone());
                        *seq = rec.seq;
                    }
                }
                if banned {
                    self.bans.insert(ban.ek_sha256.clone(), (rec.seq, ban));
                } else {
                    self.bans.remove(&ban.ek_sha256);
                }
            }
            kind::NODE_EVICT => {
                let spiffe_id: String = field(rec, &v, "spiffe_id")?;
                if let Some((seq, node)) = self.nodes.get_mut(&spiffe_id) {
                    node.evicted = true;
                    *seq = rec.seq;
                }
            }
            kind::KEY_INSERT => {
                let table: KeyTable = field(rec, &v, "table")?;
                let id: String = field(rec, &v, "id")?;
                let key = ExpectedKey {
                    seq: rec.seq,
                    kind: field(rec, &v, "kind")?,
                    public_sha256: field(rec, &v, "public_sha256")?,
                    not_before: field(rec, &v, "not_before")?,
                    not_after: field(rec, &v, "not_after")?,
                    state: field(rec, &v, "state")?,
                    created: rec.time,
                };
                self.keys.insert((table, id), key);
            }
            kind::KEY_STATE => {
                let table: KeyTable = field(rec, &v, "table")?;
                let id: String = field(rec, &v, "id")?;
                let to: KeyState = field(rec, &v, "to")?;
                match self.keys.get_mut(&(table, id.clone())) {
                    Some(key) => {
                        key.state = to;
                        key.seq = rec.seq;
                    }
                    None => {
                        return Err(corrupt(
                            rec.seq,
                            format!(
                                "key.state record for {} {id}, which no key.insert record created",
                                table.table()
                            ),
                        ));
                    }
                }
            }
            _ => {}
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::{Check, Verdict};

    /// The attestation columns are read from the verdict's JSON; if a field
    /// of `Verdict` is renamed, this fails instead of the column going NULL.
    #[test]
    fn columns_come_from_every_verdict_field() {
        let mut v = Verdict::new().refuse(Check::Policy, "prod: pcrs.sha256.7: differs");
        v.ek_sha256 = Some("ab".repeat(32));
        v.ek_manufacturer = Some("id:1014".into());
        v.ak_name = Some("000b00".into());
        v.nonce = Some("0102".into());
        v.event_log_sha256 = Some("cd".repeat(32));
        v.secure_boot = Some(false);
        v.clock = Some(ClockSummary {
            clock: 5,
            reset_count: 6,
            restart_count: 7,
        });
        v.pcrs = Pcrs::from([("sha256".into(), BTreeMap::from([(7, "ee".into())]))]);
        v.policies.passed.push("dev".into());
        v.selectors.push("tpm:policy:dev".into());
        let json = serde_json::to_value(&v).unwrap_or_default();
        let cols = verdict_columns(&json);
        assert_eq!(
            cols,
            Ok(VerdictColumns {
                accepted: false,
                failed_check: Some("policy".into()),
                reason: Some("prod: pcrs.sha256.7: differs".into()),
                ek_sha256: v.ek_sha256.clone(),
                ak_name: Some("000b00".into()),
                nonce: Some("0102".into()),
                event_log_sha256: v.event_log_sha256.clone(),
                manufacturer: Some("id:1014".into()),
                secure_boot: Some(false),
                clock: v.clock,
                selectors: vec!["tpm:policy:dev".into()],
                pcrs: v.pcrs.clone(),
                policies: json!({"passed": ["dev"], "failed": []}),
            })
        );
        assert!(verdict_columns(&json!({"accepted": "yes"})).is_err());
        assert!(
            verdict_columns(&json!({"accepted": true, "pcrs": {"sha256": {"x": "00"}}})).is_err()
        );
    }
}
