//! The file formats tpm2-tools reads and writes, so admins can feed
//! `tpm2_quote`, `tpm2_createak` and `tpm2_createek` output to the issuer CLI.

use std::collections::BTreeMap;

use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey as SpkiKey;
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::pcr::PcrValues;
use crate::tpm::{PcrSelection, TpmParseError, TpmtPublic};

/// Why a tpm2-tools file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Tpm2ToolsError {
    /// The PCR file matches neither the "serialized" nor the "values" layout.
    #[error(
        "PCR file of {len} bytes is neither tpm2-tools' serialized format (132 + 4 + n × 532 bytes) nor the \
         values format for {selection} ({expected} bytes)"
    )]
    PcrFileSize {
        /// File size.
        len: usize,
        /// The quote's selection.
        selection: String,
        /// Size of the values layout for that selection.
        expected: usize,
    },
    /// A serialized PCR file is internally inconsistent.
    #[error("serialized PCR file: {0}")]
    PcrFileInvalid(String),
    /// A serialized PCR file was made for another selection.
    #[error(
        "PCR file covers {file} but the quote covers {quote}; is it the PCR file of another quote?"
    )]
    PcrFileSelection {
        /// The file's selection.
        file: String,
        /// The quote's selection.
        quote: String,
    },
    /// A public key file is neither TPM2B_PUBLIC, TPMT_PUBLIC nor PEM.
    #[error("{what} is not a TPM2B_PUBLIC, TPMT_PUBLIC or PEM public key: {reason}")]
    PublicKey {
        /// Which input.
        what: &'static str,
        /// Why.
        reason: String,
    },
}

const SERIALIZED_SELECTION_BYTES: usize = 4 + 16 * 8;
const SERIALIZED_DIGEST_LIST_BYTES: usize = 4 + 8 * (2 + 64);

/// Reads a PCR file written by `tpm2_quote -o` / `tpm2_pcrread -o` for a
/// quote over `selection`.
///
/// Two layouts exist: "serialized" (tpm2-tools' in-memory TPML_PCR_SELECTION
/// and TPML_DIGEST structs, little-endian, with padding) and "values" (the
/// digests concatenated in selection order). The serialized file names its
/// own selection, which must equal the quote's.
pub fn parse_pcr_file(bytes: &[u8], selection: &PcrSelection) -> Result<PcrValues, Tpm2ToolsError> {
    let values_len: usize = selection.iter().map(|(bank, _)| bank.digest_len()).sum();
    let serialized = bytes.len() >= SERIALIZED_SELECTION_BYTES + 4
        && (bytes.len() - SERIALIZED_SELECTION_BYTES - 4)
            .is_multiple_of(SERIALIZED_DIGEST_LIST_BYTES);
    if serialized && bytes.len() != values_len {
        return parse_serialized(bytes, selection);
    }
    if bytes.len() == values_len {
        let mut values: PcrValues = BTreeMap::new();
        let mut rest = bytes;
        for (bank, pcr) in selection.iter() {
            let (value, tail) = rest.split_at(bank.digest_len());
            values.entry(bank).or_default().insert(pcr, value.to_vec());
            rest = tail;
        }
        return Ok(values);
    }
    Err(Tpm2ToolsError::PcrFileSize {
        len: bytes.len(),
        selection: selection.to_tpm2_tools_string(),
        expected: values_len,
    })
}

fn le_u32(bytes: &[u8], at: usize) -> Option<u32> {
    bytes
        .get(at..at + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn le_u16(bytes: &[u8], at: usize) -> Option<u16> {
    bytes
        .get(at..at + 2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
}

fn parse_serialized(
    bytes: &[u8],
    quote_selection: &PcrSelection,
) -> Result<PcrValues, Tpm2ToolsError> {
    let invalid = |reason: String| Tpm2ToolsError::PcrFileInvalid(reason);
    let count =
        le_u32(bytes, 0).ok_or_else(|| invalid("truncated selection count".into()))? as usize;
    if count > 16 {
        return Err(invalid(format!("selection count {count} exceeds 16")));
    }
    // Rebuild the file's selection as a big-endian TPML_PCR_SELECTION and
    // parse it with the strict parser.
    let mut tpml = (count as u32).to_be_bytes().to_vec();
    for i in 0..count {
        let at = 4 + i * 8;
        let hash = le_u16(bytes, at).ok_or_else(|| invalid("truncated selection".into()))?;
        let size = *bytes
            .get(at + 2)
            .ok_or_else(|| invalid("truncated selection".into()))?;
        if size > 4 {
            return Err(invalid(format!("sizeofSelect {size} exceeds 4")));
        }
        let bitmap = bytes
            .get(at + 3..at + 3 + usize::from(size))
            .ok_or_else(|| invalid("truncated selection".into()))?;
        tpml.extend_from_slice(&hash.to_be_bytes());
        tpml.push(size);
        tpml.extend_from_slice(bitmap);
    }
    let file_selection = PcrSelection::from_bytes(&tpml)
        .map_err(|e: TpmParseError| invalid(format!("selection: {e}")))?;
    if file_selection != *quote_selection {
        return Err(Tpm2ToolsError::PcrFileSelection {
            file: file_selection.to_tpm2_tools_string(),
            quote: quote_selection.to_tpm2_tools_string(),
        });
    }
    let lists = le_u32(bytes, SERIALIZED_SELECTION_BYTES)
        .ok_or_else(|| invalid("truncated digest count".into()))? as usize;
    let expected_len = SERIALIZED_SELECTION_BYTES + 4 + lists * SERIALIZED_DIGEST_LIST_BYTES;
    if bytes.len() != expected_len {
        return Err(invalid(format!(
            "{lists} digest lists need {expected_len} bytes, file has {}",
            bytes.len()
        )));
    }
    let mut digests = Vec::new();
    for list in 0..lists {
        let at = SERIALIZED_SELECTION_BYTES + 4 + list * SERIALIZED_DIGEST_LIST_BYTES;
        let n = le_u32(bytes, at).ok_or_else(|| invalid("truncated digest list".into()))? as usize;
        if n > 8 {
            return Err(invalid(format!(
                "digest list {list} has {n} entries, at most 8"
            )));
        }
        for slot in 0..n {
            let d = at + 4 + slot * 66;
            let size =
                usize::from(le_u16(bytes, d).ok_or_else(|| invalid("truncated digest".into()))?);
            let value = bytes
                .get(d + 2..d + 2 + size)
                .filter(|_| size <= 64)
                .ok_or_else(|| invalid(format!("digest size {size} in list {list}")))?;
            digests.push(value.to_vec());
        }
    }
    if digests.len() != quote_selection.len() {
        return Err(invalid(format!(
            "{} digests for {} selected PCRs",
            digests.len(),
            quote_selection.len()
        )));
    }
    let mut values: PcrValues = BTreeMap::new();
    for ((bank, pcr), value) in quote_selection.iter().zip(digests) {
        if value.len() != bank.digest_len() {
            return Err(invalid(format!("{bank}:{pcr} has {} bytes", value.len())));
        }
        values.entry(bank).or_default().insert(pcr, value);
    }
    Ok(values)
}

/// Reads a public key as tpm2-tools writes it: TPM2B_PUBLIC (the default
/// "tss" format), a bare TPMT_PUBLIC, or a PEM SubjectPublicKeyInfo.
///
/// A PEM key carries no TPM attributes; `pem_template` says how to complete
/// it into a TPMT_PUBLIC (see [`PemTemplate`]).
pub fn load_public(
    bytes: &[u8],
    what: &'static str,
    pem_template: PemTemplate,
) -> Result<TpmtPublic, Tpm2ToolsError> {
    if bytes.starts_with(b"-----BEGIN") {
        return public_from_pem(bytes, what, pem_template);
    }
    match TpmtPublic::from_tpm2b(bytes) {
        Ok(public) => Ok(public),
        Err(tpm2b_error) => TpmtPublic::from_tpmt(bytes).map_err(|_| Tpm2ToolsError::PublicKey {
            what,
            reason: tpm2b_error.to_string(),
        }),
    }
}

/// How to complete a PEM public key into a TPMT_PUBLIC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PemTemplate {
    /// The TCG default EK template (L-1 RSA 2048 / L-2 ECC P-256): what
    /// `tpm2_makecredential -G rsa|ecc` assumes for a PEM EK.
    Ek,
    /// A signing key with no fixed scheme: enough to verify signatures.
    Signing,
}

/// The TCG EK policy A: PolicySecret(TPM_RH_ENDORSEMENT).
const EK_POLICY_A_SHA256: [u8; 32] = [
    0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xB3, 0xF8, 0x1A, 0x90, 0xCC, 0x8D, 0x46, 0xA5, 0xD7, 0x24,
    0xFD, 0x52, 0xD7, 0x6E, 0x06, 0x52, 0x0B, 0x64, 0xF2, 0xA1, 0xDA, 0x1B, 0x33, 0x14, 0x69, 0xAA,
];

fn public_from_pem(
    bytes: &[u8],
    what: &'static str,
    template: PemTemplate,
) -> Result<TpmtPublic, Tpm2ToolsError> {
    let error = |reason: String| Tpm2ToolsError::PublicKey { what, reason };
    let (_, pem) =
        x509_parser::pem::parse_x509_pem(bytes).map_err(|e| error(format!("PEM: {e}")))?;
    if pem.label != "PUBLIC KEY" {
        return Err(error(format!(
            "PEM label is {:?}, expected \"PUBLIC KEY\"",
            pem.label
        )));
    }
    let (_, spki) = SubjectPublicKeyInfo::from_der(&pem.contents)
        .map_err(|e| error(format!("SubjectPublicKeyInfo: {e}")))?;
    let key = spki.parsed().map_err(|e| error(format!("key: {e}")))?;
    let (ek_attributes, signing_attributes) = (0x0003_00B2u32, 0x0004_0072u32);
    let attributes = match template {
        PemTemplate::Ek => ek_attributes,
        PemTemplate::Signing => signing_attributes,
    };
    let mut t = Vec::new();
    match key {
        SpkiKey::RSA(rsa) => {
            let modulus: Vec<u8> = rsa
                .modulus
                .iter()
                .copied()
                .skip_while(|&b| b == 0)
                .collect();
            let exponent = rsa
                .try_exponent()
                .map_err(|e| error(format!("RSA exponent: {e}")))?;
            let exponent = u32::try_from(exponent)
                .map_err(|_| error("RSA exponent does not fit 32 bits".into()))?;
            let bits = u16::try_from(modulus.len() * 8)
                .map_err(|_| error("RSA modulus too large".into()))?;
            t.extend_from_slice(&0x0001u16.to_be_bytes());
            t.extend_from_slice(&0x000Bu16.to_be_bytes());
            t.extend_from_slice(&attributes.to_be_bytes());
            push_policy(&mut t, template);
            push_symmetric(&mut t, template);
            t.extend_from_slice(&0x0010u16.to_be_bytes()); // scheme NULL
            t.extend_from_slice(&bits.to_be_bytes());
            t.extend_from_slice(&(if exponent == 65_537 { 0 } else { exponent }).to_be_bytes());
            push_tpm2b(&mut t, &modulus).map_err(error)?;
        }
        SpkiKey::EC(point) => {
            let curve_oid = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|oid| oid.to_id_string())
                .unwrap_or_default();
            let (curve, len) = match curve_oid.as_str() {
                "1.2.840.10045.3.1.7" => (0x0003u16, 32usize),
                "1.3.132.0.34" => (0x0004, 48),
                other => return Err(error(format!("EC curve {other:?} is not P-256 or P-384"))),
            };
            let data = point.data();
            if data.len() != 1 + 2 * len || data.first() != Some(&4) {
                return Err(error(
                    "EC point is not an uncompressed point on its curve".into(),
                ));
            }
            t.extend_from_slice(&0x0023u16.to_be_bytes());
            t.extend_from_slice(&0x000Bu16.to_be_bytes());
            t.extend_from_slice(&attributes.to_be_bytes());
            push_policy(&mut t, template);
            push_symmetric(&mut t, template);
            t.extend_from_slice(&0x0010u16.to_be_bytes()); // scheme NULL
            t.extend_from_slice(&curve.to_be_bytes());
            t.extend_from_slice(&0x0010u16.to_be_bytes()); // kdf NULL
            push_tpm2b(&mut t, &data[1..=len]).map_err(error)?;
            push_tpm2b(&mut t, &data[1 + len..]).map_err(error)?;
        }
        _ => return Err(error("only RSA and EC keys are supported".into())),
    }
    TpmtPublic::from_tpmt(&t).map_err(|e| error(e.to_string()))
}

fn push_policy(t: &mut Vec<u8>, template: PemTemplate) {
    match template {
        PemTemplate::Ek => {
            t.extend_from_slice(&32u16.to_be_bytes());
            t.extend_from_slice(&EK_POLICY_A_SHA256);
        }
        PemTemplate::Signing => t.extend_from_slice(&0u16.to_be_bytes()),
    }
}

fn push_symmetric(t: &mut Vec<u8>, template: PemTemplate) {
    match template {
        // AES-128-CFB, as the TCG default EK templates.
        PemTemplate::Ek => {
            t.extend_from_slice(&0x0006u16.to_be_bytes());
            t.extend_from_slice(&128u16.to_be_bytes());
            t.extend_from_slice(&0x0043u16.to_be_bytes());
        }
        PemTemplate::Signing => t.extend_from_slice(&0x0010u16.to_be_bytes()),
    }
}

fn push_tpm2b(t: &mut Vec<u8>, bytes: &[u8]) -> Result<(), String> {
    let len = u16::try_from(bytes.len()).map_err(|_| "field longer than 65535 bytes".to_owned())?;
    t.extend_from_slice(&len.to_be_bytes());
    t.extend_from_slice(bytes);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tpm::HashAlg;

    fn selection() -> PcrSelection {
        PcrSelection::from_bytes(&[0, 0, 0, 1, 0x00, 0x0B, 3, 0x03, 0, 0]).unwrap()
    }

    #[test]
    fn values_format_splits_in_selection_order() {
        let mut bytes = vec![1u8; 32];
        bytes.extend_from_slice(&[2u8; 32]);
        let values = parse_pcr_file(&bytes, &selection()).unwrap();
        assert_eq!(values[&HashAlg::Sha256][&0], vec![1u8; 32]);
        assert_eq!(values[&HashAlg::Sha256][&1], vec![2u8; 32]);
    }

    #[test]
    fn wrong_size_names_both_layouts() {
        let err = parse_pcr_file(&[0u8; 10], &selection()).unwrap_err();
        assert!(
            err.to_string().contains("serialized") && err.to_string().contains("64 bytes"),
            "{err}"
        );
    }
}
