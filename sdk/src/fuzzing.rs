//! Entry points for the fuzz targets in `fuzz/` and for the corpus replay
//! test (`tests/fuzz_corpus.rs`), so both drive exactly the same code. Each
//! function feeds arbitrary bytes to one parser; the only failure is a panic.
//!
//! Not API: hidden from the docs, may change at any time.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::bundle::X509Bundle;
use crate::id::TrustDomain;
use crate::jwt::{JwtBundle, JwtSvid, validate_jwt_svid};
use crate::svid::X509Svid;

/// The names of every target, matching the files in `fuzz/fuzz_targets/`.
pub const TARGETS: &[&str] = &[
    "jwt_svid",
    "jwt_svid_validate",
    "jwks",
    "x509_svid",
    "x509_bundle",
    "endpoint_address",
];

/// The trust domain every target parses bundles for.
pub const FUZZ_TRUST_DOMAIN: &str = "example.org";

/// The audience [`jwt_svid_validate`] validates for.
pub const FUZZ_AUDIENCE: &str = "fuzz";

/// The time [`jwt_svid_validate`] validates at (2025-06-15), fixed so that
/// replaying the corpus gives the same result on every day.
pub const FUZZ_NOW_SECS: u64 = 1_750_000_000;

/// The JWT bundle of [`FUZZ_TRUST_DOMAIN`] that [`jwt_svid_validate`]
/// validates against: test keys (`fuzz-p256`, `fuzz-p384`, `fuzz-rsa2048`)
/// whose private halves sign the seed tokens in `sdk/tests/fuzz_corpus.rs`.
pub const FUZZ_JWKS: &str = r#"{"keys":[
{"kty":"EC","crv":"P-256","x":"HbtC3muV6xlzWsqcT8cOGzgP1tI8IZhUhQX5QI0HUIA","y":"mCOPaKpu46ziHjRj2acTsQWVzctC50M2mozr8eaV9G4","kid":"fuzz-p256","use":"jwt-svid"},
{"kty":"EC","crv":"P-384","x":"8HBc3X1wqxZ4Sd3EsD1omGxocD8RvcoiMxrgNlD1BCRv4e9q9RNQXxJ-Y1NkqlRe","y":"W5ehO7MK6QjMWEsuftFfAeihXYLw7hh0ZCdeuYGCv7jGOmLdPQV3T5ODyZhtfYhm","kid":"fuzz-p384","use":"jwt-svid"},
{"kty":"RSA","n":"33vzbRddFaw9yFMQMsRAeAFdkBJPDsJR1oazSAjxxSHGPOUv3obbqvtuSJiK6xQKtTch-sk13bFJITRHgeueMNiXWtXGOP4wDyE9rMJX7D_LjshaB-ybi15yHbSSx8ePvHqooxFG7ujj_JIumhMlgwiSmJeWZ51q0s3VQLn1rJy5blPIM9rRsRklkMce7VOUHhCT4tV3lXELH8EXEtDyfQC6v2_B-JikW1_AZd6RPcs5s0JMHcbxDypvI23un31bh5cwsqYal2J2CbJbxWbwB-_qWql16HR1eDXWX_XrOxgaG-4bu2wElVuYDsugznqNfM9OyBzIIgpy3RXOfQ_Idw","e":"AQAB","kid":"fuzz-rsa2048","use":"jwt-svid"}
]}"#;

/// Runs the target called `name` on `data`; `false` if there is no such target.
pub fn run(name: &str, data: &[u8]) -> bool {
    match name {
        "jwt_svid" => jwt_svid(data),
        "jwt_svid_validate" => jwt_svid_validate(data),
        "jwks" => jwks(data),
        "x509_svid" => x509_svid(data),
        "x509_bundle" => x509_bundle(data),
        "endpoint_address" => endpoint_address(data),
        _ => return false,
    }
    true
}

/// [`FUZZ_TRUST_DOMAIN`].
pub fn trust_domain() -> TrustDomain {
    static TD: OnceLock<TrustDomain> = OnceLock::new();
    TD.get_or_init(|| TrustDomain::parse(FUZZ_TRUST_DOMAIN).expect("fuzz trust domain"))
        .clone()
}

/// [`FUZZ_JWKS`] as a bundle.
pub fn jwt_bundle() -> &'static JwtBundle {
    static BUNDLE: OnceLock<JwtBundle> = OnceLock::new();
    BUNDLE.get_or_init(|| {
        JwtBundle::from_jwks(trust_domain(), FUZZ_JWKS.as_bytes()).expect("fuzz JWKS")
    })
}

/// [`FUZZ_NOW_SECS`] as a time.
pub fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(FUZZ_NOW_SECS)
}

/// JWT-SVIDs read without verification ([`JwtSvid::parse_insecure`]).
pub fn jwt_svid(data: &[u8]) {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(svid) = JwtSvid::parse_insecure(token) {
        assert_eq!(svid.token(), token);
        assert!(!svid.audience().is_empty(), "no audience");
        assert!(!svid.key_id().is_empty(), "no kid");
        let _ = (
            svid.spiffe_id().to_string(),
            svid.expiry(),
            svid.issued_at(),
        );
        let _ = svid.algorithm().name();
        let _ = svid.claims().len();
        let _ = svid.with_hint("fuzz").hint();
    }
}

/// JWT-SVIDs validated ([`validate_jwt_svid`]) for [`FUZZ_AUDIENCE`] at
/// [`FUZZ_NOW_SECS`] against [`FUZZ_JWKS`].
pub fn jwt_svid_validate(data: &[u8]) {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(svid) = validate_jwt_svid(token, jwt_bundle(), FUZZ_AUDIENCE, now()) {
        assert_eq!(svid.spiffe_id().trust_domain(), &trust_domain());
        assert!(svid.audience().iter().any(|a| a == FUZZ_AUDIENCE));
        assert!(jwt_bundle().authority(svid.key_id()).is_some());
        let insecure = JwtSvid::parse_insecure(token).expect("validated but not parsable");
        assert_eq!(insecure, svid, "parse_insecure and validate disagree");
    }
}

/// SPIFFE bundles / JWKS documents, read as JWT authorities
/// ([`JwtBundle::from_jwks`]) and as X.509 authorities
/// ([`X509Bundle::from_jwks`]); what is read must survive a round trip.
pub fn jwks(data: &[u8]) {
    if let Ok(bundle) = JwtBundle::from_jwks(trust_domain(), data) {
        let again = JwtBundle::from_jwks(trust_domain(), bundle.to_jwks_json().as_bytes())
            .expect("to_jwks output does not parse");
        assert_eq!(again, bundle, "JWKS round trip");
    }
    if let Ok(bundle) = X509Bundle::from_jwks(trust_domain(), data) {
        let _ = bundle.root_store().len();
        let again = X509Bundle::parse(trust_domain(), &bundle.to_der())
            .expect("to_der output of a JWKS bundle does not parse");
        assert_eq!(again, bundle, "JWKS → DER round trip");
    }
}

/// X509-SVIDs ([`X509Svid::parse`]): bytes 0..2 are the big-endian length N
/// of the certificate chain in bytes 2..2+N, the rest is the PKCS#8 key.
pub fn x509_svid(data: &[u8]) {
    let Some((len, rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let split = usize::from(u16::from_be_bytes(*len)).min(rest.len());
    let (chain, key) = rest.split_at(split);
    if let Ok(svid) = X509Svid::parse(chain, key) {
        let again: Vec<u8> = svid.cert_chain().iter().flat_map(|c| c.to_vec()).collect();
        assert_eq!(again, chain, "chain changed");
        let _ = (svid.spiffe_id().to_string(), svid.expiry(), svid.leaf());
        let _ = svid.certified_key();
    }
}

/// X.509 bundles in the Workload API form, concatenated DER
/// ([`X509Bundle::parse`]).
pub fn x509_bundle(data: &[u8]) {
    if let Ok(bundle) = X509Bundle::parse(trust_domain(), data) {
        assert_eq!(bundle.to_der(), data, "to_der is not the input");
        assert!(!bundle.authorities().is_empty(), "no authority");
        let _ = bundle.root_store().len();
    }
}

/// Workload API endpoint addresses (`SPIFFE_ENDPOINT_SOCKET`,
/// [`crate::workload::parse_endpoint_address`]).
pub fn endpoint_address(data: &[u8]) {
    let Ok(address) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(path) = crate::workload::parse_endpoint_address(address) {
        assert!(path.is_absolute(), "{path:?} is not absolute");
        assert!(address.ends_with(path.to_str().unwrap_or_default()));
    }
}
