//! Test PKI: a CA per trust domain that issues X509-SVIDs (rcgen).
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};

use crate::bundle::X509Bundle;
use crate::id::TrustDomain;
use crate::svid::X509Svid;

/// A CA (root or intermediate) with its own chain up to the root.
pub(crate) struct TestCa {
    pub issuer: CertifiedIssuer<'static, KeyPair>,
    /// DER of this CA's certificate followed by its parents (root excluded).
    pub chain_above: Vec<Vec<u8>>,
    pub trust_domain: TrustDomain,
}

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

/// Leaf parameters as Rootmark issues them (DESIGN §4).
pub(crate) fn leaf_params(id: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, "svid");
    params.subject_alt_names = vec![SanType::URI(id.try_into().unwrap())];
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
        KeyUsagePurpose::KeyAgreement,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params
}

impl TestCa {
    pub fn new(trust_domain: &str) -> Self {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let issuer = CertifiedIssuer::self_signed(ca_params(trust_domain), key).unwrap();
        TestCa {
            issuer,
            chain_above: Vec::new(),
            trust_domain: TrustDomain::parse(trust_domain).unwrap(),
        }
    }

    /// An intermediate CA under this one.
    pub fn intermediate(&self) -> Self {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let issuer =
            CertifiedIssuer::signed_by(ca_params("intermediate"), key, &self.issuer).unwrap();
        let mut chain_above = vec![issuer.der().to_vec()];
        chain_above.extend(self.chain_above.iter().cloned());
        TestCa {
            issuer,
            chain_above,
            trust_domain: self.trust_domain.clone(),
        }
    }

    pub fn der(&self) -> Vec<u8> {
        self.issuer.der().to_vec()
    }

    pub fn bundle(&self) -> X509Bundle {
        X509Bundle::parse(self.trust_domain.clone(), &self.der()).unwrap()
    }

    /// A leaf with `params`, signed by this CA: (chain DER, PKCS#8 key).
    pub fn issue(&self, params: CertificateParams) -> (Vec<u8>, Vec<u8>) {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let mut chain = cert.der().to_vec();
        for above in &self.chain_above {
            chain.extend_from_slice(above);
        }
        (chain, key.serialize_der())
    }

    /// A valid SVID for `id`.
    pub fn svid(&self, id: &str) -> X509Svid {
        let (chain, key) = self.issue(leaf_params(id));
        X509Svid::parse(&chain, &key).unwrap()
    }
}
