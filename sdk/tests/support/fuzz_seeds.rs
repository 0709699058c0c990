//! The fixed fuzz test keys and the writers of the SDK targets' `seed-*`
//! corpus files. Shared by the replay test (`tests/fuzz_corpus.rs`, which
//! checks the keys against the fuzz bundle) and the seed writer
//! (`examples/fuzz-seeds.rs`).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // each user needs a part; tools fail loudly

use std::path::{Path, PathBuf};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair,
    RSA_PKCS1_SHA256, RSA_PSS_SHA256, RsaKeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair as RcgenKeyPair, KeyUsagePurpose, SanType,
};
use rootmark_sdk::fuzzing;
use serde_json::{Value, json};

/// `fuzz/corpus`.
pub fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus")
}

/// PKCS#8 (base64) of the private half of `fuzz-p256` in `FUZZ_JWKS`. A
/// test key, published here on purpose: it only signs fuzz seed tokens.
const FUZZ_P256_PKCS8: &str = concat!(
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg9iy1NzSckoXDcAqswBQudniZJN6sPrGYLbC/pJMs",
    "H8ehRANCAAQdu0Lea5XrGXNaypxPxw4bOA/W0jwhmFSFBflAjQdQgJgjj2iqbuOs4h40Y9mnE7EFlc3LQudDNpqM",
    "6/HmlfRu",
);

/// PKCS#8 (base64) of `fuzz-p384`.
const FUZZ_P384_PKCS8: &str = concat!(
    "MIG2AgEAMBAGByqGSM49AgEGBSuBBAAiBIGeMIGbAgEBBDC0f1tSeqir2sEBcL4YrZ0dqzC7PBzcs0g5IPEPlFy0",
    "rc4z8zC2vAKSQsjRpwLDDy2hZANiAATwcFzdfXCrFnhJ3cSwPWiYbGhwPxG9yiIzGuA2UPUEJG/h72r1E1BfEn5j",
    "U2SqVF5bl6E7swrpCMxYSy5+0V8B6KFdgvDuGHRkJ165gYK/uMY6Yt09BXdPk4PJmG19iGY=",
);

/// PKCS#8 (base64) of `fuzz-rsa2048`.
const FUZZ_RSA_PKCS8: &str = concat!(
    "MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQDfe/NtF10VrD3IUxAyxEB4AV2QEk8OwlHWhrNI",
    "CPHFIcY85S/ehtuq+25ImIrrFAq1NyH6yTXdsUkhNEeB654w2Jda1cY4/jAPIT2swlfsP8uOyFoH7JuLXnIdtJLH",
    "x4+8eqijEUbu6OP8ki6aEyWDCJKYl5ZnnWrSzdVAufWsnLluU8gz2tGxGSWQxx7tU5QeEJPi1XeVcQsfwRcS0PJ9",
    "ALq/b8H4mKRbX8Bl3pE9yzmzQkwdxvEPKm8jbe6ffVuHlzCyphqXYnYJslvFZvAH7+paqXXodHV4NdZf9es7GBob",
    "7hu7bASVW5gOy6DOeo18z07IHMgiCnLdFc59D8h3AgMBAAECggEAAJ5xwqQVbGlxNFxSh6l2ej6auTrrwCE2o870",
    "sSbhMIgS6flChC3Abv1KRWYywErqaq0P6YdkIEyM5MwlxIzX/8+hv60m4uKFVI1lg9R39N4KXMdeRHZZye2FiGKH",
    "I4mAcueuDuGN3jyD4R+whFm4OWAtM8H7tya+9H2AcTDyprs5Du7AZuM2V4lQHMovNNhJ4gEVgfL+xpLKOE45DsLv",
    "64r3t10wbSdzgpHF5CzNfn+/MqAjjhOBhcd+zAVesDQM7+HkYFs1lpgkLj+n82E8st/seW4LrLiEneaej9bndqfg",
    "wQof763SudVTnJHNf7gSVtD40pe0n5Y/IGaWfG4S0QKBgQD2XBF9eyKIkb5c44AklxiI7nv1dqP62RoxydUIRKKB",
    "flZeFTnrvyLPWk4vuoEewfPiA9MDSUvmh/BLIe8oFt10Pbu7a5MNNBXi5ugZ/XbvMPOHozKEAXhJ2fb7zSOm81wv",
    "dGLsAwj0GuAwtz+O6X7A6Z2rgpZvlTTKYBKkijxU0QKBgQDoOrm1uI8O8UvDmGghFVspzZmJ7Iq8HCiYUcV2fzPT",
    "wXfsxSSAaC2qqThoi1sXychBTDojJjOsVGzPWtMbw4cFtUs5sAiNT+8YlJAlhWFvZ2LbhKjefDkMs8ZPs09e/p0D",
    "dDuHcjPyo0/BwiiJDGCQycNs4KL0sxnDyOAP1Gq6xwKBgQCpIgI79Ip72hsn6GQ0Oqt0bs4Zcg8YC26JWfhwSbaL",
    "UnH2+3mdWMaMNoJRECjPNfa6Z0e6DNsX9KHK4wwuqKv2vt8gx7TYLrcL5NzZ4wKBKkk3CJqIt/2eLg77RhXA63iR",
    "d8TmJRtDgyQBLf1rnvAPfxNpCSlAh94LRjPmVKUg0QKBgAJKAeaeqRpWmo6VBAG/eiSRWEAZysxL4sKNm8qtOk+O",
    "CqaU0uVJIZobDOlK5lz3qjeqjrAmAkBinKf2lzog1UXjIZix+YObFBpD7J/SDsHQXRMY3alDxDQx2XSTqeafz+Bm",
    "1udg4s4zeefJCClBq/oBYyHBnRmYYlqhskO1rk+lAoGBAOP8ctR+GBLq6q8d8Nbliw89DB8JtRVOFDwviNnVOWxY",
    "u5+vCz7BcDIymWVU2vN8kDpE1dk/vkTcbqA/Ji8rcUHemjDEWYG0wi9eB6k1SUb8t1aYb1jZCH2GqTn8EXxAkgaR",
    "F9SgyeyPAA0uKCP+gSWBkUJo+kBpkW2ndD7/BXeC",
);

pub struct Signers {
    p256: EcdsaKeyPair,
    p384: EcdsaKeyPair,
    rsa: RsaKeyPair,
    rng: SystemRandom,
}

impl Signers {
    pub fn new() -> Self {
        let der = |b64: &str| STANDARD.decode(b64).unwrap();
        Signers {
            p256: EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der(FUZZ_P256_PKCS8))
                .unwrap(),
            p384: EcdsaKeyPair::from_pkcs8(&ECDSA_P384_SHA384_FIXED_SIGNING, &der(FUZZ_P384_PKCS8))
                .unwrap(),
            rsa: RsaKeyPair::from_pkcs8(&der(FUZZ_RSA_PKCS8)).unwrap(),
            rng: SystemRandom::new(),
        }
    }

    /// Signs raw header and claims JSON with the key the header's `alg`
    /// names (P-256 for anything that is not ES384/RS*/PS*).
    fn sign_raw(&self, alg: &str, header: &str, claims: &str) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let signature = match alg {
            "ES384" => self
                .p384
                .sign(&self.rng, input.as_bytes())
                .unwrap()
                .as_ref()
                .to_vec(),
            "RS256" | "PS256" => {
                let padding = if alg == "RS256" {
                    &RSA_PKCS1_SHA256
                } else {
                    &RSA_PSS_SHA256
                };
                let mut sig = vec![0; self.rsa.public_modulus_len()];
                self.rsa
                    .sign(padding, &self.rng, input.as_bytes(), &mut sig)
                    .unwrap();
                sig
            }
            _ => self
                .p256
                .sign(&self.rng, input.as_bytes())
                .unwrap()
                .as_ref()
                .to_vec(),
        };
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        let alg = header["alg"].as_str().unwrap_or("ES256");
        self.sign_raw(alg, &header.to_string(), &claims.to_string())
    }
}

pub fn header(alg: &str, kid: &str) -> Value {
    json!({"alg": alg, "kid": kid, "typ": "JWT"})
}

pub fn claims() -> Value {
    json!({
        "sub": "spiffe://example.org/web",
        "aud": [fuzzing::FUZZ_AUDIENCE],
        "exp": fuzzing::FUZZ_NOW_SECS + 3600,
        "iat": fuzzing::FUZZ_NOW_SECS - 60,
    })
}

fn with(mut value: Value, key: &str, member: Value) -> Value {
    value[key] = member;
    value
}

fn without(mut value: Value, key: &str) -> Value {
    value.as_object_mut().unwrap().remove(key);
    value
}

fn write(target: &str, name: &str, data: impl AsRef<[u8]>) {
    let dir = corpus().join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("seed-{name}")), data).unwrap();
}

/// JWT-SVIDs: the same seeds for parsing and for validation.
fn write_jwt_seeds() {
    let s = Signers::new();
    let now = fuzzing::FUZZ_NOW_SECS;
    let h = || header("ES256", "fuzz-p256");
    let tokens: Vec<(&str, String)> = vec![
        ("es256", s.sign(&h(), &claims())),
        ("es384", s.sign(&header("ES384", "fuzz-p384"), &claims())),
        ("rs256", s.sign(&header("RS256", "fuzz-rsa2048"), &claims())),
        ("ps256", s.sign(&header("PS256", "fuzz-rsa2048"), &claims())),
        (
            "aud-string-typ-jose",
            s.sign(
                &with(h(), "typ", json!("JOSE")),
                &with(claims(), "aud", json!(fuzzing::FUZZ_AUDIENCE)),
            ),
        ),
        (
            "aud-array-extra-claims",
            s.sign(
                &without(h(), "typ"),
                &with(
                    with(claims(), "aud", json!(["billing", fuzzing::FUZZ_AUDIENCE])),
                    "groups",
                    json!({"admin": [1, 2.5, null, true]}),
                ),
            ),
        ),
        (
            "float-times",
            s.sign(
                &h(),
                &with(
                    with(claims(), "exp", json!(now as f64 + 0.5)),
                    "nbf",
                    json!(now as f64 - 10.25),
                ),
            ),
        ),
        ("expired", s.sign(&h(), &with(claims(), "exp", json!(now - 31)))),
        ("not-yet-valid", s.sign(&h(), &with(claims(), "nbf", json!(now + 31)))),
        ("wrong-audience", s.sign(&h(), &with(claims(), "aud", json!(["other"])))),
        ("empty-aud-array", s.sign(&h(), &with(claims(), "aud", json!([])))),
        (
            "other-trust-domain",
            s.sign(&h(), &with(claims(), "sub", json!("spiffe://other.org/web"))),
        ),
        ("bad-sub", s.sign(&h(), &with(claims(), "sub", json!("spiffe://example.org/../x")))),
        ("no-exp", s.sign(&h(), &without(claims(), "exp"))),
        ("negative-exp", s.sign(&h(), &with(claims(), "exp", json!(-1)))),
        ("huge-exp", s.sign(&h(), &with(claims(), "exp", json!(u64::MAX)))),
        ("unknown-kid", s.sign(&header("ES256", "nope"), &claims())),
        ("no-kid", s.sign(&without(h(), "kid"), &claims())),
        ("alg-key-mismatch", s.sign(&header("ES256", "fuzz-rsa2048"), &claims())),
        ("rs512-on-rsa", s.sign(&header("RS512", "fuzz-rsa2048"), &claims())),
        ("alg-none", s.sign(&header("none", "fuzz-p256"), &claims())),
        ("alg-hs256", s.sign(&header("HS256", "fuzz-p256"), &claims())),
        ("crit", s.sign(&with(h(), "crit", json!(["exp"])), &claims())),
        ("typ-other", s.sign(&with(h(), "typ", json!("at+jwt")), &claims())),
        (
            "duplicate-sub",
            s.sign_raw(
                "ES256",
                &h().to_string(),
                &format!(
                    r#"{{"sub":"spiffe://example.org/a","sub":"spiffe://example.org/b","aud":"fuzz","exp":{}}}"#,
                    now + 60
                ),
            ),
        ),
        ("payload-not-object", s.sign_raw("ES256", &h().to_string(), "[1,2,3]")),
        ("two-parts", "eyJhbGciOiJFUzI1NiJ9.e30".to_owned()),
        ("not-base64", "!!!.???.***".to_owned()),
        ("empty", String::new()),
    ];
    let valid = &tokens[0].1;
    let mut tampered = valid.clone();
    tampered.pop();
    tampered.push(if valid.ends_with('A') { 'B' } else { 'A' });
    let signature_of_other = {
        let (input, _) = valid.rsplit_once('.').unwrap();
        let (_, sig) = tokens[1].1.rsplit_once('.').unwrap();
        format!("{input}.{sig}")
    };
    for (name, token) in tokens.iter().map(|(n, t)| (*n, t.as_str())).chain([
        ("tampered-signature", tampered.as_str()),
        ("es384-signature-on-es256", signature_of_other.as_str()),
    ]) {
        write("jwt_svid", name, token);
        write("jwt_svid_validate", name, token);
    }
}

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

fn leaf_params(id: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, "svid");
    params.subject_alt_names = vec![SanType::URI(id.try_into().unwrap())];
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
        KeyUsagePurpose::KeyAgreement,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params
}

/// The `x509_svid` input: big-endian u16 chain length, chain, key.
fn svid_input(chain: &[u8], key: &[u8]) -> Vec<u8> {
    let len = u16::try_from(chain.len()).unwrap();
    [&len.to_be_bytes()[..], chain, key].concat()
}

/// X509-SVIDs, X.509 bundles and SPIFFE bundles (JWKS) from an rcgen PKI.
fn write_x509_seeds() {
    let new_key = || RcgenKeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let root = CertifiedIssuer::self_signed(ca_params("example.org"), new_key()).unwrap();
    let intermediate =
        CertifiedIssuer::signed_by(ca_params("intermediate"), new_key(), &root).unwrap();
    let other_root = CertifiedIssuer::self_signed(ca_params("other root"), new_key()).unwrap();
    let root_der = root.der().to_vec();
    let intermediate_der = intermediate.der().to_vec();

    let leaf_key = new_key();
    let leaf = leaf_params("spiffe://example.org/web")
        .signed_by(&leaf_key, &root)
        .unwrap();
    let leaf_key_der = leaf_key.serialize_der();
    let chained_key = new_key();
    let chained = leaf_params("spiffe://example.org/ns/prod/sa/api")
        .signed_by(&chained_key, &intermediate)
        .unwrap();
    let chain = [chained.der().as_ref(), &intermediate_der].concat();
    let mut no_san = leaf_params("spiffe://example.org/x");
    no_san.subject_alt_names.clear();
    let no_san_key = new_key();
    let no_san = no_san.signed_by(&no_san_key, &root).unwrap();
    let mut ca_leaf = leaf_params("spiffe://example.org/ca");
    ca_leaf.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_leaf_key = new_key();
    let ca_leaf = ca_leaf.signed_by(&ca_leaf_key, &root).unwrap();
    let mut dns_san = leaf_params("spiffe://example.org/dns");
    dns_san
        .subject_alt_names
        .push(SanType::DnsName("web.example.org".try_into().unwrap()));
    let dns_san_key = new_key();
    let dns_san = dns_san.signed_by(&dns_san_key, &root).unwrap();

    write(
        "x509_svid",
        "root-signed",
        svid_input(leaf.der(), &leaf_key_der),
    );
    write(
        "x509_svid",
        "with-intermediate",
        svid_input(&chain, &chained_key.serialize_der()),
    );
    write(
        "x509_svid",
        "key-mismatch",
        svid_input(leaf.der(), &chained_key.serialize_der()),
    );
    write(
        "x509_svid",
        "no-uri-san",
        svid_input(no_san.der(), &no_san_key.serialize_der()),
    );
    write(
        "x509_svid",
        "leaf-is-ca",
        svid_input(ca_leaf.der(), &ca_leaf_key.serialize_der()),
    );
    write(
        "x509_svid",
        "two-sans",
        svid_input(dns_san.der(), &dns_san_key.serialize_der()),
    );
    write(
        "x509_svid",
        "leaf-after-ca",
        svid_input(&[&root_der[..], leaf.der()].concat(), &leaf_key_der),
    );
    write("x509_svid", "empty-chain", svid_input(&[], &leaf_key_der));
    write("x509_svid", "bad-key", svid_input(leaf.der(), b"not a key"));

    write("x509_bundle", "one-root", &root_der);
    write(
        "x509_bundle",
        "two-roots",
        [&root_der[..], other_root.der()].concat(),
    );
    write(
        "x509_bundle",
        "root-and-intermediate",
        [&root_der[..], &intermediate_der].concat(),
    );
    write("x509_bundle", "leaf", leaf.der());
    write(
        "x509_bundle",
        "trailing",
        [&root_der[..], b"\x30\x03\x02\x01"].concat(),
    );
    write("x509_bundle", "truncated", &root_der[..root_der.len() / 2]);

    let x509_entry =
        |der: &[u8]| json!({"use": "x509-svid", "kty": "EC", "x5c": [STANDARD.encode(der)]});
    let mut jwt_keys: Value = serde_json::from_str(fuzzing::FUZZ_JWKS).unwrap();
    let keys = jwt_keys["keys"].as_array_mut().unwrap();
    keys.push(x509_entry(&root_der));
    keys.push(x509_entry(other_root.der()));
    let spiffe_bundle = with(
        with(jwt_keys, "spiffe_sequence", json!(42)),
        "spiffe_refresh_hint",
        json!(300),
    );
    write("jwks", "fuzz-jwks", fuzzing::FUZZ_JWKS);
    write("jwks", "spiffe-bundle", spiffe_bundle.to_string());
    write(
        "jwks",
        "x509-only",
        json!({"keys": [x509_entry(&root_der)]}).to_string(),
    );
    write("jwks", "empty-keys", r#"{"keys":[]}"#);
    write(
        "jwks",
        "duplicate-kid",
        json!({"keys": [
            {"kty": "EC", "crv": "P-256", "kid": "a", "x": "HbtC3muV6xlzWsqcT8cOGzgP1tI8IZhUhQX5QI0HUIA", "y": "mCOPaKpu46ziHjRj2acTsQWVzctC50M2mozr8eaV9G4"},
            {"kty": "EC", "crv": "P-256", "kid": "a", "x": "HbtC3muV6xlzWsqcT8cOGzgP1tI8IZhUhQX5QI0HUIA", "y": "mCOPaKpu46ziHjRj2acTsQWVzctC50M2mozr8eaV9G4"}
        ]})
        .to_string(),
    );
    write(
        "jwks",
        "bad-entries",
        json!({"keys": [
            {"kty": "EC", "crv": "P-521", "kid": "p521", "x": "AA", "y": "AA"},
            {"kty": "RSA", "kid": "small", "n": "AQAB", "e": "AQAB"},
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"use": "x509-svid", "x5c": ["not base64!", "two"]}
        ]})
        .to_string(),
    );
    write("jwks", "not-an-object", "[1, 2, 3]");
    write("jwks", "keys-not-array", r#"{"keys": {}}"#);
}

fn write_endpoint_seeds() {
    for (name, address) in [
        ("unix-uri", "unix:///run/rootmark/workload.sock"),
        ("unix-path", "unix:/tmp/agent.sock"),
        ("tcp", "tcp://127.0.0.1:8081"),
        ("authority", "unix://host/run/agent.sock"),
        ("relative", "unix:run/agent.sock"),
        ("root-only", "unix:///"),
        ("query-fragment", "unix:///run/agent.sock?x=1#y"),
        ("no-scheme", "/run/agent.sock"),
        ("unicode", "unix:///run/\u{e9}t\u{e9}/agent.sock"),
    ] {
        write("endpoint_address", name, address);
    }
}

/// Rewrites the `seed-*` files of every SDK target (tokens get fresh
/// ECDSA/PSS signatures, certificates fresh keys).
pub fn write_seed_corpus() {
    write_jwt_seeds();
    write_x509_seeds();
    write_endpoint_seeds();
}
