//! TPM2_MakeCredential in software (TPM 2.0 Library, Part 1 §24 "Credential
//! Protection").
//!
//! The issuer wraps a fresh secret (the *credential*) so that only the TPM
//! holding a given endorsement key can recover it, and only by naming the
//! attestation key the credential was bound to (`TPM2_ActivateCredential`).
//! Nothing here talks to a TPM.
//!
//! 1. A *seed* of the EK nameAlg's digest size is shared with the EK:
//!    - RSA EK: a random seed, RSA-OAEP encrypted to the EK (OAEP and MGF1 with
//!      the EK nameAlg, label `"IDENTITY\0"`);
//!    - ECC EK: an ephemeral key pair on the EK's curve, `Z` = x coordinate
//!      of ECDH(ephemeral, EK), seed = KDFe(nameAlg, Z, "IDENTITY",
//!      ephemeral.x, EK.x); the ephemeral public point is the encrypted secret.
//! 2. symKey = KDFa(nameAlg, seed, "STORAGE", objectName, "", EK symmetric
//!    key bits); encIdentity = AES-CFB(symKey, IV = 0, TPM2B_DIGEST(credential)).
//! 3. hmacKey = KDFa(nameAlg, seed, "INTEGRITY", "", "", digest bits);
//!    integrity = HMAC(hmacKey, encIdentity ‖ objectName).
//! 4. credentialBlob (TPM2B_ID_OBJECT) = TPM2B_DIGEST(integrity) ‖ encIdentity.
//!
//! Every cryptographic primitive goes through aws-lc-rs.

use aws_lc_rs::{agreement, cipher, digest, hmac, rand, rsa};

use crate::tpm::public::SymmetricDef;
use crate::tpm::{EccCurve, HashAlg, PublicKey, TpmtPublic, alg_id};

/// The magic number that starts a tpm2-tools credential file.
pub const TPM2_TOOLS_CREDENTIAL_MAGIC: u32 = 0xBADC_C0DE;

/// The tpm2-tools credential file version this module reads and writes.
pub const TPM2_TOOLS_CREDENTIAL_VERSION: u32 = 1;

/// The largest TPM2B_ID_OBJECT payload: a TPM2B_DIGEST of up to 64 bytes and
/// an encrypted TPM2B_DIGEST of up to 64 bytes (sizeof(TPMS_ID_OBJECT)).
const MAX_ID_OBJECT: usize = 2 * (2 + 64);

/// The largest TPM2B_ENCRYPTED_SECRET payload accepted: an RSA-4096
/// ciphertext (an ECC point on P-521 is smaller).
const MAX_ENCRYPTED_SECRET: usize = 512;

/// The KDF label binding the seed to credential protection. The OAEP label is
/// this string with its terminating NUL.
const IDENTITY: &str = "IDENTITY";

/// Why a credential could not be made, or a credential file read.
///
/// Every variant names the offending input field and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// The EK public area cannot protect a credential.
    #[error("EK public area: {field} must be {expected}, found {found}")]
    UnsuitableEk {
        /// The TPMT_PUBLIC field, e.g. `objectAttributes` or `parameters.symmetric`.
        field: &'static str,
        /// What a storage-key EK needs there.
        expected: &'static str,
        /// What the EK has.
        found: String,
    },
    /// The object (AK) name is not a TPM name of a known hash.
    #[error("object_name must be {expected}, found {found}")]
    InvalidObjectName {
        /// What a name must look like.
        expected: String,
        /// What was given.
        found: String,
    },
    /// The credential is empty or larger than the EK nameAlg's digest.
    #[error(
        "credential must be 1 to {max} bytes (the digest size of the EK nameAlg {name_alg}), found {len} bytes"
    )]
    CredentialSize {
        /// The EK's name algorithm, which bounds the credential.
        name_alg: HashAlg,
        /// The largest credential the EK accepts.
        max: usize,
        /// The credential's length.
        len: usize,
    },
    /// A tpm2-tools credential file is malformed.
    #[error("tpm2-tools credential file: {field} must be {expected}, found {found}")]
    MalformedFile {
        /// The file field, e.g. `magic` or `TPM2B_ID_OBJECT.size`.
        field: &'static str,
        /// What the format requires.
        expected: String,
        /// What the file has.
        found: String,
    },
    /// The cryptographic library failed on valid input (e.g. no randomness).
    #[error("{operation} failed in the cryptographic library")]
    Crypto {
        /// The operation that failed.
        operation: &'static str,
    },
}

impl CredentialError {
    /// The name of the input field the error is about (`objectAttributes`,
    /// `object_name`, `credential`, `magic`, …); `None` for library failures.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            CredentialError::UnsuitableEk { field, .. }
            | CredentialError::MalformedFile { field, .. } => Some(field),
            CredentialError::InvalidObjectName { .. } => Some("object_name"),
            CredentialError::CredentialSize { .. } => Some("credential"),
            CredentialError::Crypto { .. } => None,
        }
    }
}

fn unsuitable(field: &'static str, expected: &'static str, found: String) -> CredentialError {
    CredentialError::UnsuitableEk {
        field,
        expected,
        found,
    }
}

fn crypto(
    operation: &'static str,
) -> impl FnOnce(aws_lc_rs::error::Unspecified) -> CredentialError {
    move |_| CredentialError::Crypto { operation }
}

/// The output of MakeCredential: what `TPM2_ActivateCredential` takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MadeCredential {
    /// The TPM2B_ID_OBJECT payload (without its size prefix):
    /// TPM2B_DIGEST(integrityHMAC) ‖ encIdentity.
    pub credential_blob: Vec<u8>,
    /// The TPM2B_ENCRYPTED_SECRET payload (without its size prefix): the
    /// RSA-OAEP ciphertext of the seed, or for an ECC EK the marshalled
    /// TPMS_ECC_POINT of the ephemeral public key.
    pub encrypted_secret: Vec<u8>,
}

impl MadeCredential {
    /// Encodes the credential as the file `tpm2_makecredential -o` writes and
    /// `tpm2_activatecredential -i` reads: magic 0xBADCC0DE and version 1
    /// (big-endian u32 each), the TPM2B_ID_OBJECT and the
    /// TPM2B_ENCRYPTED_SECRET (big-endian u16 size, then payload).
    ///
    /// A field longer than 65535 bytes cannot be a TPM2B; it is cut to 65535
    /// bytes (credentials made by [`make_credential`] are a few hundred bytes).
    pub fn to_tpm2_tools_file(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(12 + self.credential_blob.len() + self.encrypted_secret.len());
        out.extend_from_slice(&TPM2_TOOLS_CREDENTIAL_MAGIC.to_be_bytes());
        out.extend_from_slice(&TPM2_TOOLS_CREDENTIAL_VERSION.to_be_bytes());
        push_tpm2b(&mut out, &self.credential_blob);
        push_tpm2b(&mut out, &self.encrypted_secret);
        out
    }

    /// Decodes a tpm2-tools credential file, refusing a wrong magic or
    /// version, sizes out of bounds, an ID object whose integrity digest does
    /// not fit, and trailing bytes.
    pub fn from_tpm2_tools_file(bytes: &[u8]) -> Result<Self, CredentialError> {
        let malformed =
            |field: &'static str, expected: String, found: String| CredentialError::MalformedFile {
                field,
                expected,
                found,
            };
        let (magic, rest) = bytes.split_first_chunk::<4>().ok_or_else(|| {
            malformed(
                "magic",
                "4 bytes".to_owned(),
                format!("a {}-byte file", bytes.len()),
            )
        })?;
        let magic = u32::from_be_bytes(*magic);
        if magic != TPM2_TOOLS_CREDENTIAL_MAGIC {
            return Err(malformed(
                "magic",
                format!("{TPM2_TOOLS_CREDENTIAL_MAGIC:#010x}"),
                format!("{magic:#010x}"),
            ));
        }
        let (version, rest) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| malformed("version", "4 bytes".to_owned(), "end of file".to_owned()))?;
        let version = u32::from_be_bytes(*version);
        if version != TPM2_TOOLS_CREDENTIAL_VERSION {
            return Err(malformed(
                "version",
                TPM2_TOOLS_CREDENTIAL_VERSION.to_string(),
                version.to_string(),
            ));
        }
        let (credential_blob, rest) = split_tpm2b(rest, "TPM2B_ID_OBJECT.size", MAX_ID_OBJECT)?;
        let (integrity, enc_identity) =
            split_tpm2b(credential_blob, "TPM2B_ID_OBJECT.integrityHMAC.size", 64)?;
        if integrity.is_empty() || enc_identity.len() < 2 {
            return Err(malformed(
                "TPM2B_ID_OBJECT",
                "an integrity HMAC and an encrypted TPM2B_DIGEST".to_owned(),
                format!(
                    "a {}-byte HMAC and {} bytes of encIdentity",
                    integrity.len(),
                    enc_identity.len()
                ),
            ));
        }
        let (encrypted_secret, rest) =
            split_tpm2b(rest, "TPM2B_ENCRYPTED_SECRET.size", MAX_ENCRYPTED_SECRET)?;
        if encrypted_secret.is_empty() {
            return Err(malformed(
                "TPM2B_ENCRYPTED_SECRET.size",
                "non-zero".to_owned(),
                "0".to_owned(),
            ));
        }
        if !rest.is_empty() {
            return Err(malformed(
                "trailing bytes",
                "none after TPM2B_ENCRYPTED_SECRET".to_owned(),
                format!("{} bytes", rest.len()),
            ));
        }
        Ok(MadeCredential {
            credential_blob: credential_blob.to_vec(),
            encrypted_secret: encrypted_secret.to_vec(),
        })
    }
}

/// Appends a TPM2B: u16 big-endian size, then the payload. Payloads made in
/// this module are at most a few hundred bytes; one longer than 65535 bytes
/// (only possible in a hand-built [`MadeCredential`]) is cut to 65535 so the
/// size always matches what follows.
fn push_tpm2b(out: &mut Vec<u8>, payload: &[u8]) {
    let len = u16::try_from(payload.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload.get(..usize::from(len)).unwrap_or(payload));
}

/// Splits a TPM2B (u16 big-endian size of at most `max`, then the payload)
/// off `bytes`, returning the payload and the rest.
fn split_tpm2b<'a>(
    bytes: &'a [u8],
    field: &'static str,
    max: usize,
) -> Result<(&'a [u8], &'a [u8]), CredentialError> {
    let malformed = |expected: String, found: String| CredentialError::MalformedFile {
        field,
        expected,
        found,
    };
    let (size, rest) = bytes
        .split_first_chunk::<2>()
        .ok_or_else(|| malformed("a 2-byte size".to_owned(), "end of file".to_owned()))?;
    let size = usize::from(u16::from_be_bytes(*size));
    if size > max {
        return Err(malformed(format!("at most {max}"), size.to_string()));
    }
    if size > rest.len() {
        return Err(malformed(
            format!("at most the {} bytes that follow", rest.len()),
            size.to_string(),
        ));
    }
    Ok(rest.split_at(size))
}

/// Makes a credential for the object named `object_name` (normally an AK),
/// recoverable only by `TPM2_ActivateCredential` on the TPM holding `ek`.
///
/// `ek` must be a restricted decryption key (restricted, decrypt, not sign)
/// with an AES-128 or AES-256 CFB symmetric definition and a NULL scheme:
/// RSA 2048/3072/4096 or ECC NIST P-256/P-384/P-521. `object_name` must be a
/// TPM name (`nameAlg ‖ digest`) of SHA-1/256/384/512, and `credential` 1 to
/// digest-size-of-EK-nameAlg bytes (32 for the usual SHA-256 EKs).
pub fn make_credential(
    ek: &TpmtPublic,
    object_name: &[u8],
    credential: &[u8],
) -> Result<MadeCredential, CredentialError> {
    make_credential_with(ek, object_name, credential, Entropy::System)
}

/// Where the seed (RSA) or the ephemeral key (ECC) comes from.
enum Entropy<'a> {
    /// The system's CSPRNG.
    System,
    /// Fixed values, for deterministic tests: the RSA seed, or the ECC
    /// ephemeral private scalar (big-endian, curve-sized).
    #[cfg_attr(not(test), allow(dead_code))]
    Fixed(&'a [u8]),
}

fn make_credential_with(
    ek: &TpmtPublic,
    object_name: &[u8],
    credential: &[u8],
    entropy: Entropy<'_>,
) -> Result<MadeCredential, CredentialError> {
    let protector = Protector::new(ek)?;
    check_object_name(object_name)?;
    let name_alg = ek.name_alg;
    let max = name_alg.digest_len();
    if credential.is_empty() || credential.len() > max {
        return Err(CredentialError::CredentialSize {
            name_alg,
            max,
            len: credential.len(),
        });
    }
    let (seed, encrypted_secret) = protector.share_seed(entropy)?;
    let credential_blob = protect(name_alg, protector.aes, &seed, object_name, credential)?;
    Ok(MadeCredential {
        credential_blob,
        encrypted_secret,
    })
}

/// Checks that `name` is `alg ‖ digest` for a known hash algorithm.
fn check_object_name(name: &[u8]) -> Result<(), CredentialError> {
    let invalid =
        |expected: String, found: String| CredentialError::InvalidObjectName { expected, found };
    let Some((alg, digest)) = name.split_first_chunk::<2>() else {
        return Err(invalid(
            "a 2-byte hash algorithm ID followed by a digest".to_owned(),
            format!("{} bytes", name.len()),
        ));
    };
    let alg_id = u16::from_be_bytes(*alg);
    let Some(alg) = HashAlg::from_tpm_alg_id(alg_id) else {
        return Err(invalid(
            "a name starting with the hash algorithm SHA-1 (0x0004), SHA-256 (0x000b), SHA-384 (0x000c) or SHA-512 (0x000d)".to_owned(),
            format!("algorithm {alg_id:#06x}"),
        ));
    };
    if digest.len() != alg.digest_len() {
        return Err(invalid(
            format!(
                "a {}-byte {alg} digest after the algorithm ID",
                alg.digest_len()
            ),
            format!("{} bytes", digest.len()),
        ));
    }
    Ok(())
}

/// The EK, validated and ready to share a seed with.
struct Protector {
    name_alg: HashAlg,
    aes: Aes,
    kind: ProtectorKind,
}

enum ProtectorKind {
    Rsa(rsa::OaepPublicEncryptingKey),
    Ecc {
        algorithm: &'static agreement::Algorithm,
        coordinate_len: usize,
        public: agreement::ParsedPublicKey,
        /// The EK's x coordinate exactly as in its public area (PartyVInfo).
        x: Vec<u8>,
    },
}

impl Protector {
    fn new(ek: &TpmtPublic) -> Result<Self, CredentialError> {
        let attributes = ek.attributes;
        if !(attributes.restricted() && attributes.decrypt() && !attributes.sign()) {
            return Err(unsuitable(
                "objectAttributes",
                "a restricted decryption key (restricted and decrypt set, sign clear)",
                format!(
                    "{:#010x} (restricted {}, decrypt {}, sign {})",
                    attributes.0,
                    attributes.restricted(),
                    attributes.decrypt(),
                    attributes.sign()
                ),
            ));
        }
        match &ek.key {
            PublicKey::Rsa {
                modulus,
                key_bits,
                symmetric,
                scheme,
                ..
            } => {
                let aes = storage_cipher(symmetric.as_ref())?;
                if let Some(scheme) = scheme {
                    return Err(unsuitable(
                        "parameters.rsaDetail.scheme",
                        "TPM_ALG_NULL (a restricted decryption key has no scheme)",
                        format!("{:#06x}", scheme.algorithm),
                    ));
                }
                if !matches!(key_bits, 2048 | 3072 | 4096) {
                    return Err(unsuitable(
                        "parameters.rsaDetail.keyBits",
                        "2048, 3072 or 4096",
                        key_bits.to_string(),
                    ));
                }
                let full_size = modulus.len() == usize::from(*key_bits / 8)
                    && modulus.first().is_some_and(|b| b & 0x80 != 0);
                if !full_size {
                    return Err(unsuitable(
                        "unique.rsa",
                        "a modulus of exactly keyBits bits",
                        format!("{} bytes for keyBits {key_bits}", modulus.len()),
                    ));
                }
                let exponent = ek.rsa_exponent().unwrap_or(65_537);
                let der = rsa_spki_der(modulus, exponent);
                let key = rsa::PublicEncryptingKey::from_der(&der)
                    .map_err(|e| {
                        unsuitable(
                            "parameters.rsaDetail.exponent",
                            "a valid RSA public key (odd exponent > 1)",
                            format!("exponent {exponent}: {e}"),
                        )
                    })
                    .and_then(|key| {
                        rsa::OaepPublicEncryptingKey::new(key).map_err(crypto("RSA-OAEP key setup"))
                    })?;
                Ok(Protector {
                    name_alg: ek.name_alg,
                    aes,
                    kind: ProtectorKind::Rsa(key),
                })
            }
            PublicKey::Ecc {
                curve,
                x,
                symmetric,
                scheme,
                ..
            } => {
                let aes = storage_cipher(symmetric.as_ref())?;
                if let Some(scheme) = scheme {
                    return Err(unsuitable(
                        "parameters.eccDetail.scheme",
                        "TPM_ALG_NULL (a restricted decryption key has no scheme)",
                        format!("{:#06x}", scheme.algorithm),
                    ));
                }
                let algorithm = match curve {
                    EccCurve::NistP256 => &agreement::ECDH_P256,
                    EccCurve::NistP384 => &agreement::ECDH_P384,
                    EccCurve::NistP521 => &agreement::ECDH_P521,
                    EccCurve::Other(id) => {
                        return Err(unsuitable(
                            "parameters.eccDetail.curveID",
                            "NIST P-256 (0x0003), P-384 (0x0004) or P-521 (0x0005)",
                            format!("{id:#06x}"),
                        ));
                    }
                };
                let coordinate_len = curve.coordinate_len().unwrap_or(0);
                let point = ek.ecc_point().ok_or_else(|| {
                    unsuitable(
                        "unique.ecc",
                        "coordinates no longer than the curve size",
                        format!("an x of {} bytes", x.len()),
                    )
                })?;
                let public = agreement::ParsedPublicKey::try_from(
                    agreement::UnparsedPublicKey::new(algorithm, &point),
                )
                .map_err(|e| {
                    unsuitable(
                        "unique.ecc",
                        "a point on the EK's curve",
                        format!("a point the curve rejects ({e})"),
                    )
                })?;
                Ok(Protector {
                    name_alg: ek.name_alg,
                    aes,
                    kind: ProtectorKind::Ecc {
                        algorithm,
                        coordinate_len,
                        public,
                        x: x.clone(),
                    },
                })
            }
            PublicKey::KeyedHash { .. } | PublicKey::SymCipher { .. } => Err(unsuitable(
                "type",
                "TPM_ALG_RSA or TPM_ALG_ECC",
                "a symmetric or keyed-hash object".to_owned(),
            )),
        }
    }

    /// Creates the seed and its encryption to the EK (the
    /// TPM2B_ENCRYPTED_SECRET payload).
    fn share_seed(&self, entropy: Entropy<'_>) -> Result<(Vec<u8>, Vec<u8>), CredentialError> {
        let seed_len = self.name_alg.digest_len();
        match &self.kind {
            ProtectorKind::Rsa(key) => {
                let mut seed = vec![0u8; seed_len];
                match entropy {
                    Entropy::System => rand::fill(&mut seed).map_err(crypto("seed generation"))?,
                    Entropy::Fixed(fixed) if fixed.len() == seed_len => {
                        seed.copy_from_slice(fixed);
                    }
                    Entropy::Fixed(_) => {
                        return Err(CredentialError::Crypto {
                            operation: "fixed seed of the wrong size",
                        });
                    }
                }
                let oaep = match self.name_alg {
                    HashAlg::Sha1 => &rsa::OAEP_SHA1_MGF1SHA1,
                    HashAlg::Sha256 => &rsa::OAEP_SHA256_MGF1SHA256,
                    HashAlg::Sha384 => &rsa::OAEP_SHA384_MGF1SHA384,
                    HashAlg::Sha512 => &rsa::OAEP_SHA512_MGF1SHA512,
                };
                let mut label = IDENTITY.as_bytes().to_vec();
                label.push(0);
                let mut ciphertext = vec![0u8; key.ciphertext_size()];
                let written = key
                    .encrypt(oaep, &seed, &mut ciphertext, Some(&label))
                    .map_err(crypto("RSA-OAEP encryption of the seed"))?
                    .len();
                ciphertext.truncate(written);
                Ok((seed, ciphertext))
            }
            ProtectorKind::Ecc {
                algorithm,
                coordinate_len,
                public,
                x,
            } => {
                let ephemeral = match entropy {
                    Entropy::System => agreement::PrivateKey::generate(algorithm)
                        .map_err(crypto("ephemeral ECC key generation"))?,
                    Entropy::Fixed(scalar) => agreement::PrivateKey::from_private_key(
                        algorithm, scalar,
                    )
                    .map_err(|_| CredentialError::Crypto {
                        operation: "fixed ephemeral ECC key",
                    })?,
                };
                let ephemeral_public = ephemeral
                    .compute_public_key()
                    .map_err(crypto("ephemeral ECC public key"))?;
                // Uncompressed SEC1: 04 ‖ x ‖ y, coordinates curve-sized.
                let point = ephemeral_public.as_ref();
                let (eph_x, eph_y) = point
                    .get(1..)
                    .filter(|xy| xy.len() == 2 * coordinate_len)
                    .map(|xy| xy.split_at(*coordinate_len))
                    .ok_or(CredentialError::Crypto {
                        operation: "ephemeral ECC public key encoding",
                    })?;
                let z = agreement::agree(
                    &ephemeral,
                    public.clone(),
                    CredentialError::Crypto {
                        operation: "ECDH with the EK",
                    },
                    |z| Ok(z.to_vec()),
                )?;
                let seed = kdfe(self.name_alg, &z, IDENTITY, eph_x, x, bits_of(seed_len));
                let mut secret = Vec::with_capacity(4 + 2 * coordinate_len);
                push_tpm2b(&mut secret, eph_x);
                push_tpm2b(&mut secret, eph_y);
                Ok((seed, secret))
            }
        }
    }
}

/// The AES key size of the EK's storage symmetric definition (AES-128 or
/// AES-256 in CFB mode).
fn storage_cipher(symmetric: Option<&SymmetricDef>) -> Result<Aes, CredentialError> {
    const EXPECTED: &str = "AES-128 or AES-256 in CFB mode";
    let Some(def) = symmetric else {
        return Err(unsuitable(
            "parameters.symmetric",
            EXPECTED,
            "TPM_ALG_NULL".to_owned(),
        ));
    };
    let found = || {
        format!(
            "algorithm {:#06x}, {} bits, mode {:#06x}",
            def.algorithm, def.key_bits, def.mode
        )
    };
    if def.algorithm != alg_id::AES || def.mode != alg_id::CFB {
        return Err(unsuitable("parameters.symmetric", EXPECTED, found()));
    }
    match def.key_bits {
        128 => Ok(Aes::Aes128),
        256 => Ok(Aes::Aes256),
        _ => Err(unsuitable(
            "parameters.symmetric.keyBits",
            EXPECTED,
            found(),
        )),
    }
}

/// Steps 2–4: encrypts and integrity-protects `credential` with keys derived
/// from `seed`, bound to `object_name`. Returns the TPM2B_ID_OBJECT payload.
fn protect(
    name_alg: HashAlg,
    aes: Aes,
    seed: &[u8],
    object_name: &[u8],
    credential: &[u8],
) -> Result<Vec<u8>, CredentialError> {
    let key_len = aes.key_len();
    let sym_key = kdfa(
        name_alg,
        seed,
        "STORAGE",
        object_name,
        &[],
        bits_of(key_len),
    );
    let mut enc_identity = Vec::with_capacity(2 + credential.len());
    push_tpm2b(&mut enc_identity, credential);
    let key = cipher::UnboundCipherKey::new(aes.algorithm(), &sym_key)
        .map_err(crypto("AES key setup"))?;
    let _decryption_context = cipher::EncryptingKey::cfb128(key)
        .and_then(|key| {
            key.less_safe_encrypt(
                &mut enc_identity,
                cipher::EncryptionContext::Iv128(aws_lc_rs::iv::FixedLength::from([0u8; 16])),
            )
        })
        .map_err(crypto("AES-CFB encryption of the credential"))?;

    let digest_len = name_alg.digest_len();
    let hmac_key = kdfa(name_alg, seed, "INTEGRITY", &[], &[], bits_of(digest_len));
    let mut ctx = hmac::Context::with_key(&hmac::Key::new(hmac_algorithm(name_alg), &hmac_key));
    ctx.update(&enc_identity);
    ctx.update(object_name);
    let integrity = ctx.sign();

    let mut blob = Vec::with_capacity(2 + digest_len + enc_identity.len());
    push_tpm2b(&mut blob, integrity.as_ref());
    blob.extend_from_slice(&enc_identity);
    Ok(blob)
}

/// The AES variant of an EK's storage symmetric definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Aes {
    Aes128,
    Aes256,
}

impl Aes {
    fn algorithm(self) -> &'static cipher::Algorithm {
        match self {
            Aes::Aes128 => &cipher::AES_128,
            Aes::Aes256 => &cipher::AES_256,
        }
    }

    fn key_len(self) -> usize {
        match self {
            Aes::Aes128 => cipher::AES_128_KEY_LEN,
            Aes::Aes256 => cipher::AES_256_KEY_LEN,
        }
    }
}

fn bits_of(bytes: usize) -> u32 {
    u32::try_from(bytes.saturating_mul(8)).unwrap_or(u32::MAX)
}

fn hmac_algorithm(hash: HashAlg) -> hmac::Algorithm {
    match hash {
        HashAlg::Sha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        HashAlg::Sha256 => hmac::HMAC_SHA256,
        HashAlg::Sha384 => hmac::HMAC_SHA384,
        HashAlg::Sha512 => hmac::HMAC_SHA512,
    }
}

fn digest_algorithm(hash: HashAlg) -> &'static digest::Algorithm {
    match hash {
        HashAlg::Sha1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
        HashAlg::Sha256 => &digest::SHA256,
        HashAlg::Sha384 => &digest::SHA384,
        HashAlg::Sha512 => &digest::SHA512,
    }
}

/// The label as hashed by KDFa and KDFe: its bytes followed by one NUL, unless
/// it already ends in NUL (TPM 2.0 Part 1 §11.4.10.1, as the reference
/// implementation reads it: exactly one terminating 0x00).
fn label_parts(label: &str) -> (&[u8], &'static [u8]) {
    let bytes = label.as_bytes();
    if bytes.last() == Some(&0) {
        (bytes, &[])
    } else {
        (bytes, &[0])
    }
}

/// Truncates a key stream to `bits` and clears the excess leading bits of
/// its first byte when `bits` is not a multiple of 8.
fn finish_stream(mut stream: Vec<u8>, bits: u32) -> Vec<u8> {
    let len = usize::try_from(bits.div_ceil(8)).unwrap_or(usize::MAX);
    stream.truncate(len);
    if !bits.is_multiple_of(8)
        && let Some(first) = stream.first_mut()
    {
        *first &= (1u8 << (bits % 8)) - 1;
    }
    stream
}

/// KDFa (TPM 2.0 Part 1 §11.4.10.2): SP 800-108 counter-mode KDF with
/// HMAC-`hash`, producing `bits` bits.
///
/// Each block is `HMAC(key, [i]₃₂ ‖ label ‖ 0x00 ‖ context_u ‖ context_v ‖
/// [bits]₃₂)` for i = 1, 2, …; the label's terminating NUL is added unless
/// `label` already ends in one. When `bits` is not a multiple of 8 the excess
/// leading bits of the first byte are cleared. The output is
/// `ceil(bits / 8)` bytes; callers choose `bits` (the TPM limits it to a few
/// thousand).
pub fn kdfa(
    hash: HashAlg,
    key: &[u8],
    label: &str,
    context_u: &[u8],
    context_v: &[u8],
    bits: u32,
) -> Vec<u8> {
    let wanted = usize::try_from(bits.div_ceil(8)).unwrap_or(usize::MAX);
    let key = hmac::Key::new(hmac_algorithm(hash), key);
    let (label, nul) = label_parts(label);
    let mut stream = Vec::with_capacity(wanted.saturating_add(hash.digest_len()));
    let mut counter: u32 = 0;
    while stream.len() < wanted {
        counter = counter.wrapping_add(1);
        let mut ctx = hmac::Context::with_key(&key);
        ctx.update(&counter.to_be_bytes());
        ctx.update(label);
        ctx.update(nul);
        ctx.update(context_u);
        ctx.update(context_v);
        ctx.update(&bits.to_be_bytes());
        stream.extend_from_slice(ctx.sign().as_ref());
    }
    finish_stream(stream, bits)
}

/// KDFe (TPM 2.0 Part 1 §11.4.10.3): the SP 800-56A concatenation KDF with
/// `hash`, producing `bits` bits.
///
/// Each block is `H([i]₃₂ ‖ Z ‖ label ‖ 0x00 ‖ party_u ‖ party_v)` for
/// i = 1, 2, …; the label's terminating NUL is added unless `label` already
/// ends in one. When `bits` is not a multiple of 8 the excess leading bits of
/// the first byte are cleared.
pub fn kdfe(
    hash: HashAlg,
    z: &[u8],
    label: &str,
    party_u: &[u8],
    party_v: &[u8],
    bits: u32,
) -> Vec<u8> {
    let wanted = usize::try_from(bits.div_ceil(8)).unwrap_or(usize::MAX);
    let algorithm = digest_algorithm(hash);
    let (label, nul) = label_parts(label);
    let mut stream = Vec::with_capacity(wanted.saturating_add(hash.digest_len()));
    let mut counter: u32 = 0;
    while stream.len() < wanted {
        counter = counter.wrapping_add(1);
        let mut ctx = digest::Context::new(algorithm);
        ctx.update(&counter.to_be_bytes());
        ctx.update(z);
        ctx.update(label);
        ctx.update(nul);
        ctx.update(party_u);
        ctx.update(party_v);
        stream.extend_from_slice(ctx.finish().as_ref());
    }
    finish_stream(stream, bits)
}

/// DER SubjectPublicKeyInfo of an RSA public key (rsaEncryption, NULL
/// parameters), as aws-lc-rs takes it.
fn rsa_spki_der(modulus: &[u8], exponent: u32) -> Vec<u8> {
    const RSA_ENCRYPTION_ALGORITHM: &[u8] = &[
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let mut rsa_public_key = der_unsigned(modulus);
    rsa_public_key.extend_from_slice(&der_unsigned(&exponent.to_be_bytes()));
    let rsa_public_key = der_tlv(0x30, &rsa_public_key);
    let mut bit_string = Vec::with_capacity(1 + rsa_public_key.len());
    bit_string.push(0);
    bit_string.extend_from_slice(&rsa_public_key);
    let mut spki = RSA_ENCRYPTION_ALGORITHM.to_vec();
    spki.extend_from_slice(&der_tlv(0x03, &bit_string));
    der_tlv(0x30, &spki)
}

/// A DER INTEGER for an unsigned big-endian number.
fn der_unsigned(be: &[u8]) -> Vec<u8> {
    let start = be.iter().position(|&b| b != 0).unwrap_or(be.len());
    let digits = be.get(start..).unwrap_or(&[]);
    let mut content = Vec::with_capacity(digits.len() + 1);
    if digits.first().is_none_or(|&b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(digits);
    der_tlv(0x02, &content)
}

fn der_tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 6);
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        let significant = bytes.get(skip..).unwrap_or(&[]);
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(significant);
    }
    out.extend_from_slice(content);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tpm::public::Scheme;

    /// The KDFa self-test vector of the TPM 2.0 reference implementation
    /// (libtpms `KdfTestData.h`): 20-byte key, label "KDFSELFTESTLABEL"
    /// (NUL-terminated), 8-byte contexts, 160 output bits.
    #[test]
    fn kdfa_matches_the_tpm_reference_self_test_vectors() {
        let key = hex::decode("271fa08bbdc5060ec3dfa928ff9b73123a12da0c").unwrap();
        let context_u = hex::decode("ce244f395dca7391").unwrap();
        let context_v = hex::decode("da504031ddf12e83").unwrap();
        for (hash, expected) in [
            (HashAlg::Sha1, "55b5a7184aa07423c47dae766c26a2377d7cf851"),
            (HashAlg::Sha256, "bb0259e1c8ba607e6a2cd704b69a902e9ade84c4"),
            (HashAlg::Sha384, "1dce70c9113eb2dba47bd9cfc72bf46f45b09312"),
            (HashAlg::Sha512, "8be2c1b85b78569b9fa759f5857c56d684810fd3"),
        ] {
            let out = kdfa(hash, &key, "KDFSELFTESTLABEL", &context_u, &context_v, 160);
            assert_eq!(hex::encode(&out), expected, "{hash}");
            // A label that already carries its NUL is hashed the same way.
            let nul = kdfa(
                hash,
                &key,
                "KDFSELFTESTLABEL\0",
                &context_u,
                &context_v,
                160,
            );
            assert_eq!(nul, out, "{hash}");
        }
    }

    #[test]
    fn kdfa_spans_blocks_and_masks_partial_bytes() {
        let long = kdfa(HashAlg::Sha256, b"k", "STORAGE", b"u", b"", 512);
        assert_eq!(long.len(), 64);
        // L is part of every block, so a longer output is not an extension.
        let short = kdfa(HashAlg::Sha256, b"k", "STORAGE", b"u", b"", 256);
        assert_ne!(&long[..32], &short[..]);
        let odd = kdfa(HashAlg::Sha256, b"k", "STORAGE", b"u", b"", 12);
        assert_eq!(odd.len(), 2);
        assert_eq!(odd[0] & 0xF0, 0);
        assert!(kdfa(HashAlg::Sha256, b"k", "STORAGE", b"", b"", 0).is_empty());
    }

    #[test]
    fn kdfe_is_the_concatenation_kdf_with_a_nul_terminated_label() {
        // Block i = H(i ‖ Z ‖ "IDENTITY\0" ‖ U ‖ V), computed independently.
        let (z, u, v) = (b"zzzz".as_slice(), b"uu".as_slice(), b"vvv".as_slice());
        let block =
            |i: u32| HashAlg::Sha256.hash_parts(&[&i.to_be_bytes(), z, b"IDENTITY\0", u, v]);
        let mut expected = block(1);
        expected.extend_from_slice(&block(2));
        expected.truncate(40);
        assert_eq!(kdfe(HashAlg::Sha256, z, "IDENTITY", u, v, 320), expected);
        assert_eq!(kdfe(HashAlg::Sha256, z, "IDENTITY\0", u, v, 320), expected);
    }

    #[test]
    fn der_integers_are_minimal_and_positive() {
        assert_eq!(der_unsigned(&[0, 0, 1, 0, 1]), vec![0x02, 3, 1, 0, 1]);
        assert_eq!(der_unsigned(&[0x80]), vec![0x02, 2, 0, 0x80]);
        assert_eq!(der_unsigned(&[0, 0]), vec![0x02, 1, 0]);
        assert_eq!(der_tlv(0x04, &[7; 300])[..4], [0x04, 0x82, 0x01, 0x2c]);
    }

    // --- Fixtures: EK public areas marshalled by hand. ---

    const EK_ATTRIBUTES: u32 = 0x0003_00b2; // fixedTPM|fixedParent|sdo|adminWithPolicy|restricted|decrypt

    fn symmetric(out: &mut Vec<u8>, key_bits: u16) {
        out.extend_from_slice(&alg_id::AES.to_be_bytes());
        out.extend_from_slice(&key_bits.to_be_bytes());
        out.extend_from_slice(&alg_id::CFB.to_be_bytes());
    }

    fn rsa_ek_tpmt(name_alg: HashAlg, attributes: u32, modulus: &[u8]) -> Vec<u8> {
        let mut t = alg_id::RSA.to_be_bytes().to_vec();
        t.extend_from_slice(&name_alg.tpm_alg_id().to_be_bytes());
        t.extend_from_slice(&attributes.to_be_bytes());
        t.extend_from_slice(&[0, 0]);
        symmetric(&mut t, 128);
        t.extend_from_slice(&alg_id::NULL.to_be_bytes());
        t.extend_from_slice(&((modulus.len() * 8) as u16).to_be_bytes());
        t.extend_from_slice(&0u32.to_be_bytes());
        t.extend_from_slice(&(modulus.len() as u16).to_be_bytes());
        t.extend_from_slice(modulus);
        t
    }

    fn ecc_ek_tpmt(name_alg: HashAlg, curve: u16, key_bits: u16, x: &[u8], y: &[u8]) -> Vec<u8> {
        let mut t = alg_id::ECC.to_be_bytes().to_vec();
        t.extend_from_slice(&name_alg.tpm_alg_id().to_be_bytes());
        t.extend_from_slice(&EK_ATTRIBUTES.to_be_bytes());
        t.extend_from_slice(&[0, 0]);
        symmetric(&mut t, key_bits);
        t.extend_from_slice(&alg_id::NULL.to_be_bytes()); // scheme
        t.extend_from_slice(&curve.to_be_bytes());
        t.extend_from_slice(&alg_id::NULL.to_be_bytes()); // kdf
        t.extend_from_slice(&(x.len() as u16).to_be_bytes());
        t.extend_from_slice(x);
        t.extend_from_slice(&(y.len() as u16).to_be_bytes());
        t.extend_from_slice(y);
        t
    }

    fn ak_name() -> Vec<u8> {
        let mut name = vec![0x00, 0x0b];
        name.extend_from_slice(&HashAlg::Sha256.hash(b"an AK"));
        name
    }

    /// A software RSA "TPM": the EK private key and its public area.
    struct SoftRsaEk {
        private: rsa::OaepPrivateDecryptingKey,
        public: TpmtPublic,
    }

    fn soft_rsa_ek(size: rsa::KeySize, name_alg: HashAlg) -> SoftRsaEk {
        use aws_lc_rs::encoding::AsDer;
        let private = rsa::PrivateDecryptingKey::generate(size).unwrap();
        let pkcs8 = private.as_der().unwrap();
        let pair = rsa::KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let modulus = aws_lc_rs::signature::KeyPair::public_key(&pair)
            .modulus()
            .big_endian_without_leading_zero()
            .to_vec();
        let public =
            TpmtPublic::from_tpmt(&rsa_ek_tpmt(name_alg, EK_ATTRIBUTES, &modulus)).unwrap();
        SoftRsaEk {
            private: rsa::OaepPrivateDecryptingKey::new(private).unwrap(),
            public,
        }
    }

    /// TPM2_ActivateCredential's checks and decryption, given the seed.
    fn software_unwrap(
        name_alg: HashAlg,
        aes: Aes,
        seed: &[u8],
        object_name: &[u8],
        blob: &[u8],
    ) -> Option<Vec<u8>> {
        let (size, rest) = blob.split_first_chunk::<2>()?;
        let (integrity, enc_identity) = rest.split_at(usize::from(u16::from_be_bytes(*size)));
        let hmac_key = kdfa(
            name_alg,
            seed,
            "INTEGRITY",
            &[],
            &[],
            bits_of(name_alg.digest_len()),
        );
        let key = hmac::Key::new(hmac_algorithm(name_alg), &hmac_key);
        hmac::verify(&key, &[enc_identity, object_name].concat(), integrity).ok()?;
        let sym_key = kdfa(
            name_alg,
            seed,
            "STORAGE",
            object_name,
            &[],
            bits_of(aes.key_len()),
        );
        let key = cipher::DecryptingKey::cfb128(
            cipher::UnboundCipherKey::new(aes.algorithm(), &sym_key).ok()?,
        )
        .ok()?;
        let mut plain = enc_identity.to_vec();
        let plain = key
            .decrypt(
                &mut plain,
                cipher::DecryptionContext::Iv128(aws_lc_rs::iv::FixedLength::from([0u8; 16])),
            )
            .ok()?;
        let (len, credential) = plain.split_first_chunk::<2>()?;
        (usize::from(u16::from_be_bytes(*len)) == credential.len()).then(|| credential.to_vec())
    }

    fn rsa_unwrap(ek: &SoftRsaEk, name: &[u8], made: &MadeCredential) -> Option<Vec<u8>> {
        let oaep = match ek.public.name_alg {
            HashAlg::Sha256 => &rsa::OAEP_SHA256_MGF1SHA256,
            HashAlg::Sha384 => &rsa::OAEP_SHA384_MGF1SHA384,
            _ => return None,
        };
        let mut seed = vec![0u8; ek.private.min_output_size()];
        let seed = ek
            .private
            .decrypt(oaep, &made.encrypted_secret, &mut seed, Some(b"IDENTITY\0"))
            .ok()?
            .to_vec();
        software_unwrap(
            ek.public.name_alg,
            Aes::Aes128,
            &seed,
            name,
            &made.credential_blob,
        )
    }

    #[test]
    fn rsa_credentials_unwrap_with_the_ek_private_key_for_every_size() {
        for (size, name_alg) in [
            (rsa::KeySize::Rsa2048, HashAlg::Sha256),
            (rsa::KeySize::Rsa3072, HashAlg::Sha384),
            (rsa::KeySize::Rsa4096, HashAlg::Sha256),
        ] {
            let ek = soft_rsa_ek(size, name_alg);
            let credential = vec![0x5a; name_alg.digest_len()];
            let made = make_credential(&ek.public, &ak_name(), &credential).unwrap();
            assert_eq!(made.encrypted_secret.len(), size.len());
            assert_eq!(rsa_unwrap(&ek, &ak_name(), &made), Some(credential));
            let mut other = ak_name();
            other[5] ^= 1;
            assert_eq!(rsa_unwrap(&ek, &other, &made), None, "another name");
        }
    }

    #[test]
    fn rsa_blob_is_deterministic_for_a_fixed_seed() {
        let ek = soft_rsa_ek(rsa::KeySize::Rsa2048, HashAlg::Sha256);
        let seed = [7u8; 32];
        let a =
            make_credential_with(&ek.public, &ak_name(), b"secret", Entropy::Fixed(&seed)).unwrap();
        let b =
            make_credential_with(&ek.public, &ak_name(), b"secret", Entropy::Fixed(&seed)).unwrap();
        assert_eq!(a.credential_blob, b.credential_blob);
        // OAEP itself is randomised.
        assert_ne!(a.encrypted_secret, b.encrypted_secret);
        assert_eq!(
            software_unwrap(
                HashAlg::Sha256,
                Aes::Aes128,
                &seed,
                &ak_name(),
                &a.credential_blob
            ),
            Some(b"secret".to_vec())
        );
        // Layout: TPM2B(32-byte HMAC) ‖ 2 + 6 bytes of encIdentity.
        assert_eq!(a.credential_blob.len(), 2 + 32 + 2 + 6);
        assert_eq!(&a.credential_blob[..2], &[0, 32]);
    }

    /// ECDH from the EK side: Z = x(d_EK · Q_ephemeral), then KDFe.
    fn ecc_unwrap(
        ek_private: &agreement::PrivateKey,
        ek: &TpmtPublic,
        aes: Aes,
        name: &[u8],
        made: &MadeCredential,
    ) -> Option<Vec<u8>> {
        let PublicKey::Ecc { x: ek_x, curve, .. } = &ek.key else {
            return None;
        };
        let len = curve.coordinate_len()?;
        let secret = &made.encrypted_secret;
        let (xs, rest) = secret.split_first_chunk::<2>()?;
        let (x, rest) = rest.split_at(usize::from(u16::from_be_bytes(*xs)));
        let (ys, y) = rest.split_first_chunk::<2>()?;
        if usize::from(u16::from_be_bytes(*ys)) != y.len() || x.len() != len {
            return None;
        }
        let point = [&[4u8][..], x, y].concat();
        let z = agreement::agree(
            ek_private,
            agreement::UnparsedPublicKey::new(ek_private.algorithm(), &point),
            (),
            |z| Ok(z.to_vec()),
        )
        .ok()?;
        let seed = kdfe(
            ek.name_alg,
            &z,
            "IDENTITY",
            x,
            ek_x,
            bits_of(ek.name_alg.digest_len()),
        );
        software_unwrap(ek.name_alg, aes, &seed, name, &made.credential_blob)
    }

    fn soft_ecc_ek(
        algorithm: &'static agreement::Algorithm,
        curve: u16,
        len: usize,
        name_alg: HashAlg,
        key_bits: u16,
    ) -> (agreement::PrivateKey, TpmtPublic) {
        let private = agreement::PrivateKey::generate(algorithm).unwrap();
        let point = private.compute_public_key().unwrap();
        let point = point.as_ref();
        let tpmt = ecc_ek_tpmt(
            name_alg,
            curve,
            key_bits,
            &point[1..1 + len],
            &point[1 + len..],
        );
        (private, TpmtPublic::from_tpmt(&tpmt).unwrap())
    }

    #[test]
    fn ecc_credentials_unwrap_with_the_ek_private_key_for_every_curve() {
        for (algorithm, curve, len, name_alg, key_bits, aes) in [
            (
                &agreement::ECDH_P256,
                3,
                32,
                HashAlg::Sha256,
                128,
                Aes::Aes128,
            ),
            (
                &agreement::ECDH_P384,
                4,
                48,
                HashAlg::Sha384,
                256,
                Aes::Aes256,
            ),
            (
                &agreement::ECDH_P521,
                5,
                66,
                HashAlg::Sha512,
                256,
                Aes::Aes256,
            ),
        ] {
            let (private, ek) = soft_ecc_ek(algorithm, curve, len, name_alg, key_bits);
            let credential = vec![0xa5; name_alg.digest_len()];
            let made = make_credential(&ek, &ak_name(), &credential).unwrap();
            assert_eq!(made.encrypted_secret.len(), 4 + 2 * len, "TPMS_ECC_POINT");
            assert_eq!(
                ecc_unwrap(&private, &ek, aes, &ak_name(), &made),
                Some(credential),
                "{name_alg}"
            );
            let mut other = ak_name();
            other[9] ^= 1;
            assert_eq!(ecc_unwrap(&private, &ek, aes, &other, &made), None);
        }
    }

    #[test]
    fn ecc_output_is_deterministic_for_a_fixed_ephemeral_key() {
        let (_, ek) = soft_ecc_ek(&agreement::ECDH_P256, 3, 32, HashAlg::Sha256, 128);
        let scalar = [0x11u8; 32];
        let a = make_credential_with(&ek, &ak_name(), b"c", Entropy::Fixed(&scalar)).unwrap();
        let b = make_credential_with(&ek, &ak_name(), b"c", Entropy::Fixed(&scalar)).unwrap();
        assert_eq!(a, b);
        let fresh = make_credential(&ek, &ak_name(), b"c").unwrap();
        assert_ne!(
            fresh.encrypted_secret, a.encrypted_secret,
            "fresh ephemeral key"
        );
    }

    // --- Refusals, each naming its field. ---

    fn rsa_public_with(attributes: u32) -> TpmtPublic {
        let mut modulus = vec![0xc3; 256];
        modulus[255] = 0x01;
        TpmtPublic::from_tpmt(&rsa_ek_tpmt(HashAlg::Sha256, attributes, &modulus)).unwrap()
    }

    #[test]
    fn a_signing_key_is_refused_as_ek() {
        // An AK: restricted | sign.
        let err = make_credential(&rsa_public_with(0x0005_0072), &ak_name(), b"x").unwrap_err();
        assert_eq!(err.field(), Some("objectAttributes"), "{err}");
        assert!(
            err.to_string().contains("restricted decryption key"),
            "{err}"
        );
        // Unrestricted decryption key.
        let err = make_credential(&rsa_public_with(0x0002_0072), &ak_name(), b"x").unwrap_err();
        assert_eq!(err.field(), Some("objectAttributes"), "{err}");
    }

    #[test]
    fn an_ek_without_aes_cfb_is_refused() {
        let ek = rsa_public_with(EK_ATTRIBUTES);
        let mut tpmt = ek.tpmt_bytes().to_vec();
        // symmetric mode CFB -> CBC (0x0042) at offset 2+2+4+2+2+2.
        tpmt[14..16].copy_from_slice(&0x0042u16.to_be_bytes());
        let ek = TpmtPublic::from_tpmt(&tpmt).unwrap();
        let err = make_credential(&ek, &ak_name(), b"x").unwrap_err();
        assert_eq!(err.field(), Some("parameters.symmetric"), "{err}");
        assert!(err.to_string().contains("CFB"), "{err}");
    }

    #[test]
    fn an_rsa_ek_with_a_scheme_or_short_modulus_is_refused() {
        let mut ek = rsa_public_with(EK_ATTRIBUTES);
        if let PublicKey::Rsa { scheme, .. } = &mut ek.key {
            *scheme = Some(Scheme {
                algorithm: alg_id::OAEP,
                hash: alg_id::SHA256,
            });
        }
        let err = make_credential(&ek, &ak_name(), b"x").unwrap_err();
        assert_eq!(err.field(), Some("parameters.rsaDetail.scheme"), "{err}");

        let mut ek = rsa_public_with(EK_ATTRIBUTES);
        if let PublicKey::Rsa { modulus, .. } = &mut ek.key {
            modulus[0] = 0x01;
        }
        let err = make_credential(&ek, &ak_name(), b"x").unwrap_err();
        assert_eq!(err.field(), Some("unique.rsa"), "{err}");
    }

    #[test]
    fn an_ecc_ek_off_the_curve_is_refused() {
        let tpmt = ecc_ek_tpmt(HashAlg::Sha256, 3, 128, &[1; 32], &[2; 32]);
        let ek = TpmtPublic::from_tpmt(&tpmt).unwrap();
        let err = make_credential(&ek, &ak_name(), b"x").unwrap_err();
        assert_eq!(err.field(), Some("unique.ecc"), "{err}");
        let tpmt = ecc_ek_tpmt(HashAlg::Sha256, 0x0010, 128, &[1; 32], &[2; 32]);
        let ek = TpmtPublic::from_tpmt(&tpmt).unwrap();
        let err = make_credential(&ek, &ak_name(), b"x").unwrap_err();
        assert_eq!(err.field(), Some("parameters.eccDetail.curveID"), "{err}");
    }

    #[test]
    fn credential_sizes_are_bounded_by_the_ek_name_alg() {
        let ek = rsa_public_with(EK_ATTRIBUTES);
        let err = make_credential(&ek, &ak_name(), &[0; 33]).unwrap_err();
        assert_eq!(err.field(), Some("credential"), "{err}");
        assert!(err.to_string().contains("1 to 32 bytes"), "{err}");
        assert!(err.to_string().contains("33"), "{err}");
        let err = make_credential(&ek, &ak_name(), &[]).unwrap_err();
        assert_eq!(err.field(), Some("credential"), "{err}");
    }

    #[test]
    fn bad_object_names_are_refused() {
        let ek = rsa_public_with(EK_ATTRIBUTES);
        let mut short = ak_name();
        short.pop();
        let mut unknown = ak_name();
        unknown[1] = 0x12;
        for (name, needle) in [
            (&[0x00][..], "1 bytes"),
            (&short[..], "32-byte sha256 digest"),
            (&unknown[..], "0x0012"),
            (&[0x00, 0x0b][..], "found 0 bytes"),
        ] {
            let err = make_credential(&ek, name, b"x").unwrap_err();
            assert_eq!(err.field(), Some("object_name"), "{err}");
            assert!(err.to_string().contains(needle), "{err}");
        }
    }

    #[test]
    fn tpm2_tools_file_round_trips_and_is_strict() {
        let made = MadeCredential {
            credential_blob: [&[0, 2, 0xaa, 0xbb][..], &[1, 2, 3, 4]].concat(),
            encrypted_secret: vec![9; 256],
        };
        let file = made.to_tpm2_tools_file();
        assert_eq!(&file[..8], &[0xba, 0xdc, 0xc0, 0xde, 0, 0, 0, 1]);
        assert_eq!(&file[8..10], &[0, 8]);
        assert_eq!(
            MadeCredential::from_tpm2_tools_file(&file),
            Ok(made.clone())
        );

        let field = |bytes: &[u8]| {
            MadeCredential::from_tpm2_tools_file(bytes)
                .unwrap_err()
                .field()
                .unwrap_or("none")
        };
        let mut trailing = file.clone();
        trailing.push(0);
        assert_eq!(field(&trailing), "trailing bytes");
        let mut magic = file.clone();
        magic[3] = 0xdf;
        assert_eq!(field(&magic), "magic");
        let mut version = file.clone();
        version[7] = 2;
        assert_eq!(field(&version), "version");
        assert_eq!(
            field(&file[..file.len() - 1]),
            "TPM2B_ENCRYPTED_SECRET.size"
        );
        let mut hmac_too_long = file.clone();
        hmac_too_long[11] = 0x41;
        assert_eq!(field(&hmac_too_long), "TPM2B_ID_OBJECT.integrityHMAC.size");
        for len in 0..file.len() {
            assert!(MadeCredential::from_tpm2_tools_file(&file[..len]).is_err());
        }
    }
}
