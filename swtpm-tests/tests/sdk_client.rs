//! Interop: the SDK's Workload API client and the `spiffe` crate (a client
//! nobody here wrote), side by side against the same real attestor, get
//! the same SVIDs, the same bundles and the same kinds of errors.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use rootmark_sdk::{ClientError, WorkloadApiClient, validate_jwt_svid};
use rootmark_swtpm_tests::cluster::{Cluster, current_uid};
use rootmark_swtpm_tests::devenv::DevEnvOptions;
use serde_json::Value;
use spiffe::WorkloadApiError;

const ME: &str = "spiffe://example.org/interop/me";
const ALSO_ME: &str = "spiffe://example.org/interop/also-me";
const AUDIENCE: &str = "interop-audience";

fn my_uid_selector() -> String {
    format!("unix:uid:{}", current_uid())
}

async fn clients(cluster: &Cluster) -> (WorkloadApiClient, spiffe::WorkloadApiClient) {
    let sdk = WorkloadApiClient::connect(&cluster.endpoint())
        .await
        .unwrap();
    let theirs = spiffe::WorkloadApiClient::connect_to(cluster.endpoint())
        .await
        .unwrap();
    (sdk, theirs)
}

/// One name per kind of outcome, for both clients.
fn sdk_kind<T>(result: &Result<T, ClientError>) -> String {
    match result {
        Ok(_) => "ok".into(),
        Err(ClientError::NoIdentity { .. }) => "no identity".into(),
        Err(ClientError::InvalidArgument { .. }) => "invalid argument".into(),
        Err(ClientError::Unavailable { .. }) => "unavailable".into(),
        Err(other) => format!("other: {other:?}"),
    }
}

fn spiffe_kind<T>(result: &Result<T, WorkloadApiError>) -> String {
    match result {
        Ok(_) => "ok".into(),
        Err(WorkloadApiError::NoIdentityIssued) => "no identity".into(),
        Err(e) if e.is_invalid_argument() => "invalid argument".into(),
        Err(other) => format!("other: {other:?}"),
    }
}

/// Waits until the attestor has attested and serves the SDK client
/// something other than Unavailable; returns that first answer.
async fn first_answer(sdk: &WorkloadApiClient, cluster: &Cluster) -> Result<(), ClientError> {
    for _ in 0..600 {
        match sdk.fetch_x509_context().await {
            Err(ClientError::Unavailable { .. }) => {}
            // Registered but not yet minted shows as no identity for a
            // moment; callers of this helper that expect an SVID retry.
            other => return other.map(|_| ()),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the attestor never became ready{}", cluster.log_tails());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_and_spiffe_crate_get_the_same_svids_bundles_and_jwts() {
    let mut cluster = Cluster::start(&DevEnvOptions::default()).unwrap();
    // Two identities for this one process.
    cluster.register(ME, &[&my_uid_selector()], &[]).unwrap();
    cluster
        .register(ALSO_ME, &[&my_uid_selector()], &[])
        .unwrap();
    cluster.start_attestor().unwrap();
    let (sdk, theirs) = clients(&cluster).await;

    // Both SVIDs served to both clients, in the same order, byte for byte
    // (chain and key). Retry while the SVIDs are being minted or rotate
    // between the two fetches.
    let mut same = false;
    for _ in 0..300 {
        let _ = first_answer(&sdk, &cluster).await;
        let (Ok(ours), Ok(their_svids)) = (
            sdk.fetch_x509_context().await,
            theirs.fetch_all_x509_svids().await,
        ) else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let our_view: Vec<(String, Vec<Vec<u8>>, Vec<u8>)> = ours
            .svids()
            .iter()
            .map(|svid| {
                (
                    svid.spiffe_id().to_string(),
                    svid.cert_chain()
                        .iter()
                        .map(|c| c.as_ref().to_vec())
                        .collect(),
                    svid.private_key_pkcs8().to_vec(),
                )
            })
            .collect();
        let their_view: Vec<(String, Vec<Vec<u8>>, Vec<u8>)> = their_svids
            .iter()
            .map(|svid| {
                (
                    svid.spiffe_id().to_string(),
                    svid.cert_chain()
                        .iter()
                        .map(|c| c.as_bytes().to_vec())
                        .collect(),
                    svid.private_key().as_bytes().to_vec(),
                )
            })
            .collect();
        if our_view.len() == 2 && our_view == their_view {
            let ids: Vec<&str> = our_view.iter().map(|(id, _, _)| id.as_str()).collect();
            let mut sorted = ids.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, [ALSO_ME, ME]);
            // The default SVID is the first one for both.
            let their_default = theirs.fetch_x509_svid().await.unwrap();
            assert_eq!(
                ours.default_svid().leaf().as_ref(),
                their_default.leaf().as_bytes()
            );
            same = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        same,
        "the two clients never saw the same two SVIDs{}",
        cluster.log_tails()
    );

    // X.509 bundles: the same trust domains and the same authorities.
    let ours = sdk.fetch_x509_bundles().await.unwrap();
    let their_set = theirs.fetch_x509_bundles().await.unwrap();
    let our_bundles: BTreeMap<String, Vec<Vec<u8>>> = ours
        .iter()
        .map(|b| {
            (
                b.trust_domain().to_string(),
                b.authorities()
                    .iter()
                    .map(|c| c.as_ref().to_vec())
                    .collect(),
            )
        })
        .collect();
    let their_bundles: BTreeMap<String, Vec<Vec<u8>>> = their_set
        .iter()
        .map(|(td, b)| {
            (
                td.to_string(),
                b.authorities()
                    .iter()
                    .map(|c| c.as_bytes().to_vec())
                    .collect(),
            )
        })
        .collect();
    assert_eq!(our_bundles, their_bundles);
    assert!(our_bundles.contains_key("example.org"), "{our_bundles:?}");

    // JWT bundles: the same key IDs with the same public keys.
    let ours = sdk.fetch_jwt_bundles().await.unwrap();
    let their_set = theirs.fetch_jwt_bundles().await.unwrap();
    assert_eq!(ours.len(), their_set.len());
    for bundle in ours.iter() {
        let td = spiffe::TrustDomain::new(bundle.trust_domain().as_str()).unwrap();
        let their_bundle = their_set.get(&td).expect("the same trust domains");
        let their_kids: Vec<&str> = their_bundle.jwt_authorities().map(|a| a.key_id()).collect();
        let mut our_kids: Vec<&str> = bundle.authorities().map(|(kid, _)| kid).collect();
        let mut sorted_theirs = their_kids.clone();
        our_kids.sort_unstable();
        sorted_theirs.sort_unstable();
        assert_eq!(our_kids, sorted_theirs);
        assert!(!our_kids.is_empty());
        for (kid, key) in bundle.authorities() {
            let their_jwk: Value =
                serde_json::from_slice(their_bundle.find_jwt_authority(kid).unwrap().jwk_json())
                    .unwrap();
            for (field, value) in key.to_jwk() {
                assert_eq!(
                    their_jwk.get(&field),
                    Some(&value),
                    "kid {kid} field {field}"
                );
            }
        }
    }

    // JWT-SVIDs: each client's token for the same identity and audience,
    // and each one validates the other's.
    let our_jwt = sdk.fetch_jwt_svid(&[AUDIENCE], None).await.unwrap();
    let their_jwt = theirs.fetch_jwt_svid([AUDIENCE], None).await.unwrap();
    assert_eq!(
        our_jwt.spiffe_id().as_str(),
        their_jwt.spiffe_id().to_string()
    );
    assert_eq!(our_jwt.audience(), their_jwt.audience());
    let by_them = theirs
        .validate_jwt_token(AUDIENCE, our_jwt.token())
        .await
        .unwrap();
    assert_eq!(
        by_them.spiffe_id().to_string(),
        our_jwt.spiffe_id().as_str()
    );
    let by_us_remote = sdk
        .validate_jwt_svid(AUDIENCE, their_jwt.token())
        .await
        .unwrap();
    assert_eq!(
        by_us_remote.spiffe_id.as_str(),
        their_jwt.spiffe_id().to_string()
    );
    let bundles = sdk.fetch_jwt_bundles().await.unwrap();
    let by_us_local =
        validate_jwt_svid(their_jwt.token(), &bundles, AUDIENCE, SystemTime::now()).unwrap();
    assert_eq!(
        by_us_local.spiffe_id().as_str(),
        their_jwt.spiffe_id().to_string()
    );
    // A JWT-SVID for a chosen identity.
    let also_me = rootmark_sdk::SpiffeId::parse(ALSO_ME).unwrap();
    let ours = sdk
        .fetch_jwt_svid(&[AUDIENCE], Some(&also_me))
        .await
        .unwrap();
    let their_id = spiffe::SpiffeId::new(ALSO_ME).unwrap();
    let their_jwt = theirs
        .fetch_jwt_svid([AUDIENCE], Some(&their_id))
        .await
        .unwrap();
    assert_eq!(ours.spiffe_id().as_str(), ALSO_ME);
    assert_eq!(their_jwt.spiffe_id().to_string(), ALSO_ME);

    // The same errors: no audience, and validation for another audience.
    let no_audience: &[&str] = &[];
    let ours = sdk.fetch_jwt_svid(no_audience, None).await;
    let their_result = theirs.fetch_jwt_svid(Vec::<String>::new(), None).await;
    assert_eq!(sdk_kind(&ours), "invalid argument");
    assert_eq!(sdk_kind(&ours), spiffe_kind(&their_result));
    let ours = sdk.validate_jwt_svid("someone-else", our_jwt.token()).await;
    let their_result = theirs
        .validate_jwt_token("someone-else", our_jwt.token())
        .await;
    assert_eq!(sdk_kind(&ours), "invalid argument");
    assert_eq!(sdk_kind(&ours), spiffe_kind(&their_result));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_and_spiffe_crate_report_the_same_errors_to_an_unregistered_caller() {
    let mut cluster = Cluster::start(&DevEnvOptions::default()).unwrap();
    let other_uid = current_uid().wrapping_add(4242);
    cluster
        .register(ME, &[&format!("unix:uid:{other_uid}")], &[])
        .unwrap();
    cluster.start_attestor().unwrap();
    let (sdk, theirs) = clients(&cluster).await;
    let first = first_answer(&sdk, &cluster).await;
    assert!(
        matches!(first, Err(ClientError::NoIdentity { .. })),
        "{first:?}"
    );

    let ours = sdk.fetch_x509_context().await;
    let their_result = theirs.fetch_x509_context().await;
    assert_eq!(sdk_kind(&ours), "no identity");
    assert_eq!(sdk_kind(&ours), spiffe_kind(&their_result));

    let ours = sdk.fetch_x509_svid().await;
    let their_result = theirs.fetch_x509_svid().await;
    assert_eq!(sdk_kind(&ours), spiffe_kind(&their_result));

    let ours = sdk.fetch_jwt_svid(&[AUDIENCE], None).await;
    let their_result = theirs.fetch_jwt_svid([AUDIENCE], None).await;
    assert_eq!(sdk_kind(&ours), "no identity");
    assert_eq!(sdk_kind(&ours), spiffe_kind(&their_result));

    let ours = sdk.fetch_x509_bundles().await;
    let their_result = theirs.fetch_x509_bundles().await;
    assert_eq!(sdk_kind(&ours), spiffe_kind(&their_result));

    let ours = sdk.fetch_jwt_bundles().await;
    let their_result = theirs.fetch_jwt_bundles().await;
    assert_eq!(sdk_kind(&ours), spiffe_kind(&their_result));
}
