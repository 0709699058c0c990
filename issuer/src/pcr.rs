//! PCR selections and values as the issuer sees them.

use std::collections::{BTreeMap, BTreeSet};

use crate::tpm::HashAlg;

/// PCR values: bank → PCR index → digest.
///
/// Used for quoted values, event-log replays and policy references alike, so
/// they compare directly.
pub type PcrValues = BTreeMap<HashAlg, BTreeMap<u32, Vec<u8>>>;

/// A PCR selection: bank → PCR indexes (ordered; the order of a quote's
/// pcrDigest is bank order of the TPML_PCR_SELECTION, then ascending index).
pub type PcrSelectionSet = Vec<(HashAlg, BTreeSet<u32>)>;
