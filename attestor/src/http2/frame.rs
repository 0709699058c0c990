//! HTTP/2 frames (RFC 9113 §4 and §6): the 9-byte header, the frame types
//! and flags this server acts on, error codes, and the encoders for every
//! frame the server sends.
//!
//! Pure byte work, no I/O: the connection driver reads and writes.

use std::fmt;

/// The client connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Length of a frame header.
pub const HEADER_LEN: usize = 9;

/// The default (and this server's) SETTINGS_MAX_FRAME_SIZE.
pub const DEFAULT_MAX_FRAME_SIZE: usize = 16_384;

/// The largest SETTINGS_MAX_FRAME_SIZE a peer may announce.
pub const MAX_MAX_FRAME_SIZE: u32 = 16_777_215;

/// The default SETTINGS_INITIAL_WINDOW_SIZE, and the connection's initial
/// flow-control window.
pub const DEFAULT_WINDOW: u32 = 65_535;

/// The largest flow-control window (2^31 - 1).
pub const MAX_WINDOW: u32 = 0x7fff_ffff;

/// Frame types (RFC 9113 §6).
pub mod kind {
    /// DATA.
    pub const DATA: u8 = 0x0;
    /// HEADERS.
    pub const HEADERS: u8 = 0x1;
    /// PRIORITY (deprecated; read and ignored).
    pub const PRIORITY: u8 = 0x2;
    /// RST_STREAM.
    pub const RST_STREAM: u8 = 0x3;
    /// SETTINGS.
    pub const SETTINGS: u8 = 0x4;
    /// PUSH_PROMISE (never valid from a client).
    pub const PUSH_PROMISE: u8 = 0x5;
    /// PING.
    pub const PING: u8 = 0x6;
    /// GOAWAY.
    pub const GOAWAY: u8 = 0x7;
    /// WINDOW_UPDATE.
    pub const WINDOW_UPDATE: u8 = 0x8;
    /// CONTINUATION.
    pub const CONTINUATION: u8 = 0x9;
}

/// Frame flags (RFC 9113 §6).
pub mod flag {
    /// END_STREAM on DATA and HEADERS.
    pub const END_STREAM: u8 = 0x1;
    /// ACK on SETTINGS and PING.
    pub const ACK: u8 = 0x1;
    /// END_HEADERS on HEADERS and CONTINUATION.
    pub const END_HEADERS: u8 = 0x4;
    /// PADDED on DATA and HEADERS.
    pub const PADDED: u8 = 0x8;
    /// PRIORITY on HEADERS.
    pub const PRIORITY: u8 = 0x20;
}

/// SETTINGS parameters (RFC 9113 §6.5.2).
pub mod setting {
    /// SETTINGS_HEADER_TABLE_SIZE.
    pub const HEADER_TABLE_SIZE: u16 = 0x1;
    /// SETTINGS_ENABLE_PUSH.
    pub const ENABLE_PUSH: u16 = 0x2;
    /// SETTINGS_MAX_CONCURRENT_STREAMS.
    pub const MAX_CONCURRENT_STREAMS: u16 = 0x3;
    /// SETTINGS_INITIAL_WINDOW_SIZE.
    pub const INITIAL_WINDOW_SIZE: u16 = 0x4;
    /// SETTINGS_MAX_FRAME_SIZE.
    pub const MAX_FRAME_SIZE: u16 = 0x5;
    /// SETTINGS_MAX_HEADER_LIST_SIZE.
    pub const MAX_HEADER_LIST_SIZE: u16 = 0x6;
}

/// An HTTP/2 error code (RFC 9113 §7), sent in RST_STREAM and GOAWAY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorCode(pub u32);

impl ErrorCode {
    /// Graceful shutdown, or a stream no longer needed.
    pub const NO_ERROR: ErrorCode = ErrorCode(0x0);
    /// The peer broke the protocol.
    pub const PROTOCOL_ERROR: ErrorCode = ErrorCode(0x1);
    /// Something went wrong on this side.
    pub const INTERNAL_ERROR: ErrorCode = ErrorCode(0x2);
    /// The peer broke flow control.
    pub const FLOW_CONTROL_ERROR: ErrorCode = ErrorCode(0x3);
    /// A frame for a stream that was already closed.
    pub const STREAM_CLOSED: ErrorCode = ErrorCode(0x5);
    /// A frame of the wrong size.
    pub const FRAME_SIZE_ERROR: ErrorCode = ErrorCode(0x6);
    /// The stream was refused before any processing (safe to retry).
    pub const REFUSED_STREAM: ErrorCode = ErrorCode(0x7);
    /// The stream is no longer needed.
    pub const CANCEL: ErrorCode = ErrorCode(0x8);
    /// The header block could not be decompressed.
    pub const COMPRESSION_ERROR: ErrorCode = ErrorCode(0x9);
    /// The peer is using too many resources.
    pub const ENHANCE_YOUR_CALM: ErrorCode = ErrorCode(0xb);
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match *self {
            ErrorCode::NO_ERROR => "NO_ERROR",
            ErrorCode::PROTOCOL_ERROR => "PROTOCOL_ERROR",
            ErrorCode::INTERNAL_ERROR => "INTERNAL_ERROR",
            ErrorCode::FLOW_CONTROL_ERROR => "FLOW_CONTROL_ERROR",
            ErrorCode(0x4) => "SETTINGS_TIMEOUT",
            ErrorCode::STREAM_CLOSED => "STREAM_CLOSED",
            ErrorCode::FRAME_SIZE_ERROR => "FRAME_SIZE_ERROR",
            ErrorCode::REFUSED_STREAM => "REFUSED_STREAM",
            ErrorCode::CANCEL => "CANCEL",
            ErrorCode::COMPRESSION_ERROR => "COMPRESSION_ERROR",
            ErrorCode(0xa) => "CONNECT_ERROR",
            ErrorCode::ENHANCE_YOUR_CALM => "ENHANCE_YOUR_CALM",
            ErrorCode(0xc) => "INADEQUATE_SECURITY",
            ErrorCode(0xd) => "HTTP_1_1_REQUIRED",
            ErrorCode(other) => return write!(f, "error code {other:#x}"),
        };
        f.write_str(name)
    }
}

/// A frame header: payload length, type, flags and stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Payload length in bytes.
    pub len: usize,
    /// Frame type (see [`kind`]).
    pub kind: u8,
    /// Flags (see [`flag`]).
    pub flags: u8,
    /// Stream identifier, with the reserved bit cleared.
    pub stream_id: u32,
}

impl FrameHeader {
    /// Reads the header at the start of `bytes`, or `None` if fewer than
    /// [`HEADER_LEN`] bytes are there.
    pub fn parse(bytes: &[u8]) -> Option<FrameHeader> {
        let h: &[u8; HEADER_LEN] = bytes.get(..HEADER_LEN)?.try_into().ok()?;
        Some(FrameHeader {
            len: usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]),
            kind: h[3],
            flags: h[4],
            stream_id: u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & MAX_WINDOW,
        })
    }

    /// Whether `f` is set.
    pub fn has(&self, f: u8) -> bool {
        self.flags & f != 0
    }
}

/// Appends a frame header to `out`. `len` must fit in 24 bits, which every
/// caller guarantees by never building a payload over the peer's
/// SETTINGS_MAX_FRAME_SIZE (at most 2^24 - 1).
fn put_header(out: &mut Vec<u8>, len: usize, kind: u8, flags: u8, stream_id: u32) {
    let len = u32::try_from(len)
        .unwrap_or(MAX_MAX_FRAME_SIZE)
        .min(MAX_MAX_FRAME_SIZE);
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&(stream_id & MAX_WINDOW).to_be_bytes());
}

/// Appends a SETTINGS frame with `settings`.
pub fn put_settings(out: &mut Vec<u8>, settings: &[(u16, u32)]) {
    put_header(out, settings.len() * 6, kind::SETTINGS, 0, 0);
    for (id, value) in settings {
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&value.to_be_bytes());
    }
}

/// Appends a SETTINGS acknowledgement.
pub fn put_settings_ack(out: &mut Vec<u8>) {
    put_header(out, 0, kind::SETTINGS, flag::ACK, 0);
}

/// Appends a PING acknowledgement echoing `payload`.
pub fn put_ping_ack(out: &mut Vec<u8>, payload: [u8; 8]) {
    put_header(out, 8, kind::PING, flag::ACK, 0);
    out.extend_from_slice(&payload);
}

/// Appends a WINDOW_UPDATE for `stream_id` (0: the connection).
pub fn put_window_update(out: &mut Vec<u8>, stream_id: u32, increment: u32) {
    put_header(out, 4, kind::WINDOW_UPDATE, 0, stream_id);
    out.extend_from_slice(&(increment & MAX_WINDOW).to_be_bytes());
}

/// Appends an RST_STREAM.
pub fn put_rst_stream(out: &mut Vec<u8>, stream_id: u32, code: ErrorCode) {
    put_header(out, 4, kind::RST_STREAM, 0, stream_id);
    out.extend_from_slice(&code.0.to_be_bytes());
}

/// Appends a GOAWAY naming the last stream processed and why.
pub fn put_goaway(out: &mut Vec<u8>, last_stream_id: u32, code: ErrorCode, debug: &str) {
    put_header(out, 8 + debug.len(), kind::GOAWAY, 0, 0);
    out.extend_from_slice(&(last_stream_id & MAX_WINDOW).to_be_bytes());
    out.extend_from_slice(&code.0.to_be_bytes());
    out.extend_from_slice(debug.as_bytes());
}

/// Appends one DATA frame. `data` must not exceed the peer's
/// SETTINGS_MAX_FRAME_SIZE.
pub fn put_data(out: &mut Vec<u8>, stream_id: u32, data: &[u8], end_stream: bool) {
    let flags = if end_stream { flag::END_STREAM } else { 0 };
    put_header(out, data.len(), kind::DATA, flags, stream_id);
    out.extend_from_slice(data);
}

/// Appends a header block as one HEADERS frame and as many CONTINUATION
/// frames as `max_frame_size` requires.
pub fn put_headers(
    out: &mut Vec<u8>,
    stream_id: u32,
    block: &[u8],
    end_stream: bool,
    max_frame_size: usize,
) {
    let max = max_frame_size.max(1);
    let mut chunks = block.chunks(max).peekable();
    let first = chunks.next().unwrap_or(&[]);
    let mut flags = if end_stream { flag::END_STREAM } else { 0 };
    if chunks.peek().is_none() {
        flags |= flag::END_HEADERS;
    }
    put_header(out, first.len(), kind::HEADERS, flags, stream_id);
    out.extend_from_slice(first);
    while let Some(chunk) = chunks.next() {
        let flags = if chunks.peek().is_none() {
            flag::END_HEADERS
        } else {
            0
        };
        put_header(out, chunk.len(), kind::CONTINUATION, flags, stream_id);
        out.extend_from_slice(chunk);
    }
}

/// A peer SETTINGS parameter, as sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// The parameter (see [`setting`]).
    pub id: u16,
    /// Its value.
    pub value: u32,
}

/// Reads the parameters of a SETTINGS payload; `None` if the length is not a
/// multiple of six (a FRAME_SIZE_ERROR).
pub fn parse_settings(payload: &[u8]) -> Option<Vec<Setting>> {
    if !payload.len().is_multiple_of(6) {
        return None;
    }
    Some(
        payload
            .chunks_exact(6)
            .map(|c| Setting {
                id: u16::from_be_bytes([c[0], c[1]]),
                value: u32::from_be_bytes([c[2], c[3], c[4], c[5]]),
            })
            .collect(),
    )
}

/// Strips the padding of a PADDED DATA or HEADERS payload; `None` if the
/// pad length is not inside the payload (a PROTOCOL_ERROR).
pub fn strip_padding(payload: &[u8], padded: bool) -> Option<(usize, usize)> {
    if !padded {
        return Some((0, payload.len()));
    }
    let pad = usize::from(*payload.first()?);
    let end = payload.len().checked_sub(pad)?;
    if end < 1 {
        return None;
    }
    Some((1, end))
}

/// Reads a 31-bit big-endian value from a 4-byte payload (WINDOW_UPDATE).
pub fn parse_u31(payload: &[u8]) -> Option<u32> {
    let b: [u8; 4] = payload.try_into().ok()?;
    Some(u32::from_be_bytes(b) & MAX_WINDOW)
}

/// Reads a 32-bit big-endian value from a 4-byte payload (RST_STREAM).
pub fn parse_u32(payload: &[u8]) -> Option<u32> {
    let b: [u8; 4] = payload.try_into().ok()?;
    Some(u32::from_be_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_round_trips_and_the_reserved_bit_is_ignored() {
        let mut out = Vec::new();
        put_data(&mut out, 0x8000_0003, b"abc", true);
        let h = FrameHeader::parse(&out).unwrap();
        assert_eq!(
            h,
            FrameHeader {
                len: 3,
                kind: kind::DATA,
                flags: flag::END_STREAM,
                stream_id: 3
            }
        );
        assert_eq!(&out[HEADER_LEN..], b"abc");
    }

    #[test]
    fn a_short_header_is_not_parsed() {
        assert_eq!(FrameHeader::parse(&[0; 8]), None);
    }

    #[test]
    fn a_large_header_block_is_split_into_continuations() {
        let block = vec![7u8; 40];
        let mut out = Vec::new();
        put_headers(&mut out, 5, &block, true, 16);
        let first = FrameHeader::parse(&out).unwrap();
        assert_eq!((first.kind, first.len), (kind::HEADERS, 16));
        assert!(first.has(flag::END_STREAM) && !first.has(flag::END_HEADERS));
        let second = FrameHeader::parse(&out[25..]).unwrap();
        assert_eq!((second.kind, second.len), (kind::CONTINUATION, 16));
        assert!(!second.has(flag::END_HEADERS));
        let third = FrameHeader::parse(&out[50..]).unwrap();
        assert_eq!((third.kind, third.len), (kind::CONTINUATION, 8));
        assert!(third.has(flag::END_HEADERS));
        assert_eq!(out.len(), 3 * HEADER_LEN + 40);
    }

    #[test]
    fn a_small_header_block_is_one_frame_with_end_headers() {
        let mut out = Vec::new();
        put_headers(&mut out, 1, &[0x88], false, DEFAULT_MAX_FRAME_SIZE);
        let h = FrameHeader::parse(&out).unwrap();
        assert_eq!(h.flags, flag::END_HEADERS);
        assert_eq!(out.len(), HEADER_LEN + 1);
    }

    #[test]
    fn settings_must_come_in_six_byte_units() {
        assert_eq!(parse_settings(&[0; 7]), None);
        let mut out = Vec::new();
        put_settings(&mut out, &[(setting::MAX_CONCURRENT_STREAMS, 100)]);
        assert_eq!(
            parse_settings(&out[HEADER_LEN..]).unwrap(),
            vec![Setting {
                id: setting::MAX_CONCURRENT_STREAMS,
                value: 100
            }]
        );
    }

    #[test]
    fn padding_longer_than_the_payload_is_refused() {
        assert_eq!(strip_padding(&[5, 1, 2], true), None);
        assert_eq!(strip_padding(&[], true), None);
        assert_eq!(strip_padding(&[1, 9, 0], true), Some((1, 2)));
        assert_eq!(strip_padding(&[9, 9], false), Some((0, 2)));
    }

    #[test]
    fn error_codes_print_their_rfc_names() {
        assert_eq!(
            ErrorCode::FLOW_CONTROL_ERROR.to_string(),
            "FLOW_CONTROL_ERROR"
        );
        assert_eq!(ErrorCode(0x99).to_string(), "error code 0x99");
    }
}
