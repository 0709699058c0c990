//! TPM2B_PUBLIC / TPMT_PUBLIC: key type, attributes, policy, parameters, and
//! the object's name.

use super::reader::{Reader, TpmParseError};
use super::{HashAlg, alg_id};

/// The largest RSA modulus accepted (4096 bits).
const MAX_RSA_BYTES: usize = 512;
/// The largest ECC coordinate accepted (P-521).
const MAX_ECC_BYTES: usize = 66;
/// authPolicy and keyed-hash unique fields are digests.
const MAX_DIGEST_BYTES: usize = 64;

/// TPMA_OBJECT bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectAttributes(pub u32);

impl ObjectAttributes {
    const FIXED_TPM: u32 = 1 << 1;
    const ST_CLEAR: u32 = 1 << 2;
    const FIXED_PARENT: u32 = 1 << 4;
    const SENSITIVE_DATA_ORIGIN: u32 = 1 << 5;
    const USER_WITH_AUTH: u32 = 1 << 6;
    const ADMIN_WITH_POLICY: u32 = 1 << 7;
    const NO_DA: u32 = 1 << 10;
    const ENCRYPTED_DUPLICATION: u32 = 1 << 11;
    const RESTRICTED: u32 = 1 << 16;
    const DECRYPT: u32 = 1 << 17;
    const SIGN_ENCRYPT: u32 = 1 << 18;

    fn has(self, bit: u32) -> bool {
        self.0 & bit != 0
    }
    /// fixedTPM: the object cannot leave this TPM.
    pub fn fixed_tpm(self) -> bool {
        self.has(Self::FIXED_TPM)
    }
    /// stClear.
    pub fn st_clear(self) -> bool {
        self.has(Self::ST_CLEAR)
    }
    /// fixedParent: the object cannot be re-parented.
    pub fn fixed_parent(self) -> bool {
        self.has(Self::FIXED_PARENT)
    }
    /// sensitiveDataOrigin: the TPM generated the private part.
    pub fn sensitive_data_origin(self) -> bool {
        self.has(Self::SENSITIVE_DATA_ORIGIN)
    }
    /// userWithAuth: the USER role accepts the authValue.
    pub fn user_with_auth(self) -> bool {
        self.has(Self::USER_WITH_AUTH)
    }
    /// adminWithPolicy: the ADMIN role needs the policy.
    pub fn admin_with_policy(self) -> bool {
        self.has(Self::ADMIN_WITH_POLICY)
    }
    /// noDA.
    pub fn no_da(self) -> bool {
        self.has(Self::NO_DA)
    }
    /// encryptedDuplication.
    pub fn encrypted_duplication(self) -> bool {
        self.has(Self::ENCRYPTED_DUPLICATION)
    }
    /// restricted: signs only TPM-generated structures (or decrypts only TPM formats).
    pub fn restricted(self) -> bool {
        self.has(Self::RESTRICTED)
    }
    /// decrypt.
    pub fn decrypt(self) -> bool {
        self.has(Self::DECRYPT)
    }
    /// sign (sign_encrypt).
    pub fn sign(self) -> bool {
        self.has(Self::SIGN_ENCRYPT)
    }
}

/// An elliptic curve, by TPM_ECC_CURVE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EccCurve {
    /// TPM_ECC_NIST_P256.
    NistP256,
    /// TPM_ECC_NIST_P384.
    NistP384,
    /// TPM_ECC_NIST_P521.
    NistP521,
    /// Any other curve (BN, SM2): parsed but not usable for verification.
    Other(u16),
}

impl EccCurve {
    fn from_id(id: u16) -> Self {
        match id {
            0x0003 => EccCurve::NistP256,
            0x0004 => EccCurve::NistP384,
            0x0005 => EccCurve::NistP521,
            other => EccCurve::Other(other),
        }
    }

    /// The TPM_ECC_CURVE value.
    pub fn id(self) -> u16 {
        match self {
            EccCurve::NistP256 => 0x0003,
            EccCurve::NistP384 => 0x0004,
            EccCurve::NistP521 => 0x0005,
            EccCurve::Other(id) => id,
        }
    }

    /// Coordinate size in bytes, for the NIST curves.
    pub fn coordinate_len(self) -> Option<usize> {
        match self {
            EccCurve::NistP256 => Some(32),
            EccCurve::NistP384 => Some(48),
            EccCurve::NistP521 => Some(66),
            EccCurve::Other(_) => None,
        }
    }
}

/// A symmetric definition (TPMT_SYM_DEF_OBJECT).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SymmetricDef {
    /// TPM_ALG_ID of the cipher (AES = 0x0006).
    pub algorithm: u16,
    /// Key size in bits.
    pub key_bits: u16,
    /// TPM_ALG_ID of the mode (CFB = 0x0043).
    pub mode: u16,
}

/// A signing or key-exchange scheme with its hash (TPMT_*_SCHEME).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scheme {
    /// TPM_ALG_ID of the scheme (RSASSA 0x0014, RSAPSS 0x0016, ECDSA 0x0018, …).
    pub algorithm: u16,
    /// TPM_ALG_ID of its hash (0x0010 TPM_ALG_NULL for schemes without one).
    pub hash: u16,
}

/// The type-specific part of a public area.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PublicKey {
    /// An RSA key.
    Rsa {
        /// The modulus, big-endian.
        modulus: Vec<u8>,
        /// The public exponent (the TPM encodes 65537 as 0).
        exponent: u32,
        /// Key size in bits from the parameters.
        key_bits: u16,
        /// The storage symmetric definition (restricted decryption keys).
        symmetric: Option<SymmetricDef>,
        /// The signing / encryption scheme, if fixed.
        scheme: Option<Scheme>,
    },
    /// An ECC key.
    Ecc {
        /// The curve.
        curve: EccCurve,
        /// x coordinate, big-endian.
        x: Vec<u8>,
        /// y coordinate, big-endian.
        y: Vec<u8>,
        /// The storage symmetric definition.
        symmetric: Option<SymmetricDef>,
        /// The signing / key-exchange scheme, if fixed.
        scheme: Option<Scheme>,
        /// The KDF scheme, if any.
        kdf: Option<Scheme>,
    },
    /// A keyed-hash object (HMAC key or sealed data).
    KeyedHash {
        /// The scheme, if any.
        scheme: Option<Scheme>,
        /// The unique field (a digest).
        unique: Vec<u8>,
    },
    /// A symmetric cipher key.
    SymCipher {
        /// The symmetric definition.
        symmetric: Option<SymmetricDef>,
        /// The unique field (a digest).
        unique: Vec<u8>,
    },
}

/// A parsed TPMT_PUBLIC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TpmtPublic {
    /// The object's name algorithm.
    pub name_alg: HashAlg,
    /// TPMA_OBJECT.
    pub attributes: ObjectAttributes,
    /// The authPolicy digest (empty if none).
    pub auth_policy: Vec<u8>,
    /// Type-specific parameters and unique field.
    pub key: PublicKey,
    /// The exact TPMT_PUBLIC bytes, which the name hashes.
    raw: Vec<u8>,
}

impl TpmtPublic {
    /// Parses a TPM2B_PUBLIC (size-prefixed TPMT_PUBLIC), refusing trailing bytes.
    pub fn from_tpm2b(bytes: &[u8]) -> Result<Self, TpmParseError> {
        let mut r = Reader::new(bytes, "TPM2B_PUBLIC");
        let inner = r.tpm2b("size", usize::from(u16::MAX))?;
        r.finish()?;
        Self::from_tpmt(inner)
    }

    /// Parses a bare TPMT_PUBLIC, refusing trailing bytes.
    pub fn from_tpmt(bytes: &[u8]) -> Result<Self, TpmParseError> {
        let mut r = Reader::new(bytes, "TPMT_PUBLIC");
        let public = Self::read(&mut r)?;
        r.finish()?;
        Ok(public)
    }

    /// Reads a TPMT_PUBLIC from `r`.
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, TpmParseError> {
        let start = r.offset();
        let type_offset = r.offset();
        let key_type = r.u16("type")?;
        let name_offset = r.offset();
        let name_alg_id = r.u16("nameAlg")?;
        let name_alg = HashAlg::from_tpm_alg_id(name_alg_id).ok_or_else(|| {
            r.invalid_at(
                name_offset,
                "nameAlg",
                format!("unsupported name algorithm {name_alg_id:#06x}"),
            )
        })?;
        let attributes = ObjectAttributes(r.u32("objectAttributes")?);
        let auth_policy = r.tpm2b("authPolicy", MAX_DIGEST_BYTES)?.to_vec();
        let key = match key_type {
            alg_id::RSA => {
                let symmetric = read_sym_def(r)?;
                let scheme = read_scheme(r, "parameters.rsaDetail.scheme")?;
                let key_bits = r.u16("parameters.rsaDetail.keyBits")?;
                let exponent = r.u32("parameters.rsaDetail.exponent")?;
                let modulus = r.tpm2b("unique.rsa", MAX_RSA_BYTES)?.to_vec();
                PublicKey::Rsa {
                    modulus,
                    exponent,
                    key_bits,
                    symmetric,
                    scheme,
                }
            }
            alg_id::ECC => {
                let symmetric = read_sym_def(r)?;
                let scheme = read_scheme(r, "parameters.eccDetail.scheme")?;
                let curve = EccCurve::from_id(r.u16("parameters.eccDetail.curveID")?);
                let kdf = read_scheme(r, "parameters.eccDetail.kdf")?;
                let x = r.tpm2b("unique.ecc.x", MAX_ECC_BYTES)?.to_vec();
                let y = r.tpm2b("unique.ecc.y", MAX_ECC_BYTES)?.to_vec();
                PublicKey::Ecc {
                    curve,
                    x,
                    y,
                    symmetric,
                    scheme,
                    kdf,
                }
            }
            alg_id::KEYEDHASH => {
                let scheme_offset = r.offset();
                let scheme_alg = r.u16("parameters.keyedHashDetail.scheme")?;
                let scheme = match scheme_alg {
                    alg_id::NULL => None,
                    alg_id::HMAC => Some(Scheme {
                        algorithm: scheme_alg,
                        hash: r.u16("parameters.keyedHashDetail.hashAlg")?,
                    }),
                    alg_id::XOR => {
                        let hash = r.u16("parameters.keyedHashDetail.hashAlg")?;
                        let _kdf = r.u16("parameters.keyedHashDetail.kdf")?;
                        Some(Scheme {
                            algorithm: scheme_alg,
                            hash,
                        })
                    }
                    other => {
                        return Err(r.invalid_at(
                            scheme_offset,
                            "parameters.keyedHashDetail.scheme",
                            format!("unknown keyed-hash scheme {other:#06x}"),
                        ));
                    }
                };
                let unique = r.tpm2b("unique.keyedHash", MAX_DIGEST_BYTES)?.to_vec();
                PublicKey::KeyedHash { scheme, unique }
            }
            alg_id::SYMCIPHER => {
                let symmetric = read_sym_def(r)?;
                let unique = r.tpm2b("unique.sym", MAX_DIGEST_BYTES)?.to_vec();
                PublicKey::SymCipher { symmetric, unique }
            }
            other => {
                return Err(r.invalid_at(
                    type_offset,
                    "type",
                    format!("expected RSA (0x0001), ECC (0x0023), KEYEDHASH (0x0008) or SYMCIPHER (0x0025), got {other:#06x}"),
                ));
            }
        };
        let raw = raw_span(r, start, r.offset())?;
        Ok(TpmtPublic {
            name_alg,
            attributes,
            auth_policy,
            key,
            raw,
        })
    }

    /// The exact TPMT_PUBLIC bytes.
    pub fn tpmt_bytes(&self) -> &[u8] {
        &self.raw
    }

    /// The object's name: `nameAlg ‖ H_nameAlg(TPMT_PUBLIC)`.
    pub fn name(&self) -> Vec<u8> {
        let mut name = self.name_alg.tpm_alg_id().to_be_bytes().to_vec();
        name.extend_from_slice(&self.name_alg.hash(&self.raw));
        name
    }

    /// The RSA public exponent with the TPM's 0 = 65537 convention resolved.
    pub fn rsa_exponent(&self) -> Option<u32> {
        match &self.key {
            PublicKey::Rsa { exponent: 0, .. } => Some(65_537),
            PublicKey::Rsa { exponent, .. } => Some(*exponent),
            _ => None,
        }
    }

    /// The uncompressed SEC1 point `04 ‖ x ‖ y` of an ECC key on a NIST curve,
    /// with coordinates left-padded to the curve size.
    pub fn ecc_point(&self) -> Option<Vec<u8>> {
        let PublicKey::Ecc { curve, x, y, .. } = &self.key else {
            return None;
        };
        let len = curve.coordinate_len()?;
        if x.len() > len || y.len() > len {
            return None;
        }
        let mut point = Vec::with_capacity(1 + 2 * len);
        point.push(4);
        point.resize(1 + len - x.len(), 0);
        point.extend_from_slice(x);
        point.resize(1 + 2 * len - y.len(), 0);
        point.extend_from_slice(y);
        Some(point)
    }
}

/// The reader's underlying bytes between two offsets.
fn raw_span(r: &Reader<'_>, start: usize, end: usize) -> Result<Vec<u8>, TpmParseError> {
    r.span(start, end)
        .map(<[u8]>::to_vec)
        .ok_or_else(|| r.invalid_at(start, "type", "internal: span out of range"))
}

fn read_sym_def(r: &mut Reader<'_>) -> Result<Option<SymmetricDef>, TpmParseError> {
    let algorithm = r.u16("parameters.symmetric.algorithm")?;
    if algorithm == alg_id::NULL {
        return Ok(None);
    }
    let key_bits = r.u16("parameters.symmetric.keyBits")?;
    let mode = r.u16("parameters.symmetric.mode")?;
    Ok(Some(SymmetricDef {
        algorithm,
        key_bits,
        mode,
    }))
}

fn read_scheme(r: &mut Reader<'_>, field: &'static str) -> Result<Option<Scheme>, TpmParseError> {
    let offset = r.offset();
    let algorithm = r.u16(field)?;
    match algorithm {
        alg_id::NULL => Ok(None),
        // Schemes without details.
        alg_id::RSAES => Ok(Some(Scheme {
            algorithm,
            hash: alg_id::NULL,
        })),
        alg_id::ECDAA => {
            let hash = r.u16(field)?;
            let _count = r.u16(field)?;
            Ok(Some(Scheme { algorithm, hash }))
        }
        alg_id::RSASSA
        | alg_id::RSAPSS
        | alg_id::OAEP
        | alg_id::ECDSA
        | alg_id::ECDH
        | alg_id::SM2
        | alg_id::ECSCHNORR
        | alg_id::ECMQV
        | alg_id::KDF1_SP800_56A
        | alg_id::KDF2
        | alg_id::KDF1_SP800_108
        | alg_id::MGF1 => Ok(Some(Scheme {
            algorithm,
            hash: r.u16(field)?,
        })),
        other => Err(r.invalid_at(offset, field, format!("unknown scheme {other:#06x}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ECC P-256 restricted signing key (AK-like) marshalled by hand.
    pub(crate) fn sample_ecc_ak() -> Vec<u8> {
        let mut t = vec![];
        t.extend_from_slice(&0x0023u16.to_be_bytes()); // ECC
        t.extend_from_slice(&0x000Bu16.to_be_bytes()); // SHA256
        t.extend_from_slice(&0x0005_0072u32.to_be_bytes()); // fixedTPM|fixedParent|sdo|uwa|restricted|sign
        t.extend_from_slice(&[0, 0]); // authPolicy empty
        t.extend_from_slice(&0x0010u16.to_be_bytes()); // symmetric NULL
        t.extend_from_slice(&0x0018u16.to_be_bytes()); // ECDSA
        t.extend_from_slice(&0x000Bu16.to_be_bytes()); // SHA256
        t.extend_from_slice(&0x0003u16.to_be_bytes()); // P-256
        t.extend_from_slice(&0x0010u16.to_be_bytes()); // kdf NULL
        t.extend_from_slice(&[0, 32]);
        t.extend_from_slice(&[1; 32]);
        t.extend_from_slice(&[0, 32]);
        t.extend_from_slice(&[2; 32]);
        t
    }

    #[test]
    fn ecc_ak_parses_with_attributes_and_name() {
        let tpmt = sample_ecc_ak();
        let public = TpmtPublic::from_tpmt(&tpmt).unwrap();
        assert!(
            public.attributes.restricted()
                && public.attributes.sign()
                && public.attributes.fixed_tpm()
        );
        assert!(!public.attributes.decrypt());
        assert!(matches!(
            public.key,
            PublicKey::Ecc {
                curve: EccCurve::NistP256,
                ..
            }
        ));
        let mut name = vec![0x00, 0x0B];
        name.extend_from_slice(&HashAlg::Sha256.hash(&tpmt));
        assert_eq!(public.name(), name);
        assert_eq!(public.ecc_point().unwrap().len(), 65);

        let mut tpm2b = (tpmt.len() as u16).to_be_bytes().to_vec();
        tpm2b.extend_from_slice(&tpmt);
        assert_eq!(TpmtPublic::from_tpm2b(&tpm2b).unwrap(), public);
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let tpmt = sample_ecc_ak();
        for len in 0..tpmt.len() {
            assert!(
                TpmtPublic::from_tpmt(&tpmt[..len]).is_err(),
                "prefix of {len} bytes"
            );
        }
    }

    #[test]
    fn unknown_type_is_named() {
        let mut tpmt = sample_ecc_ak();
        tpmt[0..2].copy_from_slice(&0x0099u16.to_be_bytes());
        let err = TpmtPublic::from_tpmt(&tpmt).unwrap_err();
        assert!(err.to_string().contains("TPMT_PUBLIC.type"), "{err}");
    }
}
