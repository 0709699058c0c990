//! TPMS_ATTEST: the structure a TPM signs for TPM2_Quote and TPM2_Certify.

use std::collections::BTreeSet;

use super::HashAlg;
use super::reader::{Reader, TpmParseError};

/// TPM_GENERATED_VALUE: every TPMS_ATTEST the TPM produces starts with it, and
/// a restricted key signs nothing that does not.
pub const TPM_GENERATED_VALUE: u32 = 0xff54_4347;
/// TPM_ST_ATTEST_CERTIFY.
pub const TPM_ST_ATTEST_CERTIFY: u16 = 0x8017;
/// TPM_ST_ATTEST_QUOTE.
pub const TPM_ST_ATTEST_QUOTE: u16 = 0x8018;

/// Names are a hash algorithm id plus a digest (or a 4-byte handle).
const MAX_NAME_BYTES: usize = 2 + 64;
/// extraData is at most the size of the largest digest.
const MAX_EXTRA_DATA_BYTES: usize = 64;

/// TPMS_CLOCK_INFO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockInfo {
    /// Milliseconds the TPM has been powered since it was last cleared.
    pub clock: u64,
    /// TPM2_Startup(CLEAR) count since the last TPM2_Clear: a reboot.
    pub reset_count: u32,
    /// TPM2_Startup(STATE) or TPM resume count since the last reset.
    pub restart_count: u32,
    /// Whether `clock` has not gone backwards since it was last safe.
    pub safe: bool,
}

/// A TPML_PCR_SELECTION.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PcrSelection {
    /// Banks in the order the TPM listed them, each with its selected PCRs.
    pub banks: Vec<(HashAlg, BTreeSet<u32>)>,
}

impl PcrSelection {
    /// The maximum number of banks a TPML_PCR_SELECTION may list.
    pub const MAX_BANKS: usize = 16;

    /// Reads a TPML_PCR_SELECTION. Unknown hash algorithms are refused: a
    /// digest over PCRs the issuer cannot name cannot be checked.
    pub fn read(r: &mut Reader<'_>) -> Result<Self, TpmParseError> {
        let count_offset = r.offset();
        let count = r.u32("pcrSelect.count")?;
        if count as usize > Self::MAX_BANKS {
            return Err(r.invalid_at(
                count_offset,
                "pcrSelect.count",
                format!("{count} banks, at most 16 allowed"),
            ));
        }
        let mut banks: Vec<(HashAlg, BTreeSet<u32>)> = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let hash_offset = r.offset();
            let hash_id = r.u16("pcrSelect.hash")?;
            let hash = HashAlg::from_tpm_alg_id(hash_id).ok_or_else(|| {
                r.invalid_at(
                    hash_offset,
                    "pcrSelect.hash",
                    format!("unsupported PCR bank {hash_id:#06x}"),
                )
            })?;
            if banks.iter().any(|(bank, _)| *bank == hash) {
                return Err(r.invalid_at(
                    hash_offset,
                    "pcrSelect.hash",
                    format!("bank {hash} listed twice"),
                ));
            }
            let size_offset = r.offset();
            let size = r.u8("pcrSelect.sizeofSelect")?;
            if size == 0 || size > 4 {
                return Err(r.invalid_at(
                    size_offset,
                    "pcrSelect.sizeofSelect",
                    format!("{size}, expected 1 to 4"),
                ));
            }
            let bitmap = r.bytes(usize::from(size), "pcrSelect.pcrSelect")?;
            let mut pcrs = BTreeSet::new();
            for (byte_index, byte) in bitmap.iter().enumerate() {
                for bit in 0..8u32 {
                    if byte & (1 << bit) != 0 {
                        pcrs.insert(byte_index as u32 * 8 + bit);
                    }
                }
            }
            banks.push((hash, pcrs));
        }
        Ok(Self { banks })
    }

    /// Parses a marshalled TPML_PCR_SELECTION, refusing trailing bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TpmParseError> {
        let mut r = Reader::new(bytes, "TPML_PCR_SELECTION");
        let selection = Self::read(&mut r)?;
        r.finish()?;
        Ok(selection)
    }

    /// (bank, PCR) pairs in digest order: banks as listed, PCRs ascending.
    pub fn iter(&self) -> impl Iterator<Item = (HashAlg, u32)> + '_ {
        self.banks
            .iter()
            .flat_map(|(bank, pcrs)| pcrs.iter().map(move |&pcr| (*bank, pcr)))
    }

    /// Number of selected PCRs over all banks.
    pub fn len(&self) -> usize {
        self.banks.iter().map(|(_, pcrs)| pcrs.len()).sum()
    }

    /// True if no PCR is selected.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The tpm2-tools spelling, e.g. `sha1:0,1+sha256:0,2,4,7`.
    pub fn to_tpm2_tools_string(&self) -> String {
        self.banks
            .iter()
            .map(|(bank, pcrs)| {
                let list: Vec<String> = pcrs.iter().map(u32::to_string).collect();
                format!("{bank}:{}", list.join(","))
            })
            .collect::<Vec<_>>()
            .join("+")
    }
}

/// The type-specific body of a TPMS_ATTEST.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttestBody {
    /// TPMS_QUOTE_INFO.
    Quote {
        /// The quoted PCRs.
        selection: PcrSelection,
        /// Hash (with the signing scheme's hash) of the selected PCR values.
        pcr_digest: Vec<u8>,
    },
    /// TPMS_CERTIFY_INFO.
    Certify {
        /// Name of the certified object.
        name: Vec<u8>,
        /// Qualified name of the certified object.
        qualified_name: Vec<u8>,
    },
    /// Any other attestation type, kept as its TPM_ST value.
    Other(u16),
}

/// A parsed TPMS_ATTEST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TpmsAttest {
    /// Must be [`TPM_GENERATED_VALUE`]; checked by the verifier, not the parser,
    /// so the verdict can name it.
    pub magic: u32,
    /// The TPM_ST attestation type.
    pub attest_type: u16,
    /// Qualified name of the signing key.
    pub qualified_signer: Vec<u8>,
    /// The caller's qualifying data (the issuer's nonce).
    pub extra_data: Vec<u8>,
    /// The TPM's clock state.
    pub clock_info: ClockInfo,
    /// Vendor firmware version.
    pub firmware_version: u64,
    /// The attested information.
    pub body: AttestBody,
}

impl TpmsAttest {
    /// Parses a TPMS_ATTEST, refusing trailing bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TpmParseError> {
        let mut r = Reader::new(bytes, "TPMS_ATTEST");
        let magic = r.u32("magic")?;
        let attest_type = r.u16("type")?;
        let qualified_signer = r.tpm2b("qualifiedSigner", MAX_NAME_BYTES)?.to_vec();
        let extra_data = r.tpm2b("extraData", MAX_EXTRA_DATA_BYTES)?.to_vec();
        let clock = r.u64("clockInfo.clock")?;
        let reset_count = r.u32("clockInfo.resetCount")?;
        let restart_count = r.u32("clockInfo.restartCount")?;
        let safe_offset = r.offset();
        let safe = match r.u8("clockInfo.safe")? {
            0 => false,
            1 => true,
            other => {
                return Err(r.invalid_at(
                    safe_offset,
                    "clockInfo.safe",
                    format!("{other}, expected 0 or 1"),
                ));
            }
        };
        let firmware_version = r.u64("firmwareVersion")?;
        let body = match attest_type {
            TPM_ST_ATTEST_QUOTE => {
                let selection = PcrSelection::read(&mut r)?;
                let pcr_digest = r.tpm2b("attested.quote.pcrDigest", 64)?.to_vec();
                AttestBody::Quote {
                    selection,
                    pcr_digest,
                }
            }
            TPM_ST_ATTEST_CERTIFY => {
                let name = r.tpm2b("attested.certify.name", MAX_NAME_BYTES)?.to_vec();
                let qualified_name = r
                    .tpm2b("attested.certify.qualifiedName", MAX_NAME_BYTES)?
                    .to_vec();
                AttestBody::Certify {
                    name,
                    qualified_name,
                }
            }
            other => {
                // The body of other types is not needed; skip it whole.
                let rest = r.remaining();
                r.bytes(rest, "attested")?;
                AttestBody::Other(other)
            }
        };
        r.finish()?;
        Ok(TpmsAttest {
            magic,
            attest_type,
            qualified_signer,
            extra_data,
            clock_info: ClockInfo {
                clock,
                reset_count,
                restart_count,
                safe,
            },
            firmware_version,
            body,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A quote body over sha256:0,2,4,7 with the given nonce and digest.
    pub(crate) fn sample_quote(nonce: &[u8], digest: &[u8]) -> Vec<u8> {
        let mut a = TPM_GENERATED_VALUE.to_be_bytes().to_vec();
        a.extend_from_slice(&TPM_ST_ATTEST_QUOTE.to_be_bytes());
        a.extend_from_slice(&[0, 2, 0xAA, 0xBB]);
        a.extend_from_slice(&(nonce.len() as u16).to_be_bytes());
        a.extend_from_slice(nonce);
        a.extend_from_slice(&1234u64.to_be_bytes());
        a.extend_from_slice(&5u32.to_be_bytes());
        a.extend_from_slice(&0u32.to_be_bytes());
        a.push(1);
        a.extend_from_slice(&7u64.to_be_bytes());
        a.extend_from_slice(&[0, 0, 0, 1, 0x00, 0x0B, 3, 0x95, 0, 0]);
        a.extend_from_slice(&(digest.len() as u16).to_be_bytes());
        a.extend_from_slice(digest);
        a
    }

    #[test]
    fn quote_body_parses() {
        let bytes = sample_quote(b"nonce", &[9; 32]);
        let attest = TpmsAttest::from_bytes(&bytes).unwrap();
        assert_eq!(attest.magic, TPM_GENERATED_VALUE);
        assert_eq!(attest.extra_data, b"nonce");
        assert_eq!(attest.clock_info.reset_count, 5);
        let AttestBody::Quote {
            selection,
            pcr_digest,
        } = attest.body
        else {
            panic!()
        };
        assert_eq!(selection.to_tpm2_tools_string(), "sha256:0,2,4,7");
        assert_eq!(pcr_digest, vec![9; 32]);
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = sample_quote(b"nonce", &[9; 32]);
        for len in 0..bytes.len() {
            assert!(TpmsAttest::from_bytes(&bytes[..len]).is_err(), "{len}");
        }
    }

    #[test]
    fn duplicate_bank_is_refused() {
        let err = PcrSelection::from_bytes(&[0, 0, 0, 2, 0, 0x0B, 3, 1, 0, 0, 0, 0x0B, 3, 1, 0, 0])
            .unwrap_err();
        assert!(err.to_string().contains("listed twice"), "{err}");
    }
}
