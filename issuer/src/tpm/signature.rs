//! TPMT_SIGNATURE.

use super::reader::{Reader, TpmParseError};
use super::{HashAlg, alg_id};

const MAX_RSA_SIGNATURE_BYTES: usize = 512;
const MAX_ECC_PARAMETER_BYTES: usize = 66;

/// A parsed TPMT_SIGNATURE.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TpmtSignature {
    /// RSASSA-PKCS1-v1_5.
    RsaSsa {
        /// The hash the TPM signed with.
        hash: HashAlg,
        /// The signature bytes.
        signature: Vec<u8>,
    },
    /// RSASSA-PSS.
    RsaPss {
        /// The hash the TPM signed with.
        hash: HashAlg,
        /// The signature bytes.
        signature: Vec<u8>,
    },
    /// ECDSA.
    Ecdsa {
        /// The hash the TPM signed with.
        hash: HashAlg,
        /// r, big-endian.
        r: Vec<u8>,
        /// s, big-endian.
        s: Vec<u8>,
    },
}

impl TpmtSignature {
    /// Parses a TPMT_SIGNATURE, refusing trailing bytes and unsupported schemes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TpmParseError> {
        let mut r = Reader::new(bytes, "TPMT_SIGNATURE");
        let alg_offset = r.offset();
        let sig_alg = r.u16("sigAlg")?;
        let hash_offset = r.offset();
        let read_hash = |r: &mut Reader<'_>| -> Result<HashAlg, TpmParseError> {
            let id = r.u16("signature.hash")?;
            HashAlg::from_tpm_alg_id(id).ok_or_else(|| {
                r.invalid_at(
                    hash_offset,
                    "signature.hash",
                    format!("unsupported hash {id:#06x}"),
                )
            })
        };
        let signature = match sig_alg {
            alg_id::RSASSA => TpmtSignature::RsaSsa {
                hash: read_hash(&mut r)?,
                signature: r
                    .tpm2b("signature.rsassa.sig", MAX_RSA_SIGNATURE_BYTES)?
                    .to_vec(),
            },
            alg_id::RSAPSS => TpmtSignature::RsaPss {
                hash: read_hash(&mut r)?,
                signature: r
                    .tpm2b("signature.rsapss.sig", MAX_RSA_SIGNATURE_BYTES)?
                    .to_vec(),
            },
            alg_id::ECDSA => TpmtSignature::Ecdsa {
                hash: read_hash(&mut r)?,
                r: r.tpm2b("signature.ecdsa.signatureR", MAX_ECC_PARAMETER_BYTES)?
                    .to_vec(),
                s: r.tpm2b("signature.ecdsa.signatureS", MAX_ECC_PARAMETER_BYTES)?
                    .to_vec(),
            },
            other => {
                return Err(r.invalid_at(
                    alg_offset,
                    "sigAlg",
                    format!("expected RSASSA (0x0014), RSAPSS (0x0016) or ECDSA (0x0018), got {other:#06x}"),
                ));
            }
        };
        r.finish()?;
        Ok(signature)
    }

    /// The hash algorithm the signature was made over.
    pub fn hash(&self) -> HashAlg {
        match self {
            TpmtSignature::RsaSsa { hash, .. }
            | TpmtSignature::RsaPss { hash, .. }
            | TpmtSignature::Ecdsa { hash, .. } => *hash,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecdsa_signature_parses() {
        let mut bytes = vec![0x00, 0x18, 0x00, 0x0B, 0, 2, 1, 2, 0, 1, 3];
        let sig = TpmtSignature::from_bytes(&bytes).unwrap();
        assert_eq!(
            sig,
            TpmtSignature::Ecdsa {
                hash: HashAlg::Sha256,
                r: vec![1, 2],
                s: vec![3]
            }
        );
        bytes.push(0);
        assert!(matches!(
            TpmtSignature::from_bytes(&bytes),
            Err(TpmParseError::Trailing { .. })
        ));
    }

    #[test]
    fn hmac_signature_is_refused_by_name() {
        let err = TpmtSignature::from_bytes(&[0x00, 0x05, 0x00, 0x0B]).unwrap_err();
        assert!(err.to_string().contains("sigAlg"), "{err}");
    }
}
