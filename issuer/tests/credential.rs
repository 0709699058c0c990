//! MakeCredential in software, checked by real TPMs: credentials made by the
//! issuer for swtpm EKs (RSA 2048, ECC P-256, ECC P-384) must activate through
//! the attestor's TPM layer and through `tpm2_activatecredential`, and must
//! not activate for another AK's name.
#![allow(clippy::unwrap_used)] // tests and benches fail loudly by design

use rootmark_attestor::tpm::{AkAlgorithm, EkAlgorithm, Tpm};
use rootmark_issuer::credential::{MadeCredential, make_credential};
use rootmark_issuer::tpm::{EccCurve, HashAlg, PublicKey, TpmtPublic};
use rootmark_swtpm_tests::Swtpm;
use rootmark_swtpm_tests::tpm2_tools::{self, ToolRun};
use tss_esapi::constants::response_code::Tss2ResponseCodeKind;

/// A 32-byte activation secret: the largest a SHA-256 EK accepts.
const SECRET: &[u8] = b"rootmark issuer credential 32 b!";

/// On a fresh swtpm, creates the EK and an AK through the attestor, makes a
/// credential for the AK's name to the EK's TPM2B_PUBLIC, activates it
/// through the attestor, and returns the EK and the recovered secret.
fn activate_through_attestor(
    ek_algorithm: EkAlgorithm,
    ak_algorithm: AkAlgorithm,
    secret: &[u8],
) -> (TpmtPublic, Vec<u8>) {
    let swtpm = Swtpm::start().expect("swtpm starts");
    let mut tpm = Tpm::open(&swtpm.tcti()).expect("open swtpm");
    let endorsement = tpm
        .endorsement(Some(ek_algorithm))
        .expect("EK public from the TPM");
    let ek = TpmtPublic::from_tpm2b(&endorsement.public).expect("EK TPM2B_PUBLIC parses");
    let ak = tpm
        .create_ak(ek_algorithm, ak_algorithm)
        .expect("create AK");
    let made = make_credential(&ek, &ak.name().expect("AK name"), secret).expect("make credential");
    let recovered = tpm
        .activate_credential(&ak, &made.credential_blob, &made.encrypted_secret)
        .unwrap_or_else(|e| panic!("{ek_algorithm} EK: activation failed: {e}"));
    (ek, recovered.to_vec())
}

fn ecc_curve(ek: &TpmtPublic) -> Option<EccCurve> {
    match &ek.key {
        PublicKey::Ecc { curve, .. } => Some(*curve),
        _ => None,
    }
}

#[test]
fn rsa_ek_credential_activates_in_swtpm_through_attestor() {
    let (ek, recovered) =
        activate_through_attestor(EkAlgorithm::Rsa2048, AkAlgorithm::EccP256, SECRET);
    assert!(matches!(ek.key, PublicKey::Rsa { key_bits: 2048, .. }));
    assert_eq!(recovered, SECRET);
}

#[test]
fn rsa_ek_credential_for_an_rsa_ak_activates_with_a_short_secret() {
    let (_, recovered) =
        activate_through_attestor(EkAlgorithm::Rsa2048, AkAlgorithm::Rsa2048, b"x");
    assert_eq!(recovered, b"x");
}

#[test]
fn ecc_p256_ek_credential_activates_in_swtpm_through_attestor() {
    // swtpm has no P-256 EK certificate; the attestor creates the EK from the
    // TCG template all the same.
    let (ek, recovered) =
        activate_through_attestor(EkAlgorithm::EccP256, AkAlgorithm::EccP256, SECRET);
    assert_eq!(ecc_curve(&ek), Some(EccCurve::NistP256));
    assert_eq!(ek.name_alg, HashAlg::Sha256);
    assert_eq!(recovered, SECRET);
}

#[test]
fn ecc_p384_ek_credential_activates_in_swtpm_through_attestor() {
    // A P-384 EK has nameAlg SHA-384: the secret may be up to 48 bytes.
    let secret = [0x42u8; 48];
    let (ek, recovered) =
        activate_through_attestor(EkAlgorithm::EccP384, AkAlgorithm::EccP256, &secret);
    assert_eq!(ecc_curve(&ek), Some(EccCurve::NistP384));
    assert_eq!(ek.name_alg, HashAlg::Sha384);
    assert_eq!(recovered, secret);
}

#[test]
fn credential_for_another_ak_name_does_not_activate() {
    let swtpm = Swtpm::start().expect("swtpm starts");
    let mut tpm = Tpm::open(&swtpm.tcti()).expect("open swtpm");
    let endorsement = tpm.endorsement(Some(EkAlgorithm::Rsa2048)).expect("EK");
    let ek = TpmtPublic::from_tpm2b(&endorsement.public).expect("EK parses");
    let ak = tpm
        .create_ak(EkAlgorithm::Rsa2048, AkAlgorithm::EccP256)
        .expect("AK");
    let other = tpm
        .create_ak(EkAlgorithm::Rsa2048, AkAlgorithm::EccP256)
        .expect("other AK");
    let other_name = other.name().expect("other AK name");
    assert_ne!(ak.name().expect("AK name"), other_name);

    let made = make_credential(&ek, &other_name, SECRET).expect("make credential");
    let err = tpm
        .activate_credential(&ak, &made.credential_blob, &made.encrypted_secret)
        .expect_err("a credential bound to another AK must not activate");
    // The integrity HMAC covers the AK name: TPM_RC_INTEGRITY on parameter 1.
    assert_eq!(
        err.response_kind(),
        Some(Tss2ResponseCodeKind::Integrity),
        "{err}"
    );
    assert!(err.to_string().contains("0x1df"), "{err}");

    // The same credential does activate for the AK it names.
    let recovered = tpm
        .activate_credential(&other, &made.credential_blob, &made.encrypted_secret)
        .expect("activation for the named AK");
    assert_eq!(recovered.as_slice(), SECRET);
}

/// tpm2-tools against one swtpm, in a scratch directory.
struct Tools {
    tcti: String,
    dir: tempfile::TempDir,
}

impl Tools {
    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    fn run(&self, tool: &str, args: &[&str]) -> ToolRun {
        let mut full = vec!["-T", &self.tcti];
        full.extend_from_slice(args);
        let run = tpm2_tools::run(tool, &full).unwrap_or_else(|e| panic!("{tool} runs: {e}"));
        assert!(run.success, "{tool} {args:?} failed: {}", run.stderr);
        run
    }

    /// swtpm has no resource manager: drop the transient objects a tool
    /// loaded from context files and left behind.
    fn flush_transients(&self) {
        self.run("tpm2_flushcontext", &["-t"]);
    }
}

/// Creates an EK (`-G ek_type`) and an ECC AK with tpm2-tools, makes a
/// credential file for the AK from `ek.pub` and `ak.name`, activates it with
/// `tpm2_activatecredential` under an EK policy session, and returns the EK
/// and what the TPM recovered.
fn activate_with_tpm2_tools(ek_type: &str) -> (TpmtPublic, Vec<u8>) {
    let swtpm = Swtpm::start().expect("swtpm starts");
    let tools = Tools {
        tcti: swtpm.tcti(),
        dir: tempfile::tempdir().expect("scratch dir"),
    };
    let (ek_ctx, ek_pub) = (tools.path("ek.ctx"), tools.path("ek.pub"));
    let (ak_ctx, ak_pub, ak_name) = (
        tools.path("ak.ctx"),
        tools.path("ak.pub"),
        tools.path("ak.name"),
    );
    tools.run(
        "tpm2_createek",
        &["-c", &ek_ctx, "-G", ek_type, "-u", &ek_pub],
    );
    tools.flush_transients();
    tools.run(
        "tpm2_createak",
        &[
            "-C", &ek_ctx, "-c", &ak_ctx, "-G", "ecc", "-g", "sha256", "-s", "ecdsa", "-u",
            &ak_pub, "-n", &ak_name,
        ],
    );
    tools.flush_transients();

    let ek = TpmtPublic::from_tpm2b(&std::fs::read(&ek_pub).expect("ek.pub")).expect("EK parses");
    let name = std::fs::read(&ak_name).expect("ak.name");
    let ak = TpmtPublic::from_tpm2b(&std::fs::read(&ak_pub).expect("ak.pub")).expect("AK parses");
    assert_eq!(ak.name(), name, "the AK name tpm2_createak wrote");

    let made = make_credential(&ek, &name, SECRET).expect("make credential");
    let file = made.to_tpm2_tools_file();
    assert_eq!(
        tpm2_tools::parse_credential_file(&file),
        Some((made.credential_blob.clone(), made.encrypted_secret.clone())),
        "the harness reads the file the same way"
    );
    assert_eq!(MadeCredential::from_tpm2_tools_file(&file), Ok(made));
    let blob = tpm2_tools::write_file(tools.dir.path(), "cred.blob", &file);

    let (session, out) = (tools.path("session.ctx"), tools.path("out.secret"));
    let policy_session = format!("session:{session}");
    tools.run(
        "tpm2_startauthsession",
        &["--policy-session", "-S", &session],
    );
    tools.run("tpm2_policysecret", &["-S", &session, "-c", "e"]);
    tools.run(
        "tpm2_activatecredential",
        &[
            "-c",
            &ak_ctx,
            "-C",
            &ek_ctx,
            "-i",
            &blob,
            "-o",
            &out,
            "-P",
            &policy_session,
        ],
    );
    tools.run("tpm2_flushcontext", &[&session]);
    tools.flush_transients();

    (ek, std::fs::read(&out).expect("out.secret"))
}

#[test]
fn rsa_ek_credential_file_activates_with_tpm2_activatecredential() {
    let (ek, recovered) = activate_with_tpm2_tools("rsa");
    assert!(matches!(ek.key, PublicKey::Rsa { key_bits: 2048, .. }));
    assert_eq!(recovered, SECRET);
}

#[test]
fn ecc_ek_credential_file_activates_with_tpm2_activatecredential() {
    let (ek, recovered) = activate_with_tpm2_tools("ecc");
    assert_eq!(ecc_curve(&ek), Some(EccCurve::NistP256));
    assert_eq!(recovered, SECRET);
}
