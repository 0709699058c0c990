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
/// client's bytes, then a GOAWAY, against a service that answers every
/// request with a message and trailers. The server must neither panic nor
/// hang: it ends after the GOAWAY once its streams are done, or, if `data`
/// left it waiting (a partial frame), when the client closes its side.
pub fn http2_connection(data: &[u8]) {
    use std::convert::Infallible;
    use std::time::Duration;
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
        let answer = tower::service_fn(
            |_request: http::Request<crate::http2::RequestBody>| async move {
                let body = FixedBody {
                    data: Some(bytes::Bytes::from_static(b"\0\0\0\0\x02ok")),
                    trailers: true,
                };
                Ok::<_, Infallible>(http::Response::new(body))
            },
        );
        let mut serving = tokio::spawn(crate::http2::serve_connection(server, answer, ()));
        let mut input = crate::http2::frame::PREFACE.to_vec();
        input.extend_from_slice(data);
        crate::http2::frame::put_goaway(
            &mut input,
            0,
            crate::http2::frame::ErrorCode::NO_ERROR,
            "",
        );
        let (mut read_half, mut write_half) = client.split();
        let drain = async move {
            let mut sink = Vec::new();
            let _ = read_half.read_to_end(&mut sink).await;
        };
        let drive = async {
            let _ = write_half.write_all(&input).await;
            // Let the server work through the input (the I/O driver is
            // polled between yields); real waits would slow the fuzzer.
            for _ in 0..256 {
                if serving.is_finished() {
                    break;
                }
                tokio::task::yield_now().await;
            }
            let _ = write_half.shutdown().await;
            match tokio::time::timeout(Duration::from_secs(10), &mut serving).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => panic!("the connection task failed: {e}"),
                Err(_) => panic!("the connection did not end after the client closed"),
            }
        };
        tokio::join!(drive, drain);
    });
}

/// A response body: one message, then `grpc-status: 0` trailers.
struct FixedBody {
    data: Option<bytes::Bytes>,
    trailers: bool,
}

impl http_body::Body for FixedBody {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, std::convert::Infallible>>>
    {
        if let Some(data) = self.data.take() {
            return std::task::Poll::Ready(Some(Ok(http_body::Frame::data(data))));
        }
        if std::mem::take(&mut self.trailers) {
            let mut trailers = http::HeaderMap::new();
            trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
            return std::task::Poll::Ready(Some(Ok(http_body::Frame::trailers(trailers))));
        }
        std::task::Poll::Ready(None)
    }
}
