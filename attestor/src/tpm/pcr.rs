//! PCR banks, selections and values, independent of the TSS types.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use sha2::{Digest as _, Sha256};
use tss_esapi::interface_types::algorithm::HashingAlgorithm;
use tss_esapi::structures::{
    PcrSelectSize, PcrSelection as TssPcrSelection, PcrSelectionList, PcrSlot,
};
use tss_esapi::tss2_esys::TPML_PCR_SELECTION;

use super::TpmError;

/// The number of PCRs a PC-client TPM has in each bank.
pub const PCR_COUNT: u8 = 24;

/// A PCR bank: the hash algorithm its PCRs use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum PcrBank {
    /// SHA-1 (TPM_ALG_SHA1, 0x0004).
    Sha1,
    /// SHA-256 (TPM_ALG_SHA256, 0x000B).
    Sha256,
    /// SHA-384 (TPM_ALG_SHA384, 0x000C).
    Sha384,
}

impl PcrBank {
    /// The TPM_ALG_ID of the bank's hash.
    pub fn tpm_alg_id(self) -> u16 {
        match self {
            PcrBank::Sha1 => 0x0004,
            PcrBank::Sha256 => 0x000B,
            PcrBank::Sha384 => 0x000C,
        }
    }

    /// Digest size in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            PcrBank::Sha1 => 20,
            PcrBank::Sha256 => 32,
            PcrBank::Sha384 => 48,
        }
    }

    /// The lowercase name used in selections and JSON (`sha1`, `sha256`, `sha384`).
    pub fn name(self) -> &'static str {
        match self {
            PcrBank::Sha1 => "sha1",
            PcrBank::Sha256 => "sha256",
            PcrBank::Sha384 => "sha384",
        }
    }

    pub(crate) fn hashing_algorithm(self) -> HashingAlgorithm {
        match self {
            PcrBank::Sha1 => HashingAlgorithm::Sha1,
            PcrBank::Sha256 => HashingAlgorithm::Sha256,
            PcrBank::Sha384 => HashingAlgorithm::Sha384,
        }
    }
}

impl fmt::Display for PcrBank {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for PcrBank {
    type Err = TpmError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sha1" => Ok(PcrBank::Sha1),
            "sha256" => Ok(PcrBank::Sha256),
            "sha384" => Ok(PcrBank::Sha384),
            other => Err(TpmError::InvalidInput {
                field: "PCR bank",
                reason: format!("expected sha1, sha256 or sha384, got {other:?}"),
            }),
        }
    }
}

/// Which PCRs of which banks an operation covers.
///
/// Banks are kept in a fixed order (SHA-1, SHA-256, SHA-384) and indexes
/// ascending, so the TPML_PCR_SELECTION sent to the TPM — and therefore the
/// order of PCR values in a quote's digest — is deterministic.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PcrSelection {
    banks: BTreeMap<PcrBank, BTreeSet<u8>>,
}

impl PcrSelection {
    /// An empty selection.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds PCR `indexes` of `bank`; refuses indexes ≥ 24.
    pub fn with(mut self, bank: PcrBank, indexes: &[u8]) -> Result<Self, TpmError> {
        let set = self.banks.entry(bank).or_default();
        for &index in indexes {
            if index >= PCR_COUNT {
                return Err(TpmError::InvalidInput {
                    field: "PCR index",
                    reason: format!("{index} is out of range; PCRs are numbered 0 to 23"),
                });
            }
            set.insert(index);
        }
        Ok(self)
    }

    /// The boot PCRs Rootmark binds keys to by default: SHA-256 PCRs 0, 2, 4 and 7
    /// (firmware, option ROM code, boot loader, secure boot policy).
    pub fn default_boot() -> Self {
        let mut banks = BTreeMap::new();
        banks.insert(PcrBank::Sha256, BTreeSet::from([0, 2, 4, 7]));
        Self { banks }
    }

    /// Iterates over (bank, ascending indexes), banks in fixed order, skipping empty banks.
    pub fn iter(&self) -> impl Iterator<Item = (PcrBank, &BTreeSet<u8>)> {
        self.banks
            .iter()
            .filter(|(_, set)| !set.is_empty())
            .map(|(bank, set)| (*bank, set))
    }

    /// True when nothing is selected.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// The number of (bank, PCR) pairs selected.
    pub fn len(&self) -> usize {
        self.iter().map(|(_, set)| set.len()).sum()
    }

    /// The selection marshalled as a TPML_PCR_SELECTION (big-endian, sizeofSelect 3).
    pub fn to_tpml_bytes(&self) -> Vec<u8> {
        let banks: Vec<_> = self.iter().collect();
        let mut out = Vec::with_capacity(4 + banks.len() * 6);
        out.extend_from_slice(&(banks.len() as u32).to_be_bytes());
        for (bank, set) in banks {
            out.extend_from_slice(&bank.tpm_alg_id().to_be_bytes());
            out.push(3);
            let mut bitmap = [0u8; 3];
            for &index in set {
                bitmap[usize::from(index / 8)] |= 1 << (index % 8);
            }
            out.extend_from_slice(&bitmap);
        }
        out
    }

    /// Splits the selection into chunks of at most `max` PCRs each, because
    /// TPM2_PCR_Read returns at most eight digests per call.
    pub(crate) fn chunks(&self, max: usize) -> Vec<PcrSelection> {
        let mut chunks = Vec::new();
        let mut current = PcrSelection::new();
        let mut count = 0;
        for (bank, set) in self.iter() {
            for &index in set {
                if count == max {
                    chunks.push(std::mem::take(&mut current));
                    count = 0;
                }
                current.banks.entry(bank).or_default().insert(index);
                count += 1;
            }
        }
        if count > 0 {
            chunks.push(current);
        }
        chunks
    }

    pub(crate) fn to_tss(&self) -> Result<PcrSelectionList, TpmError> {
        let mut raw = TPML_PCR_SELECTION::default();
        for (bank, set) in self.iter() {
            let slots = set
                .iter()
                .map(|&index| {
                    PcrSlot::try_from(1u32 << index).map_err(|_| TpmError::InvalidInput {
                        field: "PCR index",
                        reason: format!("{index} is not a PCR slot"),
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let selection = TssPcrSelection::create(
                bank.hashing_algorithm(),
                PcrSelectSize::ThreeOctets,
                &slots,
            )
            .map_err(|e| TpmError::InvalidInput {
                field: "PCR selection",
                reason: e.to_string(),
            })?;
            let slot = raw
                .pcrSelections
                .get_mut(raw.count as usize)
                .ok_or_else(|| TpmError::InvalidInput {
                    field: "PCR selection",
                    reason: "too many banks".to_owned(),
                })?;
            *slot = selection.into();
            raw.count += 1;
        }
        PcrSelectionList::try_from(raw).map_err(|e| TpmError::InvalidInput {
            field: "PCR selection",
            reason: e.to_string(),
        })
    }
}

impl fmt::Display for PcrSelection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (bank, set) in self.iter() {
            if !first {
                f.write_str("+")?;
            }
            first = false;
            write!(f, "{bank}:")?;
            let list: Vec<String> = set.iter().map(u8::to_string).collect();
            f.write_str(&list.join(","))?;
        }
        Ok(())
    }
}

impl FromStr for PcrSelection {
    type Err = TpmError;

    /// Parses the tpm2-tools syntax, e.g. `sha256:0,2,4,7+sha1:0`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut selection = PcrSelection::new();
        for part in s.split('+').filter(|p| !p.is_empty()) {
            let (bank, list) = part.split_once(':').ok_or_else(|| TpmError::InvalidInput {
                field: "PCR selection",
                reason: format!("expected BANK:INDEX,INDEX… (e.g. sha256:0,2,4,7), got {part:?}"),
            })?;
            let bank: PcrBank = bank.parse()?;
            let indexes = list
                .split(',')
                .map(|i| {
                    i.trim().parse::<u8>().map_err(|_| TpmError::InvalidInput {
                        field: "PCR index",
                        reason: format!("expected a number from 0 to 23, got {i:?}"),
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            selection = selection.with(bank, &indexes)?;
        }
        if selection.is_empty() {
            return Err(TpmError::InvalidInput {
                field: "PCR selection",
                reason: "no PCR selected".to_owned(),
            });
        }
        Ok(selection)
    }
}

/// PCR values per bank and index.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PcrValues {
    /// bank → PCR index → digest.
    pub banks: BTreeMap<PcrBank, BTreeMap<u8, Vec<u8>>>,
}

impl PcrValues {
    /// The value of one PCR, if it was read.
    pub fn get(&self, bank: PcrBank, index: u8) -> Option<&[u8]> {
        self.banks.get(&bank)?.get(&index).map(Vec::as_slice)
    }

    /// Concatenation of the values in `selection` order, as hashed into a
    /// quote's pcrDigest and a PolicyPCR digest. Fails if a value is missing.
    pub fn concatenated(&self, selection: &PcrSelection) -> Result<Vec<u8>, TpmError> {
        let mut out = Vec::new();
        for (bank, set) in selection.iter() {
            for &index in set {
                let value = self
                    .get(bank, index)
                    .ok_or_else(|| TpmError::InvalidInput {
                        field: "PCR values",
                        reason: format!("no value for {bank}:{index}"),
                    })?;
                out.extend_from_slice(value);
            }
        }
        Ok(out)
    }
}

/// The command code of TPM2_PolicyPCR.
const TPM_CC_POLICY_PCR: u32 = 0x0000_017F;

/// Computes, in software, the SHA-256 policy digest that `TPM2_PolicyPCR`
/// produces over `selection` with the given current `values`, starting from an
/// empty policy: `H(0…0 ‖ TPM_CC_PolicyPCR ‖ TPML_PCR_SELECTION ‖ H(values))`.
pub fn policy_pcr_digest(
    selection: &PcrSelection,
    values: &PcrValues,
) -> Result<[u8; 32], TpmError> {
    let pcr_digest = Sha256::digest(values.concatenated(selection)?);
    let mut hasher = Sha256::new();
    hasher.update([0u8; 32]);
    hasher.update(TPM_CC_POLICY_PCR.to_be_bytes());
    hasher.update(selection.to_tpml_bytes());
    hasher.update(pcr_digest);
    Ok(hasher.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_parses_tpm2_tools_syntax_in_fixed_order() {
        let sel: PcrSelection = "sha256:7,0,4+sha1:0".parse().unwrap();
        assert_eq!(sel.to_string(), "sha1:0+sha256:0,4,7");
        assert_eq!(sel.len(), 4);
    }

    #[test]
    fn selection_refuses_out_of_range_index_by_name() {
        let err = "sha256:24".parse::<PcrSelection>().unwrap_err();
        assert!(err.to_string().contains("PCR index"), "{err}");
        let err = "md5:1".parse::<PcrSelection>().unwrap_err();
        assert!(err.to_string().contains("PCR bank"), "{err}");
    }

    #[test]
    fn tpml_marshalling_matches_spec_layout() {
        let sel = PcrSelection::default_boot();
        // count=1, alg=0x000B, sizeofSelect=3, bitmap: PCR0,2,4,7 → 0b1001_0101
        assert_eq!(
            sel.to_tpml_bytes(),
            vec![0, 0, 0, 1, 0x00, 0x0B, 3, 0x95, 0x00, 0x00]
        );
    }

    #[test]
    fn chunks_cover_selection_with_at_most_max_each() {
        let sel = PcrSelection::new()
            .with(PcrBank::Sha1, &(0..10).collect::<Vec<_>>())
            .unwrap()
            .with(PcrBank::Sha256, &(0..10).collect::<Vec<_>>())
            .unwrap();
        let chunks = sel.chunks(8);
        assert_eq!(chunks.len(), 3);
        assert!(chunks.iter().all(|c| c.len() <= 8));
        assert_eq!(chunks.iter().map(PcrSelection::len).sum::<usize>(), 20);
    }
}
