//! The whole attestation check against real swtpm evidence made through the
//! attestor's TPM layer: a good host is accepted with its selectors, and each
//! attack is refused at the check that is meant to catch it.
#![allow(clippy::unwrap_used)] // tests and benches fail loudly by design

use std::time::{Duration, Instant, SystemTime};

use rootmark_attestor::tpm::{AkAlgorithm, EkAlgorithm, PcrSelection as AttestorSelection, Tpm};
use rootmark_issuer::ek::{EkAllowList, EkRoots, EkVerifier};
use rootmark_issuer::evidence::{
    Challenge, ChallengeResponse, EvidenceVerifier, Hello, PendingAttestation,
};
use rootmark_issuer::pcr::PcrValues;
use rootmark_issuer::policy::{NodePolicyConfig, PolicySet};
use rootmark_issuer::tpm::HashAlg;
use rootmark_issuer::verdict::{Check, Verdict};
use rootmark_swtpm_tests::Swtpm;
use rootmark_swtpm_tests::boot::{Bank, BootLog, BootProfile};
use rootmark_swtpm_tests::measure;

/// A swtpm that booted `profile`, and the event log it would send.
struct Host {
    swtpm: Swtpm,
    log: BootLog,
}

impl Host {
    fn boot(profile: &BootProfile) -> Host {
        let swtpm = Swtpm::start().unwrap();
        let log = BootLog::simulate(profile);
        let mut tpm = Tpm::open(&swtpm.tcti()).unwrap();
        measure::extend_boot(tpm.context_mut(), &log).unwrap();
        Host { swtpm, log }
    }

    fn roots(&self) -> EkRoots {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(
            self.swtpm.ek_root_ca_pem_path(),
            dir.path().join("root.pem"),
        )
        .unwrap();
        std::fs::copy(
            self.swtpm.ek_issuer_ca_pem_path(),
            dir.path().join("issuer.pem"),
        )
        .unwrap();
        EkRoots::load_dir(dir.path()).unwrap()
    }
}

fn verifier(roots: EkRoots, policies: &[NodePolicyConfig]) -> EvidenceVerifier {
    EvidenceVerifier::new(
        EkVerifier::new(roots, EkAllowList::empty()),
        PolicySet::compile(policies).unwrap(),
    )
}

/// The attestor's side: the TPM objects and the Hello.
struct Node {
    tpm: Tpm,
    ak: rootmark_attestor::tpm::AttestationKey,
    hello: Hello,
}

fn node(host: &Host) -> Node {
    let mut tpm = Tpm::open(&host.swtpm.tcti()).unwrap();
    let endorsement = tpm.endorsement(Some(EkAlgorithm::Rsa2048)).unwrap();
    let ak = tpm
        .create_ak(EkAlgorithm::Rsa2048, AkAlgorithm::EccP256)
        .unwrap();
    let node_key = tpm
        .create_node_key(&AttestorSelection::default_boot())
        .unwrap();
    let certification = tpm.certify_node_key(&node_key, &ak, b"").unwrap();
    let hello = Hello {
        ek_certificate: endorsement.certificate,
        ek_public: endorsement.public,
        ak_public: ak.public_bytes().unwrap(),
        node_key_public: node_key.public_bytes().unwrap(),
        node_key_certify_info: certification.attest,
        node_key_certify_signature: certification.signature,
        node_key_pcrs: vec![0, 2, 4, 7],
    };
    Node { tpm, ak, hello }
}

/// What the attestor answers to `challenge`.
fn answer(node: &mut Node, challenge: &Challenge, log: Option<&BootLog>) -> ChallengeResponse {
    let secret = node
        .tpm
        .activate_credential(
            &node.ak,
            &challenge.credential_blob,
            &challenge.encrypted_secret,
        )
        .unwrap();
    let mut selection = AttestorSelection::new();
    for (bank, pcrs) in &challenge.pcr_selection {
        let bank = bank.name().parse().unwrap();
        let pcrs: Vec<u8> = pcrs.iter().map(|&p| p as u8).collect();
        selection = selection.with(bank, &pcrs).unwrap();
    }
    let quote = node
        .tpm
        .quote(&node.ak, &selection, &challenge.nonce)
        .unwrap();
    let mut pcrs = PcrValues::new();
    for (bank, values) in &quote.pcrs.banks {
        let bank: HashAlg = bank.name().parse().unwrap();
        for (index, value) in values {
            pcrs.entry(bank)
                .or_default()
                .insert(u32::from(*index), value.clone());
        }
    }
    ChallengeResponse {
        activated_secret: secret.to_vec(),
        quote_attest: quote.attest,
        quote_signature: quote.signature,
        pcrs,
        event_log: log.map(BootLog::to_bytes),
    }
}

fn begin(verifier: &EvidenceVerifier, hello: &Hello) -> (PendingAttestation, Challenge) {
    match verifier.begin(hello, SystemTime::now()) {
        Ok(started) => started,
        Err(verdict) => panic!("begin refused: {verdict:?}"),
    }
}

fn attest(host: &Host, verifier: &EvidenceVerifier, log: Option<&BootLog>) -> Verdict {
    let mut node = node(host);
    let (pending, challenge) = begin(verifier, &node.hello);
    let response = answer(&mut node, &challenge, log);
    verifier.finish(pending, &response, None, Instant::now())
}

fn refused_at(verdict: &Verdict, check: Check, words: &str) {
    assert!(!verdict.accepted, "accepted: {verdict:?}");
    assert_eq!(verdict.failed_check, Some(check), "{verdict:?}");
    let reason = verdict.reason.as_deref().unwrap_or_default();
    assert!(reason.contains(words), "reason {reason:?} lacks {words:?}");
}

fn sha256_hex(value: &[u8]) -> String {
    hex::encode(value)
}

/// A policy accepting the default boot: its PCR 7, Secure Boot on, its kernel.
fn good_policy(good: &BootLog) -> NodePolicyConfig {
    let pcrs = good.expected_pcrs(Bank::Sha256);
    let kernel = sha256_hex(&Bank::Sha256.digest(&BootProfile::default().kernel));
    toml::from_str(&format!(
        "name = \"prod\"\nrequire_secure_boot = true\n[pcrs.sha256]\n\"7\" = [\"{}\"]\n[kernels]\nsha256 = [\"{kernel}\"]\n",
        sha256_hex(&pcrs[&7]),
    ))
    .unwrap()
}

#[test]
fn good_host_is_accepted_with_its_selectors_and_facts() {
    let host = Host::boot(&BootProfile::default());
    let verifier = verifier(host.roots(), &[good_policy(&host.log)]);
    let verdict = attest(&host, &verifier, Some(&host.log));
    assert!(verdict.accepted, "{verdict:?}");
    assert_eq!(verdict.failed_check, None);
    let ek_hash = verdict.ek_sha256.clone().unwrap();
    assert!(
        verdict
            .selectors
            .contains(&format!("tpm:ek-sha256:{ek_hash}"))
    );
    assert!(
        verdict
            .selectors
            .contains(&"tpm:manufacturer:id:00001014".to_owned()),
        "{:?}",
        verdict.selectors
    );
    assert!(
        verdict
            .selectors
            .contains(&"tpm:secure-boot:enabled".to_owned())
    );
    assert!(verdict.selectors.contains(&"tpm:policy:prod".to_owned()));
    let pcr4 = sha256_hex(&host.log.expected_pcrs(Bank::Sha256)[&4]);
    assert!(
        verdict
            .selectors
            .contains(&format!("tpm:pcr:sha256:4:{pcr4}"))
    );
    assert_eq!(verdict.pcrs["sha256"][&4], pcr4);
    assert_eq!(verdict.event_log_sha256.as_deref().map(str::len), Some(64));
    assert!(verdict.ak_name.is_some() && verdict.nonce.is_some() && verdict.clock.is_some());
    // The verdict is an audit record: it serialises.
    let json = serde_json::to_value(&verdict).unwrap();
    assert_eq!(json["accepted"], true);
}

#[test]
fn ek_certificate_from_an_untrusted_ca_is_refused() {
    let host = Host::boot(&BootProfile::default());
    let stranger = Host::boot(&BootProfile::default());
    let verifier = verifier(stranger.roots(), &[]);
    let node = node(&host);
    let verdict = *verifier
        .begin(&node.hello, SystemTime::now())
        .err()
        .expect("refused");
    refused_at(&verdict, Check::EkTrust, "not in the manufacturer roots");
}

#[test]
fn ek_certificate_of_another_tpm_is_refused_as_key_mismatch() {
    let host = Host::boot(&BootProfile::default());
    let mut node = node(&host);
    // A genuine, trusted certificate — of another TPM — presented with this
    // TPM's EK public.
    let stranger = Host::boot(&BootProfile::default());
    let stranger_cert = Tpm::open(&stranger.swtpm.tcti())
        .unwrap()
        .endorsement(Some(EkAlgorithm::Rsa2048))
        .unwrap()
        .certificate;
    node.hello.ek_certificate = stranger_cert;
    let verifier = verifier(stranger.roots(), &[]);
    let verdict = *verifier
        .begin(&node.hello, SystemTime::now())
        .err()
        .expect("refused");
    refused_at(
        &verdict,
        Check::EkTrust,
        "is not the EK public the TPM presented",
    );
}

#[test]
fn ak_without_restricted_is_refused() {
    let host = Host::boot(&BootProfile::default());
    let mut node = node(&host);
    // Clear `restricted` (bit 16 of objectAttributes at offset 2+2+2 of TPM2B_PUBLIC).
    node.hello.ak_public[6 + 1] &= !0x01;
    let verifier = verifier(host.roots(), &[]);
    let verdict = *verifier
        .begin(&node.hello, SystemTime::now())
        .err()
        .expect("refused");
    refused_at(&verdict, Check::AkAttributes, "restricted must be set");
}

#[test]
fn event_log_that_does_not_replay_to_the_quote_is_refused() {
    let host = Host::boot(&BootProfile::default());
    let verifier = verifier(host.roots(), &[]);
    // The host booted the good kernel but sends a log of another boot.
    let forged = BootLog::simulate(&BootProfile::default().tampered_kernel());
    let verdict = attest(&host, &verifier, Some(&forged));
    refused_at(&verdict, Check::EventLogReplay, "4");
}

#[test]
fn secure_boot_off_is_refused_by_a_policy_that_requires_it() {
    let good = BootLog::simulate(&BootProfile::default());
    let host = Host::boot(&BootProfile {
        secure_boot: false,
        ..BootProfile::default()
    });
    let mut policy = good_policy(&good);
    policy.pcrs.clear();
    let verifier = verifier(host.roots(), &[policy]);
    let verdict = attest(&host, &verifier, Some(&host.log));
    refused_at(
        &verdict,
        Check::Policy,
        "prod: require_secure_boot: Secure Boot is disabled",
    );
    assert_eq!(verdict.secure_boot, Some(false));
}

#[test]
fn kernel_not_on_the_list_is_refused() {
    let good = BootLog::simulate(&BootProfile::default());
    let host = Host::boot(&BootProfile::default().tampered_kernel());
    let verifier = verifier(host.roots(), &[good_policy(&good)]);
    let verdict = attest(&host, &verifier, Some(&host.log));
    refused_at(&verdict, Check::Policy, "kernels.sha256");
    assert!(verdict.policies.passed.is_empty());
}

#[test]
fn wrong_activation_secret_is_refused() {
    let host = Host::boot(&BootProfile::default());
    let verifier = verifier(host.roots(), &[]);
    let mut node = node(&host);
    let (pending, challenge) = begin(&verifier, &node.hello);
    let mut response = answer(&mut node, &challenge, Some(&host.log));
    response.activated_secret[0] ^= 1;
    let verdict = verifier.finish(pending, &response, None, Instant::now());
    refused_at(&verdict, Check::Activation, "activated secret is wrong");
}

#[test]
fn late_answer_is_refused_as_expired() {
    let host = Host::boot(&BootProfile::default());
    let verifier = verifier(host.roots(), &[]).with_challenge_lifetime(Duration::from_secs(5));
    let mut node = node(&host);
    let (pending, challenge) = begin(&verifier, &node.hello);
    let response = answer(&mut node, &challenge, Some(&host.log));
    let verdict = verifier.finish(
        pending,
        &response,
        None,
        Instant::now() + Duration::from_secs(6),
    );
    refused_at(&verdict, Check::NonceExpired, "expired");
}

#[test]
fn quote_over_a_previous_nonce_is_refused() {
    let host = Host::boot(&BootProfile::default());
    let verifier = verifier(host.roots(), &[]);
    let mut node = node(&host);
    let (first_pending, first_challenge) = begin(&verifier, &node.hello);
    let first = answer(&mut node, &first_challenge, Some(&host.log));
    assert!(
        verifier
            .finish(first_pending, &first, None, Instant::now())
            .accepted
    );
    // Replay the first quote against a second challenge (with the right secret).
    let (pending, challenge) = begin(&verifier, &node.hello);
    let mut replay = answer(&mut node, &challenge, Some(&host.log));
    replay.quote_attest = first.quote_attest.clone();
    replay.quote_signature = first.quote_signature.clone();
    let verdict = verifier.finish(pending, &replay, None, Instant::now());
    refused_at(&verdict, Check::Nonce, "nonce");
}

#[test]
fn clock_going_backwards_is_refused() {
    let host = Host::boot(&BootProfile::default());
    let verifier = verifier(host.roots(), &[]);
    let mut node = node(&host);
    let (pending, challenge) = begin(&verifier, &node.hello);
    let response = answer(&mut node, &challenge, Some(&host.log));
    let future = rootmark_issuer::tpm::ClockInfo {
        clock: 0,
        reset_count: 1000,
        restart_count: 0,
        safe: true,
    };
    let verdict = verifier.finish(pending, &response, Some(&future), Instant::now());
    refused_at(&verdict, Check::Clock, "resetCount went backwards");
}

#[test]
fn node_key_bound_to_an_older_boot_state_is_refused() {
    let host = Host::boot(&BootProfile::default());
    let verifier = verifier(host.roots(), &[]);
    let mut node = node(&host);
    // A boot PCR changes after the node key was made: its policy no longer matches.
    measure::extend_data(node.tpm.context_mut(), 7, b"late secure boot change").unwrap();
    let (pending, challenge) = begin(&verifier, &node.hello);
    let response = answer(&mut node, &challenge, None);
    let verdict = verifier.finish(pending, &response, None, Instant::now());
    refused_at(&verdict, Check::NodeKeyCertify, "authPolicy");
}

#[test]
fn missing_event_log_is_refused_by_default_policy_rules() {
    let host = Host::boot(&BootProfile::default());
    let verifier = verifier(
        host.roots(),
        &[toml::from_str("name = \"needs-log\"").unwrap()],
    );
    let verdict = attest(&host, &verifier, None);
    refused_at(&verdict, Check::Policy, "require_event_log");
}
