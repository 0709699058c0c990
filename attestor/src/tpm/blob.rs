//! TPM key blobs: the public and (TPM-encrypted) private parts of an object
//! created under a parent key, as stored on the attestor's disk.

use std::io::Write as _;
use std::path::Path;

use sha2::{Digest as _, Sha256};
use tss_esapi::structures::{Private, Public, PublicBuffer};
use tss_esapi::traits::{Marshall, UnMarshall};

use super::TpmError;

/// An object's public area and its private area wrapped by the parent.
///
/// On disk a blob is `TPM2B_PUBLIC ‖ TPM2B_PRIVATE`, the same two structures
/// `tpm2_create -u … -r …` writes, so operators can inspect them with tpm2-tools.
/// The private part is encrypted to the parent key and useless outside this TPM.
#[derive(Debug, Clone)]
pub struct KeyBlob {
    pub(crate) public: Public,
    pub(crate) private: Private,
}

impl KeyBlob {
    pub(crate) fn new(public: Public, private: Private) -> Self {
        Self { public, private }
    }

    /// The object's public area as a marshalled TPM2B_PUBLIC.
    pub fn public_bytes(&self) -> Result<Vec<u8>, TpmError> {
        public_to_tpm2b(&self.public)
    }

    /// The object's public area as a marshalled TPMT_PUBLIC (what names hash).
    pub fn tpmt_public_bytes(&self) -> Result<Vec<u8>, TpmError> {
        self.public
            .marshall()
            .map_err(|e| TpmError::UnexpectedOutput {
                command: "Tss2_MU_TPMT_PUBLIC_Marshal",
                reason: e.to_string(),
            })
    }

    /// The object's TPM name: `TPM_ALG_SHA256 ‖ SHA-256(TPMT_PUBLIC)`.
    ///
    /// Rootmark creates every object with nameAlg SHA-256.
    pub fn name(&self) -> Result<Vec<u8>, TpmError> {
        name_of_tpmt_public(&self.tpmt_public_bytes()?)
    }

    /// Serialises the blob for storage.
    pub fn to_bytes(&self) -> Result<Vec<u8>, TpmError> {
        let mut out = self.public_bytes()?;
        let private = self.private.value();
        let len = u16::try_from(private.len()).map_err(|_| TpmError::UnexpectedOutput {
            command: "TPM2_Create",
            reason: "private area longer than 65535 bytes".to_owned(),
        })?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(private);
        Ok(out)
    }

    /// Parses a stored blob; `path` is only used in the error message.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self, TpmError> {
        let malformed = |reason: String| TpmError::MalformedBlob {
            what: "TPM key blob",
            path: path.to_owned(),
            reason,
        };
        let (public, rest) =
            split_tpm2b(bytes).ok_or_else(|| malformed("truncated TPM2B_PUBLIC".into()))?;
        let (private, rest) =
            split_tpm2b(rest).ok_or_else(|| malformed("truncated TPM2B_PRIVATE".into()))?;
        if !rest.is_empty() {
            return Err(malformed(format!("{} trailing bytes", rest.len())));
        }
        let public =
            Public::unmarshall(public).map_err(|e| malformed(format!("TPMT_PUBLIC: {e}")))?;
        let private = Private::try_from(private.to_vec())
            .map_err(|e| malformed(format!("TPM2B_PRIVATE: {e}")))?;
        Ok(Self { public, private })
    }

    /// Reads a blob file.
    pub fn read(path: &Path) -> Result<Self, TpmError> {
        let bytes = std::fs::read(path).map_err(|source| TpmError::Io {
            action: "cannot read",
            path: path.to_owned(),
            source,
        })?;
        Self::from_bytes(&bytes, path)
    }

    /// Writes the blob atomically (temp file, fsync, rename) with mode 0600.
    pub fn write(&self, path: &Path) -> Result<(), TpmError> {
        write_private_file(path, &self.to_bytes()?)
    }
}

/// Splits a big-endian u16-length-prefixed buffer off the front of `bytes`,
/// returning (contents, rest).
pub(crate) fn split_tpm2b(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let (len, rest) = bytes.split_first_chunk::<2>()?;
    let len = usize::from(u16::from_be_bytes(*len));
    if rest.len() < len {
        return None;
    }
    Some(rest.split_at(len))
}

pub(crate) fn public_to_tpm2b(public: &Public) -> Result<Vec<u8>, TpmError> {
    PublicBuffer::try_from(public.clone())
        .and_then(|buffer| buffer.marshall())
        .map_err(|e| TpmError::UnexpectedOutput {
            command: "Tss2_MU_TPM2B_PUBLIC_Marshal",
            reason: e.to_string(),
        })
}

/// `TPM_ALG_SHA256 ‖ SHA-256(tpmt_public)`.
pub(crate) fn name_of_tpmt_public(tpmt_public: &[u8]) -> Result<Vec<u8>, TpmError> {
    let mut name = 0x000Bu16.to_be_bytes().to_vec();
    name.extend_from_slice(&Sha256::digest(tpmt_public));
    Ok(name)
}

/// Writes `bytes` to `path` atomically with owner-only permissions.
pub(crate) fn write_private_file(path: &Path, bytes: &[u8]) -> Result<(), TpmError> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let io = |action: &'static str| {
        move |source| TpmError::Io {
            action,
            path: path.to_owned(),
            source,
        }
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io("cannot create the directory of"))?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "blob".to_owned());
    let tmp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io("cannot create a temporary file for"))?;
    file.write_all(bytes).map_err(io("cannot write"))?;
    file.sync_all().map_err(io("cannot sync"))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(io("cannot move the new file into place at"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_tpm2b_refuses_truncation() {
        assert_eq!(
            split_tpm2b(&[0, 2, 9, 8, 7]),
            Some((&[9u8, 8][..], &[7u8][..]))
        );
        assert_eq!(split_tpm2b(&[0, 3, 9, 8]), None);
        assert_eq!(split_tpm2b(&[0]), None);
    }

    #[test]
    fn malformed_blob_error_names_file_and_part() {
        let err = KeyBlob::from_bytes(&[0, 4, 1], Path::new("/tmp/ak.blob")).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("/tmp/ak.blob") && text.contains("TPM2B_PUBLIC"),
            "{text}"
        );
    }

    #[test]
    fn private_file_is_written_0600() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/key.blob");
        write_private_file(&path, b"abc").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"abc");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
