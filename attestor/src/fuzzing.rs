//! Entry points for the fuzz targets in `fuzz/` and for the corpus replay
//! test (`tests/fuzz_corpus.rs`), so both drive exactly the same code. Each
//! function feeds arbitrary bytes to one parser; the only failure is a panic.
//!
//! Not API: the workload parsers it reaches are crate-private.

use std::path::Path;

use crate::workload::process::parse_stat;
use crate::workload::selectors::systemd_unit_from_cgroup;
use crate::workload::users::{DbKind, parse_db};

/// The names of every target, matching the files in `fuzz/fuzz_targets/`.
pub const TARGETS: &[&str] = &[
    "attestor_config",
    "proc_stat",
    "cgroup",
    "name_db",
    "certificate_bundle",
    "http2_headers",
    "http2_connection",
];

/// Runs the target called `name` on `data`; `false` if there is no such target.
pub fn run(name: &str, data: &[u8]) -> bool {
    match name {
        "attestor_config" => attestor_config(data),
        "proc_stat" => proc_stat(data),
        "cgroup" => cgroup(data),
        "name_db" => name_db(data),
        "certificate_bundle" => certificate_bundle(data),
        "http2_headers" => http2_headers(data),
        "http2_connection" => http2_connection(data),
        _ => return false,
    }
    true
}

/// `attestor.toml`; a valid configuration also derives everything the
/// daemon derives from it.
pub fn attestor_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = crate::config::AttestorConfig::parse(text, Path::new("fuzz.toml")) {
        let _ = config.trust_domain();
        let _ = config.issuer_spiffe_id();
        let _ = config.tpm.ek_algorithm();
        let _ = config.tpm.ak_algorithm();
        let _ = config.tpm.boot_selection();
        let _ = config.tpm.release_between_operations();
    }
}

/// `/proc/<pid>/stat`.
pub fn proc_stat(data: &[u8]) {
    if let Ok(stat) = parse_stat(data) {
        let _ = stat.is_gone();
    }
}

/// `/proc/<pid>/cgroup` → systemd unit.
pub fn cgroup(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(unit) = systemd_unit_from_cgroup(text) {
        assert!(!unit.is_empty() && unit.contains('.'), "unit {unit:?}");
    }
}

/// `/etc/passwd` and `/etc/group`.
pub fn name_db(data: &[u8]) {
    for kind in [DbKind::Passwd, DbKind::Group] {
        for name in parse_db(data, kind).values() {
            assert!(!name.is_empty(), "empty name");
        }
    }
}

/// The issuer bundle file (`issuer.bundle_path`): PEM or concatenated DER.
pub fn certificate_bundle(data: &[u8]) {
    if let Ok(certs) = crate::daemon::parse_certificates(data) {
        assert!(!certs.is_empty(), "Ok with no certificate");
    }
}

/// HTTP/2 header blocks: the first byte says where the request head ends;
/// the rest is decoded as trailers with the same HPACK state.
pub fn http2_headers(data: &[u8]) {
    use crate::http2::headers::{HeaderDecoder, encode_response};
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let (head, trailers) = rest.split_at(usize::from(split).min(rest.len()));
    let mut decoder = HeaderDecoder::default();
    if let Ok(request) = decoder.request(head) {
        assert!(request.uri().path().starts_with('/') || request.uri().path() == "*");
        // Whatever was accepted encodes back as a response head.
        let block = encode_response(http::StatusCode::OK, request.headers());
        assert!(!block.is_empty());
    }
    let _ = decoder.trailers(trailers);
}

/// A whole HTTP/2 connection: the client preface, then `data` as the
/// client's bytes, against an echo service, until the client closes its
/// side. The server must neither panic nor hang.
pub fn http2_connection(data: &[u8]) {
    use std::convert::Infallible;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    runtime.block_on(async {
        let Ok((server, mut client)) = tokio::net::UnixStream::pair() else {
            return;
        };
        let echo = tower::service_fn(
            |request: http::Request<crate::http2::RequestBody>| async move {
                let body = collect_body(request.into_body()).await;
                Ok::<_, Infallible>(http::Response::new(FullBody(Some(body))))
            },
        );
        let serving = tokio::spawn(crate::http2::serve_connection(server, echo, ()));
        let mut input = crate::http2::frame::PREFACE.to_vec();
        input.extend_from_slice(data);
        let (mut read_half, mut write_half) = client.split();
        let write = async move {
            let _ = write_half.write_all(&input).await;
            let _ = write_half.shutdown().await;
        };
        let read = async move {
            let mut sink = Vec::new();
            let _ = read_half.read_to_end(&mut sink).await;
        };
        let io = async { tokio::join!(write, read) };
        let finished = tokio::time::timeout(std::time::Duration::from_secs(10), async {
            io.await;
            serving.await
        })
        .await;
        match finished {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("the connection task failed: {e}"),
            Err(_) => panic!("the connection did not end after the client closed"),
        }
    });
}

/// Reads a request body to its end (errors end it early).
async fn collect_body(mut body: crate::http2::RequestBody) -> bytes::Bytes {
    use http_body::Body as _;
    let mut all = Vec::new();
    while let Some(Ok(frame)) =
        std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await
    {
        if let Ok(data) = frame.into_data() {
            all.extend_from_slice(&data);
        }
    }
    bytes::Bytes::from(all)
}

/// A one-chunk response body.
struct FullBody(Option<bytes::Bytes>);

impl http_body::Body for FullBody {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, std::convert::Infallible>>>
    {
        std::task::Poll::Ready(self.0.take().map(|b| Ok(http_body::Frame::data(b))))
    }
}
