//! Quote verification against real TPM output: quotes made by swtpm through
//! the attestor's TPM layer and through tpm2-tools, and a real Windows
//! machine's quote. Every tampering is refused for its own reason.
#![allow(clippy::unwrap_used)] // tests and benches fail loudly by design

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rootmark_attestor::tpm::{AkAlgorithm, EkAlgorithm, PcrSelection as AttestorSelection, Tpm};
use rootmark_issuer::pcr::PcrValues;
use rootmark_issuer::quote::{QuoteError, verify_quote};
use rootmark_issuer::tpm::{HashAlg, TpmtPublic};
use rootmark_issuer::tpm2_tools::{PemTemplate, load_public, parse_pcr_file};
use rootmark_swtpm_tests::Swtpm;
use rootmark_swtpm_tests::boot::{BootLog, BootProfile};
use rootmark_swtpm_tests::measure;

const NONCE: &[u8] = b"fresh issuer nonce 0123456789abc";

/// A quote made by the attestor's TPM layer, as the issuer receives it.
struct Evidence {
    ak: TpmtPublic,
    attest: Vec<u8>,
    signature: Vec<u8>,
    pcrs: PcrValues,
}

fn convert(values: &rootmark_attestor::tpm::PcrValues) -> PcrValues {
    let mut out = PcrValues::new();
    for (bank, pcrs) in &values.banks {
        let bank: HashAlg = bank.name().parse().unwrap();
        for (index, value) in pcrs {
            out.entry(bank)
                .or_default()
                .insert(u32::from(*index), value.clone());
        }
    }
    out
}

fn attestor_quote(swtpm: &Swtpm, algorithm: AkAlgorithm, nonce: &[u8]) -> Evidence {
    let mut tpm = Tpm::open(&swtpm.tcti()).unwrap();
    let ak = tpm.create_ak(EkAlgorithm::Rsa2048, algorithm).unwrap();
    let selection: AttestorSelection = "sha1:0,1,2,3,4,5,6,7+sha256:0,1,2,3,4,5,6,7,8,9"
        .parse()
        .unwrap();
    let quote = tpm.quote(&ak, &selection, nonce).unwrap();
    Evidence {
        ak: TpmtPublic::from_tpm2b(&ak.public_bytes().unwrap()).unwrap(),
        attest: quote.attest,
        signature: quote.signature,
        pcrs: convert(&quote.pcrs),
    }
}

fn booted_swtpm() -> Swtpm {
    let swtpm = Swtpm::start().unwrap();
    let mut tpm = Tpm::open(&swtpm.tcti()).unwrap();
    measure::extend_boot(
        tpm.context_mut(),
        &BootLog::simulate(&BootProfile::default()),
    )
    .unwrap();
    swtpm
}

#[test]
fn attestor_quotes_verify_for_ecc_and_rsa_aks() {
    let swtpm = booted_swtpm();
    for algorithm in [AkAlgorithm::EccP256, AkAlgorithm::Rsa2048] {
        let e = attestor_quote(&swtpm, algorithm, NONCE);
        let verified =
            verify_quote(&e.ak, &e.attest, &e.signature, &e.pcrs, NONCE).expect("genuine quote");
        assert_eq!(verified.selection.len(), 18);
        assert_eq!(verified.pcrs, e.pcrs);
        assert_eq!(verified.attest.extra_data, NONCE);
    }
}

#[test]
fn tampered_quotes_are_refused_for_the_matching_reason() {
    let swtpm = booted_swtpm();
    let e = attestor_quote(&swtpm, AkAlgorithm::EccP256, NONCE);

    // Another nonce: the quote answers an older (or someone else's) challenge.
    let err = verify_quote(&e.ak, &e.attest, &e.signature, &e.pcrs, b"another nonce").unwrap_err();
    assert_eq!(err, QuoteError::NonceMismatch);

    // One reported PCR value changed.
    let mut pcrs = e.pcrs.clone();
    pcrs.get_mut(&HashAlg::Sha256).unwrap().get_mut(&4).unwrap()[0] ^= 1;
    let err = verify_quote(&e.ak, &e.attest, &e.signature, &pcrs, NONCE).unwrap_err();
    assert!(matches!(err, QuoteError::PcrDigestMismatch { .. }), "{err}");

    // A PCR value left out.
    let mut pcrs = e.pcrs.clone();
    pcrs.get_mut(&HashAlg::Sha1).unwrap().remove(&7);
    let err = verify_quote(&e.ak, &e.attest, &e.signature, &pcrs, NONCE).unwrap_err();
    assert_eq!(
        err,
        QuoteError::MissingPcrValue {
            bank: HashAlg::Sha1,
            pcr: 7
        }
    );

    // A flipped bit in the signature.
    let mut signature = e.signature.clone();
    let last = signature.len() - 1;
    signature[last] ^= 1;
    let err = verify_quote(&e.ak, &e.attest, &signature, &e.pcrs, NONCE).unwrap_err();
    assert!(matches!(err, QuoteError::BadSignature(_)), "{err}");

    // A flipped bit in the signed body (the clock): the signature no longer covers it.
    let mut attest = e.attest.clone();
    let clock_at = attest.len() - 60;
    attest[clock_at] ^= 1;
    let err = verify_quote(&e.ak, &attest, &e.signature, &e.pcrs, NONCE).unwrap_err();
    assert!(matches!(err, QuoteError::BadSignature(_)), "{err}");

    // A genuine quote by another AK of the same TPM.
    let other = attestor_quote(&swtpm, AkAlgorithm::EccP256, NONCE);
    let err = verify_quote(&e.ak, &other.attest, &other.signature, &other.pcrs, NONCE).unwrap_err();
    assert!(matches!(err, QuoteError::BadSignature(_)), "{err}");

    // A truncated signature is malformed, not merely invalid.
    let err = verify_quote(&e.ak, &e.attest, &e.signature[..10], &e.pcrs, NONCE).unwrap_err();
    assert!(matches!(err, QuoteError::MalformedSignature(_)), "{err}");
}

#[test]
fn pcr_values_of_another_quote_are_refused() {
    let swtpm = booted_swtpm();
    let first = attestor_quote(&swtpm, AkAlgorithm::EccP256, NONCE);
    {
        let mut tpm = Tpm::open(&swtpm.tcti()).unwrap();
        measure::extend_data(tpm.context_mut(), 4, b"later boot component").unwrap();
    }
    let second = attestor_quote(&swtpm, AkAlgorithm::EccP256, NONCE);
    assert_ne!(first.pcrs, second.pcrs);
    let err = verify_quote(
        &second.ak,
        &second.attest,
        &second.signature,
        &first.pcrs,
        NONCE,
    )
    .unwrap_err();
    assert!(matches!(err, QuoteError::PcrDigestMismatch { .. }), "{err}");
}

#[test]
fn tpm2_quote_output_files_verify_and_tampering_is_refused() {
    let swtpm = booted_swtpm();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    swtpm.tool_ok(
        d,
        &["tpm2_createek", "-c", "ek.ctx", "-G", "rsa", "-u", "ek.pub"],
    );
    swtpm.tool_ok(
        d,
        &[
            "tpm2_createak",
            "-C",
            "ek.ctx",
            "-c",
            "ak.ctx",
            "-G",
            "ecc",
            "-g",
            "sha256",
            "-s",
            "ecdsa",
            "-u",
            "ak.pub",
            "-f",
            "pem",
            "-n",
            "ak.name",
        ],
    );
    let nonce_hex = hex::encode(NONCE);
    swtpm.tool_ok(
        d,
        &[
            "tpm2_quote",
            "-c",
            "ak.ctx",
            "-l",
            "sha256:0,1,2,3,4,5,6,7,8,9+sha1:0,4,7",
            "-q",
            &nonce_hex,
            "-m",
            "quote.msg",
            "-s",
            "quote.sig",
            "-o",
            "quote.pcrs",
            "-g",
            "sha256",
        ],
    );
    let read = |name: &str| std::fs::read(d.join(name)).unwrap();

    // The AK as PEM (tpm2_createak -f pem), the PCR file in tpm2-tools' serialized format.
    let ak = load_public(&read("ak.pub"), "AK", PemTemplate::Signing).unwrap();
    let attest = read("quote.msg");
    let selection = match rootmark_issuer::tpm::TpmsAttest::from_bytes(&attest)
        .unwrap()
        .body
    {
        rootmark_issuer::tpm::AttestBody::Quote { selection, .. } => selection,
        other => panic!("{other:?}"),
    };
    let pcrs = parse_pcr_file(&read("quote.pcrs"), &selection).unwrap();
    let verified = verify_quote(&ak, &attest, &read("quote.sig"), &pcrs, NONCE)
        .expect("tpm2_quote output verifies");
    assert_eq!(
        verified.selection.to_tpm2_tools_string(),
        "sha256:0,1,2,3,4,5,6,7,8,9+sha1:0,4,7"
    );

    // The same files with another nonce, or with another quote's PCR file.
    assert_eq!(
        verify_quote(&ak, &attest, &read("quote.sig"), &pcrs, b"x").unwrap_err(),
        QuoteError::NonceMismatch
    );
    swtpm.tool_ok(
        d,
        &[
            "tpm2_quote",
            "-c",
            "ak.ctx",
            "-l",
            "sha256:0,1,2,3,4,5,6,7,8,9+sha1:0,4,7",
            "-q",
            &nonce_hex,
            "-m",
            "q2.msg",
            "-s",
            "q2.sig",
            "-o",
            "q2.pcrs",
            "-g",
            "sha256",
        ],
    );
    {
        let mut tpm = Tpm::open(&swtpm.tcti()).unwrap();
        measure::extend_data(tpm.context_mut(), 7, b"secure boot policy changed").unwrap();
    }
    swtpm.tool_ok(
        d,
        &[
            "tpm2_quote",
            "-c",
            "ak.ctx",
            "-l",
            "sha256:0,1,2,3,4,5,6,7,8,9+sha1:0,4,7",
            "-q",
            &nonce_hex,
            "-m",
            "q3.msg",
            "-s",
            "q3.sig",
            "-o",
            "q3.pcrs",
            "-g",
            "sha256",
        ],
    );
    let other_pcrs = parse_pcr_file(&read("q3.pcrs"), &selection).unwrap();
    let err = verify_quote(&ak, &attest, &read("quote.sig"), &other_pcrs, NONCE).unwrap_err();
    assert!(matches!(err, QuoteError::PcrDigestMismatch { .. }), "{err}");

    // A quote with another AK's public key.
    swtpm.tool_ok(
        d,
        &[
            "tpm2_createak",
            "-C",
            "ek.ctx",
            "-c",
            "ak2.ctx",
            "-G",
            "ecc",
            "-g",
            "sha256",
            "-s",
            "ecdsa",
            "-u",
            "ak2.pub",
        ],
    );
    let other_ak = load_public(&read("ak2.pub"), "AK", PemTemplate::Signing).unwrap();
    let err = verify_quote(&other_ak, &attest, &read("quote.sig"), &pcrs, NONCE).unwrap_err();
    assert!(matches!(err, QuoteError::BadSignature(_)), "{err}");
}

#[test]
fn windows_gcp_shielded_vm_quote_verifies_with_its_ak() {
    let dump: serde_json::Value = serde_json::from_slice(
        &std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/testdata/eventlogs/windows_gcp_shielded_vm.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let b64 = |v: &serde_json::Value| B64.decode(v.as_str().unwrap()).unwrap();
    let ak = TpmtPublic::from_tpmt(&b64(&dump["AK"]["Public"])).unwrap();
    let attest = b64(&dump["Quote"]["Quote"]);
    let signature = b64(&dump["Quote"]["Signature"]);
    // go-attestation's DigestAlg is Go's crypto.Hash: 3 = SHA-1, 5 = SHA-256.
    let mut pcrs = PcrValues::new();
    for pcr in dump["Log"]["PCRs"].as_array().unwrap() {
        let bank = match pcr["DigestAlg"].as_u64().unwrap() {
            3 => HashAlg::Sha1,
            5 => HashAlg::Sha256,
            other => panic!("DigestAlg {other}"),
        };
        pcrs.entry(bank)
            .or_default()
            .insert(pcr["Index"].as_u64().unwrap() as u32, b64(&pcr["Digest"]));
    }
    let verified =
        verify_quote(&ak, &attest, &signature, &pcrs, b"").expect("the real quote verifies");
    assert_eq!(verified.selection.banks[0].0, HashAlg::Sha1);
    assert_eq!(verified.selection.len(), 24);

    let mut tampered = pcrs.clone();
    tampered
        .get_mut(&HashAlg::Sha1)
        .unwrap()
        .get_mut(&0)
        .unwrap()[3] ^= 0x10;
    assert!(matches!(
        verify_quote(&ak, &attest, &signature, &tampered, b"").unwrap_err(),
        QuoteError::PcrDigestMismatch { .. }
    ));
}
