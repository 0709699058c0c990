//! The attestation key: a restricted signing key under the EK.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use tss_esapi::abstraction::ak::{create_ak, load_ak};
use tss_esapi::handles::KeyHandle;
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, SignatureSchemeAlgorithm};

use super::blob::KeyBlob;
use super::ek::EkAlgorithm;
use super::{CacheSlot, Tpm, TpmError, flush_quietly};

/// The AK key types Rootmark creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AkAlgorithm {
    /// ECC NIST P-256 with ECDSA-SHA256 (the default: small and fast).
    EccP256,
    /// RSA 2048 with RSASSA-PKCS1-v1_5-SHA256.
    Rsa2048,
}

impl AkAlgorithm {
    fn scheme(self) -> SignatureSchemeAlgorithm {
        match self {
            AkAlgorithm::EccP256 => SignatureSchemeAlgorithm::EcDsa,
            AkAlgorithm::Rsa2048 => SignatureSchemeAlgorithm::RsaSsa,
        }
    }
}

impl fmt::Display for AkAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AkAlgorithm::EccP256 => "ecc-p256",
            AkAlgorithm::Rsa2048 => "rsa2048",
        })
    }
}

impl FromStr for AkAlgorithm {
    type Err = TpmError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "ecc-p256" => Ok(AkAlgorithm::EccP256),
            "rsa2048" => Ok(AkAlgorithm::Rsa2048),
            other => Err(TpmError::InvalidInput {
                field: "ak_algorithm",
                reason: format!("expected ecc-p256 or rsa2048, got {other:?}"),
            }),
        }
    }
}

/// An attestation key: restricted, sign, fixedTPM, fixedParent,
/// sensitiveDataOrigin, userWithAuth, nameAlg SHA-256, created under the EK
/// of `ek_algorithm`.
#[derive(Debug, Clone)]
pub struct AttestationKey {
    /// The AK's public and wrapped private area.
    pub blob: KeyBlob,
    /// The EK it was created under (and must be loaded under).
    pub ek_algorithm: EkAlgorithm,
}

impl AttestationKey {
    /// The AK public area as a marshalled TPM2B_PUBLIC.
    pub fn public_bytes(&self) -> Result<Vec<u8>, TpmError> {
        self.blob.public_bytes()
    }

    /// The AK's TPM name (`0x000B ‖ SHA-256(TPMT_PUBLIC)`), the value
    /// MakeCredential binds the challenge to.
    pub fn name(&self) -> Result<Vec<u8>, TpmError> {
        self.blob.name()
    }
}

impl Tpm {
    /// Creates a new AK under the EK of `ek_algorithm`.
    pub fn create_ak(
        &mut self,
        ek_algorithm: EkAlgorithm,
        algorithm: AkAlgorithm,
    ) -> Result<AttestationKey, TpmError> {
        // TPM2_Create needs a free object slot besides its parent, and a
        // TPM without a resource manager has as few as three: make room.
        self.flush_cached();
        let ek = self.create_ek(ek_algorithm)?;
        let created = create_ak(
            &mut self.ctx,
            ek,
            HashingAlgorithm::Sha256,
            algorithm.scheme(),
            None,
            None,
        )
        .map_err(TpmError::command("TPM2_Create(AK)"));
        flush_quietly(&mut self.ctx, ek.into(), "EK");
        let created = created?;
        Ok(AttestationKey {
            blob: KeyBlob::new(created.out_public, created.out_private),
            ek_algorithm,
        })
    }

    /// Loads the AK stored at `path`, or creates one and stores it there, so
    /// the AK — and therefore its name, which the issuer tracks — survives
    /// restarts. The file is written 0600 and atomically.
    pub fn load_or_create_ak(
        &mut self,
        path: &Path,
        ek_algorithm: EkAlgorithm,
        algorithm: AkAlgorithm,
    ) -> Result<AttestationKey, TpmError> {
        if path.exists() {
            let ak = AttestationKey {
                blob: KeyBlob::read(path)?,
                ek_algorithm,
            };
            // Prove the blob still belongs to this TPM's EK before handing it out.
            self.loaded_ak(&ak)?;
            return Ok(ak);
        }
        let ak = self.create_ak(ek_algorithm, algorithm)?;
        ak.blob.write(path)?;
        Ok(ak)
    }

    /// The transient handle of `ak`, loading it under its EK if needed.
    pub(crate) fn loaded_ak(&mut self, ak: &AttestationKey) -> Result<KeyHandle, TpmError> {
        let public_id = ak.public_bytes()?;
        let ek_algorithm = ak.ek_algorithm;
        let blob = ak.blob.clone();
        self.cached_or_load(CacheSlot::Ak, public_id, move |tpm| {
            let ek = tpm.create_ek(ek_algorithm)?;
            let loaded = load_ak(&mut tpm.ctx, ek, None, blob.private, blob.public)
                .map_err(TpmError::command("TPM2_Load(AK)"));
            flush_quietly(&mut tpm.ctx, ek.into(), "EK");
            loaded
        })
    }
}
