//! Sealing to the boot PCRs.

use rootmark_attestor::tpm::{PcrSelection, SealedSecret};

use crate::common::{Host, assert_no_leaks};

#[test]
fn unseal_works_before_and_fails_after_a_boot_pcr_is_extended() {
    let host = Host::booted();
    let mut tpm = host.open();
    let selection = PcrSelection::default_boot();
    let sealed = tpm
        .seal(b"cache key: 32 bytes of entropy!!", &selection)
        .expect("seal");

    // Persist and reload, as the attestor does across restarts.
    let path = host.scratch.path().join("cache-key.sealed");
    sealed.blob.write(&path).unwrap();
    let sealed = SealedSecret::read(&path, selection).unwrap();

    assert_eq!(
        tpm.unseal(&sealed).expect("unseal").as_slice(),
        b"cache key: 32 bytes of entropy!!"
    );
    host.tamper_pcr(&mut tpm, 7);
    let err = tpm.unseal(&sealed).expect_err("unseal must fail");
    assert!(
        err.is_policy_failure(),
        "expected a policy failure, got: {err}"
    );
    assert!(err.to_string().contains("TPM2_Unseal"), "{err}");
    assert_no_leaks(&mut tpm);
}

#[test]
fn sealed_secret_does_not_survive_a_different_boot() {
    let mut host = Host::booted();
    let selection = PcrSelection::default_boot();
    let sealed = host.open().seal(b"secret", &selection).unwrap();
    // Reboot into a host whose kernel differs: PCR 4 ends up different.
    host.swtpm.reboot().unwrap();
    let tampered = rootmark_swtpm_tests::boot::BootLog::simulate(
        &rootmark_swtpm_tests::boot::BootProfile::default().tampered_kernel(),
    );
    let mut tpm = host.open();
    rootmark_swtpm_tests::measure::extend_boot(tpm.context_mut(), &tampered).unwrap();
    let err = tpm
        .unseal(&sealed)
        .expect_err("a different boot must not unseal");
    assert!(err.is_policy_failure(), "{err}");
}

#[test]
fn sealed_secret_survives_a_reboot_into_the_same_boot() {
    let mut host = Host::booted();
    let selection = PcrSelection::default_boot();
    let sealed = host.open().seal(b"secret", &selection).unwrap();
    host.swtpm.reboot().unwrap();
    let mut tpm = host.open();
    rootmark_swtpm_tests::measure::extend_boot(tpm.context_mut(), &host.boot).unwrap();
    assert_eq!(tpm.unseal(&sealed).unwrap().as_slice(), b"secret");
}

#[test]
fn seal_refuses_oversized_secret_by_name() {
    let host = Host::booted();
    let mut tpm = host.open();
    let err = tpm
        .seal(&[0u8; 129], &PcrSelection::default_boot())
        .unwrap_err();
    assert!(
        err.to_string().contains("secret") && err.to_string().contains("128"),
        "{err}"
    );
}

/// A TPM without a resource manager has three transient object slots.
/// With the AK and the node key cached in two of them, creating a node key,
/// sealing and unsealing each need more room than is left: the layer must
/// make room itself rather than fail with TPM_RC_OBJECT_MEMORY.
#[test]
fn create_seal_and_unseal_work_while_the_ak_and_node_key_are_cached() {
    use rootmark_attestor::tpm::{AkAlgorithm, EkAlgorithm};

    let host = Host::booted();
    let mut tpm = host.open();
    let selection = PcrSelection::default_boot();
    let ak = tpm
        .create_ak(EkAlgorithm::Rsa2048, AkAlgorithm::EccP256)
        .unwrap();
    let key = tpm.create_node_key(&selection).unwrap();
    // Certify loads (and caches) both.
    tpm.certify_node_key(&key, &ak, b"").unwrap();

    let replacement = tpm
        .create_node_key(&selection)
        .expect("create with both cached");
    tpm.certify_node_key(&replacement, &ak, b"").unwrap();
    let sealed = tpm
        .seal(b"secret", &selection)
        .expect("seal with both cached");
    tpm.certify_node_key(&replacement, &ak, b"").unwrap();
    assert_eq!(
        tpm.unseal(&sealed)
            .expect("unseal with both cached")
            .as_slice(),
        b"secret"
    );
    tpm.certify_node_key(&replacement, &ak, b"").unwrap();
    let _second_ak = tpm
        .create_ak(EkAlgorithm::Rsa2048, AkAlgorithm::EccP256)
        .expect("create an AK with both cached");
    assert_no_leaks(&mut tpm);
}
