//! The one place where [`ServiceError`]s become gRPC statuses.
//!
//! Refusals carry the verifier's reason (the attestor needs it to act,
//! and the same text is in the audit log); internal failures are logged
//! and answered with a generic message so that no datastore or CA detail
//! leaks to the network.

use tonic::{Code, Status};

use super::error::ServiceError;
use crate::ca::CaError;

impl From<ServiceError> for Status {
    fn from(error: ServiceError) -> Self {
        let code = match &error {
            ServiceError::Protocol { .. } => Code::InvalidArgument,
            ServiceError::Timeout { .. } => Code::DeadlineExceeded,
            ServiceError::Refused { .. } | ServiceError::Banned { .. } => Code::PermissionDenied,
            ServiceError::RateLimited { .. } | ServiceError::Busy { .. } => Code::ResourceExhausted,
            ServiceError::Unauthenticated(_) => Code::Unauthenticated,
            ServiceError::NodeNotAttested { .. } | ServiceError::EntryNotMatching { .. } => {
                Code::PermissionDenied
            }
            ServiceError::InvalidRequest { .. } => Code::InvalidArgument,
            // What the caller sent (key, CSR, audience) is at fault; anything
            // else from the CA is the issuer's problem.
            ServiceError::Mint(
                CaError::InvalidInput { .. } | CaError::UnsupportedKey { .. } | CaError::Csr { .. },
            ) => Code::InvalidArgument,
            ServiceError::Store(_)
            | ServiceError::Ca(_)
            | ServiceError::Setup(_)
            | ServiceError::Tls(_)
            | ServiceError::Io(_)
            | ServiceError::Task(_)
            | ServiceError::Transport(_)
            | ServiceError::Mint(_) => {
                tracing::error!(error = %error, "issuer API internal error");
                return Status::internal("internal issuer error; see the issuer's log");
            }
        };
        Status::new(code, error.to_string())
    }
}
