//! Private keys on disk.
//!
//! Keys are PKCS#8 (DER, or PEM `PRIVATE KEY` when read). Writing is atomic:
//! the bytes go to a temporary file created with mode 0600 in the same
//! directory, are fsynced, and the file is renamed over the target, then the
//! directory is fsynced — so a crash leaves either the old file or the new
//! one, never a torn key, and the key is never readable by others even for
//! an instant. Reading refuses a key file that group or others can access:
//! a key that may have been copied is not a key to sign with.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use aws_lc_rs::rand::SecureRandom;
use aws_lc_rs::rsa::KeyPair as RsaKeyPair;
use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair};
use zeroize::Zeroizing;

use super::CaError;
use super::der::{self, oid};

/// Largest key or certificate file read, in bytes (an RSA-8192 PKCS#8 PEM is
/// about 6.5 KiB; a long chain stays well under this).
pub const MAX_FILE_LEN: u64 = 1 << 20;

/// Writes `bytes` to `path` atomically with mode `mode` (see the module
/// docs).
///
/// # Errors
/// [`CaError::Io`] naming the file and the step that failed.
pub fn write_file_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), CaError> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| CaError::invalid("path", "a file path", path.display()))?;
    let suffix = hex::encode(super::random_bytes::<6>()?);
    let tmp = dir.join(format!(".{}.{suffix}.tmp", file_name.to_string_lossy()));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)
            .map_err(|e| CaError::io(&tmp, "create", e))?;
        // The umask can only remove bits from `mode`; set it exactly so a
        // permissive umask cannot matter either way.
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(|e| CaError::io(&tmp, "chmod", e))?;
        file.write_all(bytes)
            .map_err(|e| CaError::io(&tmp, "write", e))?;
        file.sync_all().map_err(|e| CaError::io(&tmp, "fsync", e))?;
        fs::rename(&tmp, path).map_err(|e| CaError::io(path, "rename into place", e))
    })();
    if result.is_err() {
        // Best effort: the temporary file holds nothing the caller relies on.
        let _ = fs::remove_file(&tmp);
        return result;
    }
    // The rename is durable only once the directory entry is.
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| CaError::io(&dir, "fsync directory", e))
}

/// The fields every CA state manifest starts with.
pub(crate) trait ManifestHeader {
    /// The manifest format version (1).
    fn version(&self) -> u32;
    /// The trust domain the keys belong to.
    fn trust_domain(&self) -> &str;
}

/// Reads the CA state manifest at `path`: `None` if there is none yet.
/// Refuses a manifest that does not parse (`what` names the state), of
/// another format version, or of another trust domain than `trust_domain`.
pub(crate) fn read_manifest<M>(
    path: &Path,
    what: &str,
    trust_domain: &str,
) -> Result<Option<M>, CaError>
where
    M: serde::de::DeserializeOwned + ManifestHeader,
{
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(CaError::io(path, "read", e)),
    };
    let bad = |expected: String, found: String| CaError::State {
        path: path.to_path_buf(),
        expected,
        found,
    };
    let manifest: M = serde_json::from_slice(&bytes)
        .map_err(|e| bad(format!("the {what} written by this issuer"), e.to_string()))?;
    if manifest.version() != 1 {
        return Err(bad("version 1".to_owned(), manifest.version().to_string()));
    }
    if manifest.trust_domain() != trust_domain {
        return Err(bad(
            format!(
                "keys of trust domain {trust_domain} (the configured one); move the directory away to start anew"
            ),
            format!("keys of trust domain {:?}", manifest.trust_domain()),
        ));
    }
    Ok(Some(manifest))
}

/// Writes a PKCS#8 DER private key to `path` atomically with mode 0600.
///
/// # Errors
/// [`CaError::Io`] naming the file and the step that failed.
pub fn write_key_file(path: &Path, pkcs8_der: &[u8]) -> Result<(), CaError> {
    write_file_atomic(path, pkcs8_der, 0o600)
}

/// Reads a whole file of at most [`MAX_FILE_LEN`] bytes.
pub(crate) fn read_limited(path: &Path, file: &mut File) -> Result<Vec<u8>, CaError> {
    let mut bytes = Vec::new();
    file.take(MAX_FILE_LEN + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| CaError::io(path, "read", e))?;
    if bytes.len() as u64 > MAX_FILE_LEN {
        return Err(CaError::io(
            path,
            "read",
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "expected a file of at most 1 MiB, found a larger one",
            ),
        ));
    }
    Ok(bytes)
}

/// Reads a PKCS#8 private key (DER, or PEM with label `PRIVATE KEY`) from
/// `path`, refusing a file that group or others can access.
///
/// # Errors
/// [`CaError::KeyFilePermissions`] for a mode other than owner-only,
/// [`CaError::KeyFile`] for content that is not an unencrypted PKCS#8 key,
/// [`CaError::Io`] when the file cannot be read.
pub fn read_key_file(path: &Path) -> Result<Zeroizing<Vec<u8>>, CaError> {
    let mut file = File::open(path).map_err(|e| CaError::io(path, "open", e))?;
    // The mode is checked on the open file, not the path, so the file read
    // is the file checked.
    let metadata = file.metadata().map_err(|e| CaError::io(path, "stat", e))?;
    if !metadata.is_file() {
        return Err(CaError::KeyFile {
            path: path.to_path_buf(),
            expected: "a regular file",
            found: "a directory or special file".into(),
        });
    }
    let mode = metadata.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(CaError::KeyFilePermissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    let bytes = Zeroizing::new(read_limited(path, &mut file)?);
    decode_pkcs8(path, &bytes)
}

/// DER PKCS#8 from a key file's content.
fn decode_pkcs8(path: &Path, bytes: &[u8]) -> Result<Zeroizing<Vec<u8>>, CaError> {
    let bad = |found: String| CaError::KeyFile {
        path: path.to_path_buf(),
        expected: "an unencrypted PKCS#8 private key (DER or PEM `PRIVATE KEY`)",
        found,
    };
    if bytes.first() == Some(&der::tag::SEQUENCE) {
        return Ok(Zeroizing::new(bytes.to_vec()));
    }
    let Some(pem) = x509_parser::pem::Pem::iter_from_buffer(bytes).next() else {
        return Err(bad("neither DER nor PEM".into()));
    };
    let pem = pem.map_err(|e| bad(format!("unreadable PEM ({e})")))?;
    match pem.label.as_str() {
        "PRIVATE KEY" => Ok(Zeroizing::new(pem.contents)),
        "EC PRIVATE KEY" | "RSA PRIVATE KEY" => Err(bad(format!(
            "a PEM `{}` (convert it: openssl pkcs8 -topk8 -nocrypt -in KEY -out KEY.p8)",
            pem.label
        ))),
        "ENCRYPTED PRIVATE KEY" => Err(bad("an encrypted key".into())),
        other => Err(bad(format!("a PEM `{other}`"))),
    }
}

/// A CA's own key: ECDSA P-256, signing with ASN.1 DER signatures (X.509)
/// or fixed r‖s (JWS), depending on how it was loaded.
pub(crate) struct P256Key {
    pub(crate) pair: EcdsaKeyPair,
    /// PKCS#8 DER, kept to write the key file.
    pub(crate) pkcs8: Zeroizing<Vec<u8>>,
}

impl P256Key {
    /// A fresh key.
    pub(crate) fn generate(
        alg: &'static signature::EcdsaSigningAlgorithm,
    ) -> Result<Self, CaError> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &rng as &dyn SecureRandom)
            .map_err(|_| CaError::crypto("generate ECDSA P-256 key"))?;
        Self::from_pkcs8(alg, pkcs8.as_ref()).map_err(|_| CaError::crypto("load generated key"))
    }

    /// A key from PKCS#8 DER.
    pub(crate) fn from_pkcs8(
        alg: &'static signature::EcdsaSigningAlgorithm,
        pkcs8: &[u8],
    ) -> Result<Self, aws_lc_rs::error::KeyRejected> {
        let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8)?;
        Ok(Self {
            pair,
            pkcs8: Zeroizing::new(pkcs8.to_vec()),
        })
    }

    /// The uncompressed public point (65 bytes).
    pub(crate) fn public_point(&self) -> &[u8] {
        self.pair.public_key().as_ref()
    }
}

/// A key that signs certificates: the CA's P-256 key, or an upstream CA's
/// key of one of the usual types.
pub(crate) enum CertSigner {
    /// ECDSA P-256 with SHA-256.
    EcP256(EcdsaKeyPair),
    /// ECDSA P-384 with SHA-384.
    EcP384(EcdsaKeyPair),
    /// RSA PKCS#1 v1.5 with SHA-256.
    Rsa(RsaKeyPair),
}

impl CertSigner {
    /// Loads an upstream key from PKCS#8 DER, trying each supported type.
    pub(crate) fn from_pkcs8(pkcs8: &[u8]) -> Option<Self> {
        use signature::{ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P384_SHA384_ASN1_SIGNING};
        if let Ok(pair) = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8) {
            return Some(Self::EcP256(pair));
        }
        if let Ok(pair) = EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_ASN1_SIGNING, pkcs8) {
            return Some(Self::EcP384(pair));
        }
        RsaKeyPair::from_pkcs8(pkcs8).ok().map(Self::Rsa)
    }

    /// The signature AlgorithmIdentifier this signer produces.
    pub(crate) fn algorithm_identifier(&self) -> Vec<u8> {
        match self {
            Self::EcP256(_) => der::algorithm(oid::ECDSA_SHA256, false),
            Self::EcP384(_) => der::algorithm(oid::ECDSA_SHA384, false),
            Self::Rsa(_) => der::algorithm(oid::RSA_SHA256, true),
        }
    }

    /// The content of the key's subjectPublicKey BIT STRING: the EC point
    /// or the PKCS#1 RSAPublicKey.
    pub(crate) fn public_key_bits(&self) -> &[u8] {
        match self {
            Self::EcP256(pair) | Self::EcP384(pair) => pair.public_key().as_ref(),
            Self::Rsa(pair) => pair.public_key().as_ref(),
        }
    }

    /// Signs `message`.
    pub(crate) fn sign(&self, message: &[u8]) -> Result<Vec<u8>, CaError> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        match self {
            Self::EcP256(pair) | Self::EcP384(pair) => pair
                .sign(&rng, message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| CaError::crypto("ECDSA signature")),
            Self::Rsa(pair) => {
                let mut out = vec![0u8; pair.public_modulus_len()];
                pair.sign(&signature::RSA_PKCS1_SHA256, &rng, message, &mut out)
                    .map_err(|_| CaError::crypto("RSA signature"))?;
                Ok(out)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_is_0600_and_replaces() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("k.p8");
        let key = P256Key::generate(&signature::ECDSA_P256_SHA256_ASN1_SIGNING).expect("key");
        write_key_file(&path, &key.pkcs8).expect("write");
        let mode = fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(*read_key_file(&path).expect("read"), *key.pkcs8);
        // Replacing leaves no temporary file behind.
        write_key_file(&path, &key.pkcs8).expect("rewrite");
        let names: Vec<_> = fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, [std::ffi::OsString::from("k.p8")]);
    }

    #[test]
    fn group_or_world_access_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("k.p8");
        let key = P256Key::generate(&signature::ECDSA_P256_SHA256_ASN1_SIGNING).expect("key");
        write_key_file(&path, &key.pkcs8).expect("write");
        for mode in [0o644, 0o640, 0o604, 0o660, 0o602] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod");
            let err = read_key_file(&path).expect_err("refused");
            assert!(
                matches!(err, CaError::KeyFilePermissions { mode: m, .. } if m == mode),
                "{err}"
            );
            let message = err.to_string();
            assert!(
                message.contains("0600") && message.contains("chmod 600"),
                "{message}"
            );
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).expect("chmod");
        assert!(read_key_file(&path).is_ok());
    }

    #[test]
    fn pem_and_wrong_formats() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = P256Key::generate(&signature::ECDSA_P256_SHA256_ASN1_SIGNING).expect("key");
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &*key.pkcs8)
        );
        let path = dir.path().join("pem");
        write_key_file(&path, pem.as_bytes()).expect("write");
        assert_eq!(*read_key_file(&path).expect("pem"), *key.pkcs8);

        let sec1 = pem.replace("PRIVATE KEY", "EC PRIVATE KEY");
        write_key_file(&path, sec1.as_bytes()).expect("write");
        let message = read_key_file(&path).expect_err("sec1").to_string();
        assert!(message.contains("openssl pkcs8 -topk8"), "{message}");

        write_key_file(&path, b"hello").expect("write");
        let message = read_key_file(&path).expect_err("junk").to_string();
        assert!(message.contains("PKCS#8"), "{message}");
    }
}
