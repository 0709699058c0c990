#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair, RSA_PKCS1_SHA256, RSA_PSS_SHA256,
    RsaKeyPair,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64URL;
use serde_json::{Value, json};

use super::*;

const NOW: u64 = 1_750_000_000;
const KID: &str = "key-1";
const AUD: &str = "payments";

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW)
}

fn td(name: &str) -> TrustDomain {
    TrustDomain::parse(name).unwrap()
}

struct EcSigner {
    key: EcdsaKeyPair,
    rng: SystemRandom,
}

impl EcSigner {
    fn new() -> Self {
        let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        EcSigner {
            key,
            rng: SystemRandom::new(),
        }
    }

    fn public(&self) -> JwtPublicKey {
        JwtPublicKey::ec_p256(self.key.public_key().as_ref()).unwrap()
    }

    fn bundle(&self, trust_domain: &str) -> JwtBundle {
        let mut bundle = JwtBundle::new(td(trust_domain));
        bundle.add_authority(KID, self.public()).unwrap();
        bundle
    }

    /// Signs raw JSON header and claims.
    fn sign_raw(&self, header: &str, claims: &str) -> String {
        let input = format!("{}.{}", BASE64URL.encode(header), BASE64URL.encode(claims));
        let sig = self.key.sign(&self.rng, input.as_bytes()).unwrap();
        format!("{input}.{}", BASE64URL.encode(sig.as_ref()))
    }

    fn sign(&self, header: &Value, claims: &Value) -> String {
        self.sign_raw(&header.to_string(), &claims.to_string())
    }
}

fn header() -> Value {
    json!({"alg": "ES256", "kid": KID, "typ": "JWT"})
}

fn claims() -> Value {
    json!({
        "sub": "spiffe://example.org/web",
        "aud": AUD,
        "exp": NOW + 300,
        "iat": NOW - 10,
    })
}

fn with(mut value: Value, key: &str, member: Value) -> Value {
    value.as_object_mut().unwrap().insert(key.into(), member);
    value
}

fn without(mut value: Value, key: &str) -> Value {
    value.as_object_mut().unwrap().remove(key);
    value
}

fn validate(token: &str, bundle: &JwtBundle) -> Result<JwtSvid, JwtError> {
    validate_jwt_svid(token, bundle, AUD, now())
}

#[test]
fn valid_token_passes() {
    let signer = EcSigner::new();
    let token = signer.sign(&header(), &claims());
    let svid = validate(&token, &signer.bundle("example.org")).unwrap();
    assert_eq!(svid.spiffe_id().as_str(), "spiffe://example.org/web");
    assert_eq!(svid.audience(), [AUD.to_owned()]);
    assert_eq!(svid.expiry(), UNIX_EPOCH + Duration::from_secs(NOW + 300));
    assert_eq!(
        svid.issued_at(),
        Some(UNIX_EPOCH + Duration::from_secs(NOW - 10))
    );
    assert_eq!(svid.key_id(), KID);
    assert_eq!(svid.algorithm(), JwtAlgorithm::Es256);
    assert_eq!(svid.token(), token);
    assert_eq!(
        svid.claims().get("sub"),
        Some(&json!("spiffe://example.org/web"))
    );
}

#[test]
fn valid_with_audience_array_and_bundle_set() {
    let signer = EcSigner::new();
    let token = signer.sign(&header(), &with(claims(), "aud", json!(["other", AUD])));
    let set: JwtBundleSet = [
        signer.bundle("example.org"),
        EcSigner::new().bundle("other.org"),
    ]
    .into_iter()
    .collect();
    let svid = validate_jwt_svid(&token, &set, AUD, now()).unwrap();
    assert_eq!(svid.audience(), ["other".to_owned(), AUD.to_owned()]);
    // No typ is fine, JOSE is fine.
    let token = signer.sign(&without(header(), "typ"), &claims());
    validate(&token, &signer.bundle("example.org")).unwrap();
    let token = signer.sign(&with(header(), "typ", json!("JOSE")), &claims());
    validate(&token, &signer.bundle("example.org")).unwrap();
}

#[test]
fn wrong_audience_is_refused() {
    let signer = EcSigner::new();
    let token = signer.sign(&header(), &with(claims(), "aud", json!(["a", "b"])));
    assert_eq!(
        validate(&token, &signer.bundle("example.org")),
        Err(JwtError::AudienceMismatch {
            expected: AUD.into(),
            found: vec!["a".into(), "b".into()]
        })
    );
    assert_eq!(
        validate_jwt_svid(&token, &signer.bundle("example.org"), "", now()),
        Err(JwtError::EmptyAudience)
    );
}

#[test]
fn expired_is_refused_after_the_leeway_only() {
    let signer = EcSigner::new();
    let bundle = signer.bundle("example.org");
    let exp = NOW - CLOCK_LEEWAY.as_secs();
    let token = signer.sign(&header(), &with(claims(), "exp", json!(exp)));
    validate(&token, &bundle).unwrap();
    let token = signer.sign(&header(), &with(claims(), "exp", json!(exp - 1)));
    assert_eq!(
        validate(&token, &bundle),
        Err(JwtError::Expired {
            exp: exp - 1,
            now: NOW
        })
    );
    let token = signer.sign(&header(), &without(claims(), "exp"));
    assert_eq!(
        validate(&token, &bundle),
        Err(JwtError::MissingClaim { claim: "exp" })
    );
}

#[test]
fn not_yet_valid_is_refused() {
    let signer = EcSigner::new();
    let token = signer.sign(&header(), &with(claims(), "nbf", json!(NOW + 60)));
    assert_eq!(
        validate(&token, &signer.bundle("example.org")),
        Err(JwtError::NotYetValid {
            nbf: NOW + 60,
            now: NOW
        })
    );
}

#[test]
fn unknown_kid_is_refused() {
    let signer = EcSigner::new();
    let token = signer.sign(&with(header(), "kid", json!("key-2")), &claims());
    assert_eq!(
        validate(&token, &signer.bundle("example.org")),
        Err(JwtError::UnknownKid {
            kid: "key-2".into(),
            trust_domain: td("example.org")
        })
    );
}

#[test]
fn missing_kid_is_refused() {
    let signer = EcSigner::new();
    let bundle = signer.bundle("example.org");
    let token = signer.sign(&without(header(), "kid"), &claims());
    assert_eq!(validate(&token, &bundle), Err(JwtError::MissingKid));
    let token = signer.sign(&with(header(), "kid", json!("")), &claims());
    assert_eq!(validate(&token, &bundle), Err(JwtError::MissingKid));
}

#[test]
fn alg_none_is_refused() {
    let signer = EcSigner::new();
    let input = format!(
        "{}.{}.",
        BASE64URL.encode(json!({"alg": "none", "kid": KID}).to_string()),
        BASE64URL.encode(claims().to_string())
    );
    assert_eq!(
        validate(&input, &signer.bundle("example.org")),
        Err(JwtError::UnsupportedAlgorithm { alg: "none".into() })
    );
}

#[test]
fn alg_hs256_is_refused() {
    // The classic confusion: an HMAC keyed with the public key bytes.
    let signer = EcSigner::new();
    let hmac_key = aws_lc_rs::hmac::Key::new(
        aws_lc_rs::hmac::HMAC_SHA256,
        signer.key.public_key().as_ref(),
    );
    let input = format!(
        "{}.{}",
        BASE64URL.encode(json!({"alg": "HS256", "kid": KID}).to_string()),
        BASE64URL.encode(claims().to_string())
    );
    let tag = aws_lc_rs::hmac::sign(&hmac_key, input.as_bytes());
    let token = format!("{input}.{}", BASE64URL.encode(tag.as_ref()));
    assert_eq!(
        validate(&token, &signer.bundle("example.org")),
        Err(JwtError::UnsupportedAlgorithm {
            alg: "HS256".into()
        })
    );
}

#[test]
fn tampered_payload_is_refused() {
    let signer = EcSigner::new();
    let token = signer.sign(&header(), &claims());
    let mut pieces: Vec<String> = token.split('.').map(str::to_owned).collect();
    pieces[1] =
        BASE64URL.encode(with(claims(), "sub", json!("spiffe://example.org/admin")).to_string());
    let tampered = pieces.join(".");
    assert_eq!(
        validate(&tampered, &signer.bundle("example.org")),
        Err(JwtError::BadSignature)
    );
    // Signed by another key under the same kid.
    let other = EcSigner::new();
    let token = other.sign(&header(), &claims());
    assert_eq!(
        validate(&token, &signer.bundle("example.org")),
        Err(JwtError::BadSignature)
    );
}

#[test]
fn subject_that_is_not_a_spiffe_id_is_refused() {
    let signer = EcSigner::new();
    let bundle = signer.bundle("example.org");
    for sub in [
        "web",
        "spiffe://Example.org/web",
        "https://example.org/web",
        "spiffe://example.org/web/",
        "spiffe://example.org/%41",
    ] {
        let token = signer.sign(&header(), &with(claims(), "sub", json!(sub)));
        match validate(&token, &bundle) {
            Err(JwtError::BadSubject { sub: found, .. }) => assert_eq!(found, sub),
            other => panic!("{sub}: {other:?}"),
        }
    }
    let token = signer.sign(&header(), &without(claims(), "sub"));
    assert_eq!(
        validate(&token, &bundle),
        Err(JwtError::MissingClaim { claim: "sub" })
    );
}

#[test]
fn wrong_trust_domain_is_refused() {
    let signer = EcSigner::new();
    let token = signer.sign(
        &header(),
        &with(claims(), "sub", json!("spiffe://other.org/web")),
    );
    assert_eq!(
        validate(&token, &signer.bundle("example.org")),
        Err(JwtError::NoBundle {
            trust_domain: td("other.org")
        })
    );
    // A key of other.org with the same kid is not used for example.org.
    let set: JwtBundleSet = [
        EcSigner::new().bundle("example.org"),
        signer.bundle("other.org"),
    ]
    .into_iter()
    .collect();
    let token = signer.sign(&header(), &claims());
    assert_eq!(
        validate_jwt_svid(&token, &set, AUD, now()),
        Err(JwtError::BadSignature)
    );
}

#[test]
fn key_type_must_fit_the_alg() {
    let signer = EcSigner::new();
    let token = signer.sign(&with(header(), "alg", json!("RS256")), &claims());
    assert_eq!(
        validate(&token, &signer.bundle("example.org")),
        Err(JwtError::KeyAlgorithmMismatch {
            kid: KID.into(),
            alg: JwtAlgorithm::Rs256,
            key_type: "EC P-256"
        })
    );
}

#[test]
fn rsa_tokens_verify() {
    let key = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let public = key.public_key();
    let n = public.modulus().big_endian_without_leading_zero().to_vec();
    let e = public.exponent().big_endian_without_leading_zero().to_vec();
    let jwks = json!({"keys": [{
        "kty": "RSA", "n": BASE64URL.encode(&n), "e": BASE64URL.encode(&e),
        "kid": "rsa", "use": "jwt-svid"
    }]});
    let bundle = JwtBundle::from_jwks(td("example.org"), jwks.to_string().as_bytes()).unwrap();
    let rng = SystemRandom::new();
    for (alg, padding) in [
        (
            "RS256",
            &RSA_PKCS1_SHA256 as &dyn aws_lc_rs::signature::RsaEncoding,
        ),
        ("PS256", &RSA_PSS_SHA256),
    ] {
        let input = format!(
            "{}.{}",
            BASE64URL.encode(json!({"alg": alg, "kid": "rsa"}).to_string()),
            BASE64URL.encode(claims().to_string())
        );
        let mut sig = vec![0; key.public_modulus_len()];
        key.sign(padding, &rng, input.as_bytes(), &mut sig).unwrap();
        let token = format!("{input}.{}", BASE64URL.encode(&sig));
        let svid = validate(&token, &bundle).unwrap();
        assert_eq!(svid.algorithm().name(), alg);
    }
    // The same RSA key refuses ES256.
    let token = EcSigner::new().sign(&json!({"alg": "ES256", "kid": "rsa"}), &claims());
    assert!(matches!(
        validate(&token, &bundle),
        Err(JwtError::KeyAlgorithmMismatch { .. })
    ));
}

/// Named malformed tokens: each is refused as `MalformedToken` (or the
/// more specific variant named).
#[test]
fn malformed_token_fixtures() {
    let signer = EcSigner::new();
    let bundle = signer.bundle("example.org");
    let good = signer.sign(&header(), &claims());
    let b64 = |v: &Value| BASE64URL.encode(v.to_string());
    let cases: Vec<(&str, String)> = vec![
        ("empty", String::new()),
        ("one part", "abc".into()),
        ("two parts", format!("{}.{}", b64(&header()), b64(&claims()))),
        ("four parts", format!("{good}.x")),
        ("five parts (JWE)", "a.b.c.d.e".into()),
        ("header not base64url", format!("!!.{}.AA", b64(&claims()))),
        ("padded base64", format!("{}=.{}.AA", b64(&header()), b64(&claims()))),
        ("standard base64 alphabet", good.replacen('-', "+", 1).replacen('_', "/", 1)),
        ("header not JSON", format!("{}.{}.AA", BASE64URL.encode("nope"), b64(&claims()))),
        ("header is an array", format!("{}.{}.AA", b64(&json!([1])), b64(&claims()))),
        ("payload is a string", format!("{}.{}.AA", b64(&header()), b64(&json!("x")))),
        (
            "duplicate sub",
            signer.sign_raw(
                &header().to_string(),
                r#"{"sub":"spiffe://example.org/web","sub":"spiffe://example.org/admin","aud":"payments","exp":1750000300}"#,
            ),
        ),
        ("alg not a string", signer.sign(&with(header(), "alg", json!(7)), &claims())),
        ("no alg", signer.sign(&without(header(), "alg"), &claims())),
        ("crit header", signer.sign(&with(header(), "crit", json!(["b64"])), &claims())),
        ("signature not base64url", format!("{}.{}.$$", b64(&header()), b64(&claims()))),
    ];
    for (name, token) in cases {
        if name == "standard base64 alphabet" && !good.contains(['-', '_']) {
            continue;
        }
        match validate(&token, &bundle) {
            Err(JwtError::MalformedToken { .. }) => {}
            other => panic!("{name}: expected MalformedToken, got {other:?}"),
        }
    }

    let too_long = "a".repeat(MAX_TOKEN_LEN + 1);
    assert_eq!(
        validate(&too_long, &bundle),
        Err(JwtError::TokenTooLong {
            len: MAX_TOKEN_LEN + 1,
            max: MAX_TOKEN_LEN
        })
    );
    let token = signer.sign(&with(header(), "typ", json!("at+jwt")), &claims());
    assert_eq!(
        validate(&token, &bundle),
        Err(JwtError::UnsupportedType {
            typ: "at+jwt".into()
        })
    );
    // Truncated signature: the right length matters for ES256.
    let (input, sig) = good.rsplit_once('.').unwrap();
    let sig = BASE64URL.decode(sig).unwrap();
    let short = format!("{input}.{}", BASE64URL.encode(&sig[..63]));
    assert_eq!(validate(&short, &bundle), Err(JwtError::BadSignature));
}

#[test]
fn invalid_claims_fixtures() {
    let signer = EcSigner::new();
    let bundle = signer.bundle("example.org");
    let cases = [
        ("aud", json!([]), "aud"),
        ("aud", json!(5), "aud"),
        ("aud", json!(["ok", 5]), "aud"),
        ("exp", json!("tomorrow"), "exp"),
        ("exp", json!(-1), "exp"),
        ("exp", json!(1e300), "exp"),
        ("sub", json!(42), "sub"),
        ("iat", json!(true), "iat"),
    ];
    for (member, value, claim) in cases {
        let token = signer.sign(&header(), &with(claims(), member, value.clone()));
        match validate(&token, &bundle) {
            Err(JwtError::InvalidClaim { claim: c, .. }) => assert_eq!(c, claim, "{value}"),
            other => panic!("{member}={value}: {other:?}"),
        }
    }
    let token = signer.sign(&header(), &without(claims(), "aud"));
    assert_eq!(
        validate(&token, &bundle),
        Err(JwtError::MissingClaim { claim: "aud" })
    );
    // A fractional exp is rounded down.
    let token = signer.sign(
        &header(),
        &with(claims(), "exp", json!((NOW + 300) as f64 + 0.9)),
    );
    let svid = validate(&token, &bundle).unwrap();
    assert_eq!(svid.expiry(), UNIX_EPOCH + Duration::from_secs(NOW + 300));
}

#[test]
fn jwks_round_trip_and_use_filtering() {
    let signer = EcSigner::new();
    let jwks = signer.bundle("example.org").to_jwks_json();
    let parsed = JwtBundle::from_jwks(td("example.org"), jwks.as_bytes()).unwrap();
    assert_eq!(parsed, signer.bundle("example.org"));
    assert_eq!(parsed.trust_domain(), &td("example.org"));
    assert!(parsed.authority(KID).is_some());
    assert!(parsed.authority("nope").is_none());

    // A full SPIFFE bundle: the x509-svid entry is skipped.
    let mut doc: Value = serde_json::from_str(&jwks).unwrap();
    doc["keys"].as_array_mut().unwrap().push(json!({
        "kty": "EC", "crv": "P-256", "use": "x509-svid",
        "x": "AA", "y": "AA", "x5c": ["AAAA"]
    }));
    doc["spiffe_sequence"] = json!(3);
    let parsed = JwtBundle::from_jwks(td("example.org"), doc.to_string().as_bytes()).unwrap();
    assert_eq!(parsed.len(), 1);

    // And the token signed by the key validates against the parsed bundle.
    let token = signer.sign(&header(), &claims());
    validate(&token, &parsed).unwrap();
}

#[test]
fn malformed_jwks_fixtures() {
    let signer = EcSigner::new();
    let good: Value = serde_json::from_str(&signer.bundle("example.org").to_jwks_json()).unwrap();
    let good_key = good["keys"][0].clone();
    let key_with =
        |member: &str, value: Value| json!({"keys": [with(good_key.clone(), member, value)]});
    let key_without = |member: &str| json!({"keys": [without(good_key.clone(), member)]});
    let cases: Vec<(&str, String)> = vec![
        ("not JSON", "{".into()),
        ("array", "[]".into()),
        ("no keys", "{}".into()),
        ("keys not array", r#"{"keys":{}}"#.into()),
        ("key not object", r#"{"keys":[1]}"#.into()),
        ("no kid", key_without("kid").to_string()),
        ("empty kid", key_with("kid", json!("")).to_string()),
        ("no kty", key_without("kty").to_string()),
        ("kty oct", key_with("kty", json!("oct")).to_string()),
        ("crv P-521", key_with("crv", json!("P-521")).to_string()),
        ("short x", key_with("x", json!("AAAA")).to_string()),
        ("x not base64url", key_with("x", json!("!!")).to_string()),
        (
            "point not on curve",
            key_with("y", json!(BASE64URL.encode([1u8; 32]))).to_string(),
        ),
        ("private key", key_with("d", json!("AAAA")).to_string()),
        ("use not string", key_with("use", json!(1)).to_string()),
        (
            "duplicate kid",
            json!({"keys": [good_key.clone(), good_key.clone()]}).to_string(),
        ),
        (
            "RSA 1024",
            json!({"keys": [{"kty": "RSA", "kid": "r", "n": BASE64URL.encode([0xffu8; 128]), "e": "AQAB"}]})
                .to_string(),
        ),
    ];
    for (name, text) in cases {
        match JwtBundle::from_jwks(td("example.org"), text.as_bytes()) {
            Err(JwtError::MalformedBundle { .. } | JwtError::DuplicateKid { .. }) => {}
            other => panic!("{name}: {other:?}"),
        }
    }
    // An unknown use is skipped, not an error.
    let unknown = key_with("use", json!("enc")).to_string();
    assert!(
        JwtBundle::from_jwks(td("example.org"), unknown.as_bytes())
            .unwrap()
            .is_empty()
    );
}

#[test]
fn parse_insecure_reads_without_verifying() {
    let signer = EcSigner::new();
    let token = signer.sign(&header(), &with(claims(), "exp", json!(1)));
    let svid = JwtSvid::parse_insecure(&token)
        .unwrap()
        .with_hint("internal");
    assert_eq!(svid.spiffe_id().as_str(), "spiffe://example.org/web");
    assert_eq!(svid.hint(), Some("internal"));
    assert!(JwtSvid::parse_insecure("a.b").is_err());
}

#[test]
fn claims_struct_round_trip() {
    let claims = json!({
        "sub": "spiffe://example.org/web",
        "aud": ["a", "b"],
        "exp": 1750000300u64,
        "ratio": 0.5,
        "nested": {"ok": true, "none": null},
    });
    let map = claims.as_object().unwrap();
    let back = struct_to_claims(&claims_to_struct(map));
    assert_eq!(&back, map);
}
