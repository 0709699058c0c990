//! TPM2_Quote and consistent PCR reads.

use sha2::{Digest as _, Sha256};
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::{AttestInfo, Data, SignatureScheme};
use tss_esapi::traits::Marshall;

use super::ak::AttestationKey;
use super::pcr::{PcrSelection, PcrValues};
use super::{Tpm, TpmError};

/// TPM2_PCR_Read returns at most eight digests per call.
const PCR_READ_MAX: usize = 8;

/// How often a quote is retried when PCRs change underneath it.
const QUOTE_ATTEMPTS: u32 = 5;

/// A signed quote and the PCR values it covers.
#[derive(Debug, Clone)]
pub struct Quote {
    /// The marshalled TPMS_ATTEST the AK signed.
    pub attest: Vec<u8>,
    /// The marshalled TPMT_SIGNATURE over `attest`.
    pub signature: Vec<u8>,
    /// The quoted selection.
    pub selection: PcrSelection,
    /// The PCR values the quote's pcrDigest was computed over.
    pub pcrs: PcrValues,
}

impl Tpm {
    /// Reads the PCRs of `selection`, consistently: every chunk read must see
    /// the same PCR update counter. Returns the counter and the values.
    pub fn read_pcrs(&mut self, selection: &PcrSelection) -> Result<(u32, PcrValues), TpmError> {
        for _ in 0..QUOTE_ATTEMPTS {
            if let Some(read) = self.try_read_pcrs(selection)? {
                return Ok(read);
            }
        }
        Err(TpmError::PcrsUnstable {
            attempts: QUOTE_ATTEMPTS,
        })
    }

    /// One pass over the chunks; `None` when the counter moved mid-read.
    fn try_read_pcrs(
        &mut self,
        selection: &PcrSelection,
    ) -> Result<Option<(u32, PcrValues)>, TpmError> {
        let mut values = PcrValues::default();
        let mut counter = None;
        for chunk in selection.chunks(PCR_READ_MAX) {
            let (update_counter, _, digests) = self.ctx.execute_without_session(|ctx| {
                chunk.to_tss().and_then(|list| {
                    ctx.pcr_read(list)
                        .map_err(TpmError::command("TPM2_PCR_Read"))
                })
            })?;
            if counter.is_some_and(|c| c != update_counter) {
                return Ok(None);
            }
            counter = Some(update_counter);
            let digests = digests.value();
            if digests.len() != chunk.len() {
                return Err(TpmError::UnexpectedOutput {
                    command: "TPM2_PCR_Read",
                    reason: format!(
                        "asked for {} PCRs ({chunk}) and got {}; is every bank in the selection allocated?",
                        chunk.len(),
                        digests.len()
                    ),
                });
            }
            let mut digests = digests.iter();
            for (bank, set) in chunk.iter() {
                for &index in set {
                    let digest = digests.next().ok_or_else(|| TpmError::UnexpectedOutput {
                        command: "TPM2_PCR_Read",
                        reason: "fewer digests than selected PCRs".to_owned(),
                    })?;
                    values
                        .banks
                        .entry(bank)
                        .or_default()
                        .insert(index, digest.value().to_vec());
                }
            }
        }
        Ok(counter.map(|c| (c, values)))
    }

    /// Quotes `selection` with `ak`, with `qualifying_data` (the issuer's
    /// nonce, at most 64 bytes) as extraData.
    ///
    /// The PCRs are read around the quote, and the quote's pcrDigest is checked
    /// against the values read; if a PCR was extended in between, the quote is
    /// taken again (up to five times), so the returned values are exactly the
    /// ones the signature covers.
    pub fn quote(
        &mut self,
        ak: &AttestationKey,
        selection: &PcrSelection,
        qualifying_data: &[u8],
    ) -> Result<Quote, TpmError> {
        if selection.is_empty() {
            return Err(TpmError::InvalidInput {
                field: "PCR selection",
                reason: "a quote needs at least one PCR".to_owned(),
            });
        }
        let data =
            Data::try_from(qualifying_data.to_vec()).map_err(|_| TpmError::InvalidInput {
                field: "qualifying data",
                reason: format!("{} bytes given, at most 64 allowed", qualifying_data.len()),
            })?;
        let ak_handle = self.loaded_ak(ak)?;
        for _ in 0..QUOTE_ATTEMPTS {
            let (before, values) = self.read_pcrs(selection)?;
            let list = selection.to_tss()?;
            let (attest, signature) = self
                .ctx
                .execute_with_session(Some(AuthSession::Password), |ctx| {
                    ctx.quote(ak_handle, data.clone(), SignatureScheme::Null, list)
                })
                .map_err(TpmError::command("TPM2_Quote"))?;
            let (after, _) = self.read_pcrs(&first_pcr(selection))?;
            let quoted_digest = match attest.attested() {
                AttestInfo::Quote { info } => info.pcr_digest().value().to_vec(),
                _ => {
                    return Err(TpmError::UnexpectedOutput {
                        command: "TPM2_Quote",
                        reason: "attestation is not of type TPM_ST_ATTEST_QUOTE".to_owned(),
                    });
                }
            };
            let expected = Sha256::digest(values.concatenated(selection)?);
            if before != after || quoted_digest[..] != expected[..] {
                tracing::debug!(before, after, "PCRs changed during quote; retrying");
                continue;
            }
            let attest = attest.marshall().map_err(|e| TpmError::UnexpectedOutput {
                command: "TPM2_Quote",
                reason: format!("cannot marshal TPMS_ATTEST: {e}"),
            })?;
            let signature = signature
                .marshall()
                .map_err(|e| TpmError::UnexpectedOutput {
                    command: "TPM2_Quote",
                    reason: format!("cannot marshal TPMT_SIGNATURE: {e}"),
                })?;
            return Ok(Quote {
                attest,
                signature,
                selection: selection.clone(),
                pcrs: values,
            });
        }
        Err(TpmError::PcrsUnstable {
            attempts: QUOTE_ATTEMPTS,
        })
    }
}

/// A one-PCR selection used to re-read the update counter cheaply.
fn first_pcr(selection: &PcrSelection) -> PcrSelection {
    selection
        .iter()
        .next()
        .and_then(|(bank, set)| set.iter().next().map(|&i| (bank, i)))
        .and_then(|(bank, index)| PcrSelection::new().with(bank, &[index]).ok())
        .unwrap_or_else(|| selection.clone())
}
