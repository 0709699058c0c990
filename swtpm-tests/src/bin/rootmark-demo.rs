//! `./dev/demo`: manufactures a swtpm, boots a simulated host into it, and
//! walks the attestor's TPM layer through what a node does on first contact.
//!
//! Later issues grow this into the full demo (issuer, attestor daemon and a
//! workload fetching its SVID).

use anyhow::{Context as _, Result};
use rootmark_attestor::tpm::{AkAlgorithm, PcrSelection, Tpm};
use rootmark_swtpm_tests::Swtpm;
use rootmark_swtpm_tests::boot::{BootLog, BootProfile};
use rootmark_swtpm_tests::measure;
use sha2::{Digest as _, Sha256};
use x509_parser::prelude::{FromDer, X509Certificate};

fn main() -> Result<()> {
    if std::env::args().any(|a| a == "--help" || a == "-h") {
        println!(
            "rootmark-demo: manufacture a swtpm with a private EK CA, measure a simulated boot into it,\n\
             then read the EK certificate, create an AK, quote the boot PCRs and certify a PCR-bound node key.\n\
             Usage: rootmark-demo   (needs swtpm and swtpm_setup on PATH; ./dev/demo installs them)"
        );
        return Ok(());
    }
    step("Manufacturing a swtpm (EK certificates from a private local CA)");
    let swtpm = Swtpm::start().context("starting swtpm")?;
    println!("    TCTI            {}", swtpm.tcti());
    println!(
        "    EK root CA      {}",
        swtpm.ek_root_ca_pem_path().display()
    );

    step("Booting a simulated host (crypto-agile TCG event log, SHA-1 and SHA-256 banks)");
    let boot = BootLog::simulate(&BootProfile::default());
    let log_path = swtpm.dir().join("binary_bios_measurements");
    boot.write_to(&log_path).context("writing the event log")?;
    let mut tpm = Tpm::open(&swtpm.tcti())?;
    measure::extend_boot(tpm.context_mut(), &boot)?;
    println!(
        "    events          {} measured into PCRs {:?}",
        boot.events().len(),
        boot.boot_pcr_indexes()
    );
    println!(
        "    event log       {} ({} bytes)",
        log_path.display(),
        boot.to_bytes().len()
    );

    step("Reading the EK certificate from NV");
    let endorsement = tpm.endorsement(None)?;
    println!("    EK type         {}", endorsement.algorithm);
    match &endorsement.certificate {
        Some(der) => {
            let (_, cert) = X509Certificate::from_der(der).context("parsing the EK certificate")?;
            println!("    EK cert issuer  {}", cert.issuer());
            println!("    EK cert serial  {}", cert.raw_serial_as_string());
        }
        None => println!("    EK cert         none provisioned"),
    }
    let ek_hash = hex::encode(Sha256::digest(&endorsement.public[2..]));
    println!("    node ID         spiffe://example.org/rootmark/node/{ek_hash}");

    step("Creating an ECC P-256 attestation key under the EK");
    let ak_path = swtpm.dir().join("ak.blob");
    let ak = tpm.load_or_create_ak(&ak_path, endorsement.algorithm, AkAlgorithm::EccP256)?;
    println!("    AK name         {}", hex::encode(ak.name()?));

    step("Quoting the boot PCRs over an issuer-style nonce");
    let nonce: [u8; 32] = Sha256::digest(b"rootmark demo nonce").into();
    let selection: PcrSelection = "sha256:0,1,2,3,4,5,6,7".parse()?;
    let quote = tpm.quote(&ak, &selection, &nonce)?;
    println!("    nonce           {}", hex::encode(nonce));
    println!(
        "    TPMS_ATTEST     {} bytes, signature {} bytes",
        quote.attest.len(),
        quote.signature.len()
    );
    for (bank, values) in &quote.pcrs.banks {
        for (index, value) in values {
            println!("    {bank}:{index:<2}       {}", hex::encode(value));
        }
    }

    step("Creating the node key (PolicyPCR over sha256:0,2,4,7) and certifying it with the AK");
    let node_key = tpm.create_node_key(&PcrSelection::default_boot())?;
    let certification = tpm.certify_node_key(&node_key, &ak, &nonce)?;
    println!("    node key name   {}", hex::encode(node_key.name()?));
    println!(
        "    authPolicy      {}",
        hex::encode(node_key.auth_policy())
    );
    println!(
        "    certify         {} bytes attest, {} bytes signature",
        certification.attest.len(),
        certification.signature.len()
    );
    let digest: [u8; 32] = Sha256::digest(b"hello").into();
    tpm.sign_with_node_key(&node_key, &digest)?;
    println!("    node key signs  yes (boot state matches its policy)");

    tpm.flush_cached();
    step("Done: every transient object flushed; swtpm is stopped on exit");
    Ok(())
}

fn step(text: &str) {
    println!("==> {text}");
}
