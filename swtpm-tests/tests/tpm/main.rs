//! The attestor's TPM layer against real swtpm TPMs.
//!
//! Every test manufactures its own swtpm (private EK CA, own port pair), boots
//! a simulated host into it, and checks outcomes with independent tools
//! (tpm2-tools, RustCrypto) rather than with the layer itself.
#![allow(clippy::unwrap_used)]

mod activate;
mod certify;
mod common;
mod ek_ak;
mod extend;
mod quote;
mod seal;
