//! Test support for Rootmark: real swtpm TPMs and simulated measured boot.
//!
//! - [`Swtpm`]: a freshly manufactured swtpm per test, with a private EK CA,
//!   on its own loopback port pair, killed on drop.
//! - [`boot`]: builds a realistic TCG crypto-agile event log for a simulated
//!   host, and [`measure`] extends the same digests into the swtpm's PCRs.
//!
//! The integration tests of the attestor's TPM layer live in `tests/`.
#![forbid(unsafe_code)]

pub mod boot;
pub mod cluster;
pub mod devenv;
pub mod measure;
pub mod soft_tpm;
pub mod swtpm;
pub mod tpm2_tools;

pub use swtpm::{Swtpm, SwtpmError};
