//! JWT-SVIDs: [`JwtBundle`] (one trust domain's JWT signing keys),
//! [`JwtBundleSet`], [`JwtSvid`] and [`validate_jwt_svid`].
//!
//! A JWT-SVID is a compact JWS (SPIFFE JWT-SVID spec) whose `sub` claim is
//! a SPIFFE ID. Validation here is strict and fails closed:
//!
//! * the token is at most [`MAX_TOKEN_LEN`] bytes and has exactly three
//!   unpadded base64url parts;
//! * the header's `alg` is one of [`JwtAlgorithm`] (never `none`, never an
//!   HMAC algorithm), `kid` is required, `typ` if present is `JWT` or
//!   `JOSE`, and `crit` is refused (no extension is understood);
//! * `sub` parses as a [`SpiffeId`]; its trust domain selects the bundle and
//!   `kid` selects the key in it; the key's type must fit `alg`;
//! * the signature is verified with aws-lc-rs over `header.payload`;
//! * `aud` (a string or an array of strings) contains the expected audience,
//!   `exp` is present and not passed, `nbf` if present is reached, both with
//!   [`CLOCK_LEEWAY`].
//!
//! Each refusal is a [`JwtError`] variant naming what is wrong.
//!
//! ```
//! use std::time::SystemTime;
//! use rootmark_sdk::TrustDomain;
//! use rootmark_sdk::jwt::{JwtBundle, JwtBundleSet, JwtError, validate_jwt_svid};
//!
//! let td = TrustDomain::parse("example.org")?;
//! let bundle = JwtBundle::from_jwks(td, br#"{"keys":[]}"#)?;
//! let mut bundles = JwtBundleSet::new();
//! bundles.insert(bundle);
//! let refused = validate_jwt_svid("not-a-token", &bundles, "my-service", SystemTime::now());
//! assert!(matches!(refused, Err(JwtError::MalformedToken { .. })));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeMap;
use std::collections::btree_map;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::signature::{self, ParsedPublicKey, RsaPublicKeyComponents};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64URL;
use rootmark_proto::prost_types;
use serde_json::{Map, Value};

use crate::id::{IdError, SpiffeId, TrustDomain};

pub mod bearer;

/// Longest token accepted, in bytes.
pub const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Longest JWKS document accepted by [`JwtBundle::from_jwks`], in bytes.
pub const MAX_JWKS_LEN: usize = 1024 * 1024;

/// Most keys one [`JwtBundle`] holds.
pub const MAX_JWT_AUTHORITIES: usize = 256;

/// Clock skew tolerated when checking `exp` and `nbf`.
pub const CLOCK_LEEWAY: Duration = Duration::from_secs(30);

/// Smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;

/// Largest RSA modulus accepted, in bits.
pub const MAX_RSA_BITS: usize = 8192;

/// Why a JWT-SVID or a JWT bundle was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwtError {
    /// The token is not a well-formed compact JWS.
    #[error("JWT-SVID: malformed token: {reason}")]
    MalformedToken {
        /// What is wrong with it.
        reason: String,
    },
    /// The token is longer than [`MAX_TOKEN_LEN`].
    #[error("JWT-SVID: expected at most {max} bytes, found {len}")]
    TokenTooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The header's `alg` is not on the allow-list.
    #[error(
        "JWT-SVID: header alg {alg:?} is not allowed (expected one of ES256, ES384, RS256, \
         RS384, RS512, PS256, PS384, PS512)"
    )]
    UnsupportedAlgorithm {
        /// The `alg` found (`"none"`, `"HS256"`, …).
        alg: String,
    },
    /// The header's `typ` is neither `JWT` nor `JOSE`.
    #[error("JWT-SVID: header typ {typ:?} is not allowed (expected JWT or JOSE)")]
    UnsupportedType {
        /// The `typ` found.
        typ: String,
    },
    /// The header has no `kid`.
    #[error("JWT-SVID: header has no kid (JWT-SVIDs must name their signing key)")]
    MissingKid,
    /// A required claim is absent.
    #[error("JWT-SVID: claim {claim:?} is missing")]
    MissingClaim {
        /// The claim's name.
        claim: &'static str,
    },
    /// A claim has the wrong JSON type or value.
    #[error("JWT-SVID: claim {claim:?}: {reason}")]
    InvalidClaim {
        /// The claim's name.
        claim: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// `sub` is not a SPIFFE ID.
    #[error("JWT-SVID: sub {sub:?} is not a SPIFFE ID: {error}")]
    BadSubject {
        /// The `sub` found (truncated to 256 bytes).
        sub: String,
        /// Why it is not a SPIFFE ID.
        error: IdError,
    },
    /// No JWT bundle for the subject's trust domain.
    #[error("JWT-SVID: no JWT bundle for trust domain {trust_domain}")]
    NoBundle {
        /// The subject's trust domain.
        trust_domain: TrustDomain,
    },
    /// The bundle of the subject's trust domain has no key with this `kid`.
    #[error("JWT-SVID: no key with kid {kid:?} in the JWT bundle of {trust_domain}")]
    UnknownKid {
        /// The `kid` of the token.
        kid: String,
        /// The subject's trust domain.
        trust_domain: TrustDomain,
    },
    /// The key named by `kid` cannot verify `alg` (e.g. `ES256` with an RSA key).
    #[error("JWT-SVID: key {kid:?} is {key_type}, which cannot verify alg {alg}")]
    KeyAlgorithmMismatch {
        /// The `kid`.
        kid: String,
        /// The header's `alg`.
        alg: JwtAlgorithm,
        /// The key's type (`EC P-256`, `RSA`, …).
        key_type: &'static str,
    },
    /// The signature does not verify with the named key.
    #[error("JWT-SVID: signature does not verify")]
    BadSignature,
    /// `exp` has passed (beyond [`CLOCK_LEEWAY`]).
    #[error("JWT-SVID: expired at {exp} (unix seconds), now is {now}")]
    Expired {
        /// `exp`, in Unix seconds.
        exp: u64,
        /// The validation time, in Unix seconds.
        now: u64,
    },
    /// `nbf` is still ahead (beyond [`CLOCK_LEEWAY`]).
    #[error("JWT-SVID: not valid before {nbf} (unix seconds), now is {now}")]
    NotYetValid {
        /// `nbf`, in Unix seconds.
        nbf: u64,
        /// The validation time, in Unix seconds.
        now: u64,
    },
    /// `aud` does not contain the expected audience.
    #[error("JWT-SVID: audience {expected:?} not in aud {found:?}")]
    AudienceMismatch {
        /// The audience the validator expected.
        expected: String,
        /// The token's audiences.
        found: Vec<String>,
    },
    /// The caller asked to validate against an empty audience.
    #[error("JWT-SVID: the expected audience is empty")]
    EmptyAudience,
    /// A JWKS document or JWK could not be used as a JWT bundle.
    #[error("JWT bundle: {reason}")]
    MalformedBundle {
        /// What is wrong with it.
        reason: String,
    },
    /// A bundle already has a key with this `kid`.
    #[error("JWT bundle: duplicate kid {kid:?}")]
    DuplicateKid {
        /// The repeated `kid`.
        kid: String,
    },
}

impl JwtError {
    fn malformed(reason: impl Into<String>) -> Self {
        JwtError::MalformedToken {
            reason: reason.into(),
        }
    }

    fn bundle(reason: impl Into<String>) -> Self {
        JwtError::MalformedBundle {
            reason: reason.into(),
        }
    }

    fn claim(claim: &'static str, reason: impl Into<String>) -> Self {
        JwtError::InvalidClaim {
            claim,
            reason: reason.into(),
        }
    }
}

/// The JWS algorithms a JWT-SVID may be signed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JwtAlgorithm {
    /// ECDSA P-256 with SHA-256 (what Rootmark issues).
    Es256,
    /// ECDSA P-384 with SHA-384.
    Es384,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    Rs384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    Rs512,
    /// RSASSA-PSS with SHA-256.
    Ps256,
    /// RSASSA-PSS with SHA-384.
    Ps384,
    /// RSASSA-PSS with SHA-512.
    Ps512,
}

impl JwtAlgorithm {
    /// The algorithm for a header `alg` value, if it is allowed.
    pub fn from_name(alg: &str) -> Option<Self> {
        Some(match alg {
            "ES256" => JwtAlgorithm::Es256,
            "ES384" => JwtAlgorithm::Es384,
            "RS256" => JwtAlgorithm::Rs256,
            "RS384" => JwtAlgorithm::Rs384,
            "RS512" => JwtAlgorithm::Rs512,
            "PS256" => JwtAlgorithm::Ps256,
            "PS384" => JwtAlgorithm::Ps384,
            "PS512" => JwtAlgorithm::Ps512,
            _ => return None,
        })
    }

    /// The header `alg` value.
    pub fn name(self) -> &'static str {
        match self {
            JwtAlgorithm::Es256 => "ES256",
            JwtAlgorithm::Es384 => "ES384",
            JwtAlgorithm::Rs256 => "RS256",
            JwtAlgorithm::Rs384 => "RS384",
            JwtAlgorithm::Rs512 => "RS512",
            JwtAlgorithm::Ps256 => "PS256",
            JwtAlgorithm::Ps384 => "PS384",
            JwtAlgorithm::Ps512 => "PS512",
        }
    }

    fn rsa_parameters(self) -> Option<&'static signature::RsaParameters> {
        Some(match self {
            JwtAlgorithm::Rs256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            JwtAlgorithm::Rs384 => &signature::RSA_PKCS1_2048_8192_SHA384,
            JwtAlgorithm::Rs512 => &signature::RSA_PKCS1_2048_8192_SHA512,
            JwtAlgorithm::Ps256 => &signature::RSA_PSS_2048_8192_SHA256,
            JwtAlgorithm::Ps384 => &signature::RSA_PSS_2048_8192_SHA384,
            JwtAlgorithm::Ps512 => &signature::RSA_PSS_2048_8192_SHA512,
            JwtAlgorithm::Es256 | JwtAlgorithm::Es384 => return None,
        })
    }
}

impl fmt::Display for JwtAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A public key that verifies JWT-SVIDs: EC P-256, EC P-384 or RSA
/// (2048–8192 bits). Construction validates the key (the point is on the
/// curve, the modulus has an accepted size).
#[derive(Clone)]
pub struct JwtPublicKey {
    inner: KeyInner,
}

#[derive(Clone)]
enum KeyInner {
    Ec {
        curve: EcCurve,
        /// Uncompressed point `04 || x || y`.
        point: Vec<u8>,
        parsed: Arc<ParsedPublicKey>,
    },
    Rsa {
        /// Big-endian modulus without leading zeros.
        n: Vec<u8>,
        /// Big-endian exponent without leading zeros.
        e: Vec<u8>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EcCurve {
    P256,
    P384,
}

impl EcCurve {
    fn coordinate_len(self) -> usize {
        match self {
            EcCurve::P256 => 32,
            EcCurve::P384 => 48,
        }
    }

    fn jwk_name(self) -> &'static str {
        match self {
            EcCurve::P256 => "P-256",
            EcCurve::P384 => "P-384",
        }
    }

    fn algorithm(self) -> &'static signature::EcdsaVerificationAlgorithm {
        match self {
            EcCurve::P256 => &signature::ECDSA_P256_SHA256_FIXED,
            EcCurve::P384 => &signature::ECDSA_P384_SHA384_FIXED,
        }
    }
}

impl JwtPublicKey {
    /// An EC P-256 key from its uncompressed point (`04 || x || y`, 65 bytes).
    pub fn ec_p256(point: &[u8]) -> Result<Self, JwtError> {
        Self::ec(EcCurve::P256, point)
    }

    /// An EC P-384 key from its uncompressed point (`04 || x || y`, 97 bytes).
    pub fn ec_p384(point: &[u8]) -> Result<Self, JwtError> {
        Self::ec(EcCurve::P384, point)
    }

    fn ec(curve: EcCurve, point: &[u8]) -> Result<Self, JwtError> {
        let size = curve.coordinate_len();
        if point.len() != 1 + 2 * size || point.first() != Some(&0x04) {
            return Err(JwtError::bundle(format!(
                "{} key: expected an uncompressed point of {} bytes, found {} bytes",
                curve.jwk_name(),
                1 + 2 * size,
                point.len()
            )));
        }
        let parsed = ParsedPublicKey::new(curve.algorithm(), point).map_err(|e| {
            JwtError::bundle(format!(
                "{} key: not a point on the curve: {e}",
                curve.jwk_name()
            ))
        })?;
        Ok(JwtPublicKey {
            inner: KeyInner::Ec {
                curve,
                point: point.to_vec(),
                parsed: Arc::new(parsed),
            },
        })
    }

    /// An RSA key from its big-endian modulus and public exponent.
    pub fn rsa(n: &[u8], e: &[u8]) -> Result<Self, JwtError> {
        let n = strip_leading_zeros(n);
        let e = strip_leading_zeros(e);
        let bits = bit_len(n);
        if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
            return Err(JwtError::bundle(format!(
                "RSA key: expected a modulus of {MIN_RSA_BITS} to {MAX_RSA_BITS} bits, found {bits}"
            )));
        }
        if e.is_empty() || e.len() > 4 {
            return Err(JwtError::bundle(format!(
                "RSA key: expected a public exponent of 1 to 4 bytes, found {}",
                e.len()
            )));
        }
        RsaPublicKeyComponents { n, e }
            .to_parsed_public_key(&signature::RSA_PKCS1_2048_8192_SHA256)
            .map_err(|err| JwtError::bundle(format!("RSA key: {err}")))?;
        Ok(JwtPublicKey {
            inner: KeyInner::Rsa {
                n: n.to_vec(),
                e: e.to_vec(),
            },
        })
    }

    /// A key from a JWK object (`kty` `EC` with `crv`/`x`/`y`, or `RSA`
    /// with `n`/`e`). Other members (`kid`, `use`, `alg`) are not looked at;
    /// a JWK holding private key material (`d`, `p`, …) is refused.
    pub fn from_jwk(jwk: &Map<String, Value>) -> Result<Self, JwtError> {
        for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            if jwk.contains_key(private) {
                return Err(JwtError::bundle(format!(
                    "JWK holds private key material ({private:?}); a bundle has public keys only"
                )));
            }
        }
        match jwk_str(jwk, "kty")? {
            "EC" => {
                let curve = match jwk_str(jwk, "crv")? {
                    "P-256" => EcCurve::P256,
                    "P-384" => EcCurve::P384,
                    other => {
                        return Err(JwtError::bundle(format!(
                            "EC JWK: crv {other:?} is not supported (expected P-256 or P-384)"
                        )));
                    }
                };
                let size = curve.coordinate_len();
                let x = jwk_b64(jwk, "x")?;
                let y = jwk_b64(jwk, "y")?;
                if x.len() != size || y.len() != size {
                    return Err(JwtError::bundle(format!(
                        "EC JWK: expected {size}-byte x and y for {}, found {} and {}",
                        curve.jwk_name(),
                        x.len(),
                        y.len()
                    )));
                }
                let mut point = Vec::with_capacity(1 + 2 * size);
                point.push(0x04);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                Self::ec(curve, &point)
            }
            "RSA" => Self::rsa(&jwk_b64(jwk, "n")?, &jwk_b64(jwk, "e")?),
            other => Err(JwtError::bundle(format!(
                "JWK kty {other:?} is not supported (expected EC or RSA)"
            ))),
        }
    }

    /// The key as JWK members (`kty` and `crv`/`x`/`y` or `n`/`e`).
    pub fn to_jwk(&self) -> Map<String, Value> {
        let mut jwk = Map::new();
        match &self.inner {
            KeyInner::Ec { curve, point, .. } => {
                let size = curve.coordinate_len();
                let (x, y) = point
                    .get(1..)
                    .and_then(|xy| xy.split_at_checked(size))
                    .unwrap_or_default();
                jwk.insert("kty".into(), "EC".into());
                jwk.insert("crv".into(), curve.jwk_name().into());
                jwk.insert("x".into(), BASE64URL.encode(x).into());
                jwk.insert("y".into(), BASE64URL.encode(y).into());
            }
            KeyInner::Rsa { n, e } => {
                jwk.insert("kty".into(), "RSA".into());
                jwk.insert("n".into(), BASE64URL.encode(n).into());
                jwk.insert("e".into(), BASE64URL.encode(e).into());
            }
        }
        jwk
    }

    /// `EC P-256`, `EC P-384` or `RSA`.
    pub fn key_type(&self) -> &'static str {
        match &self.inner {
            KeyInner::Ec {
                curve: EcCurve::P256,
                ..
            } => "EC P-256",
            KeyInner::Ec {
                curve: EcCurve::P384,
                ..
            } => "EC P-384",
            KeyInner::Rsa { .. } => "RSA",
        }
    }

    /// Checks `signature` over `message` for `alg`.
    fn verify(
        &self,
        kid: &str,
        alg: JwtAlgorithm,
        message: &[u8],
        sig: &[u8],
    ) -> Result<(), JwtError> {
        let mismatch = || JwtError::KeyAlgorithmMismatch {
            kid: kid.to_owned(),
            alg,
            key_type: self.key_type(),
        };
        match (&self.inner, alg) {
            (
                KeyInner::Ec {
                    curve: EcCurve::P256,
                    parsed,
                    ..
                },
                JwtAlgorithm::Es256,
            )
            | (
                KeyInner::Ec {
                    curve: EcCurve::P384,
                    parsed,
                    ..
                },
                JwtAlgorithm::Es384,
            ) => parsed
                .verify_sig(message, sig)
                .map_err(|_| JwtError::BadSignature),
            (KeyInner::Ec { .. }, _) => Err(mismatch()),
            (KeyInner::Rsa { n, e }, alg) => {
                let params = alg.rsa_parameters().ok_or_else(mismatch)?;
                RsaPublicKeyComponents {
                    n: n.as_slice(),
                    e: e.as_slice(),
                }
                .verify(params, message, sig)
                .map_err(|_| JwtError::BadSignature)
            }
        }
    }
}

impl fmt::Debug for JwtPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            KeyInner::Ec { point, .. } => write!(
                f,
                "JwtPublicKey({}, {})",
                self.key_type(),
                BASE64URL.encode(point)
            ),
            KeyInner::Rsa { n, .. } => write!(f, "JwtPublicKey(RSA-{})", bit_len(n)),
        }
    }
}

impl PartialEq for JwtPublicKey {
    fn eq(&self, other: &Self) -> bool {
        match (&self.inner, &other.inner) {
            (
                KeyInner::Ec {
                    curve: c1,
                    point: p1,
                    ..
                },
                KeyInner::Ec {
                    curve: c2,
                    point: p2,
                    ..
                },
            ) => c1 == c2 && p1 == p2,
            (KeyInner::Rsa { n: n1, e: e1 }, KeyInner::Rsa { n: n2, e: e2 }) => {
                n1 == n2 && e1 == e2
            }
            _ => false,
        }
    }
}

impl Eq for JwtPublicKey {}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    bytes.get(start..).unwrap_or_default()
}

fn bit_len(be: &[u8]) -> usize {
    let be = strip_leading_zeros(be);
    match be.first() {
        Some(first) => (be.len() - 1) * 8 + (8 - first.leading_zeros() as usize),
        None => 0,
    }
}

fn jwk_str<'a>(jwk: &'a Map<String, Value>, member: &str) -> Result<&'a str, JwtError> {
    match jwk.get(member) {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(JwtError::bundle(format!(
            "JWK member {member:?} is not a string"
        ))),
        None => Err(JwtError::bundle(format!(
            "JWK member {member:?} is missing"
        ))),
    }
}

fn jwk_b64(jwk: &Map<String, Value>, member: &str) -> Result<Vec<u8>, JwtError> {
    BASE64URL
        .decode(jwk_str(jwk, member)?)
        .map_err(|e| JwtError::bundle(format!("JWK member {member:?} is not base64url: {e}")))
}

/// One trust domain's JWT authorities: `kid` → public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtBundle {
    trust_domain: TrustDomain,
    authorities: BTreeMap<String, JwtPublicKey>,
}

impl JwtBundle {
    /// An empty bundle for `trust_domain`.
    pub fn new(trust_domain: TrustDomain) -> Self {
        JwtBundle {
            trust_domain,
            authorities: BTreeMap::new(),
        }
    }

    /// Parses a JWKS document (`{"keys":[…]}`) as the issuer and the
    /// Workload API serve it, or a whole SPIFFE bundle.
    ///
    /// Entries with `use` `jwt-svid` (or no `use`) are JWT authorities and
    /// must have a non-empty, unique `kid` and a supported key; entries with
    /// any other `use` (`x509-svid`, …) are skipped. Other top-level members
    /// (`spiffe_sequence`, `spiffe_refresh_hint`) are ignored.
    pub fn from_jwks(trust_domain: TrustDomain, json: &[u8]) -> Result<Self, JwtError> {
        if json.len() > MAX_JWKS_LEN {
            return Err(JwtError::bundle(format!(
                "expected a JWKS of at most {MAX_JWKS_LEN} bytes, found {}",
                json.len()
            )));
        }
        let document: Value = serde_json::from_slice(json)
            .map_err(|e| JwtError::bundle(format!("JWKS is not JSON: {e}")))?;
        let keys = match document.get("keys") {
            Some(Value::Array(keys)) => keys,
            Some(_) => return Err(JwtError::bundle("JWKS member \"keys\" is not an array")),
            None if document.is_object() => {
                return Err(JwtError::bundle("JWKS has no \"keys\" member"));
            }
            None => return Err(JwtError::bundle("JWKS is not a JSON object")),
        };
        let mut bundle = JwtBundle::new(trust_domain);
        for (i, key) in keys.iter().enumerate() {
            let Value::Object(jwk) = key else {
                return Err(JwtError::bundle(format!("keys[{i}] is not a JSON object")));
            };
            match jwk.get("use") {
                None => {}
                Some(Value::String(u)) if u == "jwt-svid" => {}
                Some(Value::String(_)) => continue,
                Some(_) => {
                    return Err(JwtError::bundle(format!(
                        "keys[{i}]: \"use\" is not a string"
                    )));
                }
            }
            let kid = match jwk.get("kid") {
                Some(Value::String(kid)) if !kid.is_empty() => kid.clone(),
                Some(Value::String(_)) | None => {
                    return Err(JwtError::bundle(format!(
                        "keys[{i}]: a jwt-svid key needs a non-empty kid"
                    )));
                }
                Some(_) => return Err(JwtError::bundle(format!("keys[{i}]: kid is not a string"))),
            };
            let key = JwtPublicKey::from_jwk(jwk).map_err(|e| match e {
                JwtError::MalformedBundle { reason } => {
                    JwtError::bundle(format!("keys[{i}] (kid {kid:?}): {reason}"))
                }
                other => other,
            })?;
            bundle.add_authority(kid, key)?;
        }
        Ok(bundle)
    }

    /// The bundle as a JWKS document: one `use: jwt-svid` JWK with its
    /// `kid` per authority.
    pub fn to_jwks(&self) -> Value {
        let keys: Vec<Value> = self
            .authorities
            .iter()
            .map(|(kid, key)| {
                let mut jwk = key.to_jwk();
                jwk.insert("use".into(), "jwt-svid".into());
                jwk.insert("kid".into(), kid.clone().into());
                Value::Object(jwk)
            })
            .collect();
        let mut document = Map::new();
        document.insert("keys".into(), Value::Array(keys));
        Value::Object(document)
    }

    /// [`JwtBundle::to_jwks`] as JSON text.
    pub fn to_jwks_json(&self) -> String {
        self.to_jwks().to_string()
    }

    /// The trust domain whose tokens these keys sign.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    /// The key with this `kid`.
    pub fn authority(&self, kid: &str) -> Option<&JwtPublicKey> {
        self.authorities.get(kid)
    }

    /// Adds a key.
    ///
    /// # Errors
    /// [`JwtError::DuplicateKid`] if `kid` is taken, [`JwtError::MalformedBundle`]
    /// if `kid` is empty or the bundle already has [`MAX_JWT_AUTHORITIES`] keys.
    pub fn add_authority(
        &mut self,
        kid: impl Into<String>,
        key: JwtPublicKey,
    ) -> Result<(), JwtError> {
        let kid = kid.into();
        if kid.is_empty() {
            return Err(JwtError::bundle("a JWT authority needs a non-empty kid"));
        }
        if self.authorities.len() >= MAX_JWT_AUTHORITIES {
            return Err(JwtError::bundle(format!(
                "expected at most {MAX_JWT_AUTHORITIES} JWT authorities"
            )));
        }
        match self.authorities.entry(kid) {
            btree_map::Entry::Occupied(entry) => Err(JwtError::DuplicateKid {
                kid: entry.key().clone(),
            }),
            btree_map::Entry::Vacant(entry) => {
                entry.insert(key);
                Ok(())
            }
        }
    }

    /// Removes the key with this `kid`, returning it.
    pub fn remove_authority(&mut self, kid: &str) -> Option<JwtPublicKey> {
        self.authorities.remove(kid)
    }

    /// The `(kid, key)` pairs, ordered by `kid`.
    pub fn authorities(&self) -> impl Iterator<Item = (&str, &JwtPublicKey)> {
        self.authorities
            .iter()
            .map(|(kid, key)| (kid.as_str(), key))
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.authorities.len()
    }

    /// Whether the bundle has no key.
    pub fn is_empty(&self) -> bool {
        self.authorities.is_empty()
    }
}

/// JWT bundles of several trust domains (one's own and federated ones).
pub type JwtBundleSet = crate::bundle::BundleSet<JwtBundle>;

/// Finds the JWT bundle of a trust domain; implemented by [`JwtBundle`]
/// (itself, for its own trust domain only) and [`JwtBundleSet`].
pub trait JwtBundleLookup {
    /// The bundle of `trust_domain`, if known.
    fn jwt_bundle(&self, trust_domain: &TrustDomain) -> Option<&JwtBundle>;
}

impl JwtBundleLookup for JwtBundle {
    fn jwt_bundle(&self, trust_domain: &TrustDomain) -> Option<&JwtBundle> {
        (self.trust_domain == *trust_domain).then_some(self)
    }
}

impl JwtBundleLookup for JwtBundleSet {
    fn jwt_bundle(&self, trust_domain: &TrustDomain) -> Option<&JwtBundle> {
        self.get(trust_domain)
    }
}

impl<T: JwtBundleLookup + ?Sized> JwtBundleLookup for &T {
    fn jwt_bundle(&self, trust_domain: &TrustDomain) -> Option<&JwtBundle> {
        (**self).jwt_bundle(trust_domain)
    }
}

impl<T: JwtBundleLookup + ?Sized> JwtBundleLookup for Arc<T> {
    fn jwt_bundle(&self, trust_domain: &TrustDomain) -> Option<&JwtBundle> {
        (**self).jwt_bundle(trust_domain)
    }
}

/// A JWT-SVID: a token and what its claims say.
///
/// Obtained from [`validate_jwt_svid`] (signature and claims checked) or
/// [`JwtSvid::parse_insecure`] (structure only, for tokens received from
/// the Workload API that the holder forwards without relying on them).
#[derive(Debug, Clone, PartialEq)]
pub struct JwtSvid {
    spiffe_id: SpiffeId,
    audience: Vec<String>,
    expiry: SystemTime,
    issued_at: Option<SystemTime>,
    claims: Map<String, Value>,
    key_id: String,
    algorithm: JwtAlgorithm,
    token: String,
    hint: Option<String>,
}

impl JwtSvid {
    /// Parses a token without verifying its signature or its times:
    /// the header must be acceptable (allowed `alg`, `kid`, `typ`) and the
    /// claims well-formed (`sub` a SPIFFE ID, `aud` present, `exp` present).
    ///
    /// Never use the result to authenticate anyone: that is what
    /// [`validate_jwt_svid`] is for.
    pub fn parse_insecure(token: &str) -> Result<JwtSvid, JwtError> {
        let parts = Parts::split(token)?;
        parts.svid(token)
    }

    /// The subject's SPIFFE ID (`sub`).
    pub fn spiffe_id(&self) -> &SpiffeId {
        &self.spiffe_id
    }

    /// The audiences (`aud`), in token order.
    pub fn audience(&self) -> &[String] {
        &self.audience
    }

    /// When the token expires (`exp`).
    pub fn expiry(&self) -> SystemTime {
        self.expiry
    }

    /// When the token was issued (`iat`), if it says.
    pub fn issued_at(&self) -> Option<SystemTime> {
        self.issued_at
    }

    /// All claims, as in the token.
    pub fn claims(&self) -> &Map<String, Value> {
        &self.claims
    }

    /// The header's `kid`.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The header's `alg`.
    pub fn algorithm(&self) -> JwtAlgorithm {
        self.algorithm
    }

    /// The compact token, as received.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The Workload API's hint for this SVID, if one was set.
    pub fn hint(&self) -> Option<&str> {
        self.hint.as_deref()
    }

    /// Sets the hint (the Workload API sends one next to the token).
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        let hint = hint.into();
        self.hint = (!hint.is_empty()).then_some(hint);
        self
    }
}

/// Validates a JWT-SVID for `audience` at time `now` against `bundles`
/// (see the [module docs](self) for every check, in order).
///
/// # Errors
/// The [`JwtError`] variant naming the first check that failed.
pub fn validate_jwt_svid<B: JwtBundleLookup + ?Sized>(
    token: &str,
    bundles: &B,
    audience: &str,
    now: SystemTime,
) -> Result<JwtSvid, JwtError> {
    if audience.is_empty() {
        return Err(JwtError::EmptyAudience);
    }
    let parts = Parts::split(token)?;
    let svid = parts.svid_unverified()?;
    let trust_domain = svid.spiffe_id.trust_domain();
    let bundle = bundles
        .jwt_bundle(trust_domain)
        .ok_or_else(|| JwtError::NoBundle {
            trust_domain: trust_domain.clone(),
        })?;
    let key = bundle
        .authority(&svid.key_id)
        .ok_or_else(|| JwtError::UnknownKid {
            kid: svid.key_id.clone(),
            trust_domain: trust_domain.clone(),
        })?;
    key.verify(
        &svid.key_id,
        svid.algorithm,
        parts.signing_input.as_bytes(),
        &parts.signature,
    )?;

    let now_secs = now.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let exp = svid
        .expiry
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    if now_secs > exp.saturating_add(CLOCK_LEEWAY) {
        return Err(JwtError::Expired {
            exp: exp.as_secs(),
            now: now_secs.as_secs(),
        });
    }
    if let Some(nbf) = numeric_date(&svid.claims, "nbf", Rounding::Up)?
        && now_secs.saturating_add(CLOCK_LEEWAY) < Duration::from_secs(nbf)
    {
        return Err(JwtError::NotYetValid {
            nbf,
            now: now_secs.as_secs(),
        });
    }
    if !svid.audience.iter().any(|a| a == audience) {
        return Err(JwtError::AudienceMismatch {
            expected: audience.to_owned(),
            found: svid.audience,
        });
    }
    Ok(JwtSvid {
        token: token.to_owned(),
        ..svid
    })
}

/// A compact JWS split and decoded, nothing checked beyond the encoding.
struct Parts<'a> {
    signing_input: &'a str,
    header: Map<String, Value>,
    claims: Map<String, Value>,
    signature: Vec<u8>,
}

impl<'a> Parts<'a> {
    fn split(token: &'a str) -> Result<Self, JwtError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(JwtError::TokenTooLong {
                len: token.len(),
                max: MAX_TOKEN_LEN,
            });
        }
        if token.is_empty() {
            return Err(JwtError::malformed("empty token"));
        }
        let pieces: Vec<&str> = token.split('.').collect();
        let [header_b64, claims_b64, signature_b64] = pieces.as_slice() else {
            return Err(JwtError::malformed(format!(
                "expected 3 dot-separated parts (compact JWS), found {}",
                pieces.len()
            )));
        };
        let signing_input = token
            .get(..header_b64.len() + 1 + claims_b64.len())
            .ok_or_else(|| JwtError::malformed("token split"))?;
        let header = decode_object("header", header_b64)?;
        let claims = decode_object("payload", claims_b64)?;
        let signature = BASE64URL
            .decode(signature_b64)
            .map_err(|e| JwtError::malformed(format!("signature is not base64url: {e}")))?;
        Ok(Parts {
            signing_input,
            header,
            claims,
            signature,
        })
    }

    /// Header and claim checks that need no key; the token text is left
    /// empty for the caller to fill.
    fn svid_unverified(&self) -> Result<JwtSvid, JwtError> {
        let alg = match self.header.get("alg") {
            Some(Value::String(alg)) => alg,
            Some(_) => return Err(JwtError::malformed("header alg is not a string")),
            None => return Err(JwtError::malformed("header has no alg")),
        };
        let algorithm = JwtAlgorithm::from_name(alg)
            .ok_or_else(|| JwtError::UnsupportedAlgorithm { alg: truncate(alg) })?;
        match self.header.get("typ") {
            None => {}
            Some(Value::String(typ)) if typ == "JWT" || typ == "JOSE" => {}
            Some(Value::String(typ)) => {
                return Err(JwtError::UnsupportedType { typ: truncate(typ) });
            }
            Some(_) => return Err(JwtError::malformed("header typ is not a string")),
        }
        if self.header.contains_key("crit") {
            return Err(JwtError::malformed(
                "header has crit: no JWS extension is supported",
            ));
        }
        let key_id = match self.header.get("kid") {
            Some(Value::String(kid)) if !kid.is_empty() => kid.clone(),
            Some(Value::String(_)) | None => return Err(JwtError::MissingKid),
            Some(_) => return Err(JwtError::malformed("header kid is not a string")),
        };

        let spiffe_id = match self.claims.get("sub") {
            Some(Value::String(sub)) => {
                SpiffeId::parse(sub).map_err(|error| JwtError::BadSubject {
                    sub: truncate(sub),
                    error,
                })?
            }
            Some(_) => return Err(JwtError::claim("sub", "not a string")),
            None => return Err(JwtError::MissingClaim { claim: "sub" }),
        };
        let audience = match self.claims.get("aud") {
            Some(Value::String(aud)) => vec![aud.clone()],
            Some(Value::Array(auds)) => {
                if auds.is_empty() {
                    return Err(JwtError::claim("aud", "an empty array"));
                }
                auds.iter()
                    .map(|aud| match aud {
                        Value::String(aud) => Ok(aud.clone()),
                        _ => Err(JwtError::claim("aud", "an array member is not a string")),
                    })
                    .collect::<Result<Vec<_>, _>>()?
            }
            Some(_) => {
                return Err(JwtError::claim(
                    "aud",
                    "neither a string nor an array of strings",
                ));
            }
            None => return Err(JwtError::MissingClaim { claim: "aud" }),
        };
        let exp = numeric_date(&self.claims, "exp", Rounding::Down)?
            .ok_or(JwtError::MissingClaim { claim: "exp" })?;
        let expiry = to_system_time("exp", exp)?;
        let issued_at = numeric_date(&self.claims, "iat", Rounding::Down)?
            .map(|iat| to_system_time("iat", iat))
            .transpose()?;
        Ok(JwtSvid {
            spiffe_id,
            audience,
            expiry,
            issued_at,
            claims: self.claims.clone(),
            key_id,
            algorithm,
            token: String::new(),
            hint: None,
        })
    }

    fn svid(&self, token: &str) -> Result<JwtSvid, JwtError> {
        Ok(JwtSvid {
            token: token.to_owned(),
            ..self.svid_unverified()?
        })
    }
}

/// Decodes one base64url part into a JSON object, refusing duplicate
/// top-level members (two `sub`s could be read differently elsewhere).
fn decode_object(part: &str, b64: &str) -> Result<Map<String, Value>, JwtError> {
    let bytes = BASE64URL
        .decode(b64)
        .map_err(|e| JwtError::malformed(format!("{part} is not base64url: {e}")))?;
    let StrictObject(map) = serde_json::from_slice(&bytes)
        .map_err(|e| JwtError::malformed(format!("{part} is not a JSON object: {e}")))?;
    Ok(map)
}

struct StrictObject(Map<String, Value>);

impl<'de> serde::Deserialize<'de> for StrictObject {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = StrictObject;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut access: A,
            ) -> Result<StrictObject, A::Error> {
                let mut map = Map::new();
                while let Some((key, value)) = access.next_entry::<String, Value>()? {
                    if map.contains_key(&key) {
                        return Err(serde::de::Error::custom(format_args!(
                            "duplicate member {key:?}"
                        )));
                    }
                    map.insert(key, value);
                }
                Ok(StrictObject(map))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

#[derive(Clone, Copy)]
enum Rounding {
    Down,
    Up,
}

/// A NumericDate claim as whole Unix seconds (fractions rounded towards
/// the stricter side).
fn numeric_date(
    claims: &Map<String, Value>,
    claim: &'static str,
    rounding: Rounding,
) -> Result<Option<u64>, JwtError> {
    let Some(value) = claims.get(claim) else {
        return Ok(None);
    };
    let Value::Number(number) = value else {
        return Err(JwtError::claim(claim, "not a number (NumericDate)"));
    };
    if let Some(secs) = number.as_u64() {
        return Ok(Some(secs));
    }
    match number.as_f64() {
        Some(secs) if (0.0..1e15).contains(&secs) => {
            let rounded = match rounding {
                Rounding::Down => secs.floor(),
                Rounding::Up => secs.ceil(),
            };
            // In range by the check above, so the conversion is exact.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            Ok(Some(rounded as u64))
        }
        _ => Err(JwtError::claim(
            claim,
            format!("{number} is not a Unix time in seconds"),
        )),
    }
}

fn to_system_time(claim: &'static str, secs: u64) -> Result<SystemTime, JwtError> {
    UNIX_EPOCH
        .checked_add(Duration::from_secs(secs))
        .ok_or_else(|| JwtError::claim(claim, format!("{secs} is out of range")))
}

/// At most 256 bytes of attacker-controlled text in an error.
fn truncate(s: &str) -> String {
    const MAX: usize = 256;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", s.get(..end).unwrap_or_default())
}

/// Converts JSON claims into a protobuf `Struct` (the Workload API's
/// `ValidateJWTSVIDResponse.claims`).
pub fn claims_to_struct(claims: &Map<String, Value>) -> prost_types::Struct {
    prost_types::Struct {
        fields: claims
            .iter()
            .map(|(k, v)| (k.clone(), json_to_proto(v)))
            .collect(),
    }
}

/// Converts a protobuf `Struct` back into JSON claims. Numbers that are
/// whole and fit in `i64`/`u64` become JSON integers.
pub fn struct_to_claims(value: &prost_types::Struct) -> Map<String, Value> {
    value
        .fields
        .iter()
        .map(|(k, v)| (k.clone(), proto_to_json(v)))
        .collect()
}

fn json_to_proto(value: &Value) -> prost_types::Value {
    use prost_types::value::Kind;
    let kind = match value {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(*b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => Kind::StringValue(s.clone()),
        Value::Array(items) => Kind::ListValue(prost_types::ListValue {
            values: items.iter().map(json_to_proto).collect(),
        }),
        Value::Object(map) => Kind::StructValue(claims_to_struct(map)),
    };
    prost_types::Value { kind: Some(kind) }
}

fn proto_to_json(value: &prost_types::Value) -> Value {
    use prost_types::value::Kind;
    match &value.kind {
        None | Some(Kind::NullValue(_)) => Value::Null,
        Some(Kind::BoolValue(b)) => Value::Bool(*b),
        Some(Kind::NumberValue(n)) => {
            const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
            if n.fract() == 0.0 && n.abs() <= EXACT {
                // Whole and within the exactly representable range.
                #[allow(clippy::cast_possible_truncation)]
                Value::from(*n as i64)
            } else {
                serde_json::Number::from_f64(*n).map_or(Value::Null, Value::Number)
            }
        }
        Some(Kind::StringValue(s)) => Value::String(s.clone()),
        Some(Kind::ListValue(list)) => {
            Value::Array(list.values.iter().map(proto_to_json).collect())
        }
        Some(Kind::StructValue(s)) => Value::Object(struct_to_claims(s)),
    }
}

#[cfg(test)]
mod tests;
