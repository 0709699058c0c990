//! The cache on disk: the [`Snapshot`] (SVIDs and their private keys)
//! encrypted with AES-256-GCM under a key that is sealed by the TPM to the
//! boot PCRs (DESIGN §3, "Sealing"). A restart with the issuer down keeps
//! serving unexpired SVIDs; a host that booted differently cannot unseal the
//! key, so it cannot read the cache either.

use std::path::{Path, PathBuf};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};
use zeroize::Zeroizing;

use super::state::Snapshot;
use crate::tpm::blob::write_private_file;
use crate::tpm::{PcrSelection, SealedSecret, Tpm, TpmError};

/// File magic and format version of the encrypted cache.
const MAGIC: &[u8; 8] = b"RMCACHE1";
/// Binds the ciphertext to its purpose.
const AAD: &[u8] = b"rootmark-attestor sealed svid cache v1";

/// Why the sealed cache could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// The TPM failed to seal or unseal, or a file could not be written.
    #[error(transparent)]
    Tpm(#[from] TpmError),
    /// The cache file could not be read.
    #[error("cannot read the sealed cache {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The cache file is not one this attestor wrote with this key.
    #[error("the sealed cache {path} cannot be used: {reason}; it is ignored and rewritten")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// No randomness.
    #[error("the system random generator failed")]
    Random,
}

/// The encrypted cache and the key that opens it.
pub struct SealedCache {
    path: PathBuf,
    key: LessSafeKey,
}

impl std::fmt::Debug for SealedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedCache")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SealedCache {
    /// Unseals the cache key kept in `dir`, or seals a new one to the
    /// current values of `boot_pcrs` when there is none or the TPM refuses
    /// to unseal it (another boot, a cleared TPM). In the latter case the
    /// old cache is deleted: it can never be read again.
    pub fn open(tpm: &mut Tpm, dir: &Path, boot_pcrs: &PcrSelection) -> Result<Self, CacheError> {
        let key_path = dir.join("cache-key.sealed");
        let path = dir.join("cache.sealed");
        std::fs::create_dir_all(dir).map_err(|source| TpmError::Io {
            action: "cannot create",
            path: dir.to_owned(),
            source,
        })?;
        if key_path.exists() {
            let unsealed = SealedSecret::read(&key_path, boot_pcrs.clone())
                .and_then(|sealed| tpm.unseal(&sealed));
            match unsealed {
                Ok(secret) if secret.len() == 32 => {
                    return Ok(SealedCache {
                        path,
                        key: aes_key(&secret)?,
                    });
                }
                Ok(secret) => tracing::warn!(
                    len = secret.len(),
                    path = %key_path.display(),
                    "the sealed cache key has the wrong size; starting a new cache"
                ),
                Err(e) => tracing::warn!(
                    error = %e,
                    path = %key_path.display(),
                    "cannot unseal the cache key (the boot changed?); the old cache is unreadable and is discarded"
                ),
            }
            // Nothing half-done survives: the old cache goes with its key.
            let _ = std::fs::remove_file(&path);
        }
        let mut secret = Zeroizing::new(vec![0u8; 32]);
        SystemRandom::new()
            .fill(&mut secret)
            .map_err(|_| CacheError::Random)?;
        let sealed = tpm.seal(&secret, boot_pcrs)?;
        sealed.blob.write(&key_path)?;
        Ok(SealedCache {
            path,
            key: aes_key(&secret)?,
        })
    }

    /// The cache file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Encrypts `snapshot` and replaces the file atomically (0600).
    pub fn store(&self, snapshot: &Snapshot) -> Result<(), CacheError> {
        let mut plaintext =
            Zeroizing::new(
                serde_json::to_vec(snapshot).map_err(|e| CacheError::Corrupt {
                    path: self.path.clone(),
                    reason: format!("cannot encode: {e}"),
                })?,
            );
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| CacheError::Random)?;
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(AAD),
                &mut *plaintext,
            )
            .map_err(|_| CacheError::Corrupt {
                path: self.path.clone(),
                reason: "encryption failed".to_owned(),
            })?;
        let mut file = Vec::with_capacity(MAGIC.len() + NONCE_LEN + plaintext.len());
        file.extend_from_slice(MAGIC);
        file.extend_from_slice(&nonce);
        file.extend_from_slice(&plaintext);
        write_private_file(&self.path, &file)?;
        Ok(())
    }

    /// Decrypts the cache, or `None` when there is no cache file yet.
    pub fn load(&self) -> Result<Option<Snapshot>, CacheError> {
        let bytes = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(CacheError::Read {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        let corrupt = |reason: &str| CacheError::Corrupt {
            path: self.path.clone(),
            reason: reason.to_owned(),
        };
        let rest = bytes
            .strip_prefix(MAGIC.as_slice())
            .ok_or_else(|| corrupt("not a Rootmark sealed cache (bad magic)"))?;
        let (nonce, ciphertext) = rest
            .split_first_chunk::<NONCE_LEN>()
            .ok_or_else(|| corrupt("truncated"))?;
        let mut buffer = Zeroizing::new(ciphertext.to_vec());
        let plaintext = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(*nonce),
                Aad::from(AAD),
                &mut buffer,
            )
            .map_err(|_| {
                corrupt("authentication failed (written under another key, or altered)")
            })?;
        let snapshot = serde_json::from_slice(plaintext)
            .map_err(|e| corrupt(&format!("cannot decode: {e}")))?;
        Ok(Some(snapshot))
    }
}

fn aes_key(secret: &[u8]) -> Result<LessSafeKey, CacheError> {
    UnboundKey::new(&AES_256_GCM, secret)
        .map(LessSafeKey::new)
        .map_err(|_| CacheError::Random)
}
