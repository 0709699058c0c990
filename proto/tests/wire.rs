//! Pins the wire shape of the generated code.
//!
//! The Workload API must stay byte-compatible with every SPIFFE client, so the
//! encodings here are compared against bytes computed by hand from the
//! protobuf encoding rules (tag byte = field number << 3 | wire type; wire type
//! 0 = varint, 2 = length-delimited), and the gRPC method paths are observed on
//! real calls made by the generated client to the generated server, in
//! process (no socket, no HTTP/2: the client drives the server's tower service
//! directly).
#![allow(clippy::unwrap_used)] // tests and benches fail loudly by design

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use prost::Message;
use rootmark_proto::node::v1 as node;
use rootmark_proto::workload as wl;
use tonic::codegen::{Service, http, tokio_stream};
use tonic::{Request, Response, Status};

// ---------------------------------------------------------------------------
// Encodings
// ---------------------------------------------------------------------------

/// Concatenates byte slices, to write expected encodings field by field.
fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

#[test]
fn x509_svid_encodes_with_upstream_field_numbers() {
    let svid = wl::X509svid {
        spiffe_id: "spiffe://td/a".to_owned(),
        x509_svid: vec![0x30, 0x01, 0x02],
        x509_svid_key: vec![0xaa],
        bundle: vec![0xbb, 0xcc],
        hint: "int".to_owned(),
    };
    let expected = cat(&[
        // 1: spiffe_id, string
        &[0x0a, 13],
        b"spiffe://td/a",
        // 2: x509_svid, bytes
        &[0x12, 3, 0x30, 0x01, 0x02],
        // 3: x509_svid_key, bytes
        &[0x1a, 1, 0xaa],
        // 4: bundle, bytes
        &[0x22, 2, 0xbb, 0xcc],
        // 5: hint, string
        &[0x2a, 3],
        b"int",
    ]);
    assert_eq!(svid.encode_to_vec(), expected);
    assert_eq!(wl::X509svid::decode(expected.as_slice()), Ok(svid));
}

#[test]
fn x509_svid_response_encodes_svids_crl_and_federated_bundles() {
    let mut response = wl::X509svidResponse {
        svids: vec![wl::X509svid {
            spiffe_id: "a".to_owned(),
            ..Default::default()
        }],
        crl: vec![vec![0x01]],
        ..Default::default()
    };
    response
        .federated_bundles
        .insert("spiffe://o".to_owned(), vec![0x02]);
    let expected = cat(&[
        &[0x0a, 3, 0x0a, 1, b'a'], // 1: svids, message X509SVID{spiffe_id}
        &[0x12, 1, 0x01],          // 2: crl, repeated bytes
        // 3: federated_bundles, map entry message {1: key string, 2: value bytes}
        &[0x1a, 15, 0x0a, 10],
        b"spiffe://o",
        &[0x12, 1, 0x02],
    ]);
    assert_eq!(response.encode_to_vec(), expected);

    let bundles = wl::X509BundlesResponse {
        crl: vec![vec![0x01]],
        bundles: [("spiffe://o".to_owned(), vec![0x02])].into(),
    };
    let expected = cat(&[
        &[0x0a, 1, 0x01], // 1: crl
        &[0x12, 15, 0x0a, 10],
        b"spiffe://o",
        &[0x12, 1, 0x02], // 2: bundles
    ]);
    assert_eq!(bundles.encode_to_vec(), expected);
}

#[test]
fn jwt_messages_encode_with_upstream_field_numbers() {
    let request = wl::JwtsvidRequest {
        audience: vec!["x".to_owned(), "y".to_owned()],
        spiffe_id: "s".to_owned(),
    };
    assert_eq!(
        request.encode_to_vec(),
        [0x0a, 1, b'x', 0x0a, 1, b'y', 0x12, 1, b's']
    );

    let svid = wl::Jwtsvid {
        spiffe_id: "s".to_owned(),
        svid: "t".to_owned(),
        hint: "h".to_owned(),
    };
    assert_eq!(
        svid.encode_to_vec(),
        [0x0a, 1, b's', 0x12, 1, b't', 0x1a, 1, b'h']
    );

    let validate = wl::ValidateJwtsvidRequest {
        audience: "a".to_owned(),
        svid: "t".to_owned(),
    };
    assert_eq!(validate.encode_to_vec(), [0x0a, 1, b'a', 0x12, 1, b't']);

    let bundles = wl::JwtBundlesResponse {
        bundles: [("d".to_owned(), b"{}".to_vec())].into(),
    };
    assert_eq!(
        bundles.encode_to_vec(),
        [0x0a, 7, 0x0a, 1, b'd', 0x12, 2, b'{', b'}']
    );
}

#[test]
fn validate_response_claims_are_a_google_protobuf_struct() {
    use prost_types::{Struct, Value, value::Kind};
    let response = wl::ValidateJwtsvidResponse {
        spiffe_id: "s".to_owned(),
        claims: Some(Struct {
            fields: [(
                "sub".to_owned(),
                Value {
                    kind: Some(Kind::StringValue("x".to_owned())),
                },
            )]
            .into(),
        }),
    };
    // Struct{1: map<string, Value>}, Value{3: string_value}.
    let value = [0x1a, 1, b'x'];
    let entry = cat(&[&[0x0a, 3], b"sub", &[0x12, 3], &value]);
    let strukt = cat(&[&[0x0a, entry.len() as u8], &entry]);
    let expected = cat(&[&[0x0a, 1, b's'], &[0x12, strukt.len() as u8], &strukt]);
    assert_eq!(response.encode_to_vec(), expected);
}

#[test]
fn node_messages_encode_as_documented() {
    let request = node::AttestRequest {
        step: Some(node::attest_request::Step::Hello(node::Hello {
            ek_public: vec![0x01],
            node_key_pcrs: vec![0, 2, 4, 7],
            ..Default::default()
        })),
    };
    // oneof arm 1 (hello) = message {2: ek_public, 7: packed uint32s}.
    let hello = [0x12, 1, 0x01, 0x3a, 4, 0, 2, 4, 7];
    let expected = cat(&[&[0x0a, hello.len() as u8], &hello]);
    assert_eq!(request.encode_to_vec(), expected);

    // Field 3 was `Renew` and is reserved: an old peer's renew decodes as
    // no step at all, never as another arm.
    let retired = node::AttestRequest::decode(&[0x1a_u8, 4, 0x0a, 2, 0x00, 0x0b][..]).unwrap();
    assert_eq!(retired.step, None);

    let bank = node::PcrBank {
        hash: node::HashAlgorithm::Sha256.into(),
        values: [(7, vec![0x11, 0x11])].into(),
    };
    // 1: hash enum varint; 2: map entry {1: key varint, 2: value bytes}.
    assert_eq!(
        bank.encode_to_vec(),
        [0x08, 2, 0x12, 6, 0x08, 7, 0x12, 2, 0x11, 0x11]
    );

    let selection = node::PcrSelection {
        hash: node::HashAlgorithm::Sha1.into(),
        pcrs: vec![0, 7],
    };
    assert_eq!(selection.encode_to_vec(), [0x08, 1, 0x12, 2, 0, 7]);
    assert_eq!(
        node::HashAlgorithm::Sha384.as_str_name(),
        "HASH_ALGORITHM_SHA384"
    );

    let result = node::AttestResponse {
        step: Some(node::attest_response::Step::Result(node::AttestResult {
            spiffe_id: "n".to_owned(),
            renew_after_unix_ms: 1,
            expires_unix_ms: 2,
            ..Default::default()
        })),
    };
    assert_eq!(
        result.encode_to_vec(),
        [0x12, 7, 0x22, 1, b'n', 0x28, 1, 0x30, 2]
    );
}

// ---------------------------------------------------------------------------
// gRPC paths, through the generated client and server
// ---------------------------------------------------------------------------

/// A tower layer that records the request path of every call before passing
/// it on to the generated server.
#[derive(Clone)]
struct RecordPaths<S> {
    inner: S,
    paths: Arc<Mutex<Vec<String>>>,
}

impl<S, B> Service<http::Request<B>> for RecordPaths<S>
where
    S: Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        self.paths
            .lock()
            .expect("paths lock")
            .push(request.uri().path().to_owned());
        self.inner.call(request)
    }
}

type BoxStream<T> = Pin<Box<dyn tokio_stream::Stream<Item = Result<T, Status>> + Send>>;

fn once<T: Send + 'static>(item: T) -> BoxStream<T> {
    Box::pin(tokio_stream::iter([Ok(item)]))
}

/// A Workload API server that answers every call with fixed data, after
/// checking the SPIFFE security header like a real server must.
struct FixedWorkloadApi;

fn check_header<T>(request: &Request<T>) -> Result<(), Status> {
    match request.metadata().get("workload.spiffe.io") {
        Some(v) if v == "true" => Ok(()),
        _ => Err(Status::invalid_argument(
            "security header missing from request",
        )),
    }
}

#[tonic::async_trait]
impl wl::spiffe_workload_api_server::SpiffeWorkloadApi for FixedWorkloadApi {
    type FetchX509SVIDStream = BoxStream<wl::X509svidResponse>;
    type FetchX509BundlesStream = BoxStream<wl::X509BundlesResponse>;
    type FetchJWTBundlesStream = BoxStream<wl::JwtBundlesResponse>;

    async fn fetch_x509svid(
        &self,
        request: Request<wl::X509svidRequest>,
    ) -> Result<Response<Self::FetchX509SVIDStream>, Status> {
        check_header(&request)?;
        Ok(Response::new(once(wl::X509svidResponse {
            svids: vec![wl::X509svid {
                spiffe_id: "spiffe://example.org/w".to_owned(),
                ..Default::default()
            }],
            ..Default::default()
        })))
    }

    async fn fetch_x509_bundles(
        &self,
        request: Request<wl::X509BundlesRequest>,
    ) -> Result<Response<Self::FetchX509BundlesStream>, Status> {
        check_header(&request)?;
        Ok(Response::new(once(wl::X509BundlesResponse::default())))
    }

    async fn fetch_jwtsvid(
        &self,
        request: Request<wl::JwtsvidRequest>,
    ) -> Result<Response<wl::JwtsvidResponse>, Status> {
        check_header(&request)?;
        let audience = request.into_inner().audience.join(",");
        Ok(Response::new(wl::JwtsvidResponse {
            svids: vec![wl::Jwtsvid {
                svid: audience,
                ..Default::default()
            }],
        }))
    }

    async fn fetch_jwt_bundles(
        &self,
        request: Request<wl::JwtBundlesRequest>,
    ) -> Result<Response<Self::FetchJWTBundlesStream>, Status> {
        check_header(&request)?;
        Ok(Response::new(once(wl::JwtBundlesResponse::default())))
    }

    async fn validate_jwtsvid(
        &self,
        request: Request<wl::ValidateJwtsvidRequest>,
    ) -> Result<Response<wl::ValidateJwtsvidResponse>, Status> {
        check_header(&request)?;
        Err(Status::invalid_argument("bad token"))
    }
}

fn with_header<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("workload.spiffe.io", "true".parse().expect("ascii value"));
    request
}

#[tokio::test]
async fn workload_api_calls_use_package_less_spiffe_paths() {
    use wl::spiffe_workload_api_client::SpiffeWorkloadApiClient;
    use wl::spiffe_workload_api_server::{SERVICE_NAME, SpiffeWorkloadApiServer};

    assert_eq!(SERVICE_NAME, "SpiffeWorkloadAPI");

    let paths = Arc::new(Mutex::new(Vec::new()));
    let mut client = SpiffeWorkloadApiClient::new(RecordPaths {
        inner: SpiffeWorkloadApiServer::new(FixedWorkloadApi),
        paths: Arc::clone(&paths),
    });

    let mut stream = client
        .fetch_x509svid(with_header(wl::X509svidRequest {}))
        .await
        .expect("FetchX509SVID")
        .into_inner();
    let first = stream.message().await.expect("stream ok").expect("one");
    assert_eq!(first.svids[0].spiffe_id, "spiffe://example.org/w");
    assert!(stream.message().await.expect("clean end").is_none());

    client
        .fetch_x509_bundles(with_header(wl::X509BundlesRequest {}))
        .await
        .expect("FetchX509Bundles");

    let jwt = client
        .fetch_jwtsvid(with_header(wl::JwtsvidRequest {
            audience: vec!["a".to_owned(), "b".to_owned()],
            spiffe_id: String::new(),
        }))
        .await
        .expect("FetchJWTSVID")
        .into_inner();
    assert_eq!(jwt.svids[0].svid, "a,b");

    client
        .fetch_jwt_bundles(with_header(wl::JwtBundlesRequest {}))
        .await
        .expect("FetchJWTBundles");

    let status = client
        .validate_jwtsvid(with_header(wl::ValidateJwtsvidRequest::default()))
        .await
        .expect_err("server rejects");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(status.message(), "bad token");

    // Without the security header the (test) server refuses, which shows the
    // metadata travels as sent.
    let status = client
        .fetch_jwtsvid(wl::JwtsvidRequest::default())
        .await
        .expect_err("no header");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);

    assert_eq!(
        *paths.lock().expect("paths lock"),
        [
            "/SpiffeWorkloadAPI/FetchX509SVID",
            "/SpiffeWorkloadAPI/FetchX509Bundles",
            "/SpiffeWorkloadAPI/FetchJWTSVID",
            "/SpiffeWorkloadAPI/FetchJWTBundles",
            "/SpiffeWorkloadAPI/ValidateJWTSVID",
            "/SpiffeWorkloadAPI/FetchJWTSVID",
        ]
    );
}

/// A node attestation server that plays the happy path: `Challenge` after
/// `Hello`, `AttestResult` after `ChallengeResponse`.
struct ScriptedIssuer;

#[tonic::async_trait]
impl node::node_attestation_server::NodeAttestation for ScriptedIssuer {
    type AttestStream = BoxStream<node::AttestResponse>;

    async fn attest(
        &self,
        request: Request<tonic::Streaming<node::AttestRequest>>,
    ) -> Result<Response<Self::AttestStream>, Status> {
        use node::attest_request::Step as Req;
        use node::attest_response::Step as Resp;
        let mut incoming = request.into_inner();
        let mut replies = Vec::new();
        while let Some(message) = incoming.message().await? {
            let reply = match message.step {
                Some(Req::Hello(hello)) => Resp::Challenge(node::Challenge {
                    nonce: hello.ak_public,
                    pcr_selection: vec![node::PcrSelection {
                        hash: node::HashAlgorithm::Sha256.into(),
                        pcrs: hello.node_key_pcrs,
                    }],
                    ..Default::default()
                }),
                Some(Req::ChallengeResponse(response)) => Resp::Result(node::AttestResult {
                    spiffe_id: format!("quoted {} bytes", response.quote_attest.len()),
                    ..Default::default()
                }),
                None => {
                    return Err(Status::invalid_argument("unexpected step"));
                }
            };
            replies.push(Ok(node::AttestResponse { step: Some(reply) }));
        }
        Ok(Response::new(Box::pin(tokio_stream::iter(replies))))
    }
}

#[tokio::test]
async fn node_attestation_is_one_bidirectional_stream() {
    use node::attest_response::Step;
    use node::node_attestation_client::NodeAttestationClient;
    use node::node_attestation_server::{NodeAttestationServer, SERVICE_NAME};

    assert_eq!(SERVICE_NAME, "rootmark.node.v1.NodeAttestation");

    let paths = Arc::new(Mutex::new(Vec::new()));
    let mut client = NodeAttestationClient::new(RecordPaths {
        inner: NodeAttestationServer::new(ScriptedIssuer),
        paths: Arc::clone(&paths),
    });

    let outgoing = tokio_stream::iter([
        node::AttestRequest {
            step: Some(node::attest_request::Step::Hello(node::Hello {
                ak_public: vec![9, 9],
                node_key_pcrs: vec![0, 2, 4, 7],
                ..Default::default()
            })),
        },
        node::AttestRequest {
            step: Some(node::attest_request::Step::ChallengeResponse(
                node::ChallengeResponse {
                    quote_attest: vec![0; 5],
                    ..Default::default()
                },
            )),
        },
    ]);
    let mut incoming = client.attest(outgoing).await.expect("Attest").into_inner();

    let Some(Step::Challenge(challenge)) = incoming.message().await.expect("ok").expect("1").step
    else {
        panic!("expected a Challenge first");
    };
    assert_eq!(challenge.nonce, [9, 9]);
    assert_eq!(challenge.pcr_selection[0].pcrs, [0, 2, 4, 7]);

    let Some(Step::Result(result)) = incoming.message().await.expect("ok").expect("2").step else {
        panic!("expected a Result second");
    };
    assert_eq!(result.spiffe_id, "quoted 5 bytes");
    assert!(incoming.message().await.expect("clean end").is_none());

    assert_eq!(
        *paths.lock().expect("paths lock"),
        ["/rootmark.node.v1.NodeAttestation/Attest"]
    );
}
