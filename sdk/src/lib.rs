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
#![forbid(unsafe_code)]

pub mod bundle;
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

/// The gRPC metadata key every Workload API call must carry, with the
/// value `"true"`; servers refuse calls without it.
pub const WORKLOAD_API_SECURITY_HEADER: &str = "workload.spiffe.io";

/// The environment variable SPIFFE clients read to find the Workload API socket.
pub const SPIFFE_ENDPOINT_SOCKET_ENV: &str = "SPIFFE_ENDPOINT_SOCKET";
