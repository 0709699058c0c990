//! Conversions between the wire messages (`rootmark.node.v1`) and the
//! verifier's types, including the TPM2B size prefixes the wire carries and
//! the verifier does not.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rootmark_proto::node::v1 as pb;

use super::error::ServiceError;
use crate::evidence;
use crate::pcr::PcrValues;
use crate::tpm::{EccCurve, HashAlg, PublicKey, TpmtPublic};

/// Most PCR banks a response may carry.
const MAX_BANKS: usize = 4;

/// The verifier's `Hello` from the wire's.
pub(crate) fn hello_from_proto(hello: pb::Hello) -> evidence::Hello {
    evidence::Hello {
        ek_certificate: (!hello.ek_certificate.is_empty()).then_some(hello.ek_certificate),
        ek_public: hello.ek_public,
        ak_public: hello.ak_public,
        node_key_public: hello.node_key_public,
        node_key_certify_info: hello.node_key_certify_info,
        node_key_certify_signature: hello.node_key_certify_signature,
        node_key_pcrs: hello.node_key_pcrs,
    }
}

/// Prefixes `payload` with its 2-byte big-endian size (a TPM2B).
pub(crate) fn tpm2b(field: &'static str, payload: &[u8]) -> Result<Vec<u8>, ServiceError> {
    let len = u16::try_from(payload.len()).map_err(|_| {
        ServiceError::protocol(field, format!("{} bytes do not fit a TPM2B", payload.len()))
    })?;
    let mut out = Vec::with_capacity(payload.len() + 2);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    Ok(out)
}

/// The wire's hash algorithm of a bank.
pub(crate) fn hash_to_proto(alg: HashAlg) -> Option<pb::HashAlgorithm> {
    match alg {
        HashAlg::Sha1 => Some(pb::HashAlgorithm::Sha1),
        HashAlg::Sha256 => Some(pb::HashAlgorithm::Sha256),
        HashAlg::Sha384 => Some(pb::HashAlgorithm::Sha384),
        HashAlg::Sha512 => None,
    }
}

fn hash_from_proto(field: &'static str, value: i32) -> Result<HashAlg, ServiceError> {
    match pb::HashAlgorithm::try_from(value) {
        Ok(pb::HashAlgorithm::Sha1) => Ok(HashAlg::Sha1),
        Ok(pb::HashAlgorithm::Sha256) => Ok(HashAlg::Sha256),
        Ok(pb::HashAlgorithm::Sha384) => Ok(HashAlg::Sha384),
        _ => Err(ServiceError::protocol(
            field,
            format!("hash algorithm {value} is not SHA1, SHA256 or SHA384"),
        )),
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn unix_ms(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The wire's `Challenge`: TPM2B prefixes added, expiry as a wall-clock time.
pub(crate) fn challenge_to_proto(
    challenge: &evidence::Challenge,
    now: SystemTime,
) -> Result<pb::Challenge, ServiceError> {
    let mut selection = Vec::with_capacity(challenge.pcr_selection.len());
    for (bank, pcrs) in &challenge.pcr_selection {
        let hash = hash_to_proto(*bank).ok_or_else(|| {
            ServiceError::Setup(format!(
                "PCR bank {} cannot be expressed on the wire",
                bank.name()
            ))
        })?;
        selection.push(pb::PcrSelection {
            hash: hash as i32,
            pcrs: pcrs.clone(),
        });
    }
    Ok(pb::Challenge {
        credential_blob: tpm2b("challenge.credential_blob", &challenge.credential_blob)?,
        encrypted_secret: tpm2b("challenge.encrypted_secret", &challenge.encrypted_secret)?,
        nonce: challenge.nonce.clone(),
        pcr_selection: selection,
        nonce_expires_unix_ms: unix_ms(now + challenge.expires_in),
    })
}

/// The verifier's `ChallengeResponse` from the wire's.
pub(crate) fn response_from_proto(
    response: pb::ChallengeResponse,
) -> Result<evidence::ChallengeResponse, ServiceError> {
    const FIELD: &str = "challenge_response.pcr_banks";
    if response.pcr_banks.len() > MAX_BANKS {
        return Err(ServiceError::protocol(
            FIELD,
            format!("{} banks, at most {MAX_BANKS}", response.pcr_banks.len()),
        ));
    }
    let mut pcrs = PcrValues::new();
    for bank in response.pcr_banks {
        let alg = hash_from_proto(FIELD, bank.hash)?;
        if pcrs.contains_key(&alg) {
            return Err(ServiceError::protocol(
                FIELD,
                format!("bank {} appears twice", alg.name()),
            ));
        }
        let mut values = std::collections::BTreeMap::new();
        for (index, value) in bank.values {
            if index >= 24 {
                return Err(ServiceError::protocol(
                    FIELD,
                    format!("PCR {index} does not exist (0 to 23)"),
                ));
            }
            values.insert(index, value);
        }
        pcrs.insert(alg, values);
    }
    Ok(evidence::ChallengeResponse {
        activated_secret: response.activated_secret,
        quote_attest: response.quote_attest,
        quote_signature: response.quote_signature,
        pcrs,
        event_log: (!response.event_log.is_empty()).then_some(response.event_log),
    })
}

/// DER prefix of a SubjectPublicKeyInfo for an uncompressed P-256 point:
/// SEQUENCE { SEQUENCE { id-ecPublicKey, prime256v1 }, BIT STRING (0 unused bits) }.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// The SubjectPublicKeyInfo (DER) of an uncompressed P-256 point (65 bytes).
pub(crate) fn p256_spki(point: &[u8]) -> Option<Vec<u8>> {
    if point.len() != 65 || point.first() != Some(&4) {
        return None;
    }
    let mut spki = Vec::with_capacity(P256_SPKI_PREFIX.len() + point.len());
    spki.extend_from_slice(&P256_SPKI_PREFIX);
    spki.extend_from_slice(point);
    Some(spki)
}

/// The SubjectPublicKeyInfo (DER) of the node key, a TPM2B_PUBLIC that must
/// hold an ECC P-256 key.
pub(crate) fn node_key_spki(node_key_public: &[u8]) -> Result<Vec<u8>, String> {
    let public =
        TpmtPublic::from_tpm2b(node_key_public).map_err(|e| format!("node key public: {e}"))?;
    match &public.key {
        PublicKey::Ecc {
            curve: EccCurve::NistP256,
            ..
        } => {}
        _ => return Err("node key must be an ECC NIST P-256 key".to_owned()),
    }
    public
        .ecc_point()
        .and_then(|point| p256_spki(&point))
        .ok_or_else(|| "node key has a malformed P-256 point".to_owned())
}

/// Half of the way from `not_before` to `not_after`.
pub(crate) fn half_life(not_before: SystemTime, not_after: SystemTime) -> SystemTime {
    let life = not_after
        .duration_since(not_before)
        .unwrap_or(Duration::ZERO);
    not_before + life / 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tpm2b_prefixes_the_size() {
        assert_eq!(tpm2b("x", &[1, 2, 3]).ok(), Some(vec![0, 3, 1, 2, 3]));
        assert!(tpm2b("x", &vec![0; 70_000]).is_err());
    }

    #[test]
    fn p256_spki_is_accepted_by_the_ca() {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
            &rng,
        )
        .ok();
        let pair = pkcs8.and_then(|p| {
            aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(
                &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
                p.as_ref(),
            )
            .ok()
        });
        let Some(pair) = pair else {
            panic!("key generation failed");
        };
        use aws_lc_rs::signature::KeyPair;
        let spki = p256_spki(pair.public_key().as_ref());
        assert!(spki.is_some());
        assert!(crate::ca::WorkloadKey::from_spki_der(&spki.unwrap_or_default()).is_ok());
    }
}
