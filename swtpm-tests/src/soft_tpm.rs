//! A software TPM for benchmarks and load tests of the issuer.
//!
//! [`SoftTpm`] holds its EK, AK and node key in process memory (aws-lc-rs) and
//! produces node-attestation evidence in exactly the wire formats a real TPM 2.0
//! produces: `TPM2B_PUBLIC` areas built from the same templates the attestor
//! uses (TCG EK template L-1, the tss-esapi AK template, the Rootmark node-key
//! template), `TPMS_ATTEST` bodies for `TPM2_Quote` and `TPM2_Certify`,
//! `TPMT_SIGNATURE`s, and `TPM2_ActivateCredential` of blobs made by any
//! MakeCredential (TPM 2.0 Part 1 §24). Its EK certificate is issued by a
//! [`SoftEkCa`] — a self-signed ECDSA P-384 root and an intermediate, like
//! swtpm's local CA and real TPM vendors — with the TCG EK credential profile's
//! shape (empty subject, critical subjectAltName directoryName with the TPM
//! manufacturer, model and version).
//!
//! Nothing here is a security boundary: the keys are ordinary heap memory. The
//! point is that an issuer verifying this evidence cannot tell it from a real
//! TPM's, while a soft TPM is manufactured in milliseconds and quotes in
//! microseconds, so thousands of "nodes" can attest against one issuer.
//!
//! ```no_run
//! use rootmark_swtpm_tests::boot::{Bank, BootLog, BootProfile};
//! use rootmark_swtpm_tests::soft_tpm::{SoftAkAlgorithm, SoftEkCa, SoftTpm};
//!
//! let ca = SoftEkCa::new("Example Manufacturer")?;
//! let mut tpm = SoftTpm::manufacture(&ca, SoftAkAlgorithm::EccP256)?;
//! let log = BootLog::simulate(&BootProfile::default());
//! tpm.boot(&log);
//! let node_key = tpm.create_node_key(&[0, 2, 4, 7]);
//! let (attest, signature) = tpm.certify_node_key(b"issuer nonce");
//! let (quote, quote_sig, values) =
//!     tpm.quote(&[(Bank::Sha256, vec![0, 2, 4, 7])], b"issuer nonce");
//! # Ok::<(), rootmark_swtpm_tests::soft_tpm::SoftTpmError>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::cipher::{AES_128, DecryptingKey, DecryptionContext, UnboundCipherKey};
use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::hmac;
use aws_lc_rs::iv::FixedLength;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::rsa::{
    KeySize, OAEP_SHA256_MGF1SHA256, OaepPrivateDecryptingKey, PrivateDecryptingKey,
};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
};
use sha2::{Digest, Sha256};

use crate::boot::{Bank, BootLog};

/// Why a soft TPM operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SoftTpmError {
    /// aws-lc could not generate or load a key.
    #[error("cannot generate the {0}")]
    KeyGeneration(&'static str),
    /// rcgen could not build a certificate.
    #[error("cannot issue the {what}: {source}")]
    Certificate {
        /// Which certificate.
        what: &'static str,
        /// What rcgen said.
        #[source]
        source: rcgen::Error,
    },
    /// The PCR index does not exist (a soft TPM has PCRs 0 to 23), like
    /// `TPM_RC_VALUE` from `TPM2_PCR_Extend`.
    #[error("PCR {0} does not exist (PCRs are numbered 0 to 23)")]
    BadPcr(u32),
    /// A digest has the wrong length for its bank.
    #[error("a {bank:?} digest must be {expected} bytes, got {got}")]
    BadDigest {
        /// The bank.
        bank: Bank,
        /// Its digest length.
        expected: usize,
        /// The length given.
        got: usize,
    },
    /// The credential blob or the encrypted secret is not well-formed (like
    /// `TPM_RC_SIZE` / `TPM_RC_INSUFFICIENT`).
    #[error("malformed credential: {0}")]
    MalformedCredential(&'static str),
    /// The encrypted secret does not decrypt with this TPM's EK (RSA-OAEP,
    /// label "IDENTITY"), like `TPM_RC_VALUE`: it was made for another EK.
    #[error("the encrypted secret does not decrypt with this TPM's EK (TPM_RC_VALUE)")]
    SecretDecryption,
    /// The credential's integrity HMAC does not match (`TPM_RC_INTEGRITY`): it
    /// was made for another AK name, or altered.
    #[error(
        "credential integrity check failed (TPM_RC_INTEGRITY): made for another AK name, or altered"
    )]
    Integrity,
    /// A symmetric or HMAC primitive failed inside aws-lc.
    #[error("crypto failure: {0}")]
    Crypto(&'static str),
}

// ---------------------------------------------------------------------------------
// TPM constants.

const TPM_ALG_RSA: u16 = 0x0001;
const TPM_ALG_SHA256: u16 = 0x000B;
const TPM_ALG_AES: u16 = 0x0006;
const TPM_ALG_NULL: u16 = 0x0010;
const TPM_ALG_RSASSA: u16 = 0x0014;
const TPM_ALG_ECDSA: u16 = 0x0018;
const TPM_ALG_ECC: u16 = 0x0023;
const TPM_ALG_CFB: u16 = 0x0043;
const TPM_ECC_NIST_P256: u16 = 0x0003;

/// `TPM_GENERATED_VALUE`.
const TPM_GENERATED_VALUE: u32 = 0xff54_4347;
/// `TPM_ST_ATTEST_CERTIFY`.
const TPM_ST_ATTEST_CERTIFY: u16 = 0x8017;
/// `TPM_ST_ATTEST_QUOTE`.
const TPM_ST_ATTEST_QUOTE: u16 = 0x8018;
/// `TPM_CC_PolicyPCR`.
const TPM_CC_POLICY_PCR: u32 = 0x0000_017F;
/// `TPM_RH_OWNER` (storage hierarchy) handle.
const TPM_RH_OWNER: u32 = 0x4000_0001;
/// `TPM_RH_ENDORSEMENT` handle.
const TPM_RH_ENDORSEMENT: u32 = 0x4000_000B;

/// EK attributes of TCG template L-1: fixedTPM, fixedParent,
/// sensitiveDataOrigin, adminWithPolicy, restricted, decrypt.
const EK_ATTRIBUTES: u32 = 0x0003_00b2;
/// AK: fixedTPM, fixedParent, sensitiveDataOrigin, userWithAuth, restricted, sign.
const AK_ATTRIBUTES: u32 = 0x0005_0072;
/// Node key: fixedTPM, fixedParent, sensitiveDataOrigin, noDA, sign.
const NODE_KEY_ATTRIBUTES: u32 = 0x0004_0432;
/// SRK (TCG provisioning guidance ECC template): fixedTPM, fixedParent,
/// sensitiveDataOrigin, userWithAuth, noDA, restricted, decrypt.
const SRK_ATTRIBUTES: u32 = 0x0003_0472;
/// PolicyA of the TCG EK templates (`TPM2_PolicySecret(TPM_RH_ENDORSEMENT)`).
const EK_POLICY_A: [u8; 32] = [
    0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xb3, 0xf8, 0x1a, 0x90, 0xcc, 0x8d, 0x46, 0xa5, 0xd7, 0x24,
    0xfd, 0x52, 0xd7, 0x6e, 0x06, 0x52, 0x0b, 0x64, 0xf2, 0xa1, 0xda, 0x1b, 0x33, 0x14, 0x69, 0xaa,
];

/// Number of PCRs per bank.
const PCR_COUNT: u32 = 24;
/// PCRs of the PC Client profile that start at all ones after a TPM reset
/// (the DRTM PCRs 17 to 22).
const DRTM_PCRS: std::ops::RangeInclusive<u32> = 17..=22;
/// The PCRs a freshly manufactured soft TPM binds its first node key to (the
/// attestor's default: firmware, option ROMs, boot loader, Secure Boot policy).
const DEFAULT_NODE_KEY_PCRS: [u32; 4] = [0, 2, 4, 7];

/// The TCG vendor ID the soft TPM reports ("RMK\0": Rootmark).
pub const SOFT_TPM_MANUFACTURER: &str = "id:524D4B00";
/// The TPM model the soft TPM reports in its EK certificate.
pub const SOFT_TPM_MODEL: &str = "RootmarkSoftTPM";
/// The firmware version the soft TPM reports in every `TPMS_ATTEST`.
pub const SOFT_TPM_FIRMWARE_VERSION: u64 = 0x2024_0215_0001_0000;

// ---------------------------------------------------------------------------------
// The EK CA.

/// A "TPM manufacturer" CA: a self-signed ECDSA P-384 root and an intermediate
/// (also P-384) that signs EK certificates, as swtpm's local CA and real TPM
/// vendors do. Trust [`SoftEkCa::root_pem`] (and give the issuer the
/// intermediate, e.g. with [`SoftEkCa::write_roots`]) to admit soft TPMs.
pub struct SoftEkCa {
    name: String,
    root_pem: String,
    root_der: Vec<u8>,
    intermediate_pem: String,
    intermediate_der: Vec<u8>,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl fmt::Debug for SoftEkCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SoftEkCa")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl SoftEkCa {
    /// Creates a new CA: root "`name` EK Root CA" and intermediate "`name` EK
    /// Issuing CA" (organisation `name`), valid from today to 2049.
    pub fn new(name: &str) -> Result<Self, SoftTpmError> {
        let cert_err = |what| move |source| SoftTpmError::Certificate { what, source };
        let ca_params = |cn: String, path_len: Option<u8>| {
            let mut params = rcgen::CertificateParams::default();
            let mut dn = rcgen::DistinguishedName::new();
            dn.push(rcgen::DnType::CountryName, "US");
            dn.push(rcgen::DnType::OrganizationName, name);
            dn.push(rcgen::DnType::CommonName, cn);
            params.distinguished_name = dn;
            params.is_ca = rcgen::IsCa::Ca(match path_len {
                Some(n) => rcgen::BasicConstraints::Constrained(n),
                None => rcgen::BasicConstraints::Unconstrained,
            });
            params.key_usages = vec![
                rcgen::KeyUsagePurpose::KeyCertSign,
                rcgen::KeyUsagePurpose::CrlSign,
            ];
            set_validity(&mut params, 2049);
            params.serial_number = Some(random_serial());
            params
        };

        let root_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384)
            .map_err(cert_err("EK root CA key"))?;
        let root_params = ca_params(format!("{name} EK Root CA"), None);
        let root_cert = root_params
            .self_signed(&root_key)
            .map_err(cert_err("EK root CA certificate"))?;
        let root_issuer = rcgen::Issuer::new(root_params, root_key);

        let int_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384)
            .map_err(cert_err("EK issuing CA key"))?;
        let mut int_params = ca_params(format!("{name} EK Issuing CA"), Some(0));
        int_params.use_authority_key_identifier_extension = true;
        let int_cert = int_params
            .signed_by(&int_key, &root_issuer)
            .map_err(cert_err("EK issuing CA certificate"))?;

        Ok(SoftEkCa {
            name: name.to_owned(),
            root_pem: root_cert.pem(),
            root_der: root_cert.der().to_vec(),
            intermediate_pem: int_cert.pem(),
            intermediate_der: int_cert.der().to_vec(),
            issuer: rcgen::Issuer::new(int_params, int_key),
        })
    }

    /// The CA's name as given to [`SoftEkCa::new`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The self-signed root certificate (PEM).
    pub fn root_pem(&self) -> String {
        self.root_pem.clone()
    }

    /// The root certificate (DER).
    pub fn root_der(&self) -> &[u8] {
        &self.root_der
    }

    /// The intermediate that signs EK certificates (PEM).
    pub fn intermediate_pem(&self) -> String {
        self.intermediate_pem.clone()
    }

    /// The intermediate certificate (DER).
    pub fn intermediate_der(&self) -> &[u8] {
        &self.intermediate_der
    }

    /// Writes the root and the intermediate into `dir` as
    /// `<name>-ek-root.pem` and `<name>-ek-intermediate.pem` (the name
    /// lowercased, anything but ASCII letters and digits turned into `-`), the
    /// layout an issuer's EK roots directory takes.
    pub fn write_roots(&self, dir: &Path) -> std::io::Result<()> {
        let slug: String = self
            .name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        std::fs::write(dir.join(format!("{slug}-ek-root.pem")), &self.root_pem)?;
        std::fs::write(
            dir.join(format!("{slug}-ek-intermediate.pem")),
            &self.intermediate_pem,
        )
    }

    /// Issues an EK certificate for an RSA public key (PKCS#1 `RSAPublicKey`
    /// DER) with the TCG EK credential profile's shape.
    fn issue_ek_certificate(&self, rsa_public_pkcs1: &[u8]) -> Result<Vec<u8>, SoftTpmError> {
        let mut params = rcgen::CertificateParams::default();
        // TCG EK profile: empty subject, the TPM identified in the SAN.
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.is_ca = rcgen::IsCa::ExplicitNoCa;
        params.key_usages = vec![rcgen::KeyUsagePurpose::KeyEncipherment];
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::Other(vec![
            2, 23, 133, 8, 1,
        ])];
        params.use_authority_key_identifier_extension = true;
        // Real EK certificates never expire (RFC 5280's 99991231235959Z).
        set_validity(&mut params, 9999);
        params.serial_number = Some(random_serial());
        let mut san = rcgen::CustomExtension::from_oid_content(&[2, 5, 29, 17], tpm_san());
        san.set_criticality(true);
        params.custom_extensions = vec![
            rcgen::CustomExtension::from_oid_content(&[2, 5, 29, 9], tpm_specification()),
            san,
        ];
        let key = RsaSpki(rsa_public_pkcs1);
        let cert =
            params
                .signed_by(&key, &self.issuer)
                .map_err(|source| SoftTpmError::Certificate {
                    what: "EK certificate",
                    source,
                })?;
        Ok(cert.der().to_vec())
    }
}

/// An RSA public key for rcgen: PKCS#1 `RSAPublicKey`, `rsaEncryption` SPKI.
struct RsaSpki<'a>(&'a [u8]);

impl rcgen::PublicKeyData for RsaSpki<'_> {
    fn der_bytes(&self) -> &[u8] {
        self.0
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_RSA_SHA256
    }
}

/// The TCG EK profile subjectAltName: one directoryName with the TPM
/// manufacturer, model and version attributes (one RDN each).
fn tpm_san() -> Vec<u8> {
    let attribute = |oid_last: u8, value: &str| {
        let atv = der(
            0x30,
            &[
                der(0x06, &[0x67, 0x81, 0x05, 0x02, oid_last]),
                der(0x0c, value.as_bytes()),
            ]
            .concat(),
        );
        der(0x31, &atv)
    };
    let version = format!("id:{:08X}", SOFT_TPM_FIRMWARE_VERSION >> 32);
    let name = der(
        0x30,
        &[
            attribute(1, SOFT_TPM_MANUFACTURER),
            attribute(2, SOFT_TPM_MODEL),
            attribute(3, &version),
        ]
        .concat(),
    );
    // GeneralNames ::= SEQUENCE OF GeneralName; directoryName [4] EXPLICIT Name.
    der(0x30, &der(0xa4, &name))
}

/// subjectDirectoryAttributes with `tcg-at-tpmSpecification` (2.23.133.2.16):
/// family "2.0", level 0, revision 164, as swtpm and vendors write it.
fn tpm_specification() -> Vec<u8> {
    let spec = der(
        0x30,
        &[der(0x0c, b"2.0"), der(0x02, &[0]), der(0x02, &[0, 164])].concat(),
    );
    let attribute = der(
        0x30,
        &[der(0x06, &[0x67, 0x81, 0x05, 0x02, 0x10]), der(0x31, &spec)].concat(),
    );
    der(0x30, &attribute)
}

/// DER TLV with a definite length.
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let len = content.len();
    let mut out = Vec::with_capacity(len + 4);
    out.push(tag);
    if len < 0x80 {
        out.push(len as u8);
    } else if len <= 0xff {
        out.extend_from_slice(&[0x81, len as u8]);
    } else {
        let len = u16::try_from(len).unwrap_or(u16::MAX);
        out.push(0x82);
        out.extend_from_slice(&len.to_be_bytes());
    }
    out.extend_from_slice(content);
    out
}

/// A random positive 16-byte certificate serial number.
fn random_serial() -> rcgen::SerialNumber {
    let mut bytes = [0u8; 16];
    // A fill failure leaves a fixed serial: harmless for test certificates.
    let _ = SystemRandom::new().fill(&mut bytes);
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    rcgen::SerialNumber::from_slice(&bytes)
}

/// Sets `notBefore` to now (less a minute of allowance for clock skew) and
/// `notAfter` to the last second of `year`-12-31 UTC.
fn set_validity(params: &mut rcgen::CertificateParams, year: i32) {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .saturating_sub(Duration::from_secs(60));
    params.not_before = rcgen::date_time_ymd(1970, 1, 1) + since_epoch;
    params.not_after = rcgen::date_time_ymd(year, 12, 31) + Duration::from_secs(86_399);
}

// ---------------------------------------------------------------------------------
// The soft TPM.

/// PCR values a quote covers, by (bank, index).
pub type QuotedPcrs = BTreeMap<(Bank, u32), Vec<u8>>;

/// The AK key types a soft TPM can have (the attestor's `AkAlgorithm`s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SoftAkAlgorithm {
    /// ECC NIST P-256, ECDSA-SHA256.
    EccP256,
    /// RSA 2048, RSASSA-PKCS1-v1_5-SHA256.
    Rsa2048,
}

enum AkKey {
    Ecc(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

struct NodeKey {
    key: EcdsaKeyPair,
    public: Vec<u8>,
    name: Vec<u8>,
    qualified_name: Vec<u8>,
}

/// A TPM 2.0 in software, producing node-attestation evidence in real TPM wire
/// formats (see the module docs).
///
/// State: an RSA-2048 EK (TCG template L-1) with its certificate; an AK
/// (restricted signing, ECDSA P-256 or RSASSA-2048) under the EK; a node key
/// (ECC P-256, PolicyPCR-bound; a fresh soft TPM has one bound to SHA-256 PCRs
/// 0, 2, 4 and 7 at their reset values, replaced by
/// [`SoftTpm::create_node_key`]); SHA-1 and SHA-256 banks of 24 PCRs; clock
/// info (clock in milliseconds since manufacture plus a random earlier
/// uptime, resetCount, restartCount, safe = YES) and a firmware version.
pub struct SoftTpm {
    ek: OaepPrivateDecryptingKey,
    ek_public: Vec<u8>,
    ek_certificate: Vec<u8>,
    ak: AkKey,
    ak_public: Vec<u8>,
    ak_name: Vec<u8>,
    ak_qualified_name: Vec<u8>,
    srk_qualified_name: Vec<u8>,
    node_key: NodeKey,
    sha1: Sha1Bank,
    sha256: Sha256Bank,
    clock_base_ms: u64,
    started: Instant,
    reset_count: u32,
    restart_count: u32,
    rng: SystemRandom,
}

impl fmt::Debug for SoftTpm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SoftTpm")
            .field("ak_name", &hex::encode(&self.ak_name))
            .field("reset_count", &self.reset_count)
            .finish_non_exhaustive()
    }
}

impl SoftTpm {
    /// Manufactures a TPM: generates the EK (RSA 2048) and has `ca` issue its
    /// certificate, creates an AK of `ak` under it, a storage root key, and a
    /// first node key; PCRs are at their reset values (all zeros; PCRs 17 to
    /// 22 all ones, as on a PC Client TPM).
    pub fn manufacture(ca: &SoftEkCa, ak: SoftAkAlgorithm) -> Result<Self, SoftTpmError> {
        let rng = SystemRandom::new();

        // EK: RSA 2048 decryption key; the certificate needs PKCS#1.
        let ek_pair = RsaKeyPair::generate(KeySize::Rsa2048)
            .map_err(|_| SoftTpmError::KeyGeneration("EK (RSA 2048)"))?;
        let ek_modulus = rsa_modulus(&ek_pair, "EK (RSA 2048)")?;
        let ek_pkcs8 = ek_pair
            .as_der()
            .map_err(|_| SoftTpmError::KeyGeneration("EK (RSA 2048)"))?;
        let ek = PrivateDecryptingKey::from_pkcs8(ek_pkcs8.as_ref())
            .ok()
            .and_then(|k| OaepPrivateDecryptingKey::new(k).ok())
            .ok_or(SoftTpmError::KeyGeneration("EK (RSA 2048)"))?;
        let ek_tpmt = rsa_public(
            EK_ATTRIBUTES,
            &EK_POLICY_A,
            &aes128_cfb(),
            &[TPM_ALG_NULL],
            &ek_modulus,
        );
        let ek_certificate = ca.issue_ek_certificate(ek_pair.public_key().as_ref())?;
        let ek_qualified_name = qualified_name(&TPM_RH_ENDORSEMENT.to_be_bytes(), &name(&ek_tpmt));

        // AK under the EK.
        let (ak_key, ak_tpmt) = match ak {
            SoftAkAlgorithm::EccP256 => {
                let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                    .map_err(|_| SoftTpmError::KeyGeneration("AK (ECC P-256)"))?;
                let point = ecc_point(&key, "AK (ECC P-256)")?;
                let tpmt = ecc_public(
                    AK_ATTRIBUTES,
                    &[],
                    &[TPM_ALG_NULL],
                    &[TPM_ALG_ECDSA, TPM_ALG_SHA256],
                    point,
                );
                (AkKey::Ecc(key), tpmt)
            }
            SoftAkAlgorithm::Rsa2048 => {
                let key = RsaKeyPair::generate(KeySize::Rsa2048)
                    .map_err(|_| SoftTpmError::KeyGeneration("AK (RSA 2048)"))?;
                let modulus = rsa_modulus(&key, "AK (RSA 2048)")?;
                let tpmt = rsa_public(
                    AK_ATTRIBUTES,
                    &[],
                    &[TPM_ALG_NULL],
                    &[TPM_ALG_RSASSA, TPM_ALG_SHA256],
                    &modulus,
                );
                (AkKey::Rsa(key), tpmt)
            }
        };
        let ak_name = name(&ak_tpmt);
        let ak_qualified_name = qualified_name(&ek_qualified_name, &ak_name);

        // The SRK only shows up through the node key's qualified name.
        let srk = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .map_err(|_| SoftTpmError::KeyGeneration("SRK (ECC P-256)"))?;
        let srk_tpmt = ecc_public(
            SRK_ATTRIBUTES,
            &[],
            &aes128_cfb(),
            &[TPM_ALG_NULL],
            ecc_point(&srk, "SRK (ECC P-256)")?,
        );
        let srk_qualified_name = qualified_name(&TPM_RH_OWNER.to_be_bytes(), &name(&srk_tpmt));

        // Some hours of earlier uptime, so clocks differ between soft TPMs.
        let mut seed = [0u8; 4];
        rng.fill(&mut seed)
            .map_err(|_| SoftTpmError::Crypto("random clock offset"))?;
        let clock_base_ms = 3_600_000 + u64::from(u32::from_be_bytes(seed) % 86_400_000);

        let (sha1, sha256) = reset_banks();
        let node_key = make_node_key(&sha256, &srk_qualified_name, &DEFAULT_NODE_KEY_PCRS)?;
        Ok(SoftTpm {
            ek,
            ek_public: tpm2b(&ek_tpmt),
            ek_certificate,
            ak: ak_key,
            ak_public: tpm2b(&ak_tpmt),
            ak_name,
            ak_qualified_name,
            srk_qualified_name,
            node_key,
            sha1,
            sha256,
            clock_base_ms,
            started: Instant::now(),
            reset_count: 0,
            restart_count: 0,
            rng,
        })
    }

    /// `TPM2_PCR_Extend`: for each `(bank, digest)`, `PCR = H(PCR ‖ digest)`.
    /// Checks everything before changing anything.
    pub fn extend(&mut self, pcr: u32, digests: &[(Bank, Vec<u8>)]) -> Result<(), SoftTpmError> {
        let index = usize::try_from(pcr)
            .ok()
            .filter(|&i| i < PCR_COUNT as usize)
            .ok_or(SoftTpmError::BadPcr(pcr))?;
        for (bank, digest) in digests {
            if digest.len() != bank.digest_len() {
                return Err(SoftTpmError::BadDigest {
                    bank: *bank,
                    expected: bank.digest_len(),
                    got: digest.len(),
                });
            }
        }
        for (bank, digest) in digests {
            match bank {
                Bank::Sha1 => {
                    let mut h = sha1::Sha1::new();
                    h.update(self.sha1[index]);
                    h.update(digest);
                    self.sha1[index] = h.finalize().into();
                }
                Bank::Sha256 => {
                    let mut h = Sha256::new();
                    h.update(self.sha256[index]);
                    h.update(digest);
                    self.sha256[index] = h.finalize().into();
                }
            }
        }
        Ok(())
    }

    /// Measures a whole boot: extends every event of `log`, as firmware does.
    /// When the log carries a `StartupLocality` of `n` and PCR 0 is still at its
    /// reset value, PCR 0 first becomes `00…0n` (the TPM was started from
    /// locality `n`). Call it on a fresh or just rebooted TPM.
    pub fn boot(&mut self, log: &BootLog) {
        if let Some(locality) = log.startup_locality()
            && self.sha1[0] == [0; 20]
            && self.sha256[0] == [0; 32]
        {
            self.sha1[0][19] = locality;
            self.sha256[0][31] = locality;
        }
        for event in log.events() {
            // BootLog only holds PCRs 0..=9 with digests of the right length,
            // so this cannot fail.
            let _ = self.extend(event.pcr, &event.digests);
        }
    }

    /// The current value of PCR `index` in `bank` (empty if there is no such PCR).
    pub fn pcr(&self, bank: Bank, index: u32) -> &[u8] {
        let Some(i) = usize::try_from(index)
            .ok()
            .filter(|&i| i < PCR_COUNT as usize)
        else {
            return &[];
        };
        match bank {
            Bank::Sha1 => &self.sha1[i],
            Bank::Sha256 => &self.sha256[i],
        }
    }

    /// The EK certificate (DER), as read from NV index 0x01c00002.
    pub fn ek_certificate(&self) -> &[u8] {
        &self.ek_certificate
    }

    /// The EK public area (`TPM2B_PUBLIC`, TCG template L-1).
    pub fn ek_public(&self) -> Vec<u8> {
        self.ek_public.clone()
    }

    /// The AK public area (`TPM2B_PUBLIC`).
    pub fn ak_public(&self) -> Vec<u8> {
        self.ak_public.clone()
    }

    /// The AK name: `0x000B ‖ SHA-256(TPMT_PUBLIC)`.
    pub fn ak_name(&self) -> Vec<u8> {
        self.ak_name.clone()
    }

    /// The current node key's public area (`TPM2B_PUBLIC`).
    pub fn node_key_public(&self) -> Vec<u8> {
        self.node_key.public.clone()
    }

    /// The current node key's name: `0x000B ‖ SHA-256(TPMT_PUBLIC)`.
    pub fn node_key_name(&self) -> Vec<u8> {
        self.node_key.name.clone()
    }

    /// The node key's private key as PKCS#8 DER. A real TPM never lets it
    /// out; load-test clients use it to do TLS client authentication with a
    /// node SVID. `None` if aws-lc cannot serialise it.
    pub fn node_key_pkcs8(&self) -> Option<Vec<u8>> {
        self.node_key
            .key
            .to_pkcs8v1()
            .ok()
            .map(|d| d.as_ref().to_vec())
    }

    /// `resetCount` of the clock info (incremented by [`SoftTpm::reboot`]).
    pub fn reset_count(&self) -> u32 {
        self.reset_count
    }

    /// Creates a new node key (ECC P-256, ECDSA-SHA256; fixedTPM, fixedParent,
    /// sensitiveDataOrigin, noDA, sign; userWithAuth and adminWithPolicy clear)
    /// whose authPolicy is `TPM2_PolicyPCR` over the current SHA-256 values of
    /// `pcrs` (sorted; duplicates and indexes ≥ 24 ignored), replacing the
    /// previous one. Returns its `TPM2B_PUBLIC`.
    ///
    /// # Panics
    /// If aws-lc cannot generate a P-256 key (out of memory).
    pub fn create_node_key(&mut self, pcrs: &[u32]) -> Vec<u8> {
        #[allow(clippy::expect_used)]
        let key = make_node_key(&self.sha256, &self.srk_qualified_name, pcrs)
            .expect("aws-lc generates an ECC P-256 key");
        self.node_key = key;
        self.node_key.public.clone()
    }

    /// `TPM2_Certify` of the node key by the AK with `qualifying_data` as
    /// extraData. Returns the `TPMS_ATTEST` (`TPM_ST_ATTEST_CERTIFY`) and its
    /// `TPMT_SIGNATURE` by the AK.
    ///
    /// # Panics
    /// If aws-lc fails to sign (out of memory).
    pub fn certify_node_key(&self, qualifying_data: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let mut attest = self.attest_header(TPM_ST_ATTEST_CERTIFY, qualifying_data);
        put_tpm2b(&mut attest, &self.node_key.name);
        put_tpm2b(&mut attest, &self.node_key.qualified_name);
        let signature = self.sign(&attest);
        (attest, signature)
    }

    /// `TPM2_Quote` by the AK over `selection` (banks in the given order, each
    /// bank's indexes ascending; indexes ≥ 24 and duplicates ignored) with
    /// `nonce` as extraData. Returns the `TPMS_ATTEST` (`TPM_ST_ATTEST_QUOTE`,
    /// `TPML_PCR_SELECTION` with 3-byte bitmaps, pcrDigest = SHA-256 of the
    /// selected values concatenated in that order), its `TPMT_SIGNATURE`, and
    /// the quoted values.
    ///
    /// # Panics
    /// If aws-lc fails to sign (out of memory).
    pub fn quote(
        &self,
        selection: &[(Bank, Vec<u32>)],
        nonce: &[u8],
    ) -> (Vec<u8>, Vec<u8>, QuotedPcrs) {
        let mut values = BTreeMap::new();
        let mut list = Vec::with_capacity(4 + 6 * selection.len());
        list.extend_from_slice(&len_u32(selection.len()).to_be_bytes());
        let mut digest = Sha256::new();
        for (bank, indexes) in selection {
            let bitmap = pcr_bitmap(indexes);
            list.extend_from_slice(&bank.tpm_alg_id().to_be_bytes());
            list.push(3);
            list.extend_from_slice(&bitmap);
            for index in bitmap_indexes(&bitmap) {
                let value = self.pcr(*bank, index);
                digest.update(value);
                values.insert((*bank, index), value.to_vec());
            }
        }
        let mut attest = self.attest_header(TPM_ST_ATTEST_QUOTE, nonce);
        attest.extend_from_slice(&list);
        put_tpm2b(&mut attest, &digest.finalize());
        let signature = self.sign(&attest);
        (attest, signature, values)
    }

    /// `TPM2_ActivateCredential` with the AK as the credentialed object and
    /// the EK as the decryption key (TPM 2.0 Part 1 §24): `credential_blob` is
    /// the `TPM2B_ID_OBJECT` payload (`TPM2B_DIGEST integrityHMAC ‖
    /// encIdentity`), `encrypted_secret` the `TPM2B_ENCRYPTED_SECRET` payload
    /// (RSA-OAEP-SHA256 of the seed, label "IDENTITY\0"). Returns the
    /// credential.
    pub fn activate_credential(
        &self,
        credential_blob: &[u8],
        encrypted_secret: &[u8],
    ) -> Result<Vec<u8>, SoftTpmError> {
        let (size, rest) =
            credential_blob
                .split_first_chunk::<2>()
                .ok_or(SoftTpmError::MalformedCredential(
                    "credential blob shorter than 2 bytes",
                ))?;
        let size = usize::from(u16::from_be_bytes(*size));
        if size != 32 {
            return Err(SoftTpmError::MalformedCredential(
                "integrity HMAC is not a 32-byte SHA-256 digest",
            ));
        }
        let (integrity, enc_identity) =
            rest.split_at_checked(size)
                .ok_or(SoftTpmError::MalformedCredential(
                    "credential blob truncated in the integrity HMAC",
                ))?;
        if enc_identity.len() < 2 {
            return Err(SoftTpmError::MalformedCredential(
                "encIdentity shorter than 2 bytes",
            ));
        }
        if encrypted_secret.len() != self.ek.key_size_bytes() {
            return Err(SoftTpmError::MalformedCredential(
                "encrypted secret is not one RSA-2048 block",
            ));
        }

        // The seed: RSA-OAEP(SHA-256) with the label "IDENTITY\0".
        let mut seed_buf = vec![0u8; self.ek.min_output_size()];
        let seed = self
            .ek
            .decrypt(
                &OAEP_SHA256_MGF1SHA256,
                encrypted_secret,
                &mut seed_buf,
                Some(b"IDENTITY\0"),
            )
            .map_err(|_| SoftTpmError::SecretDecryption)?;

        // Outer integrity: HMAC(KDFa(seed, "INTEGRITY"), encIdentity ‖ name).
        let hmac_key = kdfa_sha256(seed, b"INTEGRITY", &[], &[], 256);
        let key = hmac::Key::new(hmac::HMAC_SHA256, &hmac_key);
        let mut ctx = hmac::Context::with_key(&key);
        ctx.update(enc_identity);
        ctx.update(&self.ak_name);
        let expected = ctx.sign();
        verify_slices_are_equal(expected.as_ref(), integrity)
            .map_err(|_| SoftTpmError::Integrity)?;

        // Decrypt: AES-128-CFB, key KDFa(seed, "STORAGE", name), IV zero.
        let sym_key = kdfa_sha256(seed, b"STORAGE", &self.ak_name, &[], 128);
        let key = UnboundCipherKey::new(&AES_128, &sym_key)
            .and_then(DecryptingKey::cfb128)
            .map_err(|_| SoftTpmError::Crypto("AES-128-CFB key"))?;
        let mut plain = enc_identity.to_vec();
        let plain = key
            .decrypt(
                &mut plain,
                DecryptionContext::Iv128(FixedLength::from([0u8; 16])),
            )
            .map_err(|_| SoftTpmError::Crypto("AES-128-CFB decryption"))?;
        let (size, credential) =
            plain
                .split_first_chunk::<2>()
                .ok_or(SoftTpmError::MalformedCredential(
                    "decrypted credential shorter than 2 bytes",
                ))?;
        if usize::from(u16::from_be_bytes(*size)) != credential.len() {
            return Err(SoftTpmError::MalformedCredential(
                "decrypted credential size does not match its contents",
            ));
        }
        Ok(credential.to_vec())
    }

    /// A TPM reset (power cycle, `TPM2_Startup(CLEAR)`): PCRs back to their
    /// reset values, resetCount + 1, restartCount 0. Keys and the clock stay.
    pub fn reboot(&mut self) {
        self.reset_pcrs();
        self.reset_count = self.reset_count.saturating_add(1);
        self.restart_count = 0;
    }

    fn reset_pcrs(&mut self) {
        (self.sha1, self.sha256) = reset_banks();
    }

    /// `TPMS_ATTEST` up to (not including) the `attested` union.
    fn attest_header(&self, tag: u16, extra_data: &[u8]) -> Vec<u8> {
        let elapsed = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let clock = self.clock_base_ms.saturating_add(elapsed);
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(&TPM_GENERATED_VALUE.to_be_bytes());
        out.extend_from_slice(&tag.to_be_bytes());
        put_tpm2b(&mut out, &self.ak_qualified_name);
        put_tpm2b(&mut out, extra_data);
        out.extend_from_slice(&clock.to_be_bytes());
        out.extend_from_slice(&self.reset_count.to_be_bytes());
        out.extend_from_slice(&self.restart_count.to_be_bytes());
        out.push(1); // safe = YES
        out.extend_from_slice(&SOFT_TPM_FIRMWARE_VERSION.to_be_bytes());
        out
    }

    /// Signs `message` (a TPMS_ATTEST) with the AK; returns the TPMT_SIGNATURE.
    #[allow(clippy::expect_used)]
    fn sign(&self, message: &[u8]) -> Vec<u8> {
        match &self.ak {
            AkKey::Ecc(key) => {
                let sig = key
                    .sign(&self.rng, message)
                    .expect("aws-lc signs with ECDSA P-256");
                let (r, s) = sig.as_ref().split_at(32);
                let mut out = Vec::with_capacity(72);
                out.extend_from_slice(&TPM_ALG_ECDSA.to_be_bytes());
                out.extend_from_slice(&TPM_ALG_SHA256.to_be_bytes());
                put_tpm2b(&mut out, r);
                put_tpm2b(&mut out, s);
                out
            }
            AkKey::Rsa(key) => {
                let mut sig = vec![0u8; key.public_modulus_len()];
                key.sign(&RSA_PKCS1_SHA256, &self.rng, message, &mut sig)
                    .expect("aws-lc signs with RSASSA-PKCS1-v1_5");
                let mut out = Vec::with_capacity(6 + sig.len());
                out.extend_from_slice(&TPM_ALG_RSASSA.to_be_bytes());
                out.extend_from_slice(&TPM_ALG_SHA256.to_be_bytes());
                put_tpm2b(&mut out, &sig);
                out
            }
        }
    }
}

type Sha1Bank = [[u8; 20]; PCR_COUNT as usize];
type Sha256Bank = [[u8; 32]; PCR_COUNT as usize];

/// Both banks at their reset values: all zeros, except the DRTM PCRs 17 to 22,
/// which a PC Client TPM resets to all ones.
fn reset_banks() -> (Sha1Bank, Sha256Bank) {
    let mut sha1 = [[0; 20]; PCR_COUNT as usize];
    let mut sha256 = [[0; 32]; PCR_COUNT as usize];
    for i in DRTM_PCRS {
        // 17..=22 < 24.
        let i = i as usize;
        sha1[i] = [0xff; 20];
        sha256[i] = [0xff; 32];
    }
    (sha1, sha256)
}

/// Creates a node key under the SRK bound to the current SHA-256 values of `pcrs`.
fn make_node_key(
    sha256: &Sha256Bank,
    srk_qualified_name: &[u8],
    pcrs: &[u32],
) -> Result<NodeKey, SoftTpmError> {
    let values: BTreeMap<u32, Vec<u8>> = pcrs
        .iter()
        .filter_map(|&i| Some((i, sha256.get(usize::try_from(i).ok()?)?.to_vec())))
        .collect();
    let policy = policy_pcr_digest(&values);
    let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
        .map_err(|_| SoftTpmError::KeyGeneration("node key (ECC P-256)"))?;
    let tpmt = ecc_public(
        NODE_KEY_ATTRIBUTES,
        &policy,
        &[TPM_ALG_NULL],
        &[TPM_ALG_ECDSA, TPM_ALG_SHA256],
        ecc_point(&key, "node key (ECC P-256)")?,
    );
    let name = name(&tpmt);
    Ok(NodeKey {
        key,
        public: tpm2b(&tpmt),
        qualified_name: qualified_name(srk_qualified_name, &name),
        name,
    })
}

/// The SHA-256 policy digest `TPM2_PolicyPCR` produces from an empty policy
/// over SHA-256 PCRs `values` (index → current value):
/// `SHA256(0³² ‖ TPM_CC_PolicyPCR ‖ TPML_PCR_SELECTION{sha256, 3-byte bitmap} ‖
/// SHA256(values in ascending index order))`.
pub fn policy_pcr_digest(values: &BTreeMap<u32, Vec<u8>>) -> [u8; 32] {
    let indexes: Vec<u32> = values.keys().copied().collect();
    let mut pcr_digest = Sha256::new();
    for value in values.values() {
        pcr_digest.update(value);
    }
    let mut h = Sha256::new();
    h.update([0u8; 32]);
    h.update(TPM_CC_POLICY_PCR.to_be_bytes());
    h.update(1u32.to_be_bytes());
    h.update(TPM_ALG_SHA256.to_be_bytes());
    h.update([3]);
    h.update(pcr_bitmap(&indexes));
    h.update(pcr_digest.finalize());
    h.finalize().into()
}

/// KDFa (SP 800-108 counter mode, HMAC-SHA256) as TPM 2.0 Part 1 §11.4.10.2
/// defines it: blocks `HMAC(key, i ‖ label ‖ 0 ‖ contextU ‖ contextV ‖ bits)`,
/// truncated to `bits` bits.
pub fn kdfa_sha256(
    key: &[u8],
    label: &[u8],
    context_u: &[u8],
    context_v: &[u8],
    bits: u32,
) -> Vec<u8> {
    let bytes = usize::try_from(bits.div_ceil(8)).unwrap_or(0);
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut out = Vec::with_capacity(bytes + 32);
    let mut counter: u32 = 1;
    while out.len() < bytes {
        let mut ctx = hmac::Context::with_key(&key);
        ctx.update(&counter.to_be_bytes());
        ctx.update(label);
        if label.last() != Some(&0) {
            ctx.update(&[0]);
        }
        ctx.update(context_u);
        ctx.update(context_v);
        ctx.update(&bits.to_be_bytes());
        out.extend_from_slice(ctx.sign().as_ref());
        counter = counter.wrapping_add(1);
    }
    out.truncate(bytes);
    out
}

// ---------------------------------------------------------------------------------
// Marshalling helpers.

fn len_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Appends a TPM2B (u16 size ‖ bytes); bytes beyond 65535 are cut off.
fn put_tpm2b(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&bytes[..usize::from(len)]);
}

fn tpm2b(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 2);
    put_tpm2b(&mut out, bytes);
    out
}

/// `nameAlg ‖ SHA-256(TPMT_PUBLIC)`.
fn name(tpmt_public: &[u8]) -> Vec<u8> {
    let mut out = TPM_ALG_SHA256.to_be_bytes().to_vec();
    out.extend_from_slice(&Sha256::digest(tpmt_public));
    out
}

/// `nameAlg ‖ SHA-256(parent's qualified name ‖ name)` (a hierarchy's
/// qualified name is its handle).
fn qualified_name(parent: &[u8], name: &[u8]) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(parent);
    h.update(name);
    let mut out = TPM_ALG_SHA256.to_be_bytes().to_vec();
    out.extend_from_slice(&h.finalize());
    out
}

/// `TPMT_SYM_DEF_OBJECT` AES-128-CFB.
fn aes128_cfb() -> [u16; 3] {
    [TPM_ALG_AES, 128, TPM_ALG_CFB]
}

fn put_u16s(out: &mut Vec<u8>, values: &[u16]) {
    for v in values {
        out.extend_from_slice(&v.to_be_bytes());
    }
}

/// `TPMT_PUBLIC` of an RSA 2048 key (nameAlg SHA-256, exponent 0 = 65537).
fn rsa_public(
    attributes: u32,
    policy: &[u8],
    symmetric: &[u16],
    scheme: &[u16],
    modulus: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(300 + policy.len());
    put_u16s(&mut out, &[TPM_ALG_RSA, TPM_ALG_SHA256]);
    out.extend_from_slice(&attributes.to_be_bytes());
    put_tpm2b(&mut out, policy);
    put_u16s(&mut out, symmetric);
    put_u16s(&mut out, scheme);
    put_u16s(&mut out, &[2048]);
    out.extend_from_slice(&0u32.to_be_bytes());
    put_tpm2b(&mut out, modulus);
    out
}

/// `TPMT_PUBLIC` of an ECC P-256 key (nameAlg SHA-256, KDF NULL).
fn ecc_public(
    attributes: u32,
    policy: &[u8],
    symmetric: &[u16],
    scheme: &[u16],
    point: (&[u8], &[u8]),
) -> Vec<u8> {
    let mut out = Vec::with_capacity(120 + policy.len());
    put_u16s(&mut out, &[TPM_ALG_ECC, TPM_ALG_SHA256]);
    out.extend_from_slice(&attributes.to_be_bytes());
    put_tpm2b(&mut out, policy);
    put_u16s(&mut out, symmetric);
    put_u16s(&mut out, scheme);
    put_u16s(&mut out, &[TPM_ECC_NIST_P256, TPM_ALG_NULL]);
    put_tpm2b(&mut out, point.0);
    put_tpm2b(&mut out, point.1);
    out
}

/// The (x, y) coordinates of a P-256 key (from its uncompressed point).
fn ecc_point<'a>(
    key: &'a EcdsaKeyPair,
    what: &'static str,
) -> Result<(&'a [u8], &'a [u8]), SoftTpmError> {
    match key.public_key().as_ref() {
        [0x04, xy @ ..] if xy.len() == 64 => Ok(xy.split_at(32)),
        _ => Err(SoftTpmError::KeyGeneration(what)),
    }
}

/// The 256-byte modulus of an RSA 2048 key with exponent 65537 (the TPM's
/// default exponent, marshalled as 0).
fn rsa_modulus(key: &RsaKeyPair, what: &'static str) -> Result<Vec<u8>, SoftTpmError> {
    let public = key.public_key();
    let modulus = public.modulus().big_endian_without_leading_zero().to_vec();
    let exponent = public.exponent().big_endian_without_leading_zero();
    if modulus.len() != 256 || exponent != [0x01, 0x00, 0x01] {
        return Err(SoftTpmError::KeyGeneration(what));
    }
    Ok(modulus)
}

/// A 3-byte PCR bitmap (`pcrSelect`) for indexes < 24.
fn pcr_bitmap(indexes: &[u32]) -> [u8; 3] {
    let mut bitmap = [0u8; 3];
    for &i in indexes {
        if let Some(byte) = usize::try_from(i / 8).ok().and_then(|b| bitmap.get_mut(b)) {
            *byte |= 1 << (i % 8);
        }
    }
    bitmap
}

/// The indexes set in a bitmap, ascending.
fn bitmap_indexes(bitmap: &[u8; 3]) -> impl Iterator<Item = u32> + '_ {
    (0..PCR_COUNT).filter(move |&i| {
        bitmap
            .get((i / 8) as usize)
            .is_some_and(|byte| byte & (1 << (i % 8)) != 0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kdfa_matches_a_hand_rolled_hmac() {
        let seed = [7u8; 32];
        let out = kdfa_sha256(&seed, b"STORAGE", b"name", &[], 128);
        let key = hmac::Key::new(hmac::HMAC_SHA256, &seed);
        let mut msg = 1u32.to_be_bytes().to_vec();
        msg.extend_from_slice(b"STORAGE\0name");
        msg.extend_from_slice(&128u32.to_be_bytes());
        assert_eq!(out, hmac::sign(&key, &msg).as_ref()[..16]);
        assert_eq!(kdfa_sha256(&seed, b"INTEGRITY", &[], &[], 512).len(), 64);
    }

    #[test]
    fn bitmap_round_trips() {
        let bitmap = pcr_bitmap(&[7, 0, 23, 24, 4, 4]);
        assert_eq!(bitmap, [0x91, 0x00, 0x80]);
        assert_eq!(
            bitmap_indexes(&bitmap).collect::<Vec<_>>(),
            vec![0, 4, 7, 23]
        );
    }

    #[test]
    fn soft_tpm_and_ca_can_be_shared_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<SoftTpm>();
        assert_send_sync::<SoftEkCa>();
    }

    #[test]
    fn der_lengths() {
        assert_eq!(der(0x04, &[1; 3])[..2], [0x04, 3]);
        assert_eq!(der(0x04, &[1; 200])[..3], [0x04, 0x81, 200]);
        assert_eq!(der(0x04, &[1; 300])[..4], [0x04, 0x82, 0x01, 0x2c]);
    }
}
