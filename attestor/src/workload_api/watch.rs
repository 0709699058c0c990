//! A Workload API stream: the caller's view of the published state, sent
//! once and again whenever it changes.
//!
//! It is polled directly by the gRPC response body (no task and no channel
//! per stream), and remembers only a fingerprint of what it last sent, so
//! an idle stream costs little memory: a host may have thousands.

use std::hash::{Hash as _, Hasher as _};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio_stream::Stream;
use tokio_stream::wrappers::WatchStream;
use tonic::Status;

use super::WorkloadApiError;
use crate::cache::state::Snapshot;

/// Yields `build(snapshot)` for every new snapshot whose result differs from
/// the last one sent; an error is sent once and ends the stream.
pub struct SnapshotStream<T, F> {
    snapshots: WatchStream<Arc<Snapshot>>,
    build: F,
    last: Option<u64>,
    done: bool,
    _message: std::marker::PhantomData<fn() -> T>,
}

impl<T, F> SnapshotStream<T, F>
where
    T: prost::Message,
    F: Fn(&Snapshot) -> Result<T, WorkloadApiError>,
{
    /// Follows `snapshots` (which yields the current value first).
    pub fn new(snapshots: tokio::sync::watch::Receiver<Arc<Snapshot>>, build: F) -> Self {
        SnapshotStream {
            snapshots: WatchStream::new(snapshots),
            build,
            last: None,
            done: false,
            _message: std::marker::PhantomData,
        }
    }
}

/// A fingerprint of a message's encoding, to skip resending what the caller
/// already has.
fn fingerprint<T: prost::Message>(message: &T) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    message.encode_to_vec().hash(&mut hasher);
    hasher.finish()
}

impl<T, F> Stream for SnapshotStream<T, F>
where
    T: prost::Message,
    F: Fn(&Snapshot) -> Result<T, WorkloadApiError> + Unpin,
{
    type Item = Result<T, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            let snapshot = match Pin::new(&mut this.snapshots).poll_next(cx) {
                Poll::Ready(Some(snapshot)) => snapshot,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            };
            match (this.build)(&snapshot) {
                Ok(message) => {
                    let print = fingerprint(&message);
                    if this.last == Some(print) {
                        continue;
                    }
                    this.last = Some(print);
                    return Poll::Ready(Some(Ok(message)));
                }
                Err(e) => {
                    this.done = true;
                    return Poll::Ready(Some(Err(e.into())));
                }
            }
        }
    }
}
