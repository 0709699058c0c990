//! A rustls signing key whose private half never leaves the TPM: every TLS
//! client authentication to the issuer signs through `TPM2_Sign` with the
//! node key (DESIGN §3).

use std::sync::{Arc, RwLock};

use rustls::client::ResolvesClientCert;
use rustls::pki_types::CertificateDer;
use rustls::sign::{CertifiedKey, Signer, SigningKey};
use rustls::{SignatureAlgorithm, SignatureScheme};
use sha2::Digest as _;

use super::shared_tpm::SharedTpm;
use crate::tpm::{NodeKey, NodeKeySignature};

/// The node key as a rustls [`SigningKey`] (ECDSA P-256 with SHA-256 only).
#[derive(Debug, Clone)]
pub struct TpmSigningKey {
    tpm: SharedTpm,
    key: Arc<NodeKey>,
}

impl TpmSigningKey {
    /// Signs with `key` in `tpm`.
    pub fn new(tpm: SharedTpm, key: NodeKey) -> Self {
        TpmSigningKey {
            tpm,
            key: Arc::new(key),
        }
    }
}

impl SigningKey for TpmSigningKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        offered
            .contains(&SignatureScheme::ECDSA_NISTP256_SHA256)
            .then(|| Box::new(self.clone()) as Box<dyn Signer>)
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        SignatureAlgorithm::ECDSA
    }
}

impl Signer for TpmSigningKey {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rustls::Error> {
        let digest: [u8; 32] = sha2::Sha256::digest(message).into();
        // A TLS handshake waits on this one TPM round trip; the TPM is
        // shared, so a quote in progress delays it by a few milliseconds.
        let signature = self
            .tpm
            .with(|tpm| tpm.sign_with_node_key(&self.key, &digest))
            .map_err(|e| {
                tracing::warn!(error = %e, "the TPM refused to sign with the node key");
                rustls::Error::General(format!("node key signature: {e}"))
            })?;
        Ok(ecdsa_der(&signature))
    }

    fn scheme(&self) -> SignatureScheme {
        SignatureScheme::ECDSA_NISTP256_SHA256
    }
}

/// The ASN.1 DER `ECDSA-Sig-Value` TLS carries: `SEQUENCE { r INTEGER, s INTEGER }`.
pub fn ecdsa_der(signature: &NodeKeySignature) -> Vec<u8> {
    let r = der_unsigned_integer(&signature.r);
    let s = der_unsigned_integer(&signature.s);
    let mut out = Vec::with_capacity(r.len() + s.len() + 3);
    out.push(0x30);
    // Two P-256 INTEGERs are at most 2 × 35 bytes, so the short length form fits.
    out.push(u8::try_from(r.len() + s.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(&r);
    out.extend_from_slice(&s);
    out
}

fn der_unsigned_integer(bytes: &[u8]) -> Vec<u8> {
    let trimmed = match bytes.iter().position(|&b| b != 0) {
        Some(first) => &bytes[first..],
        None => &[0u8][..],
    };
    let pad = trimmed.first().is_some_and(|&b| b & 0x80 != 0);
    let len = trimmed.len() + usize::from(pad);
    let mut out = Vec::with_capacity(len + 2);
    out.push(0x02);
    out.push(u8::try_from(len).unwrap_or(u8::MAX));
    if pad {
        out.push(0);
    }
    out.extend_from_slice(trimmed);
    out
}

/// Presents the current node SVID with its TPM-resident key to the issuer;
/// nothing before the first attestation (the issuer then refuses the
/// handshake, which is what an unattested node deserves).
#[derive(Debug, Default)]
pub struct NodeClientCert {
    current: RwLock<Option<Arc<CertifiedKey>>>,
}

impl NodeClientCert {
    /// Serves `chain` (leaf first) with `key` from the next handshake on.
    pub fn set(&self, chain: &[Vec<u8>], key: TpmSigningKey) {
        let chain = chain
            .iter()
            .map(|der| CertificateDer::from(der.clone()))
            .collect();
        let certified = Arc::new(CertifiedKey::new(chain, Arc::new(key)));
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(certified);
    }

    /// Stops presenting any certificate.
    pub fn clear(&self) {
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }
}

impl ResolvesClientCert for NodeClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        if !sigschemes.contains(&SignatureScheme::ECDSA_NISTP256_SHA256) {
            return None;
        }
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn has_certs(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_integers_are_minimal_and_positive() {
        let sig = NodeKeySignature {
            r: vec![0x00, 0x00, 0x7f, 0x01],
            s: vec![0x80, 0x02],
        };
        assert_eq!(
            ecdsa_der(&sig),
            vec![
                0x30, 0x09, 0x02, 0x02, 0x7f, 0x01, 0x02, 0x03, 0x00, 0x80, 0x02
            ]
        );
    }

    #[test]
    fn zero_scalar_is_encoded_as_one_zero_byte() {
        let sig = NodeKeySignature {
            r: vec![0, 0],
            s: vec![1],
        };
        assert_eq!(
            ecdsa_der(&sig),
            vec![0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x01]
        );
    }
}
