//! Protocol definitions for Rootmark.
//!
//! This crate holds the `.proto` files of the two gRPC APIs Rootmark speaks and
//! the Rust code generated from them ([prost] messages, [tonic] clients and
//! servers):
//!
//! - [`workload`]: the SPIFFE Workload API (`proto/workload.proto`), served by
//!   the attestor on a Unix socket to local workloads. It has no protobuf
//!   package, so its gRPC paths are `/SpiffeWorkloadAPI/<Method>` and any SPIFFE
//!   client can use it.
//! - [`node::v1`]: node attestation (`proto/rootmark/node/v1/node.proto`),
//!   spoken by the attestor to the issuer to prove, with the TPM, which TPM it
//!   is and how its host booted; and issuance
//!   (`proto/rootmark/node/v1/issuance.proto`), over mutual TLS with the node
//!   SVID, through which the attestor receives its entries and bundle and
//!   obtains workload SVIDs.
//!
//! The generated code is committed under `src/gen/`, so building this crate
//! needs neither `protoc` nor a build script. The test
//! `tests/codegen.rs` regenerates it in pure Rust (`protox` and
//! `tonic-prost-build`) and fails if the committed files drifted from the
//! `.proto` files. After editing a `.proto` file, regenerate with:
//!
//! ```text
//! ROOTMARK_REGEN_PROTO=1 cargo test -p rootmark-proto --test codegen
//! ```
//!
//! The versions of [prost], [prost_types] and [tonic] this code was generated
//! for are re-exported, so dependents can name them without a version skew.
#![forbid(unsafe_code)]

pub use prost;
pub use prost_types;
pub use tonic;

/// The SPIFFE Workload API, generated from `proto/workload.proto`.
///
/// Messages (for example [`X509svid`](workload::X509svid)) are at the top of
/// this module; the client is in
/// [`spiffe_workload_api_client`](workload::spiffe_workload_api_client) and the
/// server (trait
/// [`SpiffeWorkloadApi`](workload::spiffe_workload_api_server::SpiffeWorkloadApi))
/// in [`spiffe_workload_api_server`](workload::spiffe_workload_api_server).
///
/// Every call must carry the metadata `workload.spiffe.io: true`.
#[allow(
    missing_docs,
    clippy::all,
    clippy::pedantic,
    clippy::unwrap_used,
    rustdoc::bare_urls,
    rustdoc::invalid_html_tags
)]
pub mod workload {
    include!("gen/workload.rs");

    /// The encoded `FileDescriptorSet` of `workload.proto` and its imports,
    /// for gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!("gen/workload_descriptor.bin");
}

/// Rootmark's own node protocols, one module per package version.
pub mod node {
    /// Node attestation and issuance, version 1 (package `rootmark.node.v1`),
    /// generated from `proto/rootmark/node/v1/node.proto` and
    /// `proto/rootmark/node/v1/issuance.proto` (prost writes one file per
    /// package).
    ///
    /// The attestation stream is
    /// [`NodeAttestationClient::attest`](v1::node_attestation_client::NodeAttestationClient::attest)
    /// on the attestor side and the trait
    /// [`NodeAttestation`](v1::node_attestation_server::NodeAttestation) on the
    /// issuer side. Issuance is
    /// [`IssuanceClient`](v1::issuance_client::IssuanceClient) and the trait
    /// [`Issuance`](v1::issuance_server::Issuance).
    #[allow(
        missing_docs,
        clippy::all,
        clippy::pedantic,
        clippy::unwrap_used,
        rustdoc::bare_urls,
        rustdoc::invalid_html_tags
    )]
    pub mod v1 {
        include!("gen/rootmark.node.v1.rs");
    }
}
