//! Verifying TPM signatures with aws-lc-rs.

use aws_lc_rs::signature::{
    self, RsaPublicKeyComponents, UnparsedPublicKey, VerificationAlgorithm,
};

use super::public::{EccCurve, PublicKey, TpmtPublic};
use super::signature::TpmtSignature;
use super::{HashAlg, alg_id};

/// Why a signature did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The key cannot verify this kind of signature.
    #[error("a {key} key cannot verify a {signature} signature")]
    KeyTypeMismatch {
        /// The key's type.
        key: &'static str,
        /// The signature's scheme.
        signature: &'static str,
    },
    /// The signature's scheme or hash differs from the one fixed in the key.
    #[error(
        "the key is fixed to scheme {key_scheme:#06x} with hash {key_hash:#06x}, the signature uses {sig_scheme:#06x} with {sig_hash}"
    )]
    SchemeMismatch {
        /// The key's scheme.
        key_scheme: u16,
        /// The key's scheme hash.
        key_hash: u16,
        /// The signature's scheme.
        sig_scheme: u16,
        /// The signature's hash.
        sig_hash: HashAlg,
    },
    /// The key or hash combination is not supported.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The signature does not verify.
    #[error("the signature does not verify with the key")]
    Invalid,
}

/// Verifies `signature` over `message` with `key`.
///
/// The TPM signs `H(message)` with the hash named in the signature; when the
/// key fixes a scheme (restricted signing keys must), the signature has to use
/// exactly that scheme and hash.
pub fn verify_signature(
    key: &TpmtPublic,
    message: &[u8],
    signature: &TpmtSignature,
) -> Result<(), SignatureError> {
    let (sig_scheme, sig_hash) = match signature {
        TpmtSignature::RsaSsa { hash, .. } => (alg_id::RSASSA, *hash),
        TpmtSignature::RsaPss { hash, .. } => (alg_id::RSAPSS, *hash),
        TpmtSignature::Ecdsa { hash, .. } => (alg_id::ECDSA, *hash),
    };
    let key_scheme = match &key.key {
        PublicKey::Rsa { scheme, .. } | PublicKey::Ecc { scheme, .. } => *scheme,
        _ => None,
    };
    if let Some(scheme) = key_scheme
        && (scheme.algorithm != sig_scheme || scheme.hash != sig_hash.tpm_alg_id())
    {
        return Err(SignatureError::SchemeMismatch {
            key_scheme: scheme.algorithm,
            key_hash: scheme.hash,
            sig_scheme,
            sig_hash,
        });
    }
    match (&key.key, signature) {
        (
            PublicKey::Rsa { modulus, .. },
            TpmtSignature::RsaSsa { hash, signature } | TpmtSignature::RsaPss { hash, signature },
        ) => {
            let pss = matches!(signature_kind(sig_scheme), Kind::Pss);
            let params = rsa_params(*hash, pss)?;
            let exponent = key.rsa_exponent().unwrap_or(65_537).to_be_bytes();
            let first = exponent.iter().position(|&b| b != 0).unwrap_or(3);
            let components = RsaPublicKeyComponents {
                n: strip_leading_zeros(modulus),
                e: &exponent[first..],
            };
            components
                .verify(params, message, signature)
                .map_err(|_| SignatureError::Invalid)
        }
        (PublicKey::Ecc { curve, .. }, TpmtSignature::Ecdsa { hash, r, s }) => {
            let point = key.ecc_point().ok_or_else(|| {
                SignatureError::Unsupported(format!("ECC curve {:#06x}", curve.id()))
            })?;
            let (algorithm, fixed_len) = ecdsa_algorithm(*curve, *hash)?;
            let encoded = match fixed_len {
                Some(len) => fixed_signature(r, s, len).ok_or(SignatureError::Invalid)?,
                None => der_signature(r, s),
            };
            UnparsedPublicKey::new(algorithm, &point)
                .verify(message, &encoded)
                .map_err(|_| SignatureError::Invalid)
        }
        (key, sig) => Err(SignatureError::KeyTypeMismatch {
            key: match key {
                PublicKey::Rsa { .. } => "RSA",
                PublicKey::Ecc { .. } => "ECC",
                PublicKey::KeyedHash { .. } => "keyed-hash",
                PublicKey::SymCipher { .. } => "symmetric",
            },
            signature: match sig {
                TpmtSignature::RsaSsa { .. } => "RSASSA",
                TpmtSignature::RsaPss { .. } => "RSAPSS",
                TpmtSignature::Ecdsa { .. } => "ECDSA",
            },
        }),
    }
}

enum Kind {
    Pkcs1,
    Pss,
}

fn signature_kind(scheme: u16) -> Kind {
    if scheme == alg_id::RSAPSS {
        Kind::Pss
    } else {
        Kind::Pkcs1
    }
}

fn rsa_params(
    hash: HashAlg,
    pss: bool,
) -> Result<&'static signature::RsaParameters, SignatureError> {
    Ok(match (hash, pss) {
        (HashAlg::Sha1, false) => &signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
        (HashAlg::Sha256, false) => &signature::RSA_PKCS1_2048_8192_SHA256,
        (HashAlg::Sha384, false) => &signature::RSA_PKCS1_2048_8192_SHA384,
        (HashAlg::Sha512, false) => &signature::RSA_PKCS1_2048_8192_SHA512,
        (HashAlg::Sha256, true) => &signature::RSA_PSS_2048_8192_SHA256,
        (HashAlg::Sha384, true) => &signature::RSA_PSS_2048_8192_SHA384,
        (HashAlg::Sha512, true) => &signature::RSA_PSS_2048_8192_SHA512,
        (hash, true) => return Err(SignatureError::Unsupported(format!("RSAPSS with {hash}"))),
    })
}

fn ecdsa_algorithm(
    curve: EccCurve,
    hash: HashAlg,
) -> Result<(&'static dyn VerificationAlgorithm, Option<usize>), SignatureError> {
    Ok(match (curve, hash) {
        (EccCurve::NistP256, HashAlg::Sha256) => (&signature::ECDSA_P256_SHA256_FIXED, Some(32)),
        (EccCurve::NistP384, HashAlg::Sha384) => (&signature::ECDSA_P384_SHA384_FIXED, Some(48)),
        (EccCurve::NistP256, HashAlg::Sha384) => (&signature::ECDSA_P256_SHA384_ASN1, None),
        (EccCurve::NistP256, HashAlg::Sha512) => (&signature::ECDSA_P256_SHA512_ASN1, None),
        (EccCurve::NistP384, HashAlg::Sha256) => (&signature::ECDSA_P384_SHA256_ASN1, None),
        (EccCurve::NistP384, HashAlg::Sha512) => (&signature::ECDSA_P384_SHA512_ASN1, None),
        (EccCurve::NistP521, HashAlg::Sha256) => (&signature::ECDSA_P521_SHA256_FIXED, Some(66)),
        (EccCurve::NistP521, HashAlg::Sha384) => (&signature::ECDSA_P521_SHA384_FIXED, Some(66)),
        (EccCurve::NistP521, HashAlg::Sha512) => (&signature::ECDSA_P521_SHA512_FIXED, Some(66)),
        (curve, hash) => {
            return Err(SignatureError::Unsupported(format!(
                "ECDSA on curve {:#06x} with {hash}",
                curve.id()
            )));
        }
    })
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    &bytes[first..]
}

/// `r ‖ s`, each left-padded to `len`; `None` if a scalar is too long.
fn fixed_signature(r: &[u8], s: &[u8], len: usize) -> Option<Vec<u8>> {
    let r = strip_leading_zeros(r);
    let s = strip_leading_zeros(s);
    if r.len() > len || s.len() > len {
        return None;
    }
    let mut out = vec![0u8; 2 * len];
    out[len - r.len()..len].copy_from_slice(r);
    out[2 * len - s.len()..].copy_from_slice(s);
    Some(out)
}

/// DER `SEQUENCE { INTEGER r, INTEGER s }`.
fn der_signature(r: &[u8], s: &[u8]) -> Vec<u8> {
    fn integer(v: &[u8]) -> Vec<u8> {
        let v = strip_leading_zeros(v);
        let mut body = Vec::with_capacity(v.len() + 1);
        if v.first().is_none_or(|&b| b & 0x80 != 0) {
            body.push(0);
        }
        body.extend_from_slice(v);
        let mut out = vec![0x02];
        push_len(&mut out, body.len());
        out.extend_from_slice(&body);
        out
    }
    fn push_len(out: &mut Vec<u8>, len: usize) {
        if len < 0x80 {
            out.push(len as u8);
        } else {
            out.push(0x81);
            out.push(len as u8);
        }
    }
    let mut body = integer(r);
    body.extend_from_slice(&integer(s));
    let mut out = vec![0x30];
    push_len(&mut out, body.len());
    out.extend_from_slice(&body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_signature_pads_and_refuses_oversize() {
        assert_eq!(fixed_signature(&[1], &[0, 2], 2), Some(vec![0, 1, 0, 2]));
        assert_eq!(fixed_signature(&[1, 2, 3], &[2], 2), None);
    }

    #[test]
    fn der_signature_adds_sign_byte() {
        assert_eq!(
            der_signature(&[0x80], &[1]),
            vec![0x30, 7, 2, 2, 0, 0x80, 2, 1, 1]
        );
    }
}
