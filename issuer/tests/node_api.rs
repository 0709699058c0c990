//! The node attestation API end to end with real parts: a swtpm that
//! booted a simulated firmware, the attestor's TPM layer as the client
//! logic, a tonic client over real TLS (checking the issuer's SVID against
//! the bundle and its SPIFFE ID), the issuer's service, a SQLite store and
//! the CA.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hyper_util::rt::TokioIo;
use rootmark_attestor::tpm::{AkAlgorithm, EkAlgorithm, PcrSelection as AttestorSelection, Tpm};
use rootmark_issuer::ca::{SystemClock, X509Authority, X509CaConfig};
use rootmark_issuer::ek::{EkAllowList, EkRoots, EkVerifier};
use rootmark_issuer::evidence::EvidenceVerifier;
use rootmark_issuer::policy::{NodePolicyConfig, PolicySet};
use rootmark_issuer::service::tls::uri_sans;
use rootmark_issuer::service::{
    NodeApiParts, NodeAttestationService, SpiffeServerVerifier, run_node_api,
};
use rootmark_issuer::store::{Actor, AttestationQuery, Datastore, SqliteStore, verify_audit_chain};
use rootmark_issuer::tpm::TpmtPublic;
use rootmark_proto::node::v1 as pb;
use rootmark_proto::node::v1::node_attestation_client::NodeAttestationClient;
use rootmark_sdk::id::{SpiffeId, TrustDomain};
use rootmark_swtpm_tests::Swtpm;
use rootmark_swtpm_tests::boot::{Bank, BootLog, BootProfile};
use rootmark_swtpm_tests::measure;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;
use tonic::transport::{Channel, Endpoint};

/// A swtpm that booted the default profile.
struct Host {
    swtpm: Swtpm,
    log: BootLog,
}

impl Host {
    fn boot() -> Host {
        let swtpm = Swtpm::start().unwrap();
        let log = BootLog::simulate(&BootProfile::default());
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

/// The issuer: its store, CA and the address it serves on.
struct Issuer {
    _dir: tempfile::TempDir,
    store: Arc<SqliteStore>,
    store_path: std::path::PathBuf,
    ca: Arc<X509Authority>,
    addr: SocketAddr,
}

fn td() -> TrustDomain {
    TrustDomain::parse("example.org").unwrap()
}

fn issuer_id() -> SpiffeId {
    SpiffeId::parse("spiffe://example.org/rootmark/issuer").unwrap()
}

async fn start_issuer(host: &Host, policies: &[NodePolicyConfig], per_minute: u32) -> Issuer {
    start_issuer_with(host, policies, per_minute, Duration::from_secs(30)).await
}

async fn start_issuer_with(
    host: &Host,
    policies: &[NodePolicyConfig],
    per_minute: u32,
    challenge_ttl: Duration,
) -> Issuer {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open_in_dir(&dir.path().join("data")).unwrap());
    let store_path = store.path().to_path_buf();
    let ca = Arc::new(
        X509Authority::open(
            X509CaConfig::new(td()),
            &dir.path().join("ca"),
            Arc::new(SystemClock),
        )
        .unwrap(),
    );
    let verifier = EvidenceVerifier::new(
        EkVerifier::new(host.roots(), EkAllowList::empty()),
        PolicySet::compile(policies).unwrap(),
    )
    .with_challenge_lifetime(challenge_ttl);
    let service = NodeAttestationService::new(NodeApiParts {
        verifier,
        store: store.clone(),
        ca: ca.clone(),
        node_ttl: Duration::from_secs(3600),
        challenge_ttl,
        max_attestations_per_node_per_minute: per_minute,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        if let Err(e) = run_node_api(service, listener).await {
            panic!("node API stopped: {e}");
        }
    });
    Issuer {
        _dir: dir,
        store,
        store_path,
        ca,
        addr,
    }
}

/// A client that trusts `bundle` and expects the issuer to be `expected`.
async fn connect(
    addr: SocketAddr,
    bundle: &[Vec<u8>],
    expected: SpiffeId,
) -> Result<NodeAttestationClient<Channel>, tonic::transport::Error> {
    let config = SpiffeServerVerifier::new(bundle, expected)
        .unwrap()
        .client_config()
        .unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let channel = Endpoint::from_shared(format!("http://{addr}"))
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
        .await?;
    Ok(NodeAttestationClient::new(channel).max_decoding_message_size(4 << 20))
}

/// The attestor's side of one node: TPM objects and its Hello.
struct Node {
    tpm: Tpm,
    ak: rootmark_attestor::tpm::AttestationKey,
    hello: pb::Hello,
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
    let hello = pb::Hello {
        ek_certificate: endorsement.certificate.unwrap_or_default(),
        ek_public: endorsement.public,
        ak_public: ak.public_bytes().unwrap(),
        node_key_public: node_key.public_bytes().unwrap(),
        node_key_certify_info: certification.attest,
        node_key_certify_signature: certification.signature,
        node_key_pcrs: vec![0, 2, 4, 7],
        csr: Vec::new(),
    };
    Node { tpm, ak, hello }
}

fn ek_hash(hello: &pb::Hello) -> String {
    let ek = TpmtPublic::from_tpm2b(&hello.ek_public).unwrap();
    hex::encode(rootmark_issuer::tpm::HashAlg::Sha256.hash(ek.tpmt_bytes()))
}

/// Strips a TPM2B's size prefix, checking it.
fn payload(tpm2b: &[u8]) -> &[u8] {
    let len = usize::from(u16::from_be_bytes([tpm2b[0], tpm2b[1]]));
    assert_eq!(len + 2, tpm2b.len(), "TPM2B size prefix");
    &tpm2b[2..]
}

fn answer(
    node: &mut Node,
    challenge: &pb::Challenge,
    log: Option<&BootLog>,
) -> pb::ChallengeResponse {
    let secret = node
        .tpm
        .activate_credential(
            &node.ak,
            payload(&challenge.credential_blob),
            payload(&challenge.encrypted_secret),
        )
        .unwrap();
    let mut selection = AttestorSelection::new();
    for sel in &challenge.pcr_selection {
        let bank = match pb::HashAlgorithm::try_from(sel.hash).unwrap() {
            pb::HashAlgorithm::Sha1 => "sha1",
            pb::HashAlgorithm::Sha256 => "sha256",
            pb::HashAlgorithm::Sha384 => "sha384",
            pb::HashAlgorithm::Unspecified => panic!("unspecified bank"),
        };
        let pcrs: Vec<u8> = sel.pcrs.iter().map(|&p| p as u8).collect();
        selection = selection.with(bank.parse().unwrap(), &pcrs).unwrap();
    }
    let quote = node
        .tpm
        .quote(&node.ak, &selection, &challenge.nonce)
        .unwrap();
    let mut banks = Vec::new();
    for (bank, values) in &quote.pcrs.banks {
        let hash = match bank.name() {
            "sha1" => pb::HashAlgorithm::Sha1,
            "sha256" => pb::HashAlgorithm::Sha256,
            "sha384" => pb::HashAlgorithm::Sha384,
            other => panic!("bank {other}"),
        };
        banks.push(pb::PcrBank {
            hash: hash as i32,
            values: values
                .iter()
                .map(|(i, v)| (u32::from(*i), v.clone()))
                .collect(),
        });
    }
    pb::ChallengeResponse {
        activated_secret: secret.to_vec(),
        quote_attest: quote.attest,
        quote_signature: quote.signature,
        pcr_banks: banks,
        event_log: log.map(BootLog::to_bytes).unwrap_or_default(),
    }
}

fn request(step: pb::attest_request::Step) -> pb::AttestRequest {
    pb::AttestRequest { step: Some(step) }
}

/// One attestation over the API.
async fn attest(
    client: &mut NodeAttestationClient<Channel>,
    node: &mut Node,
    log: Option<&BootLog>,
) -> Result<pb::AttestResult, tonic::Status> {
    let (tx, rx) = mpsc::channel(4);
    tx.send(request(pb::attest_request::Step::Hello(node.hello.clone())))
        .await
        .unwrap();
    let mut responses = client.attest(ReceiverStream::new(rx)).await?.into_inner();
    let challenge = match responses.message().await?.and_then(|m| m.step) {
        Some(pb::attest_response::Step::Challenge(c)) => c,
        other => panic!("expected a challenge, got {other:?}"),
    };
    assert_eq!(challenge.nonce.len(), 32);
    assert!(challenge.nonce_expires_unix_ms > 0);
    let response = answer(node, &challenge, log);
    tx.send(request(pb::attest_request::Step::ChallengeResponse(
        response,
    )))
    .await
    .unwrap();
    let result = match responses.message().await?.and_then(|m| m.step) {
        Some(pb::attest_response::Step::Result(r)) => r,
        other => panic!("expected a result, got {other:?}"),
    };
    assert!(
        responses.message().await?.is_none(),
        "stream closes after the result"
    );
    Ok(result)
}

fn good_policy(log: &BootLog) -> NodePolicyConfig {
    let pcrs = log.expected_pcrs(Bank::Sha256);
    toml::from_str(&format!(
        "name = \"prod\"\nrequire_secure_boot = true\n[pcrs.sha256]\n\"4\" = [\"{}\"]\n\"7\" = [\"{}\"]\n",
        hex::encode(&pcrs[&4]),
        hex::encode(&pcrs[&7]),
    ))
    .unwrap()
}

/// A policy pinning PCR 4 without needing the event log.
fn pcr4_policy(log: &BootLog) -> NodePolicyConfig {
    let pcrs = log.expected_pcrs(Bank::Sha256);
    toml::from_str(&format!(
        "name = \"pinned\"\nrequire_event_log = false\n[pcrs.sha256]\n\"4\" = [\"{}\"]\n",
        hex::encode(&pcrs[&4]),
    ))
    .unwrap()
}

fn check_node_svid(result: &pb::AttestResult, node: &Node) {
    let ek = ek_hash(&node.hello);
    let expected = format!("spiffe://example.org/rootmark/node/{ek}");
    assert_eq!(result.spiffe_id, expected);
    let leaf = &result.node_svid_chain[0];
    assert_eq!(uri_sans(leaf).unwrap(), vec![expected.clone()]);
    // The leaf certifies the TPM-resident node key.
    let (_, cert) = x509_parser::parse_x509_certificate(leaf).unwrap();
    let node_key = TpmtPublic::from_tpm2b(&node.hello.node_key_public).unwrap();
    assert_eq!(
        cert.public_key().subject_public_key.data.as_ref(),
        node_key.ecc_point().unwrap().as_slice()
    );
    // It chains to the trust bundle (and is the right SPIFFE ID).
    let verifier =
        SpiffeServerVerifier::new(&result.trust_bundle, SpiffeId::parse(&expected).unwrap())
            .unwrap();
    let intermediates: Vec<CertificateDer<'_>> = result.node_svid_chain[1..]
        .iter()
        .map(|c| CertificateDer::from(c.as_slice()))
        .collect();
    verifier
        .verify_server_cert(
            &CertificateDer::from(leaf.as_slice()),
            &intermediates,
            &ServerName::try_from("node.invalid").unwrap(),
            &[],
            UnixTime::now(),
        )
        .unwrap();
    let now_ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert!(result.renew_after_unix_ms > now_ms);
    assert!(result.expires_unix_ms > result.renew_after_unix_ms);
    let half = (result.expires_unix_ms - now_ms) / 2;
    assert!((result.renew_after_unix_ms - now_ms - half).abs() < 30_000);
    assert!(
        result
            .node_selectors
            .contains(&format!("tpm:ek-sha256:{ek}"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn good_node_gets_a_node_svid_and_renews_with_a_fresh_quote() {
    let host = Host::boot();
    let issuer = start_issuer(&host, &[good_policy(&host.log)], 6).await;
    let mut client = connect(issuer.addr, &issuer.ca.bundle(), issuer_id())
        .await
        .unwrap();
    let mut node = node(&host);

    let first = attest(&mut client, &mut node, Some(&host.log))
        .await
        .unwrap();
    check_node_svid(&first, &node);
    assert!(first.node_selectors.contains(&"tpm:policy:prod".to_owned()));

    // Renewal: a fresh challenge and a fresh quote.
    let second = attest(&mut client, &mut node, Some(&host.log))
        .await
        .unwrap();
    check_node_svid(&second, &node);
    assert_ne!(first.node_svid_chain[0], second.node_svid_chain[0]);

    let ek = ek_hash(&node.hello);
    let accepted = issuer
        .store
        .list_attestations(&AttestationQuery {
            ek_sha256: Some(ek.clone()),
            accepted: Some(true),
            ..AttestationQuery::default()
        })
        .unwrap();
    assert_eq!(accepted.len(), 2);
    assert_eq!(
        accepted[0].spiffe_id.as_deref(),
        Some(first.spiffe_id.as_str())
    );
    assert!(
        accepted[0]
            .peer
            .as_deref()
            .unwrap_or("")
            .starts_with("127.0.0.1:")
    );
    let node_row = issuer.store.node_by_ek(&ek).unwrap().unwrap();
    assert!(node_row.clock.is_some());
    let summary = verify_audit_chain(&issuer.store_path).unwrap();
    assert!(summary.records >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_boot_pcr_is_refused_with_the_policy_rule_and_audited() {
    let host = Host::boot();
    let issuer = start_issuer(&host, &[pcr4_policy(&host.log)], 6).await;
    let mut client = connect(issuer.addr, &issuer.ca.bundle(), issuer_id())
        .await
        .unwrap();
    let mut good = node(&host);
    attest(&mut client, &mut good, None).await.unwrap();

    // Something gets measured into PCR 4 after boot. The old node key can no
    // longer be used, so the node attests again with a new one.
    measure::extend_data(good.tpm.context_mut(), 4, b"unexpected boot application").unwrap();
    drop(good);
    let mut tampered = node(&host);
    let status = attest(&mut client, &mut tampered, None).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(
        status.message().contains("pinned: pcrs.sha256.4"),
        "{}",
        status.message()
    );

    let refused = issuer
        .store
        .list_attestations(&AttestationQuery {
            accepted: Some(false),
            ..AttestationQuery::default()
        })
        .unwrap();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].failed_check.as_deref(), Some("policy"));
    assert!(
        refused[0]
            .reason
            .as_deref()
            .unwrap()
            .contains("pcrs.sha256.4")
    );
    verify_audit_chain(&issuer.store_path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn banned_node_is_refused_and_audited() {
    let host = Host::boot();
    let issuer = start_issuer(&host, &[good_policy(&host.log)], 6).await;
    let mut client = connect(issuer.addr, &issuer.ca.bundle(), issuer_id())
        .await
        .unwrap();
    let mut node = node(&host);
    attest(&mut client, &mut node, Some(&host.log))
        .await
        .unwrap();
    let ek = ek_hash(&node.hello);
    issuer
        .store
        .ban_node(&ek, "stolen laptop", &Actor::Admin { uid: 0 })
        .unwrap();

    let status = attest(&mut client, &mut node, Some(&host.log))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(
        status.message().contains("node is banned"),
        "{}",
        status.message()
    );
    let refused = issuer
        .store
        .list_attestations(&AttestationQuery {
            ek_sha256: Some(ek),
            accepted: Some(false),
            ..AttestationQuery::default()
        })
        .unwrap();
    assert_eq!(refused.len(), 1);
    assert!(
        refused[0]
            .reason
            .as_deref()
            .unwrap()
            .contains("node is banned")
    );
    verify_audit_chain(&issuer.store_path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_errors_rate_limit_and_issuer_identity() {
    let host = Host::boot();
    let issuer = start_issuer(&host, &[good_policy(&host.log)], 2).await;
    let bundle = issuer.ca.bundle();

    // The client refuses an issuer whose SVID is not the issuer's ID…
    let wrong = SpiffeId::parse("spiffe://example.org/rootmark/someone-else").unwrap();
    let mut impostor = connect(issuer.addr, &bundle, wrong).await;
    if let Ok(client) = impostor.as_mut() {
        // Connection may be lazy in the handshake; the first call fails then.
        let (_tx, rx) = mpsc::channel::<pb::AttestRequest>(1);
        assert!(client.attest(ReceiverStream::new(rx)).await.is_err());
    }
    // …and one that does not chain to its bundle.
    let other_ca = X509Authority::new(X509CaConfig::new(td()), Arc::new(SystemClock)).unwrap();
    let mut stranger = connect(issuer.addr, &other_ca.bundle(), issuer_id()).await;
    if let Ok(client) = stranger.as_mut() {
        let (_tx, rx) = mpsc::channel::<pb::AttestRequest>(1);
        assert!(client.attest(ReceiverStream::new(rx)).await.is_err());
    }

    let mut client = connect(issuer.addr, &bundle, issuer_id()).await.unwrap();

    // The first message must be a Hello.
    let (tx, rx) = mpsc::channel(4);
    tx.send(request(pb::attest_request::Step::ChallengeResponse(
        pb::ChallengeResponse::default(),
    )))
    .await
    .unwrap();
    let status = match client.attest(ReceiverStream::new(rx)).await {
        Err(status) => status,
        Ok(response) => response.into_inner().message().await.unwrap_err(),
    };
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("hello"), "{}", status.message());

    // Rate limit: two attestations per minute for this node.
    let mut node = node(&host);
    attest(&mut client, &mut node, Some(&host.log))
        .await
        .unwrap();
    attest(&mut client, &mut node, Some(&host.log))
        .await
        .unwrap();
    let status = attest(&mut client, &mut node, Some(&host.log))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_audited_or_bounded() {
    let host = Host::boot();
    let issuer = start_issuer_with(&host, &[], 6, Duration::from_secs(2)).await;
    let mut client = connect(issuer.addr, &issuer.ca.bundle(), issuer_id())
        .await
        .unwrap();

    // A Hello whose EK does not parse is refused by the verifier and audited.
    let mut node = node(&host);
    let ek_public = std::mem::replace(&mut node.hello.ek_public, vec![0, 3, 1, 2, 3]);
    let status = attest(&mut client, &mut node, None).await.unwrap_err();
    node.hello.ek_public = ek_public;
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let refused = issuer
        .store
        .list_attestations(&AttestationQuery {
            accepted: Some(false),
            ..AttestationQuery::default()
        })
        .unwrap();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].failed_check.as_deref(), Some("ek_public"));

    // A node that does not answer the challenge in time.
    let (tx, rx) = mpsc::channel(4);
    tx.send(request(pb::attest_request::Step::Hello(node.hello.clone())))
        .await
        .unwrap();
    let mut responses = client
        .attest(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    assert!(matches!(
        responses.message().await.unwrap().and_then(|m| m.step),
        Some(pb::attest_response::Step::Challenge(_))
    ));
    let status = responses.message().await.unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(
        status.message().contains("challenge_response"),
        "{}",
        status.message()
    );
    drop(tx);

    // A first message without a step (an old peer's retired `Renew`, field
    // 3, decodes to this) is refused as a protocol error naming hello.
    let (tx, rx) = mpsc::channel(4);
    tx.send(pb::AttestRequest { step: None }).await.unwrap();
    let status = match client.attest(ReceiverStream::new(rx)).await {
        Err(status) => status,
        Ok(response) => response.into_inner().message().await.unwrap_err(),
    };
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("hello"), "{}", status.message());
    drop(tx);

    // A message over the size limit is refused before it is decoded.
    let mut huge = node.hello.clone();
    huge.ek_certificate = vec![0x30; 4 << 20];
    let (tx, rx) = mpsc::channel(4);
    tx.send(request(pb::attest_request::Step::Hello(huge)))
        .await
        .unwrap();
    let status = match client.attest(ReceiverStream::new(rx)).await {
        Err(status) => status,
        Ok(response) => response.into_inner().message().await.unwrap_err(),
    };
    assert_ne!(status.code(), Code::Ok, "{status:?}");
    drop(tx);
    verify_audit_chain(&issuer.store_path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_builds_from_the_issuer_config() {
    let host = Host::boot();
    let dir = tempfile::tempdir().unwrap();
    let roots = dir.path().join("ek-roots");
    std::fs::create_dir(&roots).unwrap();
    std::fs::copy(host.swtpm.ek_root_ca_pem_path(), roots.join("root.pem")).unwrap();
    std::fs::copy(host.swtpm.ek_issuer_ca_pem_path(), roots.join("issuer.pem")).unwrap();
    let toml = format!(
        "data_dir = {:?}\n[attestation]\nek_roots = {:?}\n",
        dir.path().join("data"),
        roots
    );
    let config =
        rootmark_issuer::config::IssuerConfig::parse(&toml, std::path::Path::new("t.toml"))
            .unwrap();
    let service = NodeAttestationService::from_config(&config).unwrap();
    let bundle = service.ca().bundle();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(run_node_api(service, listener));
    let mut client = connect(addr, &bundle, issuer_id()).await.unwrap();
    let mut node = node(&host);
    // No node policy configured: identity-only attestation is accepted.
    let result = attest(&mut client, &mut node, Some(&host.log))
        .await
        .unwrap();
    check_node_svid(&result, &node);
}
