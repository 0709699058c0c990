//! TPM 2.0 structures, parsed in pure Rust with strict bounds.
//!
//! Every parser takes bytes from the network or a file, refuses anything
//! out of bounds with a [`TpmParseError`] naming the structure, field and
//! offset, and never panics.

mod alg;
pub mod attest;
pub mod public;
pub mod reader;
pub mod signature;
pub mod verify;

pub use alg::HashAlg;
pub use attest::{AttestBody, ClockInfo, PcrSelection, TpmsAttest};
pub use public::{EccCurve, ObjectAttributes, PublicKey, TpmtPublic};
pub use reader::{Reader, TpmParseError};
pub use signature::TpmtSignature;
pub use verify::{SignatureError, verify_signature};

/// TPM_ALG_ID values used by the parsers.
pub mod alg_id {
    /// TPM_ALG_RSA.
    pub const RSA: u16 = 0x0001;
    /// TPM_ALG_SHA1.
    pub const SHA1: u16 = 0x0004;
    /// TPM_ALG_HMAC.
    pub const HMAC: u16 = 0x0005;
    /// TPM_ALG_AES.
    pub const AES: u16 = 0x0006;
    /// TPM_ALG_MGF1.
    pub const MGF1: u16 = 0x0007;
    /// TPM_ALG_KEYEDHASH.
    pub const KEYEDHASH: u16 = 0x0008;
    /// TPM_ALG_XOR.
    pub const XOR: u16 = 0x000A;
    /// TPM_ALG_SHA256.
    pub const SHA256: u16 = 0x000B;
    /// TPM_ALG_SHA384.
    pub const SHA384: u16 = 0x000C;
    /// TPM_ALG_NULL.
    pub const NULL: u16 = 0x0010;
    /// TPM_ALG_RSASSA.
    pub const RSASSA: u16 = 0x0014;
    /// TPM_ALG_RSAES.
    pub const RSAES: u16 = 0x0015;
    /// TPM_ALG_RSAPSS.
    pub const RSAPSS: u16 = 0x0016;
    /// TPM_ALG_OAEP.
    pub const OAEP: u16 = 0x0017;
    /// TPM_ALG_ECDSA.
    pub const ECDSA: u16 = 0x0018;
    /// TPM_ALG_ECDH.
    pub const ECDH: u16 = 0x0019;
    /// TPM_ALG_ECDAA.
    pub const ECDAA: u16 = 0x001A;
    /// TPM_ALG_SM2.
    pub const SM2: u16 = 0x001B;
    /// TPM_ALG_ECSCHNORR.
    pub const ECSCHNORR: u16 = 0x001C;
    /// TPM_ALG_ECMQV.
    pub const ECMQV: u16 = 0x001D;
    /// TPM_ALG_KDF1_SP800_56A.
    pub const KDF1_SP800_56A: u16 = 0x0020;
    /// TPM_ALG_KDF2.
    pub const KDF2: u16 = 0x0021;
    /// TPM_ALG_KDF1_SP800_108.
    pub const KDF1_SP800_108: u16 = 0x0022;
    /// TPM_ALG_ECC.
    pub const ECC: u16 = 0x0023;
    /// TPM_ALG_SYMCIPHER.
    pub const SYMCIPHER: u16 = 0x0025;
    /// TPM_ALG_CFB.
    pub const CFB: u16 = 0x0043;
}
