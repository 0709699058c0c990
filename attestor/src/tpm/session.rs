//! Policy sessions: started, used and always flushed.

use tss_esapi::Context;
use tss_esapi::constants::SessionType;
use tss_esapi::handles::{AuthHandle, SessionHandle};
use tss_esapi::interface_types::algorithm::HashingAlgorithm;
use tss_esapi::interface_types::session_handles::{AuthSession, PolicySession};
use tss_esapi::structures::{Digest, SymmetricDefinition};

use super::pcr::PcrSelection;
use super::{TpmError, flush_quietly};

/// Runs `f` with a fresh SHA-256 policy session and flushes the session
/// afterwards, whatever `f` returned.
pub(crate) fn with_policy_session<T>(
    ctx: &mut Context,
    f: impl FnOnce(&mut Context, AuthSession, PolicySession) -> Result<T, TpmError>,
) -> Result<T, TpmError> {
    let session = ctx
        .execute_without_session(|ctx| {
            ctx.start_auth_session(
                None,
                None,
                None,
                SessionType::Policy,
                SymmetricDefinition::Null,
                HashingAlgorithm::Sha256,
            )
        })
        .map_err(TpmError::command("TPM2_StartAuthSession"))?
        .ok_or_else(|| TpmError::UnexpectedOutput {
            command: "TPM2_StartAuthSession",
            reason: "no session handle returned".to_owned(),
        })?;
    let result = PolicySession::try_from(session)
        .map_err(|e| TpmError::UnexpectedOutput {
            command: "TPM2_StartAuthSession",
            reason: format!("not a policy session: {e}"),
        })
        .and_then(|policy| f(ctx, session, policy));
    ctx.clear_sessions();
    flush_quietly(ctx, SessionHandle::from(session).into(), "policy session");
    result
}

/// Satisfies the endorsement-hierarchy PolicySecret that the TCG default EK
/// templates (policy A) require for the EK's USER role.
pub(crate) fn policy_secret_endorsement(
    ctx: &mut Context,
    policy: PolicySession,
) -> Result<(), TpmError> {
    ctx.execute_with_session(Some(AuthSession::Password), |ctx| {
        ctx.policy_secret(
            policy,
            AuthHandle::Endorsement,
            Default::default(),
            Default::default(),
            Default::default(),
            None,
        )
    })
    .map(|_| ())
    .map_err(TpmError::command("TPM2_PolicySecret"))
}

/// Runs TPM2_PolicyPCR over the current values of `selection`. The TPM itself
/// hashes its current PCRs, so the session only satisfies an authPolicy that
/// was computed over the values the PCRs hold now.
pub(crate) fn policy_pcr_current(
    ctx: &mut Context,
    policy: PolicySession,
    selection: &PcrSelection,
) -> Result<(), TpmError> {
    let list = selection.to_tss()?;
    ctx.execute_without_session(|ctx| ctx.policy_pcr(policy, Digest::default(), list))
        .map_err(TpmError::command("TPM2_PolicyPCR"))
}
