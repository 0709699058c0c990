//! Every Workload API refusal, and its gRPC status, in one place.

use tonic::Status;

/// Why a Workload API call was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkloadApiError {
    /// The `workload.spiffe.io: true` metadata is missing.
    #[error("security header missing from request")]
    MissingSecurityHeader,
    /// The attestor has nothing to serve yet.
    #[error("the attestor is not ready: it has not received its identities from the issuer yet")]
    NotReady,
    /// The caller matches no entry (or could not be attested).
    #[error("no identity issued")]
    NoIdentity,
    /// A request field is wrong.
    #[error("{0}")]
    InvalidRequest(String),
    /// A JWT-SVID could not be minted right now.
    #[error("cannot mint the JWT-SVID now: {0}")]
    IssuerUnavailable(String),
}

impl From<WorkloadApiError> for Status {
    fn from(e: WorkloadApiError) -> Status {
        let message = e.to_string();
        match e {
            WorkloadApiError::MissingSecurityHeader | WorkloadApiError::InvalidRequest(_) => {
                Status::invalid_argument(message)
            }
            WorkloadApiError::NotReady | WorkloadApiError::IssuerUnavailable(_) => {
                Status::unavailable(message)
            }
            WorkloadApiError::NoIdentity => Status::permission_denied(message),
        }
    }
}
