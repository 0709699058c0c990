//! TPM2_Quote: signatures verify with tpm2_checkquote and carry the nonce.

use rootmark_attestor::tpm::{AkAlgorithm, PcrBank, PcrSelection, Quote};
use rootmark_swtpm_tests::tpm2_tools;

use crate::common::{Host, assert_no_leaks, new_ak};

const NONCE: [u8; 32] = *b"issuer-nonce-0123456789abcdefghi";

/// Runs tpm2_checkquote on `quote` with `ak_public` (TPM2B_PUBLIC) and `nonce`.
fn checkquote(
    host: &Host,
    tag: &str,
    ak_public: &[u8],
    quote: &Quote,
    pcr_values: &[Vec<u8>],
    nonce: &[u8],
) -> tpm2_tools::ToolRun {
    let ak = host.write(&format!("{tag}.ak.pub"), ak_public);
    let msg = host.write(&format!("{tag}.msg"), &quote.attest);
    let sig = host.write(&format!("{tag}.sig"), &quote.signature);
    // The "serialized" format tpm2_quote -o writes (tpm2-tools 5.4 mis-hashes
    // the plain "values" format when more than eight PCRs are selected).
    let file =
        tpm2_tools::serialized_pcr_file(&quote.selection.to_tpml_bytes(), pcr_values).unwrap();
    let pcrs = host.write(&format!("{tag}.pcrs"), &file);
    let nonce = hex::encode(nonce);
    tpm2_tools::run(
        "tpm2_checkquote",
        &[
            "-u", &ak, "-m", &msg, "-s", &sig, "-f", &pcrs, "-g", "sha256", "-q", &nonce,
        ],
    )
    .expect("tpm2_checkquote runs")
}

/// The PCR values the layer reported, in selection order.
fn reported_values(quote: &Quote) -> Vec<Vec<u8>> {
    quote
        .selection
        .iter()
        .flat_map(|(bank, set)| set.iter().map(move |&i| (bank, i)))
        .map(|(bank, i)| quote.pcrs.get(bank, i).expect("value reported").to_vec())
        .collect()
}

fn boot_selection() -> PcrSelection {
    "sha1:0,1,2,3,4,5,6,7+sha256:0,1,2,3,4,5,6,7,8,9"
        .parse()
        .unwrap()
}

fn quote_verifies_with_tpm2_checkquote(algorithm: AkAlgorithm) {
    let host = Host::booted();
    let mut tpm = host.open();
    let ak = new_ak(&mut tpm, algorithm);
    let selection = boot_selection();
    let quote = tpm.quote(&ak, &selection, &NONCE).expect("quote");

    // The reported values are the simulated boot's PCRs.
    for (bank, expected) in [
        (
            PcrBank::Sha1,
            &host
                .boot
                .expected_pcrs(rootmark_swtpm_tests::boot::Bank::Sha1),
        ),
        (
            PcrBank::Sha256,
            &host
                .boot
                .expected_pcrs(rootmark_swtpm_tests::boot::Bank::Sha256),
        ),
    ] {
        for (&index, value) in expected.iter().filter(|(i, _)| **i < 8) {
            assert_eq!(
                quote.pcrs.get(bank, index as u8),
                Some(value.as_slice()),
                "{bank}:{index}"
            );
        }
    }

    let values = reported_values(&quote);
    let ak_public = ak.public_bytes().unwrap();
    let run = checkquote(&host, "good", &ak_public, &quote, &values, &NONCE);
    assert!(
        run.success,
        "tpm2_checkquote refused a genuine quote: {}{}",
        run.stdout, run.stderr
    );

    // The same quote with another nonce is refused: the nonce is in the signed body.
    let run = checkquote(
        &host,
        "nonce",
        &ak_public,
        &quote,
        &values,
        b"another nonce",
    );
    assert!(
        !run.success,
        "tpm2_checkquote accepted a quote for another nonce"
    );
    assert!(
        run.stderr.to_lowercase().contains("qualifying")
            || run.stderr.to_lowercase().contains("nonce")
            || run.stderr.to_lowercase().contains("extra"),
        "{}",
        run.stderr
    );

    // And with one PCR value changed, the PCR digest no longer matches.
    let mut tampered = values.clone();
    tampered[9][0] ^= 1;
    let run = checkquote(&host, "pcr", &ak_public, &quote, &tampered, &NONCE);
    assert!(!run.success, "tpm2_checkquote accepted tampered PCR values");
    assert!(run.stderr.to_lowercase().contains("pcr"), "{}", run.stderr);

    // The nonce is the attest body's extraData: TPMS_ATTEST = magic(4) type(2)
    // qualifiedSigner(TPM2B) extraData(TPM2B) …
    let attest = &quote.attest;
    assert_eq!(
        &attest[0..4],
        &[0xff, 0x54, 0x43, 0x47],
        "TPM_GENERATED_VALUE"
    );
    assert_eq!(&attest[4..6], &[0x80, 0x18], "TPM_ST_ATTEST_QUOTE");
    let signer_len = usize::from(u16::from_be_bytes([attest[6], attest[7]]));
    let extra_at = 8 + signer_len;
    let extra_len = usize::from(u16::from_be_bytes([attest[extra_at], attest[extra_at + 1]]));
    assert_eq!(&attest[extra_at + 2..extra_at + 2 + extra_len], &NONCE);

    assert_no_leaks(&mut tpm);
}

#[test]
fn quote_with_ecc_ak_verifies_with_tpm2_checkquote_and_carries_nonce() {
    quote_verifies_with_tpm2_checkquote(AkAlgorithm::EccP256);
}

#[test]
fn quote_with_rsa_ak_verifies_with_tpm2_checkquote_and_carries_nonce() {
    quote_verifies_with_tpm2_checkquote(AkAlgorithm::Rsa2048);
}

#[test]
fn quote_refuses_qualifying_data_over_64_bytes() {
    let host = Host::booted();
    let mut tpm = host.open();
    let ak = new_ak(&mut tpm, AkAlgorithm::EccP256);
    let err = tpm.quote(&ak, &boot_selection(), &[0u8; 65]).unwrap_err();
    assert!(err.to_string().contains("qualifying data"), "{err}");
}

#[test]
fn quote_after_extend_reports_the_new_value() {
    let host = Host::booted();
    let mut tpm = host.open();
    let ak = new_ak(&mut tpm, AkAlgorithm::EccP256);
    let selection: PcrSelection = "sha256:4".parse().unwrap();
    let before = tpm.quote(&ak, &selection, &NONCE).unwrap();
    host.tamper_pcr(&mut tpm, 4);
    let after = tpm.quote(&ak, &selection, &NONCE).unwrap();
    assert_ne!(
        before.pcrs.get(PcrBank::Sha256, 4),
        after.pcrs.get(PcrBank::Sha256, 4)
    );
    let values = reported_values(&after);
    let run = checkquote(
        &host,
        "after",
        &ak.public_bytes().unwrap(),
        &after,
        &values,
        &NONCE,
    );
    assert!(run.success, "{}{}", run.stdout, run.stderr);
}
