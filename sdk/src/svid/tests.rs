#![allow(clippy::unwrap_used)]

use rcgen::{KeyUsagePurpose, SanType};

use super::*;
use crate::test_pki::{TestCa, leaf_params};

const ID: &str = "spiffe://example.org/web";

fn parse(ca: &TestCa, params: rcgen::CertificateParams) -> Result<X509Svid, SvidError> {
    let (chain, key) = ca.issue(params);
    X509Svid::parse(&chain, &key)
}

#[test]
fn valid_svid_parses() {
    let ca = TestCa::new("example.org");
    let (chain, key) = ca.issue(leaf_params(ID));
    let svid = X509Svid::parse(&chain, &key).unwrap().with_hint("internal");
    assert_eq!(svid.spiffe_id().as_str(), ID);
    assert_eq!(svid.cert_chain().len(), 1);
    assert_eq!(svid.leaf().as_ref(), chain.as_slice());
    assert_eq!(svid.private_key_pkcs8(), key.as_slice());
    assert_eq!(svid.hint(), Some("internal"));
    assert!(svid.expiry() > UNIX_EPOCH);
    assert_eq!(svid.certified_key().cert.len(), 1);
}

#[test]
fn chain_with_intermediate_parses() {
    let root = TestCa::new("example.org");
    let intermediate = root.intermediate();
    let svid = intermediate.svid(ID);
    assert_eq!(svid.cert_chain().len(), 2);
}

#[test]
fn key_of_another_leaf_is_refused() {
    let ca = TestCa::new("example.org");
    let (chain, _) = ca.issue(leaf_params(ID));
    let (_, other_key) = ca.issue(leaf_params(ID));
    assert_eq!(
        X509Svid::parse(&chain, &other_key),
        Err(SvidError::KeyMismatch)
    );
    assert!(matches!(
        X509Svid::parse(&chain, b"not a key"),
        Err(SvidError::PrivateKey { .. })
    ));
}

#[test]
fn uri_san_rules() {
    let ca = TestCa::new("example.org");
    let mut none = leaf_params(ID);
    none.subject_alt_names = vec![SanType::DnsName("web".try_into().unwrap())];
    assert_eq!(parse(&ca, none), Err(SvidError::UriSanCount { count: 0 }));

    let mut two = leaf_params(ID);
    two.subject_alt_names.push(SanType::URI(
        "spiffe://example.org/other".try_into().unwrap(),
    ));
    assert_eq!(parse(&ca, two), Err(SvidError::UriSanCount { count: 2 }));

    let bad = leaf_params("spiffe://example.org/a/../b");
    assert!(matches!(
        parse(&ca, bad),
        Err(SvidError::BadSpiffeId { .. })
    ));
    let https = leaf_params("https://example.org/web");
    assert!(matches!(
        parse(&ca, https),
        Err(SvidError::BadSpiffeId { .. })
    ));
}

#[test]
fn leaf_must_not_be_a_ca_and_needs_digital_signature() {
    let ca = TestCa::new("example.org");
    let mut is_ca = leaf_params(ID);
    is_ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    assert_eq!(parse(&ca, is_ca), Err(SvidError::LeafIsCa));

    let mut no_usage = leaf_params(ID);
    no_usage.key_usages = vec![];
    assert!(matches!(
        parse(&ca, no_usage),
        Err(SvidError::LeafKeyUsage { .. })
    ));

    let mut cert_sign = leaf_params(ID);
    cert_sign.key_usages.push(KeyUsagePurpose::KeyCertSign);
    assert!(matches!(
        parse(&ca, cert_sign),
        Err(SvidError::LeafKeyUsage { .. })
    ));

    let mut only_encipher = leaf_params(ID);
    only_encipher.key_usages = vec![KeyUsagePurpose::KeyEncipherment];
    assert!(matches!(
        parse(&ca, only_encipher),
        Err(SvidError::LeafKeyUsage { .. })
    ));
}

#[test]
fn intermediate_must_be_a_ca() {
    let ca = TestCa::new("example.org");
    let (leaf, key) = ca.issue(leaf_params(ID));
    let (other_leaf, _) = ca.issue(leaf_params("spiffe://example.org/x"));
    let chain = [leaf, other_leaf].concat();
    assert!(matches!(
        X509Svid::parse(&chain, &key),
        Err(SvidError::Intermediate { index: 1, .. })
    ));
}

#[test]
fn malformed_chains_are_refused() {
    let ca = TestCa::new("example.org");
    let (chain, key) = ca.issue(leaf_params(ID));
    assert_eq!(X509Svid::parse(&[], &key), Err(SvidError::EmptyChain));
    assert!(matches!(
        X509Svid::parse(&chain[..chain.len() - 3], &key),
        Err(SvidError::Certificate { index: 0, .. })
    ));
    let mut trailing = chain.clone();
    trailing.extend_from_slice(&[0x30, 0x00]);
    assert!(matches!(
        X509Svid::parse(&trailing, &key),
        Err(SvidError::Certificate { index: 1, .. })
    ));
}
