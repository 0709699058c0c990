//! The cost of an mTLS handshake with the SDK's configs against plain
//! rustls with static certificates, in one run.
//!
//! Both sides run in memory (no sockets), with ECDSA P-256 certificates
//! from one test CA, TLS 1.3, client authentication and no session
//! resumption on either side, so every iteration is a full handshake:
//!
//! * `plain_rustls`: `ServerConfig` with `WebPkiClientVerifier` and a
//!   single static certificate; `ClientConfig` with the default WebPKI
//!   server verifier and a DNS SAN.
//! * `rootmark_sdk`: `rootmark_sdk::tls::server_config`/`client_config`
//!   over `X509Source::fixed` sources holding X509-SVIDs (URI SANs), with
//!   `Authorizer::exact` on both sides.
//!
//! `svid_spiffe_id` and `parsed_certificate` measure the one extra step of
//! the SDK's verifiers (reading the SPIFFE ID from the peer's leaf) and,
//! for scale, rustls' own parse of it.
//!
//! After criterion's benchmarks, a summary times both handshakes again in
//! interleaved rounds (so that load from other processes hits both alike)
//! and prints the ratio SDK / plain; the acceptance target is at most 115%.
//!
//! `cargo bench -p rootmark-sdk --bench handshake` (ideally pinned to one
//! core: `taskset -c 0 cargo bench …`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use rootmark_sdk::bundle::X509BundleSet;
use rootmark_sdk::tls::{Authorizer, client_config, server_config};
use rootmark_sdk::{SpiffeId, TrustDomain, X509Bundle, X509Context, X509Source, X509Svid};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};

const SERVER_ID: &str = "spiffe://example.org/bench/server";
const CLIENT_ID: &str = "spiffe://example.org/bench/client";
const SERVER_DNS: &str = "server.bench.test";

struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A leaf: certificate DER and PKCS#8 key DER.
struct Leaf {
    cert: Vec<u8>,
    key: Vec<u8>,
}

impl Ca {
    fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "bench CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        Ca {
            issuer: CertifiedIssuer::self_signed(params, key).unwrap(),
        }
    }

    fn der(&self) -> Vec<u8> {
        self.issuer.der().to_vec()
    }

    /// A P-256 leaf for `san`, for both client and server authentication.
    fn leaf(&self, san: SanType) -> Leaf {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, "leaf");
        params.subject_alt_names = vec![san];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyAgreement,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert: cert.der().to_vec(),
            key: key.serialize_der(),
        }
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn key_der(leaf: &Leaf) -> PrivateKeyDer<'static> {
    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf.key.clone()))
}

/// (a) Plain rustls: static certificates, WebPKI verifiers, DNS SAN.
fn plain_configs(ca: &Ca) -> (Arc<ClientConfig>, Arc<ServerConfig>) {
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from(ca.der())).unwrap();
    let roots = Arc::new(roots);
    let server_leaf = ca.leaf(SanType::DnsName(SERVER_DNS.try_into().unwrap()));
    let client_leaf = ca.leaf(SanType::DnsName("client.bench.test".try_into().unwrap()));

    let client_verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::clone(&roots), provider())
            .build()
            .unwrap();
    let mut server = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(client_verifier)
        .with_single_cert(
            vec![CertificateDer::from(server_leaf.cert.clone())],
            key_der(&server_leaf),
        )
        .unwrap();
    server.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    server.send_tls13_tickets = 0;

    let mut client = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(
            vec![CertificateDer::from(client_leaf.cert.clone())],
            key_der(&client_leaf),
        )
        .unwrap();
    client.resumption = rustls::client::Resumption::disabled();
    (Arc::new(client), Arc::new(server))
}

/// (b) The SDK: configs over fixed sources holding X509-SVIDs.
fn sdk_configs(ca: &Ca) -> (Arc<ClientConfig>, Arc<ServerConfig>) {
    let td = TrustDomain::parse("example.org").unwrap();
    let source = |id: &str| {
        let leaf = ca.leaf(SanType::URI(id.try_into().unwrap()));
        let svid = X509Svid::parse(&leaf.cert, &leaf.key).unwrap();
        let mut bundles = X509BundleSet::new();
        bundles.insert(X509Bundle::parse(td.clone(), &ca.der()).unwrap());
        Arc::new(X509Source::fixed(
            X509Context::new(vec![svid], bundles).unwrap(),
        ))
    };
    let server_id = SpiffeId::parse(SERVER_ID).unwrap();
    let client_id = SpiffeId::parse(CLIENT_ID).unwrap();
    let server = server_config(source(SERVER_ID), Authorizer::exact(client_id)).unwrap();
    let client = client_config(source(CLIENT_ID), Authorizer::exact(server_id)).unwrap();
    (Arc::new(client), Arc::new(server))
}

/// Moves all of `from`'s pending TLS bytes into `to` and processes them.
fn transfer(
    buf: &mut Vec<u8>,
    from: &mut dyn FnMut(&mut Vec<u8>) -> bool,
    to: &mut dyn FnMut(&mut &[u8]),
) {
    buf.clear();
    while from(buf) {}
    let mut slice = buf.as_slice();
    while !slice.is_empty() {
        to(&mut slice);
    }
}

/// One full handshake in memory; panics if it fails.
fn handshake(client_config: &Arc<ClientConfig>, server_config: &Arc<ServerConfig>) {
    let name = ServerName::try_from(SERVER_DNS).unwrap();
    let mut client = ClientConnection::new(Arc::clone(client_config), name).unwrap();
    let mut server = ServerConnection::new(Arc::clone(server_config)).unwrap();
    let mut buf = Vec::with_capacity(8 * 1024);
    while client.is_handshaking() || server.is_handshaking() {
        transfer(
            &mut buf,
            &mut |out| client.wants_write() && client.write_tls(out).unwrap() > 0,
            &mut |input| {
                server.read_tls(input).unwrap();
                server.process_new_packets().unwrap();
            },
        );
        transfer(
            &mut buf,
            &mut |out| server.wants_write() && server.write_tls(out).unwrap() > 0,
            &mut |input| {
                client.read_tls(input).unwrap();
                client.process_new_packets().unwrap();
            },
        );
    }
    assert!(client.peer_certificates().is_some() && server.peer_certificates().is_some());
    black_box((client, server));
}

fn bench(
    c: &mut Criterion,
    plain: &(Arc<ClientConfig>, Arc<ServerConfig>),
    sdk: &(Arc<ClientConfig>, Arc<ServerConfig>),
) {
    let mut group = c.benchmark_group("mtls_handshake");
    group.bench_function("plain_rustls", |b| b.iter(|| handshake(&plain.0, &plain.1)));
    group.bench_function("rootmark_sdk", |b| b.iter(|| handshake(&sdk.0, &sdk.1)));
    group.finish();
    let leaf = Ca::new().leaf(SanType::URI(SERVER_ID.try_into().unwrap()));
    c.bench_function("svid_spiffe_id", |b| {
        b.iter(|| rootmark_sdk::tls::svid_spiffe_id(black_box(&leaf.cert)).unwrap())
    });
    c.bench_function("parsed_certificate", |b| {
        let der = CertificateDer::from(leaf.cert.clone());
        b.iter(|| {
            rustls::server::ParsedCertificate::try_from(black_box(&der))
                .map(|_| ())
                .unwrap()
        })
    });
}

/// Per-handshake times of `rounds` rounds of `per_round` handshakes of
/// each kind, alternating, sorted: (plain, sdk).
fn interleaved(
    plain: &(Arc<ClientConfig>, Arc<ServerConfig>),
    sdk: &(Arc<ClientConfig>, Arc<ServerConfig>),
    rounds: usize,
    per_round: u32,
) -> (Vec<Duration>, Vec<Duration>) {
    let mut plain_times = Vec::with_capacity(rounds);
    let mut sdk_times = Vec::with_capacity(rounds);
    let time = |configs: &(Arc<ClientConfig>, Arc<ServerConfig>)| {
        let start = Instant::now();
        for _ in 0..per_round {
            handshake(&configs.0, &configs.1);
        }
        start.elapsed() / per_round
    };
    for round in 0..rounds {
        // Alternate which goes first, so neither always runs warm.
        if round % 2 == 0 {
            plain_times.push(time(plain));
            sdk_times.push(time(sdk));
        } else {
            sdk_times.push(time(sdk));
            plain_times.push(time(plain));
        }
    }
    plain_times.sort_unstable();
    sdk_times.sort_unstable();
    (plain_times, sdk_times)
}

fn main() {
    let ca = Ca::new();
    let plain = plain_configs(&ca);
    let sdk = sdk_configs(&ca);
    // Both must work before anything is measured.
    handshake(&plain.0, &plain.1);
    handshake(&sdk.0, &sdk.1);

    let mut criterion = Criterion::default().configure_from_args();
    bench(&mut criterion, &plain, &sdk);
    criterion.final_summary();

    // `cargo bench` passes --bench; `cargo test --benches` runs each
    // benchmark once and needs no summary.
    if std::env::args().any(|a| a == "--bench") {
        const ROUNDS: usize = 41;
        let (plain_t, sdk_t) = interleaved(&plain, &sdk, ROUNDS, 50);
        let ratio = |p: Duration, s: Duration| s.as_secs_f64() / p.as_secs_f64();
        let median = ratio(plain_t[ROUNDS / 2], sdk_t[ROUNDS / 2]);
        let fastest = ratio(plain_t[0], sdk_t[0]);
        println!(
            "\nmtls_handshake summary ({ROUNDS} interleaved rounds of 50 handshakes each):\n  \
             median: plain_rustls {:?}, rootmark_sdk {:?}, ratio {:.1}%\n  \
             fastest round: plain_rustls {:?}, rootmark_sdk {:?}, ratio {:.1}%\n  \
             target: rootmark_sdk <= 115% of plain_rustls (median): {}",
            plain_t[ROUNDS / 2],
            sdk_t[ROUNDS / 2],
            median * 100.0,
            plain_t[0],
            sdk_t[0],
            fastest * 100.0,
            if median <= 1.15 { "OK" } else { "OVER TARGET" }
        );
    }
}
