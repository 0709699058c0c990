//! Shared fixtures.

use rootmark_attestor::tpm::{AkAlgorithm, AttestationKey, EkAlgorithm, Tpm};
use rootmark_swtpm_tests::Swtpm;
use rootmark_swtpm_tests::boot::{BootLog, BootProfile};
use rootmark_swtpm_tests::measure;
use tempfile::TempDir;

/// A swtpm that has "booted" a simulated host.
pub struct Host {
    pub swtpm: Swtpm,
    pub boot: BootLog,
    pub scratch: TempDir,
}

impl Host {
    /// A good host: the default boot profile measured into a fresh swtpm.
    pub fn booted() -> Host {
        Host::booted_with(&BootProfile::default())
    }

    pub fn booted_with(profile: &BootProfile) -> Host {
        let swtpm = Swtpm::start().expect("swtpm starts");
        let boot = BootLog::simulate(profile);
        {
            let mut tpm = Tpm::open(&swtpm.tcti()).expect("open swtpm");
            measure::extend_boot(tpm.context_mut(), &boot).expect("extend boot");
        }
        Host {
            swtpm,
            boot,
            scratch: tempfile::tempdir().expect("scratch dir"),
        }
    }

    pub fn open(&self) -> Tpm {
        Tpm::open(&self.swtpm.tcti()).expect("open swtpm")
    }

    /// Extends one boot PCR with unexpected data, as a tampered component would.
    pub fn tamper_pcr(&self, tpm: &mut Tpm, pcr: u32) {
        measure::extend_data(tpm.context_mut(), pcr, b"an unexpected bootkit").expect("extend");
    }

    pub fn path(&self, name: &str) -> String {
        self.scratch.path().join(name).display().to_string()
    }

    pub fn write(&self, name: &str, bytes: &[u8]) -> String {
        rootmark_swtpm_tests::tpm2_tools::write_file(self.scratch.path(), name, bytes)
    }
}

pub fn new_ak(tpm: &mut Tpm, algorithm: AkAlgorithm) -> AttestationKey {
    tpm.create_ak(EkAlgorithm::Rsa2048, algorithm)
        .expect("create AK")
}

/// Asserts the TPM holds at most the layer's two cached keys and no session.
pub fn assert_no_leaks(tpm: &mut Tpm) {
    assert!(
        tpm.loaded_transient_objects().unwrap() <= 2,
        "more transient objects than the AK and node key cache"
    );
    assert_eq!(
        tpm.loaded_sessions().unwrap(),
        0,
        "a session was left loaded"
    );
    tpm.flush_cached();
    assert_eq!(tpm.loaded_transient_objects().unwrap(), 0, "objects leaked");
}
