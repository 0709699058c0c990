//! The Workload API's HTTP/2 server (`rootmark_attestor::http2`) over real
//! Unix sockets: against a real client (the `h2` crate, which tonic uses)
//! for what clients do, and against hand-written frames for what they
//! must not do.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body::{Body, Frame};
use rootmark_attestor::http2::frame::{self, ErrorCode, FrameHeader, flag, kind, setting};
use rootmark_attestor::http2::{MAX_CONCURRENT_STREAMS, RequestBody, serve};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{UnixListener, UnixStream};

// ---------------------------------------------------------------- server

/// A response body for the test service: some chunks then trailers, or a
/// body that never ends. Counts its drops, so tests can see the server let
/// go of a stream.
struct TestBody {
    chunks: VecDeque<Bytes>,
    trailers: Option<HeaderMap>,
    endless: bool,
    /// The request body, kept unread while the response lives.
    _request: Option<RequestBody>,
    counters: Arc<Counters>,
}

/// What the test service saw, for the tests to check.
#[derive(Default)]
struct Counters {
    /// Response bodies the server dropped.
    dropped: AtomicUsize,
    /// Request bodies read to their end (or error) by a task of their own.
    bodies_ended: AtomicUsize,
}

impl Drop for TestBody {
    fn drop(&mut self) {
        self.counters.dropped.fetch_add(1, Ordering::SeqCst);
    }
}

impl Body for TestBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Some(chunk) = self.chunks.pop_front() {
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        if self.endless {
            // Never woken: the stream idles until the client goes.
            return Poll::Pending;
        }
        Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }
}

fn grpc_ok() -> HeaderMap {
    let mut t = HeaderMap::new();
    t.insert("grpc-status", HeaderValue::from_static("0"));
    t
}

/// `/echo` returns the request body, `/big/N` returns N bytes (0..=255
/// repeating). The rest send headers and then nothing, forever: `/hold`
/// keeps the request body unread, `/drop-body` drops it, `/spawn-read`
/// reads it in a task of its own (as tonic-reflection does).
async fn handle(request: Request<RequestBody>, counters: Arc<Counters>) -> Response<TestBody> {
    let path = request.uri().path().to_owned();
    let mut body = TestBody {
        chunks: VecDeque::new(),
        trailers: Some(grpc_ok()),
        endless: false,
        _request: None,
        counters: Arc::clone(&counters),
    };
    if path == "/echo" {
        let mut incoming = request.into_body();
        while let Some(frame) =
            std::future::poll_fn(|cx| Pin::new(&mut incoming).poll_frame(cx)).await
        {
            if let Ok(data) = frame.expect("request body").into_data() {
                body.chunks.push_back(data);
            }
        }
    } else if let Some(n) = path.strip_prefix("/big/") {
        let n: usize = n.parse().expect("size");
        let data: Vec<u8> = (0..n).map(|i| (i % 256) as u8).collect();
        body.chunks.push_back(Bytes::from(data));
    } else if path == "/hold" {
        body.endless = true;
        body._request = Some(request.into_body());
    } else if path == "/drop-body" {
        body.endless = true;
    } else if path == "/spawn-read" {
        body.endless = true;
        let mut incoming = request.into_body();
        tokio::spawn(async move {
            while let Some(Ok(_)) =
                std::future::poll_fn(|cx| Pin::new(&mut incoming).poll_frame(cx)).await
            {
            }
            counters.bodies_ended.fetch_add(1, Ordering::SeqCst);
        });
    }
    Response::builder()
        .header("content-type", "application/grpc")
        .body(body)
        .expect("response")
}

struct TestServer {
    dir: tempfile::TempDir,
    counters: Arc<Counters>,
    task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    async fn start() -> TestServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let listener = UnixListener::bind(dir.path().join("h2.sock")).expect("bind");
        let counters = Arc::new(Counters::default());
        let counter = Arc::clone(&counters);
        let service = tower::service_fn(move |request: Request<RequestBody>| {
            let counter = Arc::clone(&counter);
            async move { Ok::<_, std::convert::Infallible>(handle(request, counter).await) }
        });
        let incoming = futures_util::stream::unfold(listener, |listener| async move {
            let (socket, _) = listener.accept().await.ok()?;
            Some(((socket, ()), listener))
        });
        let task = tokio::spawn(serve(incoming, service));
        TestServer {
            dir,
            counters,
            task,
        }
    }

    async fn connect(&self) -> UnixStream {
        UnixStream::connect(self.dir.path().join("h2.sock"))
            .await
            .expect("connect")
    }

    async fn h2_client(&self) -> h2::client::SendRequest<Bytes> {
        let (client, connection) = h2::client::handshake(self.connect().await)
            .await
            .expect("h2 handshake");
        tokio::spawn(connection);
        client
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn post(path: &str) -> Request<()> {
    Request::post(format!("http://localhost{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .expect("request")
}

/// Reads a whole response body through the h2 client, returning what it
/// read and the trailers.
async fn read_all(response: Response<h2::RecvStream>) -> (Vec<u8>, Option<HeaderMap>) {
    let mut body = response.into_body();
    let mut read = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.expect("data");
        body.flow_control()
            .release_capacity(chunk.len())
            .expect("release");
        read.extend_from_slice(&chunk);
    }
    let trailers = body.trailers().await.expect("trailers");
    (read, trailers)
}

// ------------------------------------------------------- with a real client

#[tokio::test]
async fn a_request_body_is_echoed_with_trailers() {
    let server = TestServer::start().await;
    let mut client = server.h2_client().await;
    let (response, mut send) = client.send_request(post("/echo"), false).expect("send");
    send.send_data(Bytes::from_static(b"hello "), false)
        .expect("data");
    send.send_data(Bytes::from_static(b"workload"), true)
        .expect("data");
    let response = response.await.expect("response");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/grpc");
    let (body, trailers) = read_all(response).await;
    assert_eq!(body, b"hello workload");
    assert_eq!(trailers.expect("trailers")["grpc-status"], "0");
}

#[tokio::test]
async fn a_response_larger_than_every_window_arrives_whole() {
    // 1 MiB through the client's default 64 KiB stream and connection
    // windows: the server must wait for WINDOW_UPDATEs, and send no more
    // than each allows (h2 ends the connection with FLOW_CONTROL_ERROR if
    // it did).
    let server = TestServer::start().await;
    let mut client = server.h2_client().await;
    let (response, _) = client
        .send_request(post("/big/1048576"), true)
        .expect("send");
    let (body, trailers) = read_all(response.await.expect("response")).await;
    assert_eq!(body.len(), 1_048_576);
    assert!(body.iter().enumerate().all(|(i, b)| *b == (i % 256) as u8));
    assert!(trailers.is_some());
}

#[tokio::test]
async fn many_streams_on_one_connection_are_served_concurrently() {
    let server = TestServer::start().await;
    let client = server.h2_client().await;
    let mut tasks = Vec::new();
    for i in 0..300usize {
        let mut client = client.clone();
        tasks.push(tokio::spawn(async move {
            client = client.ready().await.expect("ready");
            let (response, mut send) = client.send_request(post("/echo"), false).expect("send");
            // Over 256 bytes: h2 clients end connections that carry many
            // tiny DATA frames (its `too_many_data_frames` guard).
            let message = format!("{i:0>300}");
            send.send_data(Bytes::from(message.clone()), true)
                .expect("data");
            let (body, _) = read_all(response.await.expect("response")).await;
            assert_eq!(body, message.as_bytes());
        }));
    }
    for task in tasks {
        task.await.expect("stream");
    }
}

#[tokio::test]
async fn a_stream_the_client_cancels_is_dropped_by_the_server() {
    let server = TestServer::start().await;
    let mut client = server.h2_client().await;
    let (response, _) = client.send_request(post("/hold"), true).expect("send");
    let response = response.await.expect("headers arrive before the body");
    assert_eq!(server.counters.dropped.load(Ordering::SeqCst), 0);
    // Dropping the response makes h2 send RST_STREAM(CANCEL).
    drop(response);
    wait_for(|| server.counters.dropped.load(Ordering::SeqCst) == 1).await;
}

#[tokio::test]
async fn a_closed_connection_drops_its_idle_streams() {
    let server = TestServer::start().await;
    let mut client = server.h2_client().await;
    let mut held = Vec::new();
    for _ in 0..5 {
        let (response, _) = client.send_request(post("/hold"), true).expect("send");
        held.push(response.await.expect("headers"));
    }
    drop(held);
    drop(client);
    wait_for(|| server.counters.dropped.load(Ordering::SeqCst) == 5).await;
}

async fn wait_for(condition: impl Fn() -> bool) {
    for _ in 0..200 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not met within 2 s");
}

// ----------------------------------------------------------- raw frames

/// A client that writes frames by hand.
struct RawClient {
    socket: UnixStream,
    buf: Vec<u8>,
}

/// A frame as read back.
#[derive(Debug)]
struct Received {
    header: FrameHeader,
    payload: Vec<u8>,
}

impl Received {
    fn goaway(&self) -> (ErrorCode, String) {
        assert_eq!(
            self.header.kind,
            kind::GOAWAY,
            "expected GOAWAY, got {self:?}"
        );
        let code = u32::from_be_bytes(self.payload[4..8].try_into().expect("code"));
        (
            ErrorCode(code),
            String::from_utf8_lossy(&self.payload[8..]).into_owned(),
        )
    }

    fn rst_code(&self) -> ErrorCode {
        assert_eq!(
            self.header.kind,
            kind::RST_STREAM,
            "expected RST_STREAM, got {self:?}"
        );
        ErrorCode(u32::from_be_bytes(
            self.payload[..4].try_into().expect("code"),
        ))
    }
}

impl RawClient {
    /// Connects and sends the preface and `settings`, reads the server's
    /// SETTINGS and its acknowledgement of ours, and acknowledges the
    /// server's.
    async fn handshake(server: &TestServer, settings: &[(u16, u32)]) -> (RawClient, Received) {
        let mut client = RawClient {
            socket: server.connect().await,
            buf: Vec::new(),
        };
        let mut out = frame::PREFACE.to_vec();
        frame::put_settings(&mut out, settings);
        client.send(&out).await;
        let server_settings = client.next().await.expect("server SETTINGS");
        assert_eq!(server_settings.header.kind, kind::SETTINGS);
        assert!(!server_settings.header.has(flag::ACK));
        let ack = client.next().await.expect("SETTINGS ack");
        assert_eq!(
            (ack.header.kind, ack.header.flags),
            (kind::SETTINGS, flag::ACK)
        );
        let mut ack = Vec::new();
        frame::put_settings_ack(&mut ack);
        client.send(&ack).await;
        (client, server_settings)
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.socket.write_all(bytes).await.expect("write");
    }

    /// The next frame, or `None` once the server closed the connection.
    async fn next(&mut self) -> Option<Received> {
        loop {
            if let Some(header) = FrameHeader::parse(&self.buf)
                && self.buf.len() >= frame::HEADER_LEN + header.len
            {
                let payload = self.buf[frame::HEADER_LEN..frame::HEADER_LEN + header.len].to_vec();
                self.buf.drain(..frame::HEADER_LEN + header.len);
                return Some(Received { header, payload });
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(Duration::from_secs(5), self.socket.read(&mut chunk))
                .await
                .expect("the server answers within 5 s")
                .expect("read");
            if n == 0 {
                return None;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Opens stream `id` with a POST to `path` and returns the response
    /// head, checked to be HEADERS on that stream.
    async fn open(&mut self, id: u32, path: &str, end_stream: bool) -> Received {
        let flags = if end_stream {
            flag::END_HEADERS | flag::END_STREAM
        } else {
            flag::END_HEADERS
        };
        self.send(&headers_frame(id, &request_block(path, &[]), flags))
            .await;
        let head = self.next_significant().await.expect("response head");
        assert_eq!(
            (head.header.kind, head.header.stream_id),
            (kind::HEADERS, id)
        );
        head
    }

    /// The next frame that is not a WINDOW_UPDATE or PING.
    async fn next_significant(&mut self) -> Option<Received> {
        loop {
            let f = self.next().await?;
            if f.header.kind != kind::WINDOW_UPDATE {
                return Some(f);
            }
        }
    }
}

/// A request header block as literals without indexing.
fn request_block(path: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut fields = vec![
        (":method", "POST"),
        (":scheme", "http"),
        (":path", path),
        ("content-type", "application/grpc"),
    ];
    fields.extend_from_slice(extra);
    let mut block = Vec::new();
    for (name, value) in fields {
        block.push(0x00);
        literal(&mut block, name.as_bytes());
        literal(&mut block, value.as_bytes());
    }
    block
}

fn literal(block: &mut Vec<u8>, s: &[u8]) {
    assert!(s.len() < 127, "test literals are short");
    block.push(s.len() as u8);
    block.extend_from_slice(s);
}

fn headers_frame(stream_id: u32, block: &[u8], flags: u8) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(block.len() as u32).to_be_bytes()[1..]);
    out.push(kind::HEADERS);
    out.push(flags);
    out.extend_from_slice(&stream_id.to_be_bytes());
    out.extend_from_slice(block);
    out
}

fn raw_frame(kind: u8, flags: u8, stream_id: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream_id.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

fn decode(block: &[u8]) -> Vec<(String, String)> {
    let mut fields = Vec::new();
    rootmark_attestor::http2::hpack::HpackDecoder::new(4096)
        .decode(block, |n, v| {
            fields.push((
                String::from_utf8(n.to_vec()).expect("name"),
                String::from_utf8(v.to_vec()).expect("value"),
            ));
            Ok::<(), ()>(())
        })
        .expect("hpack")
        .expect("all fields");
    fields
}

#[tokio::test]
async fn the_server_announces_its_stream_and_header_limits() {
    let server = TestServer::start().await;
    let (_, settings) = RawClient::handshake(&server, &[]).await;
    let announced = frame::parse_settings(&settings.payload).expect("settings");
    assert!(announced.contains(&frame::Setting {
        id: setting::MAX_CONCURRENT_STREAMS,
        value: MAX_CONCURRENT_STREAMS
    }));
    assert!(
        announced
            .iter()
            .any(|s| s.id == setting::MAX_HEADER_LIST_SIZE)
    );
}

#[tokio::test]
async fn a_client_that_is_not_http2_gets_goaway_protocol_error() {
    let server = TestServer::start().await;
    let mut client = RawClient {
        socket: server.connect().await,
        buf: Vec::new(),
    };
    client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    // The server's SETTINGS goes out first; then the GOAWAY.
    assert_eq!(
        client.next().await.expect("settings").header.kind,
        kind::SETTINGS
    );
    let (code, reason) = client.next().await.expect("goaway").goaway();
    assert_eq!(code, ErrorCode::PROTOCOL_ERROR);
    assert!(reason.contains("preface"), "{reason}");
    assert!(client.next().await.is_none(), "the connection is closed");
}

#[tokio::test]
async fn the_first_frame_must_be_settings() {
    let server = TestServer::start().await;
    let mut client = RawClient {
        socket: server.connect().await,
        buf: Vec::new(),
    };
    let mut out = frame::PREFACE.to_vec();
    out.extend(raw_frame(kind::PING, 0, 0, &[0; 8]));
    client.send(&out).await;
    assert_eq!(
        client.next().await.expect("settings").header.kind,
        kind::SETTINGS
    );
    let (code, reason) = client.next().await.expect("goaway").goaway();
    assert_eq!(code, ErrorCode::PROTOCOL_ERROR);
    assert!(reason.contains("must be SETTINGS"), "{reason}");
}

#[tokio::test]
async fn a_ping_is_answered_with_its_payload() {
    let server = TestServer::start().await;
    let (mut client, _) = RawClient::handshake(&server, &[]).await;
    client.send(&raw_frame(kind::PING, 0, 0, b"rootmark")).await;
    let pong = client.next().await.expect("ping ack");
    assert_eq!(
        (pong.header.kind, pong.header.flags),
        (kind::PING, flag::ACK)
    );
    assert_eq!(pong.payload, b"rootmark");
}

#[tokio::test]
async fn an_oversized_frame_is_a_frame_size_error() {
    let server = TestServer::start().await;
    let (mut client, _) = RawClient::handshake(&server, &[]).await;
    client.send(&raw_frame(0xfa, 0, 0, &vec![0; 16_385])).await;
    let (code, reason) = client.next().await.expect("goaway").goaway();
    assert_eq!(code, ErrorCode::FRAME_SIZE_ERROR);
    assert!(reason.contains("16385-byte frame"), "{reason}");
}

#[tokio::test]
async fn a_frame_between_headers_and_continuation_is_a_protocol_error() {
    let server = TestServer::start().await;
    let (mut client, _) = RawClient::handshake(&server, &[]).await;
    let block = request_block("/echo", &[]);
    // HEADERS without END_HEADERS, then a PING instead of CONTINUATION.
    client.send(&headers_frame(1, &block, 0)).await;
    client.send(&raw_frame(kind::PING, 0, 0, &[0; 8])).await;
    let (code, reason) = client.next().await.expect("goaway").goaway();
    assert_eq!(code, ErrorCode::PROTOCOL_ERROR);
    assert!(
        reason.contains("expected CONTINUATION on stream 1"),
        "{reason}"
    );
}

#[tokio::test]
async fn a_header_block_split_over_continuations_is_served() {
    let server = TestServer::start().await;
    let (mut client, _) = RawClient::handshake(&server, &[]).await;
    let block = request_block("/big/3", &[]);
    let (a, b) = block.split_at(10);
    client.send(&headers_frame(1, a, flag::END_STREAM)).await;
    client
        .send(&raw_frame(kind::CONTINUATION, flag::END_HEADERS, 1, b))
        .await;
    let head = client.next_significant().await.expect("headers");
    assert_eq!(head.header.kind, kind::HEADERS);
    assert_eq!(decode(&head.payload)[0], (":status".into(), "200".into()));
    let data = client.next_significant().await.expect("data");
    assert_eq!(
        (data.header.kind, data.payload.as_slice()),
        (kind::DATA, &[0u8, 1, 2][..])
    );
    let trailers = client.next_significant().await.expect("trailers");
    assert!(trailers.header.has(flag::END_STREAM));
    assert!(decode(&trailers.payload).contains(&("grpc-status".into(), "0".into())));
}

#[tokio::test]
async fn a_client_opening_an_even_stream_gets_goaway() {
    let server = TestServer::start().await;
    let (mut client, _) = RawClient::handshake(&server, &[]).await;
    let block = request_block("/echo", &[]);
    client
        .send(&headers_frame(
            2,
            &block,
            flag::END_HEADERS | flag::END_STREAM,
        ))
        .await;
    let (code, reason) = client.next().await.expect("goaway").goaway();
    assert_eq!(code, ErrorCode::PROTOCOL_ERROR);
    assert!(reason.contains("even stream 2"), "{reason}");
}

#[tokio::test]
async fn a_malformed_request_is_reset_and_the_connection_goes_on() {
    let server = TestServer::start().await;
    let (mut client, _) = RawClient::handshake(&server, &[]).await;
    let bad = request_block("/echo", &[("connection", "keep-alive")]);
    client
        .send(&headers_frame(
            1,
            &bad,
            flag::END_HEADERS | flag::END_STREAM,
        ))
        .await;
    let rst = client.next_significant().await.expect("rst");
    assert_eq!(rst.header.stream_id, 1);
    assert_eq!(rst.rst_code(), ErrorCode::PROTOCOL_ERROR);
    // The connection still serves the next request.
    client.open(3, "/big/1", true).await;
}

#[tokio::test]
async fn data_beyond_the_stream_window_is_a_flow_control_error() {
    let server = TestServer::start().await;
    let (mut client, _) = RawClient::handshake(&server, &[]).await;
    // The response head shows the handler ran and holds a response body.
    client.open(1, "/hold", false).await;
    // 65,535 bytes fill the stream's window (the /hold handler never reads
    // them); one more byte is over it. (The server credits the connection
    // window as data arrives, so only the stream window binds.)
    let chunk = vec![0u8; 16_384];
    for _ in 0..3 {
        client.send(&raw_frame(kind::DATA, 0, 1, &chunk)).await;
    }
    client
        .send(&raw_frame(kind::DATA, 0, 1, &chunk[..16_383]))
        .await;
    client.send(&raw_frame(kind::DATA, 0, 1, &[0])).await;
    let rst = client.next_significant().await.expect("rst");
    assert_eq!(rst.header.stream_id, 1);
    assert_eq!(rst.rst_code(), ErrorCode::FLOW_CONTROL_ERROR);
    // The server dropped the stream's response.
    wait_for(|| server.counters.dropped.load(Ordering::SeqCst) == 1).await;
}

#[tokio::test]
async fn a_stream_over_the_concurrency_limit_is_refused() {
    let server = TestServer::start().await;
    let (mut client, _) = RawClient::handshake(&server, &[]).await;
    let block = request_block("/hold", &[]);
    let limit = MAX_CONCURRENT_STREAMS;
    let mut out = Vec::new();
    for i in 0..=limit {
        out.extend(headers_frame(
            2 * i + 1,
            &block,
            flag::END_HEADERS | flag::END_STREAM,
        ));
    }
    client.send(&out).await;
    let refused = 2 * limit + 1;
    loop {
        let f = client.next_significant().await.expect("frame");
        if f.header.kind == kind::RST_STREAM {
            assert_eq!(
                f.header.stream_id, refused,
                "only the stream over the limit"
            );
            assert_eq!(f.rst_code(), ErrorCode::REFUSED_STREAM);
            break;
        }
        assert_eq!(f.header.kind, kind::HEADERS);
    }
}

#[tokio::test]
async fn response_data_waits_for_the_clients_window() {
    let server = TestServer::start().await;
    // The client allows nothing on new streams at first.
    let (mut client, _) = RawClient::handshake(&server, &[(setting::INITIAL_WINDOW_SIZE, 0)]).await;
    client.open(1, "/big/100", true).await;
    // Nothing more comes while the window is shut: a PING answered next
    // proves no DATA was queued before it.
    client.send(&raw_frame(kind::PING, 0, 0, b"nothing?")).await;
    let pong = client.next_significant().await.expect("pong");
    assert_eq!(pong.header.kind, kind::PING);
    // 40 bytes of window: exactly 40 bytes of DATA.
    client
        .send(&raw_frame(kind::WINDOW_UPDATE, 0, 1, &40u32.to_be_bytes()))
        .await;
    let data = client.next_significant().await.expect("data");
    assert_eq!((data.header.kind, data.payload.len()), (kind::DATA, 40));
    assert_eq!(data.payload[..], (0..40).collect::<Vec<u8>>()[..]);
    // The rest once the window opens.
    client
        .send(&raw_frame(
            kind::WINDOW_UPDATE,
            0,
            1,
            &1000u32.to_be_bytes(),
        ))
        .await;
    let data = client.next_significant().await.expect("data");
    assert_eq!((data.header.kind, data.payload.len()), (kind::DATA, 60));
    let trailers = client.next_significant().await.expect("trailers");
    assert_eq!(trailers.header.kind, kind::HEADERS);
    assert!(trailers.header.has(flag::END_STREAM));
}

#[tokio::test]
async fn a_window_update_past_two_to_the_31_ends_the_connection() {
    let server = TestServer::start().await;
    let (mut client, _) = RawClient::handshake(&server, &[]).await;
    client
        .send(&raw_frame(
            kind::WINDOW_UPDATE,
            0,
            0,
            &frame::MAX_WINDOW.to_be_bytes(),
        ))
        .await;
    let (code, _) = client.next().await.expect("goaway").goaway();
    assert_eq!(code, ErrorCode::FLOW_CONTROL_ERROR);
}

#[tokio::test]
async fn a_hpack_error_ends_the_connection_with_compression_error() {
    let server = TestServer::start().await;
    let (mut client, _) = RawClient::handshake(&server, &[]).await;
    // Indexed field 0 does not exist.
    client
        .send(&headers_frame(
            1,
            &[0x80],
            flag::END_HEADERS | flag::END_STREAM,
        ))
        .await;
    let (code, _) = client.next().await.expect("goaway").goaway();
    assert_eq!(code, ErrorCode::COMPRESSION_ERROR);
}

#[tokio::test]
async fn a_header_list_over_16_kib_ends_the_connection_with_enhance_your_calm() {
    let server = TestServer::start().await;
    let (mut client, _) = RawClient::handshake(&server, &[]).await;
    // A 100-byte field put in the dynamic table, then referenced 200
    // times: a 300-byte block that decodes to over 26 KB.
    let mut block = request_block("/echo", &[]);
    block.push(0x40);
    literal(&mut block, b"x-big");
    literal(&mut block, &[b'v'; 100]);
    block.extend(std::iter::repeat_n(0x80 | 62, 200));
    client
        .send(&headers_frame(
            1,
            &block,
            flag::END_HEADERS | flag::END_STREAM,
        ))
        .await;
    let (code, reason) = client.next_significant().await.expect("goaway").goaway();
    assert_eq!(code, ErrorCode::ENHANCE_YOUR_CALM);
    assert!(reason.contains("16384-byte limit"), "{reason}");
}

#[tokio::test]
async fn data_for_a_body_the_service_dropped_is_credited_back() {
    let server = TestServer::start().await;
    let (mut client, _) = RawClient::handshake(&server, &[]).await;
    client.open(1, "/drop-body", false).await;
    // Twice the stream window, without waiting for updates: a server that
    // kept (or kept counting) the discarded data would reset the stream.
    let chunk = vec![0u8; 16_384];
    for _ in 0..8 {
        client.send(&raw_frame(kind::DATA, 0, 1, &chunk)).await;
    }
    client.send(&raw_frame(kind::PING, 0, 0, b"after it")).await;
    let mut stream_credit = 0u32;
    loop {
        let f = client.next().await.expect("frame");
        match f.header.kind {
            kind::WINDOW_UPDATE if f.header.stream_id == 1 => {
                stream_credit += frame::parse_u31(&f.payload).expect("increment");
            }
            kind::WINDOW_UPDATE => {}
            kind::PING => break,
            other => panic!("unexpected frame {other:#x}: {f:?}"),
        }
    }
    assert!(stream_credit >= 65_536, "credited {stream_credit}");
}

#[tokio::test]
async fn a_body_read_in_another_task_ends_when_the_connection_closes() {
    let server = TestServer::start().await;
    let (mut client, _) = RawClient::handshake(&server, &[]).await;
    client.open(1, "/spawn-read", false).await;
    client.send(&raw_frame(kind::DATA, 0, 1, b"partial")).await;
    assert_eq!(server.counters.bodies_ended.load(Ordering::SeqCst), 0);
    // The client goes away with the request body unfinished.
    drop(client);
    wait_for(|| server.counters.bodies_ended.load(Ordering::SeqCst) == 1).await;
    wait_for(|| server.counters.dropped.load(Ordering::SeqCst) == 1).await;
}
