//! The software TPM's evidence, checked by tools that share none of its code
//! (tpm2-tools, x509-parser, the p256 crate) and compared field by field with
//! what a real swtpm produces through the attestor for the same boot.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;

use rootmark_attestor::tpm::{AkAlgorithm, EkAlgorithm, PcrBank, PcrSelection, Tpm};
use rootmark_swtpm_tests::Swtpm;
use rootmark_swtpm_tests::boot::{Bank, BootLog, BootProfile, event_type};
use rootmark_swtpm_tests::measure;
use rootmark_swtpm_tests::soft_tpm::{
    SOFT_TPM_MANUFACTURER, SoftAkAlgorithm, SoftEkCa, SoftTpm, SoftTpmError, policy_pcr_digest,
};
use rootmark_swtpm_tests::tpm2_tools::{self, parse_credential_file, serialized_pcr_file};
use sha2::{Digest, Sha256};
use tempfile::TempDir;
use x509_parser::prelude::*;

const NONCE: [u8; 32] = *b"issuer-nonce-0123456789abcdefghi";
const SECRET: &[u8] = b"rootmark activation secret 32 b!";

fn booted(ak: SoftAkAlgorithm) -> (SoftEkCa, SoftTpm, BootLog) {
    let ca = SoftEkCa::new("Rootmark Test Manufacturer").unwrap();
    let mut tpm = SoftTpm::manufacture(&ca, ak).unwrap();
    let log = BootLog::simulate(&BootProfile::default());
    tpm.boot(&log);
    (ca, tpm, log)
}

/// Splits a TPM2B: (payload, rest).
fn tpm2b(bytes: &[u8]) -> (&[u8], &[u8]) {
    let len = usize::from(u16::from_be_bytes([bytes[0], bytes[1]]));
    bytes[2..].split_at(len)
}

/// A TPMT_PUBLIC's authPolicy (TPM2B_PUBLIC given).
fn auth_policy(public: &[u8]) -> Vec<u8> {
    let (tpmt, rest) = tpm2b(public);
    assert!(rest.is_empty());
    tpm2b(&tpmt[8..]).0.to_vec()
}

/// The parts of a TPMS_ATTEST.
#[derive(Debug)]
struct Attest {
    magic: u32,
    tag: u16,
    signer: Vec<u8>,
    extra: Vec<u8>,
    clock: u64,
    reset_count: u32,
    restart_count: u32,
    safe: u8,
    firmware: u64,
    body: Vec<u8>,
}

fn parse_attest(bytes: &[u8]) -> Attest {
    let (signer, rest) = tpm2b(&bytes[6..]);
    let (extra, rest) = tpm2b(rest);
    Attest {
        magic: u32::from_be_bytes(bytes[0..4].try_into().unwrap()),
        tag: u16::from_be_bytes(bytes[4..6].try_into().unwrap()),
        signer: signer.to_vec(),
        extra: extra.to_vec(),
        clock: u64::from_be_bytes(rest[0..8].try_into().unwrap()),
        reset_count: u32::from_be_bytes(rest[8..12].try_into().unwrap()),
        restart_count: u32::from_be_bytes(rest[12..16].try_into().unwrap()),
        safe: rest[16],
        firmware: u64::from_be_bytes(rest[17..25].try_into().unwrap()),
        body: rest[25..].to_vec(),
    }
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    tpm2_tools::write_file(dir, name, bytes)
}

fn tpm2_print(dir: &Path, name: &str, ty: &str, bytes: &[u8]) -> String {
    let file = write(dir, name, bytes);
    let run = tpm2_tools::run("tpm2_print", &["-t", ty, &file]).unwrap();
    assert!(run.success, "tpm2_print -t {ty} refused it: {}", run.stderr);
    run.stdout
}

/// A hand-built TPML_PCR_SELECTION (3-byte bitmaps).
fn tpml(selection: &[(Bank, Vec<u32>)]) -> Vec<u8> {
    let mut out = (selection.len() as u32).to_be_bytes().to_vec();
    for (bank, indexes) in selection {
        out.extend_from_slice(&bank.tpm_alg_id().to_be_bytes());
        out.push(3);
        let mut bitmap = [0u8; 3];
        for &i in indexes {
            bitmap[(i / 8) as usize] |= 1 << (i % 8);
        }
        out.extend_from_slice(&bitmap);
    }
    out
}

fn boot_selection() -> Vec<(Bank, Vec<u32>)> {
    vec![
        (Bank::Sha1, (0..8).collect()),
        (Bank::Sha256, (0..10).collect()),
    ]
}

fn checkquote(
    dir: &Path,
    tag: &str,
    ak_public: &[u8],
    attest: &[u8],
    signature: &[u8],
    pcr_file: &[u8],
    nonce: &[u8],
) -> tpm2_tools::ToolRun {
    let ak = write(dir, &format!("{tag}.ak.pub"), ak_public);
    let msg = write(dir, &format!("{tag}.msg"), attest);
    let sig = write(dir, &format!("{tag}.sig"), signature);
    let pcrs = write(dir, &format!("{tag}.pcrs"), pcr_file);
    let nonce = hex::encode(nonce);
    tpm2_tools::run(
        "tpm2_checkquote",
        &[
            "-u", &ak, "-m", &msg, "-s", &sig, "-f", &pcrs, "-g", "sha256", "-q", &nonce,
        ],
    )
    .unwrap()
}

fn quote_verifies_with_tpm2_checkquote(algorithm: SoftAkAlgorithm) {
    let (_ca, tpm, log) = booted(algorithm);
    let dir = TempDir::new().unwrap();
    let selection = boot_selection();
    let (attest, signature, values) = tpm.quote(&selection, &NONCE);

    // The values are the simulated boot's PCRs, and exactly the selection.
    assert_eq!(values.len(), 18);
    for bank in Bank::ALL {
        for (index, expected) in log.expected_pcrs(bank) {
            if values.contains_key(&(bank, index)) {
                assert_eq!(values[&(bank, index)], expected, "{bank:?}:{index}");
            }
        }
    }
    let ordered: Vec<Vec<u8>> = selection
        .iter()
        .flat_map(|(bank, indexes)| indexes.iter().map(|&i| values[&(*bank, i)].clone()))
        .collect();
    let file = serialized_pcr_file(&tpml(&selection), &ordered).unwrap();

    let run = checkquote(
        dir.path(),
        "good",
        &tpm.ak_public(),
        &attest,
        &signature,
        &file,
        &NONCE,
    );
    assert!(
        run.success,
        "tpm2_checkquote refused: {}{}",
        run.stdout, run.stderr
    );

    let run = checkquote(
        dir.path(),
        "nonce",
        &tpm.ak_public(),
        &attest,
        &signature,
        &file,
        b"other",
    );
    assert!(!run.success, "tpm2_checkquote accepted another nonce");

    let mut tampered = ordered.clone();
    tampered[12][0] ^= 1;
    let bad_file = serialized_pcr_file(&tpml(&selection), &tampered).unwrap();
    let run = checkquote(
        dir.path(),
        "pcr",
        &tpm.ak_public(),
        &attest,
        &signature,
        &bad_file,
        &NONCE,
    );
    assert!(
        !run.success,
        "tpm2_checkquote accepted a tampered PCR value"
    );

    // Another TPM's AK does not verify it.
    let (_, other, _) = booted(algorithm);
    let run = checkquote(
        dir.path(),
        "ak",
        &other.ak_public(),
        &attest,
        &signature,
        &file,
        &NONCE,
    );
    assert!(!run.success, "tpm2_checkquote accepted another AK");

    // tpm2_print decodes the body; the fields are what a TPM writes.
    let yaml = tpm2_print(dir.path(), "quote.attest", "TPMS_ATTEST", &attest);
    assert!(yaml.contains("ff544347"), "{yaml}");
    assert!(yaml.contains("8018"), "{yaml}");
    let a = parse_attest(&attest);
    assert_eq!(
        (a.magic, a.tag, a.extra.as_slice()),
        (0xff54_4347, 0x8018, &NONCE[..])
    );
    assert_eq!(a.signer.len(), 34);
    assert_eq!(&a.signer[..2], &[0x00, 0x0b]);
    assert_eq!((a.reset_count, a.restart_count, a.safe), (0, 0, 1));
    let mut expected_body = tpml(&selection);
    expected_body.extend_from_slice(&32u16.to_be_bytes());
    expected_body.extend_from_slice(&Sha256::digest(ordered.concat()));
    assert_eq!(a.body, expected_body);

    // The signature shape.
    match algorithm {
        SoftAkAlgorithm::EccP256 => {
            assert_eq!(&signature[..4], &[0x00, 0x18, 0x00, 0x0b]);
            assert_eq!(signature.len(), 4 + 2 * 34);
        }
        SoftAkAlgorithm::Rsa2048 => {
            assert_eq!(&signature[..6], &[0x00, 0x14, 0x00, 0x0b, 0x01, 0x00]);
            assert_eq!(signature.len(), 6 + 256);
        }
    }
}

#[test]
fn ecc_ak_quote_verifies_with_tpm2_checkquote() {
    quote_verifies_with_tpm2_checkquote(SoftAkAlgorithm::EccP256);
}

#[test]
fn rsa_ak_quote_verifies_with_tpm2_checkquote() {
    quote_verifies_with_tpm2_checkquote(SoftAkAlgorithm::Rsa2048);
}

#[test]
fn quote_orders_values_by_given_bank_order() {
    let (_ca, tpm, _log) = booted(SoftAkAlgorithm::EccP256);
    // sha256 first, then sha1; indexes given out of order and duplicated.
    let selection = vec![(Bank::Sha256, vec![7, 0, 7, 24]), (Bank::Sha1, vec![4])];
    let (attest, _, values) = tpm.quote(&selection, b"n");
    let a = parse_attest(&attest);
    let concat = [
        tpm.pcr(Bank::Sha256, 0),
        tpm.pcr(Bank::Sha256, 7),
        tpm.pcr(Bank::Sha1, 4),
    ]
    .concat();
    let mut body = vec![
        0, 0, 0, 2, 0x00, 0x0b, 3, 0x81, 0, 0, 0x00, 0x04, 3, 0x10, 0, 0, 0, 32,
    ];
    body.extend_from_slice(&Sha256::digest(concat));
    assert_eq!(a.body, body);
    assert_eq!(
        values.keys().copied().collect::<Vec<_>>(),
        vec![(Bank::Sha1, 4), (Bank::Sha256, 0), (Bank::Sha256, 7)]
    );
}

#[test]
fn makecredential_by_tpm2_tools_activates_only_for_the_ak_name() {
    for algorithm in [SoftAkAlgorithm::EccP256, SoftAkAlgorithm::Rsa2048] {
        let (_ca, tpm, _log) = booted(algorithm);
        let dir = TempDir::new().unwrap();
        let ek = write(dir.path(), "ek.pub", &tpm.ek_public());
        let secret = write(dir.path(), "secret", SECRET);
        let make = |name: &[u8], out: &str| {
            let out = dir.path().join(out).display().to_string();
            let run = tpm2_tools::run(
                "tpm2_makecredential",
                &[
                    "-T",
                    "none",
                    "-u",
                    &ek,
                    "-s",
                    &secret,
                    "-n",
                    &hex::encode(name),
                    "-o",
                    &out,
                ],
            )
            .unwrap();
            assert!(run.success, "tpm2_makecredential failed: {}", run.stderr);
            parse_credential_file(&std::fs::read(&out).unwrap()).unwrap()
        };

        let (blob, encrypted) = make(&tpm.ak_name(), "good.cred");
        assert_eq!(tpm.activate_credential(&blob, &encrypted).unwrap(), SECRET);

        // Made for another AK name: the integrity HMAC does not match.
        let mut other_name = tpm.ak_name();
        other_name[5] ^= 0x40;
        let (blob, encrypted) = make(&other_name, "other.cred");
        let err = tpm.activate_credential(&blob, &encrypted).unwrap_err();
        assert!(matches!(err, SoftTpmError::Integrity), "{err}");
        assert!(err.to_string().contains("TPM_RC_INTEGRITY"), "{err}");

        // A tampered encIdentity also fails the integrity check.
        let (mut blob, encrypted) = make(&tpm.ak_name(), "again.cred");
        let last = blob.len() - 1;
        blob[last] ^= 1;
        assert!(matches!(
            tpm.activate_credential(&blob, &encrypted),
            Err(SoftTpmError::Integrity)
        ));

        // For another TPM's EK, the seed does not decrypt.
        let (_, other, _) = booted(algorithm);
        let (blob, encrypted) = make(&tpm.ak_name(), "mine.cred");
        assert!(matches!(
            other.activate_credential(&blob, &encrypted),
            Err(SoftTpmError::SecretDecryption)
        ));

        // Malformed inputs are refused, not panicked on.
        for (b, e) in [
            (&[][..], &encrypted[..]),
            (&blob[..10], &encrypted[..]),
            (&blob[..], &encrypted[..100]),
            (&blob[..34], &encrypted[..]),
        ] {
            assert!(matches!(
                tpm.activate_credential(b, e),
                Err(SoftTpmError::MalformedCredential(_))
            ));
        }
    }
}

#[test]
fn ek_certificate_chains_to_the_ca_with_the_tcg_profile_shape() {
    let ca = SoftEkCa::new("Rootmark Test Manufacturer").unwrap();
    let tpm = SoftTpm::manufacture(&ca, SoftAkAlgorithm::EccP256).unwrap();

    let root_pem = ca.root_pem();
    let int_pem = ca.intermediate_pem();
    let (_, root_pem) = parse_x509_pem(root_pem.as_bytes()).unwrap();
    let (_, int_pem) = parse_x509_pem(int_pem.as_bytes()).unwrap();
    let root = root_pem.parse_x509().unwrap();
    let int = int_pem.parse_x509().unwrap();
    let (rest, ek) = X509Certificate::from_der(tpm.ek_certificate()).unwrap();
    assert!(rest.is_empty());

    // Chain: root self-signed, intermediate by root, EK cert by intermediate.
    root.verify_signature(None).unwrap();
    int.verify_signature(Some(root.public_key())).unwrap();
    ek.verify_signature(Some(int.public_key())).unwrap();
    assert!(ek.verify_signature(Some(root.public_key())).is_err());
    assert_eq!(ek.issuer(), int.subject());
    assert_eq!(int.issuer(), root.subject());
    assert!(root.is_ca() && int.is_ca());
    assert_eq!(
        int.basic_constraints()
            .unwrap()
            .unwrap()
            .value
            .path_len_constraint,
        Some(0)
    );
    assert!(int.key_usage().unwrap().unwrap().value.key_cert_sign());
    assert!(ek.validity().is_valid());
    assert_eq!(ca.root_der(), root_pem.contents);
    assert_eq!(ca.intermediate_der(), int_pem.contents);

    // TCG EK profile: empty subject, critical SAN with a directoryName holding
    // the TPM manufacturer, model and version.
    assert_eq!(ek.subject().iter().count(), 0);
    let san = ek.subject_alternative_name().unwrap().unwrap();
    assert!(san.critical, "SAN must be critical with an empty subject");
    let [GeneralName::DirectoryName(dn)] = san.value.general_names.as_slice() else {
        panic!("SAN is not one directoryName: {:?}", san.value);
    };
    let attrs: BTreeMap<String, String> = dn
        .iter_attributes()
        .map(|a| (a.attr_type().to_id_string(), a.as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(attrs["2.23.133.2.1"], SOFT_TPM_MANUFACTURER);
    assert!(!attrs["2.23.133.2.2"].is_empty());
    assert!(attrs["2.23.133.2.3"].starts_with("id:"));
    let ku = ek.key_usage().unwrap().unwrap();
    assert!(ku.value.key_encipherment() && !ku.value.digital_signature());
    let bc = ek.basic_constraints().unwrap().unwrap();
    assert!(!bc.value.ca);
    let eku = ek.extended_key_usage().unwrap().unwrap();
    assert_eq!(
        eku.value
            .other
            .iter()
            .map(|o| o.to_id_string())
            .collect::<Vec<_>>(),
        vec!["2.23.133.8.1"]
    );
    let sda = ek
        .extensions()
        .iter()
        .find(|e| e.oid.to_id_string() == "2.5.29.9")
        .expect("subjectDirectoryAttributes");
    assert!(!sda.critical);
    assert!(
        ek.extensions()
            .iter()
            .all(|e| { !matches!(e.parsed_extension(), ParsedExtension::ParseError { .. }) })
    );

    // The certified key is the EK public's modulus.
    let ek_public = tpm.ek_public();
    let modulus = &ek_public[ek_public.len() - 256..];
    let x509_parser::public_key::PublicKey::RSA(rsa) = ek.public_key().parsed().unwrap() else {
        panic!("EK certificate key is not RSA");
    };
    let cert_modulus = rsa.modulus.strip_prefix(&[0]).unwrap_or(rsa.modulus);
    assert_eq!(cert_modulus, modulus);
    assert_eq!(rsa.exponent, &[0x01, 0x00, 0x01]);

    // tpm2_print converts the EK public to the same SubjectPublicKeyInfo.
    let dir = TempDir::new().unwrap();
    let file = write(dir.path(), "ek.pub", &ek_public);
    let der_out = dir.path().join("ek.der").display().to_string();
    let run = tpm2_tools::run(
        "sh",
        &[
            "-c",
            &format!("tpm2_print -t TPM2B_PUBLIC -f der {file} > {der_out}"),
        ],
    )
    .unwrap();
    assert!(run.success, "{}", run.stderr);
    assert_eq!(std::fs::read(&der_out).unwrap(), ek.public_key().raw);

    // Two TPMs of one CA get different keys and serials from the same issuer.
    let other = SoftTpm::manufacture(&ca, SoftAkAlgorithm::Rsa2048).unwrap();
    let (_, other_cert) = X509Certificate::from_der(other.ek_certificate()).unwrap();
    other_cert.verify_signature(Some(int.public_key())).unwrap();
    assert_ne!(other_cert.serial, ek.serial);
    assert_ne!(other.ek_public(), tpm.ek_public());

    // write_roots puts both PEMs into the directory.
    let roots = TempDir::new().unwrap();
    ca.write_roots(roots.path()).unwrap();
    let mut files: Vec<String> = std::fs::read_dir(roots.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(
        files,
        vec![
            "rootmark-test-manufacturer-ek-intermediate.pem",
            "rootmark-test-manufacturer-ek-root.pem"
        ]
    );
    let pems = files
        .iter()
        .map(|f| std::fs::read_to_string(roots.path().join(f)).unwrap())
        .collect::<Vec<_>>();
    assert_eq!(pems, vec![ca.intermediate_pem(), ca.root_pem()]);
}

#[test]
fn public_areas_follow_the_templates() {
    let (_ca, mut tpm, _log) = booted(SoftAkAlgorithm::EccP256);
    let dir = TempDir::new().unwrap();

    // EK: TCG template L-1.
    let ek = tpm.ek_public();
    let mut expected = hex::decode(concat!(
        "013a", // TPM2B size 314
        "0001000b000300b2",
        "0020837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa",
        "000600800043", // AES-128-CFB
        "0010",         // scheme NULL
        "0800",         // 2048 bits
        "00000000",     // exponent default
        "0100"
    ))
    .unwrap();
    expected.extend_from_slice(&ek[expected.len()..]);
    assert_eq!(ek, expected);
    assert_eq!(ek.len(), 316);

    // AK (ECC): restricted ECDSA-SHA256 signing key, symmetric NULL.
    let ak = tpm.ak_public();
    assert_eq!(
        hex::encode(&ak[..24]),
        concat!(
            "0058",
            "0023000b00050072",
            "0000",
            "0010",
            "0018000b",
            "0003",
            "0010",
            "0020"
        )
    );
    assert_eq!(ak.len(), 2 + 0x58);
    let (tpmt, _) = tpm2b(&ak);
    let mut name = vec![0x00, 0x0b];
    name.extend_from_slice(&Sha256::digest(tpmt));
    assert_eq!(tpm.ak_name(), name);

    // AK (RSA).
    let rsa = SoftTpm::manufacture(&SoftEkCa::new("x").unwrap(), SoftAkAlgorithm::Rsa2048).unwrap();
    let ak = rsa.ak_public();
    assert_eq!(
        hex::encode(&ak[..26]),
        concat!(
            "0118",
            "0001000b00050072",
            "0000",
            "0010",
            "0014000b",
            "0800",
            "00000000",
            "0100"
        )
    );

    // Node key: attributes, scheme, policy.
    let node = tpm.create_node_key(&[7, 0, 2, 4, 4]);
    assert_eq!(
        hex::encode(&node[..12]),
        concat!("0078", "0023000b00040432", "0020")
    );
    let values: BTreeMap<u32, Vec<u8>> = [0, 2, 4, 7]
        .into_iter()
        .map(|i| (i, tpm.pcr(Bank::Sha256, i).to_vec()))
        .collect();
    assert_eq!(auth_policy(&node), policy_pcr_digest(&values));
    assert_eq!(node, tpm.node_key_public());
    let (tpmt, _) = tpm2b(&node);
    assert_eq!(tpm.node_key_name()[2..], Sha256::digest(tpmt)[..]);
    assert_eq!(
        hex::encode(&tpmt[42..52]),
        concat!("0010", "0018000b", "0003", "0010")
    );

    for (name, public) in [
        ("ek", tpm.ek_public()),
        ("ak", tpm.ak_public()),
        ("node", node),
    ] {
        let yaml = tpm2_print(dir.path(), name, "TPM2B_PUBLIC", &public);
        assert!(yaml.contains("fixedtpm"), "{yaml}");
    }
}

#[test]
fn node_key_policy_matches_the_hand_computed_vector() {
    let ca = SoftEkCa::new("Vector Test").unwrap();
    let mut tpm = SoftTpm::manufacture(&ca, SoftAkAlgorithm::EccP256).unwrap();
    // PolicyPCR over sha256:0 with PCR 0 = zeros.
    let node = tpm.create_node_key(&[0]);
    assert_eq!(
        hex::encode(auth_policy(&node)),
        "093ceb41181d47808862d7946268ee6a17a10e3d1b79b32351bc56e4beaceff0"
    );
    let zero: BTreeMap<u32, Vec<u8>> = [(0, vec![0; 32])].into();
    assert_eq!(
        hex::encode(policy_pcr_digest(&zero)),
        "093ceb41181d47808862d7946268ee6a17a10e3d1b79b32351bc56e4beaceff0"
    );
}

#[test]
fn certify_names_the_node_key_and_is_signed_by_the_ak() {
    let (_ca, mut tpm, _log) = booted(SoftAkAlgorithm::EccP256);
    let node = tpm.create_node_key(&[0, 2, 4, 7]);
    let (attest, signature) = tpm.certify_node_key(b"certify nonce");
    let a = parse_attest(&attest);
    assert_eq!(
        (a.magic, a.tag, a.extra.as_slice()),
        (0xff54_4347, 0x8017, &b"certify nonce"[..])
    );
    let (certified, rest) = tpm2b(&a.body);
    let (qualified, rest) = tpm2b(rest);
    assert!(rest.is_empty());
    assert_eq!(certified, tpm.node_key_name());
    let (tpmt, _) = tpm2b(&node);
    assert_eq!(certified[2..], Sha256::digest(tpmt)[..]);
    assert_eq!((qualified.len(), &qualified[..2]), (34, &[0x00, 0x0b][..]));

    // Verify the ECDSA signature with the p256 crate (not aws-lc).
    use p256::ecdsa::signature::Verifier;
    let ak = tpm.ak_public();
    let (tpmt, _) = tpm2b(&ak);
    let (x, rest) = tpm2b(&tpmt[20..]);
    let (y, _) = tpm2b(rest);
    let point = [&[0x04][..], x, y].concat();
    let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(&point).unwrap();
    assert_eq!(&signature[..4], &[0x00, 0x18, 0x00, 0x0b]);
    let (r, rest) = tpm2b(&signature[4..]);
    let (s, _) = tpm2b(rest);
    let sig = p256::ecdsa::Signature::from_scalars(
        <[u8; 32]>::try_from(r).unwrap(),
        <[u8; 32]>::try_from(s).unwrap(),
    )
    .unwrap();
    key.verify(&attest, &sig).unwrap();
    let mut tampered = attest.clone();
    tampered[10] ^= 1;
    assert!(key.verify(&tampered, &sig).is_err());
    // (tpm2_print 5.4 only decodes quote bodies, so no tool check here.)
}

#[test]
fn reboot_resets_pcrs_and_counts_resets() {
    let (_ca, mut tpm, log) = booted(SoftAkAlgorithm::EccP256);
    assert_eq!(tpm.pcr(Bank::Sha256, 17), [0xff; 32]);
    assert_eq!(tpm.pcr(Bank::Sha1, 23), [0; 20]);
    assert_eq!(tpm.pcr(Bank::Sha256, 24), &[] as &[u8]);
    let (before, _, _) = tpm.quote(&[(Bank::Sha256, vec![0])], b"1");
    tpm.reboot();
    assert_eq!(tpm.pcr(Bank::Sha256, 0), [0; 32]);
    assert_eq!(tpm.pcr(Bank::Sha1, 4), [0; 20]);
    assert_eq!(tpm.reset_count(), 1);
    tpm.boot(&log);
    assert_eq!(
        tpm.pcr(Bank::Sha256, 4),
        log.expected_pcrs(Bank::Sha256)[&4]
    );
    let (after, _, _) = tpm.quote(&[(Bank::Sha256, vec![0])], b"1");
    let (b, a) = (parse_attest(&before), parse_attest(&after));
    assert_eq!((b.reset_count, a.reset_count), (0, 1));
    assert_eq!(a.restart_count, 0);
    assert!(a.clock >= b.clock);
    assert_eq!(a.firmware, b.firmware);
}

#[test]
fn extend_is_tpm2_pcr_extend_and_checks_its_input() {
    let ca = SoftEkCa::new("Extend").unwrap();
    let mut tpm = SoftTpm::manufacture(&ca, SoftAkAlgorithm::EccP256).unwrap();
    let d1 = Sha256::digest(b"event").to_vec();
    let d0 = sha1::Sha1::digest(b"event").to_vec();
    tpm.extend(16, &[(Bank::Sha1, d0.clone()), (Bank::Sha256, d1.clone())])
        .unwrap();
    let expected = Sha256::digest([[0u8; 32].as_slice(), &d1].concat());
    assert_eq!(tpm.pcr(Bank::Sha256, 16), &expected[..]);
    let expected = sha1::Sha1::digest([[0u8; 20].as_slice(), &d0].concat());
    assert_eq!(tpm.pcr(Bank::Sha1, 16), &expected[..]);

    assert!(matches!(
        tpm.extend(24, &[(Bank::Sha256, d1.clone())]),
        Err(SoftTpmError::BadPcr(24))
    ));
    // A wrong-length digest changes nothing, not even the banks before it.
    let before = tpm.pcr(Bank::Sha256, 3).to_vec();
    assert!(matches!(
        tpm.extend(3, &[(Bank::Sha256, d1), (Bank::Sha1, vec![0; 32])]),
        Err(SoftTpmError::BadDigest { .. })
    ));
    assert_eq!(tpm.pcr(Bank::Sha256, 3), before);
}

#[test]
fn startup_locality_sets_pcr0() {
    let ca = SoftEkCa::new("Locality").unwrap();
    let mut tpm = SoftTpm::manufacture(&ca, SoftAkAlgorithm::EccP256).unwrap();
    let log = BootLog::simulate(&BootProfile {
        startup_locality: Some(3),
        ..BootProfile::default()
    });
    tpm.boot(&log);
    for bank in Bank::ALL {
        for (index, value) in log.expected_pcrs(bank) {
            assert_eq!(tpm.pcr(bank, index), value, "{bank:?}:{index}");
        }
    }
}

/// Parses the trailing `pcrs:` section of `tpm2_eventlog` output.
fn eventlog_pcrs(yaml: &str) -> BTreeMap<String, BTreeMap<u32, Vec<u8>>> {
    let mut banks: BTreeMap<String, BTreeMap<u32, Vec<u8>>> = BTreeMap::new();
    let mut current = None;
    let mut in_pcrs = false;
    for line in yaml.lines() {
        if line == "pcrs:" {
            in_pcrs = true;
            continue;
        }
        if !in_pcrs {
            continue;
        }
        let trimmed = line.trim();
        if let Some(bank) = trimmed.strip_suffix(':') {
            current = Some(bank.to_owned());
        } else if let Some((index, value)) = trimmed.split_once(':') {
            let value = hex::decode(value.trim().trim_start_matches("0x")).unwrap();
            banks
                .entry(current.clone().unwrap())
                .or_default()
                .insert(index.trim().parse().unwrap(), value);
        }
    }
    banks
}

#[test]
fn large_boot_log_is_accepted_by_tpm2_eventlog_and_replays_into_the_soft_tpm() {
    let profile = BootProfile::default();
    let small = BootLog::simulate(&profile);
    assert_eq!(BootLog::simulate_large(&profile, 0), small);
    let log = BootLog::simulate_large(&profile, 150);
    assert_eq!(log.events().len(), 150);
    assert_eq!(log, BootLog::simulate_large(&profile, 150), "deterministic");
    let drivers = log
        .events()
        .iter()
        .filter(|e| e.event_type == event_type::EV_EFI_BOOT_SERVICES_DRIVER)
        .count();
    assert!(drivers >= 60, "{drivers} option ROM drivers");
    assert!(log.events()[..drivers].iter().all(|e| e.pcr != 4));
    // Only PCRs 0 and 2 change.
    for bank in Bank::ALL {
        let (s, l) = (small.expected_pcrs(bank), log.expected_pcrs(bank));
        for (index, value) in &s {
            if [0, 2].contains(index) {
                assert_ne!(&l[index], value);
            } else {
                assert_eq!(&l[index], value);
            }
        }
    }

    let dir = TempDir::new().unwrap();
    let file = dir.path().join("large.log");
    log.write_to(&file).unwrap();
    let run = tpm2_tools::run("tpm2_eventlog", &[file.to_str().unwrap()]).unwrap();
    assert!(run.success, "tpm2_eventlog refused: {}", run.stderr);
    assert!(!run.stderr.contains("WARN"), "{}", run.stderr);
    assert!(run.stdout.contains("EV_EFI_BOOT_SERVICES_DRIVER"));
    assert!(run.stdout.contains("DevicePath"), "device paths decoded");
    let tool = eventlog_pcrs(&run.stdout);

    let ca = SoftEkCa::new("Large").unwrap();
    let mut tpm = SoftTpm::manufacture(&ca, SoftAkAlgorithm::EccP256).unwrap();
    tpm.boot(&log);
    for (bank, name) in [(Bank::Sha1, "sha1"), (Bank::Sha256, "sha256")] {
        assert_eq!(tool[name], log.expected_pcrs(bank), "{name}");
        for (index, value) in &tool[name] {
            assert_eq!(tpm.pcr(bank, *index), value.as_slice(), "{name}:{index}");
        }
    }
}

/// The soft TPM and a real swtpm (through the attestor's TPM layer) booted
/// with the same log produce the same structures: identical bytes except
/// where keys, clocks and names necessarily differ.
#[test]
fn evidence_has_the_same_shape_as_a_real_swtpms() {
    let profile = BootProfile::default();
    let log = BootLog::simulate(&profile);
    let swtpm = Swtpm::start().unwrap();
    let mut real = Tpm::open(&swtpm.tcti()).unwrap();
    measure::extend_boot(real.context_mut(), &log).unwrap();

    for (real_alg, soft_alg) in [
        (AkAlgorithm::EccP256, SoftAkAlgorithm::EccP256),
        (AkAlgorithm::Rsa2048, SoftAkAlgorithm::Rsa2048),
    ] {
        let ca = SoftEkCa::new("Shape").unwrap();
        let mut soft = SoftTpm::manufacture(&ca, soft_alg).unwrap();
        soft.boot(&log);

        // EK public: same template; only the modulus differs.
        let endorsement = real.endorsement(Some(EkAlgorithm::Rsa2048)).unwrap();
        let soft_ek = soft.ek_public();
        assert_eq!(endorsement.public.len(), soft_ek.len());
        assert_eq!(endorsement.public[..60], soft_ek[..60]);

        // AK public: same up to the unique field.
        let ak = real.create_ak(EkAlgorithm::Rsa2048, real_alg).unwrap();
        let real_ak = ak.public_bytes().unwrap();
        let soft_ak = soft.ak_public();
        assert_eq!(real_ak.len(), soft_ak.len(), "{real_alg}");
        let unique_at = match soft_alg {
            SoftAkAlgorithm::EccP256 => soft_ak.len() - 68,
            SoftAkAlgorithm::Rsa2048 => soft_ak.len() - 258,
        };
        assert_eq!(real_ak[..unique_at], soft_ak[..unique_at], "{real_alg}");
        assert_eq!(ak.name().unwrap().len(), soft.ak_name().len());

        // Node key: same template and the very same authPolicy (same PCRs).
        let boot_pcrs = PcrSelection::default_boot();
        let real_node = real.create_node_key(&boot_pcrs).unwrap();
        let real_node_pub = real_node.public_bytes().unwrap();
        let soft_node_pub = soft.create_node_key(&[0, 2, 4, 7]);
        assert_eq!(real_node_pub.len(), soft_node_pub.len());
        assert_eq!(
            real_node_pub[..real_node_pub.len() - 68],
            soft_node_pub[..soft_node_pub.len() - 68]
        );
        assert_eq!(real_node.auth_policy(), auth_policy(&soft_node_pub));

        // Quote: same layout, same PCR selection and digest.
        let selection: PcrSelection = "sha1:0,1,2,3,4,5,6,7+sha256:0,1,2,3,4,5,6,7,8,9"
            .parse()
            .unwrap();
        let real_quote = real.quote(&ak, &selection, &NONCE).unwrap();
        let (soft_attest, soft_sig, soft_values) = soft.quote(&boot_selection(), &NONCE);
        let (r, s) = (parse_attest(&real_quote.attest), parse_attest(&soft_attest));
        assert_eq!(real_quote.attest.len(), soft_attest.len());
        assert_eq!((r.magic, r.tag, r.safe), (s.magic, s.tag, s.safe));
        assert_eq!(r.signer.len(), s.signer.len());
        assert_eq!(r.extra, s.extra);
        assert_eq!(r.body, s.body, "same TPML_PCR_SELECTION and pcrDigest");
        assert_eq!(real_quote.signature.len(), soft_sig.len());
        assert_eq!(real_quote.signature[..4], soft_sig[..4]);
        for ((bank, index), value) in &soft_values {
            let bank = match bank {
                Bank::Sha1 => PcrBank::Sha1,
                Bank::Sha256 => PcrBank::Sha256,
            };
            assert_eq!(
                real_quote.pcrs.get(bank, *index as u8),
                Some(value.as_slice())
            );
        }

        // Certify: same layout.
        let real_cert = real.certify_node_key(&real_node, &ak, &NONCE).unwrap();
        let (soft_cert, soft_cert_sig) = soft.certify_node_key(&NONCE);
        assert_eq!(real_cert.attest.len(), soft_cert.len());
        let (r, s) = (parse_attest(&real_cert.attest), parse_attest(&soft_cert));
        assert_eq!(
            (r.magic, r.tag, r.extra.clone()),
            (s.magic, s.tag, s.extra.clone())
        );
        assert_eq!(r.body.len(), s.body.len());
        assert_eq!(r.body[..2], s.body[..2]);
        assert_eq!(real_cert.signature.len(), soft_cert_sig.len());
        real.flush_cached();
    }

    // The real EK certificate has the same profile shape as the soft one
    // (swtpm puts "CN=unknown" in the subject; the TCG profile and the soft
    // TPM leave it empty).
    let real_cert = real
        .endorsement(Some(EkAlgorithm::Rsa2048))
        .unwrap()
        .certificate
        .expect("swtpm EK certificate");
    let (_, real_cert) = X509Certificate::from_der(&real_cert).unwrap();
    let ca = SoftEkCa::new("Shape").unwrap();
    let soft = SoftTpm::manufacture(&ca, SoftAkAlgorithm::EccP256).unwrap();
    let (_, soft_cert) = X509Certificate::from_der(soft.ek_certificate()).unwrap();
    let extensions = |cert: &X509Certificate<'_>| {
        let mut oids: Vec<(String, bool)> = cert
            .extensions()
            .iter()
            .map(|e| (e.oid.to_id_string(), e.critical))
            .filter(|(oid, _)| oid != "2.5.29.14") // rcgen adds a subjectKeyIdentifier
            .collect();
        oids.sort();
        oids
    };
    assert_eq!(extensions(&real_cert), extensions(&soft_cert));
}
