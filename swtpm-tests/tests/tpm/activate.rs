//! TPM2_ActivateCredential against blobs made by tpm2_makecredential.

use rootmark_attestor::tpm::{AkAlgorithm, EkAlgorithm};
use rootmark_swtpm_tests::tpm2_tools;
use tss_esapi::constants::response_code::Tss2ResponseCodeKind;

use crate::common::{Host, assert_no_leaks, new_ak};

const SECRET: &[u8] = b"rootmark activation secret 32 b!";

/// Makes a credential for `name` with `tpm2_makecredential -T none` (no TPM
/// involved) and returns (TPM2B_ID_OBJECT payload, TPM2B_ENCRYPTED_SECRET payload).
fn make_credential(host: &Host, tag: &str, ek_public: &[u8], name: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let ek = host.write(&format!("{tag}.ek.pub"), ek_public);
    let secret = host.write(&format!("{tag}.secret"), SECRET);
    let out = host.path(&format!("{tag}.cred"));
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
    .expect("tpm2_makecredential runs");
    assert!(run.success, "tpm2_makecredential failed: {}", run.stderr);
    tpm2_tools::parse_credential_file(&std::fs::read(&out).unwrap()).expect("credential file")
}

#[test]
fn activate_recovers_secret_from_tpm2_makecredential() {
    let host = Host::booted();
    let mut tpm = host.open();
    let endorsement = tpm.endorsement(Some(EkAlgorithm::Rsa2048)).unwrap();
    for algorithm in [AkAlgorithm::EccP256, AkAlgorithm::Rsa2048] {
        let ak = new_ak(&mut tpm, algorithm);
        let (blob, secret) = make_credential(
            &host,
            &algorithm.to_string(),
            &endorsement.public,
            &ak.name().unwrap(),
        );
        let recovered = tpm
            .activate_credential(&ak, &blob, &secret)
            .expect("activation");
        assert_eq!(recovered.as_slice(), SECRET, "{algorithm}");
    }
    assert_no_leaks(&mut tpm);
}

#[test]
fn activate_fails_for_a_blob_made_for_another_ak_name() {
    let host = Host::booted();
    let mut tpm = host.open();
    let endorsement = tpm.endorsement(Some(EkAlgorithm::Rsa2048)).unwrap();
    let ak = new_ak(&mut tpm, AkAlgorithm::EccP256);
    let other = new_ak(&mut tpm, AkAlgorithm::EccP256);
    assert_ne!(ak.name().unwrap(), other.name().unwrap());
    let (blob, secret) =
        make_credential(&host, "other", &endorsement.public, &other.name().unwrap());
    let err = tpm
        .activate_credential(&ak, &blob, &secret)
        .expect_err("activation must fail");
    // The TPM checks the blob's HMAC, keyed from the seed and covering the AK name.
    assert_eq!(
        err.response_kind(),
        Some(Tss2ResponseCodeKind::Integrity),
        "{err}"
    );
    assert!(
        err.to_string().contains("TPM2_ActivateCredential failed"),
        "{err}"
    );
    assert!(
        err.to_string().contains("0x1df"),
        "TPM_RC_INTEGRITY for parameter 1: {err}"
    );
    assert_no_leaks(&mut tpm);
}

#[test]
fn activate_fails_for_a_blob_made_for_another_tpms_ek() {
    let host = Host::booted();
    let stranger = Host::booted();
    let stranger_ek = {
        let mut tpm = stranger.open();
        tpm.endorsement(Some(EkAlgorithm::Rsa2048)).unwrap().public
    };
    let mut tpm = host.open();
    let ak = new_ak(&mut tpm, AkAlgorithm::EccP256);
    let (blob, secret) = make_credential(&host, "stranger", &stranger_ek, &ak.name().unwrap());
    let err = tpm
        .activate_credential(&ak, &blob, &secret)
        .expect_err("activation must fail");
    // The seed was encrypted to another EK, so OAEP decryption of it fails.
    // Hardware TPMs answer TPM_RC_VALUE; libtpms (swtpm) answers TPM_RC_FAILURE.
    // Either way the TPM refused, and no secret came back.
    assert!(
        matches!(
            err.response_kind(),
            Some(
                Tss2ResponseCodeKind::Value
                    | Tss2ResponseCodeKind::Integrity
                    | Tss2ResponseCodeKind::Failure
            )
        ),
        "{err}"
    );
    assert!(err.to_string().contains("TPM2_ActivateCredential"), "{err}");
}
