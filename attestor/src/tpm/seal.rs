//! Sealing small secrets (the attestor's cache key) to the boot PCRs.

use std::path::Path;

use tss_esapi::attributes::ObjectAttributesBuilder;
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::{
    Digest, KeyedHashScheme, PublicBuilder, PublicKeyedHashParameters, SensitiveData,
};
use zeroize::Zeroizing;

use super::blob::KeyBlob;
use super::pcr::{PcrSelection, policy_pcr_digest};
use super::session::{policy_pcr_current, with_policy_session};
use super::srk::create_srk;
use super::{Tpm, TpmError, flush_quietly};

/// The largest secret a TPM seals (MAX_SYM_DATA).
pub const MAX_SEALED_LEN: usize = 128;

/// A sealed data object: only a policy session that satisfies PolicyPCR over
/// the PCR values at sealing time can unseal it.
#[derive(Debug, Clone)]
pub struct SealedSecret {
    /// The sealed object's public and wrapped private area.
    pub blob: KeyBlob,
    /// The SHA-256 PCRs its policy covers.
    pub policy_pcrs: PcrSelection,
}

impl SealedSecret {
    /// Reads a sealed blob stored at `path`.
    pub fn read(path: &Path, policy_pcrs: PcrSelection) -> Result<Self, TpmError> {
        Ok(Self {
            blob: KeyBlob::read(path)?,
            policy_pcrs,
        })
    }
}

impl Tpm {
    /// Seals `secret` (1 to 128 bytes) under the SRK to the current values of
    /// `policy_pcrs` (SHA-256 bank), with userWithAuth clear so the policy is
    /// the only way in.
    pub fn seal(
        &mut self,
        secret: &[u8],
        policy_pcrs: &PcrSelection,
    ) -> Result<SealedSecret, TpmError> {
        if secret.is_empty() || secret.len() > MAX_SEALED_LEN {
            return Err(TpmError::InvalidInput {
                field: "secret",
                reason: format!(
                    "{} bytes given, 1 to {MAX_SEALED_LEN} allowed",
                    secret.len()
                ),
            });
        }
        if policy_pcrs.is_empty()
            || policy_pcrs
                .iter()
                .any(|(bank, _)| bank != super::PcrBank::Sha256)
        {
            return Err(TpmError::InvalidInput {
                field: "seal PCRs",
                reason: format!("expected a non-empty sha256 selection, got {policy_pcrs}"),
            });
        }
        let (_, values) = self.read_pcrs(policy_pcrs)?;
        let policy = policy_pcr_digest(policy_pcrs, &values)?;
        let invalid = |field: &'static str| {
            move |e: tss_esapi::Error| TpmError::InvalidInput {
                field,
                reason: e.to_string(),
            }
        };
        let attributes = ObjectAttributesBuilder::new()
            .with_fixed_tpm(true)
            .with_fixed_parent(true)
            .with_user_with_auth(false)
            .with_admin_with_policy(true)
            .with_no_da(true)
            .build()
            .map_err(invalid("sealed object attributes"))?;
        let template = PublicBuilder::new()
            .with_public_algorithm(PublicAlgorithm::KeyedHash)
            .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
            .with_object_attributes(attributes)
            .with_auth_policy(Digest::try_from(policy.to_vec()).map_err(invalid("seal policy"))?)
            .with_keyed_hash_parameters(PublicKeyedHashParameters::new(KeyedHashScheme::Null))
            .with_keyed_hash_unique_identifier(Digest::default())
            .build()
            .map_err(invalid("sealed object template"))?;
        let data = SensitiveData::try_from(secret.to_vec()).map_err(invalid("secret"))?;
        // TPM2_Create needs a free object slot besides its parent, and a
        // TPM without a resource manager has as few as three: make room.
        self.flush_cached();
        let srk = create_srk(&mut self.ctx)?;
        let created = self
            .ctx
            .execute_with_session(Some(AuthSession::Password), |ctx| {
                ctx.create(srk, template, None, Some(data), None, None)
            })
            .map_err(TpmError::command("TPM2_Create(sealed object)"));
        flush_quietly(&mut self.ctx, srk.into(), "SRK");
        let created = created?;
        Ok(SealedSecret {
            blob: KeyBlob::new(created.out_public, created.out_private),
            policy_pcrs: policy_pcrs.clone(),
        })
    }

    /// Unseals `sealed`. Fails with a policy error
    /// ([`TpmError::is_policy_failure`]) when the PCRs no longer hold the
    /// values they had at sealing time.
    pub fn unseal(&mut self, sealed: &SealedSecret) -> Result<Zeroizing<Vec<u8>>, TpmError> {
        // The SRK and the sealed object need two free slots.
        self.flush_cached();
        let srk = create_srk(&mut self.ctx)?;
        let blob = sealed.blob.clone();
        let loaded = self
            .ctx
            .execute_with_session(Some(AuthSession::Password), |ctx| {
                ctx.load(srk, blob.private, blob.public)
            })
            .map_err(TpmError::command("TPM2_Load(sealed object)"));
        flush_quietly(&mut self.ctx, srk.into(), "SRK");
        let object = loaded?;
        let selection = sealed.policy_pcrs.clone();
        let unsealed = with_policy_session(&mut self.ctx, |ctx, session, policy| {
            policy_pcr_current(ctx, policy, &selection)?;
            ctx.execute_with_session(Some(session), |ctx| ctx.unseal(object.into()))
                .map_err(TpmError::command("TPM2_Unseal"))
        });
        flush_quietly(&mut self.ctx, object.into(), "sealed object");
        Ok(Zeroizing::new(unsealed?.value().to_vec()))
    }
}
