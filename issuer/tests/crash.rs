//! Crash safety of the datastore (issue 4): the real `rootmark-issuer run`
//! process is killed with SIGKILL while 200 nodes attest concurrently over
//! TLS, and the store it leaves behind is then checked offline.
//!
//! The nodes are software TPMs (`SoftTpm`: software-held EK and AK, EK
//! certificate from a test manufacturer CA, booted with a simulated measured
//! boot and sending its event log), so the issuer runs its full verification
//! path and cannot tell them from real TPMs. The kill lands once some
//! attestations have been answered and the rest are still in flight.
//!
//! What this proves: after the kill, `rootmark-issuer audit verify` (audit
//! chain plus every table against the audit log) passes, the chain verifies
//! read-only in-process too, and every attestation whose `AttestResult`
//! reached a node is in the store — an accepted attestation row for that
//! node's EK, the node row pointing at it, and an `attestation` audit record
//! for it. An answer never gets ahead of the durable record.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt as _;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use hyper_util::rt::TokioIo;
use rootmark_issuer::service::SpiffeServerVerifier;
use rootmark_issuer::service::tls::{provider, uri_sans};
use rootmark_issuer::store::{
    AttestationQuery, AuditRecord, Datastore as _, SqliteStore, export_audit, verify_audit_chain,
    verify_store,
};
use rootmark_proto::node::v1 as pb;
use rootmark_proto::node::v1::node_attestation_client::NodeAttestationClient;
use rootmark_sdk::id::SpiffeId;
use rootmark_swtpm_tests::boot::{Bank, BootLog, BootProfile};
use rootmark_swtpm_tests::soft_tpm::{SoftAkAlgorithm, SoftEkCa, SoftTpm};
use rustls::pki_types::ServerName;
use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};

const BIN: &str = env!("CARGO_BIN_EXE_rootmark-issuer");

/// Concurrent attestations.
const NODES: usize = 200;

/// The issuer is killed as soon as this many attestations were answered.
const KILL_AFTER: usize = 40;

/// How long one attestation may take before the test gives up on it.
const ATTEST_TIMEOUT: Duration = Duration::from_secs(40);

/// The running issuer process, SIGKILLed on drop if still there.
struct Issuer {
    child: Option<Child>,
    config: PathBuf,
    data_dir: PathBuf,
    node_addr: SocketAddr,
    /// Every line the issuer wrote to stderr.
    log: Arc<Mutex<Vec<String>>>,
}

impl Drop for Issuer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Removes ANSI colour sequences (`ESC [ ... letter`) from a log line.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The node API address from the issuer's `rootmark-issuer running` line.
fn listen_address(line: &str) -> Option<SocketAddr> {
    if !line.contains("rootmark-issuer running") {
        return None;
    }
    let start = line.find(" listen=")? + " listen=".len();
    line[start..].split_whitespace().next()?.parse().ok()
}

/// The node policy every soft node satisfies: Secure Boot on (from the event
/// log) and the simulated boot's PCR 4 and 7.
fn policy_toml(log: &BootLog) -> String {
    let pcrs = log.expected_pcrs(Bank::Sha256);
    format!(
        "[[node_policy]]\nname = \"prod\"\nrequire_secure_boot = true\n\
         [node_policy.pcrs.sha256]\n\"4\" = [\"{}\"]\n\"7\" = [\"{}\"]\n",
        hex::encode(&pcrs[&4]),
        hex::encode(&pcrs[&7]),
    )
}

/// Writes `issuer.toml` under `dir` and starts `rootmark-issuer run` on a
/// free loopback port; returns once it serves.
fn start_issuer(dir: &Path, ek_ca: &SoftEkCa, log: &BootLog) -> Issuer {
    let roots = dir.join("ek-roots");
    std::fs::create_dir_all(&roots).unwrap();
    ek_ca.write_roots(&roots).unwrap();
    let data_dir = dir.join("data");
    let socket = dir.join("admin.sock");
    let uid = std::fs::metadata(dir).unwrap().uid();
    let config = dir.join("issuer.toml");
    std::fs::write(
        &config,
        format!(
            "trust_domain = \"example.org\"\nlisten = \"127.0.0.1:0\"\n\
             issuance_listen = \"127.0.0.1:0\"\ndata_dir = {data_dir:?}\n\
             admin_socket = {socket:?}\nadmin_uid = {uid}\n\n\
             [attestation]\nek_roots = {roots:?}\nchallenge_ttl = \"60s\"\n\
             max_attestations_per_node_per_minute = 1000\n\n{}",
            policy_toml(log)
        ),
    )
    .unwrap();

    let mut child = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&config)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn rootmark-issuer run");
    let stderr = child.stderr.take().unwrap();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    {
        let lines = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let line = strip_ansi(&line);
                if let Some(addr) = listen_address(&line) {
                    let _ = addr_tx.send(addr);
                }
                lines.lock().unwrap().push(line);
            }
        });
    }
    let mut issuer = Issuer {
        child: Some(child),
        config,
        data_dir,
        node_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        log: lines,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    issuer.node_addr = loop {
        if let Ok(addr) = addr_rx.recv_timeout(Duration::from_millis(100)) {
            break addr;
        }
        if let Ok(Some(status)) = issuer.child.as_mut().unwrap().try_wait() {
            panic!(
                "rootmark-issuer run exited early ({status}):\n{}",
                issuer.log.lock().unwrap().join("\n")
            );
        }
        assert!(
            Instant::now() < deadline,
            "the issuer never logged its listen address:\n{}",
            issuer.log.lock().unwrap().join("\n")
        );
    };
    assert!(socket.exists(), "admin socket missing once running");
    issuer
}

impl Issuer {
    /// The X.509 authorities of `bundle show`, DER.
    fn bundle(&self) -> Vec<Vec<u8>> {
        let out = Command::new(BIN)
            .args(["bundle", "show", "--output", "json"])
            .env("ROOTMARK_ISSUER_CONFIG", &self.config)
            .output()
            .expect("bundle show");
        assert!(
            out.status.success(),
            "bundle show: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bundle: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        bundle["x509_authorities"]
            .as_array()
            .expect("x509_authorities")
            .iter()
            .map(|pem| {
                let b64: String = pem
                    .as_str()
                    .unwrap()
                    .lines()
                    .filter(|l| !l.starts_with("-----"))
                    .collect();
                base64::engine::general_purpose::STANDARD
                    .decode(b64.trim())
                    .unwrap()
            })
            .collect()
    }
}

/// A soft TPM that booted the simulated log, with its `Hello`.
struct SoftNode {
    tpm: SoftTpm,
    hello: pb::Hello,
    ek_sha256: String,
}

fn soft_node(ek_ca: &SoftEkCa, log: &BootLog) -> SoftNode {
    let mut tpm = SoftTpm::manufacture(ek_ca, SoftAkAlgorithm::EccP256).unwrap();
    tpm.boot(log);
    let node_key = tpm.create_node_key(&[0, 2, 4, 7]);
    let (certify, certify_sig) = tpm.certify_node_key(b"");
    let ek_public = tpm.ek_public();
    let ek_sha256 = hex::encode(Sha256::digest(&ek_public[2..]));
    let hello = pb::Hello {
        ek_certificate: tpm.ek_certificate().to_vec(),
        ek_public,
        ak_public: tpm.ak_public(),
        node_key_public: node_key,
        node_key_certify_info: certify,
        node_key_certify_signature: certify_sig,
        node_key_pcrs: vec![0, 2, 4, 7],
        csr: Vec::new(),
    };
    SoftNode {
        tpm,
        hello,
        ek_sha256,
    }
}

/// `count` soft nodes, manufactured on two threads (RSA EK generation
/// dominates).
fn soft_nodes(ek_ca: &SoftEkCa, log: &BootLog, count: usize) -> Vec<SoftNode> {
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..2)
            .map(|w| {
                scope.spawn(move || {
                    (0..count)
                        .filter(|i| i % 2 == w)
                        .map(|_| soft_node(ek_ca, log))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    })
}

fn tpm2b_payload(tpm2b: &[u8]) -> Result<&[u8], String> {
    let len = usize::from(u16::from_be_bytes([
        *tpm2b.first().ok_or("empty TPM2B")?,
        *tpm2b.get(1).ok_or("short TPM2B")?,
    ]));
    if len + 2 != tpm2b.len() {
        return Err(format!("TPM2B size prefix {len} for {} bytes", tpm2b.len()));
    }
    Ok(&tpm2b[2..])
}

/// A client config that checks the issuer's SVID against `bundle`.
fn client_config(bundle: &[Vec<u8>]) -> Arc<rustls::ClientConfig> {
    let issuer_id = SpiffeId::parse("spiffe://example.org/rootmark/issuer").unwrap();
    let verifier = Arc::new(SpiffeServerVerifier::new(bundle, issuer_id).unwrap());
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(config)
}

/// A gRPC channel over TLS to `addr`.
async fn channel(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> Result<Channel, tonic::transport::Error> {
    let connector = tokio_rustls::TlsConnector::from(config);
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

/// Where an attestation that did not get its result stopped.
#[derive(Debug)]
struct Failure {
    stage: &'static str,
    error: String,
    /// A gRPC status code, when the failure was one.
    code: Option<tonic::Code>,
    /// Whether the issuer had already been killed when it was seen.
    after_kill: bool,
}

/// One node attestation: Hello, Challenge, ActivateCredential + Quote,
/// ChallengeResponse, AttestResult.
async fn attest(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    node: &SoftNode,
    event_log: Vec<u8>,
    killed: &AtomicBool,
) -> Result<pb::AttestResult, Failure> {
    let fail = |stage: &'static str, error: String, code: Option<tonic::Code>| Failure {
        stage,
        error,
        code,
        after_kill: killed.load(Ordering::SeqCst),
    };
    let status =
        |stage: &'static str| move |s: tonic::Status| fail(stage, s.to_string(), Some(s.code()));
    let channel = channel(addr, config)
        .await
        .map_err(|e| fail("connect", format!("{e:?}"), None))?;
    let mut client = NodeAttestationClient::new(channel).max_decoding_message_size(4 << 20);
    let (tx, rx) = mpsc::channel(4);
    tx.send(pb::AttestRequest {
        step: Some(pb::attest_request::Step::Hello(node.hello.clone())),
    })
    .await
    .map_err(|e| fail("hello", e.to_string(), None))?;
    let mut responses = client
        .attest(ReceiverStream::new(rx))
        .await
        .map_err(status("attest"))?
        .into_inner();
    let challenge = match responses.message().await.map_err(status("challenge"))? {
        Some(pb::AttestResponse {
            step: Some(pb::attest_response::Step::Challenge(c)),
        }) => c,
        other => return Err(fail("challenge", format!("got {other:?}"), None)),
    };
    let blob =
        tpm2b_payload(&challenge.credential_blob).map_err(|e| fail("credential blob", e, None))?;
    let secret = tpm2b_payload(&challenge.encrypted_secret)
        .map_err(|e| fail("encrypted secret", e, None))?;
    let activated = node
        .tpm
        .activate_credential(blob, secret)
        .map_err(|e| fail("activate credential", e.to_string(), None))?;
    let mut selection: Vec<(Bank, Vec<u32>)> = Vec::new();
    for sel in &challenge.pcr_selection {
        let bank = match pb::HashAlgorithm::try_from(sel.hash) {
            Ok(pb::HashAlgorithm::Sha1) => Bank::Sha1,
            Ok(pb::HashAlgorithm::Sha256) => Bank::Sha256,
            other => return Err(fail("pcr selection", format!("bank {other:?}"), None)),
        };
        selection.push((bank, sel.pcrs.clone()));
    }
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
        activated_secret: activated,
        quote_attest: quote,
        quote_signature: quote_sig,
        pcr_banks: banks,
        event_log,
    };
    tx.send(pb::AttestRequest {
        step: Some(pb::attest_request::Step::ChallengeResponse(response)),
    })
    .await
    .map_err(|e| fail("challenge response", e.to_string(), None))?;
    match responses.message().await.map_err(status("result"))? {
        Some(pb::AttestResponse {
            step: Some(pb::attest_response::Step::Result(r)),
        }) => Ok(r),
        other => Err(fail("result", format!("got {other:?}"), None)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_200_concurrent_attestations_keeps_a_verifiable_store() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let ek_ca = SoftEkCa::new("Rootmark Crash Test TPM Vendor").unwrap();
    let log = BootLog::simulate(&BootProfile::default());
    let event_log = log.to_bytes();

    let nodes = tokio::task::block_in_place(|| soft_nodes(&ek_ca, &log, NODES));
    eprintln!(
        "{NODES} soft TPMs manufactured in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let mut issuer = start_issuer(dir.path(), &ek_ca, &log);
    let config = client_config(&issuer.bundle());
    eprintln!(
        "issuer listening on {} after {:.1} s",
        issuer.node_addr,
        started.elapsed().as_secs_f64()
    );

    // Launch every attestation at once.
    let killed = Arc::new(AtomicBool::new(false));
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let load_started = Instant::now();
    for (index, node) in nodes.into_iter().enumerate() {
        let (config, killed, done_tx, event_log) = (
            Arc::clone(&config),
            Arc::clone(&killed),
            done_tx.clone(),
            event_log.clone(),
        );
        let addr = issuer.node_addr;
        tokio::spawn(async move {
            let outcome = match tokio::time::timeout(
                ATTEST_TIMEOUT,
                attest(addr, config, &node, event_log, &killed),
            )
            .await
            {
                Ok(outcome) => outcome,
                Err(_) => Err(Failure {
                    stage: "timeout",
                    error: format!("no outcome within {ATTEST_TIMEOUT:?}"),
                    code: None,
                    after_kill: killed.load(Ordering::SeqCst),
                }),
            };
            let _ = done_tx.send((index, node.ek_sha256, outcome));
        });
    }
    drop(done_tx);

    // Collect outcomes; SIGKILL the issuer once KILL_AFTER were answered.
    let mut answered: BTreeMap<usize, (String, pb::AttestResult)> = BTreeMap::new();
    let mut failures: Vec<(usize, Failure)> = Vec::new();
    let mut killed_at = None;
    while let Some((index, ek_sha256, outcome)) = done_rx.recv().await {
        match outcome {
            Ok(result) => {
                answered.insert(index, (ek_sha256, result));
            }
            Err(failure) => failures.push((index, failure)),
        }
        if killed_at.is_none() && answered.len() >= KILL_AFTER {
            killed.store(true, Ordering::SeqCst);
            issuer
                .child
                .as_mut()
                .unwrap()
                .kill()
                .expect("SIGKILL the issuer");
            killed_at = Some(load_started.elapsed());
            eprintln!(
                "SIGKILL after {:.2} s of load: {} answered, {} failed so far",
                load_started.elapsed().as_secs_f64(),
                answered.len(),
                failures.len()
            );
        }
    }
    let mut child = issuer.child.take().unwrap();
    let status = child.wait().unwrap();
    eprintln!(
        "load over after {:.2} s: {} answered, {} failed; issuer exit: {status}",
        load_started.elapsed().as_secs_f64(),
        answered.len(),
        failures.len()
    );

    // The kill really happened mid-load.
    assert!(
        killed_at.is_some(),
        "fewer than {KILL_AFTER} attestations were answered, so the issuer was never killed; \
         failures: {failures:#?}"
    );
    assert_eq!(
        status.signal(),
        Some(9),
        "the issuer did not die of SIGKILL: {status}"
    );
    let before_kill: Vec<&(usize, Failure)> =
        failures.iter().filter(|(_, f)| !f.after_kill).collect();
    assert!(
        before_kill.is_empty(),
        "attestations failed before the kill: {before_kill:#?}"
    );
    assert!(
        answered.len() < NODES && !failures.is_empty(),
        "no attestation was in flight at the kill ({} answered): make the load bigger \
         or kill earlier",
        answered.len()
    );
    let mut by_stage: BTreeMap<String, (usize, &str)> = BTreeMap::new();
    for (_, failure) in &failures {
        let key = format!("{} ({:?})", failure.stage, failure.code);
        by_stage.entry(key).or_insert((0, &failure.error)).0 += 1;
    }
    for (stage, (count, example)) in &by_stage {
        eprintln!("in flight at the kill: {count} stopped at {stage}, e.g. {example}");
    }
    // A dead issuer cannot refuse: no failure may be a verdict.
    assert!(
        failures
            .iter()
            .all(|(_, f)| f.code != Some(tonic::Code::PermissionDenied)),
        "an attestation was refused: {failures:#?}"
    );

    // Every answer names the node of its EK.
    for (ek_sha256, result) in answered.values() {
        let expected = format!("spiffe://example.org/rootmark/node/{ek_sha256}");
        assert_eq!(result.spiffe_id, expected);
        assert_eq!(
            uri_sans(&result.node_svid_chain[0]).unwrap(),
            vec![expected.clone()]
        );
    }

    // Nothing in the issuer's own log says it panicked before the kill.
    let issuer_log = issuer.log.lock().unwrap().clone();
    let panics: Vec<&String> = issuer_log
        .iter()
        .filter(|l| l.contains("panicked"))
        .collect();
    assert!(panics.is_empty(), "the issuer panicked: {panics:#?}");
    for line in issuer_log.iter().filter(|l| l.contains("ERROR")) {
        eprintln!("issuer error: {line}");
    }

    // 1. The offline verifier, as an operator would run it.
    let verify = Command::new(BIN)
        .args(["audit", "verify", "--config"])
        .arg(&issuer.config)
        .output()
        .expect("audit verify");
    assert!(
        verify.status.success(),
        "audit verify failed after the crash: {}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    eprintln!(
        "audit verify: {}",
        String::from_utf8_lossy(&verify.stdout).trim()
    );

    // 2. The same read-only, in process: chain, tables against the log, and
    //    the attestation audit records.
    let db = SqliteStore::path_in(&issuer.data_dir);
    let summary = verify_audit_chain(&db).expect("audit chain verifies after SIGKILL");
    let report = verify_store(&db).expect("store matches its audit log after SIGKILL");
    let mut export = Vec::new();
    export_audit(&db, &mut export).expect("audit export after SIGKILL");
    let records: Vec<AuditRecord> = String::from_utf8(export)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(records.len() as u64, summary.records);
    let mut audited: HashMap<String, Vec<(i64, bool)>> = HashMap::new();
    for record in records.iter().filter(|r| r.kind == "attestation") {
        let payload: serde_json::Value = serde_json::from_str(&record.payload).unwrap();
        audited.entry(record.subject.clone()).or_default().push((
            payload["attestation_id"].as_i64().expect("attestation_id"),
            payload["verdict"]["accepted"] == true,
        ));
    }

    // 3. Every answered attestation is in the store.
    let store = SqliteStore::open(&db).expect("reopen the store after SIGKILL");
    for (index, (ek_sha256, result)) in &answered {
        let rows = store
            .list_attestations(&AttestationQuery {
                ek_sha256: Some(ek_sha256.clone()),
                ..AttestationQuery::default()
            })
            .unwrap();
        assert_eq!(
            rows.len(),
            1,
            "node {index} ({}) was answered but has {} attestation rows",
            result.spiffe_id,
            rows.len()
        );
        let row = &rows[0];
        assert!(row.accepted, "node {index}: answered but recorded refused");
        assert_eq!(row.spiffe_id.as_deref(), Some(result.spiffe_id.as_str()));
        let node = store
            .node(&result.spiffe_id)
            .unwrap()
            .unwrap_or_else(|| panic!("node {index} ({}) missing", result.spiffe_id));
        assert_eq!(&node.ek_sha256, ek_sha256);
        assert_eq!(node.last_attestation_id, row.id);
        assert_eq!(
            audited.get(&result.spiffe_id).map(Vec::as_slice),
            Some(&[(row.id, true)][..]),
            "node {index} ({}): no accepted attestation audit record for row {}",
            result.spiffe_id,
            row.id
        );
    }

    // What the store holds beyond the answers: attestations recorded whose
    // answer the kill cut off (allowed), and nothing refused.
    let all = store
        .list_attestations(&AttestationQuery {
            limit: u32::MAX,
            ..AttestationQuery::default()
        })
        .unwrap();
    let accepted = all.iter().filter(|a| a.accepted).count();
    assert_eq!(accepted, all.len(), "refused attestations in the store");
    assert!(accepted >= answered.len());
    assert_eq!(report.attestations, all.len() as u64);
    assert_eq!(store.list_nodes().unwrap().len(), accepted);
    eprintln!(
        "store: {} audit records, {} attestations ({} answered, {} recorded but cut off \
         before the answer), {} nodes; test took {:.1} s",
        summary.records,
        all.len(),
        answered.len(),
        accepted - answered.len(),
        report.nodes,
        started.elapsed().as_secs_f64()
    );
}
