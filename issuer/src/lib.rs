//! Rootmark issuer.
//!
//! The issuer verifies node attestation evidence (TPM quotes, event logs,
//! credential activation) in pure Rust — it never links a TPM stack, so it
//! runs on hosts without a TPM — and mints SPIFFE identities for the nodes
//! and workloads that pass. The verifier, CA, datastore and APIs land with
//! their own issues; see `docs/architecture.md` for the plan.
#![forbid(unsafe_code)]
