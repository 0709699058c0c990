//! The node-key Certify check (DESIGN §3): the AK vouches that the node key
//! lives in the same TPM, and the node key's own public area proves it can
//! only sign while the boot PCRs hold the quoted values.

use std::collections::BTreeSet;

use aws_lc_rs::constant_time::verify_slices_are_equal;

use crate::pcr::PcrValues;
use crate::tpm::attest::{TPM_GENERATED_VALUE, TPM_ST_ATTEST_CERTIFY};
use crate::tpm::{
    AttestBody, EccCurve, HashAlg, PublicKey, SignatureError, TpmParseError, TpmsAttest,
    TpmtPublic, TpmtSignature, verify_signature,
};

/// Why the node key's Certify was refused, in check order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertifyError {
    /// The signature is not a well-formed TPMT_SIGNATURE.
    #[error("node key Certify signature is malformed: {0}")]
    MalformedSignature(TpmParseError),
    /// The AK did not sign it.
    #[error("node key Certify is not signed by the AK: {0}")]
    BadSignature(SignatureError),
    /// The body is not a well-formed TPMS_ATTEST.
    #[error("node key Certify body is malformed: {0}")]
    MalformedAttest(TpmParseError),
    /// Not TPM-generated.
    #[error("node key Certify magic is {found:#010x}, expected TPM_GENERATED_VALUE")]
    BadMagic {
        /// The magic found.
        found: u32,
    },
    /// Another attestation type.
    #[error("node key attestation type is {found:#06x}, expected TPM_ST_ATTEST_CERTIFY 0x8017")]
    NotACertify {
        /// The type found.
        found: u16,
    },
    /// extraData is not what the issuer expected.
    #[error("node key Certify extraData does not match the expected qualifying data")]
    QualifyingDataMismatch,
    /// The certified object is not the presented node key.
    #[error(
        "node key Certify names object {certified}, but the presented node key's name is {presented}"
    )]
    NameMismatch {
        /// The certified name (hex).
        certified: String,
        /// The presented key's name (hex).
        presented: String,
    },
    /// The node key's public area does not have the required properties.
    #[error("node key {0}")]
    BadNodeKey(String),
    /// The node key's authPolicy is not PolicyPCR over the quoted boot PCRs.
    #[error(
        "node key authPolicy {actual} is not PolicyPCR over the quoted sha256 PCRs {pcrs} (expected {expected}); \
         the key is not bound to this boot"
    )]
    PolicyMismatch {
        /// The key's authPolicy (hex).
        actual: String,
        /// The expected digest (hex).
        expected: String,
        /// The PCR list.
        pcrs: String,
    },
    /// A node-key PCR was not in the quote.
    #[error("node key policy PCR sha256:{0} is not among the quoted PCRs")]
    PcrNotQuoted(u32),
}

/// TPM_CC_PolicyPCR.
const TPM_CC_POLICY_PCR: u32 = 0x0000_017F;

/// The SHA-256 policy digest of `TPM2_PolicyPCR` over sha256 `pcrs` holding
/// `values`, from an empty policy:
/// `H(0³² ‖ TPM_CC_PolicyPCR ‖ TPML_PCR_SELECTION ‖ H(values in PCR order))`.
pub fn policy_pcr_digest(
    pcrs: &BTreeSet<u32>,
    values: &PcrValues,
) -> Result<Vec<u8>, CertifyError> {
    let bank = values.get(&HashAlg::Sha256);
    let mut concatenated = Vec::with_capacity(pcrs.len() * 32);
    let mut bitmap = [0u8; 3];
    for &pcr in pcrs {
        let value = bank
            .and_then(|b| b.get(&pcr))
            .ok_or(CertifyError::PcrNotQuoted(pcr))?;
        concatenated.extend_from_slice(value);
        let slot = bitmap
            .get_mut((pcr / 8) as usize)
            .ok_or(CertifyError::PcrNotQuoted(pcr))?;
        *slot |= 1 << (pcr % 8);
    }
    let mut selection = 1u32.to_be_bytes().to_vec();
    selection.extend_from_slice(&HashAlg::Sha256.tpm_alg_id().to_be_bytes());
    selection.push(3);
    selection.extend_from_slice(&bitmap);
    let pcr_digest = HashAlg::Sha256.hash(&concatenated);
    Ok(HashAlg::Sha256.hash_parts(&[
        &[0u8; 32],
        &TPM_CC_POLICY_PCR.to_be_bytes(),
        &selection,
        &pcr_digest,
    ]))
}

/// What the Certify check needs.
#[derive(Debug, Clone, Copy)]
pub struct CertifyInput<'a> {
    /// The AK that signed the Certify.
    pub ak: &'a TpmtPublic,
    /// The TPMS_ATTEST bytes.
    pub attest: &'a [u8],
    /// The TPMT_SIGNATURE bytes.
    pub signature: &'a [u8],
    /// The presented node key.
    pub node_key: &'a TpmtPublic,
    /// The qualifying data the Certify must carry, if the protocol fixes one.
    pub qualifying_data: Option<&'a [u8]>,
    /// The sha256 PCRs the node key's policy covers.
    pub policy_pcrs: &'a BTreeSet<u32>,
    /// The verified quoted PCR values.
    pub quoted: &'a PcrValues,
}

/// Verifies the node key's Certify and properties. Returns the certify body.
pub fn verify_node_key_certify(input: &CertifyInput<'_>) -> Result<TpmsAttest, CertifyError> {
    let signature =
        TpmtSignature::from_bytes(input.signature).map_err(CertifyError::MalformedSignature)?;
    verify_signature(input.ak, input.attest, &signature).map_err(CertifyError::BadSignature)?;
    let attest = TpmsAttest::from_bytes(input.attest).map_err(CertifyError::MalformedAttest)?;
    if attest.magic != TPM_GENERATED_VALUE {
        return Err(CertifyError::BadMagic {
            found: attest.magic,
        });
    }
    let AttestBody::Certify { name, .. } = &attest.body else {
        return Err(CertifyError::NotACertify {
            found: attest.attest_type,
        });
    };
    debug_assert_eq!(attest.attest_type, TPM_ST_ATTEST_CERTIFY);
    if let Some(expected) = input.qualifying_data
        && verify_slices_are_equal(&attest.extra_data, expected).is_err()
    {
        return Err(CertifyError::QualifyingDataMismatch);
    }
    let presented = input.node_key.name();
    if verify_slices_are_equal(name, &presented).is_err() {
        return Err(CertifyError::NameMismatch {
            certified: hex::encode(name),
            presented: hex::encode(presented),
        });
    }
    check_node_key(input.node_key)?;
    if input.policy_pcrs.is_empty() {
        return Err(CertifyError::BadNodeKey("policy covers no PCR".to_owned()));
    }
    let expected = policy_pcr_digest(input.policy_pcrs, input.quoted)?;
    if verify_slices_are_equal(&input.node_key.auth_policy, &expected).is_err() {
        return Err(CertifyError::PolicyMismatch {
            actual: hex::encode(&input.node_key.auth_policy),
            expected: hex::encode(expected),
            pcrs: input
                .policy_pcrs
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(","),
        });
    }
    Ok(attest)
}

/// The node key must be an ECC P-256 signing key that never leaves the TPM,
/// whose USER role needs the policy and whose ADMIN role cannot bypass it.
fn check_node_key(key: &TpmtPublic) -> Result<(), CertifyError> {
    let a = key.attributes;
    let mut problems = Vec::new();
    for (name, actual, required) in [
        ("fixedTPM", a.fixed_tpm(), true),
        ("fixedParent", a.fixed_parent(), true),
        ("sensitiveDataOrigin", a.sensitive_data_origin(), true),
        ("sign", a.sign(), true),
        ("decrypt", a.decrypt(), false),
        ("restricted", a.restricted(), false),
        ("userWithAuth", a.user_with_auth(), false),
    ] {
        if actual != required {
            problems.push(format!(
                "{name} must be {}",
                if required { "set" } else { "clear" }
            ));
        }
    }
    if key.name_alg != HashAlg::Sha256 {
        problems.push(format!("nameAlg must be sha256, is {}", key.name_alg));
    }
    if !matches!(
        key.key,
        PublicKey::Ecc {
            curve: EccCurve::NistP256,
            ..
        }
    ) {
        problems.push("must be an ECC NIST P-256 key".to_owned());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(CertifyError::BadNodeKey(problems.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_digest_matches_tpm2_createpolicy_vector() {
        // `tpm2_createpolicy --policy-pcr -l sha256:0` on a fresh swtpm (PCR 0 all zeros).
        let mut values = PcrValues::new();
        values
            .entry(HashAlg::Sha256)
            .or_default()
            .insert(0, vec![0u8; 32]);
        let digest = policy_pcr_digest(&BTreeSet::from([0]), &values).unwrap();
        assert_eq!(
            hex::encode(digest),
            "093ceb41181d47808862d7946268ee6a17a10e3d1b79b32351bc56e4beaceff0"
        );
    }

    #[test]
    fn missing_policy_pcr_is_named() {
        let values = PcrValues::new();
        assert_eq!(
            policy_pcr_digest(&BTreeSet::from([7]), &values),
            Err(CertifyError::PcrNotQuoted(7))
        );
    }
}
