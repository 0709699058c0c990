//! The node key: a TPM-resident ECC P-256 signing key under the SRK whose only
//! USER-role authorisation is PolicyPCR over the boot PCRs.
//!
//! Signing with it therefore works only while the host is in the boot state it
//! had when the key was created; TPM2_Certify of it (ADMIN role) works with its
//! empty authValue because adminWithPolicy is clear.

use std::path::Path;

use tss_esapi::attributes::ObjectAttributesBuilder;
use tss_esapi::constants::tss::{TPM2_RH_NULL, TPM2_ST_HASHCHECK};
use tss_esapi::handles::KeyHandle;
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::{
    Data, Digest, EccPoint, EccScheme, HashScheme, HashcheckTicket, Public, PublicBuilder,
    PublicEccParametersBuilder, Signature, SignatureScheme,
};
use tss_esapi::traits::Marshall;
use tss_esapi::tss2_esys::TPMT_TK_HASHCHECK;

use super::ak::AttestationKey;
use super::blob::KeyBlob;
use super::pcr::{PcrSelection, policy_pcr_digest};
use super::session::{policy_pcr_current, with_policy_session};
use super::srk::create_srk;
use super::{CacheSlot, Tpm, TpmError, flush_quietly};

/// A node key and the PCR selection its policy covers.
#[derive(Debug, Clone)]
pub struct NodeKey {
    /// The key's public and wrapped private area.
    pub blob: KeyBlob,
    /// The SHA-256 PCRs its PolicyPCR covers.
    pub policy_pcrs: PcrSelection,
}

/// A TPM2_Certify result.
#[derive(Debug, Clone)]
pub struct Certification {
    /// The marshalled TPMS_ATTEST (type TPM_ST_ATTEST_CERTIFY).
    pub attest: Vec<u8>,
    /// The marshalled TPMT_SIGNATURE by the AK over `attest`.
    pub signature: Vec<u8>,
}

/// An ECDSA P-256 signature made by the node key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeKeySignature {
    /// The r scalar, big-endian (as the TPM returns it, possibly shorter than 32 bytes).
    pub r: Vec<u8>,
    /// The s scalar, big-endian.
    pub s: Vec<u8>,
}

impl NodeKeySignature {
    /// The signature as fixed-size `r ‖ s` (64 bytes), left-padding each scalar.
    pub fn to_fixed_bytes(&self) -> Result<[u8; 64], TpmError> {
        let mut out = [0u8; 64];
        for (scalar, range) in [(&self.r, 0..32), (&self.s, 32..64)] {
            if scalar.len() > 32 {
                return Err(TpmError::UnexpectedOutput {
                    command: "TPM2_Sign",
                    reason: format!("ECDSA scalar of {} bytes", scalar.len()),
                });
            }
            let start = range.end - scalar.len();
            out[start..range.end].copy_from_slice(scalar);
        }
        Ok(out)
    }
}

impl NodeKey {
    /// The node key's public area as a marshalled TPM2B_PUBLIC.
    pub fn public_bytes(&self) -> Result<Vec<u8>, TpmError> {
        self.blob.public_bytes()
    }

    /// The node key's TPM name.
    pub fn name(&self) -> Result<Vec<u8>, TpmError> {
        self.blob.name()
    }

    /// The authPolicy the key was created with.
    pub fn auth_policy(&self) -> Vec<u8> {
        self.blob.public.auth_policy().value().to_vec()
    }

    /// The uncompressed SEC1 point `04 ‖ x ‖ y` of the public key.
    pub fn public_point(&self) -> Result<Vec<u8>, TpmError> {
        match &self.blob.public {
            Public::Ecc { unique, .. } => {
                let mut point = vec![0x04];
                point.extend_from_slice(&left_pad_32(unique.x().value())?);
                point.extend_from_slice(&left_pad_32(unique.y().value())?);
                Ok(point)
            }
            _ => Err(TpmError::UnexpectedOutput {
                command: "TPM2_Create(node key)",
                reason: "node key is not an ECC key".to_owned(),
            }),
        }
    }

    /// Loads a node key blob stored at `path` with the policy selection it was made for.
    pub fn read(path: &Path, policy_pcrs: PcrSelection) -> Result<Self, TpmError> {
        Ok(Self {
            blob: KeyBlob::read(path)?,
            policy_pcrs,
        })
    }
}

fn left_pad_32(bytes: &[u8]) -> Result<[u8; 32], TpmError> {
    let mut out = [0u8; 32];
    let start = 32usize
        .checked_sub(bytes.len())
        .ok_or_else(|| TpmError::UnexpectedOutput {
            command: "TPM2_Create(node key)",
            reason: format!("coordinate of {} bytes", bytes.len()),
        })?;
    out[start..].copy_from_slice(bytes);
    Ok(out)
}

impl Tpm {
    /// Creates a node key bound to the current values of `policy_pcrs`
    /// (SHA-256 bank only: the authPolicy is a SHA-256 PolicyPCR digest).
    pub fn create_node_key(&mut self, policy_pcrs: &PcrSelection) -> Result<NodeKey, TpmError> {
        if policy_pcrs.is_empty()
            || policy_pcrs
                .iter()
                .any(|(bank, _)| bank != super::PcrBank::Sha256)
        {
            return Err(TpmError::InvalidInput {
                field: "node key PCRs",
                reason: format!("expected a non-empty sha256 selection, got {policy_pcrs}"),
            });
        }
        let (_, values) = self.read_pcrs(policy_pcrs)?;
        let policy = policy_pcr_digest(policy_pcrs, &values)?;
        let template = node_key_template(&policy)?;
        // TPM2_Create needs a free object slot besides its parent, and a
        // TPM without a resource manager has as few as three: make room.
        self.flush_cached();
        let srk = create_srk(&mut self.ctx)?;
        let created = self
            .ctx
            .execute_with_session(Some(AuthSession::Password), |ctx| {
                ctx.create(srk, template, None, None, None, None)
            })
            .map_err(TpmError::command("TPM2_Create(node key)"));
        flush_quietly(&mut self.ctx, srk.into(), "SRK");
        let created = created?;
        Ok(NodeKey {
            blob: KeyBlob::new(created.out_public, created.out_private),
            policy_pcrs: policy_pcrs.clone(),
        })
    }

    /// The transient handle of the node key, loading it under the SRK if needed.
    fn loaded_node_key(&mut self, key: &NodeKey) -> Result<KeyHandle, TpmError> {
        let public_id = key.public_bytes()?;
        let blob = key.blob.clone();
        self.cached_or_load(CacheSlot::NodeKey, public_id, move |tpm| {
            let srk = create_srk(&mut tpm.ctx)?;
            let loaded = tpm
                .ctx
                .execute_with_session(Some(AuthSession::Password), |ctx| {
                    ctx.load(srk, blob.private, blob.public)
                })
                .map_err(TpmError::command("TPM2_Load(node key)"));
            flush_quietly(&mut tpm.ctx, srk.into(), "SRK");
            loaded
        })
    }

    /// TPM2_Certify of the node key by the AK, with `qualifying_data` (≤ 64
    /// bytes) as extraData. Proves to the issuer that the node key lives in the
    /// same TPM as the AK, with the attributes and policy its public area says.
    pub fn certify_node_key(
        &mut self,
        key: &NodeKey,
        ak: &AttestationKey,
        qualifying_data: &[u8],
    ) -> Result<Certification, TpmError> {
        let data =
            Data::try_from(qualifying_data.to_vec()).map_err(|_| TpmError::InvalidInput {
                field: "qualifying data",
                reason: format!("{} bytes given, at most 64 allowed", qualifying_data.len()),
            })?;
        let ak_handle = self.loaded_ak(ak)?;
        let key_handle = self.loaded_node_key(key)?;
        // Session 1: the node key's ADMIN role (empty authValue, adminWithPolicy
        // clear). Session 2: the AK's USER role.
        self.ctx.set_sessions((
            Some(AuthSession::Password),
            Some(AuthSession::Password),
            None,
        ));
        let certified = self
            .ctx
            .certify(key_handle.into(), ak_handle, data, SignatureScheme::Null)
            .map_err(TpmError::command("TPM2_Certify"));
        self.ctx.clear_sessions();
        let (attest, signature) = certified?;
        Ok(Certification {
            attest: attest.marshall().map_err(|e| TpmError::UnexpectedOutput {
                command: "TPM2_Certify",
                reason: format!("cannot marshal TPMS_ATTEST: {e}"),
            })?,
            signature: signature
                .marshall()
                .map_err(|e| TpmError::UnexpectedOutput {
                    command: "TPM2_Certify",
                    reason: format!("cannot marshal TPMT_SIGNATURE: {e}"),
                })?,
        })
    }

    /// Signs a SHA-256 `digest` with the node key through a PolicyPCR session.
    ///
    /// Fails with a policy error ([`TpmError::is_policy_failure`]) once any of
    /// the key's PCRs differs from its value at creation.
    pub fn sign_with_node_key(
        &mut self,
        key: &NodeKey,
        digest: &[u8; 32],
    ) -> Result<NodeKeySignature, TpmError> {
        let key_handle = self.loaded_node_key(key)?;
        let digest = Digest::try_from(digest.to_vec()).map_err(|e| TpmError::InvalidInput {
            field: "digest",
            reason: e.to_string(),
        })?;
        let ticket = null_hashcheck_ticket()?;
        let selection = key.policy_pcrs.clone();
        let signature = with_policy_session(&mut self.ctx, |ctx, session, policy| {
            policy_pcr_current(ctx, policy, &selection)?;
            ctx.execute_with_session(Some(session), |ctx| {
                ctx.sign(key_handle, digest, SignatureScheme::Null, ticket)
            })
            .map_err(TpmError::command("TPM2_Sign(node key)"))
        })?;
        match signature {
            Signature::EcDsa(ecc) => Ok(NodeKeySignature {
                r: ecc.signature_r().value().to_vec(),
                s: ecc.signature_s().value().to_vec(),
            }),
            _ => Err(TpmError::UnexpectedOutput {
                command: "TPM2_Sign(node key)",
                reason: "not an ECDSA signature".to_owned(),
            }),
        }
    }
}

/// The node key template of DESIGN §3: ECC P-256 ECDSA-SHA256 signing key,
/// fixedTPM, fixedParent, sensitiveDataOrigin, userWithAuth clear,
/// adminWithPolicy clear, noDA, authPolicy = `policy`.
fn node_key_template(policy: &[u8; 32]) -> Result<Public, TpmError> {
    let invalid = |field: &'static str| {
        move |e: tss_esapi::Error| TpmError::InvalidInput {
            field,
            reason: e.to_string(),
        }
    };
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(false)
        .with_admin_with_policy(false)
        .with_no_da(true)
        .with_sign_encrypt(true)
        .with_decrypt(false)
        .with_restricted(false)
        .build()
        .map_err(invalid("node key attributes"))?;
    let parameters = PublicEccParametersBuilder::new_unrestricted_signing_key(
        EccScheme::EcDsa(HashScheme::new(HashingAlgorithm::Sha256)),
        EccCurve::NistP256,
    )
    .build()
    .map_err(invalid("node key parameters"))?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Ecc)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_auth_policy(Digest::try_from(policy.to_vec()).map_err(invalid("node key policy"))?)
        .with_ecc_parameters(parameters)
        .with_ecc_unique_identifier(EccPoint::default())
        .build()
        .map_err(invalid("node key template"))
}

/// The NULL hashcheck ticket TPM2_Sign takes for unrestricted keys.
pub(crate) fn null_hashcheck_ticket() -> Result<HashcheckTicket, TpmError> {
    HashcheckTicket::try_from(TPMT_TK_HASHCHECK {
        tag: TPM2_ST_HASHCHECK,
        hierarchy: TPM2_RH_NULL,
        digest: Default::default(),
    })
    .map_err(|e| TpmError::InvalidInput {
        field: "hashcheck ticket",
        reason: e.to_string(),
    })
}
