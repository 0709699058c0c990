//! The node's side of DESIGN §3 and §4: attesting with the TPM, presenting
//! the node SVID with the TPM-resident key, and talking to the issuer.

pub mod attest;
pub mod channel;
mod error;
pub mod shared_tpm;
pub mod signer;

pub use attest::{NodeAttestor, NodeAttestorConfig, NodeIdentity};
pub use error::NodeError;
pub use shared_tpm::SharedTpm;
pub use signer::{NodeClientCert, TpmSigningKey};
