//! EK certificates from NV, the EK itself, and AK persistence.

use rootmark_attestor::tpm::{AkAlgorithm, EkAlgorithm, Tpm};
use tss_esapi::structures::Public;
use tss_esapi::traits::UnMarshall;
use x509_parser::prelude::{FromDer, X509Certificate};
use x509_parser::public_key::PublicKey;

use crate::common::{Host, assert_no_leaks};

#[test]
fn ek_certificate_is_read_from_nv_and_matches_the_ek() {
    let host = Host::booted();
    let mut tpm = host.open();
    let endorsement = tpm.endorsement(None).expect("endorsement");
    // swtpm_setup provisions RSA 2048 first, so auto picks it.
    assert_eq!(endorsement.algorithm, EkAlgorithm::Rsa2048);
    let der = endorsement
        .certificate
        .expect("swtpm has an EK certificate");
    let (rest, cert) = X509Certificate::from_der(&der).expect("DER certificate, padding stripped");
    assert!(rest.is_empty());

    // Issued by the per-test local CA's intermediate.
    let issuer_pem = std::fs::read(host.swtpm.ek_issuer_ca_pem_path()).unwrap();
    let (_, issuer) = x509_parser::pem::parse_x509_pem(&issuer_pem).unwrap();
    let issuer = issuer.parse_x509().unwrap();
    assert_eq!(cert.issuer(), issuer.subject());
    cert.verify_signature(Some(issuer.public_key()))
        .expect("signed by the local CA");

    // The certificate's key is the EK the layer creates from the default template.
    let ek = Public::unmarshall(&endorsement.public[2..]).unwrap();
    let Public::Rsa { unique, .. } = ek else {
        panic!("RSA EK expected")
    };
    let PublicKey::RSA(rsa) = cert.public_key().parsed().unwrap() else {
        panic!("RSA cert key")
    };
    let modulus: Vec<u8> = rsa
        .modulus
        .iter()
        .copied()
        .skip_while(|&b| b == 0)
        .collect();
    assert_eq!(modulus, unique.value());
    assert_no_leaks(&mut tpm);
}

#[test]
fn ek_certificate_absent_index_reads_as_none() {
    let host = Host::booted();
    let mut tpm = host.open();
    // swtpm_setup provisions RSA 2048 and ECC P-384 certificates, not P-256.
    assert!(
        tpm.read_ek_certificate(EkAlgorithm::EccP256)
            .unwrap()
            .is_none()
    );
    assert!(
        tpm.read_ek_certificate(EkAlgorithm::EccP384)
            .unwrap()
            .is_some()
    );
}

#[test]
fn ak_is_persisted_and_reused_across_restarts() {
    let host = Host::booted();
    let path = host.scratch.path().join("ak.blob");
    let first = {
        let mut tpm = host.open();
        let ak = tpm
            .load_or_create_ak(&path, EkAlgorithm::Rsa2048, AkAlgorithm::EccP256)
            .unwrap();
        assert_no_leaks(&mut tpm);
        ak
    };
    let mut tpm = Tpm::open(&host.swtpm.tcti()).unwrap();
    let second = tpm
        .load_or_create_ak(&path, EkAlgorithm::Rsa2048, AkAlgorithm::EccP256)
        .unwrap();
    assert_eq!(
        first.name().unwrap(),
        second.name().unwrap(),
        "same AK after restart"
    );

    // The AK has the attributes the issuer will demand.
    let public = Public::unmarshall(&second.public_bytes().unwrap()[2..]).unwrap();
    let attrs = public.object_attributes();
    assert!(
        attrs.restricted() && attrs.sign_encrypt() && attrs.fixed_tpm() && attrs.fixed_parent()
    );
    assert!(attrs.sensitive_data_origin() && !attrs.decrypt());
}

#[test]
fn ak_blob_from_another_tpm_is_refused_with_the_load_command() {
    let host = Host::booted();
    let other = Host::booted();
    let path = other.scratch.path().join("ak.blob");
    other
        .open()
        .load_or_create_ak(&path, EkAlgorithm::Rsa2048, AkAlgorithm::EccP256)
        .unwrap();
    let err = host
        .open()
        .load_or_create_ak(&path, EkAlgorithm::Rsa2048, AkAlgorithm::EccP256)
        .expect_err("another TPM's AK must not load");
    assert!(err.to_string().contains("TPM2_Load(AK)"), "{err}");
}

#[test]
fn open_refuses_swtpm_path_tcti() {
    let err = Tpm::open("swtpm:path=/tmp/sock").err().expect("refused");
    assert!(err.to_string().contains("host="), "{err}");
}
