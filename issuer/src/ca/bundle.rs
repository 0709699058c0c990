//! The trust bundle in the two shapes clients read:
//!
//! * the Workload API's X.509 bundle: the root certificates as
//!   concatenated DER ([`TrustBundle::x509_roots_der`]);
//! * the SPIFFE bundle (SPIFFE Trust Domain and Bundle spec §4): a JWKS
//!   with one `use: x509-svid` entry per root (`x5c` holding exactly that
//!   certificate, no `kid`) and one `use: jwt-svid` entry per JWT key (with
//!   its `kid`), plus `spiffe_sequence` and `spiffe_refresh_hint`
//!   ([`TrustBundle::to_jwks_json`]); and the JWT-only JWKS the Workload
//!   API's `FetchJWTBundles` returns ([`TrustBundle::to_jwt_jwks_json`]).

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD as BASE64, URL_SAFE_NO_PAD as BASE64URL};
use rootmark_sdk::id::TrustDomain;
use serde_json::{Map, Value, json};
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;

use super::der::oid;
use super::{CaError, JwtAuthority, X509Authority};

/// Default `spiffe_refresh_hint`: how often bundle consumers should poll.
pub const DEFAULT_REFRESH_HINT: Duration = Duration::from_secs(300);

/// A JWT signing key as published in the bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtAuthorityKey {
    /// The key id, as in the tokens' `kid`.
    pub kid: String,
    /// The uncompressed P-256 point (65 bytes).
    pub public_key: Vec<u8>,
    /// When the key expires (it leaves the bundle then).
    pub not_after: SystemTime,
}

impl JwtAuthorityKey {
    /// The key as a DER SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> Vec<u8> {
        let prefix: [u8; 26] = [
            0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06,
            0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
        ];
        [&prefix[..], &self.public_key].concat()
    }

    fn jwk(&self) -> Result<Map<String, Value>, CaError> {
        let mut jwk = ec_jwk("P-256", &self.public_key, 32).ok_or_else(|| CaError::Bundle {
            field: format!("jwt key {}", self.kid),
            expected: "an uncompressed P-256 point",
            found: format!("{} bytes", self.public_key.len()),
        })?;
        jwk.insert("use".into(), "jwt-svid".into());
        jwk.insert("kid".into(), self.kid.clone().into());
        Ok(jwk)
    }
}

/// The trust material of one trust domain.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TrustBundle {
    /// The trust domain.
    pub trust_domain: TrustDomain,
    /// Root CA certificates (DER).
    pub x509_authorities: Vec<Vec<u8>>,
    /// JWT signing keys.
    pub jwt_authorities: Vec<JwtAuthorityKey>,
    /// `spiffe_sequence`: bumped by the service at every change it
    /// publishes (it keeps the counter, e.g. in the datastore).
    pub sequence: u64,
    /// `spiffe_refresh_hint`.
    pub refresh_hint: Duration,
}

impl TrustBundle {
    /// The bundle an X.509 CA and a JWT authority publish now.
    pub fn from_authorities(
        x509: &X509Authority,
        jwt: &JwtAuthority,
        sequence: u64,
        refresh_hint: Duration,
    ) -> Self {
        Self {
            trust_domain: x509.trust_domain().clone(),
            x509_authorities: x509.bundle(),
            jwt_authorities: jwt.bundle(),
            sequence,
            refresh_hint,
        }
    }

    /// The roots as concatenated DER: the Workload API `bundle` field.
    pub fn x509_roots_der(&self) -> Vec<u8> {
        self.x509_authorities.concat()
    }

    /// The JWT key with this `kid`.
    pub fn jwt_key(&self, kid: &str) -> Option<&JwtAuthorityKey> {
        self.jwt_authorities.iter().find(|k| k.kid == kid)
    }

    /// The SPIFFE bundle as a JSON value (see the module docs).
    ///
    /// # Errors
    /// [`CaError::Bundle`] when a root certificate cannot be parsed or has
    /// a key type JWK cannot express here (not EC P-256/P-384 or RSA).
    pub fn to_jwks(&self) -> Result<Value, CaError> {
        let mut keys = Vec::with_capacity(self.x509_authorities.len() + self.jwt_authorities.len());
        for (i, certificate) in self.x509_authorities.iter().enumerate() {
            let mut jwk =
                certificate_jwk(certificate).map_err(|(expected, found)| CaError::Bundle {
                    field: format!("x509_authorities[{i}]"),
                    expected,
                    found,
                })?;
            jwk.insert("use".into(), "x509-svid".into());
            jwk.insert("x5c".into(), json!([BASE64.encode(certificate)]));
            keys.push(Value::Object(jwk));
        }
        for key in &self.jwt_authorities {
            keys.push(Value::Object(key.jwk()?));
        }
        Ok(json!({
            "keys": keys,
            "spiffe_sequence": self.sequence,
            "spiffe_refresh_hint": self.refresh_hint.as_secs(),
        }))
    }

    /// The SPIFFE bundle as JSON text.
    ///
    /// # Errors
    /// As [`TrustBundle::to_jwks`].
    pub fn to_jwks_json(&self) -> Result<String, CaError> {
        Ok(self.to_jwks()?.to_string())
    }

    /// A JWKS of the JWT keys only: what the Workload API's
    /// `FetchJWTBundles` returns per trust domain.
    ///
    /// # Errors
    /// [`CaError::Bundle`] for a malformed key.
    pub fn to_jwt_jwks_json(&self) -> Result<String, CaError> {
        let keys = self
            .jwt_authorities
            .iter()
            .map(|k| k.jwk().map(Value::Object))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(json!({ "keys": keys }).to_string())
    }
}

/// An EC JWK (`kty`, `crv`, `x`, `y`) from an uncompressed point whose
/// coordinates are `size` bytes.
fn ec_jwk(curve: &str, point: &[u8], size: usize) -> Option<Map<String, Value>> {
    if point.len() != 1 + 2 * size || point.first() != Some(&0x04) {
        return None;
    }
    let mut jwk = Map::new();
    jwk.insert("kty".into(), "EC".into());
    jwk.insert("crv".into(), curve.into());
    jwk.insert("x".into(), BASE64URL.encode(&point[1..1 + size]).into());
    jwk.insert("y".into(), BASE64URL.encode(&point[1 + size..]).into());
    Some(jwk)
}

/// The public-key JWK members of a certificate's key.
fn certificate_jwk(certificate: &[u8]) -> Result<Map<String, Value>, (&'static str, String)> {
    const EXPECTED: &str = "a DER certificate with an EC P-256/P-384 or RSA key";
    let cert = match X509Certificate::from_der(certificate) {
        Ok(([], cert)) => cert,
        Ok(_) => return Err((EXPECTED, "trailing bytes after the certificate".into())),
        Err(e) => return Err((EXPECTED, format!("an unparsable certificate ({e})"))),
    };
    let spki = cert.public_key();
    match spki.parsed() {
        Ok(PublicKey::EC(point)) => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok());
            let (name, size) = match curve.as_ref().map(|c| c.as_bytes()) {
                Some(c) if c == oid::P256 => ("P-256", 32),
                Some(c) if c == oid::P384 => ("P-384", 48),
                _ => return Err((EXPECTED, "an EC key on another curve".into())),
            };
            ec_jwk(name, point.data(), size)
                .ok_or((EXPECTED, format!("a {name} point not in uncompressed form")))
        }
        Ok(PublicKey::RSA(rsa)) => {
            let strip = |b: &[u8]| {
                let skip = b.iter().take_while(|x| **x == 0).count();
                b[skip..].to_vec()
            };
            let mut jwk = Map::new();
            jwk.insert("kty".into(), "RSA".into());
            jwk.insert("n".into(), BASE64URL.encode(strip(rsa.modulus)).into());
            jwk.insert("e".into(), BASE64URL.encode(strip(rsa.exponent)).into());
            Ok(jwk)
        }
        _ => Err((
            EXPECTED,
            format!(
                "a key of algorithm {}",
                spki.algorithm.algorithm.to_id_string()
            ),
        )),
    }
}
