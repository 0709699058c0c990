//! One HTTP/2 server connection: reads frames, opens a service call per
//! request stream, and writes the responses back under the client's flow
//! control.
//!
//! Everything runs in one task. Stream responses are futures polled by the
//! connection task; they and the request bodies share the output queue and
//! the flow-control windows through [`Shared`]. What an idle connection
//! keeps is small on purpose: no read buffer between reads, no write
//! buffer once everything is written, no HPACK encoder state.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Poll, Waker};

use bytes::{Buf as _, Bytes, BytesMut};
use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use http::{HeaderMap, HeaderValue, Request, StatusCode};
use http_body::Body;
use tokio::net::UnixStream;
use tower::ServiceExt as _;

use super::body::{BodyError, BodySender, RequestBody};
use super::frame::{self, ErrorCode, FrameHeader, flag, kind, setting};
use super::headers::{self, HeaderDecoder, HeaderError};
use super::{BoxError, Http2Service, ResponseBody};

/// Streams a client may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS).
pub const MAX_CONCURRENT_STREAMS: u32 = 256;

/// Streams a client may open before it has acknowledged this server's
/// SETTINGS (which only then take effect, RFC 9113 §6.5.3): clients send
/// requests right after the preface, before they have seen the limit.
const MAX_STREAMS_BEFORE_ACK: u32 = 4 * MAX_CONCURRENT_STREAMS;

/// Output queued beyond this stops reading from the client and holds back
/// response data until the socket drains.
const HIGH_WATER: usize = 64 * 1024;

/// How much is read from the socket before the frames are processed.
const READ_CHUNK: usize = 16 * 1024 + frame::HEADER_LEN;

/// A header block (HEADERS plus CONTINUATIONs) larger than this ends the
/// connection: it cannot be skipped without losing the HPACK state.
const MAX_HEADER_BLOCK: usize = 2 * headers::MAX_HEADER_LIST_SIZE;

/// Stream windows are credited back once this much was read.
const CREDIT_THRESHOLD: u32 = frame::DEFAULT_WINDOW / 2;

/// A connection error: GOAWAY with `code`, then close.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {reason}")]
pub struct ConnectionError {
    /// The HTTP/2 error code sent in GOAWAY.
    pub code: ErrorCode,
    /// What the client did wrong, sent as GOAWAY debug data.
    pub reason: String,
}

fn conn_error(code: ErrorCode, reason: impl Into<String>) -> ConnectionError {
    ConnectionError {
        code,
        reason: reason.into(),
    }
}

/// Per-stream state shared by the connection and the stream's response.
#[derive(Debug)]
struct StreamState {
    /// What this side may still send (the client's window for the stream).
    send_window: i64,
    /// What the client may still send on the stream.
    recv_window: i64,
    /// Read by the service but not yet credited back to the client.
    recv_unacked: u32,
    /// The request body, while the client may still send on it.
    body: Option<BodySender>,
    /// Reset by either side: the response stops.
    reset: bool,
    /// The response waits for window or for the output queue to drain.
    blocked: bool,
    /// The response future's task, woken on window and reset changes.
    waker: Option<Waker>,
}

#[derive(Debug)]
struct SendState {
    out: Vec<u8>,
    conn_send_window: i64,
    initial_send_window: i64,
    max_frame_size: usize,
    streams: HashMap<u32, StreamState>,
    writer: Option<Waker>,
}

impl SendState {
    fn wake_writer(&mut self) {
        if let Some(w) = self.writer.take() {
            w.wake();
        }
    }

    /// Wakes the responses waiting to send (not the idle ones: a
    /// connection may hold many long-lived streams).
    fn wake_blocked_streams(&mut self) {
        for stream in self.streams.values_mut() {
            if std::mem::take(&mut stream.blocked)
                && let Some(w) = stream.waker.take()
            {
                w.wake();
            }
        }
    }
}

/// What a connection's tasks share: the output queue, the windows and the
/// stream table.
#[derive(Debug)]
pub struct Shared {
    state: Mutex<SendState>,
}

impl Shared {
    fn new() -> Self {
        Shared {
            state: Mutex::new(SendState {
                out: Vec::new(),
                conn_send_window: i64::from(frame::DEFAULT_WINDOW),
                initial_send_window: i64::from(frame::DEFAULT_WINDOW),
                max_frame_size: frame::DEFAULT_MAX_FRAME_SIZE,
                streams: HashMap::new(),
                writer: None,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, SendState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Credits `n` bytes the service read from stream `id` back to the
    /// client, in batches of [`CREDIT_THRESHOLD`].
    pub(super) fn credit_stream(&self, id: u32, n: usize) {
        let mut state = self.lock();
        let state = &mut *state;
        let Some(stream) = state.streams.get_mut(&id) else {
            return;
        };
        let n = u32::try_from(n).unwrap_or(frame::MAX_WINDOW);
        stream.recv_unacked = stream.recv_unacked.saturating_add(n);
        if stream.recv_unacked >= CREDIT_THRESHOLD && stream.body.is_some() {
            let credit = stream.recv_unacked;
            stream.recv_unacked = 0;
            stream.recv_window += i64::from(credit);
            frame::put_window_update(&mut state.out, id, credit);
            state.wake_writer();
        }
    }

    fn queue(&self, f: impl FnOnce(&mut Vec<u8>)) {
        let mut state = self.lock();
        f(&mut state.out);
        state.wake_writer();
    }

    /// Queues a header block for stream `id` unless it was reset.
    fn send_headers(&self, id: u32, block: &[u8], end_stream: bool) -> bool {
        let mut state = self.lock();
        let state = &mut *state;
        if state.streams.get(&id).is_none_or(|s| s.reset) {
            return false;
        }
        frame::put_headers(&mut state.out, id, block, end_stream, state.max_frame_size);
        state.wake_writer();
        true
    }

    /// Sends `data` on stream `id` as the windows allow, waiting for window
    /// updates and for the output queue to drain. `false` if the stream was
    /// reset meanwhile.
    async fn send_data(&self, id: u32, mut data: Bytes, end_stream: bool) -> bool {
        std::future::poll_fn(|cx| {
            let mut state = self.lock();
            let state = &mut *state;
            loop {
                let Some(stream) = state.streams.get_mut(&id) else {
                    return Poll::Ready(false);
                };
                if stream.reset {
                    return Poll::Ready(false);
                }
                if data.is_empty() {
                    if end_stream {
                        frame::put_data(&mut state.out, id, &[], true);
                        state.wake_writer();
                    }
                    return Poll::Ready(true);
                }
                let allowed = stream
                    .send_window
                    .min(state.conn_send_window)
                    .min(i64::try_from(state.max_frame_size).unwrap_or(i64::MAX));
                if allowed <= 0 || state.out.len() >= HIGH_WATER {
                    stream.blocked = true;
                    stream.waker = Some(cx.waker().clone());
                    return Poll::Pending;
                }
                let n = usize::try_from(allowed)
                    .unwrap_or(usize::MAX)
                    .min(data.len());
                let chunk = data.split_to(n);
                let n = i64::try_from(n).unwrap_or(i64::MAX);
                stream.send_window -= n;
                state.conn_send_window -= n;
                frame::put_data(&mut state.out, id, &chunk, end_stream && data.is_empty());
                state.wake_writer();
                if data.is_empty() {
                    return Poll::Ready(true);
                }
            }
        })
        .await
    }

    /// Resolves once stream `id` is reset (or gone).
    async fn reset_signal(&self, id: u32) {
        std::future::poll_fn(|cx| {
            let mut state = self.lock();
            match state.streams.get_mut(&id) {
                Some(stream) if !stream.reset => {
                    stream.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
                _ => Poll::Ready(()),
            }
        })
        .await;
    }

    /// Marks stream `id` reset (by the client, or by this side with `code`).
    fn reset(&self, id: u32, send: Option<ErrorCode>, why: BodyError) {
        let mut state = self.lock();
        let state = &mut *state;
        if let Some(stream) = state.streams.get_mut(&id) {
            stream.reset = true;
            if let Some(body) = stream.body.take() {
                body.fail(why);
            }
            if let Some(w) = stream.waker.take() {
                w.wake();
            }
        }
        if let Some(code) = send {
            frame::put_rst_stream(&mut state.out, id, code);
            state.wake_writer();
        }
    }

    /// Forgets stream `id` once its response is done. If the client may
    /// still send on it, it is told to stop (RST_STREAM NO_ERROR).
    fn finish(&self, id: u32) {
        let mut state = self.lock();
        let state = &mut *state;
        if let Some(stream) = state.streams.remove(&id)
            && let Some(body) = stream.body
        {
            body.fail(BodyError::Reset(ErrorCode::NO_ERROR));
            if !stream.reset {
                frame::put_rst_stream(&mut state.out, id, ErrorCode::NO_ERROR);
                state.wake_writer();
            }
        }
        // After a burst of streams, give the table's memory back.
        if state.streams.capacity() > 16 && state.streams.len() < state.streams.capacity() / 4 {
            state.streams.shrink_to_fit();
        }
    }

    /// Ends every stream when the connection ends: request bodies a
    /// service still reads (possibly in a task of its own) see the end.
    fn close(&self) {
        let mut state = self.lock();
        for (_, stream) in state.streams.drain() {
            if let Some(body) = stream.body {
                body.fail(BodyError::ConnectionClosed);
            }
            if let Some(w) = stream.waker {
                w.wake();
            }
        }
        state.out = Vec::new();
    }

    /// Resolves once there is output to write.
    async fn output_ready(&self) {
        std::future::poll_fn(|cx| {
            let mut state = self.lock();
            if state.out.is_empty() {
                state.writer = Some(cx.waker().clone());
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await;
    }

    /// Writes as much queued output as the socket takes now. `Ok(true)` when
    /// everything was written.
    fn flush(&self, socket: &UnixStream) -> io::Result<bool> {
        let mut state = self.lock();
        let state = &mut *state;
        let mut written = 0;
        let result = loop {
            if written == state.out.len() {
                break Ok(true);
            }
            match socket.try_write(&state.out[written..]) {
                Ok(0) => break Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break Ok(false),
                Err(e) => break Err(e),
            }
        };
        state.out.drain(..written);
        if state.out.is_empty() {
            // An idle connection keeps no write buffer.
            state.out = Vec::new();
        }
        if written > 0 && state.out.len() < HIGH_WATER {
            state.wake_blocked_streams();
        }
        result
    }
}

/// A stream's response future, as the connection polls it: yields the
/// stream id when done.
type StreamFuture = Pin<Box<dyn Future<Output = u32> + Send>>;

/// The connection's own state: what only the reading side touches.
struct Connection<S, B, X> {
    shared: Arc<Shared>,
    service: S,
    extension: X,
    decoder: HeaderDecoder,
    preface_seen: bool,
    settings_seen: bool,
    /// The client acknowledged this server's SETTINGS.
    settings_acked: bool,
    /// The highest stream the client opened.
    last_stream_id: u32,
    /// What the client may still send on the connection.
    conn_recv_window: i64,
    /// A header block waiting for CONTINUATION frames: stream, block,
    /// END_STREAM.
    continuation: Option<(u32, Vec<u8>, bool)>,
    /// The client sent GOAWAY: no new streams.
    going_away: bool,
    new_streams: Vec<StreamFuture>,
    /// The service's response body type.
    _body: PhantomData<fn() -> B>,
}

/// Serves one connection until the client closes it or breaks the
/// protocol. `extension` is put in every request's extensions.
pub async fn serve_connection<S, B, X>(socket: UnixStream, service: S, extension: X)
where
    S: Http2Service<B>,
    B: ResponseBody,
    X: Clone + Send + Sync + 'static,
{
    let shared = Arc::new(Shared::new());
    let _close_streams = CloseOnDrop(Arc::clone(&shared));
    shared.queue(|out| {
        frame::put_settings(
            out,
            &[
                (setting::MAX_CONCURRENT_STREAMS, MAX_CONCURRENT_STREAMS),
                (
                    setting::MAX_HEADER_LIST_SIZE,
                    u32::try_from(headers::MAX_HEADER_LIST_SIZE).unwrap_or(u32::MAX),
                ),
            ],
        );
    });
    let mut connection = Connection {
        shared: Arc::clone(&shared),
        service,
        extension,
        decoder: HeaderDecoder::default(),
        preface_seen: false,
        settings_seen: false,
        settings_acked: false,
        last_stream_id: 0,
        conn_recv_window: i64::from(frame::DEFAULT_WINDOW),
        continuation: None,
        going_away: false,
        new_streams: Vec::new(),
        _body: PhantomData,
    };
    let mut streams: FuturesUnordered<StreamFuture> = FuturesUnordered::new();
    let mut read_buf = BytesMut::new();
    let mut reading = true;
    loop {
        let all_written = match shared.flush(&socket) {
            Ok(done) => done,
            Err(e) => {
                tracing::debug!(error = %e, "Workload API connection write failed");
                return;
            }
        };
        if !reading && all_written {
            return;
        }
        if connection.going_away && streams.is_empty() && all_written {
            return;
        }
        let backlog = !all_written;
        tokio::select! {
            ready = socket.readable(), if reading && !backlog_over_high_water(&shared) => {
                if let Err(e) = ready {
                    tracing::debug!(error = %e, "Workload API connection read failed");
                    return;
                }
                let open = match read_available(&socket, &mut read_buf) {
                    Ok(open) => open,
                    Err(e) => {
                        tracing::debug!(error = %e, "Workload API connection read failed");
                        return;
                    }
                };
                if let Err(e) = connection.process(&mut read_buf) {
                    tracing::debug!(code = %e.code, reason = %e.reason, "closing a Workload API connection that broke HTTP/2");
                    let last = connection.last_stream_id;
                    shared.queue(|out| frame::put_goaway(out, last, e.code, &e.reason));
                    reading = false;
                    // What was opened is dropped: the connection is over.
                    streams.clear();
                    connection.new_streams.clear();
                }
                for stream in std::mem::take(&mut connection.new_streams) {
                    streams.push(stream);
                }
                if !open {
                    // The client closed the connection: nobody is left to
                    // answer, so what was opened is dropped.
                    return;
                }
                if read_buf.is_empty() {
                    // An idle connection keeps no read buffer.
                    read_buf = BytesMut::new();
                }
            }
            writable = socket.writable(), if backlog => {
                if writable.is_err() {
                    return;
                }
            }
            Some(id) = streams.next(), if !streams.is_empty() => {
                shared.finish(id);
            }
            () = shared.output_ready(), if !backlog => {}
        }
    }
}

/// Ends the connection's streams however `serve_connection` returns.
struct CloseOnDrop(Arc<Shared>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close();
    }
}

fn backlog_over_high_water(shared: &Shared) -> bool {
    shared.lock().out.len() >= HIGH_WATER
}

/// Reads what the socket has now (up to a few chunks). `Ok(false)` once
/// the client closed its side; what was read before that is in `buf`.
fn read_available(socket: &UnixStream, buf: &mut BytesMut) -> io::Result<bool> {
    for _ in 0..4 {
        if buf.capacity() - buf.len() < frame::HEADER_LEN {
            buf.reserve(READ_CHUNK);
        }
        match socket.try_read_buf(buf) {
            Ok(0) => return Ok(false),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

impl<S, B, X> Connection<S, B, X>
where
    S: Http2Service<B>,
    B: ResponseBody,
    X: Clone + Send + Sync + 'static,
{
    /// Processes every complete frame in `buf`.
    fn process(&mut self, buf: &mut BytesMut) -> Result<(), ConnectionError> {
        if !self.preface_seen {
            let n = buf.len().min(frame::PREFACE.len());
            if buf[..n] != frame::PREFACE[..n] {
                return Err(conn_error(
                    ErrorCode::PROTOCOL_ERROR,
                    "expected the HTTP/2 connection preface (is the client speaking gRPC?)",
                ));
            }
            if n < frame::PREFACE.len() {
                return Ok(());
            }
            buf.advance(frame::PREFACE.len());
            self.preface_seen = true;
        }
        while let Some(header) = FrameHeader::parse(buf) {
            if header.len > frame::DEFAULT_MAX_FRAME_SIZE {
                return Err(conn_error(
                    ErrorCode::FRAME_SIZE_ERROR,
                    format!(
                        "a {}-byte frame is over SETTINGS_MAX_FRAME_SIZE {}",
                        header.len,
                        frame::DEFAULT_MAX_FRAME_SIZE
                    ),
                ));
            }
            if buf.len() < frame::HEADER_LEN + header.len {
                break;
            }
            buf.advance(frame::HEADER_LEN);
            let payload = buf.split_to(header.len).freeze();
            self.frame(header, payload)?;
        }
        Ok(())
    }

    fn frame(&mut self, h: FrameHeader, payload: Bytes) -> Result<(), ConnectionError> {
        if !self.settings_seen {
            if h.kind != kind::SETTINGS || h.has(flag::ACK) {
                return Err(conn_error(
                    ErrorCode::PROTOCOL_ERROR,
                    "the first frame after the preface must be SETTINGS",
                ));
            }
            self.settings_seen = true;
        }
        if let Some((id, _, _)) = &self.continuation
            && (h.kind != kind::CONTINUATION || h.stream_id != *id)
        {
            return Err(conn_error(
                ErrorCode::PROTOCOL_ERROR,
                format!("expected CONTINUATION on stream {id}"),
            ));
        }
        match h.kind {
            kind::DATA => self.data(h, payload),
            kind::HEADERS => self.headers(h, &payload),
            kind::CONTINUATION => self.continuation(h, &payload),
            kind::PRIORITY => {
                if h.stream_id == 0 {
                    return Err(conn_error(
                        ErrorCode::PROTOCOL_ERROR,
                        "PRIORITY on stream 0",
                    ));
                }
                // RST_STREAM must not be sent on a stream the client never
                // opened, so a bad PRIORITY there is only ignored.
                if payload.len() != 5 && !self.is_idle(h.stream_id) {
                    self.stream_error(h.stream_id, ErrorCode::FRAME_SIZE_ERROR);
                }
                Ok(())
            }
            kind::RST_STREAM => self.rst_stream(h, &payload),
            kind::SETTINGS => self.settings(h, &payload),
            kind::PUSH_PROMISE => Err(conn_error(
                ErrorCode::PROTOCOL_ERROR,
                "a client must not send PUSH_PROMISE",
            )),
            kind::PING => {
                if h.stream_id != 0 {
                    return Err(conn_error(ErrorCode::PROTOCOL_ERROR, "PING on a stream"));
                }
                let data: [u8; 8] = payload[..].try_into().map_err(|_| {
                    conn_error(ErrorCode::FRAME_SIZE_ERROR, "PING payload is not 8 bytes")
                })?;
                if !h.has(flag::ACK) {
                    self.shared.queue(|out| frame::put_ping_ack(out, data));
                }
                Ok(())
            }
            kind::GOAWAY => {
                if h.stream_id != 0 {
                    return Err(conn_error(ErrorCode::PROTOCOL_ERROR, "GOAWAY on a stream"));
                }
                if payload.len() < 8 {
                    return Err(conn_error(
                        ErrorCode::FRAME_SIZE_ERROR,
                        "GOAWAY payload is under 8 bytes",
                    ));
                }
                self.going_away = true;
                Ok(())
            }
            kind::WINDOW_UPDATE => self.window_update(h, &payload),
            // Unknown frame types are ignored (RFC 9113 §5.5).
            _ => Ok(()),
        }
    }

    /// Whether `id` names a stream the client never opened (even ids are
    /// the server's, and this server opens none).
    fn is_idle(&self, id: u32) -> bool {
        id > self.last_stream_id || id.is_multiple_of(2)
    }

    fn stream_error(&self, id: u32, code: ErrorCode) {
        self.shared.reset(id, Some(code), BodyError::Reset(code));
    }

    fn data(&mut self, h: FrameHeader, payload: Bytes) -> Result<(), ConnectionError> {
        if h.stream_id == 0 {
            return Err(conn_error(ErrorCode::PROTOCOL_ERROR, "DATA on stream 0"));
        }
        if self.is_idle(h.stream_id) {
            return Err(conn_error(
                ErrorCode::PROTOCOL_ERROR,
                format!("DATA on stream {} that was never opened", h.stream_id),
            ));
        }
        let len = i64::try_from(payload.len()).unwrap_or(i64::MAX);
        self.conn_recv_window -= len;
        if self.conn_recv_window < 0 {
            return Err(conn_error(
                ErrorCode::FLOW_CONTROL_ERROR,
                "DATA beyond the connection's flow-control window",
            ));
        }
        if self.conn_recv_window < i64::from(frame::DEFAULT_WINDOW / 2) {
            // Streams' windows bound what is buffered, so the connection's
            // window is credited as soon as data arrives.
            let credit = i64::from(frame::DEFAULT_WINDOW) - self.conn_recv_window;
            self.conn_recv_window = i64::from(frame::DEFAULT_WINDOW);
            let credit = u32::try_from(credit).unwrap_or(0);
            self.shared
                .queue(|out| frame::put_window_update(out, 0, credit));
        }
        let (start, end) =
            frame::strip_padding(&payload, h.has(flag::PADDED)).ok_or_else(|| {
                conn_error(
                    ErrorCode::PROTOCOL_ERROR,
                    "DATA padding longer than the frame",
                )
            })?;
        let padding = payload.len() - (end - start);
        let mut state = self.shared.lock();
        let Some(stream) = state.streams.get_mut(&h.stream_id) else {
            // Closed (possibly reset by this side while this was in flight).
            return Ok(());
        };
        let Some(body) = stream.body.clone() else {
            if stream.reset {
                return Ok(());
            }
            drop(state);
            self.stream_error(h.stream_id, ErrorCode::STREAM_CLOSED);
            return Ok(());
        };
        stream.recv_window -= len;
        if stream.recv_window < 0 {
            drop(state);
            self.stream_error(h.stream_id, ErrorCode::FLOW_CONTROL_ERROR);
            return Ok(());
        }
        if h.has(flag::END_STREAM) {
            stream.body = None;
        }
        drop(state);
        let mut credit = padding;
        if end > start && !body.push(payload.slice(start..end)) {
            // The service dropped the body: nothing will read this.
            credit += end - start;
        }
        if credit > 0 {
            self.shared.credit_stream(h.stream_id, credit);
        }
        if h.has(flag::END_STREAM) {
            body.end(None);
        }
        Ok(())
    }

    fn headers(&mut self, h: FrameHeader, payload: &[u8]) -> Result<(), ConnectionError> {
        if h.stream_id == 0 {
            return Err(conn_error(ErrorCode::PROTOCOL_ERROR, "HEADERS on stream 0"));
        }
        let (mut start, end) =
            frame::strip_padding(payload, h.has(flag::PADDED)).ok_or_else(|| {
                conn_error(
                    ErrorCode::PROTOCOL_ERROR,
                    "HEADERS padding longer than the frame",
                )
            })?;
        if h.has(flag::PRIORITY) {
            start += 5;
            if start > end {
                return Err(conn_error(
                    ErrorCode::FRAME_SIZE_ERROR,
                    "HEADERS too short for its priority fields",
                ));
            }
        }
        let block = payload[start..end].to_vec();
        let end_stream = h.has(flag::END_STREAM);
        if h.has(flag::END_HEADERS) {
            self.header_block(h.stream_id, &block, end_stream)
        } else {
            self.continuation = Some((h.stream_id, block, end_stream));
            Ok(())
        }
    }

    fn continuation(&mut self, h: FrameHeader, payload: &[u8]) -> Result<(), ConnectionError> {
        let Some((id, mut block, end_stream)) = self.continuation.take() else {
            return Err(conn_error(
                ErrorCode::PROTOCOL_ERROR,
                "CONTINUATION without HEADERS before it",
            ));
        };
        block.extend_from_slice(payload);
        if block.len() > MAX_HEADER_BLOCK {
            return Err(conn_error(
                ErrorCode::ENHANCE_YOUR_CALM,
                format!("header block over {MAX_HEADER_BLOCK} bytes"),
            ));
        }
        if h.has(flag::END_HEADERS) {
            self.header_block(id, &block, end_stream)
        } else {
            self.continuation = Some((id, block, end_stream));
            Ok(())
        }
    }

    /// A complete header block: a new request, or a request's trailers.
    fn header_block(
        &mut self,
        id: u32,
        block: &[u8],
        end_stream: bool,
    ) -> Result<(), ConnectionError> {
        let connection_ending = |e: HeaderError| match e {
            HeaderError::Compression(reason) => {
                Err(conn_error(ErrorCode::COMPRESSION_ERROR, reason))
            }
            // Decoding stopped part-way: the HPACK state is gone too.
            e @ HeaderError::TooLarge { .. } => {
                Err(conn_error(ErrorCode::ENHANCE_YOUR_CALM, e.to_string()))
            }
            other => Ok(other),
        };
        if !self.is_idle(id) {
            // Trailers on an open request, or a closed stream. A stream
            // this side reset counts as closed.
            let open_body = self
                .shared
                .lock()
                .streams
                .get(&id)
                .filter(|s| !s.reset)
                .map(|s| s.body.clone());
            let trailers = self.decoder.trailers(block);
            return match (open_body, trailers) {
                (Some(Some(body)), Ok(trailers)) if end_stream => {
                    if let Some(stream) = self.shared.lock().streams.get_mut(&id) {
                        stream.body = None;
                    }
                    body.end(Some(trailers));
                    Ok(())
                }
                (Some(Some(_)), Ok(_)) => {
                    self.stream_error(id, ErrorCode::PROTOCOL_ERROR);
                    Ok(())
                }
                (Some(Some(_)), Err(e)) => {
                    let e = connection_ending(e)?;
                    tracing::debug!(stream = id, error = %e, "refusing Workload API request trailers");
                    self.stream_error(id, ErrorCode::PROTOCOL_ERROR);
                    Ok(())
                }
                (Some(None), result) => {
                    if let Err(e) = result {
                        connection_ending(e)?;
                    }
                    self.stream_error(id, ErrorCode::STREAM_CLOSED);
                    Ok(())
                }
                // A closed stream: this side may have reset it or ended it
                // while the client's frames were in flight, and those must
                // be ignored (RFC 9113 §5.1) once HPACK has seen them.
                (None, result) => {
                    if let Err(e) = result {
                        connection_ending(e)?;
                    }
                    Ok(())
                }
            };
        }
        if id.is_multiple_of(2) {
            return Err(conn_error(
                ErrorCode::PROTOCOL_ERROR,
                format!("a client opened even stream {id}"),
            ));
        }
        self.last_stream_id = id;
        let request = match self.decoder.request(block) {
            Ok(request) => request,
            Err(e) => {
                let e = connection_ending(e)?;
                tracing::debug!(stream = id, error = %e, "refusing a Workload API request");
                // Not in the stream table: RST_STREAM is sent directly.
                self.shared
                    .queue(|out| frame::put_rst_stream(out, id, ErrorCode::PROTOCOL_ERROR));
                return Ok(());
            }
        };
        let refused = {
            let limit = if self.settings_acked {
                MAX_CONCURRENT_STREAMS
            } else {
                MAX_STREAMS_BEFORE_ACK
            };
            let state = self.shared.lock();
            self.going_away || state.streams.len() >= usize::try_from(limit).unwrap_or(usize::MAX)
        };
        if refused {
            self.shared
                .queue(|out| frame::put_rst_stream(out, id, ErrorCode::REFUSED_STREAM));
            return Ok(());
        }
        let (body, sender) = RequestBody::channel(id, Arc::clone(&self.shared));
        {
            let mut state = self.shared.lock();
            let send_window = state.initial_send_window;
            let body = if end_stream {
                sender.end(None);
                None
            } else {
                Some(sender)
            };
            state.streams.insert(
                id,
                StreamState {
                    send_window,
                    recv_window: i64::from(frame::DEFAULT_WINDOW),
                    recv_unacked: 0,
                    body,
                    reset: false,
                    blocked: false,
                    waker: None,
                },
            );
        }
        let mut request = request.map(|()| body);
        request.extensions_mut().insert(self.extension.clone());
        let service = self.service.clone();
        let shared = Arc::clone(&self.shared);
        self.new_streams.push(Box::pin(async move {
            let reset = shared.reset_signal(id);
            tokio::select! {
                () = respond(&shared, id, service, request) => {}
                () = reset => {}
            }
            id
        }));
        Ok(())
    }

    fn rst_stream(&mut self, h: FrameHeader, payload: &[u8]) -> Result<(), ConnectionError> {
        if h.stream_id == 0 {
            return Err(conn_error(
                ErrorCode::PROTOCOL_ERROR,
                "RST_STREAM on stream 0",
            ));
        }
        let code = frame::parse_u32(payload).ok_or_else(|| {
            conn_error(
                ErrorCode::FRAME_SIZE_ERROR,
                "RST_STREAM payload is not 4 bytes",
            )
        })?;
        if self.is_idle(h.stream_id) {
            return Err(conn_error(
                ErrorCode::PROTOCOL_ERROR,
                format!("RST_STREAM on stream {} that was never opened", h.stream_id),
            ));
        }
        self.shared
            .reset(h.stream_id, None, BodyError::Reset(ErrorCode(code)));
        Ok(())
    }

    fn settings(&mut self, h: FrameHeader, payload: &[u8]) -> Result<(), ConnectionError> {
        if h.stream_id != 0 {
            return Err(conn_error(
                ErrorCode::PROTOCOL_ERROR,
                "SETTINGS on a stream",
            ));
        }
        if h.has(flag::ACK) {
            if !payload.is_empty() {
                return Err(conn_error(
                    ErrorCode::FRAME_SIZE_ERROR,
                    "SETTINGS acknowledgement with a payload",
                ));
            }
            self.settings_acked = true;
            return Ok(());
        }
        let settings = frame::parse_settings(payload).ok_or_else(|| {
            conn_error(
                ErrorCode::FRAME_SIZE_ERROR,
                "SETTINGS payload is not a multiple of 6 bytes",
            )
        })?;
        let mut state = self.shared.lock();
        let state = &mut *state;
        for s in settings {
            match s.id {
                setting::ENABLE_PUSH if s.value > 1 => {
                    return Err(conn_error(
                        ErrorCode::PROTOCOL_ERROR,
                        "SETTINGS_ENABLE_PUSH must be 0 or 1",
                    ));
                }
                setting::INITIAL_WINDOW_SIZE => {
                    if s.value > frame::MAX_WINDOW {
                        return Err(conn_error(
                            ErrorCode::FLOW_CONTROL_ERROR,
                            "SETTINGS_INITIAL_WINDOW_SIZE over 2^31-1",
                        ));
                    }
                    let delta = i64::from(s.value) - state.initial_send_window;
                    state.initial_send_window = i64::from(s.value);
                    for stream in state.streams.values_mut() {
                        stream.send_window += delta;
                        if stream.send_window > i64::from(frame::MAX_WINDOW) {
                            return Err(conn_error(
                                ErrorCode::FLOW_CONTROL_ERROR,
                                "SETTINGS_INITIAL_WINDOW_SIZE overflows a stream window",
                            ));
                        }
                    }
                    state.wake_blocked_streams();
                }
                setting::MAX_FRAME_SIZE => {
                    if !(16_384..=frame::MAX_MAX_FRAME_SIZE).contains(&s.value) {
                        return Err(conn_error(
                            ErrorCode::PROTOCOL_ERROR,
                            "SETTINGS_MAX_FRAME_SIZE outside 16384..=16777215",
                        ));
                    }
                    state.max_frame_size =
                        usize::try_from(s.value).unwrap_or(frame::DEFAULT_MAX_FRAME_SIZE);
                }
                // HEADER_TABLE_SIZE: responses never use the dynamic table.
                // MAX_CONCURRENT_STREAMS: this server opens no streams.
                // MAX_HEADER_LIST_SIZE: responses are a few small fields.
                _ => {}
            }
        }
        frame::put_settings_ack(&mut state.out);
        state.wake_writer();
        Ok(())
    }

    fn window_update(&mut self, h: FrameHeader, payload: &[u8]) -> Result<(), ConnectionError> {
        let increment = frame::parse_u31(payload).ok_or_else(|| {
            conn_error(
                ErrorCode::FRAME_SIZE_ERROR,
                "WINDOW_UPDATE payload is not 4 bytes",
            )
        })?;
        if h.stream_id == 0 {
            if increment == 0 {
                return Err(conn_error(ErrorCode::PROTOCOL_ERROR, "WINDOW_UPDATE of 0"));
            }
            let mut state = self.shared.lock();
            state.conn_send_window += i64::from(increment);
            if state.conn_send_window > i64::from(frame::MAX_WINDOW) {
                return Err(conn_error(
                    ErrorCode::FLOW_CONTROL_ERROR,
                    "connection window over 2^31-1",
                ));
            }
            state.wake_blocked_streams();
            return Ok(());
        }
        if self.is_idle(h.stream_id) {
            return Err(conn_error(
                ErrorCode::PROTOCOL_ERROR,
                format!(
                    "WINDOW_UPDATE on stream {} that was never opened",
                    h.stream_id
                ),
            ));
        }
        let error = {
            let mut state = self.shared.lock();
            match state.streams.get_mut(&h.stream_id) {
                None => None,
                Some(_) if increment == 0 => Some(ErrorCode::PROTOCOL_ERROR),
                Some(stream) => {
                    stream.send_window += i64::from(increment);
                    if let Some(w) = stream.waker.take() {
                        w.wake();
                    }
                    (stream.send_window > i64::from(frame::MAX_WINDOW))
                        .then_some(ErrorCode::FLOW_CONTROL_ERROR)
                }
            }
        };
        if let Some(code) = error {
            self.stream_error(h.stream_id, code);
        }
        Ok(())
    }
}

/// Calls the service and sends its response on stream `id`.
async fn respond<S, B>(shared: &Shared, id: u32, service: S, request: Request<RequestBody>)
where
    S: Http2Service<B>,
    B: ResponseBody,
{
    // Boxed, and freed once the head is there: an idle stream's future then
    // holds only the response body, not room for the service's future.
    let response = Box::pin(service.oneshot(request)).await;
    let response = match response {
        Ok(response) => response,
        Err(e) => {
            let e: BoxError = e.into();
            tracing::warn!(stream = id, error = %e, "Workload API service failed");
            shared.send_headers(id, &internal_error_block(), true);
            return;
        }
    };
    let (parts, body) = response.into_parts();
    let mut body = std::pin::pin!(body);
    let end = body.is_end_stream();
    if !shared.send_headers(
        id,
        &headers::encode_response(parts.status, &parts.headers),
        end,
    ) || end
    {
        return;
    }
    drop(parts);
    loop {
        match std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
            None => {
                shared.send_data(id, Bytes::new(), true).await;
                return;
            }
            Some(Err(e)) => {
                let e: BoxError = e.into();
                tracing::warn!(stream = id, error = %e, "Workload API response body failed");
                shared.reset(
                    id,
                    Some(ErrorCode::INTERNAL_ERROR),
                    BodyError::Reset(ErrorCode::INTERNAL_ERROR),
                );
                return;
            }
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    if !shared.send_data(id, data, false).await {
                        return;
                    }
                }
                Err(frame) => {
                    if let Ok(trailers) = frame.into_trailers() {
                        shared.send_headers(id, &headers::encode_trailers(&trailers), true);
                        return;
                    }
                }
            },
        }
    }
}

/// A gRPC trailers-only response: INTERNAL.
fn internal_error_block() -> Vec<u8> {
    let mut fields = HeaderMap::new();
    fields.insert("content-type", HeaderValue::from_static("application/grpc"));
    fields.insert("grpc-status", HeaderValue::from_static("13"));
    fields.insert(
        "grpc-message",
        HeaderValue::from_static("the%20Workload%20API%20service%20failed"),
    );
    headers::encode_response(StatusCode::OK, &fields)
}
