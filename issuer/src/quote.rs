//! Quote verification (DESIGN §3 step 4, the quote part), in a fixed order so
//! the first failure is the recorded reason.

use std::collections::BTreeMap;

use aws_lc_rs::constant_time::verify_slices_are_equal;

use crate::pcr::PcrValues;
use crate::tpm::attest::{PcrSelection, TPM_GENERATED_VALUE, TPM_ST_ATTEST_QUOTE};
use crate::tpm::{
    AttestBody, ClockInfo, SignatureError, TpmParseError, TpmsAttest, TpmtPublic, TpmtSignature,
    verify_signature,
};

/// Why a quote was refused. The variants are in the order the checks run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QuoteError {
    /// The signature is not a well-formed TPMT_SIGNATURE.
    #[error("quote signature is malformed: {0}")]
    MalformedSignature(TpmParseError),
    /// The signature does not verify with the AK.
    #[error("quote signature is not valid for the AK: {0}")]
    BadSignature(SignatureError),
    /// The signed body is not a well-formed TPMS_ATTEST.
    #[error("quote body is malformed: {0}")]
    MalformedAttest(TpmParseError),
    /// The body does not start with TPM_GENERATED_VALUE: the TPM did not make it.
    #[error("quote magic is {found:#010x}, expected TPM_GENERATED_VALUE 0xff544347")]
    BadMagic {
        /// The magic found.
        found: u32,
    },
    /// The body is another kind of attestation.
    #[error("attestation type is {found:#06x}, expected TPM_ST_ATTEST_QUOTE 0x8018")]
    NotAQuote {
        /// The type found.
        found: u16,
    },
    /// extraData is not the nonce the issuer sent.
    #[error("quote extraData does not equal the issued nonce (replayed or foreign quote)")]
    NonceMismatch,
    /// The reported PCR values lack a quoted PCR.
    #[error("the reported PCR values lack {bank}:{pcr}, which the quote covers")]
    MissingPcrValue {
        /// The bank.
        bank: crate::tpm::HashAlg,
        /// The PCR index.
        pcr: u32,
    },
    /// A reported PCR value has the wrong size for its bank.
    #[error("reported value for {bank}:{pcr} is {len} bytes, expected {expected}")]
    BadPcrValueSize {
        /// The bank.
        bank: crate::tpm::HashAlg,
        /// The PCR index.
        pcr: u32,
        /// The size found.
        len: usize,
        /// The bank's digest size.
        expected: usize,
    },
    /// The hash of the reported PCR values is not the quoted pcrDigest.
    #[error(
        "the reported PCR values do not hash to the quoted pcrDigest (quoted {quoted}, computed {computed})"
    )]
    PcrDigestMismatch {
        /// The pcrDigest in the quote (hex).
        quoted: String,
        /// The hash of the reported values (hex).
        computed: String,
    },
}

impl QuoteError {
    /// A short stable code for audit records and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            QuoteError::MalformedSignature(_) => "quote.signature.malformed",
            QuoteError::BadSignature(_) => "quote.signature.invalid",
            QuoteError::MalformedAttest(_) => "quote.attest.malformed",
            QuoteError::BadMagic { .. } => "quote.magic",
            QuoteError::NotAQuote { .. } => "quote.type",
            QuoteError::NonceMismatch => "quote.nonce",
            QuoteError::MissingPcrValue { .. } | QuoteError::BadPcrValueSize { .. } => {
                "quote.pcr_values"
            }
            QuoteError::PcrDigestMismatch { .. } => "quote.pcr_digest",
        }
    }
}

/// A quote that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedQuote {
    /// The parsed TPMS_ATTEST.
    pub attest: TpmsAttest,
    /// The quoted PCR selection.
    pub selection: PcrSelection,
    /// Exactly the quoted PCR values (other reported values are dropped).
    pub pcrs: PcrValues,
}

/// Verifies a quote: signature by `ak`, magic, type, `extraData == nonce`,
/// and `pcrDigest == H(reported values in selection order)`.
pub fn verify_quote(
    ak: &TpmtPublic,
    attest: &[u8],
    signature: &[u8],
    reported: &PcrValues,
    nonce: &[u8],
) -> Result<VerifiedQuote, QuoteError> {
    let signature = TpmtSignature::from_bytes(signature).map_err(QuoteError::MalformedSignature)?;
    verify_signature(ak, attest, &signature).map_err(QuoteError::BadSignature)?;
    let parsed = TpmsAttest::from_bytes(attest).map_err(QuoteError::MalformedAttest)?;
    if parsed.magic != TPM_GENERATED_VALUE {
        return Err(QuoteError::BadMagic {
            found: parsed.magic,
        });
    }
    let AttestBody::Quote {
        selection,
        pcr_digest,
    } = &parsed.body
    else {
        return Err(QuoteError::NotAQuote {
            found: parsed.attest_type,
        });
    };
    debug_assert_eq!(parsed.attest_type, TPM_ST_ATTEST_QUOTE);
    if verify_slices_are_equal(&parsed.extra_data, nonce).is_err() {
        return Err(QuoteError::NonceMismatch);
    }
    let (pcrs, concatenated) = quoted_values(selection, reported)?;
    // The TPM hashes the PCR values with the signing scheme's hash.
    let computed = signature.hash().hash(&concatenated);
    if verify_slices_are_equal(&computed, pcr_digest).is_err() {
        return Err(QuoteError::PcrDigestMismatch {
            quoted: hex::encode(pcr_digest),
            computed: hex::encode(computed),
        });
    }
    let selection = selection.clone();
    Ok(VerifiedQuote {
        attest: parsed,
        selection,
        pcrs,
    })
}

/// The reported values of exactly the selected PCRs, and their concatenation
/// in digest order.
fn quoted_values(
    selection: &PcrSelection,
    reported: &PcrValues,
) -> Result<(PcrValues, Vec<u8>), QuoteError> {
    let mut pcrs: PcrValues = BTreeMap::new();
    let mut concatenated = Vec::with_capacity(selection.len() * 32);
    for (bank, pcr) in selection.iter() {
        let value = reported
            .get(&bank)
            .and_then(|values| values.get(&pcr))
            .ok_or(QuoteError::MissingPcrValue { bank, pcr })?;
        if value.len() != bank.digest_len() {
            return Err(QuoteError::BadPcrValueSize {
                bank,
                pcr,
                len: value.len(),
                expected: bank.digest_len(),
            });
        }
        concatenated.extend_from_slice(value);
        pcrs.entry(bank).or_default().insert(pcr, value.clone());
    }
    Ok((pcrs, concatenated))
}

/// Why a node's TPM clock is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClockError {
    /// resetCount went backwards: the quote predates the last accepted one, or
    /// the TPM was cleared (which also changes the EK's hierarchy state).
    #[error(
        "TPM resetCount went backwards ({previous} → {current}): replayed evidence or a cleared TPM"
    )]
    ResetCountBackwards {
        /// Last accepted value.
        previous: u32,
        /// Value in this quote.
        current: u32,
    },
    /// restartCount went backwards within the same boot.
    #[error(
        "TPM restartCount went backwards within one boot ({previous} → {current}): replayed evidence"
    )]
    RestartCountBackwards {
        /// Last accepted value.
        previous: u32,
        /// Value in this quote.
        current: u32,
    },
}

/// The clock monotonicity check for a node the issuer has seen before:
/// resetCount never decreases, and within one reset restartCount never does.
pub fn check_clock(previous: &ClockInfo, current: &ClockInfo) -> Result<(), ClockError> {
    if current.reset_count < previous.reset_count {
        return Err(ClockError::ResetCountBackwards {
            previous: previous.reset_count,
            current: current.reset_count,
        });
    }
    if current.reset_count == previous.reset_count && current.restart_count < previous.restart_count
    {
        return Err(ClockError::RestartCountBackwards {
            previous: previous.restart_count,
            current: current.restart_count,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock(reset_count: u32, restart_count: u32) -> ClockInfo {
        ClockInfo {
            clock: 0,
            reset_count,
            restart_count,
            safe: true,
        }
    }

    #[test]
    fn clock_may_only_move_forward() {
        assert!(check_clock(&clock(3, 1), &clock(3, 1)).is_ok());
        assert!(check_clock(&clock(3, 1), &clock(4, 0)).is_ok());
        assert!(matches!(
            check_clock(&clock(3, 1), &clock(2, 9)),
            Err(ClockError::ResetCountBackwards { .. })
        ));
        assert!(matches!(
            check_clock(&clock(3, 2), &clock(3, 1)),
            Err(ClockError::RestartCountBackwards { .. })
        ));
    }
}
