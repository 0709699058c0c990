//! Header blocks: decoding a client's request head (HPACK, RFC 7541, see
//! [`super::hpack`], then the HTTP/2 rules of RFC 9113 §8.2–8.3) and
//! encoding response heads.
//!
//! Responses are encoded without the dynamic table (every field a literal
//! "without indexing"), so the connection keeps no encoder state. Each block
//! starts with a table size update to 0: always valid, and it satisfies a
//! client that lowered SETTINGS_HEADER_TABLE_SIZE and expects the update
//! (RFC 7541 §4.2).

use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, Request, StatusCode, Uri};

use super::hpack::HpackDecoder;

/// The dynamic table size this server allows the client's encoder
/// (SETTINGS_HEADER_TABLE_SIZE; the protocol default).
pub const HEADER_TABLE_SIZE: usize = 4_096;

/// The largest header list accepted, counted as RFC 9113 §6.5.2 does
/// (name + value + 32 per field). Advertised as SETTINGS_MAX_HEADER_LIST_SIZE.
pub const MAX_HEADER_LIST_SIZE: usize = 16_384;

/// Why a header block was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// HPACK decoding failed: the connection's compression state is lost
    /// (a connection error, COMPRESSION_ERROR).
    #[error("header block does not decode as HPACK: {0}")]
    Compression(String),
    /// The decoded list is over [`MAX_HEADER_LIST_SIZE`]. Decoding stopped
    /// there, so, as with `Compression`, the connection cannot go on.
    #[error(
        "header list is over the {MAX_HEADER_LIST_SIZE}-byte limit ({size} bytes when decoding stopped)"
    )]
    TooLarge {
        /// The size counted so far.
        size: usize,
    },
    /// The request is malformed (RFC 9113 §8.1.1; a stream error).
    #[error("malformed request: {0}")]
    Malformed(String),
}

/// Decodes HPACK header blocks for one connection (the dynamic table spans
/// every block the client sends on it).
#[derive(Debug)]
pub struct HeaderDecoder {
    hpack: HpackDecoder,
}

impl Default for HeaderDecoder {
    fn default() -> Self {
        HeaderDecoder {
            hpack: HpackDecoder::new(HEADER_TABLE_SIZE),
        }
    }
}

/// A decoded header list, before it is judged as a request or trailers.
struct Fields {
    fields: Vec<(Vec<u8>, Vec<u8>)>,
    size: usize,
}

impl HeaderDecoder {
    /// Decodes every field of `block`, stopping once the list is over
    /// [`MAX_HEADER_LIST_SIZE`] (a small block can reference large table
    /// entries many times, so the limit is on what it decodes to).
    fn fields(&mut self, block: &[u8]) -> Result<Fields, HeaderError> {
        let mut fields = Vec::new();
        let mut size = 0usize;
        let within_limit = self
            .hpack
            .decode(block, |name, value| {
                size = size.saturating_add(name.len() + value.len() + 32);
                if size > MAX_HEADER_LIST_SIZE {
                    return Err(());
                }
                fields.push((name.to_vec(), value.to_vec()));
                Ok(())
            })
            .map_err(|e| HeaderError::Compression(e.to_string()))?;
        if within_limit.is_err() {
            return Err(HeaderError::TooLarge { size });
        }
        Ok(Fields { fields, size })
    }

    /// Decodes a request head: pseudo-headers first (`:method`, `:scheme`,
    /// `:path`, optional `:authority`), then lowercase regular fields, none
    /// of them connection-specific.
    pub fn request(&mut self, block: &[u8]) -> Result<Request<()>, HeaderError> {
        let Fields { fields, .. } = self.fields(block)?;
        let mut method = None;
        let mut scheme = None;
        let mut path = None;
        let mut authority = None;
        let mut headers = HeaderMap::new();
        let mut regular_seen = false;
        for (name, value) in fields {
            if let Some(pseudo) = name.strip_prefix(b":") {
                if regular_seen {
                    return Err(malformed("pseudo-header after a regular field"));
                }
                let slot = match pseudo {
                    b"method" => &mut method,
                    b"scheme" => &mut scheme,
                    b"path" => &mut path,
                    b"authority" => &mut authority,
                    other => {
                        return Err(malformed(format!(
                            "unknown pseudo-header :{}",
                            String::from_utf8_lossy(other)
                        )));
                    }
                };
                if slot.replace(value).is_some() {
                    return Err(malformed(format!(
                        "pseudo-header :{} appears twice",
                        String::from_utf8_lossy(pseudo)
                    )));
                }
                continue;
            }
            regular_seen = true;
            let (name, value) = regular_field(&name, &value)?;
            headers.append(name, value);
        }
        let method = method.ok_or_else(|| malformed(":method is missing"))?;
        let method =
            Method::from_bytes(&method).map_err(|_| malformed(":method is not a method"))?;
        if method == Method::CONNECT {
            return Err(malformed("CONNECT is not served here"));
        }
        let scheme = scheme.ok_or_else(|| malformed(":scheme is missing"))?;
        let path = path.ok_or_else(|| malformed(":path is missing"))?;
        if path.is_empty() {
            return Err(malformed(":path is empty"));
        }
        let mut uri = Uri::builder()
            .scheme(scheme.as_slice())
            .path_and_query(path.as_slice());
        if let Some(authority) = authority.filter(|a| !a.is_empty()) {
            uri = uri.authority(authority.as_slice());
        } else {
            // A Uri with a scheme needs an authority; Unix-socket clients
            // often send none, and nothing here routes on it.
            uri = uri.authority("localhost");
        }
        let uri = uri
            .build()
            .map_err(|e| malformed(format!(":scheme, :authority or :path is invalid: {e}")))?;
        let mut request = Request::new(());
        *request.method_mut() = method;
        *request.uri_mut() = uri;
        *request.version_mut() = http::Version::HTTP_2;
        *request.headers_mut() = headers;
        Ok(request)
    }

    /// Decodes a trailer block (a request's trailing HEADERS): regular
    /// fields only.
    pub fn trailers(&mut self, block: &[u8]) -> Result<HeaderMap, HeaderError> {
        let Fields { fields, size } = self.fields(block)?;
        let _ = size;
        let mut headers = HeaderMap::new();
        for (name, value) in fields {
            if name.starts_with(b":") {
                return Err(malformed("pseudo-header in trailers"));
            }
            let (name, value) = regular_field(&name, &value)?;
            headers.append(name, value);
        }
        Ok(headers)
    }
}

fn malformed(reason: impl Into<String>) -> HeaderError {
    HeaderError::Malformed(reason.into())
}

/// Checks one regular field: a lowercase valid name, a valid value, and
/// not one of the HTTP/1 connection-specific fields RFC 9113 §8.2.2 bans.
fn regular_field(name: &[u8], value: &[u8]) -> Result<(HeaderName, HeaderValue), HeaderError> {
    if name.iter().any(u8::is_ascii_uppercase) {
        return Err(malformed(format!(
            "field name {:?} has uppercase letters",
            String::from_utf8_lossy(name)
        )));
    }
    let name = HeaderName::from_bytes(name).map_err(|_| {
        malformed(format!(
            "field name {:?} is not a valid name",
            String::from_utf8_lossy(name)
        ))
    })?;
    let value = HeaderValue::from_bytes(value)
        .map_err(|_| malformed(format!("field {name} has an invalid value")))?;
    match name.as_str() {
        "connection" | "keep-alive" | "proxy-connection" | "transfer-encoding" | "upgrade" => {
            Err(malformed(format!("connection-specific field {name}")))
        }
        "te" if value != "trailers" => Err(malformed("te other than \"trailers\"")),
        _ => Ok((name, value)),
    }
}

/// Encodes a response head: `:status` then every field, as HPACK literals
/// without indexing.
pub fn encode_response(status: StatusCode, headers: &HeaderMap) -> Vec<u8> {
    let mut block = Vec::with_capacity(64 + headers.len() * 32);
    block.push(TABLE_SIZE_ZERO);
    // Static-table index 8 is ":status: 200"; anything else is a literal
    // with the indexed name :status.
    if status == StatusCode::OK {
        block.push(0x80 | 8);
    } else {
        put_int(&mut block, 0x00, 4, 8);
        put_string(&mut block, status.as_str().as_bytes());
    }
    encode_fields(&mut block, headers);
    block
}

/// Encodes a trailer block.
pub fn encode_trailers(headers: &HeaderMap) -> Vec<u8> {
    let mut block = Vec::with_capacity(16 + headers.len() * 32);
    block.push(TABLE_SIZE_ZERO);
    encode_fields(&mut block, headers);
    block
}

/// A dynamic table size update to 0 (RFC 7541 §6.3).
const TABLE_SIZE_ZERO: u8 = 0x20;

fn encode_fields(block: &mut Vec<u8>, headers: &HeaderMap) {
    for (name, value) in headers {
        // Literal without indexing, new name.
        block.push(0x00);
        put_string(block, name.as_str().as_bytes());
        put_string(block, value.as_bytes());
    }
}

/// An HPACK integer (RFC 7541 §5.1) with an `n`-bit prefix after `high`.
fn put_int(block: &mut Vec<u8>, high: u8, n: u8, value: usize) {
    let max = (1usize << n) - 1;
    if value < max {
        // Lossless: value < 2^n <= 128.
        block.push(high | u8::try_from(value).unwrap_or(0));
        return;
    }
    block.push(high | u8::try_from(max).unwrap_or(0));
    let mut rest = value - max;
    while rest >= 128 {
        block.push(0x80 | u8::try_from(rest % 128).unwrap_or(0));
        rest /= 128;
    }
    block.push(u8::try_from(rest).unwrap_or(0));
}

/// An HPACK string literal, not Huffman-coded.
fn put_string(block: &mut Vec<u8>, bytes: &[u8]) {
    put_int(block, 0x00, 7, bytes.len());
    block.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encodes `fields` as literals without indexing (what a client without
    /// a dynamic table would send).
    fn block(fields: &[(&str, &str)]) -> Vec<u8> {
        let mut b = Vec::new();
        for (n, v) in fields {
            b.push(0x00);
            put_string(&mut b, n.as_bytes());
            put_string(&mut b, v.as_bytes());
        }
        b
    }

    fn decode_plain(block: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut fields = Vec::new();
        HpackDecoder::new(HEADER_TABLE_SIZE)
            .decode(block, |n, v| {
                fields.push((n.to_vec(), v.to_vec()));
                Ok::<(), ()>(())
            })
            .unwrap()
            .unwrap();
        fields
    }

    const GRPC: &[(&str, &str)] = &[
        (":method", "POST"),
        (":scheme", "http"),
        (":path", "/SpiffeWorkloadAPI/FetchX509SVID"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
        ("workload.spiffe.io", "true"),
    ];

    #[test]
    fn a_grpc_request_head_decodes() {
        let request = HeaderDecoder::default().request(&block(GRPC)).unwrap();
        assert_eq!(request.method(), Method::POST);
        assert_eq!(request.uri().path(), "/SpiffeWorkloadAPI/FetchX509SVID");
        assert_eq!(request.headers()["workload.spiffe.io"], "true");
        assert_eq!(request.headers()["content-type"], "application/grpc");
        assert_eq!(request.version(), http::Version::HTTP_2);
    }

    #[test]
    fn rfc7541_c3_requests_with_the_dynamic_table_decode() {
        // RFC 7541 Appendix C.3: three requests on one connection, the later
        // ones referencing the dynamic table the first ones filled.
        let mut decoder = HeaderDecoder::default();
        let first = hex::decode("828684410f7777772e6578616d706c652e636f6d").unwrap();
        let r = decoder.request(&first).unwrap();
        assert_eq!(r.uri().to_string(), "http://www.example.com/");
        let second = hex::decode("828684be58086e6f2d6361636865").unwrap();
        let r = decoder.request(&second).unwrap();
        assert_eq!(r.headers()["cache-control"], "no-cache");
        assert_eq!(r.uri().authority().unwrap(), "www.example.com");
    }

    #[test]
    fn a_request_missing_a_pseudo_header_is_malformed_naming_it() {
        for missing in [":method", ":scheme", ":path"] {
            let fields: Vec<_> = GRPC
                .iter()
                .copied()
                .filter(|(n, _)| *n != missing)
                .collect();
            let err = HeaderDecoder::default()
                .request(&block(&fields))
                .unwrap_err();
            assert_eq!(err, HeaderError::Malformed(format!("{missing} is missing")));
        }
    }

    #[test]
    fn uppercase_names_and_connection_fields_are_malformed() {
        let mut fields = GRPC.to_vec();
        fields.push(("X-Trace", "1"));
        let err = HeaderDecoder::default()
            .request(&block(&fields))
            .unwrap_err();
        assert!(matches!(err, HeaderError::Malformed(m) if m.contains("uppercase")));

        let mut fields = GRPC.to_vec();
        fields.push(("connection", "close"));
        let err = HeaderDecoder::default()
            .request(&block(&fields))
            .unwrap_err();
        assert!(matches!(err, HeaderError::Malformed(m) if m.contains("connection-specific")));

        let mut fields = GRPC.to_vec();
        fields[4] = ("te", "gzip");
        let err = HeaderDecoder::default()
            .request(&block(&fields))
            .unwrap_err();
        assert!(matches!(err, HeaderError::Malformed(m) if m.contains("te other")));
    }

    #[test]
    fn a_pseudo_header_after_a_regular_field_is_malformed() {
        let mut fields = GRPC.to_vec();
        fields.push((":authority", "x"));
        let err = HeaderDecoder::default()
            .request(&block(&fields))
            .unwrap_err();
        assert_eq!(
            err,
            HeaderError::Malformed("pseudo-header after a regular field".into())
        );
    }

    #[test]
    fn a_header_bomb_is_refused_without_expanding_it() {
        let mut decoder = HeaderDecoder::default();
        // One 4,000-byte entry in the dynamic table (literal with
        // incremental indexing, new name)...
        let mut b = vec![0x40];
        put_string(&mut b, b"x-big");
        put_string(&mut b, &[b'a'; 4000]);
        // ...then referenced 1,000 times: 4 MB from 1 KB. Decoding stops
        // at the fifth reference, over the limit.
        b.extend(std::iter::repeat_n(0x80 | 62, 1000));
        let err = decoder.request(&b).unwrap_err();
        assert_eq!(
            err,
            HeaderError::TooLarge {
                size: 5 * (5 + 4000 + 32)
            }
        );
    }

    #[test]
    fn a_broken_hpack_block_is_a_compression_error() {
        // Index 0 does not exist.
        let err = HeaderDecoder::default().request(&[0x80]).unwrap_err();
        assert!(matches!(err, HeaderError::Compression(_)));
        // A table size update over what SETTINGS allowed.
        let mut b = Vec::new();
        put_int(&mut b, 0x20, 5, HEADER_TABLE_SIZE + 1);
        b.push(0x82);
        let err = HeaderDecoder::default().request(&b).unwrap_err();
        assert!(matches!(err, HeaderError::Compression(_)));
    }

    #[test]
    fn a_response_head_decodes_back_to_what_was_encoded() {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/grpc"));
        headers.insert("grpc-status", HeaderValue::from_static("7"));
        let long = "m".repeat(300);
        headers.insert("grpc-message", HeaderValue::from_str(&long).unwrap());
        for status in [StatusCode::OK, StatusCode::NOT_FOUND] {
            let encoded = encode_response(status, &headers);
            let decoded = decode_plain(&encoded);
            assert_eq!(
                decoded[0],
                (b":status".to_vec(), status.as_str().as_bytes().to_vec())
            );
            assert_eq!(
                decoded[1],
                (b"content-type".to_vec(), b"application/grpc".to_vec())
            );
            assert_eq!(
                decoded[3],
                (b"grpc-message".to_vec(), long.as_bytes().to_vec())
            );
        }
        let trailers = decode_plain(&encode_trailers(&headers));
        assert_eq!(trailers.len(), 3);
    }
}
