//! Replaying a log into PCR values and comparing them with a quote.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::EventLog;
use super::error::ReplayMismatch;
use crate::pcr::PcrValues;
use crate::tpm::HashAlg;

/// PCRs 17–22 are the dynamic (D-RTM) PCRs; a TPM resets them to all ones.
const DRTM_PCRS: std::ops::RangeInclusive<u32> = 17..=22;

/// The value a PCR holds before any extend: zeros, except PCR 0 after a
/// TPM2_Startup at locality N, which holds 00…0N.
fn initial_value(alg: HashAlg, pcr: u32, startup_locality: Option<u8>) -> Vec<u8> {
    let mut value = vec![0u8; alg.digest_len()];
    if let (0, Some(locality), Some(last)) = (pcr, startup_locality, value.last_mut()) {
        *last = locality;
    }
    value
}

/// Whether a quoted value is what the PCR holds when nothing was extended
/// into it, so that a log without events for it is consistent.
fn is_reset_value(pcr: u32, value: &[u8], startup_locality: Option<u8>, alg: HashAlg) -> bool {
    value.iter().all(|&b| b == 0)
        || (DRTM_PCRS.contains(&pcr) && value.iter().all(|&b| b == 0xff))
        || (pcr == 0 && value == initial_value(alg, pcr, startup_locality).as_slice())
}

impl EventLog {
    /// Replays the log: every bank the log carries, every PCR that had at
    /// least one measured event.
    ///
    /// EV_NO_ACTION events are not extended. PCRs start at zeros, except
    /// PCR 0, which starts at 00…0N when the log has a StartupLocality event
    /// for locality N. Every bank the log carries has an entry, even an empty
    /// one, so [`compare_with_quote`] can tell "no events" from "no bank".
    pub fn replay(&self) -> PcrValues {
        self.replay_banks(&self.banks)
    }

    /// Replays only the given banks (those the log carries; others are left
    /// out of the result). Hashing is nearly all of a replay's cost, so a
    /// verifier replays just the banks it was quoted.
    pub fn replay_banks(&self, banks: &[HashAlg]) -> PcrValues {
        let banks: Vec<HashAlg> = banks
            .iter()
            .copied()
            .filter(|b| self.banks.contains(b))
            .collect();
        let mut out: PcrValues = banks.iter().map(|&bank| (bank, BTreeMap::new())).collect();
        for event in self.events.iter().filter(|e| e.is_measured()) {
            for (alg, pcrs) in &mut out {
                // The parser requires a digest of every declared bank.
                let Some(digest) = event.digest(*alg) else {
                    continue;
                };
                let value = pcrs
                    .entry(event.pcr)
                    .or_insert_with(|| initial_value(*alg, event.pcr, self.startup_locality));
                *value = alg.extend(value, digest);
            }
        }
        out
    }

    /// Replays the banks of `quoted` and compares them, as
    /// [`compare_with_quote`] does, also accepting an unextended PCR 0 at its
    /// StartupLocality value. Returns the replay of the quoted banks.
    ///
    /// # Errors
    ///
    /// The first [`ReplayMismatch`] in (bank, PCR) order.
    pub fn check_quote(&self, quoted: &PcrValues) -> Result<PcrValues, ReplayMismatch> {
        let banks: Vec<HashAlg> = quoted
            .iter()
            .filter(|(_, pcrs)| !pcrs.is_empty())
            .map(|(b, _)| *b)
            .collect();
        let replay = self.replay_banks(&banks);
        compare(&replay, quoted, self.startup_locality)?;
        Ok(replay)
    }
}

/// Compares a replay (from [`EventLog::replay`]) with quoted PCR values.
///
/// Pass exactly the quoted selection. For every quoted (bank, PCR):
/// - the log must carry the bank ([`ReplayMismatch::BankNotInLog`]);
/// - if the log has events for the PCR, the replayed value must equal the
///   quoted one ([`ReplayMismatch::ValueDiffers`]);
/// - if it has none, the quoted value must be a reset value — all zeros, or
///   all ones for the D-RTM PCRs 17–22 — since anything else was extended by
///   something the log does not show ([`ReplayMismatch::NoEvents`]).
///
/// # Errors
///
/// The first [`ReplayMismatch`] in (bank, PCR) order.
pub fn compare_with_quote(replay: &PcrValues, quoted: &PcrValues) -> Result<(), ReplayMismatch> {
    compare(replay, quoted, None)
}

fn compare(
    replay: &PcrValues,
    quoted: &PcrValues,
    startup_locality: Option<u8>,
) -> Result<(), ReplayMismatch> {
    for (&bank, quoted_pcrs) in quoted {
        if quoted_pcrs.is_empty() {
            continue;
        }
        let Some(replayed_pcrs) = replay.get(&bank) else {
            return Err(ReplayMismatch::BankNotInLog { bank });
        };
        for (&pcr, quoted_value) in quoted_pcrs {
            match replayed_pcrs.get(&pcr) {
                Some(replayed) if replayed == quoted_value => {}
                Some(replayed) => {
                    return Err(ReplayMismatch::ValueDiffers {
                        bank,
                        pcr,
                        replayed: replayed.clone(),
                        quoted: quoted_value.clone(),
                    });
                }
                None if is_reset_value(pcr, quoted_value, startup_locality, bank) => {}
                None => {
                    return Err(ReplayMismatch::NoEvents {
                        bank,
                        pcr,
                        quoted: quoted_value.clone(),
                    });
                }
            }
        }
    }
    Ok(())
}

/// The replay as JSON for the CLI: `{"sha1": {"0": "hex", …}, "sha256": {…}}`.
///
/// Lowercase hex; banks and PCRs as in the replay. `serde_json` here is
/// built without `preserve_order`, so object keys come out sorted as strings
/// ("10" before "2"); [`replay_json_pretty`] keeps numeric order for people.
pub fn replay_json(replay: &PcrValues) -> serde_json::Value {
    let banks = replay
        .iter()
        .map(|(bank, pcrs)| {
            let pcrs = pcrs
                .iter()
                .map(|(pcr, value)| {
                    (
                        pcr.to_string(),
                        serde_json::Value::String(hex::encode(value)),
                    )
                })
                .collect::<serde_json::Map<_, _>>();
            (bank.name().to_owned(), serde_json::Value::Object(pcrs))
        })
        .collect::<serde_json::Map<_, _>>();
    serde_json::Value::Object(banks)
}

/// The same JSON as [`replay_json`], pretty-printed with PCRs in numeric
/// order. Written by hand because every key and value is a bank name, a
/// decimal number or lowercase hex, none of which needs escaping.
pub fn replay_json_pretty(replay: &PcrValues) -> String {
    let mut out = String::from("{");
    for (i, (bank, pcrs)) in replay.iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        let _ = write!(out, "{sep}\n  \"{}\": {{", bank.name());
        for (j, (pcr, value)) in pcrs.iter().enumerate() {
            let sep = if j == 0 { "" } else { "," };
            let _ = write!(out, "{sep}\n    \"{pcr}\": \"{}\"", hex::encode(value));
        }
        out.push_str(if pcrs.is_empty() { "}" } else { "\n  }" });
    }
    out.push_str(if replay.is_empty() { "}" } else { "\n}" });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pretty_json_is_json_in_numeric_order() {
        let mut replay = PcrValues::new();
        let sha1 = replay.entry(HashAlg::Sha1).or_default();
        sha1.insert(10, vec![0xab; 20]);
        sha1.insert(2, vec![0x01; 20]);
        replay.insert(HashAlg::Sha384, BTreeMap::new());
        let text = replay_json_pretty(&replay);
        let parsed: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        assert_eq!(parsed, replay_json(&replay));
        assert!(text.find("\"2\"") < text.find("\"10\""));
        assert_eq!(replay_json_pretty(&PcrValues::new()), "{}");
    }

    #[test]
    fn reset_values() {
        assert!(is_reset_value(4, &[0; 32], None, HashAlg::Sha256));
        assert!(!is_reset_value(4, &[0xff; 32], None, HashAlg::Sha256));
        assert!(is_reset_value(17, &[0xff; 32], None, HashAlg::Sha256));
        let mut loc3 = [0u8; 20];
        loc3[19] = 3;
        assert!(is_reset_value(0, &loc3, Some(3), HashAlg::Sha1));
        assert!(!is_reset_value(0, &loc3, None, HashAlg::Sha1));
    }
}
