//! X509-SVIDs, JWT-SVIDs, bundles and CA rotation, checked on what was
//! issued: every certificate is parsed back with x509-parser (and, where
//! the `openssl` CLI is installed, verified by it too), every token is
//! split, decoded and its signature verified with the bundle's key through
//! aws-lc-rs. Nothing here re-reads the inputs to conclude.
#![allow(clippy::unwrap_used)] // tests and benches fail loudly by design

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    self, ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair, UnparsedPublicKey,
};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD as BASE64, URL_SAFE_NO_PAD as BASE64URL};
use rootmark_issuer::ca::{
    CaError, JwtAuthority, JwtConfig, KeyState, ManualClock, TrustBundle, UpstreamCa, WorkloadKey,
    WorkloadKeyKind, X509Authority, X509CaConfig, from_unix_seconds, keys, unix_seconds,
    verify_csr,
};
use rootmark_sdk::id::{SpiffeId, TrustDomain};
use serde_json::Value;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::oid_registry::{OID_X509_EXT_BASIC_CONSTRAINTS, OID_X509_EXT_KEY_USAGE};
use x509_parser::prelude::FromDer;

fn td() -> TrustDomain {
    TrustDomain::parse("example.org").expect("trust domain")
}

fn id(path: &str) -> SpiffeId {
    SpiffeId::parse(&format!("spiffe://example.org{path}")).expect("id")
}

/// A clock at the real current second, so certificates are valid for
/// `openssl verify` too.
fn clock() -> ManualClock {
    ManualClock::new(from_unix_seconds(unix_seconds(SystemTime::now())))
}

fn now(clock: &ManualClock) -> u64 {
    unix_seconds(rootmark_issuer::ca::Clock::now(clock))
}

fn workload_key() -> (EcdsaKeyPair, WorkloadKey) {
    let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).expect("key");
    let spki = pair.public_key().as_der().expect("spki");
    let key = WorkloadKey::from_spki_der(spki.as_ref()).expect("accepted");
    (pair, key)
}

fn parse(der: &[u8]) -> X509Certificate<'_> {
    let (rest, cert) = X509Certificate::from_der(der).expect("certificate parses");
    assert!(rest.is_empty(), "trailing bytes after certificate");
    cert
}

fn uri_sans(cert: &X509Certificate<'_>) -> Vec<String> {
    sans(cert)
        .into_iter()
        .filter_map(|n| match n {
            GeneralName::URI(u) => Some(u.to_owned()),
            _ => None,
        })
        .collect()
}

fn dns_sans(cert: &X509Certificate<'_>) -> Vec<String> {
    sans(cert)
        .into_iter()
        .filter_map(|n| match n {
            GeneralName::DNSName(d) => Some(d.to_owned()),
            _ => None,
        })
        .collect()
}

fn sans<'a>(cert: &'a X509Certificate<'a>) -> Vec<GeneralName<'a>> {
    cert.subject_alternative_name()
        .expect("one SAN extension")
        .map(|san| san.value.general_names.clone())
        .unwrap_or_default()
}

fn ski(cert: &X509Certificate<'_>) -> Vec<u8> {
    cert.extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(k) => Some(k.0.to_vec()),
            _ => None,
        })
        .expect("subjectKeyIdentifier")
}

fn aki(cert: &X509Certificate<'_>) -> Vec<u8> {
    cert.extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(a) => {
                a.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => None,
        })
        .expect("authorityKeyIdentifier keyIdentifier")
}

fn critical(cert: &X509Certificate<'_>, oid: &x509_parser::der_parser::Oid<'_>) -> bool {
    cert.get_extension_unique(oid)
        .expect("unique")
        .expect("present")
        .critical
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = BASE64.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("base64 is ascii"))
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

fn self_signed_ca(clock: &ManualClock) -> X509Authority {
    X509Authority::new(
        X509CaConfig::new(td())
            .with_common_name("Test CA")
            .with_organization("Test Org"),
        Arc::new(clock.clone()),
    )
    .expect("CA")
}

/// `openssl verify` over the given chain, when openssl is installed.
/// Returns None when it is not, Some(output) otherwise.
fn openssl_verify(roots: &[Vec<u8>], chain: &[Vec<u8>], extra: &[&str]) -> Option<(bool, String)> {
    if Command::new("openssl").arg("version").output().is_err() {
        eprintln!("openssl not installed: skipping the independent check");
        return None;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, certs: &[Vec<u8>]| {
        let path = dir.path().join(name);
        let text: String = certs.iter().map(|c| pem("CERTIFICATE", c)).collect();
        fs::write(&path, text).expect("write pem");
        path
    };
    let root = write("root.pem", roots);
    let leaf = write("leaf.pem", &chain[..1]);
    let mut command = Command::new("openssl");
    command
        .arg("verify")
        .arg("-x509_strict")
        .args(extra)
        .arg("-CAfile")
        .arg(&root);
    if chain.len() > 1 {
        command
            .arg("-untrusted")
            .arg(write("inter.pem", &chain[1..]));
    }
    let output = command.arg(&leaf).output().expect("run openssl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Some((output.status.success(), text))
}

#[test]
fn x509_svid_profile() {
    let clock = clock();
    let ca = self_signed_ca(&clock);
    let (_, key) = workload_key();
    let spiffe_id = id("/payments/web");
    let dns = vec!["web.example.org".to_owned(), "*.web.example.org".to_owned()];
    let t = now(&clock);
    let svid = ca
        .mint_x509_svid(&spiffe_id, &key, Duration::from_secs(3600), &dns)
        .expect("mint");
    assert_eq!(svid.chain_der.len(), 1, "self-signed mode: leaf only");
    let leaf = parse(&svid.chain_der[0]);

    // Exactly one URI SAN, the ID; the DNS names as given.
    assert_eq!(uri_sans(&leaf), [spiffe_id.to_string()]);
    assert_eq!(dns_sans(&leaf), dns);

    // basicConstraints critical, cA=false.
    let bc = leaf.basic_constraints().expect("bc").expect("present");
    assert!(!bc.value.ca);
    assert!(critical(&leaf, &OID_X509_EXT_BASIC_CONSTRAINTS));

    // keyUsage critical: digitalSignature (+ keyAgreement for an EC key),
    // never a CA bit.
    let ku = leaf.key_usage().expect("ku").expect("present");
    assert!(ku.critical && critical(&leaf, &OID_X509_EXT_KEY_USAGE));
    assert!(ku.value.digital_signature());
    assert!(ku.value.key_agreement());
    assert!(!ku.value.key_encipherment(), "RFC 5480: not for EC keys");
    assert!(!ku.value.key_cert_sign() && !ku.value.crl_sign());

    // extKeyUsage serverAuth + clientAuth.
    let eku = leaf.extended_key_usage().expect("eku").expect("present");
    assert!(eku.value.server_auth && eku.value.client_auth);

    // Serial: positive, 128 random bits.
    let serial = leaf.raw_serial();
    assert!(serial[0] & 0x80 == 0, "serial is positive");
    assert!(serial.len() >= 8 && serial.len() <= 17, "{}", serial.len());

    // Validity: notBefore a few seconds early, notAfter now + ttl.
    let not_before = leaf.validity().not_before.timestamp() as u64;
    let not_after = leaf.validity().not_after.timestamp() as u64;
    assert!(not_before <= t - 5, "{not_before} vs {t}");
    assert!(not_before >= t - 60);
    assert_eq!(not_after, t + 3600);
    assert_eq!(unix_seconds(svid.not_after), not_after);

    // The key is the workload's.
    assert_eq!(leaf.public_key().raw, key.spki_der());

    // It chains to the bundle's root: AKI = root SKI, signature verifies.
    let bundle = ca.bundle();
    assert_eq!(bundle.len(), 1);
    let root = parse(&bundle[0]);
    assert_eq!(aki(&leaf), ski(&root));
    assert_eq!(leaf.issuer().as_raw(), root.subject().as_raw());
    leaf.verify_signature(Some(root.public_key()))
        .expect("leaf signed by the root");

    // A second SVID has another serial.
    let again = ca
        .mint_x509_svid(&spiffe_id, &key, Duration::from_secs(3600), &[])
        .expect("mint");
    let again = parse(&again.chain_der[0]);
    assert_ne!(again.raw_serial(), serial);
    assert!(dns_sans(&again).is_empty());
    assert_eq!(uri_sans(&again), [spiffe_id.to_string()]);

    if let Some((ok, out)) = openssl_verify(&bundle, &svid.chain_der, &["-purpose", "sslserver"]) {
        assert!(ok, "openssl verify (server): {out}");
    }
    if let Some((ok, out)) = openssl_verify(&bundle, &svid.chain_der, &["-purpose", "sslclient"]) {
        assert!(ok, "openssl verify (client): {out}");
    }
}

#[test]
fn root_ca_profile() {
    let clock = clock();
    let ca = self_signed_ca(&clock);
    let bundle = ca.bundle();
    let root = parse(&bundle[0]);
    // Self-signed, subject as configured.
    assert_eq!(root.subject().as_raw(), root.issuer().as_raw());
    root.verify_signature(None).expect("self-signature");
    let cn: Vec<_> = root
        .subject()
        .iter_common_name()
        .map(|a| a.as_str().expect("utf8"))
        .collect();
    let o: Vec<_> = root
        .subject()
        .iter_organization()
        .map(|a| a.as_str().expect("utf8"))
        .collect();
    assert_eq!(
        (cn.as_slice(), o.as_slice()),
        (&["Test CA"][..], &["Test Org"][..])
    );
    // URI SAN = the trust domain ID.
    assert_eq!(uri_sans(&root), ["spiffe://example.org"]);
    // basicConstraints cA critical; keyUsage keyCertSign + cRLSign critical
    // and nothing a leaf would have.
    let bc = root.basic_constraints().expect("bc").expect("present");
    assert!(bc.value.ca && bc.critical);
    let ku = root.key_usage().expect("ku").expect("present");
    assert!(ku.critical && ku.value.key_cert_sign() && ku.value.crl_sign());
    assert!(!ku.value.digital_signature());
    // SKI/AKI.
    assert_eq!(ski(&root), aki(&root));
    // Its window: ca_ttl (default 24 h), backdated.
    let info = &ca.authorities()[0];
    assert_eq!(info.state, KeyState::Active);
    assert_eq!(
        unix_seconds(info.not_after) - unix_seconds(info.not_before),
        24 * 3600 + 10
    );
    assert_eq!(info.certificate_der, bundle[0]);
}

#[test]
fn not_after_capped_at_ca_expiry() {
    let clock = clock();
    let ca = X509Authority::new(
        X509CaConfig::new(td()).with_ca_ttl(Duration::from_secs(3600)),
        Arc::new(clock.clone()),
    )
    .expect("CA");
    let (_, key) = workload_key();
    let svid = ca
        .mint_x509_svid(&id("/w"), &key, Duration::from_secs(10 * 3600), &[])
        .expect("mint");
    let leaf = parse(&svid.chain_der[0]);
    let bundle = ca.bundle();
    let root = parse(&bundle[0]);
    assert_eq!(
        leaf.validity().not_after.timestamp(),
        root.validity().not_after.timestamp()
    );
    assert_eq!(
        leaf.validity().not_after.timestamp() as u64,
        now(&clock) + 3600
    );
}

#[test]
fn mint_refusals_name_the_field() {
    let clock = clock();
    let ca = self_signed_ca(&clock);
    let (_, key) = workload_key();
    let ttl = Duration::from_secs(60);
    let field_of = |e: CaError| match e {
        CaError::InvalidInput { field, .. } => field,
        other => panic!("expected InvalidInput, got {other}"),
    };
    let other_td = SpiffeId::parse("spiffe://other.org/w").expect("id");
    assert_eq!(
        field_of(
            ca.mint_x509_svid(&other_td, &key, ttl, &[])
                .expect_err("foreign")
        ),
        "spiffe_id"
    );
    assert_eq!(
        field_of(
            ca.mint_x509_svid(&td().id(), &key, ttl, &[])
                .expect_err("td id")
        ),
        "spiffe_id"
    );
    assert_eq!(
        field_of(
            ca.mint_x509_svid(&id("/w"), &key, Duration::ZERO, &[])
                .expect_err("ttl")
        ),
        "ttl"
    );
    let bad_dns = vec!["ok.example".to_owned(), "bad_name".to_owned()];
    let err = ca
        .mint_x509_svid(&id("/w"), &key, ttl, &bad_dns)
        .expect_err("dns");
    let message = err.to_string();
    assert_eq!(field_of(err), "dns_names[1]");
    assert!(
        message.contains("bad_name") && message.contains("expected"),
        "{message}"
    );
}

#[test]
fn workload_keys_other_than_ec_p256_p384_rsa_are_refused() {
    // Ed25519.
    let mut ed = vec![
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    ed.extend_from_slice(&[9u8; 32]);
    let err = WorkloadKey::from_spki_der(&ed).expect_err("ed25519");
    assert!(matches!(err, CaError::UnsupportedKey { .. }), "{err}");
    assert!(err.to_string().contains("expected EC P-256"), "{err}");

    // RSA-1024: built by hand (aws-lc does not generate it).
    let mut modulus = vec![0xc5u8; 128];
    modulus[127] |= 1;
    let int = |bytes: &[u8]| {
        let mut v = vec![0x02];
        let body: Vec<u8> = if bytes[0] & 0x80 != 0 {
            [&[0u8][..], bytes].concat()
        } else {
            bytes.to_vec()
        };
        push_len(&mut v, body.len());
        v.extend(body);
        v
    };
    let pkcs1 = seq(&[int(&modulus), int(&[1, 0, 1])]);
    let mut bits = vec![0x03];
    push_len(&mut bits, pkcs1.len() + 1);
    bits.push(0);
    bits.extend(&pkcs1);
    let alg = vec![
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let spki = seq(&[alg, bits]);
    let err = WorkloadKey::from_spki_der(&spki).expect_err("rsa-1024");
    assert!(err.to_string().contains("RSA-1024"), "{err}");

    // P-384 and RSA-2048 are accepted, and the RSA leaf gets
    // keyEncipherment instead of keyAgreement.
    let p384 = EcdsaKeyPair::generate(&signature::ECDSA_P384_SHA384_ASN1_SIGNING).expect("p384");
    let key = WorkloadKey::from_spki_der(p384.public_key().as_der().expect("der").as_ref())
        .expect("P-384");
    assert_eq!(key.kind(), WorkloadKeyKind::EcP384);
    let rsa = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).expect("rsa");
    let key = WorkloadKey::from_spki_der(rsa.public_key().as_der().expect("der").as_ref())
        .expect("RSA-2048");
    let clock = clock();
    let ca = self_signed_ca(&clock);
    let svid = ca
        .mint_x509_svid(&id("/rsa"), &key, Duration::from_secs(60), &[])
        .expect("mint");
    let leaf = parse(&svid.chain_der[0]);
    let ku = leaf.key_usage().expect("ku").expect("present");
    assert!(ku.value.digital_signature() && ku.value.key_encipherment());
    assert!(!ku.value.key_agreement());
    leaf.verify_signature(Some(parse(&ca.bundle()[0]).public_key()))
        .expect("signed");
}

fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else if len < 0x100 {
        out.extend([0x81, len as u8]);
    } else {
        out.extend([0x82, (len >> 8) as u8, len as u8]);
    }
}

fn seq(parts: &[Vec<u8>]) -> Vec<u8> {
    let body = parts.concat();
    let mut out = vec![0x30];
    push_len(&mut out, body.len());
    out.extend(body);
    out
}

#[test]
fn csr_proof_of_possession() {
    let key_pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let csr = rcgen::CertificateParams::new(vec!["ignored.example".to_owned()])
        .expect("params")
        .serialize_request(&key_pair)
        .expect("csr");
    let der = csr.der().to_vec();
    let key = verify_csr(&der).expect("valid CSR");
    assert_eq!(key.kind(), WorkloadKeyKind::EcP256);
    assert_eq!(
        key.spki_der(),
        rcgen::PublicKeyData::subject_public_key_info(&key_pair)
    );

    // Whatever the CSR asks for, the SVID holds what the CA decides.
    let clock = clock();
    let ca = self_signed_ca(&clock);
    let svid = ca
        .mint_x509_svid(&id("/csr"), &key, Duration::from_secs(60), &[])
        .expect("mint");
    let leaf = parse(&svid.chain_der[0]);
    assert!(dns_sans(&leaf).is_empty());
    assert_eq!(leaf.public_key().raw, key.spki_der());

    // A flipped bit in the signature: refused, naming the signature.
    let mut tampered = der.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let err = verify_csr(&tampered).expect_err("bad signature");
    assert!(
        matches!(
            err,
            CaError::Csr {
                field: "signature",
                ..
            }
        ),
        "{err}"
    );

    // A CSR whose key was swapped for another: the signature no longer
    // matches the key.
    let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let other_spki = rcgen::PublicKeyData::subject_public_key_info(&other);
    let own_spki = rcgen::PublicKeyData::subject_public_key_info(&key_pair);
    let at = der
        .windows(own_spki.len())
        .position(|w| w == own_spki)
        .expect("spki inside the CSR");
    let mut swapped = der.clone();
    swapped[at..at + own_spki.len()].copy_from_slice(&other_spki);
    assert!(matches!(
        verify_csr(&swapped),
        Err(CaError::Csr {
            field: "signature",
            ..
        })
    ));

    // Garbage and trailing bytes.
    assert!(matches!(
        verify_csr(b"nope"),
        Err(CaError::Csr {
            field: "encoding",
            ..
        })
    ));
    let mut trailing = der;
    trailing.push(0);
    assert!(matches!(
        verify_csr(&trailing),
        Err(CaError::Csr {
            field: "encoding",
            ..
        })
    ));
}

/// Writes a PKCS#8 key with mode 0600 and a certificate file.
fn write_upstream(
    dir: &Path,
    certs: &[&[u8]],
    key_pkcs8: &[u8],
) -> (std::path::PathBuf, std::path::PathBuf) {
    let cert_path = dir.join("upstream.pem");
    let text: String = certs.iter().map(|c| pem("CERTIFICATE", c)).collect();
    fs::write(&cert_path, text).expect("write cert");
    let key_path = dir.join("upstream.key");
    keys::write_key_file(&key_path, pem("PRIVATE KEY", key_pkcs8).as_bytes()).expect("write key");
    (cert_path, key_path)
}

fn rcgen_ca(name: &str) -> rcgen::CertificateParams {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    params
}

#[test]
fn intermediate_under_upstream_root() {
    // A P-384 upstream root, made by another library.
    let root_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).expect("key");
    let root_cert = rcgen_ca("Upstream Root")
        .self_signed(&root_key)
        .expect("root");
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert_path, key_path) =
        write_upstream(dir.path(), &[root_cert.der()], &root_key.serialize_der());

    let upstream = UpstreamCa::load(&cert_path, &key_path, None).expect("upstream");
    let clock = clock();
    let ca = X509Authority::new(
        X509CaConfig::new(td()).with_upstream(upstream),
        Arc::new(clock.clone()),
    )
    .expect("CA");
    let (_, key) = workload_key();
    let svid = ca
        .mint_x509_svid(&id("/w"), &key, Duration::from_secs(600), &[])
        .expect("mint");

    // The bundle is the upstream root; the chain is leaf + our intermediate.
    let bundle = ca.bundle();
    assert_eq!(bundle, [root_cert.der().to_vec()]);
    assert_eq!(svid.chain_der.len(), 2);
    let leaf = parse(&svid.chain_der[0]);
    let inter = parse(&svid.chain_der[1]);
    let root = parse(&bundle[0]);
    leaf.verify_signature(Some(inter.public_key()))
        .expect("leaf ← intermediate");
    inter
        .verify_signature(Some(root.public_key()))
        .expect("intermediate ← root");
    assert_eq!(aki(&leaf), ski(&inter));
    assert_eq!(aki(&inter), ski(&root));
    assert_eq!(inter.issuer().as_raw(), root.subject().as_raw());
    assert!(inter.basic_constraints().expect("bc").expect("bc").value.ca);
    assert_eq!(uri_sans(&inter), ["spiffe://example.org"]);
    assert_eq!(uri_sans(&leaf), ["spiffe://example.org/w"]);

    if let Some((ok, out)) = openssl_verify(&bundle, &svid.chain_der, &[]) {
        assert!(ok, "openssl verify: {out}");
    }
}

#[test]
fn intermediate_under_upstream_intermediate() {
    // root (P-256) → upstream intermediate (RSA-2048) → our CA → leaf.
    let root_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let root_params = rcgen_ca("Corp Root");
    let root_cert = root_params.self_signed(&root_key).expect("root");
    let up_key =
        rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
            .expect("rsa key");
    let mut up_params = rcgen_ca("Corp Issuing CA");
    up_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(1));
    // openssl -x509_strict wants an AKI on every non-root certificate.
    up_params.use_authority_key_identifier_extension = true;
    let issuer = rcgen::Issuer::from_params(&root_params, &root_key);
    let up_cert = up_params
        .signed_by(&up_key, &issuer)
        .expect("upstream intermediate");

    let dir = tempfile::tempdir().expect("tempdir");
    let (cert_path, key_path) = write_upstream(
        dir.path(),
        &[up_cert.der(), root_cert.der()],
        &up_key.serialize_der(),
    );
    let upstream = UpstreamCa::load(&cert_path, &key_path, None).expect("upstream");
    let clock = clock();
    let ca = X509Authority::new(
        X509CaConfig::new(td()).with_upstream(upstream),
        Arc::new(clock.clone()),
    )
    .expect("CA");
    let (_, key) = workload_key();
    let svid = ca
        .mint_x509_svid(&id("/w"), &key, Duration::from_secs(600), &[])
        .expect("mint");
    assert_eq!(ca.bundle(), [root_cert.der().to_vec()]);
    assert_eq!(svid.chain_der.len(), 3, "leaf, ours, upstream intermediate");
    assert_eq!(svid.chain_der[2], up_cert.der().to_vec());
    let inter = parse(&svid.chain_der[1]);
    inter
        .verify_signature(Some(parse(up_cert.der()).public_key()))
        .expect("ours ← upstream (RSA)");
    parse(&svid.chain_der[0])
        .verify_signature(Some(inter.public_key()))
        .expect("leaf ← ours");
    if let Some((ok, out)) = openssl_verify(&ca.bundle(), &svid.chain_der, &[]) {
        assert!(ok, "openssl verify: {out}");
    }

    // The same key file readable by others is refused.
    fs::set_permissions(&key_path, fs::Permissions::from_mode(0o644)).expect("chmod");
    let err = UpstreamCa::load(&cert_path, &key_path, None).expect_err("0644 key");
    assert!(
        matches!(err, CaError::KeyFilePermissions { mode: 0o644, .. }),
        "{err}"
    );
}

#[test]
fn upstream_misconfigurations() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let root = rcgen_ca("Root").self_signed(&root_key).expect("root");
    let other_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");

    // Key of another certificate.
    let (cert, key) = write_upstream(dir.path(), &[root.der()], &other_key.serialize_der());
    let err = UpstreamCa::load(&cert, &key, None).expect_err("wrong key");
    assert!(
        matches!(
            err,
            CaError::Upstream {
                field: "key_file",
                ..
            }
        ),
        "{err}"
    );

    // Not a CA.
    let mut leaf_params = rcgen::CertificateParams::new(vec!["x.example".to_owned()]).expect("p");
    leaf_params.is_ca = rcgen::IsCa::ExplicitNoCa;
    let leaf = leaf_params.self_signed(&root_key).expect("leaf");
    let (cert, key) = write_upstream(dir.path(), &[leaf.der()], &root_key.serialize_der());
    let err = UpstreamCa::load(&cert, &key, None).expect_err("not a CA");
    assert!(err.to_string().contains("cA=TRUE"), "{err}");
}

#[test]
fn x509_rotation_prepare_half_activate_five_sixths_keep_until_expiry() {
    let clock = clock();
    let ca = X509Authority::new(
        X509CaConfig::new(td()).with_ca_ttl(Duration::from_secs(6000)),
        Arc::new(clock.clone()),
    )
    .expect("CA");
    let (_, key) = workload_key();
    let first = ca.authorities()[0].clone();
    let (nb, na) = (
        unix_seconds(first.not_before),
        unix_seconds(first.not_after),
    );
    let lifetime = na - nb;
    let prepare_at = nb + lifetime / 2;
    let activate_at = nb + lifetime * 5 / 6;
    assert_eq!(unix_seconds(ca.next_rotation()), prepare_at);

    // Just before 1/2: nothing.
    clock.set(from_unix_seconds(prepare_at - 1));
    assert!(ca.rotate().expect("rotate").is_empty());
    assert_eq!(ca.bundle().len(), 1);

    // At 1/2: prepared and published, not signing.
    clock.set(from_unix_seconds(prepare_at));
    let report = ca.rotate().expect("rotate");
    let second_id = report.prepared.clone().expect("prepared");
    assert!(report.bundle_changed() && report.activated.is_none());
    let bundle = ca.bundle();
    assert_eq!(bundle.len(), 2);
    let states: Vec<_> = ca.authorities().iter().map(|a| a.state).collect();
    assert_eq!(states, [KeyState::Active, KeyState::Prepared]);
    let before = ca
        .mint_x509_svid(&id("/w"), &key, Duration::from_secs(3600), &[])
        .expect("mint");
    assert_eq!(before.authority_id, first.id);

    // Just before 5/6: still the first key.
    clock.set(from_unix_seconds(activate_at - 1));
    assert!(ca.rotate().expect("rotate").activated.is_none());

    // At 5/6: the second key signs; both roots published.
    clock.set(from_unix_seconds(activate_at));
    let report = ca.rotate().expect("rotate");
    assert_eq!(report.activated.as_deref(), Some(second_id.as_str()));
    assert!(!report.bundle_changed(), "activation publishes nothing new");
    let after = ca
        .mint_x509_svid(&id("/w"), &key, Duration::from_secs(3600), &[])
        .expect("mint");
    assert_eq!(after.authority_id, second_id);
    let bundle = ca.bundle();
    assert_eq!(bundle.len(), 2);
    // Both SVIDs verify against the bundle: each against its own root.
    for svid in [&before, &after] {
        let leaf = parse(svid.leaf_der());
        let ok = bundle.iter().any(|root| {
            leaf.verify_signature(Some(parse(root).public_key()))
                .is_ok()
        });
        assert!(
            ok,
            "SVID of {} verifies against the bundle",
            svid.authority_id
        );
    }
    // The SVID minted by the old key is capped at the old key's expiry.
    assert!(unix_seconds(before.not_after) <= na);

    // The old root stays until it expires (by then the second key has
    // passed its own half-life, so a third is prepared next to it)...
    clock.set(from_unix_seconds(na - 1));
    assert!(ca.rotate().expect("rotate").pruned.is_empty());
    let bundle = ca.bundle();
    assert!(bundle.contains(&first.certificate_der));
    assert_eq!(bundle.len(), 3);
    // ...and is gone at its expiry.
    clock.set(from_unix_seconds(na));
    let report = ca.rotate().expect("rotate");
    assert_eq!(report.pruned, std::slice::from_ref(&first.id));
    let bundle = ca.bundle();
    assert_eq!(bundle.len(), 2);
    assert!(!bundle.contains(&first.certificate_der));
    let states: Vec<_> = ca
        .authorities()
        .iter()
        .map(|a| (a.id.clone(), a.state))
        .collect();
    assert_eq!(states[0], (second_id, KeyState::Active));
    assert_eq!(states[1].1, KeyState::Prepared);
}

#[test]
fn keys_on_disk_are_0600_and_reloaded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca_dir = dir.path().join("ca");
    let clock = clock();
    let config = X509CaConfig::new(td()).with_ca_ttl(Duration::from_secs(6000));
    let ca = X509Authority::open(config.clone(), &ca_dir, Arc::new(clock.clone())).expect("open");
    let active = ca.authorities()[0].id.clone();
    assert!(ca.initial_report().activated.is_some());

    let key_files: Vec<_> = fs::read_dir(&ca_dir)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "key"))
        .collect();
    assert_eq!(key_files.len(), 1);
    for path in &key_files {
        let mode = fs::metadata(path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", path.display());
    }
    let dir_mode = fs::metadata(&ca_dir).expect("stat").permissions().mode() & 0o777;
    assert_eq!(dir_mode, 0o700);
    drop(ca);

    // Reopened: same key, nothing minted.
    let ca = X509Authority::open(config.clone(), &ca_dir, Arc::new(clock.clone())).expect("reopen");
    assert_eq!(ca.authorities()[0].id, active);
    assert!(ca.initial_report().is_empty(), "{:?}", ca.initial_report());

    // Rotation is saved: prepare, reopen, the prepared key is still there.
    clock.advance(Duration::from_secs(3100));
    let prepared = ca.rotate().expect("rotate").prepared.expect("prepared");
    drop(ca);
    let ca = X509Authority::open(config.clone(), &ca_dir, Arc::new(clock.clone())).expect("reopen");
    let ids: Vec<_> = ca
        .authorities()
        .iter()
        .map(|a| (a.id.clone(), a.state))
        .collect();
    assert_eq!(
        ids,
        [
            (active.clone(), KeyState::Active),
            (prepared.clone(), KeyState::Prepared)
        ]
    );
    drop(ca);

    // A key file others can read is refused, naming the file.
    let key_file = ca_dir.join(format!("x509-ca-{active}.key"));
    fs::set_permissions(&key_file, fs::Permissions::from_mode(0o644)).expect("chmod");
    let err =
        X509Authority::open(config.clone(), &ca_dir, Arc::new(clock.clone())).expect_err("0644");
    assert!(
        matches!(&err, CaError::KeyFilePermissions { path, mode: 0o644 } if *path == key_file),
        "{err}"
    );
    fs::set_permissions(&key_file, fs::Permissions::from_mode(0o600)).expect("chmod");

    // Another trust domain is refused rather than mixed.
    let other = X509CaConfig::new(TrustDomain::parse("other.org").expect("td"));
    let err = X509Authority::open(other, &ca_dir, Arc::new(clock.clone())).expect_err("td");
    assert!(err.to_string().contains("example.org"), "{err}");

    // Switching to an upstream CA drops the self-signed keys.
    let root_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let root = rcgen_ca("Root").self_signed(&root_key).expect("root");
    let (cert, key) = write_upstream(dir.path(), &[root.der()], &root_key.serialize_der());
    let upstream = UpstreamCa::load(&cert, &key, None).expect("upstream");
    let ca = X509Authority::open(
        config.with_upstream(upstream),
        &ca_dir,
        Arc::new(clock.clone()),
    )
    .expect("reopen with upstream");
    let mut discarded = ca.initial_report().discarded.clone();
    discarded.sort();
    let mut expected = vec![active, prepared];
    expected.sort();
    assert_eq!(discarded, expected);
    assert_eq!(ca.authorities().len(), 1);
    assert!(!key_file.exists());
}

#[test]
fn jwt_svid_header_claims_signature() {
    let clock = clock();
    let jwt = JwtAuthority::new(JwtConfig::new(td()), Arc::new(clock.clone())).expect("jwt");
    let x509 = self_signed_ca(&clock);
    let bundle = TrustBundle::from_authorities(&x509, &jwt, 7, Duration::from_secs(300));
    let jwks: Value = serde_json::from_str(&bundle.to_jwks_json().expect("jwks")).expect("json");
    let t = now(&clock);

    let svid = jwt
        .mint_jwt_svid(
            &id("/api"),
            &["https://api.example".to_owned()],
            Duration::from_secs(300),
        )
        .expect("mint");
    let token = svid.token.clone();
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);
    let header: Value =
        serde_json::from_slice(&BASE64URL.decode(parts[0]).expect("b64")).expect("header");
    let claims: Value =
        serde_json::from_slice(&BASE64URL.decode(parts[1]).expect("b64")).expect("claims");
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["typ"], "JWT");
    let kid = header["kid"].as_str().expect("kid");
    assert!(BASE64URL.decode(kid).expect("kid is base64url").len() >= 16);
    assert_eq!(header.as_object().expect("object").len(), 3);
    assert_eq!(claims["sub"], "spiffe://example.org/api");
    assert_eq!(
        claims["aud"], "https://api.example",
        "one audience: a string"
    );
    assert_eq!(claims["iat"].as_u64(), Some(t));
    assert_eq!(claims["exp"].as_u64(), Some(t + 300));
    assert_eq!(claims.as_object().expect("object").len(), 4);

    // The signature verifies with the JWKS entry of that kid.
    let key = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["kid"] == kid)
        .expect("kid in bundle");
    assert_eq!(key["use"], "jwt-svid");
    assert_eq!(
        (key["kty"].as_str(), key["crv"].as_str()),
        (Some("EC"), Some("P-256"))
    );
    let coordinate = |name: &str| {
        BASE64URL
            .decode(key[name].as_str().expect("coord"))
            .expect("b64")
    };
    let point = [vec![4u8], coordinate("x"), coordinate("y")].concat();
    let signing_input = format!("{}.{}", parts[0], parts[1]);
    let signature = BASE64URL.decode(parts[2]).expect("b64");
    assert_eq!(signature.len(), 64, "ES256 is fixed r‖s");
    UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &point)
        .verify(signing_input.as_bytes(), &signature)
        .expect("signature verifies with the bundle key");
    let mut forged = signing_input.clone().into_bytes();
    forged[10] ^= 1;
    assert!(
        UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, &point)
            .verify(&forged, &signature)
            .is_err()
    );

    // Several audiences: an array, escaped properly.
    let audiences = vec!["a".to_owned(), "b \"quoted\" \\ ü".to_owned()];
    let svid = jwt
        .mint_jwt_svid(&id("/api"), &audiences, Duration::from_secs(60))
        .expect("mint");
    let claims: Value = serde_json::from_slice(
        &BASE64URL
            .decode(svid.token.split('.').nth(1).expect("claims"))
            .expect("b64"),
    )
    .expect("claims");
    assert_eq!(claims["aud"], serde_json::json!(audiences));
}

#[test]
fn jwt_audience_required() {
    let clock = clock();
    let jwt = JwtAuthority::new(JwtConfig::new(td()), Arc::new(clock.clone())).expect("jwt");
    let ttl = Duration::from_secs(60);
    let err = jwt
        .mint_jwt_svid(&id("/w"), &[], ttl)
        .expect_err("empty audience");
    let message = err.to_string();
    assert!(
        matches!(&err, CaError::InvalidInput { field, .. } if field == "audience"),
        "{err}"
    );
    assert!(message.starts_with("audience: expected"), "{message}");
    let err = jwt
        .mint_jwt_svid(&id("/w"), &["ok".to_owned(), String::new()], ttl)
        .expect_err("empty entry");
    assert!(
        matches!(&err, CaError::InvalidInput { field, .. } if field == "audience[1]"),
        "{err}"
    );
    let err = jwt
        .mint_jwt_svid(&td().id(), &["a".to_owned()], ttl)
        .expect_err("trust domain id");
    assert!(
        matches!(&err, CaError::InvalidInput { field, .. } if field == "spiffe_id"),
        "{err}"
    );
}

#[test]
fn jwt_rotation_and_exp_cap() {
    let clock = clock();
    let jwt = JwtAuthority::new(
        JwtConfig::new(td()).with_key_ttl(Duration::from_secs(600)),
        Arc::new(clock.clone()),
    )
    .expect("jwt");
    let t0 = now(&clock);
    let first = jwt.bundle()[0].kid.clone();
    let aud = ["x".to_owned()];

    // exp capped at the key's expiry.
    let svid = jwt
        .mint_jwt_svid(&id("/w"), &aud, Duration::from_secs(3600))
        .expect("mint");
    assert_eq!(unix_seconds(svid.expires_at), t0 + 600);

    clock.set(from_unix_seconds(t0 + 299));
    assert!(jwt.rotate().expect("rotate").is_empty());
    clock.set(from_unix_seconds(t0 + 300));
    let second = jwt
        .rotate()
        .expect("rotate")
        .prepared
        .expect("prepared at 1/2");
    let kids: Vec<_> = jwt.bundle().into_iter().map(|k| k.kid).collect();
    assert_eq!(kids, [first.clone(), second.clone()]);
    assert_eq!(
        jwt.mint_jwt_svid(&id("/w"), &aud, Duration::from_secs(60))
            .expect("mint")
            .kid,
        first
    );

    clock.set(from_unix_seconds(t0 + 500));
    assert_eq!(
        jwt.rotate().expect("rotate").activated.as_deref(),
        Some(second.as_str())
    );
    assert_eq!(
        jwt.mint_jwt_svid(&id("/w"), &aud, Duration::from_secs(60))
            .expect("mint")
            .kid,
        second
    );
    assert_eq!(jwt.bundle().len(), 2, "old key kept until it expires");

    clock.set(from_unix_seconds(t0 + 600));
    let report = jwt.rotate().expect("rotate");
    assert_eq!(report.pruned, std::slice::from_ref(&first));
    let kids: Vec<_> = jwt.bundle().into_iter().map(|k| k.kid).collect();
    assert!(!kids.contains(&first));
}

#[test]
fn jwt_keys_on_disk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = clock();
    let jwt = JwtAuthority::open(JwtConfig::new(td()), dir.path(), Arc::new(clock.clone()))
        .expect("open");
    let kid = jwt.bundle()[0].kid.clone();
    let path = dir.path().join(format!("jwt-{kid}.key"));
    assert_eq!(
        fs::metadata(&path).expect("stat").permissions().mode() & 0o777,
        0o600
    );
    drop(jwt);
    let jwt = JwtAuthority::open(JwtConfig::new(td()), dir.path(), Arc::new(clock.clone()))
        .expect("reopen");
    assert_eq!(jwt.bundle()[0].kid, kid);
    assert!(jwt.initial_report().is_empty());
    drop(jwt);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).expect("chmod");
    let err = JwtAuthority::open(JwtConfig::new(td()), dir.path(), Arc::new(clock.clone()))
        .expect_err("0640");
    assert!(
        matches!(err, CaError::KeyFilePermissions { mode: 0o640, .. }),
        "{err}"
    );
}

#[test]
fn spiffe_bundle_jwks_and_workload_api_roots() {
    let clock = clock();
    let x509 = self_signed_ca(&clock);
    let jwt = JwtAuthority::new(JwtConfig::new(td()), Arc::new(clock.clone())).expect("jwt");
    let bundle = TrustBundle::from_authorities(&x509, &jwt, 42, Duration::from_secs(120));
    let roots = x509.bundle();
    assert_eq!(bundle.x509_roots_der(), roots.concat());

    let jwks: Value = serde_json::from_str(&bundle.to_jwks_json().expect("jwks")).expect("json");
    assert_eq!(jwks["spiffe_sequence"], 42);
    assert_eq!(jwks["spiffe_refresh_hint"], 120);
    let keys = jwks["keys"].as_array().expect("keys");
    let x509_entries: Vec<_> = keys.iter().filter(|k| k["use"] == "x509-svid").collect();
    let jwt_entries: Vec<_> = keys.iter().filter(|k| k["use"] == "jwt-svid").collect();
    assert_eq!((x509_entries.len(), jwt_entries.len()), (1, 1));

    let entry = x509_entries[0];
    assert!(entry.get("kid").is_none(), "x509-svid entries carry no kid");
    let x5c = entry["x5c"].as_array().expect("x5c");
    assert_eq!(x5c.len(), 1);
    let der = BASE64
        .decode(x5c[0].as_str().expect("b64"))
        .expect("standard base64");
    assert_eq!(der, roots[0]);
    // x/y are the certificate's key.
    let root = parse(&der);
    let point = root.public_key().subject_public_key.data.to_vec();
    assert_eq!(
        (entry["kty"].as_str(), entry["crv"].as_str()),
        (Some("EC"), Some("P-256"))
    );
    assert_eq!(
        BASE64URL
            .decode(entry["x"].as_str().expect("x"))
            .expect("b64"),
        point[1..33]
    );
    assert_eq!(
        BASE64URL
            .decode(entry["y"].as_str().expect("y"))
            .expect("b64"),
        point[33..]
    );

    let entry = jwt_entries[0];
    assert_eq!(entry["kid"], jwt.bundle()[0].kid.as_str());
    assert!(entry.get("x5c").is_none());

    // The Workload API's JWT bundle: JWT keys only.
    let jwt_only: Value =
        serde_json::from_str(&bundle.to_jwt_jwks_json().expect("jwks")).expect("json");
    let keys = jwt_only["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["use"], "jwt-svid");
}

#[test]
fn upstream_bundle_jwks_has_the_upstream_root() {
    let root_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).expect("key");
    let root = rcgen_ca("Root").self_signed(&root_key).expect("root");
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = write_upstream(dir.path(), &[root.der()], &root_key.serialize_der());
    let clock = clock();
    let x509 = X509Authority::new(
        X509CaConfig::new(td()).with_upstream(UpstreamCa::load(&cert, &key, None).expect("up")),
        Arc::new(clock.clone()),
    )
    .expect("CA");
    let jwt = JwtAuthority::new(JwtConfig::new(td()), Arc::new(clock.clone())).expect("jwt");
    let jwks = TrustBundle::from_authorities(&x509, &jwt, 1, Duration::from_secs(60))
        .to_jwks()
        .expect("jwks");
    let entry = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["use"] == "x509-svid")
        .expect("x509 entry");
    assert_eq!(entry["crv"], "P-384");
    assert_eq!(
        BASE64
            .decode(entry["x5c"][0].as_str().expect("x5c"))
            .expect("b64"),
        root.der().to_vec()
    );
}

#[test]
fn openssl_accepts_a_key_written_by_the_ca() {
    // Key files are PKCS#8 DER any tool can read.
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = clock();
    let ca = X509Authority::open(X509CaConfig::new(td()), dir.path(), Arc::new(clock.clone()))
        .expect("open");
    let id = ca.authorities()[0].id.clone();
    let path = dir.path().join(format!("x509-ca-{id}.key"));
    let pkcs8 = keys::read_key_file(&path).expect("read");
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &pkcs8).expect("pkcs8");
    let bundle = ca.bundle();
    let root = parse(&bundle[0]);
    assert_eq!(
        root.public_key().subject_public_key.data.as_ref(),
        pair.public_key().as_ref()
    );
    let _ = SystemRandom::new();
    if let Ok(output) = Command::new("openssl")
        .args(["pkey", "-inform", "DER", "-noout", "-in"])
        .arg(&path)
        .output()
    {
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn authorities_are_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<X509Authority>();
    assert_send_sync::<JwtAuthority>();
    assert_send_sync::<UpstreamCa>();

    // Minting from several threads while another rotates.
    let clock = clock();
    let ca = Arc::new(
        X509Authority::new(
            X509CaConfig::new(td()).with_ca_ttl(Duration::from_secs(600)),
            Arc::new(clock.clone()),
        )
        .expect("CA"),
    );
    let (_, key) = workload_key();
    std::thread::scope(|scope| {
        for _ in 0..2 {
            let (ca, key) = (Arc::clone(&ca), key.clone());
            scope.spawn(move || {
                for _ in 0..50 {
                    ca.mint_x509_svid(&id("/t"), &key, Duration::from_secs(60), &[])
                        .expect("mint during rotation");
                }
            });
        }
        for _ in 0..20 {
            clock.advance(Duration::from_secs(30));
            ca.rotate().expect("rotate");
        }
    });
}
