//! The SPIFFE Workload API end to end, with a client nobody here wrote (the
//! `spiffe` crate): a real swtpm booted a simulated firmware, the real
//! `rootmark-issuer` and `rootmark-attestor` processes attest it, and the
//! test process fetches its own identity over the Unix socket.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::collections::BTreeSet;
use std::time::Duration;

use rootmark_swtpm_tests::cluster::{Cluster, current_uid, workload_channel};
use rootmark_swtpm_tests::devenv::DevEnvOptions;
use spiffe::{TrustDomain, WorkloadApiClient, WorkloadApiError};
use tokio_stream::StreamExt as _;

const ME: &str = "spiffe://example.org/e2e/me";

fn my_uid_selector() -> String {
    format!("unix:uid:{}", current_uid())
}

/// A cluster whose attestor serves `ME` to this process.
fn cluster_serving_me(options: &DevEnvOptions, extra: &[&str]) -> Cluster {
    let mut cluster = Cluster::start(options).unwrap();
    cluster.register(ME, &[&my_uid_selector()], extra).unwrap();
    cluster.start_attestor().unwrap();
    cluster
}

async fn client(cluster: &Cluster) -> WorkloadApiClient {
    WorkloadApiClient::connect_to(cluster.endpoint())
        .await
        .unwrap()
}

/// Fetches the X509-SVID, retrying while the attestor is still attesting
/// (Unavailable) or minting (no identity yet).
async fn first_svid(client: &WorkloadApiClient, cluster: &Cluster) -> spiffe::X509Svid {
    for _ in 0..300 {
        match client.fetch_x509_svid().await {
            Ok(svid) => return svid,
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    panic!("no X509-SVID within 30 s{}", cluster.log_tails());
}

fn serial(svid: &spiffe::X509Svid) -> String {
    let der = svid.leaf().as_bytes();
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    cert.raw_serial_as_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spiffe_client_fetches_x509_svid_bundles_and_a_jwt_it_can_validate() {
    let cluster = cluster_serving_me(&DevEnvOptions::default(), &[]);
    let client = client(&cluster).await;
    let svid = first_svid(&client, &cluster).await;
    assert_eq!(svid.spiffe_id().to_string(), ME);

    let td = TrustDomain::new("example.org").unwrap();
    let bundles = client.fetch_x509_bundles().await.unwrap();
    let bundle = bundles.get(&td).expect("a bundle for example.org");
    // The SVID chains to a CA in the bundle the attestor serves.
    let leaf = x509_parser::parse_x509_certificate(svid.leaf().as_bytes())
        .unwrap()
        .1;
    let issuers: Vec<String> = bundle
        .authorities()
        .iter()
        .map(|ca| {
            x509_parser::parse_x509_certificate(ca.as_bytes())
                .unwrap()
                .1
                .subject()
                .to_string()
        })
        .collect();
    assert!(issuers.contains(&leaf.issuer().to_string()), "{issuers:?}");

    let jwt = client.fetch_jwt_svid(["e2e-audience"], None).await.unwrap();
    assert_eq!(jwt.spiffe_id().to_string(), ME);
    assert_eq!(jwt.audience(), &["e2e-audience".to_owned()]);
    let validated = client
        .validate_jwt_token("e2e-audience", jwt.token())
        .await
        .unwrap();
    assert_eq!(validated.spiffe_id().to_string(), ME);
    // Another audience is refused by the attestor's validation.
    let wrong = client.validate_jwt_token("someone-else", jwt.token()).await;
    assert!(wrong.unwrap_err().is_invalid_argument());

    let jwt_bundles = client.fetch_jwt_bundles().await.unwrap();
    assert!(
        jwt_bundles.get(&td).is_some(),
        "a JWT bundle for example.org"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_20_second_svid_rotates_at_least_twice_on_one_stream() {
    let cluster = cluster_serving_me(&DevEnvOptions::default(), &["--x509-ttl", "20s"]);
    let client = client(&cluster).await;
    first_svid(&client, &cluster).await;
    let mut stream = client.stream_x509_contexts().await.unwrap();
    let mut serials = BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(50);
    while serials.len() < 3 {
        let next = tokio::time::timeout_at(deadline, stream.next())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "only {} SVIDs in 50 s{}",
                    serials.len(),
                    cluster.log_tails()
                )
            })
            .expect("the stream stayed open")
            .unwrap();
        let svid = next.default_svid().expect("an SVID in every update");
        assert_eq!(svid.spiffe_id().to_string(), ME);
        serials.insert(serial(svid));
    }
    assert_eq!(serials.len(), 3, "the first SVID and two rotations");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_whose_uid_is_not_registered_gets_permission_denied() {
    let mut cluster = Cluster::start(&DevEnvOptions::default()).unwrap();
    let other_uid = current_uid().wrapping_add(4242);
    cluster
        .register(ME, &[&format!("unix:uid:{other_uid}")], &[])
        .unwrap();
    cluster.start_attestor().unwrap();
    let client = client(&cluster).await;
    // Wait until the attestor is ready (it answers Unavailable before).
    let mut last = None;
    for _ in 0..300 {
        match client.fetch_x509_svid().await {
            Err(WorkloadApiError::NoIdentityIssued) => return,
            Err(e) => last = Some(e.to_string()),
            Ok(svid) => panic!("got {} for an unregistered uid", svid.spiffe_id()),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "never PermissionDenied; last error {last:?}{}",
        cluster.log_tails()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_without_the_security_header_is_invalid_argument() {
    use rootmark_proto::workload as pb;
    use rootmark_proto::workload::spiffe_workload_api_client::SpiffeWorkloadApiClient;

    let cluster = cluster_serving_me(&DevEnvOptions::default(), &[]);
    let spiffe_client = client(&cluster).await;
    first_svid(&spiffe_client, &cluster).await;

    let path = cluster.env().socket();
    let channel = workload_channel(path).await.unwrap();
    let mut raw = SpiffeWorkloadApiClient::new(channel);
    let status = raw
        .fetch_x509svid(pb::X509svidRequest {})
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(status.message(), "security header missing from request");
    let status = raw
        .fetch_jwtsvid(pb::JwtsvidRequest {
            audience: vec!["a".into()],
            spiffe_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_reflection_lists_and_describes_the_workload_api() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let cluster = cluster_serving_me(&DevEnvOptions::default(), &[]);
    let path = cluster.env().socket();
    let channel = workload_channel(path).await.unwrap();
    let mut client = ServerReflectionClient::new(channel);
    let requests = [
        MessageRequest::ListServices(String::new()),
        MessageRequest::FileContainingSymbol("SpiffeWorkloadAPI".to_owned()),
    ]
    .map(|message| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(message),
    });
    let mut answers = client
        .server_reflection_info(tokio_stream::iter(requests))
        .await
        .unwrap()
        .into_inner();
    match answers.message().await.unwrap().unwrap().message_response {
        Some(MessageResponse::ListServicesResponse(list)) => {
            let names: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
            assert!(names.contains(&"SpiffeWorkloadAPI"), "{names:?}");
        }
        other => panic!("expected a service list, got {other:?}"),
    }
    match answers.message().await.unwrap().unwrap().message_response {
        Some(MessageResponse::FileDescriptorResponse(files)) => {
            let text = String::from_utf8_lossy(&files.file_descriptor_proto.concat()).into_owned();
            assert!(
                text.contains("FetchX509SVID"),
                "the descriptor names the RPCs"
            );
        }
        other => panic!("expected a file descriptor, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_entry_withdraws_the_identity_from_an_open_stream() {
    let mut cluster = Cluster::start(&DevEnvOptions::default()).unwrap();
    let entry = cluster.register(ME, &[&my_uid_selector()], &[]).unwrap();
    cluster.start_attestor().unwrap();
    let client = client(&cluster).await;
    first_svid(&client, &cluster).await;
    let mut stream = client.stream_x509_contexts().await.unwrap();
    let first = stream.next().await.unwrap().unwrap();
    assert_eq!(first.default_svid().unwrap().spiffe_id().to_string(), ME);

    cluster.admin(&["entry", "delete", &entry]).unwrap();
    // The open stream is told at once: it ends with "no identity issued".
    let next = tokio::time::timeout(Duration::from_secs(15), stream.next())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "the stream never heard of the deletion{}",
                cluster.log_tails()
            )
        });
    match next {
        Some(Err(WorkloadApiError::NoIdentityIssued)) => {}
        Some(other) => panic!("expected the identity to be withdrawn, got {other:?}"),
        None => panic!("the stream ended without saying why"),
    }
    assert!(matches!(
        client.fetch_x509_svid().await,
        Err(WorkloadApiError::NoIdentityIssued)
    ));
}
