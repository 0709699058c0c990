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
