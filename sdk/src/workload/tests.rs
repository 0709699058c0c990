#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use rootmark_proto::workload::spiffe_workload_api_server::{
    SpiffeWorkloadApi, SpiffeWorkloadApiServer,
};
use tokio_stream::wrappers::UnixListenerStream;
use tonic::{Request, Response, Status};

use super::*;
use crate::test_pki::TestCa;

#[test]
fn endpoint_addresses() {
    assert_eq!(
        parse_endpoint_address("unix:///run/rootmark/workload.sock").unwrap(),
        PathBuf::from("/run/rootmark/workload.sock")
    );
    assert_eq!(
        parse_endpoint_address("unix:/tmp/agent.sock").unwrap(),
        PathBuf::from("/tmp/agent.sock")
    );
    for bad in [
        "",
        "/tmp/agent.sock",
        "tcp://127.0.0.1:8081",
        "unix://host/tmp/agent.sock",
        "unix:relative.sock",
        "unix:///",
        "unix:///tmp/a.sock?x=1",
        "unix:///tmp/a.sock#f",
        "http://localhost",
    ] {
        assert!(
            matches!(
                parse_endpoint_address(bad),
                Err(ClientError::InvalidAddress { .. })
            ),
            "{bad}"
        );
    }
}

#[test]
fn statuses_map_to_typed_errors() {
    assert_eq!(
        ClientError::from(Status::permission_denied("no identity issued")),
        ClientError::NoIdentity {
            message: "no identity issued".into()
        }
    );
    assert!(matches!(
        ClientError::from(Status::unavailable("x")),
        ClientError::Unavailable { .. }
    ));
    assert!(matches!(
        ClientError::from(Status::invalid_argument(
            "security header missing from request"
        )),
        ClientError::InvalidArgument { .. }
    ));
    assert!(matches!(
        ClientError::from(Status::internal("x")),
        ClientError::Status {
            code: tonic::Code::Internal,
            ..
        }
    ));
}

fn x509_response(ca: &TestCa, id: &str, federated: &TestCa) -> pb::X509svidResponse {
    let svid = ca.svid(id);
    pb::X509svidResponse {
        svids: vec![pb::X509svid {
            spiffe_id: id.into(),
            x509_svid: svid.cert_chain().iter().flat_map(|c| c.to_vec()).collect(),
            x509_svid_key: svid.private_key_pkcs8().to_vec(),
            bundle: ca.der(),
            hint: "main".into(),
        }],
        crl: vec![],
        federated_bundles: [(
            format!("spiffe://{}", federated.trust_domain),
            federated.der(),
        )]
        .into_iter()
        .collect(),
    }
}

#[test]
fn x509_context_from_response() {
    let ca = TestCa::new("example.org");
    let other = TestCa::new("other.org");
    let response = x509_response(&ca, "spiffe://example.org/web", &other);
    let context = X509Context::from_response(&response).unwrap();
    assert_eq!(
        context.default_svid().spiffe_id().as_str(),
        "spiffe://example.org/web"
    );
    assert_eq!(context.default_svid().hint(), Some("main"));
    assert_eq!(context.bundles().len(), 2);
    assert!(
        context
            .bundles()
            .get(&TrustDomain::parse("other.org").unwrap())
            .is_some()
    );

    let mut mismatched = response.clone();
    mismatched.svids[0].spiffe_id = "spiffe://example.org/other".into();
    assert!(matches!(
        X509Context::from_response(&mismatched),
        Err(ClientError::BadResponse { .. })
    ));
    let mut bad_key = response.clone();
    bad_key.svids[0].x509_svid_key = vec![1, 2, 3];
    assert!(matches!(
        X509Context::from_response(&bad_key),
        Err(ClientError::BadResponse { .. })
    ));
    let mut no_bundle = response.clone();
    no_bundle.svids[0].bundle.clear();
    assert!(matches!(
        X509Context::from_response(&no_bundle),
        Err(ClientError::BadResponse { .. })
    ));
    let mut bad_key_name = response.clone();
    bad_key_name.federated_bundles = [("spiffe://Other.org".to_owned(), other.der())]
        .into_iter()
        .collect();
    assert!(matches!(
        X509Context::from_response(&bad_key_name),
        Err(ClientError::BadResponse { .. })
    ));
    let empty = pb::X509svidResponse::default();
    assert!(matches!(
        X509Context::from_response(&empty),
        Err(ClientError::BadResponse { .. })
    ));
}

#[test]
fn trust_domain_keys() {
    assert_eq!(
        trust_domain_key("f", "spiffe://example.org")
            .unwrap()
            .as_str(),
        "example.org"
    );
    assert_eq!(
        trust_domain_key("f", "example.org").unwrap().as_str(),
        "example.org"
    );
    assert!(trust_domain_key("f", "spiffe://example.org/path").is_err());
}

/// A fake Workload API that records whether calls carried the header.
#[derive(Clone)]
struct Fake {
    x509: pb::X509svidResponse,
    jwt_bundles: pb::JwtBundlesResponse,
    headers: Arc<Mutex<Vec<bool>>>,
}

impl Fake {
    fn check<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let ok = request
            .metadata()
            .get(WORKLOAD_API_SECURITY_HEADER)
            .is_some_and(|v| v == "true");
        self.headers.lock().unwrap().push(ok);
        if ok {
            Ok(())
        } else {
            Err(Status::invalid_argument(
                "security header missing from request",
            ))
        }
    }
}

type Out<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl SpiffeWorkloadApi for Fake {
    type FetchX509SVIDStream = Out<pb::X509svidResponse>;
    type FetchX509BundlesStream = Out<pb::X509BundlesResponse>;
    type FetchJWTBundlesStream = Out<pb::JwtBundlesResponse>;

    async fn fetch_x509svid(
        &self,
        request: Request<pb::X509svidRequest>,
    ) -> Result<Response<Self::FetchX509SVIDStream>, Status> {
        self.check(&request)?;
        let first = self.x509.clone();
        Ok(Response::new(Box::pin(
            tokio_stream::iter([Ok(first)]).chain(tokio_stream::pending()),
        )))
    }

    async fn fetch_x509_bundles(
        &self,
        request: Request<pb::X509BundlesRequest>,
    ) -> Result<Response<Self::FetchX509BundlesStream>, Status> {
        self.check(&request)?;
        let bundles = self
            .x509
            .svids
            .iter()
            .map(|s| ("spiffe://example.org".to_owned(), s.bundle.clone()))
            .collect();
        Ok(Response::new(Box::pin(tokio_stream::iter([Ok(
            pb::X509BundlesResponse {
                crl: vec![],
                bundles,
            },
        )]))))
    }

    async fn fetch_jwtsvid(
        &self,
        request: Request<pb::JwtsvidRequest>,
    ) -> Result<Response<pb::JwtsvidResponse>, Status> {
        self.check(&request)?;
        Err(Status::permission_denied("no identity issued"))
    }

    async fn fetch_jwt_bundles(
        &self,
        request: Request<pb::JwtBundlesRequest>,
    ) -> Result<Response<Self::FetchJWTBundlesStream>, Status> {
        self.check(&request)?;
        Ok(Response::new(Box::pin(tokio_stream::iter([Ok(self
            .jwt_bundles
            .clone())]))))
    }

    async fn validate_jwtsvid(
        &self,
        request: Request<pb::ValidateJwtsvidRequest>,
    ) -> Result<Response<pb::ValidateJwtsvidResponse>, Status> {
        self.check(&request)?;
        let mut claims = serde_json::Map::new();
        claims.insert("aud".into(), request.get_ref().audience.clone().into());
        Ok(Response::new(pb::ValidateJwtsvidResponse {
            spiffe_id: "spiffe://example.org/caller".into(),
            claims: Some(crate::jwt::claims_to_struct(&claims)),
        }))
    }
}

#[tokio::test]
async fn talks_to_a_server_over_a_unix_socket() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("workload.sock");
    let ca = TestCa::new("example.org");
    let other = TestCa::new("other.org");
    let fake = Fake {
        x509: x509_response(&ca, "spiffe://example.org/web", &other),
        jwt_bundles: pb::JwtBundlesResponse {
            bundles: [(
                "spiffe://example.org".to_owned(),
                br#"{"keys":[]}"#.to_vec(),
            )]
            .into_iter()
            .collect(),
        },
        headers: Arc::default(),
    };
    let listener = tokio::net::UnixListener::bind(&socket).unwrap();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(SpiffeWorkloadApiServer::new(fake.clone()))
            .serve_with_incoming(UnixListenerStream::new(listener)),
    );

    let address = format!("unix://{}", socket.display());
    let client = WorkloadApiClient::connect(&address).await.unwrap();
    let context = client.fetch_x509_context().await.unwrap();
    assert_eq!(
        context.default_svid().spiffe_id().as_str(),
        "spiffe://example.org/web"
    );
    let bundles = client.fetch_x509_bundles().await.unwrap();
    assert_eq!(bundles.len(), 1);
    let jwt_bundles = client.fetch_jwt_bundles().await.unwrap();
    assert!(
        jwt_bundles
            .get(&TrustDomain::parse("example.org").unwrap())
            .is_some()
    );
    assert_eq!(
        client.fetch_jwt_svid(&["aud"], None).await,
        Err(ClientError::NoIdentity {
            message: "no identity issued".into()
        })
    );
    assert!(matches!(
        client.fetch_jwt_svid::<&str>(&[], None).await,
        Err(ClientError::InvalidArgument { .. })
    ));
    let validated = client.validate_jwt_svid("payments", "a.b.c").await.unwrap();
    assert_eq!(validated.spiffe_id.as_str(), "spiffe://example.org/caller");
    assert_eq!(validated.claims.get("aud"), Some(&"payments".into()));
    assert!(fake.headers.lock().unwrap().iter().all(|ok| *ok));

    let missing =
        WorkloadApiClient::connect(&format!("unix:{}/nope.sock", dir.path().display())).await;
    assert!(matches!(missing, Err(ClientError::Transport { .. })));
    server.abort();
}
