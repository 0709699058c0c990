//! The audit hash chain: the exact bytes each record's hash covers, and the
//! walk that verifies a chain. Backend-independent, so a PostgreSQL store
//! verifies with the same code. The format is documented in the
//! [module docs of `store`](super#the-audit-chain).

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use super::error::{AuditBreak, StoreError};
use super::types::{AuditHead, AuditRecord, AuditSummary};

/// The audit record kinds the store itself writes. `verify_store` replays
/// them, so [`Datastore::append_event`](super::Datastore::append_event)
/// refuses them.
pub mod kind {
    /// An attestation attempt, accepted or refused.
    pub const ATTESTATION: &str = "attestation";
    /// A registration entry was created.
    pub const ENTRY_CREATE: &str = "entry.create";
    /// A registration entry was deleted.
    pub const ENTRY_DELETE: &str = "entry.delete";
    /// An EK was banned.
    pub const NODE_BAN: &str = "node.ban";
    /// An EK ban was lifted.
    pub const NODE_UNBAN: &str = "node.unban";
    /// A node was evicted (must attest in full again).
    pub const NODE_EVICT: &str = "node.evict";
    /// A CA or JWT key was stored.
    pub const KEY_INSERT: &str = "key.insert";
    /// A CA or JWT key changed rotation state.
    pub const KEY_STATE: &str = "key.state";

    /// Every kind above.
    pub const BUILT_IN: &[&str] = &[
        ATTESTATION,
        ENTRY_CREATE,
        ENTRY_DELETE,
        NODE_BAN,
        NODE_UNBAN,
        NODE_EVICT,
        KEY_INSERT,
        KEY_STATE,
    ];
}

/// The first bytes of every canonical record: names the format, so a
/// future format cannot collide with this one.
pub const RECORD_DOMAIN: &[u8] = b"rootmark-audit-v1\0";

/// The `prev_hash` of record 1.
pub const GENESIS_HASH: [u8; 32] = [0; 32];

/// The canonical bytes of a record (everything but its hashes):
///
/// ```text
/// "rootmark-audit-v1" 0x00
/// u64 big-endian  seq
/// i64 big-endian  time (Unix ms)
/// u32 big-endian  byte length of kind     ‖ kind (UTF-8)
/// u32 big-endian  byte length of actor    ‖ actor
/// u32 big-endian  byte length of subject  ‖ subject
/// u32 big-endian  byte length of payload  ‖ payload (the stored JSON text, as is)
/// ```
pub fn canonical_record_bytes(
    seq: u64,
    time: i64,
    kind: &str,
    actor: &str,
    subject: &str,
    payload: &str,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        RECORD_DOMAIN.len() + 16 + 16 + kind.len() + actor.len() + subject.len() + payload.len(),
    );
    out.extend_from_slice(RECORD_DOMAIN);
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&time.to_be_bytes());
    for field in [kind, actor, subject, payload] {
        // Length prefixes make the encoding injective: no two different
        // records share bytes. Fields are bounded far below 4 GiB by the
        // store's limits; saturating keeps this total and a wrong length
        // would still fail verification rather than panic.
        let len = u32::try_from(field.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(field.as_bytes());
    }
    out
}

/// `sha256(prev_hash ‖ canonical_record_bytes(…))`.
pub fn record_hash(
    prev_hash: &[u8; 32],
    seq: u64,
    time: i64,
    kind: &str,
    actor: &str,
    subject: &str,
    payload: &str,
) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev_hash);
    h.update(canonical_record_bytes(
        seq, time, kind, actor, subject, payload,
    ));
    h.finalize().into()
}

/// Decodes 64 lowercase hex digits. Uppercase is refused: the issuer only
/// writes lowercase, so anything else was written by someone else.
pub(crate) fn decode_hash(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

/// Walks a chain record by record, in `seq` order, without holding it in
/// memory. Feed every record to [`push`](Self::push), then call
/// [`finish`](Self::finish) with the stored head.
#[derive(Debug, Clone)]
pub struct ChainWalker {
    expected_seq: u64,
    prev_hash: [u8; 32],
    checkpoints: BTreeMap<u64, String>,
}

impl Default for ChainWalker {
    fn default() -> Self {
        Self::new()
    }
}

impl ChainWalker {
    /// A walker expecting record 1.
    pub fn new() -> Self {
        ChainWalker {
            expected_seq: 1,
            prev_hash: GENESIS_HASH,
            checkpoints: BTreeMap::new(),
        }
    }

    /// Also checks that the chain still holds these heads exported
    /// earlier: the defence against a rewrite of the whole chain.
    pub fn with_checkpoints<'a>(mut self, heads: impl IntoIterator<Item = &'a AuditHead>) -> Self {
        self.checkpoints
            .extend(heads.into_iter().map(|h| (h.seq, h.hash.clone())));
        self
    }

    /// Checks the next record: its number, its link to the previous record,
    /// its own hash, and any checkpoint at its number.
    pub fn push(&mut self, r: &AuditRecord) -> Result<(), StoreError> {
        let broken = |seq, reason| StoreError::AuditBroken { seq, reason };
        if r.seq != self.expected_seq {
            // Fewer than expected would mean duplicates, impossible under the
            // INTEGER PRIMARY KEY; anything above is a deletion.
            return Err(broken(
                self.expected_seq,
                AuditBreak::SequenceGap {
                    missing: self.expected_seq,
                    next_present: r.seq,
                },
            ));
        }
        let prev = decode_hash(&r.prev_hash).ok_or_else(|| {
            broken(
                r.seq,
                AuditBreak::Malformed {
                    column: "prev_hash",
                    detail: format!("{:?} is not 64 lowercase hex digits", r.prev_hash),
                },
            )
        })?;
        let stored = decode_hash(&r.hash).ok_or_else(|| {
            broken(
                r.seq,
                AuditBreak::Malformed {
                    column: "hash",
                    detail: format!("{:?} is not 64 lowercase hex digits", r.hash),
                },
            )
        })?;
        if prev != self.prev_hash {
            return Err(broken(r.seq, AuditBreak::PrevHashMismatch));
        }
        let computed = record_hash(
            &prev, r.seq, r.time, &r.kind, &r.actor, &r.subject, &r.payload,
        );
        if computed != stored {
            return Err(broken(r.seq, AuditBreak::HashMismatch));
        }
        if let Some(expected) = self.checkpoints.get(&r.seq)
            && *expected != r.hash
        {
            return Err(broken(
                r.seq,
                AuditBreak::CheckpointMismatch {
                    expected: expected.clone(),
                },
            ));
        }
        self.prev_hash = stored;
        self.expected_seq = r.seq + 1;
        Ok(())
    }

    /// Compares the end of the chain with the stored head (which catches a
    /// deletion of the last records) and with the checkpoints.
    pub fn finish(self, head: Option<&AuditHead>) -> Result<AuditSummary, StoreError> {
        let last = self.expected_seq - 1;
        let head = head.ok_or(StoreError::AuditBroken {
            seq: last,
            reason: AuditBreak::HeadMissing,
        })?;
        if head.seq > last {
            return Err(StoreError::AuditBroken {
                seq: last + 1,
                reason: AuditBreak::Truncated {
                    last_present: last,
                    head_seq: head.seq,
                },
            });
        }
        if head.seq < last {
            return Err(StoreError::AuditBroken {
                seq: head.seq + 1,
                reason: AuditBreak::BeyondHead { head_seq: head.seq },
            });
        }
        let hash = hex::encode(self.prev_hash);
        if head.hash != hash {
            return Err(StoreError::AuditBroken {
                seq: last,
                reason: AuditBreak::HeadHashMismatch,
            });
        }
        // A checkpoint beyond the end: the chain was cut and rewritten
        // shorter, head included.
        if let Some((seq, expected)) = self.checkpoints.range(last + 1..).next() {
            return Err(StoreError::AuditBroken {
                seq: *seq,
                reason: AuditBreak::CheckpointMismatch {
                    expected: expected.clone(),
                },
            });
        }
        Ok(AuditSummary {
            records: last,
            head: AuditHead { seq: last, hash },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: u64) -> Vec<AuditRecord> {
        let mut prev = GENESIS_HASH;
        (1..=n)
            .map(|seq| {
                let payload = format!("{{\"n\":{seq}}}");
                let hash = record_hash(&prev, seq, 1000 + seq as i64, "k", "issuer", "s", &payload);
                let r = AuditRecord {
                    seq,
                    time: 1000 + seq as i64,
                    kind: "k".into(),
                    actor: "issuer".into(),
                    subject: "s".into(),
                    payload,
                    prev_hash: hex::encode(prev),
                    hash: hex::encode(hash),
                };
                prev = hash;
                r
            })
            .collect()
    }

    fn walk(records: &[AuditRecord], head: &AuditHead) -> Result<AuditSummary, StoreError> {
        let mut w = ChainWalker::new();
        for r in records {
            w.push(r)?;
        }
        w.finish(Some(head))
    }

    fn head_of(records: &[AuditRecord]) -> AuditHead {
        records
            .last()
            .map(|r| AuditHead {
                seq: r.seq,
                hash: r.hash.clone(),
            })
            .unwrap_or(AuditHead {
                seq: 0,
                hash: hex::encode(GENESIS_HASH),
            })
    }

    fn broken_at(r: Result<AuditSummary, StoreError>) -> Option<(u64, AuditBreak)> {
        match r {
            Err(StoreError::AuditBroken { seq, reason }) => Some((seq, reason)),
            _ => None,
        }
    }

    #[test]
    fn canonical_bytes_are_length_prefixed() {
        let b = canonical_record_bytes(1, -1, "k", "", "ab", "{}");
        let mut want = b"rootmark-audit-v1\0".to_vec();
        want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 1]);
        want.extend_from_slice(&[0xff; 8]);
        want.extend_from_slice(&[0, 0, 0, 1, b'k']);
        want.extend_from_slice(&[0, 0, 0, 0]);
        want.extend_from_slice(&[0, 0, 0, 2, b'a', b'b']);
        want.extend_from_slice(&[0, 0, 0, 2, b'{', b'}']);
        assert_eq!(b, want);
        // Moving a byte between fields changes the bytes.
        assert_ne!(
            canonical_record_bytes(1, 0, "ab", "c", "", ""),
            canonical_record_bytes(1, 0, "a", "bc", "", "")
        );
    }

    #[test]
    fn intact_and_empty_chains_verify() {
        let c = chain(10);
        let s = walk(&c, &head_of(&c)).ok();
        assert_eq!(s.map(|s| (s.records, s.head)), Some((10, head_of(&c))));
        assert_eq!(walk(&[], &head_of(&[])).map(|s| s.records).ok(), Some(0));
    }

    #[test]
    fn each_break_is_named() {
        let c = chain(10);
        let head = head_of(&c);

        let mut edited = c.clone();
        edited[4].payload = "{\"n\":500}".into();
        assert_eq!(
            broken_at(walk(&edited, &head)),
            Some((5, AuditBreak::HashMismatch))
        );

        // Edited and re-hashed: the next record's link breaks.
        let mut rehashed = c.clone();
        rehashed[4].payload = "{\"n\":500}".into();
        let prev = decode_hash(&rehashed[4].prev_hash).unwrap_or_default();
        rehashed[4].hash = hex::encode(record_hash(
            &prev,
            5,
            1005,
            "k",
            "issuer",
            "s",
            "{\"n\":500}",
        ));
        assert_eq!(
            broken_at(walk(&rehashed, &head)),
            Some((6, AuditBreak::PrevHashMismatch))
        );

        let mut deleted = c.clone();
        deleted.remove(6);
        assert_eq!(
            broken_at(walk(&deleted, &head)),
            Some((
                7,
                AuditBreak::SequenceGap {
                    missing: 7,
                    next_present: 8
                }
            ))
        );

        let truncated = &c[..9];
        assert_eq!(
            broken_at(walk(truncated, &head)),
            Some((
                10,
                AuditBreak::Truncated {
                    last_present: 9,
                    head_seq: 10
                }
            ))
        );

        assert_eq!(
            broken_at(walk(&c, &head_of(&c[..8]))),
            Some((9, AuditBreak::BeyondHead { head_seq: 8 }))
        );
    }

    #[test]
    fn checkpoints_catch_a_full_rewrite() {
        let c = chain(10);
        let checkpoint = head_of(&c[..5]);
        // A different chain of the same length, consistent in itself.
        let mut other = chain(10);
        let mut prev = GENESIS_HASH;
        for r in &mut other {
            r.payload.push(' ');
            let h = record_hash(
                &prev, r.seq, r.time, &r.kind, &r.actor, &r.subject, &r.payload,
            );
            r.prev_hash = hex::encode(prev);
            r.hash = hex::encode(h);
            prev = h;
        }
        let mut w = ChainWalker::new().with_checkpoints([&checkpoint]);
        let mut result = Ok(());
        for r in &other {
            result = result.and_then(|()| w.push(r));
        }
        assert!(matches!(
            result,
            Err(StoreError::AuditBroken {
                seq: 5,
                reason: AuditBreak::CheckpointMismatch { .. }
            })
        ));
        // A chain rewritten shorter than the checkpoint.
        let short = chain(3);
        let mut w = ChainWalker::new().with_checkpoints([&checkpoint]);
        for r in &short {
            assert!(w.push(r).is_ok());
        }
        assert!(matches!(
            w.finish(Some(&head_of(&short))),
            Err(StoreError::AuditBroken { seq: 5, .. })
        ));
    }
}
