//! Errors of the node's dealings with the issuer.

use crate::eventlog::EventLogReadError;
use crate::tpm::TpmError;

/// Why an attestation or an issuance call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The TPM failed.
    #[error(transparent)]
    Tpm(#[from] TpmError),
    /// The event log could not be read.
    #[error(transparent)]
    EventLog(#[from] EventLogReadError),
    /// The issuer could not be reached.
    #[error("cannot reach the issuer at {addr}: {reason}")]
    Connect {
        /// The configured address.
        addr: String,
        /// What failed.
        reason: String,
    },
    /// The issuer answered with an error status.
    #[error("the issuer refused {call}: {code:?}: {message}")]
    Refused {
        /// The call.
        call: &'static str,
        /// The gRPC status code.
        code: tonic::Code,
        /// The issuer's message.
        message: String,
    },
    /// The issuer's answer is not what the protocol says.
    #[error("unexpected answer from the issuer to {call}: {reason}")]
    Protocol {
        /// The call.
        call: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// The trust bundle file could not be used.
    #[error(
        "trust bundle {path}: {reason}; copy the issuer's CA (`rootmark-issuer bundle show --pem`) there"
    )]
    Bundle {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// TLS material could not be built.
    #[error("TLS: {0}")]
    Tls(#[from] rootmark_sdk::tls::TlsError),
}

impl NodeError {
    /// Whether retrying later can help (the issuer is down or overloaded),
    /// as opposed to a refusal that will repeat.
    pub fn is_transient(&self) -> bool {
        match self {
            NodeError::Connect { .. } => true,
            NodeError::Refused { code, .. } => matches!(
                code,
                tonic::Code::Unavailable
                    | tonic::Code::DeadlineExceeded
                    | tonic::Code::ResourceExhausted
                    | tonic::Code::Unknown
                    | tonic::Code::Internal
                    | tonic::Code::Aborted
                    | tonic::Code::Cancelled
            ),
            _ => false,
        }
    }

    /// Maps a gRPC status from `call`; a transport failure is reported as
    /// the issuer being unreachable.
    pub(crate) fn status(
        call: &'static str,
        addr: &str,
    ) -> impl FnOnce(tonic::Status) -> NodeError {
        let addr = addr.to_owned();
        move |status| {
            if status.code() == tonic::Code::Unavailable {
                NodeError::Connect {
                    addr,
                    reason: status.message().to_owned(),
                }
            } else {
                NodeError::Refused {
                    call,
                    code: status.code(),
                    message: status.message().to_owned(),
                }
            }
        }
    }
}
