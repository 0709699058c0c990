//! A request body fed by the connection: DATA frames are queued as they
//! arrive and handed to the service as it reads them. Each chunk read is
//! credited back to the client's stream window, so the client can never
//! queue more than one window of unread data per stream.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};

use super::connection::Shared;

/// Why a request body ended early.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BodyError {
    /// The client reset the stream.
    #[error("the client reset the stream ({0})")]
    Reset(super::frame::ErrorCode),
    /// The connection closed before the body ended.
    #[error("the connection closed before the request body ended")]
    ConnectionClosed,
}

#[derive(Debug, Default)]
struct Queue {
    chunks: VecDeque<Bytes>,
    trailers: Option<HeaderMap>,
    ended: bool,
    error: Option<BodyError>,
    /// The service dropped the body: what arrives is discarded.
    dropped: bool,
    waker: Option<Waker>,
}

/// The connection's end of a request body.
#[derive(Debug, Clone)]
pub(super) struct BodySender {
    queue: Arc<Mutex<Queue>>,
}

impl BodySender {
    fn with<R>(&self, f: impl FnOnce(&mut Queue) -> R) -> R {
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        let r = f(&mut queue);
        if let Some(waker) = queue.waker.take() {
            waker.wake();
        }
        r
    }

    /// Queues one DATA payload; `false` if the service dropped the body,
    /// in which case the payload is discarded (and the caller credits it
    /// back to the client at once).
    pub(super) fn push(&self, data: Bytes) -> bool {
        self.with(|q| {
            if q.dropped {
                return false;
            }
            // A small payload is copied out of the connection's read buffer
            // so that it does not keep the whole buffer alive while queued.
            let data = if data.len() < 1024 {
                Bytes::copy_from_slice(&data)
            } else {
                data
            };
            q.chunks.push_back(data);
            true
        })
    }

    /// Ends the body, with trailers if the client sent some.
    pub(super) fn end(&self, trailers: Option<HeaderMap>) {
        self.with(|q| {
            q.trailers = trailers;
            q.ended = true;
        });
    }

    /// Ends the body with an error.
    pub(super) fn fail(&self, error: BodyError) {
        self.with(|q| {
            if !q.ended {
                q.error = Some(error);
            }
        });
    }
}

/// A request body, as the service sees it.
///
/// It refers to its connection weakly: a body the service keeps (in a task
/// of its own, say) must not keep a closed connection's state alive.
#[derive(Debug)]
pub struct RequestBody {
    queue: Arc<Mutex<Queue>>,
    stream_id: u32,
    connection: Weak<Shared>,
}

impl RequestBody {
    /// A body and its sender; `connection` is credited with what is read.
    pub(super) fn channel(stream_id: u32, connection: Arc<Shared>) -> (RequestBody, BodySender) {
        let queue = Arc::new(Mutex::new(Queue::default()));
        (
            RequestBody {
                queue: Arc::clone(&queue),
                stream_id,
                connection: Arc::downgrade(&connection),
            },
            BodySender { queue },
        )
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        let mut queue = this.queue.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(chunk) = queue.chunks.pop_front() {
            drop(queue);
            if let Some(connection) = this.connection.upgrade() {
                connection.credit_stream(this.stream_id, chunk.len());
            }
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        if let Some(error) = queue.error.take() {
            // An error ends the body: a later poll sees the end, not a hang.
            queue.ended = true;
            return Poll::Ready(Some(Err(error)));
        }
        if queue.ended {
            return Poll::Ready(queue.trailers.take().map(|t| Ok(Frame::trailers(t))));
        }
        queue.waker = Some(cx.waker().clone());
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        let queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        queue.ended && queue.chunks.is_empty() && queue.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

impl Drop for RequestBody {
    /// Discards what is queued and credits it back, so a client that keeps
    /// sending to a service that stopped reading is not stalled by a full
    /// window, and the queued data does not stay in memory.
    fn drop(&mut self) {
        let unread: usize = {
            let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            queue.dropped = true;
            queue.waker = None;
            queue.chunks.drain(..).map(|c| c.len()).sum()
        };
        if unread > 0
            && let Some(connection) = self.connection.upgrade()
        {
            connection.credit_stream(self.stream_id, unread);
        }
    }
}
