//! The measured-boot simulator: the PCRs it extends equal what tpm2_pcrread
//! reads, and equal the replay of the log it writes.

use rootmark_swtpm_tests::boot::{Bank, BootProfile};
use rootmark_swtpm_tests::tpm2_tools;

use crate::common::Host;

fn pcrread(host: &Host) -> Vec<(String, u32, Vec<u8>)> {
    let run = tpm2_tools::run(
        "tpm2_pcrread",
        &["-T", &host.swtpm.tcti(), "sha1:all+sha256:all"],
    )
    .expect("tpm2_pcrread runs");
    assert!(run.success, "{}", run.stderr);
    tpm2_tools::parse_pcrread(&run.stdout)
}

#[test]
fn extend_simulated_boot_matches_tpm2_pcrread() {
    let host = Host::booted();
    let read = pcrread(&host);
    assert_eq!(read.len(), 48, "24 PCRs in each of two banks");
    for (bank, name) in [(Bank::Sha1, "sha1"), (Bank::Sha256, "sha256")] {
        let expected = host.boot.expected_pcrs(bank);
        assert!(expected.len() >= 8, "the boot measures at least PCRs 0-7");
        for (index, value) in &expected {
            let actual = read
                .iter()
                .find(|(b, i, _)| b == name && i == index)
                .map(|(_, _, v)| v)
                .unwrap_or_else(|| panic!("{name}:{index} not read"));
            assert_eq!(actual, value, "{name}:{index}");
        }
        // PCRs the boot did not touch are still zero.
        for (_, index, value) in read
            .iter()
            .filter(|(b, i, _)| b == name && !expected.contains_key(i) && *i < 16)
        {
            assert!(
                value.iter().all(|&b| b == 0),
                "{name}:{index} was extended unexpectedly"
            );
        }
    }
}

#[test]
fn extend_tampered_kernel_changes_pcr4_but_no_firmware_pcr() {
    let good = Host::booted();
    let bad = Host::booted_with(&BootProfile::default().tampered_kernel());
    let good = pcrread(&good);
    let bad = pcrread(&bad);
    let differs = |index: u32| {
        let pick = |read: &Vec<(String, u32, Vec<u8>)>| {
            read.iter()
                .find(|(b, i, _)| b == "sha256" && *i == index)
                .map(|(_, _, v)| v.clone())
        };
        pick(&good) != pick(&bad)
    };
    assert!(differs(4), "PCR 4 must reflect the kernel");
    for index in [0, 1, 2, 3, 5, 6, 7] {
        assert!(!differs(index), "PCR {index} must not depend on the kernel");
    }
}

#[test]
fn extend_writes_a_log_whose_replay_matches_the_tpm() {
    let host = Host::booted();
    let path = host.scratch.path().join("binary_bios_measurements");
    host.boot.write_to(&path).unwrap();
    // The attestor reads it back through its bounded reader, unchanged.
    let bytes = rootmark_attestor::eventlog::read_event_log(&path, 1 << 20).unwrap();
    assert_eq!(bytes, host.boot.to_bytes());
    // tpm2_eventlog's replay of that file equals what the TPM holds.
    let run = tpm2_tools::run("tpm2_eventlog", &[path.to_str().unwrap()]).unwrap();
    assert!(run.success, "{}", run.stderr);
    let pcrs_section = run
        .stdout
        .split("pcrs:")
        .nth(1)
        .expect("tpm2_eventlog prints pcrs");
    let replayed = tpm2_tools::parse_pcrread(pcrs_section);
    let read = pcrread(&host);
    assert!(!replayed.is_empty());
    for (bank, index, value) in &replayed {
        let actual = read
            .iter()
            .find(|(b, i, _)| b == bank && i == index)
            .map(|(_, _, v)| v);
        assert_eq!(actual, Some(value), "{bank}:{index}");
    }
}
