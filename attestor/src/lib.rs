//! Rootmark attestor: the node daemon that proves the host's measured boot
//! with its TPM and serves workload identities.
//!
//! Today the crate holds the TPM layer ([`tpm`]), the event-log reader
//! ([`eventlog`]) and the TPM part of the configuration ([`config`]); the
//! attestation client and the Workload API server build on them.
#![forbid(unsafe_code)]

pub mod agent;
pub mod cache;
pub mod config;
pub mod daemon;
pub mod eventlog;
#[doc(hidden)]
pub mod fuzzing;
pub mod http2;
pub mod node;
pub mod tpm;
pub mod workload;
pub mod workload_api;
