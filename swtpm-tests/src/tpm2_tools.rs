//! Thin wrappers around tpm2-tools, used by tests as independent checkers:
//! the TPM layer's output must satisfy tools that share none of its code.

use std::path::Path;
use std::process::{Command, Output};

/// The result of running a tool: success flag and combined output.
#[derive(Debug)]
pub struct ToolRun {
    /// True if the tool exited 0.
    pub success: bool,
    /// stdout.
    pub stdout: String,
    /// stderr.
    pub stderr: String,
}

/// Runs a tpm2-tools program with `args`.
pub fn run(tool: &str, args: &[&str]) -> std::io::Result<ToolRun> {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(tool).args(args).output()?;
    Ok(ToolRun {
        success: status.success(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    })
}

/// Splits a tpm2-tools credential file (`tpm2_makecredential -o`): magic
/// 0xBADCC0DE, version 1, TPM2B_ID_OBJECT, TPM2B_ENCRYPTED_SECRET. Returns
/// the two payloads without their size prefixes.
pub fn parse_credential_file(bytes: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let (magic, rest) = bytes.split_first_chunk::<4>()?;
    let (version, rest) = rest.split_first_chunk::<4>()?;
    if u32::from_be_bytes(*magic) != 0xBADC_C0DE || u32::from_be_bytes(*version) != 1 {
        return None;
    }
    let (id_object, rest) = split_tpm2b(rest)?;
    let (secret, rest) = split_tpm2b(rest)?;
    rest.is_empty()
        .then(|| (id_object.to_vec(), secret.to_vec()))
}

fn split_tpm2b(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = bytes.split_first_chunk::<2>()?;
    let len = usize::from(u16::from_be_bytes(*len));
    (rest.len() >= len).then(|| rest.split_at(len))
}

/// Parses the YAML `tpm2_pcrread` prints into (bank, pcr, value) triples.
pub fn parse_pcrread(yaml: &str) -> Vec<(String, u32, Vec<u8>)> {
    let mut out = Vec::new();
    let mut bank = None;
    for line in yaml.lines() {
        let trimmed = line.trim();
        if let Some(name) = trimmed.strip_suffix(':') {
            bank = Some(name.to_owned());
            continue;
        }
        let (Some(bank), Some((index, value))) = (&bank, trimmed.split_once(':')) else {
            continue;
        };
        let (Ok(index), Some(hex)) = (index.trim().parse::<u32>(), value.trim().strip_prefix("0x"))
        else {
            continue;
        };
        if let Ok(value) = hex::decode(hex) {
            out.push((bank.clone(), index, value));
        }
    }
    out
}

/// Encodes PCR values in the "serialized" PCR file format `tpm2_quote -o`
/// writes and `tpm2_checkquote -f` reads: the C structs TPML_PCR_SELECTION
/// (16 padded TPMS_PCR_SELECTION slots) and a count of TPML_DIGESTs of up
/// to eight TPM2B_DIGEST (64-byte buffers) each, written raw in host
/// (little-endian) byte order, as tpm2-tools 5.x does.
///
/// `selection` is a marshalled TPML_PCR_SELECTION with 3-byte bitmaps;
/// `values` are the digests in selection order.
pub fn serialized_pcr_file(selection: &[u8], values: &[Vec<u8>]) -> Option<Vec<u8>> {
    let (count, mut rest) = selection.split_first_chunk::<4>()?;
    let count = u32::from_be_bytes(*count);
    if count > 16 {
        return None;
    }
    let mut out = count.to_le_bytes().to_vec();
    for _ in 0..count {
        let (entry, tail) = rest.split_first_chunk::<6>()?;
        rest = tail;
        // hash (2), sizeofSelect (1), pcrSelect[4], one byte of padding.
        out.extend_from_slice(&[entry[1], entry[0]]);
        out.extend_from_slice(&entry[2..6]);
        out.extend_from_slice(&[0, 0]);
    }
    out.resize(4 + 16 * 8, 0);
    let chunks: Vec<&[Vec<u8>]> = values.chunks(8).collect();
    out.extend_from_slice(&(chunks.len() as u32).to_le_bytes());
    for chunk in chunks {
        out.extend_from_slice(&(chunk.len() as u32).to_le_bytes());
        for slot in 0..8 {
            let mut buffer = [0u8; 66];
            if let Some(value) = chunk.get(slot) {
                if value.len() > 64 {
                    return None;
                }
                buffer[..2].copy_from_slice(&(value.len() as u16).to_le_bytes());
                buffer[2..2 + value.len()].copy_from_slice(value);
            }
            out.extend_from_slice(&buffer);
        }
    }
    Some(out)
}

/// Writes `bytes` to `dir/name` and returns the path as a string.
pub fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let path = dir.join(name);
    if let Err(e) = std::fs::write(&path, bytes) {
        panic!("cannot write {}: {e}", path.display());
    }
    path.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_file_layout_is_enforced() {
        let mut file = vec![0xBA, 0xDC, 0xC0, 0xDE, 0, 0, 0, 1, 0, 2, 1, 2, 0, 1, 9];
        assert_eq!(parse_credential_file(&file), Some((vec![1, 2], vec![9])));
        file.push(0);
        assert_eq!(parse_credential_file(&file), None, "trailing byte");
        assert_eq!(
            parse_credential_file(&[0xBA, 0xDC, 0xC0, 0xDF, 0, 0, 0, 1]),
            None,
            "magic"
        );
    }

    #[test]
    fn pcrread_yaml_is_parsed_per_bank() {
        let yaml = "  sha1:\n    0 : 0x00AA\n  sha256:\n    7 : 0xBEEF\n";
        assert_eq!(
            parse_pcrread(yaml),
            vec![
                ("sha1".to_owned(), 0, vec![0x00, 0xAA]),
                ("sha256".to_owned(), 7, vec![0xBE, 0xEF])
            ]
        );
    }
}
