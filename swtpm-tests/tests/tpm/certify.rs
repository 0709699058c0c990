//! The node key: TPM2_Certify by the AK, PolicyPCR authPolicy, and signing
//! that stops when the boot changes.

use p256::ecdsa::signature::hazmat::PrehashVerifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use rootmark_attestor::tpm::{AkAlgorithm, PcrSelection};
use rootmark_swtpm_tests::tpm2_tools;
use sha2::{Digest as _, Sha256};
use tss_esapi::structures::{AttestInfo, Public};
use tss_esapi::traits::UnMarshall;

use crate::common::{Host, assert_no_leaks, new_ak};

const NONCE: &[u8] = b"certify-nonce";

/// The ECDSA P-256 public key of a TPM2B_PUBLIC, as RustCrypto sees it.
fn verifying_key(tpm2b_public: &[u8]) -> VerifyingKey {
    let public = Public::unmarshall(&tpm2b_public[2..]).expect("TPMT_PUBLIC");
    let Public::Ecc { unique, .. } = public else {
        panic!("not ECC")
    };
    let mut point = vec![4u8];
    point.extend_from_slice(unique.x().value());
    point.extend_from_slice(unique.y().value());
    VerifyingKey::from_sec1_bytes(&point).expect("P-256 point")
}

/// Extracts (r, s) from a marshalled TPMT_SIGNATURE of type ECDSA.
fn ecdsa_signature(tpmt_signature: &[u8]) -> Signature {
    assert_eq!(&tpmt_signature[0..2], &[0x00, 0x18], "TPM_ALG_ECDSA");
    let rest = &tpmt_signature[4..];
    let r_len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
    let r = &rest[2..2 + r_len];
    let rest = &rest[2 + r_len..];
    let s_len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
    let s = &rest[2..2 + s_len];
    let mut fixed = [0u8; 64];
    fixed[32 - r.len()..32].copy_from_slice(r);
    fixed[64 - s.len()..].copy_from_slice(s);
    Signature::from_slice(&fixed).expect("signature")
}

/// The PolicyPCR digest tpm2_createpolicy computes over the TPM's current PCRs.
fn createpolicy_digest(host: &Host, selection: &PcrSelection) -> Vec<u8> {
    let out = host.path("policy.digest");
    let run = tpm2_tools::run(
        "tpm2_createpolicy",
        &[
            "-T",
            &host.swtpm.tcti(),
            "--policy-pcr",
            "-l",
            &selection.to_string(),
            "-L",
            &out,
        ],
    )
    .expect("tpm2_createpolicy runs");
    assert!(run.success, "{}", run.stderr);
    std::fs::read(out).unwrap()
}

#[test]
fn certify_names_the_node_key_and_policy_is_pcr_policy_over_boot_pcrs() {
    let host = Host::booted();
    let selection = PcrSelection::default_boot();
    let (node_key, ak, certification) = {
        let mut tpm = host.open();
        let ak = new_ak(&mut tpm, AkAlgorithm::EccP256);
        let node_key = tpm.create_node_key(&selection).expect("node key");
        let certification = tpm
            .certify_node_key(&node_key, &ak, NONCE)
            .expect("certify");
        assert_no_leaks(&mut tpm);
        (node_key, ak, certification)
    };

    // Signed by the AK.
    let digest = Sha256::digest(&certification.attest);
    verifying_key(&ak.public_bytes().unwrap())
        .verify_prehash(&digest, &ecdsa_signature(&certification.signature))
        .expect("certify signature verifies with the AK");

    // A certify body for the node key's name, with our nonce.
    let attest = tss_esapi::structures::Attest::unmarshall(&certification.attest).unwrap();
    assert_eq!(attest.extra_data().value(), NONCE);
    let AttestInfo::Certify { info } = attest.attested() else {
        panic!("not TPM_ST_ATTEST_CERTIFY")
    };
    let mut name = vec![0x00, 0x0B];
    name.extend_from_slice(&Sha256::digest(&node_key.public_bytes().unwrap()[2..]));
    assert_eq!(
        info.name().value(),
        name.as_slice(),
        "certified name is the node key's"
    );
    assert_eq!(node_key.name().unwrap(), name);

    // authPolicy = PolicyPCR over the current boot PCRs, as tpm2-tools computes it.
    assert_eq!(
        node_key.auth_policy(),
        createpolicy_digest(&host, &selection)
    );

    // Attributes: fixedTPM, fixedParent, sign, userWithAuth clear, adminWithPolicy clear.
    let public = Public::unmarshall(&node_key.public_bytes().unwrap()[2..]).unwrap();
    let attrs = public.object_attributes();
    assert!(
        attrs.fixed_tpm()
            && attrs.fixed_parent()
            && attrs.sensitive_data_origin()
            && attrs.sign_encrypt()
    );
    assert!(
        !attrs.user_with_auth()
            && !attrs.admin_with_policy()
            && !attrs.decrypt()
            && !attrs.restricted()
    );
}

#[test]
fn node_key_signs_in_the_boot_state_and_refuses_after_a_boot_pcr_changes() {
    let host = Host::booted();
    let mut tpm = host.open();
    let node_key = tpm.create_node_key(&PcrSelection::default_boot()).unwrap();
    let digest: [u8; 32] = Sha256::digest(b"TLS handshake transcript").into();

    let signature = tpm
        .sign_with_node_key(&node_key, &digest)
        .expect("sign in boot state");
    let key = VerifyingKey::from_sec1_bytes(&node_key.public_point().unwrap()).unwrap();
    let signature = Signature::from_slice(&signature.to_fixed_bytes().unwrap()).unwrap();
    key.verify_prehash(&digest, &signature)
        .expect("node key signature verifies");

    host.tamper_pcr(&mut tpm, 4);
    let err = tpm
        .sign_with_node_key(&node_key, &digest)
        .expect_err("sign must fail");
    assert!(
        err.is_policy_failure(),
        "expected a policy failure, got: {err}"
    );
    // The error names the command and the TPM's response code (TPM_RC_POLICY_FAIL, session 1).
    assert!(
        err.to_string().contains("TPM2_Sign(node key) failed"),
        "{err}"
    );
    assert!(err.to_string().contains("0x99d"), "{err}");
    assert_no_leaks(&mut tpm);
}

#[test]
fn node_key_ignores_changes_to_pcrs_outside_its_policy() {
    let host = Host::booted();
    let mut tpm = host.open();
    let node_key = tpm.create_node_key(&PcrSelection::default_boot()).unwrap();
    host.tamper_pcr(&mut tpm, 9);
    let digest: [u8; 32] = Sha256::digest(b"still fine").into();
    tpm.sign_with_node_key(&node_key, &digest)
        .expect("PCR 9 is not in the policy");
}
