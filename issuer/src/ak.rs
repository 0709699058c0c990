//! Attestation key checks: what a key must be for its quotes to mean anything.

use crate::tpm::{EccCurve, HashAlg, PublicKey, TpmtPublic};

/// One way an AK falls short. All violations are reported together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AkViolation {
    /// A required attribute is clear, or a forbidden one set.
    #[error("AK attribute {attribute} must be {}", if *required { "set" } else { "clear" })]
    Attribute {
        /// The TPMA_OBJECT attribute name.
        attribute: &'static str,
        /// Whether it must be set (true) or clear (false).
        required: bool,
    },
    /// The key algorithm or size is too weak or unsupported.
    #[error("AK key {0}; expected RSA ≥ 2048 bits or ECC NIST P-256/P-384")]
    WeakKey(String),
    /// The key has no fixed signing scheme, or one with a weak hash.
    #[error("AK signing scheme {0}; expected RSASSA, RSAPSS or ECDSA with SHA-256 or stronger")]
    WeakScheme(String),
    /// The name algorithm is too weak.
    #[error("AK nameAlg is {0}; expected SHA-256 or stronger")]
    WeakNameAlg(HashAlg),
}

/// Checks that `ak` is a restricted signing key that never leaves the TPM,
/// generated inside it, with a strong algorithm. Returns every violation.
pub fn check_ak(ak: &TpmtPublic) -> Result<(), Vec<AkViolation>> {
    let mut violations = Vec::new();
    let a = ak.attributes;
    for (attribute, actual, required) in [
        ("restricted", a.restricted(), true),
        ("sign", a.sign(), true),
        ("fixedTPM", a.fixed_tpm(), true),
        ("fixedParent", a.fixed_parent(), true),
        ("sensitiveDataOrigin", a.sensitive_data_origin(), true),
        ("decrypt", a.decrypt(), false),
    ] {
        if actual != required {
            violations.push(AkViolation::Attribute {
                attribute,
                required,
            });
        }
    }
    if ak.name_alg == HashAlg::Sha1 {
        violations.push(AkViolation::WeakNameAlg(ak.name_alg));
    }
    let scheme = match &ak.key {
        PublicKey::Rsa {
            modulus,
            key_bits,
            scheme,
            ..
        } => {
            let bits = usize::from(*key_bits);
            if bits < 2048 || modulus.len() * 8 < 2048 || modulus.len() * 8 != bits {
                violations.push(AkViolation::WeakKey(format!(
                    "is RSA-{bits} with a {}-bit modulus",
                    modulus.len() * 8
                )));
            }
            *scheme
        }
        PublicKey::Ecc { curve, scheme, .. } => {
            if !matches!(curve, EccCurve::NistP256 | EccCurve::NistP384) {
                violations.push(AkViolation::WeakKey(format!(
                    "is ECC on curve {:#06x}",
                    curve.id()
                )));
            }
            *scheme
        }
        PublicKey::KeyedHash { .. } => {
            violations.push(AkViolation::WeakKey("is a keyed-hash object".to_owned()));
            None
        }
        PublicKey::SymCipher { .. } => {
            violations.push(AkViolation::WeakKey("is a symmetric key".to_owned()));
            None
        }
    };
    match scheme {
        None => {
            if matches!(ak.key, PublicKey::Rsa { .. } | PublicKey::Ecc { .. }) {
                violations.push(AkViolation::WeakScheme(
                    "is not fixed (TPM_ALG_NULL)".to_owned(),
                ));
            }
        }
        Some(scheme) => {
            let strong_hash = matches!(
                HashAlg::from_tpm_alg_id(scheme.hash),
                Some(HashAlg::Sha256 | HashAlg::Sha384 | HashAlg::Sha512)
            );
            let known = matches!(scheme.algorithm, 0x0014 | 0x0016 | 0x0018);
            if !strong_hash || !known {
                violations.push(AkViolation::WeakScheme(format!(
                    "is {:#06x} with hash {:#06x}",
                    scheme.algorithm, scheme.hash
                )));
            }
        }
    }
    if violations.is_empty() {
        Ok(())
    } else {
        Err(violations)
    }
}
