//! The whole node-attestation check: Hello → challenge → response → verdict.
//!
//! [`EvidenceVerifier::begin`] checks what the node presents up front (EK
//! trust, AK, node key) and makes the credential challenge;
//! [`EvidenceVerifier::finish`] checks the answer in the order of DESIGN §3
//! step 4 and returns a [`Verdict`] whose `failed_check` is the first failure.
//! Single use of nonces and rate limits are the service's job; this module
//! only refuses an answer older than the challenge's lifetime.

use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime};

use aws_lc_rs::constant_time::verify_slices_are_equal;
use zeroize::Zeroizing;

use crate::ak::check_ak;
use crate::certify::{CertifyInput, verify_node_key_certify};
use crate::credential::make_credential;
use crate::ek::{EkIdentity, EkVerifier};
use crate::eventlog::{EventLog, EventLogLimits};
use crate::pcr::PcrValues;
use crate::policy::{PolicyFacts, PolicySet};
use crate::quote::{QuoteError, check_clock, verify_quote};
use crate::tpm::{ClockInfo, HashAlg, TpmtPublic};
use crate::verdict::{Check, ClockSummary, Verdict};

/// What a node presents first (the `Hello` message).
#[derive(Debug, Clone, Default)]
pub struct Hello {
    /// EK certificate, DER; `None` for TPMs without one.
    pub ek_certificate: Option<Vec<u8>>,
    /// EK public area, TPM2B_PUBLIC.
    pub ek_public: Vec<u8>,
    /// AK public area, TPM2B_PUBLIC.
    pub ak_public: Vec<u8>,
    /// Node key public area, TPM2B_PUBLIC.
    pub node_key_public: Vec<u8>,
    /// TPMS_ATTEST of TPM2_Certify(node key) by the AK.
    pub node_key_certify_info: Vec<u8>,
    /// TPMT_SIGNATURE over it.
    pub node_key_certify_signature: Vec<u8>,
    /// The sha256 PCRs the node key's PolicyPCR covers.
    pub node_key_pcrs: Vec<u32>,
}

/// The challenge sent to the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// TPM2B_ID_OBJECT payload for TPM2_ActivateCredential.
    pub credential_blob: Vec<u8>,
    /// TPM2B_ENCRYPTED_SECRET payload.
    pub encrypted_secret: Vec<u8>,
    /// The nonce to quote over.
    pub nonce: Vec<u8>,
    /// The PCRs to quote.
    pub pcr_selection: Vec<(HashAlg, Vec<u32>)>,
    /// How long the answer may take.
    pub expires_in: Duration,
}

/// The node's answer.
#[derive(Debug, Clone, Default)]
pub struct ChallengeResponse {
    /// What TPM2_ActivateCredential returned.
    pub activated_secret: Vec<u8>,
    /// TPMS_ATTEST from TPM2_Quote.
    pub quote_attest: Vec<u8>,
    /// TPMT_SIGNATURE over it.
    pub quote_signature: Vec<u8>,
    /// The PCR values the quote covers.
    pub pcrs: PcrValues,
    /// The TCG event log, if the node has one.
    pub event_log: Option<Vec<u8>>,
}

/// State kept between `begin` and `finish` for one attestation.
pub struct PendingAttestation {
    verdict: Verdict,
    ak: TpmtPublic,
    node_key: TpmtPublic,
    node_key_certify_info: Vec<u8>,
    node_key_certify_signature: Vec<u8>,
    node_key_pcrs: BTreeSet<u32>,
    ek: EkIdentity,
    secret: Zeroizing<[u8; 32]>,
    nonce: [u8; 32],
    issued: Instant,
    lifetime: Duration,
}

impl PendingAttestation {
    /// The nonce issued for this attestation (the service tracks single use by it).
    pub fn nonce(&self) -> &[u8; 32] {
        &self.nonce
    }

    /// The verdict so far (facts known from the Hello).
    pub fn verdict(&self) -> &Verdict {
        &self.verdict
    }
}

/// Verifies node evidence against the trust configuration.
pub struct EvidenceVerifier {
    ek: EkVerifier,
    policies: PolicySet,
    log_limits: EventLogLimits,
    quote_pcrs: BTreeSet<u32>,
    challenge_lifetime: Duration,
}

impl EvidenceVerifier {
    /// A verifier that quotes sha256 PCRs 0–9 (plus every PCR a policy or the
    /// node key needs) and gives nodes 30 seconds to answer.
    pub fn new(ek: EkVerifier, policies: PolicySet) -> Self {
        EvidenceVerifier {
            ek,
            policies,
            log_limits: EventLogLimits::default(),
            quote_pcrs: (0..10).collect(),
            challenge_lifetime: Duration::from_secs(30),
        }
    }

    /// Sets how long a node may take to answer a challenge.
    pub fn with_challenge_lifetime(mut self, lifetime: Duration) -> Self {
        self.challenge_lifetime = lifetime;
        self
    }

    /// Sets the event-log limits.
    pub fn with_log_limits(mut self, limits: EventLogLimits) -> Self {
        self.log_limits = limits;
        self
    }

    /// Checks the Hello and makes the challenge, or refuses with a verdict.
    pub fn begin(
        &self,
        hello: &Hello,
        now: SystemTime,
    ) -> Result<(PendingAttestation, Challenge), Box<Verdict>> {
        let mut verdict = Verdict::new();
        let ek_public = TpmtPublic::from_tpm2b(&hello.ek_public).map_err(|e| {
            Box::new(Verdict::new().refuse(Check::EkPublic, format!("EK public: {e}")))
        })?;
        verdict.ek_sha256 = Some(hex::encode(HashAlg::Sha256.hash(ek_public.tpmt_bytes())));
        let ek = match self
            .ek
            .verify(&ek_public, hello.ek_certificate.as_deref(), now)
        {
            Ok(ek) => ek,
            Err(e) => return Err(Box::new(verdict.refuse(Check::EkTrust, e))),
        };
        verdict.ek_manufacturer = ek.manufacturer.clone();
        verdict.ek_trust = Some(ek.trusted_by.to_string());
        let ak = match TpmtPublic::from_tpm2b(&hello.ak_public) {
            Ok(ak) => ak,
            Err(e) => {
                return Err(Box::new(
                    verdict.refuse(Check::AkPublic, format!("AK public: {e}")),
                ));
            }
        };
        let ak_name = ak.name();
        verdict.ak_name = Some(hex::encode(&ak_name));
        if let Err(violations) = check_ak(&ak) {
            let reason = violations
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ");
            return Err(Box::new(verdict.refuse(Check::AkAttributes, reason)));
        }
        let node_key = match TpmtPublic::from_tpm2b(&hello.node_key_public) {
            Ok(key) => key,
            Err(e) => {
                return Err(Box::new(
                    verdict.refuse(Check::NodeKeyPublic, format!("node key public: {e}")),
                ));
            }
        };
        let node_key_pcrs: BTreeSet<u32> = hello.node_key_pcrs.iter().copied().collect();
        if node_key_pcrs.is_empty() || node_key_pcrs.iter().any(|&p| p >= 24) {
            return Err(Box::new(verdict.refuse(
                Check::NodeKeyPublic,
                "node_key_pcrs must list 1 to 24 PCR indexes below 24",
            )));
        }
        let mut secret = Zeroizing::new([0u8; 32]);
        let mut nonce = [0u8; 32];
        if aws_lc_rs::rand::fill(secret.as_mut()).is_err()
            || aws_lc_rs::rand::fill(&mut nonce).is_err()
        {
            return Err(Box::new(
                verdict.refuse(Check::Challenge, "the system random generator failed"),
            ));
        }
        let made = match make_credential(&ek_public, &ak_name, secret.as_ref()) {
            Ok(made) => made,
            Err(e) => return Err(Box::new(verdict.refuse(Check::Challenge, e))),
        };
        verdict.nonce = Some(hex::encode(nonce));
        let mut pcrs = self.quote_pcrs.clone();
        pcrs.extend(node_key_pcrs.iter().copied());
        let mut selection: Vec<(HashAlg, BTreeSet<u32>)> = vec![(HashAlg::Sha256, pcrs)];
        for policy in self.policies.policies() {
            for (bank, pcr) in policy.required_pcrs() {
                match selection.iter_mut().find(|(b, _)| *b == bank) {
                    Some((_, set)) => {
                        set.insert(pcr);
                    }
                    None => selection.push((bank, BTreeSet::from([pcr]))),
                }
            }
        }
        let challenge = Challenge {
            credential_blob: made.credential_blob,
            encrypted_secret: made.encrypted_secret,
            nonce: nonce.to_vec(),
            pcr_selection: selection
                .into_iter()
                .map(|(b, s)| (b, s.into_iter().collect()))
                .collect(),
            expires_in: self.challenge_lifetime,
        };
        Ok((
            PendingAttestation {
                verdict,
                ak,
                node_key,
                node_key_certify_info: hello.node_key_certify_info.clone(),
                node_key_certify_signature: hello.node_key_certify_signature.clone(),
                node_key_pcrs,
                ek,
                secret,
                nonce,
                issued: Instant::now(),
                lifetime: self.challenge_lifetime,
            },
            challenge,
        ))
    }

    /// Checks the node's answer. `previous_clock` is the clock of the node's
    /// last accepted attestation, if any.
    pub fn finish(
        &self,
        pending: PendingAttestation,
        response: &ChallengeResponse,
        previous_clock: Option<&ClockInfo>,
        now: Instant,
    ) -> Verdict {
        let mut verdict = pending.verdict;
        if now.saturating_duration_since(pending.issued) > pending.lifetime {
            return verdict.refuse(
                Check::NonceExpired,
                format!("the challenge expired after {:?}", pending.lifetime),
            );
        }
        if verify_slices_are_equal(&response.activated_secret, pending.secret.as_ref()).is_err() {
            return verdict.refuse(
                Check::Activation,
                "the activated secret is wrong: the AK is not in the TPM that holds this EK",
            );
        }
        let quote = match verify_quote(
            &pending.ak,
            &response.quote_attest,
            &response.quote_signature,
            &response.pcrs,
            &pending.nonce,
        ) {
            Ok(quote) => quote,
            Err(e) => {
                let check = match e {
                    QuoteError::MalformedSignature(_) | QuoteError::BadSignature(_) => {
                        Check::QuoteSignature
                    }
                    QuoteError::BadMagic { .. } => Check::QuoteMagic,
                    QuoteError::MalformedAttest(_) | QuoteError::NotAQuote { .. } => {
                        Check::QuoteType
                    }
                    QuoteError::NonceMismatch => Check::Nonce,
                    QuoteError::MissingPcrValue { .. } | QuoteError::BadPcrValueSize { .. } => {
                        Check::PcrValues
                    }
                    _ => Check::PcrDigest,
                };
                return verdict.refuse(check, e);
            }
        };
        verdict.set_pcrs(&quote.pcrs);
        verdict.clock = Some(ClockSummary::from(&quote.attest.clock_info));
        let log = match &response.event_log {
            None => None,
            Some(bytes) => {
                let log = match EventLog::parse(bytes, &self.log_limits) {
                    Ok(log) => log,
                    Err(e) => {
                        verdict.event_log_sha256 = Some(crate::eventlog::log_digest(bytes));
                        return verdict.refuse(Check::EventLog, e);
                    }
                };
                verdict.event_log_sha256 = Some(log.sha256_of_raw());
                if let Err(e) = log.check_quote(&quote.pcrs) {
                    return verdict.refuse(Check::EventLogReplay, e);
                }
                verdict.secure_boot = log.secure_boot();
                Some(log)
            }
        };
        if let Some(previous) = previous_clock
            && let Err(e) = check_clock(previous, &quote.attest.clock_info)
        {
            return verdict.refuse(Check::Clock, e);
        }
        let certify = CertifyInput {
            ak: &pending.ak,
            attest: &pending.node_key_certify_info,
            signature: &pending.node_key_certify_signature,
            node_key: &pending.node_key,
            qualifying_data: None,
            policy_pcrs: &pending.node_key_pcrs,
            quoted: &quote.pcrs,
        };
        if let Err(e) = verify_node_key_certify(&certify) {
            return verdict.refuse(Check::NodeKeyCertify, e);
        }
        verdict.policies = self.policies.evaluate(&PolicyFacts {
            quoted: &quote.pcrs,
            event_log: log.as_ref(),
        });
        if !verdict.policies.accepted() {
            let reason = verdict.policies.describe_failures();
            return verdict.refuse(Check::Policy, reason);
        }
        verdict.selectors = node_selectors(
            &pending.ek,
            verdict.secure_boot,
            &quote.pcrs,
            &verdict.policies.passed,
        );
        verdict.accepted = true;
        verdict
    }
}

/// The node selectors of DESIGN §2.
fn node_selectors(
    ek: &EkIdentity,
    secure_boot: Option<bool>,
    pcrs: &PcrValues,
    policies: &[String],
) -> Vec<String> {
    let mut selectors = vec![format!("tpm:ek-sha256:{}", ek.ek_hash)];
    if let Some(manufacturer) = &ek.manufacturer {
        selectors.push(format!("tpm:manufacturer:{manufacturer}"));
    }
    if let Some(enabled) = secure_boot {
        selectors.push(format!(
            "tpm:secure-boot:{}",
            if enabled { "enabled" } else { "disabled" }
        ));
    }
    if let Some(values) = pcrs.get(&HashAlg::Sha256) {
        for (pcr, value) in values {
            selectors.push(format!("tpm:pcr:sha256:{pcr}:{}", hex::encode(value)));
        }
    }
    for policy in policies {
        selectors.push(format!("tpm:policy:{policy}"));
    }
    selectors
}
