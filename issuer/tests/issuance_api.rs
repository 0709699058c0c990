//! The issuance API end to end with real parts: a software TPM
//! (`SoftTpm`, whose node key can be exported for TLS client auth) attests
//! through the real node attestation API over TLS, then uses its node SVID
//! for mutual TLS to the issuance API (SQLite store, X.509 CA, JWT
//! authority). What was issued is parsed with x509-parser, not re-read from
//! inputs.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use hyper_util::rt::TokioIo;
use rootmark_issuer::ca::{JwtAuthority, JwtConfig, SystemClock, X509Authority, X509CaConfig};
use rootmark_issuer::ek::{EkAllowList, EkRoots, EkVerifier};
use rootmark_issuer::evidence::EvidenceVerifier;
use rootmark_issuer::policy::{NodePolicyConfig, PolicySet};
use rootmark_issuer::service::issuance::{IssuanceParts, IssuanceService, run_issuance_api};
use rootmark_issuer::service::tls::{provider, uri_sans};
use rootmark_issuer::service::{
    NodeApiParts, NodeAttestationService, SpiffeServerVerifier, run_node_api,
};
use rootmark_issuer::store::{Actor, Datastore, NewEntry, SqliteStore};
use rootmark_proto::node::v1 as pb;
use rootmark_proto::node::v1::issuance_client::IssuanceClient;
use rootmark_proto::node::v1::node_attestation_client::NodeAttestationClient;
use rootmark_sdk::id::{SpiffeId, TrustDomain};
use rootmark_swtpm_tests::boot::{Bank, BootLog, BootProfile};
use rootmark_swtpm_tests::soft_tpm::{SoftAkAlgorithm, SoftEkCa, SoftTpm};
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;
use tonic::transport::{Channel, Endpoint};

fn td() -> TrustDomain {
    TrustDomain::parse("example.org").unwrap()
}

fn issuer_id() -> SpiffeId {
    SpiffeId::parse("spiffe://example.org/rootmark/issuer").unwrap()
}

/// The issuer: store, CAs and the two APIs' addresses.
struct Issuer {
    _dir: tempfile::TempDir,
    store: Arc<SqliteStore>,
    ca: Arc<X509Authority>,
    node_addr: SocketAddr,
    issuance_addr: SocketAddr,
}

fn policy(log: &BootLog) -> NodePolicyConfig {
    let pcrs = log.expected_pcrs(Bank::Sha256);
    toml::from_str(&format!(
        "name = \"prod\"\nrequire_event_log = false\n[pcrs.sha256]\n\"4\" = [\"{}\"]\n",
        hex::encode(&pcrs[&4]),
    ))
    .unwrap()
}

async fn start_issuer(ek_ca: &SoftEkCa, log: &BootLog) -> Issuer {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open_in_dir(&dir.path().join("data")).unwrap());
    let ca = Arc::new(
        X509Authority::open(
            X509CaConfig::new(td()),
            &dir.path().join("ca"),
            Arc::new(SystemClock),
        )
        .unwrap(),
    );
    let jwt = Arc::new(JwtAuthority::new(JwtConfig::new(td()), Arc::new(SystemClock)).unwrap());
    let roots_dir = dir.path().join("ek-roots");
    std::fs::create_dir_all(&roots_dir).unwrap();
    ek_ca.write_roots(&roots_dir).unwrap();
    let verifier = EvidenceVerifier::new(
        EkVerifier::new(EkRoots::load_dir(&roots_dir).unwrap(), EkAllowList::empty()),
        PolicySet::compile(&[policy(log)]).unwrap(),
    );
    let node_api = NodeAttestationService::new(NodeApiParts {
        verifier,
        store: store.clone(),
        ca: ca.clone(),
        node_ttl: Duration::from_secs(3600),
        challenge_ttl: Duration::from_secs(30),
        max_attestations_per_node_per_minute: 60,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let node_addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        if let Err(e) = run_node_api(node_api, listener).await {
            panic!("node API stopped: {e}");
        }
    });

    let mut parts = IssuanceParts::new(store.clone(), ca.clone(), jwt);
    parts.sync_interval = Duration::from_millis(100);
    let issuance = IssuanceService::new(parts);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuance_addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        if let Err(e) = run_issuance_api(issuance, listener).await {
            panic!("issuance API stopped: {e}");
        }
    });
    Issuer {
        _dir: dir,
        store,
        ca,
        node_addr,
        issuance_addr,
    }
}

/// A channel over TLS with `config` to `addr`.
async fn channel(
    addr: SocketAddr,
    config: rustls::ClientConfig,
) -> Result<Channel, tonic::transport::Error> {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_uri| {
            let connector = connector.clone();
            async move {
                let tcp = tokio::net::TcpStream::connect(addr).await?;
                let tls = connector
                    .connect(ServerName::IpAddress(addr.ip().into()), tcp)
                    .await?;
                Ok::<_, std::io::Error>(TokioIo::new(tls))
            }
        }))
        .await
}

/// A client config that checks the issuer's SVID and presents
/// `client` (chain and PKCS#8 key) if given.
fn client_config(
    bundle: &[Vec<u8>],
    client: Option<(&[Vec<u8>], Vec<u8>)>,
) -> rustls::ClientConfig {
    let verifier = Arc::new(SpiffeServerVerifier::new(bundle, issuer_id()).unwrap());
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match client {
        Some((chain, pkcs8)) => builder
            .with_client_auth_cert(
                chain
                    .iter()
                    .map(|c| CertificateDer::from(c.clone()))
                    .collect(),
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pkcs8)),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    config
}

fn tpm2b_payload(tpm2b: &[u8]) -> &[u8] {
    let len = usize::from(u16::from_be_bytes([tpm2b[0], tpm2b[1]]));
    assert_eq!(len + 2, tpm2b.len(), "TPM2B size prefix");
    &tpm2b[2..]
}

/// A soft TPM that booted `log` and attests through the node API.
struct SoftNode {
    tpm: SoftTpm,
    hello: pb::Hello,
}

fn soft_node(ek_ca: &SoftEkCa, log: &BootLog) -> SoftNode {
    let mut tpm = SoftTpm::manufacture(ek_ca, SoftAkAlgorithm::EccP256).unwrap();
    tpm.boot(log);
    let node_key = tpm.create_node_key(&[0, 2, 4, 7]);
    let (certify, certify_sig) = tpm.certify_node_key(b"");
    let hello = pb::Hello {
        ek_certificate: tpm.ek_certificate().to_vec(),
        ek_public: tpm.ek_public(),
        ak_public: tpm.ak_public(),
        node_key_public: node_key,
        node_key_certify_info: certify,
        node_key_certify_signature: certify_sig,
        node_key_pcrs: vec![0, 2, 4, 7],
        csr: Vec::new(),
    };
    SoftNode { tpm, hello }
}

async fn attest(issuer: &Issuer, node: &SoftNode) -> pb::AttestResult {
    let channel = channel(issuer.node_addr, client_config(&issuer.ca.bundle(), None))
        .await
        .unwrap();
    let mut client = NodeAttestationClient::new(channel).max_decoding_message_size(4 << 20);
    let (tx, rx) = mpsc::channel(4);
    let hello = pb::AttestRequest {
        step: Some(pb::attest_request::Step::Hello(node.hello.clone())),
    };
    tx.send(hello).await.unwrap();
    let mut responses = client
        .attest(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let challenge = match responses.message().await.unwrap().and_then(|m| m.step) {
        Some(pb::attest_response::Step::Challenge(c)) => c,
        other => panic!("expected a challenge, got {other:?}"),
    };
    let secret = node
        .tpm
        .activate_credential(
            tpm2b_payload(&challenge.credential_blob),
            tpm2b_payload(&challenge.encrypted_secret),
        )
        .unwrap();
    let selection: Vec<(Bank, Vec<u32>)> = challenge
        .pcr_selection
        .iter()
        .map(|sel| {
            let bank = match pb::HashAlgorithm::try_from(sel.hash).unwrap() {
                pb::HashAlgorithm::Sha1 => Bank::Sha1,
                pb::HashAlgorithm::Sha256 => Bank::Sha256,
                other => panic!("bank {other:?}"),
            };
            (bank, sel.pcrs.clone())
        })
        .collect();
    let (quote, quote_sig, values) = node.tpm.quote(&selection, &challenge.nonce);
    let mut banks: Vec<pb::PcrBank> = Vec::new();
    for ((bank, index), value) in values {
        let hash = match bank {
            Bank::Sha1 => pb::HashAlgorithm::Sha1,
            _ => pb::HashAlgorithm::Sha256,
        } as i32;
        match banks.iter_mut().find(|b| b.hash == hash) {
            Some(b) => {
                b.values.insert(index, value);
            }
            None => banks.push(pb::PcrBank {
                hash,
                values: [(index, value)].into_iter().collect(),
            }),
        }
    }
    let response = pb::ChallengeResponse {
        activated_secret: secret,
        quote_attest: quote,
        quote_signature: quote_sig,
        pcr_banks: banks,
        event_log: Vec::new(),
    };
    tx.send(pb::AttestRequest {
        step: Some(pb::attest_request::Step::ChallengeResponse(response)),
    })
    .await
    .unwrap();
    match responses.message().await.unwrap().and_then(|m| m.step) {
        Some(pb::attest_response::Step::Result(r)) => r,
        other => panic!("expected a result, got {other:?}"),
    }
}

/// An issuance client authenticated by the node's SVID.
async fn node_client(
    issuer: &Issuer,
    node: &SoftNode,
    result: &pb::AttestResult,
) -> IssuanceClient<Channel> {
    let pkcs8 = node.tpm.node_key_pkcs8().expect("node key PKCS#8");
    let config = client_config(&result.trust_bundle, Some((&result.node_svid_chain, pkcs8)));
    IssuanceClient::new(channel(issuer.issuance_addr, config).await.unwrap())
}

fn entry(spiffe_id: &str, node_selectors: &[&str], node_id: Option<&str>) -> NewEntry {
    NewEntry {
        spiffe_id: spiffe_id.to_owned(),
        node_selectors: node_selectors.iter().map(|s| (*s).to_owned()).collect(),
        node_id: node_id.map(str::to_owned),
        selectors: vec!["unix:uid:1000".to_owned()],
        x509_ttl_s: Some(600),
        jwt_ttl_s: None,
        dns_names: vec!["web.example.org".to_owned()],
        hint: None,
        admin: false,
    }
}

fn p256_key() -> rcgen::KeyPair {
    rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap()
}

fn spki_of(key: &rcgen::KeyPair) -> Vec<u8> {
    rcgen::PublicKeyData::subject_public_key_info(key)
}

/// Checks the X509-SVID profile of `chain` for `expected` against `bundle`.
fn check_x509_svid(chain: &[Vec<u8>], expected: &str, bundle: &[Vec<u8>], dns: &[&str]) {
    let leaf = &chain[0];
    assert_eq!(uri_sans(leaf).unwrap(), vec![expected.to_owned()]);
    let (_, cert) = x509_parser::parse_x509_certificate(leaf).unwrap();
    let bc = cert.basic_constraints().unwrap().map(|b| b.value.ca);
    assert_ne!(bc, Some(true), "leaf must not be a CA");
    let eku = cert
        .extended_key_usage()
        .unwrap()
        .expect("EKU present")
        .value;
    assert!(eku.server_auth && eku.client_auth, "EKU server+client");
    let ku = cert.key_usage().unwrap().expect("keyUsage present");
    assert!(ku.critical && ku.value.digital_signature());
    assert!(!ku.value.key_cert_sign());
    let mut dns_found = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(d) = name {
                dns_found.push((*d).to_owned());
            }
        }
    }
    assert_eq!(dns_found, dns);
    let verifier = SpiffeServerVerifier::new(bundle, SpiffeId::parse(expected).unwrap()).unwrap();
    let intermediates: Vec<CertificateDer<'_>> = chain[1..]
        .iter()
        .map(|c| CertificateDer::from(c.as_slice()))
        .collect();
    verifier
        .verify_server_cert(
            &CertificateDer::from(leaf.as_slice()),
            &intermediates,
            &ServerName::try_from("workload.invalid").unwrap(),
            &[],
            UnixTime::now(),
        )
        .expect("the SVID chains to the bundle");
}

fn jwt_part(token: &str, index: usize) -> serde_json::Value {
    let part = token.split('.').nth(index).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

async fn next_sync(stream: &mut tonic::Streaming<pb::SyncResponse>) -> Option<pb::SyncResponse> {
    tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("a sync message within 10 s")
        .unwrap()
}

fn ids(message: &pb::SyncResponse) -> Vec<String> {
    message.entries.iter().map(|e| e.id.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_syncs_and_mints_only_matching_entries_until_banned() {
    let ek_ca = SoftEkCa::new("Issuance Test Vendor").unwrap();
    let log = BootLog::simulate(&BootProfile::default());
    let issuer = start_issuer(&ek_ca, &log).await;
    let node = soft_node(&ek_ca, &log);
    let attested = attest(&issuer, &node).await;
    assert!(
        attested
            .node_selectors
            .contains(&"tpm:policy:prod".to_owned())
    );
    let node_id = attested.spiffe_id.clone();

    let admin = Actor::Admin { uid: 0 };
    let by_selector = issuer
        .store
        .create_entry(
            &entry("spiffe://example.org/web", &["tpm:policy:prod"], None),
            &admin,
        )
        .unwrap();
    let by_node_id = issuer
        .store
        .create_entry(
            &entry("spiffe://example.org/db", &[], Some(&node_id)),
            &admin,
        )
        .unwrap();
    let other_selector = issuer
        .store
        .create_entry(
            &entry("spiffe://example.org/other", &["tpm:policy:staging"], None),
            &admin,
        )
        .unwrap();
    let other_node = issuer
        .store
        .create_entry(
            &entry(
                "spiffe://example.org/elsewhere",
                &[],
                Some(&format!(
                    "spiffe://example.org/rootmark/node/{}",
                    "ab".repeat(32)
                )),
            ),
            &admin,
        )
        .unwrap();

    let mut client = node_client(&issuer, &node, &attested).await;

    // Sync: exactly the matching entries, and the bundle.
    let mut stream = client.sync(pb::SyncRequest {}).await.unwrap().into_inner();
    let first = next_sync(&mut stream).await.expect("first state");
    let mut expected = vec![by_selector.id.clone(), by_node_id.id.clone()];
    expected.sort();
    assert_eq!(ids(&first), expected);
    assert!(!first.banned);
    let bundle = first.bundle.clone().expect("bundle");
    assert_eq!(bundle.trust_domain, "example.org");
    assert_eq!(bundle.x509_authorities, issuer.ca.bundle());
    let jwks: serde_json::Value = serde_json::from_str(&bundle.jwt_jwks).unwrap();
    let kids: Vec<String> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    assert!(!kids.is_empty());
    let web = first
        .entries
        .iter()
        .find(|e| e.id == by_selector.id)
        .unwrap();
    assert_eq!(web.spiffe_id, "spiffe://example.org/web");
    assert_eq!(web.selectors, vec!["unix:uid:1000".to_owned()]);
    assert_eq!(web.x509_ttl_s, 600);

    // A change is pushed: a new matching entry appears, a non-matching one
    // does not.
    let added = issuer
        .store
        .create_entry(
            &entry("spiffe://example.org/api", &["tpm:policy:prod"], None),
            &admin,
        )
        .unwrap();
    let second = next_sync(&mut stream).await.expect("updated state");
    let mut expected = vec![
        by_selector.id.clone(),
        by_node_id.id.clone(),
        added.id.clone(),
    ];
    expected.sort();
    assert_eq!(ids(&second), expected);

    // X509-SVID for a matching entry, over a CSR and over a bare SPKI.
    let key = p256_key();
    let csr = rcgen::CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .serialize_request(&key)
        .unwrap()
        .der()
        .to_vec();
    let svid = client
        .mint_x509_svid(pb::MintX509SvidRequest {
            entry_id: by_selector.id.clone(),
            key: Some(pb::mint_x509_svid_request::Key::Csr(csr)),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(svid.spiffe_id, "spiffe://example.org/web");
    check_x509_svid(
        &svid.chain,
        "spiffe://example.org/web",
        &bundle.x509_authorities,
        &["web.example.org"],
    );
    let (_, leaf) = x509_parser::parse_x509_certificate(&svid.chain[0]).unwrap();
    assert_eq!(leaf.public_key().raw, spki_of(&key).as_slice());
    let life = leaf.validity().not_after.timestamp() - leaf.validity().not_before.timestamp();
    assert!(
        (600..=620).contains(&life),
        "entry TTL 600 s (+ backdate), got {life}"
    );
    assert_eq!(
        svid.expires_unix_ms / 1000,
        leaf.validity().not_after.timestamp()
    );

    let svid2 = client
        .mint_x509_svid(pb::MintX509SvidRequest {
            entry_id: by_node_id.id.clone(),
            key: Some(pb::mint_x509_svid_request::Key::Spki(spki_of(&p256_key()))),
        })
        .await
        .unwrap()
        .into_inner();
    check_x509_svid(
        &svid2.chain,
        "spiffe://example.org/db",
        &bundle.x509_authorities,
        &["web.example.org"],
    );

    // Non-matching entries (and unknown ones) are refused.
    for refused in [
        &other_selector.id,
        &other_node.id,
        &"no-such-entry".to_owned(),
    ] {
        let status = client
            .mint_x509_svid(pb::MintX509SvidRequest {
                entry_id: refused.clone(),
                key: Some(pb::mint_x509_svid_request::Key::Spki(spki_of(&p256_key()))),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
        assert!(
            status.message().contains("does not match node"),
            "{status:?}"
        );
        assert!(status.message().contains(&node_id), "{status:?}");
        let status = client
            .mint_jwt_svid(pb::MintJwtSvidRequest {
                entry_id: refused.clone(),
                audience: vec!["svc".to_owned()],
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    }

    // A request without a key is refused naming the field.
    let status = client
        .mint_x509_svid(pb::MintX509SvidRequest {
            entry_id: by_selector.id.clone(),
            key: None,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("key"), "{status:?}");

    // JWT-SVID.
    let jwt = client
        .mint_jwt_svid(pb::MintJwtSvidRequest {
            entry_id: by_selector.id.clone(),
            audience: vec!["svc-a".to_owned(), "svc-b".to_owned()],
        })
        .await
        .unwrap()
        .into_inner();
    let header = jwt_part(&jwt.token, 0);
    let claims = jwt_part(&jwt.token, 1);
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["typ"], "JWT");
    assert!(kids.contains(&header["kid"].as_str().unwrap().to_owned()));
    assert_eq!(claims["sub"], "spiffe://example.org/web");
    assert_eq!(claims["aud"], serde_json::json!(["svc-a", "svc-b"]));
    let exp = claims["exp"].as_i64().unwrap();
    let iat = claims["iat"].as_i64().unwrap();
    assert_eq!(exp - iat, 300, "default JWT TTL");
    assert_eq!(jwt.expires_unix_ms / 1000, exp);

    let status = client
        .mint_jwt_svid(pb::MintJwtSvidRequest {
            entry_id: by_selector.id.clone(),
            audience: Vec::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("audience"), "{status:?}");
    let status = client
        .mint_jwt_svid(pb::MintJwtSvidRequest {
            entry_id: by_selector.id.clone(),
            audience: vec![String::new()],
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("audience"), "{status:?}");

    // Ban: the stream says so and ends; minting is refused.
    let ek = node_id.rsplit('/').next().unwrap().to_owned();
    issuer.store.ban_node(&ek, "stolen laptop", &admin).unwrap();
    let last = loop {
        let message = next_sync(&mut stream).await.expect("the ban message");
        if message.banned {
            break message;
        }
    };
    assert!(last.entries.is_empty());
    assert!(
        next_sync(&mut stream).await.is_none(),
        "stream ends after the ban"
    );
    let status = client
        .mint_x509_svid(pb::MintX509SvidRequest {
            entry_id: by_selector.id.clone(),
            key: Some(pb::mint_x509_svid_request::Key::Spki(spki_of(&p256_key()))),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(status.message().contains("banned"), "{status:?}");
    let status = client
        .mint_jwt_svid(pb::MintJwtSvidRequest {
            entry_id: by_selector.id.clone(),
            audience: vec!["svc".to_owned()],
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    // A new sync stream of a banned node: one banned message, then the end.
    let mut stream = client.sync(pb::SyncRequest {}).await.unwrap().into_inner();
    assert!(next_sync(&mut stream).await.unwrap().banned);
    assert!(next_sync(&mut stream).await.is_none());
}

/// Calls `MintJwtSvid` over `config`; `Err` when the connection or the call
/// fails.
async fn try_call(addr: SocketAddr, config: rustls::ClientConfig) -> Result<(), String> {
    let channel = channel(addr, config).await.map_err(|e| e.to_string())?;
    let mut client = IssuanceClient::new(channel);
    client
        .mint_jwt_svid(pb::MintJwtSvidRequest {
            entry_id: "any".to_owned(),
            audience: vec!["svc".to_owned()],
        })
        .await
        .map(|_| ())
        .map_err(|s| format!("{s:?}"))?;
    // Not reached for a refused client; a permission error would be Err above.
    Ok(())
}

/// The call failed in the transport (TLS handshake refused), not in a
/// handler: no gRPC status from the service.
fn assert_transport_refusal(err: &str) {
    assert!(
        err.contains("tonic::transport::Error") || err.contains("transport error"),
        "expected the TLS layer to refuse, got {err}"
    );
    assert!(
        !err.contains("PermissionDenied") && !err.contains("Unauthenticated"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_without_a_node_svid_cannot_call() {
    let ek_ca = SoftEkCa::new("Issuance Test Vendor").unwrap();
    let log = BootLog::simulate(&BootProfile::default());
    let issuer = start_issuer(&ek_ca, &log).await;
    let bundle = issuer.ca.bundle();

    // No client certificate.
    let err = try_call(issuer.issuance_addr, client_config(&bundle, None))
        .await
        .unwrap_err();
    assert_transport_refusal(&err);

    // A node-ID certificate from another CA (same trust domain name).
    let other_dir = tempfile::tempdir().unwrap();
    let other = X509Authority::open(
        X509CaConfig::new(td()),
        other_dir.path(),
        Arc::new(SystemClock),
    )
    .unwrap();
    let key = p256_key();
    let fake_node = SpiffeId::parse(&format!(
        "spiffe://example.org/rootmark/node/{}",
        "cd".repeat(32)
    ))
    .unwrap();
    let forged = other
        .mint_x509_svid(
            &fake_node,
            &rootmark_issuer::ca::WorkloadKey::from_spki_der(&spki_of(&key)).unwrap(),
            Duration::from_secs(600),
            &[],
        )
        .unwrap();
    let err = try_call(
        issuer.issuance_addr,
        client_config(&bundle, Some((&forged.chain_der, key.serialize_der()))),
    )
    .await
    .unwrap_err();
    assert_transport_refusal(&err);

    // A certificate from the right CA that is not a node SVID (a workload
    // SVID) is refused too.
    let key = p256_key();
    let workload = issuer
        .ca
        .mint_x509_svid(
            &SpiffeId::parse("spiffe://example.org/web").unwrap(),
            &rootmark_issuer::ca::WorkloadKey::from_spki_der(&spki_of(&key)).unwrap(),
            Duration::from_secs(600),
            &[],
        )
        .unwrap();
    let err = try_call(
        issuer.issuance_addr,
        client_config(&bundle, Some((&workload.chain_der, key.serialize_der()))),
    )
    .await
    .unwrap_err();
    assert_transport_refusal(&err);

    // A genuine node SVID of a node the store does not know (minted by the
    // right CA, never attested) passes TLS but is refused by the handler.
    let key = p256_key();
    let unknown = issuer
        .ca
        .mint_x509_svid(
            &fake_node,
            &rootmark_issuer::ca::WorkloadKey::from_spki_der(&spki_of(&key)).unwrap(),
            Duration::from_secs(600),
            &[],
        )
        .unwrap();
    let err = try_call(
        issuer.issuance_addr,
        client_config(&bundle, Some((&unknown.chain_der, key.serialize_der()))),
    )
    .await
    .unwrap_err();
    assert!(
        err.contains("PermissionDenied") && err.contains("not attested"),
        "{err}"
    );
}
