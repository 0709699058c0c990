//! Rootmark issuer.
//!
//! The issuer verifies node attestation evidence (TPM quotes, event logs,
//! credential activation) in pure Rust — it never links a TPM stack, so it
//! runs on hosts without a TPM — and mints SPIFFE identities for the nodes
//! and workloads that pass.
#![forbid(unsafe_code)]

pub mod admin;
pub mod ak;
pub mod ca;
pub mod certify;
pub mod config;
pub mod credential;
pub mod ek;
pub mod eventlog;
pub mod evidence;
#[doc(hidden)]
pub mod fuzzing;
pub mod pcr;
pub mod policy;
pub mod quote;
pub mod service;
pub mod store;
pub mod tpm;
pub mod tpm2_tools;
pub mod verdict;
