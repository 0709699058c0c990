//! Errors of the TPM layer.

use tss_esapi::constants::response_code::Tss2ResponseCode;

/// A failure in the attestor's TPM layer.
///
/// Every variant that comes from the TPM names the TPM command that failed,
/// so an operator can tell `TPM2_Quote` from `TPM2_PolicyPCR` without a trace.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TpmError {
    /// A TPM command (or the TSS around it) returned an error.
    #[error("{command} failed: {detail}")]
    Command {
        /// The TPM command, e.g. `TPM2_Quote`.
        command: &'static str,
        /// The response code rendered with its meaning, e.g.
        /// `the policy check failed (TPM_RC_POLICY_FAIL, 0x99d)`.
        detail: String,
        /// The underlying TSS error.
        #[source]
        source: tss_esapi::Error,
    },
    /// The TCTI string could not be parsed or the TPM could not be opened.
    #[error(
        "cannot open the TPM through TCTI {tcti:?}: {detail}; set `tcti` in the attestor config \
         (e.g. device:/dev/tpmrm0 or swtpm:host=127.0.0.1,port=2321)"
    )]
    Open {
        /// The TCTI configuration string as given.
        tcti: String,
        /// What went wrong.
        detail: String,
    },
    /// A value handed to the TPM layer is not acceptable.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// Which input was wrong.
        field: &'static str,
        /// What was expected.
        reason: String,
    },
    /// The TPM answered with something the layer cannot use.
    #[error("unexpected TPM output from {command}: {reason}")]
    UnexpectedOutput {
        /// The TPM command whose output was wrong.
        command: &'static str,
        /// What was wrong with it.
        reason: String,
    },
    /// The PCRs kept changing between TPM2_Quote and TPM2_PCR_Read.
    #[error(
        "PCR values changed during every one of {attempts} quote attempts; the host is still measuring"
    )]
    PcrsUnstable {
        /// How many attempts were made.
        attempts: u32,
    },
    /// A key or sealed-object file could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What the layer was doing, e.g. `cannot write`.
        action: &'static str,
        /// The file concerned.
        path: std::path::PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A stored key or sealed blob is malformed.
    #[error(
        "malformed {what} in {path}: {reason}; delete the file to let the attestor recreate it"
    )]
    MalformedBlob {
        /// What kind of blob.
        what: &'static str,
        /// The file concerned.
        path: std::path::PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

impl TpmError {
    /// Wraps a TSS error with the TPM command that produced it.
    pub(crate) fn command(command: &'static str) -> impl FnOnce(tss_esapi::Error) -> TpmError {
        move |source| TpmError::Command {
            command,
            detail: describe(&source),
            source,
        }
    }

    /// True when the TPM refused an operation because a policy (for example
    /// PolicyPCR after a boot PCR changed) was not satisfied.
    pub fn is_policy_failure(&self) -> bool {
        match self {
            TpmError::Command { source, .. } => matches!(
                response_kind(source),
                Some(
                    tss_esapi::constants::response_code::Tss2ResponseCodeKind::PolicyFail
                        | tss_esapi::constants::response_code::Tss2ResponseCodeKind::PcrChanged
                )
            ),
            _ => false,
        }
    }

    /// The TPM's response code kind, when the error came from the TPM.
    pub fn response_kind(
        &self,
    ) -> Option<tss_esapi::constants::response_code::Tss2ResponseCodeKind> {
        match self {
            TpmError::Command { source, .. } => response_kind(source),
            _ => None,
        }
    }
}

fn response_kind(
    error: &tss_esapi::Error,
) -> Option<tss_esapi::constants::response_code::Tss2ResponseCodeKind> {
    match error {
        tss_esapi::Error::Tss2Error(code) => code.kind(),
        tss_esapi::Error::WrapperError(_) => None,
    }
}

/// Renders a TSS error as "meaning (KIND, 0xcode)".
fn describe(error: &tss_esapi::Error) -> String {
    match error {
        tss_esapi::Error::Tss2Error(code) => {
            let raw = match code {
                Tss2ResponseCode::Success => "0x0".to_owned(),
                // The wrappers print "Response code value: 0x..."; keep only the number.
                Tss2ResponseCode::FormatZero(c) => hex_of(&c.to_string()),
                Tss2ResponseCode::FormatOne(c) => hex_of(&c.to_string()),
            };
            match code.kind() {
                Some(kind) => format!("{code} ({kind:?}, response code {raw})"),
                None => format!("unrecognised response code {raw}"),
            }
        }
        tss_esapi::Error::WrapperError(kind) => format!("TSS wrapper error: {kind}"),
    }
}

fn hex_of(rendered: &str) -> String {
    rendered.rsplit(' ').next().unwrap_or(rendered).to_owned()
}
