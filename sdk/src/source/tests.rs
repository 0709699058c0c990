#![allow(clippy::unwrap_used)]

use std::pin::Pin;
use std::sync::Mutex;

use rootmark_proto::tonic::{self, Request, Response, Status};
use rootmark_proto::workload as pb;
use rootmark_proto::workload::spiffe_workload_api_server::{
    SpiffeWorkloadApi, SpiffeWorkloadApiServer,
};
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tokio_stream::wrappers::{ReceiverStream, UnixListenerStream};

use super::*;
use crate::test_pki::TestCa;

#[test]
fn backoff_grows_with_jitter_and_resets() {
    let options = SourceOptions::new().backoff(Duration::from_millis(100), Duration::from_secs(1));
    let mut backoff = Backoff::new(&options);
    let mut steps = Vec::new();
    for _ in 0..6 {
        steps.push(backoff.next_delay());
    }
    let bounds = [100, 200, 400, 800, 1000, 1000];
    for (delay, step) in steps.iter().zip(bounds) {
        let step = Duration::from_millis(step);
        assert!(
            *delay >= step / 2 && *delay <= step,
            "{delay:?} for {step:?}"
        );
    }
    backoff.reset();
    assert!(backoff.next_delay() <= Duration::from_millis(100));
}

type Out<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Serves FetchX509SVID from a channel the test feeds.
struct Fake {
    x509: Mutex<Option<mpsc::Receiver<Result<pb::X509svidResponse, Status>>>>,
}

#[tonic::async_trait]
impl SpiffeWorkloadApi for Fake {
    type FetchX509SVIDStream = Out<pb::X509svidResponse>;
    type FetchX509BundlesStream = Out<pb::X509BundlesResponse>;
    type FetchJWTBundlesStream = Out<pb::JwtBundlesResponse>;

    async fn fetch_x509svid(
        &self,
        _: Request<pb::X509svidRequest>,
    ) -> Result<Response<Self::FetchX509SVIDStream>, Status> {
        match self.x509.lock().unwrap().take() {
            Some(rx) => Ok(Response::new(Box::pin(ReceiverStream::new(rx)))),
            None => Err(Status::unavailable("already streaming")),
        }
    }
    async fn fetch_x509_bundles(
        &self,
        _: Request<pb::X509BundlesRequest>,
    ) -> Result<Response<Self::FetchX509BundlesStream>, Status> {
        Err(Status::unimplemented("x"))
    }
    async fn fetch_jwtsvid(
        &self,
        _: Request<pb::JwtsvidRequest>,
    ) -> Result<Response<pb::JwtsvidResponse>, Status> {
        Err(Status::unimplemented("x"))
    }
    async fn fetch_jwt_bundles(
        &self,
        _: Request<pb::JwtBundlesRequest>,
    ) -> Result<Response<Self::FetchJWTBundlesStream>, Status> {
        Err(Status::unimplemented("x"))
    }
    async fn validate_jwtsvid(
        &self,
        _: Request<pb::ValidateJwtsvidRequest>,
    ) -> Result<Response<pb::ValidateJwtsvidResponse>, Status> {
        Err(Status::unimplemented("x"))
    }
}

fn response(ca: &TestCa, id: &str) -> pb::X509svidResponse {
    let svid = ca.svid(id);
    pb::X509svidResponse {
        svids: vec![pb::X509svid {
            spiffe_id: id.into(),
            x509_svid: svid.cert_chain().iter().flat_map(|c| c.to_vec()).collect(),
            x509_svid_key: svid.private_key_pkcs8().to_vec(),
            bundle: ca.der(),
            hint: String::new(),
        }],
        ..Default::default()
    }
}

#[tokio::test]
async fn source_fails_closed_keeps_last_good_and_notifies() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("w.sock");
    let (tx, rx) = mpsc::channel(8);
    let listener = tokio::net::UnixListener::bind(&socket).unwrap();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(SpiffeWorkloadApiServer::new(Fake {
                x509: Mutex::new(Some(rx)),
            }))
            .serve_with_incoming(UnixListenerStream::new(listener)),
    );
    let ca = TestCa::new("example.org");

    // An invalid first message is skipped; the source waits for a valid one.
    let mut invalid = response(&ca, "spiffe://example.org/a");
    invalid.svids[0].x509_svid_key = vec![0];
    tx.send(Ok(invalid.clone())).await.unwrap();
    tx.send(Ok(response(&ca, "spiffe://example.org/a")))
        .await
        .unwrap();
    let options = SourceOptions::new()
        .address(format!("unix://{}", socket.display()))
        .initial_timeout(Some(Duration::from_secs(10)));
    let source = X509Source::with_options(options).await.unwrap();
    assert_eq!(source.svid().spiffe_id().as_str(), "spiffe://example.org/a");
    assert!(source.bundle_for(&ca.trust_domain).is_some());

    // A rotation is seen by the receiver.
    let mut updated = source.updated();
    tx.send(Ok(response(&ca, "spiffe://example.org/b")))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), updated.changed())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(source.svid().spiffe_id().as_str(), "spiffe://example.org/b");

    // An invalid update is ignored: the last good SVID stays.
    tx.send(Ok(invalid)).await.unwrap();
    tx.send(Ok(response(&ca, "spiffe://example.org/c")))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), updated.changed())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(source.svid().spiffe_id().as_str(), "spiffe://example.org/c");
    server.abort();
}

#[tokio::test]
async fn source_times_out_without_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let options = SourceOptions::new()
        .address(format!("unix://{}/none.sock", dir.path().display()))
        .initial_timeout(Some(Duration::from_millis(300)))
        .backoff(Duration::from_millis(20), Duration::from_millis(50));
    match X509Source::with_options(options).await {
        Err(SourceError::Timeout {
            last_error: Some(ClientError::Transport { .. }),
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    let bad = SourceOptions::new().address("tcp://127.0.0.1:1");
    assert!(matches!(
        X509Source::with_options(bad).await,
        Err(SourceError::Client(ClientError::InvalidAddress { .. }))
    ));
}

#[test]
fn fixed_sources_serve_what_they_are_given() {
    let ca = TestCa::new("example.org");
    let mut bundles = crate::bundle::X509BundleSet::new();
    bundles.insert(ca.bundle());
    let context =
        X509Context::new(vec![ca.svid("spiffe://example.org/a")], bundles.clone()).unwrap();
    let source = X509Source::fixed(context);
    assert_eq!(source.svid().spiffe_id().as_str(), "spiffe://example.org/a");
    let rx = source.updated();
    source.set_context(X509Context::new(vec![ca.svid("spiffe://example.org/b")], bundles).unwrap());
    assert!(rx.has_changed().unwrap());
    assert!(
        source
            .svid_for(&SpiffeId::parse("spiffe://example.org/b").unwrap())
            .is_some()
    );

    let jwt = JwtSource::fixed(JwtBundleSet::new());
    assert!(matches!(
        jwt.validate("a.b.c", "aud"),
        Err(JwtError::MalformedToken { .. })
    ));
}
