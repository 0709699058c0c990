//! The verdict of one attestation: every fact an auditor needs, and the first
//! failed check with its reason.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::pcr::PcrValues;
use crate::policy::PolicyResults;
use crate::tpm::ClockInfo;

/// The checks of an attestation, in the order they run (DESIGN §3 step 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Check {
    /// The EK public area parses.
    EkPublic,
    /// The EK certificate chains to a manufacturer root (or the EK is allow-listed) and matches the EK.
    EkTrust,
    /// The AK public area parses.
    AkPublic,
    /// The AK has the attributes and strength of an attestation key.
    AkAttributes,
    /// The node key public area parses.
    NodeKeyPublic,
    /// The issuer could build the credential challenge.
    Challenge,
    /// The challenge was answered in time.
    NonceExpired,
    /// ActivateCredential returned the secret.
    Activation,
    /// The quote is signed by the AK.
    QuoteSignature,
    /// The quote starts with TPM_GENERATED_VALUE.
    QuoteMagic,
    /// The attestation is a quote.
    QuoteType,
    /// The quote carries the issued nonce.
    Nonce,
    /// Reported PCR values exist for the whole selection.
    PcrValues,
    /// The reported PCR values hash to the quoted digest.
    PcrDigest,
    /// The event log parses.
    EventLog,
    /// The event log replays to the quoted PCRs.
    EventLogReplay,
    /// resetCount/restartCount did not go backwards.
    Clock,
    /// The node key's Certify and properties.
    NodeKeyCertify,
    /// At least one node policy is satisfied.
    Policy,
}

/// The outcome of one attestation attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// Whether the node was accepted.
    pub accepted: bool,
    /// The first check that failed.
    pub failed_check: Option<Check>,
    /// Why it failed, in words.
    pub reason: Option<String>,
    /// Lowercase hex SHA-256 of the EK's TPMT_PUBLIC (the node ID's last segment).
    pub ek_sha256: Option<String>,
    /// The TPM manufacturer from the EK certificate.
    pub ek_manufacturer: Option<String>,
    /// How the EK was trusted.
    pub ek_trust: Option<String>,
    /// The AK's TPM name, hex.
    pub ak_name: Option<String>,
    /// The nonce issued, hex.
    pub nonce: Option<String>,
    /// The quoted PCR values, bank → PCR → hex (empty before the quote verified).
    pub pcrs: BTreeMap<String, BTreeMap<u32, String>>,
    /// SHA-256 of the raw event log, hex.
    pub event_log_sha256: Option<String>,
    /// Secure Boot state read from the verified event log.
    pub secure_boot: Option<bool>,
    /// The TPM clock state from the quote.
    pub clock: Option<ClockSummary>,
    /// Every node policy's result.
    pub policies: PolicyResults,
    /// Node selectors derived from the evidence (accepted verdicts only).
    pub selectors: Vec<String>,
}

/// The clock fields an auditor compares between attestations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ClockSummary {
    /// TPMS_CLOCK_INFO.clock (ms).
    pub clock: u64,
    /// TPMS_CLOCK_INFO.resetCount.
    pub reset_count: u32,
    /// TPMS_CLOCK_INFO.restartCount.
    pub restart_count: u32,
}

impl From<&ClockInfo> for ClockSummary {
    fn from(c: &ClockInfo) -> Self {
        ClockSummary {
            clock: c.clock,
            reset_count: c.reset_count,
            restart_count: c.restart_count,
        }
    }
}

impl Verdict {
    /// An empty verdict to be filled in as checks pass.
    pub(crate) fn new() -> Self {
        Verdict {
            accepted: false,
            failed_check: None,
            reason: None,
            ek_sha256: None,
            ek_manufacturer: None,
            ek_trust: None,
            ak_name: None,
            nonce: None,
            pcrs: BTreeMap::new(),
            event_log_sha256: None,
            secure_boot: None,
            clock: None,
            policies: PolicyResults::default(),
            selectors: Vec::new(),
        }
    }

    /// Marks the verdict refused at `check` for `reason`.
    pub(crate) fn refuse(mut self, check: Check, reason: impl std::fmt::Display) -> Self {
        self.accepted = false;
        self.failed_check = Some(check);
        self.reason = Some(reason.to_string());
        self
    }

    /// Records the quoted PCRs as hex.
    pub(crate) fn set_pcrs(&mut self, pcrs: &PcrValues) {
        self.pcrs = pcrs
            .iter()
            .map(|(bank, values)| {
                (
                    bank.name().to_owned(),
                    values
                        .iter()
                        .map(|(pcr, v)| (*pcr, hex::encode(v)))
                        .collect(),
                )
            })
            .collect();
    }
}
