//! `cargo bench -p rootmark-issuer --bench mint`
//!
//! Measures, in one run and on one thread:
//! - the raw ECDSA P-256 signature rate of aws-lc-rs (`EcdsaKeyPair::sign`
//!   of a 300-byte message, the size of an SVID's TBSCertificate): the
//!   floor under which minting cannot go;
//! - X509-SVID minting from the workload's SubjectPublicKeyInfo bytes, as
//!   the issuance API receives them: key check (point on the curve), ID and
//!   TTL checks, TBSCertificate assembly, signature, certificate;
//! - the same with a key checked beforehand (what a cached key costs);
//! - JWT-SVID minting for one audience.
//!
//! It ends with a summary of rates and the ratios the project tracks
//! (docs/performance.md; targets: X509-SVID ≥ 60% and JWT-SVID ≥ 70% of
//! the raw sign rate), measured again with plain timing loops that take
//! turns in short rounds, so that the ratios come from one process under
//! the same machine load.
#![allow(clippy::unwrap_used)] // tests and benches fail loudly by design

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use criterion::{Criterion, Throughput, criterion_group};
use rootmark_issuer::ca::{
    JwtAuthority, JwtConfig, SystemClock, WorkloadKey, X509Authority, X509CaConfig,
};
use rootmark_sdk::id::{SpiffeId, TrustDomain};

const TTL_X509: Duration = Duration::from_secs(3600);
const TTL_JWT: Duration = Duration::from_secs(300);

struct Setup {
    raw_key: EcdsaKeyPair,
    rng: SystemRandom,
    message: Vec<u8>,
    x509: X509Authority,
    jwt: JwtAuthority,
    id: SpiffeId,
    spki: Vec<u8>,
    key: WorkloadKey,
    audience: Vec<String>,
}

fn setup() -> Setup {
    let td = TrustDomain::parse("example.org").expect("trust domain");
    let clock = Arc::new(SystemClock);
    let x509 = X509Authority::new(X509CaConfig::new(td.clone()), clock.clone()).expect("CA");
    let jwt = JwtAuthority::new(JwtConfig::new(td), clock).expect("JWT authority");
    let workload = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).expect("key");
    let spki = workload
        .public_key()
        .as_der()
        .expect("spki")
        .as_ref()
        .to_vec();
    let key = WorkloadKey::from_spki_der(&spki).expect("workload key");
    Setup {
        raw_key: EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).expect("key"),
        rng: SystemRandom::new(),
        message: (0..300u32).map(|i| i as u8).collect(),
        x509,
        jwt,
        id: SpiffeId::parse("spiffe://example.org/ns/payments/sa/web").expect("id"),
        spki,
        key,
        audience: vec!["https://api.example.org".to_owned()],
    }
}

fn raw_sign(s: &Setup) -> bool {
    s.raw_key.sign(&s.rng, black_box(&s.message)).is_ok()
}

fn mint_x509(s: &Setup) -> bool {
    WorkloadKey::from_spki_der(black_box(&s.spki))
        .and_then(|key| s.x509.mint_x509_svid(&s.id, &key, TTL_X509, &[]))
        .is_ok()
}

fn mint_x509_checked_key(s: &Setup) -> bool {
    s.x509
        .mint_x509_svid(&s.id, black_box(&s.key), TTL_X509, &[])
        .is_ok()
}

fn mint_jwt(s: &Setup) -> bool {
    s.jwt
        .mint_jwt_svid(&s.id, black_box(&s.audience), TTL_JWT)
        .is_ok()
}

fn benches(c: &mut Criterion) {
    let s = setup();
    assert!(raw_sign(&s) && mint_x509(&s) && mint_x509_checked_key(&s) && mint_jwt(&s));

    let mut group = c.benchmark_group("mint");
    group.throughput(Throughput::Elements(1));
    group.bench_function("raw_ecdsa_p256_sign", |b| b.iter(|| raw_sign(&s)));
    group.bench_function("x509_svid_from_spki", |b| b.iter(|| mint_x509(&s)));
    group.bench_function("x509_svid_checked_key", |b| {
        b.iter(|| mint_x509_checked_key(&s))
    });
    group.bench_function("jwt_svid", |b| b.iter(|| mint_jwt(&s)));
    group.finish();

    summary(&s);
}

/// Rates of each function, measured in alternating rounds of about
/// `round` each until every function has had `budget`.
fn rates(budget: Duration, round: Duration, fs: &[&dyn Fn() -> bool]) -> Vec<f64> {
    let mut spent = vec![Duration::ZERO; fs.len()];
    let mut counts = vec![0u64; fs.len()];
    while spent.iter().any(|s| *s < budget) {
        for (i, f) in fs.iter().enumerate() {
            let start = Instant::now();
            let mut n = 0u64;
            while start.elapsed() < round {
                for _ in 0..16 {
                    assert!(black_box(f()));
                }
                n += 16;
            }
            spent[i] += start.elapsed();
            counts[i] += n;
        }
    }
    counts
        .iter()
        .zip(&spent)
        .map(|(n, t)| *n as f64 / t.as_secs_f64())
        .collect()
}

fn summary(s: &Setup) {
    let rates = rates(
        Duration::from_secs(3),
        Duration::from_millis(100),
        &[
            &|| raw_sign(s),
            &|| mint_x509(s),
            &|| mint_x509_checked_key(s),
            &|| mint_jwt(s),
        ],
    );
    let (raw, x509, x509_checked, jwt) = (rates[0], rates[1], rates[2], rates[3]);
    println!();
    println!("summary (per second, one thread):");
    println!("  raw ECDSA P-256 sign (300 B)  {raw:>10.0}");
    println!(
        "  X509-SVID mint (from SPKI)    {x509:>10.0}   {:>5.1}% of raw (target ≥ 60%)",
        100.0 * x509 / raw
    );
    println!(
        "  X509-SVID mint (checked key)  {x509_checked:>10.0}   {:>5.1}% of raw",
        100.0 * x509_checked / raw
    );
    println!(
        "  JWT-SVID mint                 {jwt:>10.0}   {:>5.1}% of raw (target ≥ 70%)",
        100.0 * jwt / raw
    );
}

criterion_group!(mint, benches);

fn main() {
    mint();
    Criterion::default().configure_from_args().final_summary();
}
