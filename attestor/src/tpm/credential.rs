//! TPM2_ActivateCredential: proves to the issuer that the AK lives in the same
//! TPM as the EK.

use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::{EncryptedSecret, IdObject};
use zeroize::Zeroizing;

use super::ak::AttestationKey;
use super::session::{policy_secret_endorsement, with_policy_session};
use super::{Tpm, TpmError, flush_quietly};

impl Tpm {
    /// Recovers the secret the issuer wrapped with MakeCredential for this
    /// AK's name and this TPM's EK.
    ///
    /// `credential_blob` is the content of the TPM2B_ID_OBJECT (integrity HMAC
    /// and encrypted credential) and `encrypted_secret` the content of the
    /// TPM2B_ENCRYPTED_SECRET, both without their size prefix. The TPM refuses
    /// (TPM_RC_INTEGRITY) a blob made for any other AK name.
    pub fn activate_credential(
        &mut self,
        ak: &AttestationKey,
        credential_blob: &[u8],
        encrypted_secret: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, TpmError> {
        let id_object =
            IdObject::try_from(credential_blob.to_vec()).map_err(|e| TpmError::InvalidInput {
                field: "credential_blob",
                reason: format!("not a TPM2B_ID_OBJECT payload: {e}"),
            })?;
        let secret = EncryptedSecret::try_from(encrypted_secret.to_vec()).map_err(|e| {
            TpmError::InvalidInput {
                field: "encrypted_secret",
                reason: format!("not a TPM2B_ENCRYPTED_SECRET payload: {e}"),
            }
        })?;
        let ak_handle = self.loaded_ak(ak)?;
        let ek_handle = self.create_ek(ak.ek_algorithm)?;
        let ek_public = self.ctx.read_public(ek_handle).map(|(public, _, _)| public);
        let result = with_policy_session(&mut self.ctx, |ctx, session, policy| {
            let ek_user_with_auth = ek_public
                .as_ref()
                .map(|public| public.object_attributes().user_with_auth())
                .unwrap_or(false);
            // Low-range EK templates clear userWithAuth: the EK's USER role
            // needs PolicySecret(TPM_RH_ENDORSEMENT).
            let ek_session = if ek_user_with_auth {
                AuthSession::Password
            } else {
                policy_secret_endorsement(ctx, policy)?;
                session
            };
            // ActivateCredential: session 1 authorises the AK (ADMIN role,
            // empty authValue), session 2 the EK.
            ctx.set_sessions((Some(AuthSession::Password), Some(ek_session), None));
            let activated = ctx
                .activate_credential(ak_handle, ek_handle, id_object, secret)
                .map_err(TpmError::command("TPM2_ActivateCredential"));
            ctx.clear_sessions();
            activated
        });
        flush_quietly(&mut self.ctx, ek_handle.into(), "EK");
        Ok(Zeroizing::new(result?.value().to_vec()))
    }
}
