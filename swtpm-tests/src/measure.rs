//! Extends a simulated boot into a real TPM's PCRs.

use tss_esapi::Context;
use tss_esapi::handles::PcrHandle;
use tss_esapi::interface_types::algorithm::HashingAlgorithm;
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::{Digest, DigestValues};

use crate::boot::{Bank, BootLog};

/// Why extending failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MeasureError {
    /// The PCR index has no handle.
    #[error("PCR {0} cannot be extended (only 0 to 23 exist)")]
    BadPcr(u32),
    /// A digest does not fit its bank.
    #[error("digest for PCR {pcr} is not a valid {bank:?} digest: {reason}")]
    BadDigest {
        /// The PCR.
        pcr: u32,
        /// The bank.
        bank: Bank,
        /// What the TSS said.
        reason: String,
    },
    /// TPM2_PCR_Extend failed.
    #[error("TPM2_PCR_Extend of PCR {pcr} failed: {source}")]
    Extend {
        /// The PCR.
        pcr: u32,
        /// The TSS error.
        #[source]
        source: tss_esapi::Error,
    },
}

fn hashing_algorithm(bank: Bank) -> HashingAlgorithm {
    match bank {
        Bank::Sha1 => HashingAlgorithm::Sha1,
        Bank::Sha256 => HashingAlgorithm::Sha256,
    }
}

fn pcr_handle(pcr: u32) -> Result<PcrHandle, MeasureError> {
    const HANDLES: [PcrHandle; 24] = [
        PcrHandle::Pcr0,
        PcrHandle::Pcr1,
        PcrHandle::Pcr2,
        PcrHandle::Pcr3,
        PcrHandle::Pcr4,
        PcrHandle::Pcr5,
        PcrHandle::Pcr6,
        PcrHandle::Pcr7,
        PcrHandle::Pcr8,
        PcrHandle::Pcr9,
        PcrHandle::Pcr10,
        PcrHandle::Pcr11,
        PcrHandle::Pcr12,
        PcrHandle::Pcr13,
        PcrHandle::Pcr14,
        PcrHandle::Pcr15,
        PcrHandle::Pcr16,
        PcrHandle::Pcr17,
        PcrHandle::Pcr18,
        PcrHandle::Pcr19,
        PcrHandle::Pcr20,
        PcrHandle::Pcr21,
        PcrHandle::Pcr22,
        PcrHandle::Pcr23,
    ];
    usize::try_from(pcr)
        .ok()
        .and_then(|i| HANDLES.get(i).copied())
        .ok_or(MeasureError::BadPcr(pcr))
}

/// Extends one PCR with one digest per bank, as firmware does for one event.
pub fn extend(
    ctx: &mut Context,
    pcr: u32,
    digests: &[(Bank, Vec<u8>)],
) -> Result<(), MeasureError> {
    let handle = pcr_handle(pcr)?;
    let mut values = DigestValues::new();
    for (bank, digest) in digests {
        let digest = Digest::try_from(digest.clone()).map_err(|e| MeasureError::BadDigest {
            pcr,
            bank: *bank,
            reason: e.to_string(),
        })?;
        values.set(hashing_algorithm(*bank), digest);
    }
    ctx.execute_with_session(Some(AuthSession::Password), |ctx| {
        ctx.pcr_extend(handle, values)
    })
    .map_err(|source| MeasureError::Extend { pcr, source })
}

/// Extends every measured event of `log` into the TPM, in log order.
pub fn extend_boot(ctx: &mut Context, log: &BootLog) -> Result<(), MeasureError> {
    for event in log.events() {
        extend(ctx, event.pcr, &event.digests)?;
    }
    Ok(())
}

/// Extends `pcr` in both banks with the hash of `data`: what a tampered
/// component (an unexpected driver, a patched kernel) does to a host.
pub fn extend_data(ctx: &mut Context, pcr: u32, data: &[u8]) -> Result<(), MeasureError> {
    let digests: Vec<_> = Bank::ALL
        .iter()
        .map(|&bank| (bank, bank.digest(data)))
        .collect();
    extend(ctx, pcr, &digests)
}
