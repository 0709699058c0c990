//! The attestor under failure, end to end with real processes: the issuer
//! dies and comes back, the attestor restarts from its sealed cache, the
//! node SVID renews with fresh quotes, the host boots into a changed boot
//! chain, and the node is banned.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::time::{Duration, Instant, SystemTime};

use rootmark_attestor::tpm::Tpm;
use rootmark_swtpm_tests::cluster::{Cluster, current_uid};
use rootmark_swtpm_tests::devenv::DevEnvOptions;
use rootmark_swtpm_tests::measure;
use serde_json::Value;
use spiffe::{WorkloadApiClient, WorkloadApiError};

const ME: &str = "spiffe://example.org/e2e/me";

fn options(node_ttl: &str) -> DevEnvOptions {
    DevEnvOptions {
        node_ttl: node_ttl.to_owned(),
        retry_max_seconds: 2,
        ..DevEnvOptions::default()
    }
}

fn cluster_serving_me(options: &DevEnvOptions, extra: &[&str]) -> Cluster {
    let mut cluster = Cluster::start(options).unwrap();
    cluster
        .register(ME, &[&format!("unix:uid:{}", current_uid())], extra)
        .unwrap();
    cluster.start_attestor().unwrap();
    cluster
}

/// Serial and notAfter of an X509-SVID's leaf.
struct Leaf {
    serial: String,
    not_after: SystemTime,
}

fn leaf(svid: &spiffe::X509Svid) -> Leaf {
    let (_, cert) = x509_parser::parse_x509_certificate(svid.leaf().as_bytes()).unwrap();
    let secs = u64::try_from(cert.validity().not_after.timestamp()).unwrap();
    Leaf {
        serial: cert.raw_serial_as_string(),
        not_after: SystemTime::UNIX_EPOCH + Duration::from_secs(secs),
    }
}

/// Polls FetchX509SVID (a new connection each time, like a restarted
/// workload) until it returns an SVID.
async fn fetch_within(cluster: &Cluster, limit: Duration) -> spiffe::X509Svid {
    let start = Instant::now();
    let mut last = String::new();
    while start.elapsed() < limit {
        match WorkloadApiClient::connect_to(cluster.endpoint()).await {
            Ok(client) => match client.fetch_x509_svid().await {
                Ok(svid) => return svid,
                Err(e) => last = e.to_string(),
            },
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "no X509-SVID within {limit:?} (last: {last}){}",
        cluster.log_tails()
    );
}

fn attestations(cluster: &Cluster) -> Vec<Value> {
    let out = cluster
        .admin(&["attestation", "list", "--output", "json"])
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issuer_down_then_attestor_restart_serves_the_sealed_cache_and_rotation_resumes() {
    let mut cluster = cluster_serving_me(&options("1h"), &["--x509-ttl", "40s"]);
    let first = leaf(&fetch_within(&cluster, Duration::from_secs(30)).await);

    cluster.kill_issuer();
    let while_down = leaf(&fetch_within(&cluster, Duration::from_secs(5)).await);
    assert_eq!(
        while_down.serial, first.serial,
        "the unexpired SVID is still served"
    );

    // The attestor restarts while the issuer is still down: only the
    // sealed cache can supply the SVID.
    cluster.stop_attestor();
    cluster.start_attestor().unwrap();
    let from_cache = leaf(&fetch_within(&cluster, Duration::from_secs(10)).await);
    assert_eq!(
        from_cache.serial, first.serial,
        "served from the sealed cache"
    );
    let log = std::fs::read_to_string(cluster.env().dir().join("attestor.log")).unwrap();
    assert!(log.contains("serving the sealed cache"), "{log}");

    // The issuer comes back: rotation resumes without restarting anything.
    cluster.start_issuer().unwrap();
    let deadline = Instant::now() + Duration::from_secs(50);
    loop {
        let now = leaf(&fetch_within(&cluster, Duration::from_secs(10)).await);
        if now.serial != first.serial {
            assert!(now.not_after > first.not_after);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no rotation after the issuer came back{}",
            cluster.log_tails()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_node_svid_renews_with_a_fresh_quote() {
    let cluster = cluster_serving_me(&options("10s"), &[]);
    fetch_within(&cluster, Duration::from_secs(30)).await;
    let renewed = cluster.wait_for(
        "a second accepted attestation",
        Duration::from_secs(30),
        || {
            let accepted: Vec<Value> = attestations(&cluster)
                .into_iter()
                .filter(|a| a["accepted"] == true)
                .collect();
            (accepted.len() >= 2).then_some(accepted)
        },
    );
    let renewed = renewed.unwrap();
    assert_eq!(
        renewed[0]["ek_sha256"], renewed[1]["ek_sha256"],
        "the same node"
    );
    assert_ne!(
        renewed[0]["nonce"], renewed[1]["nonce"],
        "each renewal quotes a fresh nonce"
    );
    // Workloads kept their identity throughout.
    fetch_within(&cluster, Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_boot_kills_the_node_key_and_identities_expire_instead_of_renewing() {
    let cluster = cluster_serving_me(&options("16s"), &["--x509-ttl", "16s"]);
    let first = leaf(&fetch_within(&cluster, Duration::from_secs(30)).await);

    // The host boots into a changed boot chain: the boot loader measures
    // one more component into PCR 4, and the event log says so, so the log
    // still replays to the PCRs; only the policy (which pins PCR 4) objects.
    {
        let mut log = cluster.env().boot.clone();
        let event = log.measure_ipl(4, b"an unapproved kernel");
        let mut tpm = Tpm::open(&cluster.env().swtpm().tcti()).unwrap();
        measure::extend(tpm.context_mut(), event.pcr, &event.digests).unwrap();
        log.write_to(&cluster.env().dir().join("eventlog.bin"))
            .unwrap();
    }

    // Keep fetching: the SVIDs served may still rotate while the node SVID
    // lasts, but once the renewal is refused they must run out.
    let mut latest_not_after = first.not_after;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(
            Instant::now() < deadline,
            "identities never expired{}",
            cluster.log_tails()
        );
        let client = WorkloadApiClient::connect_to(cluster.endpoint())
            .await
            .unwrap();
        match client.fetch_x509_svid().await {
            Ok(svid) => latest_not_after = latest_not_after.max(leaf(&svid).not_after),
            Err(WorkloadApiError::NoIdentityIssued) => break,
            Err(e) => panic!("unexpected error {e}{}", cluster.log_tails()),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Expired, not withdrawn early and not renewed: the last SVID served had run out.
    assert!(
        SystemTime::now() + Duration::from_secs(1) >= latest_not_after,
        "identity withdrawn before it expired"
    );

    let refused: Vec<Value> = attestations(&cluster)
        .into_iter()
        .filter(|a| a["accepted"] == false)
        .collect();
    assert!(!refused.is_empty(), "the renewal was refused and audited");
    assert_eq!(refused[0]["failed_check"], "policy", "{}", refused[0]);
    let reason = refused[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("dev-boot"),
        "names the failed policy: {reason}"
    );
    assert!(reason.contains('4'), "names PCR 4: {reason}");
    let log = std::fs::read_to_string(cluster.env().dir().join("attestor.log")).unwrap();
    assert!(
        log.contains("node key can no longer be used"),
        "the TPM refused the old node key"
    );
    cluster.admin(&["audit", "verify"]).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_banned_node_is_told_at_once_and_its_next_renewal_is_refused() {
    let cluster = cluster_serving_me(&options("10s"), &[]);
    fetch_within(&cluster, Duration::from_secs(30)).await;
    let ek = attestations(&cluster)[0]["ek_sha256"]
        .as_str()
        .unwrap()
        .to_owned();
    cluster
        .admin(&["node", "ban", &ek, "--reason", "stolen laptop"])
        .unwrap();

    // The sync stream tells the attestor, which withdraws every identity.
    let start = Instant::now();
    loop {
        let client = WorkloadApiClient::connect_to(cluster.endpoint())
            .await
            .unwrap();
        match client.fetch_x509_svid().await {
            Err(WorkloadApiError::NoIdentityIssued) => break,
            Ok(_) => {}
            Err(e) => panic!("unexpected error {e}"),
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the ban never reached the attestor{}",
            cluster.log_tails()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = std::fs::read_to_string(cluster.env().dir().join("attestor.log")).unwrap();
    assert!(log.contains("banned this node"), "{log}");

    // The next renewal (node SVID of 10 s, renewed at half-life) is refused.
    let refused = cluster
        .wait_for("a refused attestation", Duration::from_secs(30), || {
            attestations(&cluster)
                .into_iter()
                .find(|a| a["accepted"] == false)
        })
        .unwrap();
    assert!(
        refused.to_string().contains("stolen laptop")
            || refused.to_string().to_lowercase().contains("ban"),
        "{refused}"
    );
}
