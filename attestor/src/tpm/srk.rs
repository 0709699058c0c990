//! The storage root key: the TCG default ECC P-256 SRK template, recreated on
//! demand (primaries are derived from the owner seed, so it is always the same
//! key) and flushed after use.

use tss_esapi::Context;
use tss_esapi::attributes::ObjectAttributesBuilder;
use tss_esapi::handles::KeyHandle;
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::resource_handles::Hierarchy;
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::{
    EccPoint, PublicBuilder, PublicEccParametersBuilder, SymmetricDefinitionObject,
};

use super::TpmError;

/// Creates the SRK (TCG "Provisioning Guidance" ECC P-256 storage template)
/// and returns its transient handle; the caller flushes it.
pub(crate) fn create_srk(ctx: &mut Context) -> Result<KeyHandle, TpmError> {
    let attributes = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_no_da(true)
        .with_restricted(true)
        .with_decrypt(true)
        .build()
        .map_err(|e| TpmError::InvalidInput {
            field: "SRK attributes",
            reason: e.to_string(),
        })?;
    let parameters = PublicEccParametersBuilder::new_restricted_decryption_key(
        SymmetricDefinitionObject::AES_128_CFB,
        EccCurve::NistP256,
    )
    .build()
    .map_err(|e| TpmError::InvalidInput {
        field: "SRK parameters",
        reason: e.to_string(),
    })?;
    let public = PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Ecc)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attributes)
        .with_ecc_parameters(parameters)
        .with_ecc_unique_identifier(EccPoint::default())
        .build()
        .map_err(|e| TpmError::InvalidInput {
            field: "SRK template",
            reason: e.to_string(),
        })?;
    ctx.execute_with_session(Some(AuthSession::Password), |ctx| {
        ctx.create_primary(Hierarchy::Owner, public, None, None, None, None)
    })
    .map(|result| result.key_handle)
    .map_err(TpmError::command("TPM2_CreatePrimary(SRK)"))
}
