//! EK trust: is this endorsement key the key of a genuine TPM we trust?
//!
//! Two ways to trust an EK (DESIGN.md §3 step 2):
//!
//! * **EK certificate chain.** The TPM's EK certificate (TCG EK Credential
//!   Profile) must chain to a certificate in the configured manufacturer roots
//!   ([`EkRoots`], a directory of PEM/DER certificates), and its public key
//!   must be the EK public the TPM presented. The chain is checked the
//!   RFC 5280 way: signatures (aws-lc-rs), validity periods, CA flags, path
//!   lengths, name constraints (directoryName), and critical extensions — the
//!   TCG profile's critical subjectAltName holding a directoryName with the
//!   TPM manufacturer, model and firmware version is accepted.
//! * **EK allow-list.** TPMs without certificates (many VMs) are trusted when
//!   the SHA-256 of their EK `TPMT_PUBLIC` — the hash in the node's SPIFFE ID —
//!   is on the [`EkAllowList`].
//!
//! [`EkVerifier::verify`] applies both and returns an [`EkIdentity`], or an
//! [`EkTrustError`] naming which certificate and which field is wrong and how
//! to fix it. Verified chains are cached (bounded, keyed by the certificate's
//! SHA-256), so a returning node's EK costs a hash and a key comparison.
//!
//! Banned EKs are not handled here: the datastore checks them.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::digest;
use aws_lc_rs::signature::{self as sig, ParsedPublicKey, VerificationAlgorithm};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::pem::Pem;
use x509_parser::public_key::PublicKey as X509PublicKey;
use x509_parser::time::ASN1Time;
use x509_parser::x509::{AlgorithmIdentifier, SubjectPublicKeyInfo, X509Name};

use crate::tpm::{EccCurve, PublicKey, TpmtPublic};

/// The longest chain searched, EK certificate included.
const MAX_CHAIN_LEN: usize = 8;
/// Default number of verified EK certificate chains kept in the cache.
pub const DEFAULT_CACHE_CAPACITY: usize = 16_384;

// Object identifiers, as dotted strings (compared only off the hot path).
const OID_RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
const OID_RSASSA_PSS: &str = "1.2.840.113549.1.1.10";
const OID_MGF1: &str = "1.2.840.113549.1.1.8";
const OID_SHA1_WITH_RSA: &str = "1.2.840.113549.1.1.5";
const OID_SHA1_WITH_RSA_OIW: &str = "1.3.14.3.2.29";
const OID_SHA256_WITH_RSA: &str = "1.2.840.113549.1.1.11";
const OID_SHA384_WITH_RSA: &str = "1.2.840.113549.1.1.12";
const OID_SHA512_WITH_RSA: &str = "1.2.840.113549.1.1.13";
const OID_ECDSA_SHA256: &str = "1.2.840.10045.4.3.2";
const OID_ECDSA_SHA384: &str = "1.2.840.10045.4.3.3";
const OID_ECDSA_SHA512: &str = "1.2.840.10045.4.3.4";
const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";
const OID_P521: &str = "1.3.132.0.35";
const OID_SHA1: &str = "1.3.14.3.2.26";
const OID_SHA256: &str = "2.16.840.1.101.3.4.2.1";
const OID_SHA384: &str = "2.16.840.1.101.3.4.2.2";
const OID_SHA512: &str = "2.16.840.1.101.3.4.2.3";
const OID_EMAIL_ADDRESS: &str = "1.2.840.113549.1.9.1";
/// TCG: TPM manufacturer attribute (tcg-at-tpmManufacturer).
pub const OID_TPM_MANUFACTURER: &str = "2.23.133.2.1";
/// TCG: TPM model attribute (tcg-at-tpmModel).
pub const OID_TPM_MODEL: &str = "2.23.133.2.2";
/// TCG: TPM firmware version attribute (tcg-at-tpmVersion).
pub const OID_TPM_VERSION: &str = "2.23.133.2.3";

const EXT_SUBJECT_DIRECTORY_ATTRIBUTES: &str = "2.5.29.9";
const EXT_SUBJECT_KEY_ID: &str = "2.5.29.14";
const EXT_KEY_USAGE: &str = "2.5.29.15";
const EXT_SUBJECT_ALT_NAME: &str = "2.5.29.17";
const EXT_BASIC_CONSTRAINTS: &str = "2.5.29.19";
const EXT_NAME_CONSTRAINTS: &str = "2.5.29.30";
const EXT_CERTIFICATE_POLICIES: &str = "2.5.29.32";
const EXT_AUTHORITY_KEY_ID: &str = "2.5.29.35";
const EXT_EXTENDED_KEY_USAGE: &str = "2.5.29.37";

/// Why an EK is not trusted, or why the trust configuration cannot be loaded.
///
/// Every message names the certificate (or file) and field at fault, what was
/// expected, and how an operator fixes it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EkTrustError {
    /// The manufacturer roots directory (or a file in it) cannot be read.
    #[error(
        "cannot read the EK manufacturer roots at {path}: {source}; create the directory and put the TPM manufacturers' CA certificates (PEM or DER) in it"
    )]
    RootsUnreadable {
        /// The directory or file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file in the roots directory is not a usable certificate.
    #[error(
        "{file} in the EK manufacturer roots is not a usable CA certificate: {reason}; replace it with the manufacturer's certificate in PEM or DER form, or remove it"
    )]
    RootFile {
        /// The file (and certificate number within it).
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// The allow-list file cannot be read.
    #[error("cannot read the EK allow-list at {path}: {source}")]
    AllowListUnreadable {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An allow-list entry is not a SHA-256 in hex.
    #[error(
        "EK allow-list {list}, entry {entry}: {reason}; each entry must be the 64 hex digits of SHA-256 over the EK TPMT_PUBLIC (the hash in the node's SPIFFE ID)"
    )]
    AllowListEntry {
        /// The allow-list (a path, or "the configured EK allow-list").
        list: String,
        /// The 1-based line or position.
        entry: usize,
        /// What is wrong.
        reason: String,
    },
    /// The presented EK certificate is not a DER X.509 certificate.
    #[error(
        "the EK certificate is not a valid DER X.509 certificate: {reason}; the TPM's EK certificate NV index (0x01c00002 RSA, 0x01c0000a ECC P-256, 0x01c00016 ECC P-384) holds something else — re-provision it, or attest without a certificate through the EK allow-list"
    )]
    MalformedCertificate {
        /// What the parser refused.
        reason: String,
    },
    /// No certificate in the roots has the subject (and key identifier) the
    /// certificate names as its issuer.
    #[error(
        "{certificate}: issuer '{issuer}' is not in the manufacturer roots at {roots}; add the manufacturer's CA certificate there"
    )]
    UntrustedIssuer {
        /// The certificate whose issuer is missing.
        certificate: String,
        /// The issuer name it names.
        issuer: String,
        /// Where the roots come from.
        roots: String,
    },
    /// A signature does not verify with the issuer's key.
    #[error(
        "{certificate}: signature does not verify with the key of issuer '{issuer}' in the manufacturer roots ({reason}); the certificate was altered, or the roots hold a different CA with the same name — put the CA that really issued it in the roots at {roots}"
    )]
    BadSignature {
        /// The certificate whose signature failed.
        certificate: String,
        /// The issuer name the certificate names.
        issuer: String,
        /// Which roots were tried, and why each failed.
        reason: String,
        /// Where the roots come from.
        roots: String,
    },
    /// The signature algorithm is not one the verifier supports.
    #[error(
        "{certificate}: unsupported signature algorithm {algorithm}; supported: RSA PKCS#1 v1.5 with SHA-1/256/384/512, RSA-PSS with SHA-256/384/512 (MGF1 with the same hash, salt = hash length), ECDSA P-256/P-384/P-521 with SHA-256/384/512"
    )]
    UnsupportedSignatureAlgorithm {
        /// The certificate.
        certificate: String,
        /// The algorithm (OID and what is wrong with its parameters).
        algorithm: String,
    },
    /// A certificate on the chain has expired.
    #[error("{certificate} expired at {not_after} (checked at {now}); {fix}")]
    Expired {
        /// The certificate.
        certificate: String,
        /// Its notAfter.
        not_after: String,
        /// The verification time.
        now: String,
        /// How to fix it.
        fix: String,
    },
    /// A certificate on the chain is not valid yet.
    #[error(
        "{certificate} is not valid before {not_before} (checked at {now}); check the clock of the rootmark issuer, or wait until the certificate becomes valid"
    )]
    NotYetValid {
        /// The certificate.
        certificate: String,
        /// Its notBefore.
        not_before: String,
        /// The verification time.
        now: String,
    },
    /// An issuer on the chain is not allowed to issue certificates.
    #[error(
        "{certificate} cannot act as a CA: {reason}; only CA certificates (basicConstraints cA=true, keyUsage keyCertSign) may issue EK certificates — put the manufacturer's real CA certificates in the roots at {roots}"
    )]
    NotACa {
        /// The issuing certificate.
        certificate: String,
        /// Which field says so.
        reason: String,
        /// Where the roots come from.
        roots: String,
    },
    /// A certificate carries a critical extension the verifier does not enforce.
    #[error(
        "{certificate} has critical extension {oid} ({name}), which rootmark does not enforce, so the certificate is refused (RFC 5280 §4.2); if the manufacturer really issues such certificates, trust this EK through the EK allow-list instead"
    )]
    UnsupportedCriticalExtension {
        /// The certificate.
        certificate: String,
        /// The extension's OID.
        oid: String,
        /// The extension's name, if known.
        name: String,
    },
    /// An extension the verifier relies on is malformed or repeated.
    #[error("{certificate}: extension {oid} ({name}) {reason}")]
    MalformedExtension {
        /// The certificate.
        certificate: String,
        /// The extension's OID.
        oid: String,
        /// The extension's name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A name on the chain is outside a CA's name constraints.
    #[error("{certificate}: name '{name}' {reason} of {constrained_by}")]
    NameConstraintViolation {
        /// The certificate carrying the name.
        certificate: String,
        /// The name.
        name: String,
        /// The CA whose nameConstraints refuse it.
        constrained_by: String,
        /// How it violates them.
        reason: String,
    },
    /// No chain within 8 certificates (or the roots form a loop).
    #[error(
        "{certificate}: no chain to a root in {roots} within {max} certificates (the roots may form a loop); remove the cross-certificates from the roots"
    )]
    ChainTooLong {
        /// The certificate where the search stopped.
        certificate: String,
        /// Where the roots come from.
        roots: String,
        /// The limit.
        max: usize,
    },
    /// The EK certificate certifies a different key than the EK public presented.
    #[error(
        "the EK certificate's public key ({certificate_key}) is not the EK public the TPM presented ({ek_key}); the certificate belongs to another TPM or another EK type — the attestor must send the certificate of this EK (NV 0x01c00002 for RSA 2048, 0x01c0000a for ECC P-256, 0x01c00016 for ECC P-384)"
    )]
    KeyMismatch {
        /// The certificate's key, abbreviated.
        certificate_key: String,
        /// The TPM's EK public, abbreviated.
        ek_key: String,
    },
    /// No certificate, and the EK hash is not allow-listed.
    #[error(
        "the TPM presented no EK certificate and its EK (sha256 {ek_hash}) is not on {allow_list}; either add {ek_hash} to the EK allow-list, or provision the TPM's EK certificate (NV 0x01c00002 / 0x01c0000a / 0x01c00016) and put its manufacturer's CA certificate in the manufacturer roots at {roots}"
    )]
    UntrustedNoCertificate {
        /// Lowercase hex SHA-256 of the EK TPMT_PUBLIC.
        ek_hash: String,
        /// Which allow-list was consulted.
        allow_list: String,
        /// Where the roots come from.
        roots: String,
    },
}

// ---------------------------------------------------------------------------
// Signature algorithms and keys.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hash {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    fn from_oid(oid: &str) -> Option<Hash> {
        match oid {
            OID_SHA1 => Some(Hash::Sha1),
            OID_SHA256 => Some(Hash::Sha256),
            OID_SHA384 => Some(Hash::Sha384),
            OID_SHA512 => Some(Hash::Sha512),
            _ => None,
        }
    }

    fn len(self) -> u32 {
        match self {
            Hash::Sha1 => 20,
            Hash::Sha256 => 32,
            Hash::Sha384 => 48,
            Hash::Sha512 => 64,
        }
    }
}

/// A certificate signature algorithm the verifier supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SigAlg {
    RsaPkcs1(Hash),
    RsaPss(Hash),
    Ecdsa(Hash),
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Hash::Sha1 => "SHA-1",
            Hash::Sha256 => "SHA-256",
            Hash::Sha384 => "SHA-384",
            Hash::Sha512 => "SHA-512",
        })
    }
}

impl fmt::Display for SigAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SigAlg::RsaPkcs1(h) => write!(f, "RSA PKCS#1 v1.5 with {h}"),
            SigAlg::RsaPss(h) => write!(f, "RSA-PSS with {h}"),
            SigAlg::Ecdsa(h) => write!(f, "ECDSA with {h}"),
        }
    }
}

const ALL_SIG_ALGS: [SigAlg; 10] = [
    SigAlg::RsaPkcs1(Hash::Sha1),
    SigAlg::RsaPkcs1(Hash::Sha256),
    SigAlg::RsaPkcs1(Hash::Sha384),
    SigAlg::RsaPkcs1(Hash::Sha512),
    SigAlg::RsaPss(Hash::Sha256),
    SigAlg::RsaPss(Hash::Sha384),
    SigAlg::RsaPss(Hash::Sha512),
    SigAlg::Ecdsa(Hash::Sha256),
    SigAlg::Ecdsa(Hash::Sha384),
    SigAlg::Ecdsa(Hash::Sha512),
];

/// A NIST curve usable for ECDSA and EK keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Curve {
    P256,
    P384,
    P521,
}

impl Curve {
    fn from_oid(oid: &str) -> Option<Curve> {
        match oid {
            OID_P256 => Some(Curve::P256),
            OID_P384 => Some(Curve::P384),
            OID_P521 => Some(Curve::P521),
            _ => None,
        }
    }

    fn from_tpm(curve: EccCurve) -> Option<Curve> {
        match curve {
            EccCurve::NistP256 => Some(Curve::P256),
            EccCurve::NistP384 => Some(Curve::P384),
            EccCurve::NistP521 => Some(Curve::P521),
            _ => None,
        }
    }
}

impl fmt::Display for Curve {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Curve::P256 => "P-256",
            Curve::P384 => "P-384",
            Curve::P521 => "P-521",
        })
    }
}

/// The aws-lc-rs algorithm verifying `alg` with a key of `kind`, if any.
fn verification_algorithm(
    alg: SigAlg,
    kind: &KeyKind,
) -> Option<&'static dyn VerificationAlgorithm> {
    match (alg, kind) {
        (
            SigAlg::RsaPkcs1(h),
            KeyKind::Rsa {
                pss_only: false, ..
            },
        ) => Some(match h {
            Hash::Sha1 => &sig::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
            Hash::Sha256 => &sig::RSA_PKCS1_2048_8192_SHA256,
            Hash::Sha384 => &sig::RSA_PKCS1_2048_8192_SHA384,
            Hash::Sha512 => &sig::RSA_PKCS1_2048_8192_SHA512,
        }),
        (SigAlg::RsaPss(h), KeyKind::Rsa { .. }) => match h {
            Hash::Sha1 => None,
            Hash::Sha256 => Some(&sig::RSA_PSS_2048_8192_SHA256),
            Hash::Sha384 => Some(&sig::RSA_PSS_2048_8192_SHA384),
            Hash::Sha512 => Some(&sig::RSA_PSS_2048_8192_SHA512),
        },
        (SigAlg::Ecdsa(h), KeyKind::Ec(curve)) => match (curve, h) {
            (Curve::P256, Hash::Sha256) => Some(&sig::ECDSA_P256_SHA256_ASN1),
            (Curve::P256, Hash::Sha384) => Some(&sig::ECDSA_P256_SHA384_ASN1),
            (Curve::P256, Hash::Sha512) => Some(&sig::ECDSA_P256_SHA512_ASN1),
            (Curve::P384, Hash::Sha256) => Some(&sig::ECDSA_P384_SHA256_ASN1),
            (Curve::P384, Hash::Sha384) => Some(&sig::ECDSA_P384_SHA384_ASN1),
            (Curve::P384, Hash::Sha512) => Some(&sig::ECDSA_P384_SHA512_ASN1),
            (Curve::P521, Hash::Sha256) => Some(&sig::ECDSA_P521_SHA256_ASN1),
            (Curve::P521, Hash::Sha384) => Some(&sig::ECDSA_P521_SHA384_ASN1),
            (Curve::P521, Hash::Sha512) => Some(&sig::ECDSA_P521_SHA512_ASN1),
            (_, Hash::Sha1) => None,
        },
        _ => None,
    }
}

/// Maps a certificate's signatureAlgorithm to a supported algorithm, checking
/// its parameters.
fn signature_algorithm(alg: &AlgorithmIdentifier<'_>) -> Result<SigAlg, String> {
    let oid = alg.algorithm.to_id_string();
    let params = alg.parameters.as_ref();
    // RFC 4055 / 3279: PKCS#1 v1.5 parameters are NULL (absent is tolerated).
    let null_or_absent = || match params {
        None => Ok(()),
        Some(any) if any.tag() == x509_parser::der_parser::asn1_rs::Tag::Null => Ok(()),
        Some(_) => Err(format!("{oid} with parameters other than NULL")),
    };
    // RFC 5758: ECDSA parameters are absent.
    let absent = || match params {
        None => Ok(()),
        Some(_) => Err(format!("{oid} with parameters (must be absent)")),
    };
    match oid.as_str() {
        OID_SHA1_WITH_RSA | OID_SHA1_WITH_RSA_OIW => {
            null_or_absent().map(|()| SigAlg::RsaPkcs1(Hash::Sha1))
        }
        OID_SHA256_WITH_RSA => null_or_absent().map(|()| SigAlg::RsaPkcs1(Hash::Sha256)),
        OID_SHA384_WITH_RSA => null_or_absent().map(|()| SigAlg::RsaPkcs1(Hash::Sha384)),
        OID_SHA512_WITH_RSA => null_or_absent().map(|()| SigAlg::RsaPkcs1(Hash::Sha512)),
        OID_ECDSA_SHA256 => absent().map(|()| SigAlg::Ecdsa(Hash::Sha256)),
        OID_ECDSA_SHA384 => absent().map(|()| SigAlg::Ecdsa(Hash::Sha384)),
        OID_ECDSA_SHA512 => absent().map(|()| SigAlg::Ecdsa(Hash::Sha512)),
        OID_RSASSA_PSS => pss_algorithm(alg),
        _ => Err(format!("{oid} (unknown)")),
    }
}

/// RSASSA-PSS: the hash, MGF1 with the same hash, salt length = hash length,
/// trailer field 1 (what aws-lc-rs verifies).
fn pss_algorithm(alg: &AlgorithmIdentifier<'_>) -> Result<SigAlg, String> {
    use x509_parser::signature_algorithm::SignatureAlgorithm;
    let what = "RSASSA-PSS (1.2.840.113549.1.1.10)";
    let params = match SignatureAlgorithm::try_from(alg) {
        Ok(SignatureAlgorithm::RSASSA_PSS(params)) => params,
        _ => return Err(format!("{what} with malformed parameters")),
    };
    let hash_oid = params.hash_algorithm_oid().to_id_string();
    let hash = match Hash::from_oid(&hash_oid) {
        Some(Hash::Sha1) | None => {
            return Err(format!(
                "{what} with hash {hash_oid} (need SHA-256/384/512)"
            ));
        }
        Some(hash) => hash,
    };
    let mgf = params
        .mask_gen_algorithm()
        .map_err(|_| format!("{what} with a malformed mask generation function"))?;
    let mgf_oid = mgf.mgf.to_id_string();
    let mgf_hash = mgf.hash.to_id_string();
    if mgf_oid != OID_MGF1 || mgf_hash != hash_oid {
        return Err(format!(
            "{what} with mask generation {mgf_oid}/{mgf_hash} (need MGF1 with {hash_oid})"
        ));
    }
    if params.salt_length() != hash.len() {
        return Err(format!(
            "{what} with salt length {} (need {}, the hash length)",
            params.salt_length(),
            hash.len()
        ));
    }
    if params.trailer_field() != 1 {
        return Err(format!(
            "{what} with trailer field {} (need 1)",
            params.trailer_field()
        ));
    }
    Ok(SigAlg::RsaPss(hash))
}

/// What kind of key a CA certificate holds.
#[derive(Debug, Clone, PartialEq, Eq)]
enum KeyKind {
    Rsa { bits: usize, pss_only: bool },
    Ec(Curve),
    Unsupported(String),
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyKind::Rsa { bits, .. } => write!(f, "RSA-{bits}"),
            KeyKind::Ec(curve) => write!(f, "ECC {curve}"),
            KeyKind::Unsupported(what) => f.write_str(what),
        }
    }
}

/// A CA certificate's key, parsed once for every algorithm it can verify.
struct IssuerKey {
    kind: KeyKind,
    parsed: Vec<(SigAlg, ParsedPublicKey)>,
    /// Why the key cannot verify anything, if so.
    problem: Option<String>,
}

impl IssuerKey {
    fn from_spki(spki: &SubjectPublicKeyInfo<'_>) -> IssuerKey {
        let kind = key_kind(spki);
        let bytes: &[u8] = &spki.subject_public_key.data;
        let mut problem = match &kind {
            KeyKind::Rsa { bits, .. } if !(2048..=8192).contains(bits) => Some(format!(
                "its RSA key has {bits} bits (the verifier accepts 2048 to 8192)"
            )),
            KeyKind::Unsupported(what) => Some(format!("its key ({what}) is not RSA or NIST ECC")),
            _ => None,
        };
        let mut parsed = Vec::new();
        if problem.is_none() {
            for alg in ALL_SIG_ALGS {
                if let Some(verifier) = verification_algorithm(alg, &kind) {
                    match ParsedPublicKey::new(verifier, bytes) {
                        Ok(key) => parsed.push((alg, key)),
                        Err(e) => {
                            problem = Some(format!("its {kind} key is malformed: {e}"));
                            parsed.clear();
                            break;
                        }
                    }
                }
            }
        }
        IssuerKey {
            kind,
            parsed,
            problem,
        }
    }

    /// Verifies `signature` over `message` made with `alg`.
    fn verify(&self, alg: SigAlg, message: &[u8], signature: &[u8]) -> Result<(), String> {
        if let Some(problem) = &self.problem {
            return Err(problem.clone());
        }
        let Some((_, key)) = self.parsed.iter().find(|(a, _)| *a == alg) else {
            return Err(format!(
                "a {} key cannot verify a {alg} signature",
                self.kind
            ));
        };
        key.verify_sig(message, signature)
            .map_err(|_| format!("the {alg} signature is wrong"))
    }
}

fn key_kind(spki: &SubjectPublicKeyInfo<'_>) -> KeyKind {
    let oid = spki.algorithm.algorithm.to_id_string();
    match oid.as_str() {
        OID_RSA_ENCRYPTION | OID_RSASSA_PSS => match spki.parsed() {
            Ok(X509PublicKey::RSA(rsa)) => KeyKind::Rsa {
                bits: significant(rsa.modulus).len() * 8,
                pss_only: oid == OID_RSASSA_PSS,
            },
            _ => KeyKind::Unsupported("a malformed RSA key".to_owned()),
        },
        OID_EC_PUBLIC_KEY => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string());
            match curve.as_deref().and_then(Curve::from_oid) {
                Some(curve) => KeyKind::Ec(curve),
                None => KeyKind::Unsupported(format!(
                    "an EC key on curve {}",
                    curve.as_deref().unwrap_or("(missing)")
                )),
            }
        }
        other => KeyKind::Unsupported(format!("a key of algorithm {other}")),
    }
}

/// `bytes` without leading zero bytes.
fn significant(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

// ---------------------------------------------------------------------------
// Names.

/// One attribute of a relative distinguished name, normalized for comparison:
/// string values are trimmed, internal whitespace collapsed and ASCII
/// lowercased (RFC 5280 §7.1 in spirit); other values compare byte for byte.
type NormalizedAttribute = (String, Vec<u8>);
/// A relative distinguished name: its attributes, sorted.
type Rdn = Vec<NormalizedAttribute>;

fn normalize_name(name: &X509Name<'_>) -> Vec<Rdn> {
    name.iter()
        .map(|rdn| {
            let mut attrs: Rdn = rdn
                .iter()
                .map(|attr| {
                    let value = match attr.as_str() {
                        Ok(s) => {
                            let mut v = vec![1u8];
                            let collapsed = s.split_whitespace().collect::<Vec<_>>().join(" ");
                            v.extend_from_slice(collapsed.to_ascii_lowercase().as_bytes());
                            v
                        }
                        Err(_) => {
                            let mut v = vec![0u8];
                            v.extend_from_slice(attr.as_slice());
                            v
                        }
                    };
                    (attr.attr_type().to_id_string(), value)
                })
                .collect();
            attrs.sort();
            attrs
        })
        .collect()
}

/// A lookup key for a name: its normalized RDNs, serialized.
fn name_key(rdns: &[Rdn]) -> Vec<u8> {
    let mut key = Vec::new();
    for rdn in rdns {
        key.push(b'{');
        for (oid, value) in rdn {
            key.extend_from_slice(oid.as_bytes());
            key.push(b'=');
            key.extend_from_slice(&(value.len() as u64).to_be_bytes());
            key.extend_from_slice(value);
        }
        key.push(b'}');
    }
    key
}

fn display_name(name: &X509Name<'_>) -> String {
    let s = name.to_string();
    if s.is_empty() {
        "(empty)".to_owned()
    } else {
        s
    }
}

/// The names a certificate carries, for name constraints.
#[derive(Debug, Clone, Default)]
struct Names {
    /// The subject (if not empty) and every subjectAltName directoryName.
    directory_names: Vec<(String, Vec<Rdn>)>,
    /// Other name forms present (subjectAltName types, or rfc822Name for an
    /// emailAddress attribute in the subject).
    other_forms: Vec<&'static str>,
}

fn general_name_form(name: &GeneralName<'_>) -> &'static str {
    match name {
        GeneralName::OtherName(..) => "otherName",
        GeneralName::RFC822Name(_) => "rfc822Name",
        GeneralName::DNSName(_) => "dNSName",
        GeneralName::X400Address(_) => "x400Address",
        GeneralName::DirectoryName(_) => "directoryName",
        GeneralName::EDIPartyName(_) => "ediPartyName",
        GeneralName::URI(_) => "uniformResourceIdentifier",
        GeneralName::IPAddress(_) => "iPAddress",
        GeneralName::RegisteredID(_) => "registeredID",
    }
}

/// A CA's nameConstraints, as far as they can be enforced.
#[derive(Debug, Clone, Default)]
struct NameConstraintRules {
    permitted_directory: Vec<(String, Vec<Rdn>)>,
    excluded_directory: Vec<(String, Vec<Rdn>)>,
    /// Constrained name forms other than directoryName.
    other_forms: Vec<&'static str>,
}

impl NameConstraintRules {
    /// Checks the names of a certificate below the constraining CA.
    fn check(
        &self,
        constrained_by: &str,
        certificate: &str,
        names: &Names,
    ) -> Result<(), EkTrustError> {
        let violation = |name: &str, reason: String| EkTrustError::NameConstraintViolation {
            certificate: certificate.to_owned(),
            name: name.to_owned(),
            constrained_by: constrained_by.to_owned(),
            reason,
        };
        for (display, rdns) in &names.directory_names {
            if !self.permitted_directory.is_empty()
                && !self
                    .permitted_directory
                    .iter()
                    .any(|(_, base)| rdns.starts_with(base))
            {
                let permitted: Vec<&str> = self
                    .permitted_directory
                    .iter()
                    .map(|(d, _)| d.as_str())
                    .collect();
                return Err(violation(
                    display,
                    format!(
                        "is outside the permitted directoryName subtrees [{}]",
                        permitted.join("; ")
                    ),
                ));
            }
            if let Some((base, _)) = self
                .excluded_directory
                .iter()
                .find(|(_, base)| rdns.starts_with(base))
            {
                return Err(violation(
                    display,
                    format!("is inside the excluded directoryName subtree '{base}'"),
                ));
            }
        }
        for form in &names.other_forms {
            if self.other_forms.contains(form) {
                return Err(violation(
                    form,
                    format!(
                        "is a {form}, and rootmark cannot enforce {form} constraints (it enforces directoryName only); refused rather than ignored"
                    ),
                ));
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Per-certificate facts.

/// What a certificate is, for the critical-extension policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Ek,
    Ca,
}

/// TPM attributes from the EK certificate's subjectAltName directoryName.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct TpmAttributes {
    manufacturer: Option<String>,
    model: Option<String>,
    version: Option<String>,
}

/// A defect that makes a certificate unusable, found while reading it.
#[derive(Debug, Clone)]
enum Defect {
    UnsupportedCritical { oid: String },
    Malformed { oid: String, reason: String },
}

impl Defect {
    fn to_error(&self, certificate: &str) -> EkTrustError {
        match self {
            Defect::UnsupportedCritical { oid } => EkTrustError::UnsupportedCriticalExtension {
                certificate: certificate.to_owned(),
                oid: oid.clone(),
                name: extension_name(oid).to_owned(),
            },
            Defect::Malformed { oid, reason } => EkTrustError::MalformedExtension {
                certificate: certificate.to_owned(),
                oid: oid.clone(),
                name: extension_name(oid).to_owned(),
                reason: reason.clone(),
            },
        }
    }
}

fn extension_name(oid: &str) -> &'static str {
    match oid {
        EXT_SUBJECT_DIRECTORY_ATTRIBUTES => "subjectDirectoryAttributes",
        EXT_SUBJECT_KEY_ID => "subjectKeyIdentifier",
        EXT_KEY_USAGE => "keyUsage",
        EXT_SUBJECT_ALT_NAME => "subjectAltName",
        "2.5.29.18" => "issuerAltName",
        EXT_BASIC_CONSTRAINTS => "basicConstraints",
        EXT_NAME_CONSTRAINTS => "nameConstraints",
        "2.5.29.31" => "cRLDistributionPoints",
        EXT_CERTIFICATE_POLICIES => "certificatePolicies",
        "2.5.29.33" => "policyMappings",
        EXT_AUTHORITY_KEY_ID => "authorityKeyIdentifier",
        "2.5.29.36" => "policyConstraints",
        EXT_EXTENDED_KEY_USAGE => "extKeyUsage",
        "2.5.29.54" => "inhibitAnyPolicy",
        "1.3.6.1.5.5.7.1.1" => "authorityInfoAccess",
        _ => "unknown extension",
    }
}

/// Everything the chain check needs from one certificate.
#[derive(Debug, Clone, Default)]
struct CertFacts {
    basic_constraints: Option<(bool, Option<u32>)>,
    key_cert_sign: Option<bool>,
    ski: Option<Vec<u8>>,
    aki: Option<Vec<u8>>,
    names: Names,
    tpm: TpmAttributes,
    name_constraints: Option<NameConstraintRules>,
    defect: Option<Defect>,
}

fn analyze(cert: &X509Certificate<'_>, role: Role) -> CertFacts {
    let mut facts = CertFacts::default();
    let subject = cert.subject();
    let subject_rdns = normalize_name(subject);
    if !subject_rdns.is_empty() {
        facts
            .names
            .directory_names
            .push((display_name(subject), subject_rdns));
    }
    if subject
        .iter_attributes()
        .any(|a| a.attr_type().to_id_string() == OID_EMAIL_ADDRESS)
    {
        facts.names.other_forms.push("rfc822Name");
    }
    let mut seen = HashSet::new();
    for ext in cert.extensions() {
        let oid = ext.oid.to_id_string();
        if facts.defect.is_some() {
            break;
        }
        if !seen.insert(oid.clone()) {
            facts.defect = Some(Defect::Malformed {
                oid,
                reason: "appears twice (RFC 5280 §4.2 allows each extension once)".to_owned(),
            });
            break;
        }
        let parsed = ext.parsed_extension();
        if let ParsedExtension::ParseError { error } = parsed {
            // Refuse what we must interpret or cannot ignore; skip the rest.
            let interpreted = matches!(
                oid.as_str(),
                EXT_BASIC_CONSTRAINTS
                    | EXT_KEY_USAGE
                    | EXT_SUBJECT_ALT_NAME
                    | EXT_NAME_CONSTRAINTS
                    | EXT_AUTHORITY_KEY_ID
                    | EXT_SUBJECT_KEY_ID
            );
            if interpreted || ext.critical {
                facts.defect = Some(Defect::Malformed {
                    oid,
                    reason: format!("cannot be parsed: {error}"),
                });
            }
            continue;
        }
        match parsed {
            ParsedExtension::BasicConstraints(bc) => {
                facts.basic_constraints = Some((bc.ca, bc.path_len_constraint));
            }
            ParsedExtension::KeyUsage(ku) => facts.key_cert_sign = Some(ku.key_cert_sign()),
            ParsedExtension::SubjectKeyIdentifier(id) => facts.ski = Some(id.0.to_vec()),
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                facts.aki = aki.key_identifier.as_ref().map(|id| id.0.to_vec());
            }
            ParsedExtension::SubjectAlternativeName(san) => {
                for name in &san.general_names {
                    match name {
                        GeneralName::DirectoryName(dn) => {
                            read_tpm_attributes(dn, &mut facts.tpm);
                            facts
                                .names
                                .directory_names
                                .push((display_name(dn), normalize_name(dn)));
                        }
                        other => facts.names.other_forms.push(general_name_form(other)),
                    }
                }
            }
            ParsedExtension::NameConstraints(nc) => {
                let mut rules = NameConstraintRules::default();
                let subtrees = nc
                    .permitted_subtrees
                    .iter()
                    .flatten()
                    .map(|s| (true, s))
                    .chain(nc.excluded_subtrees.iter().flatten().map(|s| (false, s)));
                for (permitted, subtree) in subtrees {
                    match &subtree.base {
                        GeneralName::DirectoryName(dn) => {
                            let entry = (display_name(dn), normalize_name(dn));
                            if permitted {
                                rules.permitted_directory.push(entry);
                            } else {
                                rules.excluded_directory.push(entry);
                            }
                        }
                        other => rules.other_forms.push(general_name_form(other)),
                    }
                }
                facts.name_constraints = Some(rules);
            }
            _ => {}
        }
        if ext.critical && !critical_allowed(&oid, role) {
            facts.defect = Some(Defect::UnsupportedCritical { oid });
        }
    }
    facts
}

/// Critical extensions the verifier understands (or may safely accept).
fn critical_allowed(oid: &str, role: Role) -> bool {
    match oid {
        // Interpreted: basicConstraints, keyUsage, subjectAltName (the TCG
        // profile makes it critical when the subject is empty), key ids.
        EXT_BASIC_CONSTRAINTS
        | EXT_KEY_USAGE
        | EXT_SUBJECT_ALT_NAME
        | EXT_SUBJECT_KEY_ID
        | EXT_AUTHORITY_KEY_ID => true,
        // Accepted without restricting anything: the verifier requires no
        // particular policy or purpose, and subjectDirectoryAttributes only
        // describes the TPM (TCG specification / security assertions).
        EXT_EXTENDED_KEY_USAGE | EXT_CERTIFICATE_POLICIES | EXT_SUBJECT_DIRECTORY_ATTRIBUTES => {
            true
        }
        // Enforced for directoryName (other forms are refused when present).
        EXT_NAME_CONSTRAINTS => role == Role::Ca,
        _ => false,
    }
}

fn read_tpm_attributes(dn: &X509Name<'_>, tpm: &mut TpmAttributes) {
    for attr in dn.iter_attributes() {
        let slot = match attr.attr_type().to_id_string().as_str() {
            OID_TPM_MANUFACTURER => &mut tpm.manufacturer,
            OID_TPM_MODEL => &mut tpm.model,
            OID_TPM_VERSION => &mut tpm.version,
            _ => continue,
        };
        if slot.is_none() {
            *slot = Some(match attr.as_str() {
                Ok(s) => s.to_owned(),
                Err(_) => hex::encode(attr.as_slice()),
            });
        }
    }
}

// ---------------------------------------------------------------------------
// Times.

fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}

fn display_time(t: i64) -> String {
    match ASN1Time::from_timestamp(t) {
        Ok(t) => t.to_string(),
        Err(_) => format!("{t} s since 1970"),
    }
}

fn check_validity(
    certificate: &str,
    not_before: i64,
    not_after: i64,
    now: i64,
    fix: impl FnOnce() -> String,
) -> Result<(), EkTrustError> {
    if now < not_before {
        return Err(EkTrustError::NotYetValid {
            certificate: certificate.to_owned(),
            not_before: display_time(not_before),
            now: display_time(now),
        });
    }
    if now > not_after {
        return Err(EkTrustError::Expired {
            certificate: certificate.to_owned(),
            not_after: display_time(not_after),
            now: display_time(now),
            fix: fix(),
        });
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Roots.

/// One trusted certificate.
struct RootCert {
    /// "CA certificate 'CN=…' (file)".
    desc: String,
    subject: String,
    issuer: String,
    self_issued: bool,
    /// Self-issued and its signature verifies with its own key.
    self_signed: bool,
    not_before: i64,
    not_after: i64,
    facts: CertFacts,
    key: IssuerKey,
    /// How many other roots have this certificate's issuer name (and matching key id).
    issuer_candidates: usize,
    /// The roots whose key verifies this certificate's signature.
    issuers: Vec<usize>,
    /// Why the other candidates failed.
    issuer_failures: Vec<String>,
}

/// The EK manufacturer trust anchors.
///
/// Every certificate loaded is trusted as an anchor (Keylime's
/// `tpm_cert_store` model: manufacturers publish roots and intermediates, and
/// an administrator puts what they trust in one directory). A chain is still
/// followed upwards through the loaded certificates as far as it goes — to a
/// self-signed root, or to a certificate whose issuer is not loaded — and
/// every certificate on it must be valid at the verification time, be a CA,
/// and carry a signature its issuer's key verifies.
pub struct EkRoots {
    certs: Vec<RootCert>,
    by_subject: HashMap<Vec<u8>, Vec<usize>>,
    source: String,
}

impl fmt::Debug for EkRoots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EkRoots")
            .field("source", &self.source)
            .field(
                "subjects",
                &self.certs.iter().map(|c| &c.subject).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl EkRoots {
    /// Loads every certificate in `path`: `.pem`/`.crt` files (PEM, several
    /// certificates per file allowed) and `.der`/`.cer` files (DER; a PEM file
    /// with one of these names is read as PEM too). Other files and
    /// subdirectories are ignored. A file that holds no parsable certificate
    /// is an error naming it. An empty directory is allowed (only the EK
    /// allow-list can then admit TPMs).
    pub fn load_dir(path: &Path) -> Result<Self, EkTrustError> {
        let unreadable = |source| EkTrustError::RootsUnreadable {
            path: path.to_owned(),
            source,
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(path).map_err(unreadable)? {
            let entry = entry.map_err(unreadable)?;
            let file = entry.path();
            let ext = file
                .extension()
                .and_then(|e| e.to_str())
                .map(str::to_ascii_lowercase);
            if matches!(ext.as_deref(), Some("pem" | "crt" | "der" | "cer")) && file.is_file() {
                files.push(file);
            }
        }
        files.sort();
        let mut certs = Vec::new();
        for file in files {
            let bytes = std::fs::read(&file).map_err(|source| EkTrustError::RootsUnreadable {
                path: file.clone(),
                source,
            })?;
            let shown = file.display().to_string();
            let found = split_certificates(&bytes).map_err(|reason| EkTrustError::RootFile {
                file: shown.clone(),
                reason,
            })?;
            let many = found.len() > 1;
            for (i, der) in found.into_iter().enumerate() {
                let label = if many {
                    format!("{shown} (certificate {})", i + 1)
                } else {
                    shown.clone()
                };
                certs.push((label, der));
            }
        }
        Self::build(certs, path.display().to_string())
    }

    /// Trusts the given DER certificates.
    pub fn from_der_certs(certs: Vec<Vec<u8>>) -> Result<Self, EkTrustError> {
        let labelled = certs
            .into_iter()
            .enumerate()
            .map(|(i, der)| (format!("configured root certificate {}", i + 1), der))
            .collect();
        Self::build(labelled, "the configured EK roots".to_owned())
    }

    /// How many certificates are trusted.
    pub fn len(&self) -> usize {
        self.certs.len()
    }

    /// True when no certificate is trusted.
    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }

    /// Where the roots were loaded from (a directory, or "the configured EK roots").
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The subjects of the trusted certificates, in load order.
    pub fn subjects(&self) -> impl Iterator<Item = &str> {
        self.certs.iter().map(|c| c.subject.as_str())
    }

    fn build(labelled: Vec<(String, Vec<u8>)>, source: String) -> Result<Self, EkTrustError> {
        // Drop exact duplicates (the same certificate in two files).
        let mut seen = HashSet::new();
        let labelled: Vec<(String, Vec<u8>)> = labelled
            .into_iter()
            .filter(|(_, der)| seen.insert(sha256(der)))
            .collect();
        let mut parsed = Vec::with_capacity(labelled.len());
        for (label, der) in &labelled {
            let cert = match x509_parser::parse_x509_certificate(der) {
                Ok(([], cert)) => cert,
                Ok((rest, _)) => {
                    return Err(EkTrustError::RootFile {
                        file: label.clone(),
                        reason: format!("{} bytes follow the certificate", rest.len()),
                    });
                }
                Err(e) => {
                    return Err(EkTrustError::RootFile {
                        file: label.clone(),
                        reason: format!("not an X.509 certificate: {e}"),
                    });
                }
            };
            parsed.push((label.as_str(), cert));
        }

        let mut certs = Vec::with_capacity(parsed.len());
        let mut by_subject: HashMap<Vec<u8>, Vec<usize>> = HashMap::new();
        for (i, (label, cert)) in parsed.iter().enumerate() {
            let subject_key = name_key(&normalize_name(cert.subject()));
            let issuer_key = name_key(&normalize_name(cert.issuer()));
            let subject = display_name(cert.subject());
            let validity = cert.validity();
            by_subject.entry(subject_key.clone()).or_default().push(i);
            certs.push(RootCert {
                desc: format!("CA certificate '{subject}' ({label})"),
                subject,
                self_issued: subject_key == issuer_key,
                issuer: display_name(cert.issuer()),
                self_signed: false,
                not_before: validity.not_before.timestamp(),
                not_after: validity.not_after.timestamp(),
                facts: analyze(cert, Role::Ca),
                key: IssuerKey::from_spki(cert.public_key()),
                issuer_candidates: 0,
                issuers: Vec::new(),
                issuer_failures: Vec::new(),
            });
        }

        let mut roots = EkRoots {
            certs,
            by_subject,
            source,
        };
        // Link each certificate to the roots that verify its signature.
        for (i, (_, cert)) in parsed.iter().enumerate() {
            let issuer_key = name_key(&normalize_name(cert.issuer()));
            let aki = roots.certs[i].facts.aki.clone();
            let alg = signature_algorithm(&cert.signature_algorithm);
            let tbs = cert.tbs_certificate.as_ref();
            let signature: &[u8] = &cert.signature_value.data;
            let self_issued = roots.certs[i].self_issued;
            // A self-issued certificate verified by its own key is self-signed.
            if let (true, Ok(alg)) = (self_issued, &alg)
                && roots.certs[i].key.verify(*alg, tbs, signature).is_ok()
                && cert.tbs_certificate.signature == cert.signature_algorithm
            {
                roots.certs[i].self_signed = true;
                continue;
            }
            let candidates: Vec<usize> = roots
                .candidates(&issuer_key, aki.as_deref())
                .into_iter()
                .filter(|&j| j != i)
                .collect();
            let mut issuers = Vec::new();
            let mut failures = Vec::new();
            for &j in &candidates {
                let result = match &alg {
                    Ok(alg) => roots.certs[j].key.verify(*alg, tbs, signature),
                    Err(e) => Err(format!("unsupported signature algorithm {e}")),
                };
                match result {
                    Ok(()) => issuers.push(j),
                    Err(reason) => {
                        failures.push(format!("{}: {reason}", roots.certs[j].desc));
                    }
                }
            }
            if cert.tbs_certificate.signature != cert.signature_algorithm {
                issuers.clear();
                failures.push(
                    "the signature algorithm inside the signed part differs from the outer one"
                        .to_owned(),
                );
            }
            let root = &mut roots.certs[i];
            root.issuer_candidates = candidates.len();
            root.issuers = issuers;
            root.issuer_failures = failures;
        }
        Ok(roots)
    }

    /// Roots whose subject is `issuer_key`, filtered by the authority key
    /// identifier when both sides carry one.
    fn candidates(&self, issuer_key: &[u8], aki: Option<&[u8]>) -> Vec<usize> {
        self.by_subject
            .get(issuer_key)
            .map(|list| {
                list.iter()
                    .copied()
                    .filter(|&j| match (aki, self.certs[j].facts.ski.as_deref()) {
                        (Some(aki), Some(ski)) => aki == ski,
                        _ => true,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// May root `i` issue a certificate with `intermediates_below`
    /// non-self-issued intermediates between it and the EK certificate?
    fn can_issue(&self, i: usize, intermediates_below: u32) -> Result<(), EkTrustError> {
        let c = &self.certs[i];
        let not_a_ca = |reason: String| EkTrustError::NotACa {
            certificate: c.desc.clone(),
            reason,
            roots: self.source.clone(),
        };
        match c.facts.basic_constraints {
            Some((false, _)) => {
                return Err(not_a_ca("its basicConstraints has cA=false".to_owned()));
            }
            Some((true, Some(max))) if intermediates_below > max => {
                return Err(not_a_ca(format!(
                    "its basicConstraints pathLenConstraint {max} allows {max} intermediate CA(s) below it, the chain has {intermediates_below}"
                )));
            }
            Some((true, _)) => {}
            // Tolerated on a self-signed anchor (old roots, v1 certificates).
            None if c.self_signed => {}
            None => {
                return Err(not_a_ca(
                    "it has no basicConstraints extension (only a self-signed root may omit it)"
                        .to_owned(),
                ));
            }
        }
        if c.facts.key_cert_sign == Some(false) {
            return Err(not_a_ca(
                "its keyUsage does not include keyCertSign".to_owned(),
            ));
        }
        Ok(())
    }

    /// Follows the chain up from root `idx`; `below` holds the names of the
    /// certificates under it (for name constraints).
    fn walk<'a>(
        &'a self,
        idx: usize,
        below: &mut Vec<(&'a str, &'a Names)>,
        intermediates_below: u32,
        now: i64,
        visited: &mut Vec<usize>,
    ) -> Result<ChainPath, EkTrustError> {
        let c = &self.certs[idx];
        if let Some(defect) = &c.facts.defect {
            return Err(defect.to_error(&c.desc));
        }
        check_validity(&c.desc, c.not_before, c.not_after, now, || {
            format!(
                "put the manufacturer's renewed certificate in the roots at {} and remove the old one",
                self.source
            )
        })?;
        if let Some(rules) = &c.facts.name_constraints {
            for (certificate, names) in below.iter() {
                rules.check(&c.desc, certificate, names)?;
            }
        }
        let done = ChainPath {
            roots: vec![idx],
            not_before: c.not_before,
            not_after: c.not_after,
        };
        if c.self_signed || c.issuer_candidates == 0 {
            return Ok(done);
        }
        if c.issuers.is_empty() {
            return Err(EkTrustError::BadSignature {
                certificate: c.desc.clone(),
                issuer: c.issuer.clone(),
                reason: c.issuer_failures.join("; "),
                roots: self.source.clone(),
            });
        }
        if visited.len() + 1 >= MAX_CHAIN_LEN {
            return Err(EkTrustError::ChainTooLong {
                certificate: c.desc.clone(),
                roots: self.source.clone(),
                max: MAX_CHAIN_LEN,
            });
        }
        let next_below = intermediates_below + u32::from(!c.self_issued);
        // RFC 5280 §4.2.1.10: self-issued intermediates are not constrained.
        let pushed = !c.self_issued;
        if pushed {
            below.push((&c.desc, &c.facts.names));
        }
        let mut first_error = None;
        for &issuer in &c.issuers {
            if visited.contains(&issuer) {
                continue;
            }
            visited.push(issuer);
            let result = self
                .can_issue(issuer, next_below)
                .and_then(|()| self.walk(issuer, below, next_below, now, visited));
            visited.pop();
            match result {
                Ok(mut path) => {
                    path.roots.insert(0, idx);
                    path.not_before = path.not_before.max(c.not_before);
                    path.not_after = path.not_after.min(c.not_after);
                    if pushed {
                        below.pop();
                    }
                    return Ok(path);
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if pushed {
            below.pop();
        }
        Err(first_error.unwrap_or_else(|| EkTrustError::ChainTooLong {
            certificate: c.desc.clone(),
            roots: self.source.clone(),
            max: MAX_CHAIN_LEN,
        }))
    }
}

/// Splits a file into DER certificates: PEM blocks labelled CERTIFICATE if
/// the file is PEM, else the file itself.
fn split_certificates(bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let is_pem = bytes.windows(11).any(|w| w == b"-----BEGIN ");
    if !is_pem {
        return if bytes.first() == Some(&0x30) {
            Ok(vec![bytes.to_vec()])
        } else {
            Err("neither PEM nor DER".to_owned())
        };
    }
    let mut certs = Vec::new();
    for block in Pem::iter_from_buffer(bytes) {
        let block = block.map_err(|e| format!("bad PEM block: {e}"))?;
        if block.label == "CERTIFICATE" {
            certs.push(block.contents);
        }
    }
    if certs.is_empty() {
        return Err("it holds no PEM block labelled CERTIFICATE".to_owned());
    }
    Ok(certs)
}

/// A verified path through the roots, bottom-up.
struct ChainPath {
    roots: Vec<usize>,
    not_before: i64,
    not_after: i64,
}

// ---------------------------------------------------------------------------
// Allow-list.

/// EKs trusted without a certificate, by SHA-256 of their `TPMT_PUBLIC`
/// (the node ID hash of DESIGN.md §2).
#[derive(Debug, Clone, Default)]
pub struct EkAllowList {
    hashes: HashSet<[u8; 32]>,
    source: String,
}

impl EkAllowList {
    /// An empty allow-list.
    pub fn empty() -> Self {
        EkAllowList {
            hashes: HashSet::new(),
            source: "the EK allow-list (empty)".to_owned(),
        }
    }

    /// An allow-list of the given hex SHA-256 hashes (case-insensitive).
    pub fn from_hex<I, S>(hashes: I) -> Result<Self, EkTrustError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let source = "the configured EK allow-list".to_owned();
        let mut list = EkAllowList {
            hashes: HashSet::new(),
            source,
        };
        for (i, hash) in hashes.into_iter().enumerate() {
            list.insert_hex(hash.as_ref(), i + 1)?;
        }
        Ok(list)
    }

    /// Reads an allow-list file: one hex SHA-256 per line; blank lines and
    /// text after `#` are ignored.
    pub fn load_file(path: &Path) -> Result<Self, EkTrustError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| EkTrustError::AllowListUnreadable {
                path: path.to_owned(),
                source,
            })?;
        let mut list = EkAllowList {
            hashes: HashSet::new(),
            source: format!("the EK allow-list at {}", path.display()),
        };
        for (i, line) in text.lines().enumerate() {
            let entry = line.split('#').next().unwrap_or("").trim();
            if !entry.is_empty() {
                list.insert_hex(entry, i + 1)?;
            }
        }
        Ok(list)
    }

    fn insert_hex(&mut self, entry: &str, position: usize) -> Result<(), EkTrustError> {
        let error = |reason: String| EkTrustError::AllowListEntry {
            list: self.source.clone(),
            entry: position,
            reason,
        };
        let entry = entry.trim();
        let mut hash = [0u8; 32];
        if entry.len() != 64 {
            return Err(error(format!(
                "'{entry}' has {} characters, not 64",
                entry.len()
            )));
        }
        hex::decode_to_slice(entry, &mut hash)
            .map_err(|e| error(format!("'{entry}' is not hex: {e}")))?;
        self.hashes.insert(hash);
        Ok(())
    }

    /// Adds the SHA-256 of an EK `TPMT_PUBLIC`.
    pub fn insert(&mut self, ek_sha256: [u8; 32]) {
        self.hashes.insert(ek_sha256);
    }

    /// True when the EK with this SHA-256 (hex, any case) is allow-listed.
    pub fn contains_hex(&self, ek_hash_hex: &str) -> bool {
        let mut hash = [0u8; 32];
        hex::decode_to_slice(ek_hash_hex, &mut hash).is_ok() && self.hashes.contains(&hash)
    }

    /// True when the EK with this SHA-256 is allow-listed.
    pub fn contains(&self, ek_sha256: &[u8; 32]) -> bool {
        self.hashes.contains(ek_sha256)
    }

    /// How many EKs are allow-listed.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// True when no EK is allow-listed.
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }
}

// ---------------------------------------------------------------------------
// Verifier.

/// Why an EK is trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EkTrustPath {
    /// The EK certificate chains to the manufacturer roots.
    CertificateChain {
        /// Subject of the top certificate of the chain (a self-signed root,
        /// or the highest trusted certificate whose issuer is not loaded).
        anchor: String,
        /// Subjects of the certificates between the EK certificate and the
        /// anchor, bottom-up.
        intermediates: Vec<String>,
    },
    /// The EK hash is on the allow-list.
    AllowList,
}

impl fmt::Display for EkTrustPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EkTrustPath::CertificateChain {
                anchor,
                intermediates,
            } => {
                write!(f, "EK certificate chain to '{anchor}'")?;
                if !intermediates.is_empty() {
                    write!(f, " via '{}'", intermediates.join("', '"))?;
                }
                Ok(())
            }
            EkTrustPath::AllowList => f.write_str("EK allow-list"),
        }
    }
}

/// A trusted EK: who made the TPM and why it is trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EkIdentity {
    /// Lowercase hex SHA-256 of the EK `TPMT_PUBLIC` (the node ID hash).
    pub ek_hash: String,
    /// TPM manufacturer from the EK certificate's subjectAltName directoryName
    /// (TCG attribute 2.23.133.2.1), e.g. `id:00001014`; `None` without a
    /// verified certificate.
    pub manufacturer: Option<String>,
    /// TPM model (TCG attribute 2.23.133.2.2), e.g. `swtpm`.
    pub model: Option<String>,
    /// TPM firmware version (TCG attribute 2.23.133.2.3), e.g. `id:20191023`.
    pub version: Option<String>,
    /// How the EK was trusted.
    pub trusted_by: EkTrustPath,
}

/// What the key comparison needs from an EK certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
enum CertKey {
    Rsa {
        modulus: Vec<u8>,
        exponent: Option<u64>,
    },
    Ec {
        curve: Option<Curve>,
        curve_oid: String,
        point: Vec<u8>,
    },
    Other(String),
}

impl CertKey {
    fn from_spki(spki: &SubjectPublicKeyInfo<'_>) -> CertKey {
        let oid = spki.algorithm.algorithm.to_id_string();
        match oid.as_str() {
            OID_RSA_ENCRYPTION | OID_RSASSA_PSS => match spki.parsed() {
                Ok(X509PublicKey::RSA(rsa)) => CertKey::Rsa {
                    modulus: significant(rsa.modulus).to_vec(),
                    exponent: rsa.try_exponent().ok(),
                },
                _ => CertKey::Other("a malformed RSA key".to_owned()),
            },
            OID_EC_PUBLIC_KEY => {
                let curve_oid = spki
                    .algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p| p.as_oid().ok())
                    .map(|o| o.to_id_string())
                    .unwrap_or_else(|| "(missing)".to_owned());
                CertKey::Ec {
                    curve: Curve::from_oid(&curve_oid),
                    curve_oid,
                    point: spki.subject_public_key.data.to_vec(),
                }
            }
            other => CertKey::Other(format!("algorithm {other}")),
        }
    }

    fn describe(&self) -> String {
        match self {
            CertKey::Rsa { modulus, exponent } => format!(
                "RSA-{} modulus {} exponent {}",
                modulus.len() * 8,
                abbreviate(modulus),
                exponent.map_or_else(|| "(unreadable)".to_owned(), |e| e.to_string())
            ),
            CertKey::Ec {
                curve,
                curve_oid,
                point,
            } => format!(
                "ECC {} point {}",
                curve.map_or_else(|| curve_oid.clone(), |c| c.to_string()),
                abbreviate(point)
            ),
            CertKey::Other(what) => what.clone(),
        }
    }
}

fn describe_tpm_key(ek: &TpmtPublic) -> String {
    match &ek.key {
        PublicKey::Rsa { modulus, .. } => format!(
            "RSA-{} modulus {} exponent {}",
            significant(modulus).len() * 8,
            abbreviate(significant(modulus)),
            ek.rsa_exponent().unwrap_or(0)
        ),
        PublicKey::Ecc { curve, .. } => format!(
            "ECC {} point {}",
            Curve::from_tpm(*curve)
                .map_or_else(|| format!("curve {:#06x}", curve.id()), |c| c.to_string()),
            ek.ecc_point()
                .map_or_else(|| "(unusable)".to_owned(), |p| abbreviate(&p))
        ),
        PublicKey::KeyedHash { .. } => "a keyed-hash object, not an asymmetric key".to_owned(),
        PublicKey::SymCipher { .. } => "a symmetric key, not an asymmetric key".to_owned(),
    }
}

fn abbreviate(bytes: &[u8]) -> String {
    if bytes.len() <= 8 {
        return hex::encode(bytes);
    }
    let tail = &bytes[bytes.len() - 4..];
    format!("{}…{}", hex::encode(&bytes[..4]), hex::encode(tail))
}

/// Is the certificate's key the EK public?
fn key_matches(cert: &CertKey, ek: &TpmtPublic) -> bool {
    match (cert, &ek.key) {
        (CertKey::Rsa { modulus, exponent }, PublicKey::Rsa { modulus: tpm, .. }) => {
            modulus.as_slice() == significant(tpm) && *exponent == ek.rsa_exponent().map(u64::from)
        }
        (
            CertKey::Ec { curve, point, .. },
            PublicKey::Ecc {
                curve: tpm_curve, ..
            },
        ) => {
            curve.is_some()
                && *curve == Curve::from_tpm(*tpm_curve)
                && ek.ecc_point().as_deref() == Some(point.as_slice())
        }
        _ => false,
    }
}

/// A verified EK certificate chain, as cached.
#[derive(Debug, Clone)]
struct VerifiedChain {
    not_before: i64,
    not_after: i64,
    key: CertKey,
    tpm: TpmAttributes,
    anchor: String,
    intermediates: Vec<String>,
}

#[derive(Default)]
struct Cache {
    map: HashMap<[u8; 32], VerifiedChain>,
    order: VecDeque<[u8; 32]>,
}

/// Decides whether an EK is trusted: by certificate chain to the
/// manufacturer roots, or by the allow-list.
///
/// Verified chains are cached by the certificate's SHA-256 (FIFO, bounded);
/// a cached chain is used only within the validity window of every
/// certificate on it, and the EK key comparison runs every time.
pub struct EkVerifier {
    roots: EkRoots,
    allow: EkAllowList,
    cache: RwLock<Cache>,
    cache_capacity: usize,
}

impl fmt::Debug for EkVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EkVerifier")
            .field("roots", &self.roots)
            .field("allow_list_len", &self.allow.len())
            .field("cache_capacity", &self.cache_capacity)
            .finish()
    }
}

impl EkVerifier {
    /// A verifier over `roots` and `allow`, caching up to
    /// [`DEFAULT_CACHE_CAPACITY`] verified chains.
    pub fn new(roots: EkRoots, allow: EkAllowList) -> Self {
        Self::with_cache_capacity(roots, allow, DEFAULT_CACHE_CAPACITY)
    }

    /// A verifier caching up to `capacity` verified chains (0 disables the cache).
    pub fn with_cache_capacity(roots: EkRoots, allow: EkAllowList, capacity: usize) -> Self {
        EkVerifier {
            roots,
            allow,
            cache: RwLock::new(Cache::default()),
            cache_capacity: capacity,
        }
    }

    /// The manufacturer roots.
    pub fn roots(&self) -> &EkRoots {
        &self.roots
    }

    /// The allow-list.
    pub fn allow_list(&self) -> &EkAllowList {
        &self.allow
    }

    /// How many verified chains are cached.
    pub fn cached_chains(&self) -> usize {
        self.cache.read().map_or(0, |c| c.map.len())
    }

    /// Decides whether `ek_public` is a trusted EK at time `now`.
    ///
    /// With a certificate (DER): it must chain to the manufacturer roots and
    /// certify exactly `ek_public` (RSA modulus and exponent, or ECC curve and
    /// point). If that fails but the EK hash is allow-listed, the EK is still
    /// trusted, through the allow-list (the administrator trusted this very
    /// key; certificate facts are then not reported). Without a certificate
    /// the EK hash must be on the allow-list.
    pub fn verify(
        &self,
        ek_public: &TpmtPublic,
        ek_cert_der: Option<&[u8]>,
        now: SystemTime,
    ) -> Result<EkIdentity, EkTrustError> {
        let hash = sha256(ek_public.tpmt_bytes());
        let ek_hash = hex::encode(hash);
        let allow_listed = self.allow.contains(&hash);
        let by_allow_list = |ek_hash: String| EkIdentity {
            ek_hash,
            manufacturer: None,
            model: None,
            version: None,
            trusted_by: EkTrustPath::AllowList,
        };
        let Some(der) = ek_cert_der else {
            return if allow_listed {
                Ok(by_allow_list(ek_hash))
            } else {
                Err(EkTrustError::UntrustedNoCertificate {
                    ek_hash,
                    allow_list: self.allow.source.clone(),
                    roots: self.roots.source.clone(),
                })
            };
        };
        match self.verify_certificate(ek_public, der, unix_seconds(now)) {
            Ok(chain) => Ok(EkIdentity {
                ek_hash,
                manufacturer: chain.tpm.manufacturer,
                model: chain.tpm.model,
                version: chain.tpm.version,
                trusted_by: EkTrustPath::CertificateChain {
                    anchor: chain.anchor,
                    intermediates: chain.intermediates,
                },
            }),
            Err(_) if allow_listed => Ok(by_allow_list(ek_hash)),
            Err(e) => Err(e),
        }
    }

    fn verify_certificate(
        &self,
        ek_public: &TpmtPublic,
        der: &[u8],
        now: i64,
    ) -> Result<VerifiedChain, EkTrustError> {
        let cache_key = sha256(der);
        let cached = self.cache.read().ok().and_then(|cache| {
            cache
                .map
                .get(&cache_key)
                .filter(|c| c.not_before <= now && now <= c.not_after)
                .cloned()
        });
        let chain = match cached {
            Some(chain) => chain,
            None => {
                let chain = self.verify_chain(der, now)?;
                self.remember(cache_key, &chain);
                chain
            }
        };
        if !key_matches(&chain.key, ek_public) {
            return Err(EkTrustError::KeyMismatch {
                certificate_key: chain.key.describe(),
                ek_key: describe_tpm_key(ek_public),
            });
        }
        Ok(chain)
    }

    fn remember(&self, key: [u8; 32], chain: &VerifiedChain) {
        if self.cache_capacity == 0 {
            return;
        }
        let Ok(mut cache) = self.cache.write() else {
            return;
        };
        if let Some(entry) = cache.map.get_mut(&key) {
            *entry = chain.clone();
            return;
        }
        while cache.map.len() >= self.cache_capacity {
            match cache.order.pop_front() {
                Some(old) => {
                    cache.map.remove(&old);
                }
                None => break,
            }
        }
        cache.order.push_back(key);
        cache.map.insert(key, chain.clone());
    }

    /// Verifies the EK certificate's chain to the roots (not its key).
    fn verify_chain(&self, der: &[u8], now: i64) -> Result<VerifiedChain, EkTrustError> {
        let cert = match x509_parser::parse_x509_certificate(der) {
            Ok(([], cert)) => cert,
            Ok((rest, _)) => {
                return Err(EkTrustError::MalformedCertificate {
                    reason: format!("{} bytes follow the certificate", rest.len()),
                });
            }
            Err(e) => {
                return Err(EkTrustError::MalformedCertificate {
                    reason: e.to_string(),
                });
            }
        };
        let issuer = display_name(cert.issuer());
        let desc = format!(
            "EK certificate (serial {}, issuer '{issuer}')",
            cert.raw_serial_as_string()
        );
        let facts = analyze(&cert, Role::Ek);
        if let Some(defect) = &facts.defect {
            return Err(defect.to_error(&desc));
        }
        let validity = cert.validity();
        let (not_before, not_after) = (
            validity.not_before.timestamp(),
            validity.not_after.timestamp(),
        );
        check_validity(&desc, not_before, not_after, now, || {
            "the TPM's EK certificate must be re-provisioned by its manufacturer or platform vendor, or this EK trusted through the EK allow-list".to_owned()
        })?;
        let unsupported = |algorithm: String| EkTrustError::UnsupportedSignatureAlgorithm {
            certificate: desc.clone(),
            algorithm,
        };
        let alg = signature_algorithm(&cert.signature_algorithm).map_err(unsupported)?;
        if cert.tbs_certificate.signature != cert.signature_algorithm {
            return Err(unsupported(
                "the signature algorithm inside the signed part differs from the outer one"
                    .to_owned(),
            ));
        }
        let issuer_key = name_key(&normalize_name(cert.issuer()));
        let candidates = self.roots.candidates(&issuer_key, facts.aki.as_deref());
        if candidates.is_empty() {
            return Err(EkTrustError::UntrustedIssuer {
                certificate: desc,
                issuer,
                roots: self.roots.source.clone(),
            });
        }
        let tbs = cert.tbs_certificate.as_ref();
        let signature: &[u8] = &cert.signature_value.data;
        let mut signature_error = None;
        let mut path_error = None;
        for i in candidates {
            if let Err(reason) = self.roots.certs[i].key.verify(alg, tbs, signature) {
                signature_error.get_or_insert_with(|| EkTrustError::BadSignature {
                    certificate: desc.clone(),
                    issuer: issuer.clone(),
                    reason: format!("{}: {reason}", self.roots.certs[i].desc),
                    roots: self.roots.source.clone(),
                });
                continue;
            }
            let mut below = vec![(desc.as_str(), &facts.names)];
            let mut visited = vec![i];
            let path = self
                .roots
                .can_issue(i, 0)
                .and_then(|()| self.roots.walk(i, &mut below, 0, now, &mut visited));
            match path {
                Ok(path) => {
                    let mut subjects: Vec<String> = path
                        .roots
                        .iter()
                        .map(|&r| self.roots.certs[r].subject.clone())
                        .collect();
                    let anchor = subjects.pop().unwrap_or_default();
                    return Ok(VerifiedChain {
                        not_before: not_before.max(path.not_before),
                        not_after: not_after.min(path.not_after),
                        key: CertKey::from_spki(cert.public_key()),
                        tpm: facts.tpm,
                        anchor,
                        intermediates: subjects,
                    });
                }
                Err(e) => {
                    path_error.get_or_insert(e);
                }
            }
        }
        Err(path_error
            .or(signature_error)
            .unwrap_or_else(|| EkTrustError::UntrustedIssuer {
                certificate: desc,
                issuer,
                roots: self.roots.source.clone(),
            }))
    }
}

/// Fuzzing entry point: runs arbitrary bytes through the EK certificate
/// checks — as an EK certificate against no roots, as a root certificate, and
/// as an EK certificate against itself as the root (twice, to cover the
/// cache) — and through the key comparison. Must never panic.
#[doc(hidden)]
pub fn fuzz_certificate(data: &[u8]) {
    let now = UNIX_EPOCH + std::time::Duration::from_secs(1_893_456_000);
    // A fixed RSA-2048 EK public (TCG template L-1 shape, dummy modulus).
    let mut tpmt = vec![0x00, 0x01, 0x00, 0x0B, 0x00, 0x03, 0x00, 0xB2, 0x00, 0x00];
    tpmt.extend_from_slice(&[0x00, 0x10, 0x00, 0x10, 0x08, 0x00, 0, 0, 0, 0, 0x01, 0x00]);
    tpmt.extend_from_slice(&[0xA5; 256]);
    let Ok(ek) = TpmtPublic::from_tpmt(&tpmt) else {
        return;
    };
    if let Ok(roots) = EkRoots::from_der_certs(Vec::new()) {
        let _ = EkVerifier::with_cache_capacity(roots, EkAllowList::empty(), 0).verify(
            &ek,
            Some(data),
            now,
        );
    }
    if let Ok(roots) = EkRoots::from_der_certs(vec![data.to_vec()]) {
        let verifier = EkVerifier::new(roots, EkAllowList::empty());
        let _ = verifier.verify(&ek, Some(data), now);
        let _ = verifier.verify(&ek, Some(data), now);
    }
    if let Ok((_, cert)) = x509_parser::parse_x509_certificate(data) {
        let _ = analyze(&cert, Role::Ca);
        let key = CertKey::from_spki(cert.public_key());
        let _ = key_matches(&key, &ek);
        let _ = key.describe();
        let _ = signature_algorithm(&cert.signature_algorithm);
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, bytes).as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SWTPM_EK_RSA: &[u8] = include_bytes!("../testdata/ek/swtpm-ek-rsa2048.der");
    const SWTPM_EK_RSA_PUBLIC: &[u8] = include_bytes!("../testdata/ek/swtpm-ek-rsa2048.tpm2b");
    const SWTPM_ROOT: &[u8] = include_bytes!("../testdata/ek/swtpm-localca-root.pem");
    const SWTPM_ISSUER: &[u8] = include_bytes!("../testdata/ek/swtpm-localca-issuer.pem");

    fn pem_der(pem: &[u8]) -> Vec<u8> {
        split_certificates(pem).unwrap().remove(0)
    }

    /// 2030-01-01: inside the swtpm fixture's validity (made 2026, valid to 9999).
    fn fixture_now() -> SystemTime {
        UNIX_EPOCH + std::time::Duration::from_secs(1_893_456_000)
    }

    fn swtpm_verifier() -> EkVerifier {
        let roots =
            EkRoots::from_der_certs(vec![pem_der(SWTPM_ROOT), pem_der(SWTPM_ISSUER)]).unwrap();
        EkVerifier::new(roots, EkAllowList::empty())
    }

    #[test]
    fn swtpm_san_directory_name_yields_manufacturer_model_version() {
        let (_, cert) = x509_parser::parse_x509_certificate(SWTPM_EK_RSA).unwrap();
        let facts = analyze(&cert, Role::Ek);
        assert!(facts.defect.is_none(), "{:?}", facts.defect);
        assert_eq!(
            facts.tpm,
            TpmAttributes {
                manufacturer: Some("id:00001014".to_owned()),
                model: Some("swtpm".to_owned()),
                version: Some("id:20191023".to_owned()),
            }
        );
        // The SAN is critical in the swtpm certificate, and accepted.
        let san = cert
            .extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == EXT_SUBJECT_ALT_NAME)
            .unwrap();
        assert!(san.critical);
    }

    #[test]
    fn swtpm_fixture_verifies_offline_and_second_verify_hits_the_cache() {
        let verifier = swtpm_verifier();
        let ek = TpmtPublic::from_tpm2b(SWTPM_EK_RSA_PUBLIC).unwrap();
        let now = fixture_now();
        let id = verifier.verify(&ek, Some(SWTPM_EK_RSA), now).unwrap();
        assert_eq!(id.manufacturer.as_deref(), Some("id:00001014"));
        assert_eq!(
            id.trusted_by,
            EkTrustPath::CertificateChain {
                anchor: "CN=swtpm-localca-rootca".to_owned(),
                intermediates: vec!["CN=swtpm-localca".to_owned()],
            }
        );
        assert_eq!(verifier.cached_chains(), 1);
        assert_eq!(verifier.verify(&ek, Some(SWTPM_EK_RSA), now).unwrap(), id);
        assert_eq!(verifier.cached_chains(), 1);

        // The ECC P-384 EK of the same TPM, with its own certificate.
        let ecc =
            TpmtPublic::from_tpm2b(include_bytes!("../testdata/ek/swtpm-ek-ecc384.tpm2b")).unwrap();
        let ecc_cert = include_bytes!("../testdata/ek/swtpm-ek-ecc384.der");
        let id = verifier.verify(&ecc, Some(ecc_cert), now).unwrap();
        assert_eq!(id.model.as_deref(), Some("swtpm"));
        assert_eq!(verifier.cached_chains(), 2);
    }

    #[test]
    fn cache_is_bounded() {
        let roots =
            EkRoots::from_der_certs(vec![pem_der(SWTPM_ROOT), pem_der(SWTPM_ISSUER)]).unwrap();
        let verifier = EkVerifier::with_cache_capacity(roots, EkAllowList::empty(), 2);
        let chain = VerifiedChain {
            not_before: 0,
            not_after: 1,
            key: CertKey::Other(String::new()),
            tpm: TpmAttributes::default(),
            anchor: String::new(),
            intermediates: vec![],
        };
        for i in 0..5u8 {
            verifier.remember([i; 32], &chain);
        }
        assert_eq!(verifier.cached_chains(), 2);
    }

    #[test]
    fn signature_algorithm_oids_map() {
        let cases: [(&[u8], SigAlg); 4] = [
            (SWTPM_EK_RSA, SigAlg::RsaPkcs1(Hash::Sha256)),
            (
                include_bytes!("../testdata/ek/test-ek-rsa2048.der"),
                SigAlg::RsaPss(Hash::Sha256),
            ),
            (
                include_bytes!("../testdata/ek/test-ek-ecc-p256.der"),
                SigAlg::RsaPkcs1(Hash::Sha384),
            ),
            (
                include_bytes!("../testdata/ek/ek-under-root-without-basic-constraints.der"),
                SigAlg::Ecdsa(Hash::Sha256),
            ),
        ];
        for (der, expected) in cases {
            let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
            assert_eq!(signature_algorithm(&cert.signature_algorithm), Ok(expected));
        }
        let root = pem_der(include_bytes!("../testdata/ek/test-intermediate.pem"));
        let (_, cert) = x509_parser::parse_x509_certificate(&root).unwrap();
        assert_eq!(
            signature_algorithm(&cert.signature_algorithm),
            Ok(SigAlg::Ecdsa(Hash::Sha384))
        );
    }

    #[test]
    fn fuzz_entry_point_runs_on_fixtures_and_garbage() {
        fuzz_certificate(SWTPM_EK_RSA);
        fuzz_certificate(&pem_der(SWTPM_ROOT));
        fuzz_certificate(include_bytes!("../testdata/ek/ek-critical-unknown-ext.der"));
        fuzz_certificate(&[]);
        fuzz_certificate(&[0x30, 0x80, 0x00]);
    }

    #[test]
    fn mutated_certificates_never_panic() {
        let seeds: [&[u8]; 4] = [
            SWTPM_EK_RSA,
            include_bytes!("../testdata/ek/test-ek-rsa2048.der"),
            include_bytes!("../testdata/ek/ek-outside-name-constraints.der"),
            &pem_der(include_bytes!("../testdata/ek/test-intermediate.pem")),
        ];
        // A small deterministic xorshift, so failures reproduce.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for seed in seeds {
            for _ in 0..2000 {
                let mut data = seed.to_vec();
                for _ in 0..=(next() % 4) {
                    let at = (next() as usize) % data.len();
                    match next() % 3 {
                        0 => data[at] ^= 1 << (next() % 8),
                        1 => data[at] = next() as u8,
                        _ => data.truncate(at.max(1)),
                    }
                }
                fuzz_certificate(&data);
            }
        }
    }

    #[test]
    fn verifier_is_shareable_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<EkVerifier>();
        assert_send_sync::<EkRoots>();
    }

    #[test]
    fn name_normalization_ignores_case_and_spacing() {
        let (_, a) = x509_parser::parse_x509_certificate(SWTPM_EK_RSA).unwrap();
        let issuer = normalize_name(a.issuer());
        assert_eq!(
            issuer,
            vec![vec![("2.5.4.3".to_owned(), b"\x01swtpm-localca".to_vec())]]
        );
        // "CN=Rootmark Test EK Intermediate, O=Rootmark Test": lowercased,
        // and the same key as its own subject in the issuing certificate.
        let ek = include_bytes!("../testdata/ek/test-ek-rsa2048.der");
        let (_, ek) = x509_parser::parse_x509_certificate(ek).unwrap();
        let issuer = normalize_name(ek.issuer());
        assert_eq!(
            issuer[0][0].1,
            b"\x01rootmark test ek intermediate".to_vec()
        );
        let intermediate = pem_der(include_bytes!("../testdata/ek/test-intermediate.pem"));
        let (_, intermediate) = x509_parser::parse_x509_certificate(&intermediate).unwrap();
        assert_eq!(
            name_key(&issuer),
            name_key(&normalize_name(intermediate.subject()))
        );
    }

    #[test]
    fn allow_list_parses_and_refuses_bad_entries() {
        let hash = "AB".repeat(32);
        let list = EkAllowList::from_hex([hash.as_str()]).unwrap();
        assert!(list.contains_hex(&hash.to_ascii_lowercase()));
        assert!(list.contains(&[0xab; 32]));
        let err = EkAllowList::from_hex(["abc"]).unwrap_err();
        assert!(err.to_string().contains("3 characters, not 64"), "{err}");
        let err = EkAllowList::from_hex(["zz".repeat(32)]).unwrap_err();
        assert!(err.to_string().contains("not hex"), "{err}");
    }

    #[test]
    fn garbage_certificate_is_malformed_not_a_panic() {
        let verifier = swtpm_verifier();
        let ek = TpmtPublic::from_tpm2b(SWTPM_EK_RSA_PUBLIC).unwrap();
        for len in [0, 1, 10, SWTPM_EK_RSA.len() / 2, SWTPM_EK_RSA.len() - 1] {
            let err = verifier
                .verify(&ek, Some(&SWTPM_EK_RSA[..len]), fixture_now())
                .unwrap_err();
            assert!(
                matches!(err, EkTrustError::MalformedCertificate { .. }),
                "{len}: {err}"
            );
        }
        let mut trailing = SWTPM_EK_RSA.to_vec();
        trailing.push(0);
        let err = verifier
            .verify(&ek, Some(&trailing), fixture_now())
            .unwrap_err();
        assert!(err.to_string().contains("1 bytes follow"), "{err}");
    }
}
