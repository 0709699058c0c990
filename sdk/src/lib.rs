//! Rootmark SDK.
//!
//! Services link this crate to obtain SPIFFE identities from the local
//! `rootmark-attestor` over the SPIFFE Workload API and to authenticate
//! their peers by SPIFFE ID:
//!
//! | concept | module |
//! |---|---|
//! | SPIFFE IDs and trust domains | [`id`] |
//! | X509-SVIDs | [`svid`] |
//! | X.509 bundles, bundle sets | [`bundle`] |
//! | JWT bundles, JWT-SVID validation | [`jwt`] |
//! | Workload API client | [`workload`] |
//! | live, rotating credentials | [`source`] |
//! | rustls mTLS with SPIFFE ID authorization | [`tls`] |
//!
//! The wire definitions are re-exported as [`proto`] so that every crate
//! agrees on one copy of them.
//!
//! # Quick start
//!
//! A service that accepts mutual TLS only from `spiffe://example.org/frontend`,
//! with its own certificate rotating underneath the listener, and that
//! calls a backend it authenticates by SPIFFE ID:
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use rootmark_sdk::tls::{Authorizer, client_config, peer_spiffe_id, server_config};
//! use rootmark_sdk::{JwtSource, SpiffeId, X509Source};
//! use rustls::pki_types::ServerName;
//! use tokio::net::{TcpListener, TcpStream};
//! use tokio_rustls::{TlsAcceptor, TlsConnector};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! // The Workload API address comes from SPIFFE_ENDPOINT_SOCKET
//! // (unix:///path/to/socket). `new` waits for the first identity: the
//! // source never serves nothing.
//! let source = Arc::new(X509Source::new().await?);
//! println!("I am {}", source.svid().spiffe_id());
//!
//! // Server: require a client SVID from our bundle with exactly this ID.
//! let frontend = SpiffeId::parse("spiffe://example.org/frontend")?;
//! let acceptor = TlsAcceptor::from(Arc::new(server_config(
//!     Arc::clone(&source),
//!     Authorizer::exact(frontend),
//! )?));
//! let listener = TcpListener::bind("127.0.0.1:8443").await?;
//! let (tcp, _) = listener.accept().await?;
//! let tls = acceptor.accept(tcp).await?;
//! // The authenticated and authorized peer, for this connection.
//! let peer: Option<SpiffeId> = peer_spiffe_id(tls.get_ref().1);
//!
//! // Client: accept any server of our trust domain.
//! let td = source.svid().spiffe_id().trust_domain().clone();
//! let connector = TlsConnector::from(Arc::new(client_config(
//!     Arc::clone(&source),
//!     Authorizer::member_of(td),
//! )?));
//! let tcp = TcpStream::connect("backend.internal:8443").await?;
//! // No DNS name is checked (the SPIFFE ID is): any valid name will do.
//! let tls = connector.connect(ServerName::try_from("backend")?, tcp).await?;
//!
//! // JWT-SVIDs: fetch one for an audience, and validate received ones
//! // locally against the current JWT bundles.
//! let jwt = JwtSource::new().await?;
//! let token = jwt.fetch_jwt_svid(&["billing"], None).await?;
//! let validated = jwt.validate(token.token(), "billing")?;
//! assert_eq!(validated.spiffe_id(), source.svid().spiffe_id());
//! # let _ = (peer, tls);
//! # Ok(()) }
//! ```
//!
//! See `docs/sdk.md` in the repository for authorizers, rotation, JWT
//! validation and the `mtls-server`/`mtls-client` examples.
#![forbid(unsafe_code)]

pub mod bundle;
#[doc(hidden)]
pub mod fuzzing;
pub mod id;
pub mod jwt;
pub mod source;
pub mod svid;
#[cfg(test)]
mod test_pki;
pub mod tls;
pub mod workload;

pub use bundle::{BundleError, BundleSet, X509Bundle, X509BundleSet};
pub use id::{IdError, SpiffeId, TrustDomain};
pub use jwt::{JwtBundle, JwtBundleSet, JwtError, JwtSvid, validate_jwt_svid};
pub use rootmark_proto as proto;
pub use source::{JwtSource, SourceError, SourceOptions, X509Source};
pub use svid::{SvidError, X509Svid};
pub use workload::{ClientError, WorkloadApiClient, X509Context};

/// rustls, for the paths in `verify_handshake_signatures_with_provider!`.
#[doc(hidden)]
pub use rustls as __rustls;

/// The gRPC metadata key every Workload API call must carry, with the
/// value `"true"`; servers refuse calls without it.
pub const WORKLOAD_API_SECURITY_HEADER: &str = "workload.spiffe.io";

/// The environment variable SPIFFE clients read to find the Workload API socket.
pub const SPIFFE_ENDPOINT_SOCKET_ENV: &str = "SPIFFE_ENDPOINT_SOCKET";
