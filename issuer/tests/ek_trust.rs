//! EK trust: real swtpm EK certificates chained to their local CA, and
//! crafted certificates (issuer/testdata/ek, see its README) refused for the
//! right reason.
#![allow(clippy::unwrap_used)] // test helpers fail loudly on broken fixtures

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rootmark_attestor::tpm::{EkAlgorithm, Tpm};
use rootmark_issuer::ek::{EkAllowList, EkRoots, EkTrustError, EkTrustPath, EkVerifier};
use rootmark_issuer::tpm::TpmtPublic;
use rootmark_swtpm_tests::Swtpm;
use sha2::{Digest, Sha256};
use tempfile::TempDir;
use x509_parser::public_key::PublicKey as X509PublicKey;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/ek")
        .join(name)
}

fn read_fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).unwrap()
}

/// 2030-01-01T00:00:00Z: inside the validity of every fixture except the
/// expired intermediate (2000-01-01 to 2001-01-01).
fn fixture_now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_893_456_000)
}

/// A roots directory holding copies of `files`.
fn roots_dir(files: &[PathBuf]) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (i, file) in files.iter().enumerate() {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        std::fs::copy(file, dir.path().join(format!("{i}-{name}"))).unwrap();
    }
    dir
}

fn verifier_over(files: &[PathBuf]) -> EkVerifier {
    let dir = roots_dir(files);
    EkVerifier::new(EkRoots::load_dir(dir.path()).unwrap(), EkAllowList::empty())
}

fn test_ca_verifier() -> EkVerifier {
    verifier_over(&[fixture("test-root.pem"), fixture("test-intermediate.pem")])
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The TCG default EK policy (PolicySecret(TPM_RH_ENDORSEMENT)).
const EK_POLICY: [u8; 32] = [
    0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xb3, 0xf8, 0x1a, 0x90, 0xcc, 0x8d, 0x46, 0xa5, 0xd7, 0x24,
    0xfd, 0x52, 0xd7, 0x6e, 0x06, 0x52, 0x0b, 0x64, 0xf2, 0xa1, 0xda, 0x1b, 0x33, 0x14, 0x69, 0xaa,
];

/// The TPM2B_PUBLIC an EK (TCG template L-1 / L-2) with the certificate's
/// key would have: how the fixture certificates get a matching EK public.
fn ek_public_for(cert_der: &[u8]) -> TpmtPublic {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).unwrap();
    let mut t = Vec::new();
    let header = |t: &mut Vec<u8>, key_type: u16| {
        t.extend_from_slice(&key_type.to_be_bytes());
        t.extend_from_slice(&0x000Bu16.to_be_bytes()); // nameAlg SHA-256
        t.extend_from_slice(&0x0003_00B2u32.to_be_bytes()); // EK attributes
        t.extend_from_slice(&32u16.to_be_bytes());
        t.extend_from_slice(&EK_POLICY);
        t.extend_from_slice(&[0x00, 0x06, 0x00, 0x80, 0x00, 0x43]); // AES-128-CFB
        t.extend_from_slice(&0x0010u16.to_be_bytes()); // scheme NULL
    };
    match cert.public_key().parsed().unwrap() {
        X509PublicKey::RSA(rsa) => {
            let modulus: Vec<u8> = rsa
                .modulus
                .iter()
                .copied()
                .skip_while(|&b| b == 0)
                .collect();
            header(&mut t, 0x0001);
            t.extend_from_slice(&((modulus.len() * 8) as u16).to_be_bytes());
            t.extend_from_slice(&0u32.to_be_bytes()); // exponent 65537
            t.extend_from_slice(&(modulus.len() as u16).to_be_bytes());
            t.extend_from_slice(&modulus);
        }
        X509PublicKey::EC(point) => {
            let point = point.data();
            assert_eq!(point.len(), 65, "fixture EC keys are P-256");
            header(&mut t, 0x0023);
            t.extend_from_slice(&0x0003u16.to_be_bytes()); // NIST P-256
            t.extend_from_slice(&0x0010u16.to_be_bytes()); // kdf NULL
            t.extend_from_slice(&32u16.to_be_bytes());
            t.extend_from_slice(&point[1..33]);
            t.extend_from_slice(&32u16.to_be_bytes());
            t.extend_from_slice(&point[33..]);
        }
        other => panic!("unexpected fixture key {other:?}"),
    }
    TpmtPublic::from_tpmt(&t).unwrap()
}

/// A fresh swtpm, and its EK certificate and EK public for `algorithm`.
fn swtpm_endorsement(algorithm: EkAlgorithm) -> (Swtpm, Vec<u8>, TpmtPublic) {
    let swtpm = Swtpm::start().unwrap();
    let (cert, public) = endorsement_of(&swtpm, algorithm);
    (swtpm, cert, public)
}

fn endorsement_of(swtpm: &Swtpm, algorithm: EkAlgorithm) -> (Vec<u8>, TpmtPublic) {
    let mut tpm = Tpm::open(&swtpm.tcti()).unwrap();
    let endorsement = tpm.endorsement(Some(algorithm)).unwrap();
    let cert = endorsement
        .certificate
        .expect("swtpm provisions EK certificates");
    (cert, TpmtPublic::from_tpm2b(&endorsement.public).unwrap())
}

fn swtpm_ca(swtpm: &Swtpm) -> Vec<PathBuf> {
    vec![swtpm.ek_root_ca_pem_path(), swtpm.ek_issuer_ca_pem_path()]
}

#[test]
fn swtpm_ek_cert_chains_to_its_local_ca() {
    let (swtpm, cert, public) = swtpm_endorsement(EkAlgorithm::Rsa2048);
    let verifier = verifier_over(&swtpm_ca(&swtpm));
    assert_eq!(verifier.roots().len(), 2);

    let id = verifier
        .verify(&public, Some(&cert), SystemTime::now())
        .unwrap();
    assert_eq!(id.manufacturer.as_deref(), Some("id:00001014"));
    assert_eq!(id.model.as_deref(), Some("swtpm"));
    assert!(id.version.is_some());
    assert_eq!(id.ek_hash, sha256_hex(public.tpmt_bytes()));
    assert_eq!(
        id.trusted_by,
        EkTrustPath::CertificateChain {
            anchor: "CN=swtpm-localca-rootca".to_owned(),
            intermediates: vec!["CN=swtpm-localca".to_owned()],
        }
    );

    // The second verification of the same certificate is served from the cache.
    assert_eq!(verifier.cached_chains(), 1);
    let again = verifier
        .verify(&public, Some(&cert), SystemTime::now())
        .unwrap();
    assert_eq!(again, id);
    assert_eq!(verifier.cached_chains(), 1);
}

#[test]
fn swtpm_ecc_p384_ek_cert_chains_to_its_local_ca() {
    let (swtpm, cert, public) = swtpm_endorsement(EkAlgorithm::EccP384);
    let verifier = verifier_over(&swtpm_ca(&swtpm));
    let id = verifier
        .verify(&public, Some(&cert), SystemTime::now())
        .unwrap();
    assert_eq!(id.manufacturer.as_deref(), Some("id:00001014"));
    assert_eq!(id.ek_hash, sha256_hex(public.tpmt_bytes()));
}

#[test]
fn ek_cert_from_another_ca_is_refused_as_untrusted() {
    let (_a, cert, public) = swtpm_endorsement(EkAlgorithm::Rsa2048);
    let b = Swtpm::start().unwrap();
    // Both local CAs are called "swtpm-localca": the names match, the keys do not.
    let verifier = verifier_over(&swtpm_ca(&b));
    let err = verifier
        .verify(&public, Some(&cert), SystemTime::now())
        .unwrap_err();
    match &err {
        EkTrustError::UntrustedIssuer { issuer, .. } => assert_eq!(issuer, "CN=swtpm-localca"),
        other => panic!("expected UntrustedIssuer, got {other:?}"),
    }
    let message = err.to_string();
    assert!(
        message.contains("issuer 'CN=swtpm-localca' is not in the manufacturer roots at")
            && message.contains("add the manufacturer's CA certificate there"),
        "{message}"
    );

    // An empty roots directory trusts nothing either.
    let verifier = verifier_over(&[]);
    assert!(verifier.roots().is_empty());
    let err = verifier
        .verify(&public, Some(&cert), SystemTime::now())
        .unwrap_err();
    assert!(
        matches!(err, EkTrustError::UntrustedIssuer { .. }),
        "{err:?}"
    );
}

#[test]
fn ek_cert_with_the_public_of_another_tpm_is_refused_as_key_mismatch() {
    let (a, cert_a, public_a) = swtpm_endorsement(EkAlgorithm::Rsa2048);
    let (_b, _cert_b, public_b) = swtpm_endorsement(EkAlgorithm::Rsa2048);
    let verifier = verifier_over(&swtpm_ca(&a));
    // Sanity: A's certificate with A's public is trusted.
    verifier
        .verify(&public_a, Some(&cert_a), SystemTime::now())
        .unwrap();

    let err = verifier
        .verify(&public_b, Some(&cert_a), SystemTime::now())
        .unwrap_err();
    let EkTrustError::KeyMismatch {
        certificate_key,
        ek_key,
    } = &err
    else {
        panic!("expected KeyMismatch, got {err:?}");
    };
    assert!(
        certificate_key.starts_with("RSA-2048") && ek_key.starts_with("RSA-2048"),
        "{err}"
    );
    assert_ne!(certificate_key, ek_key);

    // A's RSA certificate presented with A's own ECC EK: another EK type.
    let (_, public_a_ecc) = endorsement_of(&a, EkAlgorithm::EccP384);
    let err = verifier
        .verify(&public_a_ecc, Some(&cert_a), SystemTime::now())
        .unwrap_err();
    assert!(matches!(err, EkTrustError::KeyMismatch { .. }), "{err:?}");
}

#[test]
fn ek_without_cert_is_accepted_only_when_allow_listed() {
    let (swtpm, _cert, public) = swtpm_endorsement(EkAlgorithm::Rsa2048);
    let hash = sha256_hex(public.tpmt_bytes());

    let roots = EkRoots::load_dir(roots_dir(&swtpm_ca(&swtpm)).path()).unwrap();
    let verifier = EkVerifier::new(roots, EkAllowList::empty());
    let err = verifier
        .verify(&public, None, SystemTime::now())
        .unwrap_err();
    match &err {
        EkTrustError::UntrustedNoCertificate { ek_hash, .. } => assert_eq!(ek_hash, &hash),
        other => panic!("expected UntrustedNoCertificate, got {other:?}"),
    }
    let message = err.to_string();
    assert!(
        message.contains(&format!("add {hash} to the EK allow-list"))
            && message.contains("provision the TPM's EK certificate"),
        "{message}"
    );

    // The same EK, allow-listed in a file (with a comment and another entry).
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("ek-allow-list");
    std::fs::write(
        &list,
        format!(
            "# lab VMs without EK certificates\n{}\n\n{}  # vm-17\n",
            "0".repeat(64),
            hash.to_uppercase()
        ),
    )
    .unwrap();
    let allow = EkAllowList::load_file(&list).unwrap();
    assert_eq!(allow.len(), 2);
    let roots = EkRoots::load_dir(roots_dir(&swtpm_ca(&swtpm)).path()).unwrap();
    let verifier = EkVerifier::new(roots, allow);
    let id = verifier.verify(&public, None, SystemTime::now()).unwrap();
    assert_eq!(id.ek_hash, hash);
    assert_eq!(id.trusted_by, EkTrustPath::AllowList);
    assert_eq!(id.manufacturer, None);

    // An allow-listed EK is trusted even when its certificate is not
    // (here: no roots at all); certificate facts are then not reported.
    let (cert, _) = endorsement_of(&swtpm, EkAlgorithm::Rsa2048);
    let no_roots = EkVerifier::new(
        EkRoots::from_der_certs(vec![]).unwrap(),
        EkAllowList::from_hex([hash.as_str()]).unwrap(),
    );
    let id = no_roots
        .verify(&public, Some(&cert), SystemTime::now())
        .unwrap();
    assert_eq!(id.trusted_by, EkTrustPath::AllowList);
    assert_eq!(id.manufacturer, None);

    // Another TPM's EK is still refused.
    let (_other, _, other_public) = swtpm_endorsement(EkAlgorithm::Rsa2048);
    let err = verifier
        .verify(&other_public, None, SystemTime::now())
        .unwrap_err();
    assert!(
        matches!(err, EkTrustError::UntrustedNoCertificate { .. }),
        "{err:?}"
    );
}

#[test]
fn tcg_profile_ek_certs_from_the_test_ca_verify() {
    // RSA EK, empty subject, critical SAN dirName, signed RSA-PSS/SHA-256 by
    // an RSA-3072 intermediate that the ECDSA P-384 root signed (SHA-384).
    let verifier = test_ca_verifier();
    let cert = read_fixture("test-ek-rsa2048.der");
    let id = verifier
        .verify(&ek_public_for(&cert), Some(&cert), fixture_now())
        .unwrap();
    assert_eq!(id.manufacturer.as_deref(), Some("id:52544D00"));
    assert_eq!(id.model.as_deref(), Some("RootmarkTestTPM"));
    assert_eq!(id.version.as_deref(), Some("id:00010002"));
    assert_eq!(
        id.trusted_by,
        EkTrustPath::CertificateChain {
            anchor: "CN=Rootmark Test EK Root, O=Rootmark Test".to_owned(),
            intermediates: vec!["CN=Rootmark Test EK Intermediate, O=Rootmark Test".to_owned()],
        }
    );

    // ECC P-256 EK signed sha384WithRSAEncryption.
    let ecc = read_fixture("test-ek-ecc-p256.der");
    let id = verifier
        .verify(&ek_public_for(&ecc), Some(&ecc), fixture_now())
        .unwrap();
    assert_eq!(id.manufacturer.as_deref(), Some("id:52544D00"));

    // The RSA certificate does not certify the ECC EK.
    let err = verifier
        .verify(&ek_public_for(&ecc), Some(&cert), fixture_now())
        .unwrap_err();
    assert!(matches!(err, EkTrustError::KeyMismatch { .. }), "{err:?}");
}

#[test]
fn unknown_critical_extension_is_refused() {
    let cert = read_fixture("ek-critical-unknown-ext.der");
    let err = test_ca_verifier()
        .verify(&ek_public_for(&cert), Some(&cert), fixture_now())
        .unwrap_err();
    match &err {
        EkTrustError::UnsupportedCriticalExtension {
            certificate, oid, ..
        } => {
            assert_eq!(oid, "1.3.6.1.4.1.99999.42");
            assert!(certificate.starts_with("EK certificate"), "{certificate}");
        }
        other => panic!("expected UnsupportedCriticalExtension, got {other:?}"),
    }
    assert!(
        err.to_string()
            .contains("critical extension 1.3.6.1.4.1.99999.42"),
        "{err}"
    );
}

#[test]
fn expired_intermediate_is_refused() {
    let verifier = verifier_over(&[
        fixture("test-root.pem"),
        fixture("test-intermediate-expired.pem"),
    ]);
    let cert = read_fixture("ek-under-expired-intermediate.der");
    let public = ek_public_for(&cert);

    // While the intermediate was valid (2000-07-01) the chain verified …
    let in_2000 = UNIX_EPOCH + Duration::from_secs(962_409_600);
    verifier.verify(&public, Some(&cert), in_2000).unwrap();

    // … and now it has expired; the cached chain is not reused past its window.
    let err = verifier
        .verify(&public, Some(&cert), fixture_now())
        .unwrap_err();
    match &err {
        EkTrustError::Expired {
            certificate,
            not_after,
            ..
        } => {
            assert!(
                certificate.contains("CA certificate 'CN=Rootmark Test EK Intermediate (expired)"),
                "{certificate}"
            );
            assert!(not_after.contains("2001"), "{not_after}");
        }
        other => panic!("expected Expired, got {other:?}"),
    }
}

#[test]
fn tampered_signature_is_refused() {
    let verifier = test_ca_verifier();
    let good = read_fixture("test-ek-rsa2048.der");
    let tampered = read_fixture("ek-tampered-signature.der");
    assert_eq!(good.len(), tampered.len());
    let public = ek_public_for(&good);
    verifier
        .verify(&public, Some(&good), fixture_now())
        .unwrap();

    let err = verifier
        .verify(&public, Some(&tampered), fixture_now())
        .unwrap_err();
    match &err {
        EkTrustError::BadSignature {
            certificate,
            issuer,
            ..
        } => {
            assert!(certificate.starts_with("EK certificate"), "{certificate}");
            assert!(issuer.contains("Rootmark Test EK Intermediate"), "{issuer}");
        }
        other => panic!("expected BadSignature, got {other:?}"),
    }

    // A bit flipped in the signed part is refused the same way.
    let mut altered = good.clone();
    let at = altered.len() / 3;
    altered[at] ^= 0x01;
    let result = verifier.verify(&public, Some(&altered), fixture_now());
    assert!(result.is_err(), "altered certificate accepted");
}

#[test]
fn issuer_that_is_not_a_ca_is_refused() {
    let verifier = verifier_over(&[
        fixture("test-root.pem"),
        fixture("test-intermediate-not-ca.pem"),
    ]);
    let cert = read_fixture("ek-under-non-ca-intermediate.der");
    let err = verifier
        .verify(&ek_public_for(&cert), Some(&cert), fixture_now())
        .unwrap_err();
    match &err {
        EkTrustError::NotACa {
            certificate,
            reason,
            ..
        } => {
            assert!(
                certificate.contains("Rootmark Test not a CA"),
                "{certificate}"
            );
            assert!(reason.contains("cA=false"), "{reason}");
        }
        other => panic!("expected NotACa, got {other:?}"),
    }
}

#[test]
fn name_constraints_of_an_intermediate_are_enforced() {
    let verifier = verifier_over(&[
        fixture("test-root.pem"),
        fixture("test-intermediate-name-constrained.pem"),
    ]);
    let cert = read_fixture("ek-outside-name-constraints.der");
    let err = verifier
        .verify(&ek_public_for(&cert), Some(&cert), fixture_now())
        .unwrap_err();
    match &err {
        EkTrustError::NameConstraintViolation {
            constrained_by,
            reason,
            ..
        } => {
            assert!(
                constrained_by.contains("name constrained"),
                "{constrained_by}"
            );
            assert!(reason.contains("O=Somewhere Else"), "{reason}");
        }
        other => panic!("expected NameConstraintViolation, got {other:?}"),
    }
}

#[test]
fn self_signed_root_without_basic_constraints_is_tolerated() {
    let verifier = verifier_over(&[fixture("test-root-without-basic-constraints.pem")]);
    let cert = read_fixture("ek-under-root-without-basic-constraints.der");
    let id = verifier
        .verify(&ek_public_for(&cert), Some(&cert), fixture_now())
        .unwrap();
    assert_eq!(
        id.trusted_by,
        EkTrustPath::CertificateChain {
            anchor: "CN=Rootmark Test EK Root without basicConstraints, O=Rootmark Test".to_owned(),
            intermediates: vec![],
        }
    );
}

#[test]
fn ek_cert_outside_its_validity_is_refused() {
    let verifier = test_ca_verifier();
    let cert = read_fixture("test-ek-rsa2048.der");
    let public = ek_public_for(&cert);
    let in_1999 = UNIX_EPOCH + Duration::from_secs(915_148_800);
    let err = verifier.verify(&public, Some(&cert), in_1999).unwrap_err();
    assert!(
        matches!(&err, EkTrustError::NotYetValid { certificate, .. } if certificate.starts_with("EK certificate")),
        "{err:?}"
    );
    // notAfter 9999-12-31T23:59:59Z (GeneralizedTime) is accepted up to its last second.
    let last_second = UNIX_EPOCH + Duration::from_secs(253_402_300_799);
    verifier.verify(&public, Some(&cert), last_second).unwrap();
    let after = UNIX_EPOCH + Duration::from_secs(253_402_300_800);
    let err = verifier.verify(&public, Some(&cert), after).unwrap_err();
    assert!(matches!(err, EkTrustError::Expired { .. }), "{err:?}");
}

#[test]
fn roots_load_from_pem_bundles_and_der_files_and_name_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut bundle = std::fs::read(fixture("test-root.pem")).unwrap();
    bundle.extend_from_slice(b"\nsome text between certificates\n");
    bundle.extend(std::fs::read(fixture("test-intermediate.pem")).unwrap());
    std::fs::write(dir.path().join("test-ca-bundle.crt"), &bundle).unwrap();
    std::fs::copy(
        fixture("swtpm-localca-root.pem"),
        dir.path().join("swtpm-root.pem"),
    )
    .unwrap();
    let der = x509_parser::pem::Pem::iter_from_buffer(&read_fixture("swtpm-localca-issuer.pem"))
        .next()
        .unwrap()
        .unwrap()
        .contents;
    std::fs::write(dir.path().join("swtpm-issuer.cer"), der).unwrap();
    std::fs::write(dir.path().join("README.txt"), "ignored").unwrap();
    let roots = EkRoots::load_dir(dir.path()).unwrap();
    assert_eq!(roots.len(), 4);

    // Both the test CA and the swtpm CA chains verify against the one directory.
    let verifier = EkVerifier::new(roots, EkAllowList::empty());
    let cert = read_fixture("test-ek-ecc-p256.der");
    verifier
        .verify(&ek_public_for(&cert), Some(&cert), fixture_now())
        .unwrap();
    let swtpm_public = TpmtPublic::from_tpm2b(&read_fixture("swtpm-ek-rsa2048.tpm2b")).unwrap();
    verifier
        .verify(
            &swtpm_public,
            Some(&read_fixture("swtpm-ek-rsa2048.der")),
            fixture_now(),
        )
        .unwrap();

    // A file that is not a certificate is named.
    std::fs::write(dir.path().join("broken.pem"), "not a certificate").unwrap();
    let err = EkRoots::load_dir(dir.path()).unwrap_err();
    assert!(
        matches!(&err, EkTrustError::RootFile { file, .. } if file.ends_with("broken.pem")),
        "{err:?}"
    );

    // A missing directory is named too.
    let err = EkRoots::load_dir(&dir.path().join("missing")).unwrap_err();
    assert!(
        matches!(err, EkTrustError::RootsUnreadable { .. }),
        "{err:?}"
    );
}
