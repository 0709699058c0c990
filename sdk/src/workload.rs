//! A SPIFFE Workload API client over a Unix socket.
//!
//! [`WorkloadApiClient::connect_env`] finds the socket through
//! `SPIFFE_ENDPOINT_SOCKET` (`unix:///path` or `unix:/path`); every call
//! carries the `workload.spiffe.io: true` metadata the API requires.
//! Responses are validated before they are returned: an X.509 context whose
//! SVID breaks a rule, or a bundle that does not parse, is a
//! [`ClientError::BadResponse`], never half-used.
//!
//! ```no_run
//! # async fn example() -> Result<(), rootmark_sdk::workload::ClientError> {
//! use rootmark_sdk::workload::WorkloadApiClient;
//!
//! let client = WorkloadApiClient::connect_env().await?;
//! let context = client.fetch_x509_context().await?;
//! println!("I am {}", context.default_svid().spiffe_id());
//! let token = client.fetch_jwt_svid(&["payments"], None).await?;
//! println!("JWT for payments expires at {:?}", token.expiry());
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rootmark_proto::tonic;
use rootmark_proto::workload as pb;
use rootmark_proto::workload::spiffe_workload_api_client::SpiffeWorkloadApiClient;
use tokio::net::UnixStream;
use tokio_stream::{Stream, StreamExt as _};
use tonic::transport::{Channel, Endpoint, Uri};

use crate::bundle::{X509Bundle, X509BundleSet};
use crate::id::{SpiffeId, TrustDomain};
use crate::jwt::{JwtBundle, JwtBundleSet, JwtSvid, struct_to_claims};
use crate::svid::X509Svid;
use crate::{SPIFFE_ENDPOINT_SOCKET_ENV, WORKLOAD_API_SECURITY_HEADER};

/// How long [`WorkloadApiClient::connect`] waits for the socket.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a Workload API call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// `SPIFFE_ENDPOINT_SOCKET` is not set.
    #[error("{SPIFFE_ENDPOINT_SOCKET_ENV} is not set (expected unix:///path/to/socket)")]
    MissingEndpoint,
    /// The endpoint address is not a usable Unix socket URI.
    #[error("Workload API address {address:?}: {reason}")]
    InvalidAddress {
        /// The address given.
        address: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The socket could not be reached.
    #[error("Workload API at {path}: cannot connect: {reason}")]
    Transport {
        /// The socket path.
        path: String,
        /// The transport error.
        reason: String,
    },
    /// The server has no identity for this caller (`PermissionDenied`).
    #[error("Workload API: no identity issued to this workload: {message}")]
    NoIdentity {
        /// The server's message.
        message: String,
    },
    /// The server is not ready or the connection broke (`Unavailable`).
    #[error("Workload API unavailable: {message}")]
    Unavailable {
        /// The server's or transport's message.
        message: String,
    },
    /// The server refused the request's arguments (`InvalidArgument`), or
    /// the caller passed arguments the API cannot take.
    #[error("Workload API: invalid argument: {message}")]
    InvalidArgument {
        /// The message.
        message: String,
    },
    /// Any other gRPC status.
    #[error("Workload API: {code:?}: {message}")]
    Status {
        /// The gRPC code.
        code: tonic::Code,
        /// The server's message.
        message: String,
    },
    /// The server answered with something that is not valid.
    #[error("Workload API: bad response: {reason}")]
    BadResponse {
        /// What is wrong with it.
        reason: String,
    },
    /// A watch stream ended (the server closed it).
    #[error("Workload API: the stream ended")]
    StreamEnded,
}

impl From<tonic::Status> for ClientError {
    fn from(status: tonic::Status) -> Self {
        let message = status.message().to_owned();
        match status.code() {
            tonic::Code::PermissionDenied => ClientError::NoIdentity { message },
            tonic::Code::Unavailable => ClientError::Unavailable { message },
            tonic::Code::InvalidArgument => ClientError::InvalidArgument { message },
            code => ClientError::Status { code, message },
        }
    }
}

impl ClientError {
    fn bad(reason: impl Into<String>) -> Self {
        ClientError::BadResponse {
            reason: reason.into(),
        }
    }

    /// Whether retrying later may help (unavailable, transport, stream end,
    /// or a status other than invalid argument). `NoIdentity` counts as
    /// retryable: an entry may be created later.
    pub fn is_retryable(&self) -> bool {
        !matches!(
            self,
            ClientError::MissingEndpoint
                | ClientError::InvalidAddress { .. }
                | ClientError::InvalidArgument { .. }
        )
    }
}

/// A stream of updates from a watch call; it yields the full current state
/// first and again on every change.
pub type WatchStream<T> = Pin<Box<dyn Stream<Item = Result<T, ClientError>> + Send + 'static>>;

/// A workload's X.509 material: its SVIDs and the bundles to check peers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct X509Context {
    svids: Vec<X509Svid>,
    bundles: X509BundleSet,
}

impl X509Context {
    /// A context from parts.
    ///
    /// # Errors
    /// [`ClientError::BadResponse`] when `svids` is empty.
    pub fn new(svids: Vec<X509Svid>, bundles: X509BundleSet) -> Result<Self, ClientError> {
        if svids.is_empty() {
            return Err(ClientError::bad("no X509-SVID in the context"));
        }
        Ok(X509Context { svids, bundles })
    }

    /// All SVIDs, in the server's order.
    pub fn svids(&self) -> &[X509Svid] {
        &self.svids
    }

    /// The first SVID: the default identity.
    pub fn default_svid(&self) -> &X509Svid {
        // `new` and `from_response` refuse an empty list.
        &self.svids[0]
    }

    /// The bundles by trust domain (own and federated).
    pub fn bundles(&self) -> &X509BundleSet {
        &self.bundles
    }

    /// Validates and converts a `FetchX509SVID` response.
    ///
    /// # Errors
    /// [`ClientError::BadResponse`] naming the first invalid part.
    pub fn from_response(response: &pb::X509svidResponse) -> Result<Self, ClientError> {
        if response.svids.is_empty() {
            return Err(ClientError::bad("X509SVIDResponse has no SVID"));
        }
        let mut svids = Vec::with_capacity(response.svids.len());
        let mut bundles = X509BundleSet::new();
        for (i, entry) in response.svids.iter().enumerate() {
            let id = SpiffeId::parse(&entry.spiffe_id)
                .map_err(|e| ClientError::bad(format!("svids[{i}].spiffe_id: {e}")))?;
            let svid = X509Svid::parse(&entry.x509_svid, &entry.x509_svid_key)
                .map_err(|e| ClientError::bad(format!("svids[{i}] ({id}): {e}")))?
                .with_hint(entry.hint.clone());
            if svid.spiffe_id() != &id {
                return Err(ClientError::bad(format!(
                    "svids[{i}]: spiffe_id {id} but the certificate is for {}",
                    svid.spiffe_id()
                )));
            }
            let td = id.trust_domain().clone();
            if bundles.get(&td).is_none() {
                let bundle = X509Bundle::parse(td, &entry.bundle)
                    .map_err(|e| ClientError::bad(format!("svids[{i}].bundle: {e}")))?;
                bundles.insert(bundle);
            }
            svids.push(svid);
        }
        for bundle in parse_x509_bundles("federated_bundles", &response.federated_bundles)?.iter() {
            if bundles.get(bundle.trust_domain()).is_none() {
                bundles.insert(bundle.clone());
            }
        }
        Ok(X509Context { svids, bundles })
    }
}

/// Reads a map key of the Workload API: a trust domain ID
/// (`spiffe://example.org`) or, leniently, a bare name.
fn trust_domain_key(field: &str, key: &str) -> Result<TrustDomain, ClientError> {
    if key.starts_with(crate::id::SPIFFE_SCHEME_PREFIX) {
        let id = SpiffeId::parse(key)
            .map_err(|e| ClientError::bad(format!("{field} key {key:?}: {e}")))?;
        if !id.is_trust_domain_id() {
            return Err(ClientError::bad(format!(
                "{field} key {key:?}: expected a trust domain ID, found a path"
            )));
        }
        return Ok(id.trust_domain().clone());
    }
    TrustDomain::parse(key).map_err(|e| ClientError::bad(format!("{field} key {key:?}: {e}")))
}

fn parse_x509_bundles(
    field: &str,
    map: &HashMap<String, Vec<u8>>,
) -> Result<X509BundleSet, ClientError> {
    let mut set = X509BundleSet::new();
    for (key, der) in map {
        let td = trust_domain_key(field, key)?;
        let bundle = X509Bundle::parse(td, der)
            .map_err(|e| ClientError::bad(format!("{field}[{key}]: {e}")))?;
        set.insert(bundle);
    }
    Ok(set)
}

fn parse_jwt_bundles(response: &pb::JwtBundlesResponse) -> Result<JwtBundleSet, ClientError> {
    let mut set = JwtBundleSet::new();
    for (key, jwks) in &response.bundles {
        let td = trust_domain_key("bundles", key)?;
        let bundle = JwtBundle::from_jwks(td, jwks)
            .map_err(|e| ClientError::bad(format!("bundles[{key}]: {e}")))?;
        set.insert(bundle);
    }
    Ok(set)
}

/// The socket path of a Workload API address: `unix:///path` or
/// `unix:/path` (an absolute path, no authority, query or fragment).
///
/// # Errors
/// [`ClientError::InvalidAddress`] saying what is wrong.
pub fn parse_endpoint_address(address: &str) -> Result<PathBuf, ClientError> {
    let invalid = |reason: &str| ClientError::InvalidAddress {
        address: address.to_owned(),
        reason: reason.to_owned(),
    };
    let Some(rest) = address.strip_prefix("unix:") else {
        if address.starts_with("tcp:") {
            return Err(invalid(
                "TCP endpoints are not supported; use unix:///path/to/socket",
            ));
        }
        return Err(invalid(
            "expected unix:///path/to/socket or unix:/path/to/socket",
        ));
    };
    let path = match rest.strip_prefix("//") {
        Some(after) if after.starts_with('/') => after,
        Some(_) => {
            return Err(invalid(
                "a unix URI must not have an authority (write unix:///path, with three slashes)",
            ));
        }
        None => rest,
    };
    if !path.starts_with('/') {
        return Err(invalid("the socket path must be absolute"));
    }
    if path.contains(['?', '#']) {
        return Err(invalid("a unix URI must not have a query or fragment"));
    }
    if path.len() == 1 {
        return Err(invalid("the socket path is empty"));
    }
    Ok(PathBuf::from(path))
}

/// A Workload API client. Cloning is cheap and clones share the connection.
#[derive(Debug, Clone)]
pub struct WorkloadApiClient {
    inner: SpiffeWorkloadApiClient<Channel>,
}

impl WorkloadApiClient {
    /// Connects to the socket named by `SPIFFE_ENDPOINT_SOCKET`.
    ///
    /// # Errors
    /// [`ClientError::MissingEndpoint`], or as [`WorkloadApiClient::connect`].
    pub async fn connect_env() -> Result<Self, ClientError> {
        let address = endpoint_from_env()?;
        Self::connect(&address).await
    }

    /// Connects to `address` (`unix:///path` or `unix:/path`).
    ///
    /// # Errors
    /// [`ClientError::InvalidAddress`], or [`ClientError::Transport`] when
    /// the socket cannot be reached within [`CONNECT_TIMEOUT`].
    pub async fn connect(address: &str) -> Result<Self, ClientError> {
        let path = parse_endpoint_address(address)?;
        Self::connect_path(&path).await
    }

    /// Connects to the Unix socket at `path`.
    ///
    /// # Errors
    /// [`ClientError::Transport`] when the socket cannot be reached.
    pub async fn connect_path(path: &Path) -> Result<Self, ClientError> {
        let transport = |reason: String| ClientError::Transport {
            path: path.display().to_string(),
            reason,
        };
        // The URI is required by tonic but unused: the connector dials the socket.
        let endpoint = Endpoint::from_static("http://localhost")
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(false);
        let socket = path.to_path_buf();
        let channel = endpoint
            .connect_with_connector(tower::service_fn(move |_: Uri| {
                let socket = socket.clone();
                async move { UnixStream::connect(socket).await.map(TokioIo::new) }
            }))
            .await
            .map_err(|e| transport(error_chain(&e)))?;
        Ok(Self::from_channel(channel))
    }

    /// A client over an existing channel (for custom transports and tests).
    pub fn from_channel(channel: Channel) -> Self {
        WorkloadApiClient {
            inner: SpiffeWorkloadApiClient::new(channel),
        }
    }

    fn api(&self) -> SpiffeWorkloadApiClient<Channel> {
        self.inner.clone()
    }

    /// The first X.509 context the server sends.
    ///
    /// # Errors
    /// The server's status as a [`ClientError`], or
    /// [`ClientError::BadResponse`] for an invalid context.
    pub async fn fetch_x509_context(&self) -> Result<X509Context, ClientError> {
        let mut stream = self.watch_x509_context().await?;
        stream.next().await.unwrap_or(Err(ClientError::StreamEnded))
    }

    /// The default (first) X509-SVID.
    ///
    /// # Errors
    /// As [`WorkloadApiClient::fetch_x509_context`].
    pub async fn fetch_x509_svid(&self) -> Result<X509Svid, ClientError> {
        Ok(self.fetch_x509_context().await?.default_svid().clone())
    }

    /// Every X.509 context the server sends: the current one at once, then
    /// a new one on each change. An invalid message is yielded as an error
    /// and the stream goes on.
    ///
    /// # Errors
    /// The server's status when the call is refused.
    pub async fn watch_x509_context(&self) -> Result<WatchStream<X509Context>, ClientError> {
        let response = self
            .api()
            .fetch_x509svid(request(pb::X509svidRequest {}))
            .await?;
        Ok(Box::pin(response.into_inner().map(|item| {
            item.map_err(ClientError::from)
                .and_then(|msg| X509Context::from_response(&msg))
        })))
    }

    /// The first set of X.509 bundles the server sends.
    ///
    /// # Errors
    /// As [`WorkloadApiClient::fetch_x509_context`].
    pub async fn fetch_x509_bundles(&self) -> Result<X509BundleSet, ClientError> {
        let mut stream = self.watch_x509_bundles().await?;
        stream.next().await.unwrap_or(Err(ClientError::StreamEnded))
    }

    /// Every set of X.509 bundles the server sends.
    ///
    /// # Errors
    /// The server's status when the call is refused.
    pub async fn watch_x509_bundles(&self) -> Result<WatchStream<X509BundleSet>, ClientError> {
        let response = self
            .api()
            .fetch_x509_bundles(request(pb::X509BundlesRequest {}))
            .await?;
        Ok(Box::pin(response.into_inner().map(|item| {
            item.map_err(ClientError::from)
                .and_then(|msg| parse_x509_bundles("bundles", &msg.bundles))
        })))
    }

    /// A JWT-SVID for `audience` (at least one), for `spiffe_id` or, if
    /// `None`, the default identity. The token is parsed but, as it comes
    /// from the local agent, not verified.
    ///
    /// # Errors
    /// [`ClientError::InvalidArgument`] for an empty audience, the server's
    /// status, or [`ClientError::BadResponse`].
    pub async fn fetch_jwt_svid<S: AsRef<str>>(
        &self,
        audience: &[S],
        spiffe_id: Option<&SpiffeId>,
    ) -> Result<JwtSvid, ClientError> {
        let svids = self.fetch_jwt_svids(audience, spiffe_id).await?;
        svids
            .into_iter()
            .next()
            .ok_or_else(|| ClientError::bad("JWTSVIDResponse has no SVID"))
    }

    /// All JWT-SVIDs the server issues for `audience` (one per identity of
    /// this workload, or only `spiffe_id`'s).
    ///
    /// # Errors
    /// As [`WorkloadApiClient::fetch_jwt_svid`].
    pub async fn fetch_jwt_svids<S: AsRef<str>>(
        &self,
        audience: &[S],
        spiffe_id: Option<&SpiffeId>,
    ) -> Result<Vec<JwtSvid>, ClientError> {
        let audience: Vec<String> = audience.iter().map(|a| a.as_ref().to_owned()).collect();
        if audience.is_empty() || audience.iter().any(String::is_empty) {
            return Err(ClientError::InvalidArgument {
                message: "at least one non-empty audience is required".into(),
            });
        }
        let response = self
            .api()
            .fetch_jwtsvid(request(pb::JwtsvidRequest {
                audience,
                spiffe_id: spiffe_id.map(|id| id.to_string()).unwrap_or_default(),
            }))
            .await?
            .into_inner();
        if response.svids.is_empty() {
            return Err(ClientError::bad("JWTSVIDResponse has no SVID"));
        }
        response
            .svids
            .iter()
            .enumerate()
            .map(|(i, entry)| {
                let svid = JwtSvid::parse_insecure(&entry.svid)
                    .map_err(|e| ClientError::bad(format!("svids[{i}]: {e}")))?
                    .with_hint(entry.hint.clone());
                if svid.spiffe_id().as_str() != entry.spiffe_id {
                    return Err(ClientError::bad(format!(
                        "svids[{i}]: spiffe_id {:?} but the token's sub is {}",
                        entry.spiffe_id,
                        svid.spiffe_id()
                    )));
                }
                if let Some(wanted) = spiffe_id
                    && svid.spiffe_id() != wanted
                {
                    return Err(ClientError::bad(format!(
                        "svids[{i}]: asked for {wanted}, got {}",
                        svid.spiffe_id()
                    )));
                }
                Ok(svid)
            })
            .collect()
    }

    /// The first set of JWT bundles the server sends.
    ///
    /// # Errors
    /// As [`WorkloadApiClient::fetch_x509_context`].
    pub async fn fetch_jwt_bundles(&self) -> Result<JwtBundleSet, ClientError> {
        let mut stream = self.watch_jwt_bundles().await?;
        stream.next().await.unwrap_or(Err(ClientError::StreamEnded))
    }

    /// Every set of JWT bundles the server sends.
    ///
    /// # Errors
    /// The server's status when the call is refused.
    pub async fn watch_jwt_bundles(&self) -> Result<WatchStream<JwtBundleSet>, ClientError> {
        let response = self
            .api()
            .fetch_jwt_bundles(request(pb::JwtBundlesRequest {}))
            .await?;
        Ok(Box::pin(response.into_inner().map(|item| {
            item.map_err(ClientError::from)
                .and_then(|msg| parse_jwt_bundles(&msg))
        })))
    }

    /// Asks the server to validate `token` for `audience`. Returns the
    /// subject and the claims the server reports.
    ///
    /// # Errors
    /// [`ClientError::InvalidArgument`] when the server refuses the token
    /// (that is how the Workload API reports an invalid JWT-SVID), other
    /// statuses, or [`ClientError::BadResponse`].
    pub async fn validate_jwt_svid(
        &self,
        audience: &str,
        token: &str,
    ) -> Result<ValidatedJwt, ClientError> {
        if audience.is_empty() {
            return Err(ClientError::InvalidArgument {
                message: "the audience must not be empty".into(),
            });
        }
        let response = self
            .api()
            .validate_jwtsvid(request(pb::ValidateJwtsvidRequest {
                audience: audience.to_owned(),
                svid: token.to_owned(),
            }))
            .await?
            .into_inner();
        let spiffe_id = SpiffeId::parse(&response.spiffe_id)
            .map_err(|e| ClientError::bad(format!("spiffe_id: {e}")))?;
        let claims = response
            .claims
            .as_ref()
            .map(struct_to_claims)
            .unwrap_or_default();
        Ok(ValidatedJwt { spiffe_id, claims })
    }
}

/// What `ValidateJWTSVID` reports about a valid token.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidatedJwt {
    /// The token's subject.
    pub spiffe_id: SpiffeId,
    /// The token's claims.
    pub claims: serde_json::Map<String, serde_json::Value>,
}

/// `SPIFFE_ENDPOINT_SOCKET`, if set and non-empty.
///
/// # Errors
/// [`ClientError::MissingEndpoint`].
pub fn endpoint_from_env() -> Result<String, ClientError> {
    match std::env::var(SPIFFE_ENDPOINT_SOCKET_ENV) {
        Ok(value) if !value.is_empty() => Ok(value),
        _ => Err(ClientError::MissingEndpoint),
    }
}

/// Wraps a message with the security header.
fn request<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        WORKLOAD_API_SECURITY_HEADER,
        tonic::metadata::MetadataValue::from_static("true"),
    );
    request
}

/// An error and its sources, on one line.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

#[cfg(test)]
mod tests;
