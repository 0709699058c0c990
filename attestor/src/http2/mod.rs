//! A small HTTP/2 server for gRPC on the Workload API's Unix socket.
//!
//! Why not hyper's: the Workload API holds one long-lived stream per
//! workload, usually each on its own connection, and a host may run
//! thousands. hyper/h2 give every connection fixed buffers (16 KiB to
//! write, 8 KiB to read, 4 KiB for HPACK) that stay allocated while the
//! stream idles: ~22 KB per connection before any service state. This
//! server frees its read and write buffers whenever they are empty and
//! keeps no HPACK encoder state, so an idle connection costs its stream
//! table, the HPACK decoder's table and the service's own state.
//!
//! It serves any tower service that takes `http::Request<RequestBody>` (a
//! tonic router, for one) and implements what gRPC clients use of
//! RFC 9113: SETTINGS, flow control in both directions, CONTINUATION,
//! PING, RST_STREAM and GOAWAY, with the protocol's checks on every frame.
//! Not implemented, because no gRPC client over a Unix socket needs them:
//! server push, priorities (read and ignored), HTTP/1.1 and TLS.

mod body;
pub mod connection;
pub mod frame;
pub mod headers;
pub mod hpack;

use bytes::Bytes;
use futures_util::{Stream, StreamExt as _};
use http::{Request, Response};
use http_body::Body;
use tokio::net::UnixStream;
use tokio::task::JoinSet;
use tower::Service;

pub use body::{BodyError, RequestBody};
pub use connection::{ConnectionError, MAX_CONCURRENT_STREAMS, serve_connection};

/// An error a service or a response body may end with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What the server needs of a service: a tower service of HTTP/2 requests
/// whose futures and errors can move between the runtime's threads (a
/// tonic router is one). Implemented for every such service.
pub trait Http2Service<B>:
    Service<
        Request<RequestBody>,
        Response = Response<B>,
        Future: Send + 'static,
        Error: Into<BoxError> + Send,
    > + Clone
    + Send
    + 'static
{
}

impl<S, B> Http2Service<B> for S where
    S: Service<
            Request<RequestBody>,
            Response = Response<B>,
            Future: Send + 'static,
            Error: Into<BoxError> + Send,
        > + Clone
        + Send
        + 'static
{
}

/// What the server needs of a response body: bytes, an error it can log,
/// and both movable between threads. Implemented for every such body.
pub trait ResponseBody: Body<Data = Bytes, Error: Into<BoxError> + Send> + Send + 'static {}

impl<B> ResponseBody for B where B: Body<Data = Bytes, Error: Into<BoxError> + Send> + Send + 'static
{}

/// Serves every connection `incoming` yields, each in its own task with its
/// extension value put in every request. Returns when `incoming` ends,
/// closing every connection; dropping the future does the same.
pub async fn serve<I, S, B, X>(incoming: I, service: S)
where
    I: Stream<Item = (UnixStream, X)>,
    S: Http2Service<B>,
    B: ResponseBody,
    X: Clone + Send + Sync + 'static,
{
    let mut incoming = std::pin::pin!(incoming);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            next = incoming.next() => match next {
                Some((socket, extension)) => {
                    connections.spawn(serve_connection(socket, service.clone(), extension));
                }
                None => return,
            },
            Some(done) = connections.join_next(), if !connections.is_empty() => {
                if let Err(e) = done
                    && e.is_panic() {
                        tracing::error!(error = %e, "a Workload API connection task panicked");
                    }
            }
        }
    }
}
