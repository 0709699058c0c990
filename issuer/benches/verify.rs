//! `cargo bench -p rootmark-issuer --bench verify`
//!
//! Measures, in one run and on the same keys:
//! - raw signature verification (aws-lc-rs) of a quote body, for an ECDSA
//!   P-256 and an RSA-2048 AK;
//! - full quote verification (parse, signature, magic, type, nonce, PCR digest)
//!   of the same quote;
//! - the full evidence check of one attestation (EK chain, MakeCredential, AK
//!   checks, activation proof, quote, 150-event log parse and replay, node-key
//!   Certify, node policy), with the node's side played by a software TPM
//!   outside the timed sections.
//!
//! It ends with a summary of rates and the ratios the project tracks
//! (docs/performance.md), measured again with plain timing loops so the
//! ratios come from one process on one machine state.
#![allow(clippy::unwrap_used)] // tests and benches fail loudly by design

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime};

use aws_lc_rs::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use criterion::{Criterion, Throughput, criterion_group};
use rootmark_issuer::ek::{EkAllowList, EkRoots, EkVerifier};
use rootmark_issuer::evidence::{ChallengeResponse, EvidenceVerifier, Hello};
use rootmark_issuer::pcr::PcrValues;
use rootmark_issuer::policy::{NodePolicyConfig, PolicySet, policy_from_event_log};
use rootmark_issuer::quote::verify_quote;
use rootmark_issuer::tpm::{HashAlg, PublicKey, TpmtPublic, TpmtSignature};
use rootmark_swtpm_tests::boot::{Bank, BootLog, BootProfile};
use rootmark_swtpm_tests::soft_tpm::{SoftAkAlgorithm, SoftEkCa, SoftTpm};

const NONCE: &[u8] = b"0123456789abcdef0123456789abcdef";

/// One quote and what is needed to verify it.
struct QuoteCase {
    ak: TpmtPublic,
    attest: Vec<u8>,
    signature: Vec<u8>,
    pcrs: PcrValues,
}

fn to_pcr_values(values: &std::collections::BTreeMap<(Bank, u32), Vec<u8>>) -> PcrValues {
    let mut out = PcrValues::new();
    for ((bank, pcr), value) in values {
        let bank = match bank {
            Bank::Sha1 => HashAlg::Sha1,
            Bank::Sha256 => HashAlg::Sha256,
        };
        out.entry(bank).or_default().insert(*pcr, value.clone());
    }
    out
}

fn quote_case(ca: &SoftEkCa, algorithm: SoftAkAlgorithm) -> QuoteCase {
    let mut tpm = SoftTpm::manufacture(ca, algorithm).expect("soft TPM");
    tpm.boot(&BootLog::simulate(&BootProfile::default()));
    let (attest, signature, values) = tpm.quote(&[(Bank::Sha256, (0..10).collect())], NONCE);
    QuoteCase {
        ak: TpmtPublic::from_tpm2b(&tpm.ak_public()).expect("AK"),
        attest,
        signature,
        pcrs: to_pcr_values(&values),
    }
}

/// Raw aws-lc-rs verification of the quote's signature with the AK's key:
/// the floor under which quote verification cannot go.
fn raw_verify(case: &QuoteCase) -> bool {
    match (&case.ak.key, TpmtSignature::from_bytes(&case.signature)) {
        (PublicKey::Ecc { .. }, Ok(TpmtSignature::Ecdsa { r, s, .. })) => {
            let mut fixed = [0u8; 64];
            fixed[32 - r.len()..32].copy_from_slice(&r);
            fixed[64 - s.len()..].copy_from_slice(&s);
            let point = case.ak.ecc_point().unwrap_or_default();
            UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &point)
                .verify(&case.attest, &fixed)
                .is_ok()
        }
        (PublicKey::Rsa { modulus, .. }, Ok(TpmtSignature::RsaSsa { signature: sig, .. })) => {
            RsaPublicKeyComponents {
                n: modulus.as_slice(),
                e: &[1u8, 0, 1][..],
            }
            .verify(&signature::RSA_PKCS1_2048_8192_SHA256, &case.attest, &sig)
            .is_ok()
        }
        _ => false,
    }
}

fn quote_verify(case: &QuoteCase) -> bool {
    verify_quote(&case.ak, &case.attest, &case.signature, &case.pcrs, NONCE).is_ok()
}

/// A software node, its Hello, and a verifier configured like production.
struct EvidenceCase {
    tpm: SoftTpm,
    hello: Hello,
    log: Vec<u8>,
    verifier: EvidenceVerifier,
}

fn evidence_case(ca: &SoftEkCa) -> EvidenceCase {
    let mut tpm = SoftTpm::manufacture(ca, SoftAkAlgorithm::EccP256).expect("soft TPM");
    let boot = BootLog::simulate_large(&BootProfile::default(), 150);
    tpm.boot(&boot);
    let node_key = tpm.create_node_key(&[0, 2, 4, 7]);
    let (certify, certify_sig) = tpm.certify_node_key(b"");
    let hello = Hello {
        ek_certificate: Some(tpm.ek_certificate().to_vec()),
        ek_public: tpm.ek_public(),
        ak_public: tpm.ak_public(),
        node_key_public: node_key,
        node_key_certify_info: certify,
        node_key_certify_signature: certify_sig,
        node_key_pcrs: vec![0, 2, 4, 7],
    };
    let dir = tempfile::tempdir().expect("temp dir");
    ca.write_roots(dir.path()).expect("roots");
    let roots = EkRoots::load_dir(dir.path()).expect("roots load");
    let log_bytes = boot.to_bytes();
    let parsed =
        rootmark_issuer::eventlog::EventLog::parse(&log_bytes, &Default::default()).expect("log");
    let policy: NodePolicyConfig = policy_from_event_log("bench", &parsed);
    let verifier = EvidenceVerifier::new(
        EkVerifier::new(roots, EkAllowList::empty()),
        PolicySet::compile(&[policy]).expect("policy"),
    );
    EvidenceCase {
        tpm,
        hello,
        log: log_bytes,
        verifier,
    }
}

/// One attestation; returns the time spent in the issuer (begin + finish).
fn attest_once(case: &EvidenceCase) -> Duration {
    let start = Instant::now();
    let (pending, challenge) = match case
        .verifier
        .begin(black_box(&case.hello), SystemTime::now())
    {
        Ok(started) => started,
        Err(verdict) => panic!("begin refused: {verdict:?}"),
    };
    let issuer_begin = start.elapsed();
    // The node's side, untimed.
    let secret = case
        .tpm
        .activate_credential(&challenge.credential_blob, &challenge.encrypted_secret)
        .expect("activation");
    let selection: Vec<(Bank, Vec<u32>)> = challenge
        .pcr_selection
        .iter()
        .map(|(bank, pcrs)| {
            (
                if *bank == HashAlg::Sha1 {
                    Bank::Sha1
                } else {
                    Bank::Sha256
                },
                pcrs.clone(),
            )
        })
        .collect();
    let (attest, signature, values) = case.tpm.quote(&selection, &challenge.nonce);
    let response = ChallengeResponse {
        activated_secret: secret,
        quote_attest: attest,
        quote_signature: signature,
        pcrs: to_pcr_values(&values),
        event_log: Some(case.log.clone()),
    };
    let start = Instant::now();
    let verdict = case
        .verifier
        .finish(pending, black_box(&response), None, Instant::now());
    let issuer_finish = start.elapsed();
    assert!(verdict.accepted, "{verdict:?}");
    issuer_begin + issuer_finish
}

fn benches(c: &mut Criterion) {
    let ca = SoftEkCa::new("Bench TPM Vendor").expect("CA");
    let ecc = quote_case(&ca, SoftAkAlgorithm::EccP256);
    let rsa = quote_case(&ca, SoftAkAlgorithm::Rsa2048);
    assert!(raw_verify(&ecc) && raw_verify(&rsa) && quote_verify(&ecc) && quote_verify(&rsa));

    let mut group = c.benchmark_group("quote");
    group.throughput(Throughput::Elements(1));
    group.bench_function("raw_ecdsa_p256_verify", |b| {
        b.iter(|| raw_verify(black_box(&ecc)))
    });
    group.bench_function("verify_quote_ecdsa_p256", |b| {
        b.iter(|| quote_verify(black_box(&ecc)))
    });
    group.bench_function("raw_rsa2048_verify", |b| {
        b.iter(|| raw_verify(black_box(&rsa)))
    });
    group.bench_function("verify_quote_rsa2048", |b| {
        b.iter(|| quote_verify(black_box(&rsa)))
    });
    group.finish();

    let evidence = evidence_case(&ca);
    let mut group = c.benchmark_group("evidence");
    group.throughput(Throughput::Elements(1));
    group.sample_size(30);
    group.bench_function("full_check_150_events", |b| {
        b.iter_custom(|iterations| (0..iterations).map(|_| attest_once(&evidence)).sum())
    });
    group.finish();

    summary(&ecc, &rsa, &evidence);
}

/// Rate of `f` over about `budget` of its own time.
fn rate(budget: Duration, mut f: impl FnMut() -> Duration) -> f64 {
    let mut spent = Duration::ZERO;
    let mut count = 0u64;
    while spent < budget {
        spent += f();
        count += 1;
    }
    count as f64 / spent.as_secs_f64()
}

fn timed(f: impl Fn() -> bool) -> impl FnMut() -> Duration {
    move || {
        let start = Instant::now();
        for _ in 0..64 {
            assert!(black_box(f()));
        }
        start.elapsed() / 64
    }
}

fn summary(ecc: &QuoteCase, rsa: &QuoteCase, evidence: &EvidenceCase) {
    let budget = Duration::from_secs(2);
    let raw_ecc = rate(budget, timed(|| raw_verify(ecc)));
    let quote_ecc = rate(budget, timed(|| quote_verify(ecc)));
    let raw_rsa = rate(budget, timed(|| raw_verify(rsa)));
    let quote_rsa = rate(budget, timed(|| quote_verify(rsa)));
    let full = rate(budget, || attest_once(evidence));
    println!();
    println!("summary (per second, one thread):");
    println!("  raw ECDSA P-256 verify        {raw_ecc:>10.0}");
    println!(
        "  verify_quote ECDSA P-256      {quote_ecc:>10.0}   {:>5.1}% of raw (target ≥ 80%)",
        100.0 * quote_ecc / raw_ecc
    );
    println!("  raw RSA-2048 verify           {raw_rsa:>10.0}");
    println!(
        "  verify_quote RSA-2048         {quote_rsa:>10.0}   {:>5.1}% of raw (target ≥ 80%)",
        100.0 * quote_rsa / raw_rsa
    );
    println!(
        "  full evidence check           {full:>10.0}   {:>5.1}% of raw ECDSA (target ≥ 5,000/s and ≥ 25%)",
        100.0 * full / raw_ecc
    );
}

criterion_group!(verify, benches);

fn main() {
    verify();
    Criterion::default().configure_from_args().final_summary();
}
