//! The X.509 CA: its certificates, their rotation and persistence, and
//! X509-SVID minting.

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use aws_lc_rs::digest;
use aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rootmark_sdk::id::{SpiffeId, TrustDomain};
use serde::{Deserialize, Serialize};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::FromDer;

use super::der::{self, oid, tag};
use super::keys::{self, CertSigner, P256Key};
use super::rotation::{CaRotation, KeyState, KeyWindow, RotationSlot};
use super::workload::WorkloadKey;
use super::{
    BACKDATE, CaError, Clock, DEFAULT_CA_TTL, MAX_DNS_NAMES, RotationReport, from_unix_seconds,
    random_bytes, random_id, unix_seconds,
};

/// Name of the X.509 CA state file in the key directory.
const MANIFEST: &str = "x509-ca.json";

/// Longest CN/O attribute accepted (RFC 5280 upper bounds: 64).
const MAX_NAME_ATTRIBUTE: usize = 64;

/// Configuration of the X.509 CA.
#[derive(Clone)]
#[non_exhaustive]
pub struct X509CaConfig {
    /// The trust domain; the CA certificates carry its ID as URI SAN and
    /// only its members get SVIDs.
    pub trust_domain: TrustDomain,
    /// CA certificate subject CN.
    pub common_name: String,
    /// CA certificate subject O, also the O of every SVID's subject.
    pub organization: String,
    /// Lifetime of each CA certificate (capped at the upstream CA's
    /// expiry); rotation happens at 1/2 and 5/6 of it.
    pub ca_ttl: Duration,
    /// Sign as an intermediate under this CA instead of self-signing.
    pub upstream: Option<UpstreamCa>,
}

impl X509CaConfig {
    /// The defaults: self-signed, CN "Rootmark CA", O "Rootmark", 24 h.
    pub fn new(trust_domain: TrustDomain) -> Self {
        Self {
            trust_domain,
            common_name: "Rootmark CA".into(),
            organization: "Rootmark".into(),
            ca_ttl: DEFAULT_CA_TTL,
            upstream: None,
        }
    }

    /// Sets the CA subject CN.
    pub fn with_common_name(mut self, common_name: impl Into<String>) -> Self {
        self.common_name = common_name.into();
        self
    }

    /// Sets the CA subject O (and the SVIDs' O).
    pub fn with_organization(mut self, organization: impl Into<String>) -> Self {
        self.organization = organization.into();
        self
    }

    /// Sets the CA certificate lifetime.
    pub fn with_ca_ttl(mut self, ca_ttl: Duration) -> Self {
        self.ca_ttl = ca_ttl;
        self
    }

    /// Signs under an upstream CA.
    pub fn with_upstream(mut self, upstream: UpstreamCa) -> Self {
        self.upstream = Some(upstream);
        self
    }

    fn validate(&self) -> Result<(), CaError> {
        for (field, value) in [
            ("common_name", &self.common_name),
            ("organization", &self.organization),
        ] {
            if value.is_empty()
                || value.len() > MAX_NAME_ATTRIBUTE
                || value.chars().any(char::is_control)
            {
                return Err(CaError::invalid(
                    field,
                    "1 to 64 bytes without control characters",
                    value,
                ));
            }
        }
        if self.ca_ttl < Duration::from_secs(60) {
            return Err(CaError::invalid(
                "ca_ttl",
                "at least 60 seconds",
                format!("{:?}", self.ca_ttl),
            ));
        }
        Ok(())
    }
}

impl std::fmt::Debug for X509CaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("X509CaConfig")
            .field("trust_domain", &self.trust_domain)
            .field("common_name", &self.common_name)
            .field("organization", &self.organization)
            .field("ca_ttl", &self.ca_ttl)
            .field("upstream", &self.upstream)
            .finish()
    }
}

/// An upstream CA the X.509 CA is an intermediate of: its certificate, its
/// private key, and the roots verifiers trust (which become the bundle).
#[derive(Clone)]
pub struct UpstreamCa {
    inner: Arc<UpstreamInner>,
}

struct UpstreamInner {
    signer: CertSigner,
    certificate: Vec<u8>,
    subject: Vec<u8>,
    key_id: Vec<u8>,
    window: KeyWindow,
    /// Upstream certificates an SVID chain carries after our intermediate.
    chain_tail: Vec<Vec<u8>>,
    roots: Vec<Vec<u8>>,
}

impl std::fmt::Debug for UpstreamCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamCa")
            .field("window", &self.inner.window)
            .field("chain_tail", &self.inner.chain_tail.len())
            .field("roots", &self.inner.roots.len())
            .finish_non_exhaustive()
    }
}

impl UpstreamCa {
    /// Loads the upstream CA from files: `cert_file` holds its certificate
    /// (PEM, possibly followed by the rest of its chain, or one DER
    /// certificate), `key_file` its PKCS#8 key (mode 0600), and
    /// `bundle_file`, if given, the roots to publish; without it the
    /// self-signed certificates of `cert_file` are the roots.
    ///
    /// # Errors
    /// [`CaError`] naming the file and what is wrong with it.
    pub fn load(
        cert_file: &Path,
        key_file: &Path,
        bundle_file: Option<&Path>,
    ) -> Result<Self, CaError> {
        let certificates = read_certificates(cert_file, "cert_file")?;
        let key = keys::read_key_file(key_file)?;
        let roots = bundle_file
            .map(|path| read_certificates(path, "bundle_file"))
            .transpose()?;
        Self::from_der(certificates, &key, roots)
    }

    /// The upstream CA from DER: `certificates[0]` is its certificate, the
    /// rest its chain; `roots` as for [`UpstreamCa::load`].
    ///
    /// # Errors
    /// [`CaError::Upstream`] naming what is wrong.
    pub fn from_der(
        certificates: Vec<Vec<u8>>,
        key_pkcs8: &[u8],
        roots: Option<Vec<Vec<u8>>>,
    ) -> Result<Self, CaError> {
        let upstream = |field, expected: &str, found: String| CaError::Upstream {
            field,
            expected: expected.into(),
            found,
        };
        let Some(first) = certificates.first() else {
            return Err(upstream(
                "cert_file",
                "at least one certificate",
                "none".into(),
            ));
        };
        let cert = parse_certificate(first)
            .map_err(|e| upstream("certificate", "a DER X.509 certificate", e))?;
        let constraints = cert
            .basic_constraints()
            .map_err(|e| upstream("certificate", "one basicConstraints", e.to_string()))?;
        match constraints.map(|c| c.value) {
            Some(bc) if bc.ca => {
                if bc.path_len_constraint == Some(0) {
                    return Err(upstream(
                        "certificate",
                        "a CA allowed to certify another CA",
                        "basicConstraints pathLenConstraint 0".into(),
                    ));
                }
            }
            _ => {
                return Err(upstream(
                    "certificate",
                    "a CA certificate (basicConstraints cA=TRUE)",
                    "a certificate without cA".into(),
                ));
            }
        }
        if let Ok(Some(ku)) = cert.key_usage()
            && !ku.value.key_cert_sign()
        {
            return Err(upstream(
                "certificate",
                "keyUsage with keyCertSign",
                format!("keyUsage {}", ku.value),
            ));
        }
        let signer = CertSigner::from_pkcs8(key_pkcs8).ok_or_else(|| {
            upstream(
                "key_file",
                "a PKCS#8 EC P-256, EC P-384 or RSA private key",
                "another kind of key".into(),
            )
        })?;
        if signer.public_key_bits() != cert.public_key().subject_public_key.data.as_ref() {
            return Err(upstream(
                "key_file",
                "the private key of the upstream certificate",
                "a key whose public half differs from the certificate's".into(),
            ));
        }
        let key_id = subject_key_id(&cert)
            .unwrap_or_else(|| sha1(cert.public_key().subject_public_key.data.as_ref()));
        let window = KeyWindow {
            not_before: clamp_time(cert.validity().not_before.timestamp()),
            not_after: clamp_time(cert.validity().not_after.timestamp()),
        };
        let subject = cert.tbs_certificate.subject.as_raw().to_vec();

        let mut chain_tail = Vec::new();
        let mut self_signed = Vec::new();
        for (i, der) in certificates.iter().enumerate() {
            let parsed = parse_certificate(der).map_err(|e| {
                upstream(
                    "cert_file",
                    "DER X.509 certificates",
                    format!("certificate {i}: {e}"),
                )
            })?;
            if parsed.tbs_certificate.subject.as_raw() == parsed.tbs_certificate.issuer.as_raw() {
                self_signed.push(der.clone());
            } else {
                chain_tail.push(der.clone());
            }
        }
        let roots = match roots {
            Some(roots) => {
                for (i, der) in roots.iter().enumerate() {
                    parse_certificate(der).map_err(|e| {
                        upstream(
                            "bundle_file",
                            "DER X.509 certificates",
                            format!("certificate {i}: {e}"),
                        )
                    })?;
                }
                roots
            }
            None => self_signed,
        };
        if roots.is_empty() {
            return Err(upstream(
                "bundle_file",
                "the upstream root certificates (give bundle_file, or put the root in cert_file)",
                "no self-signed certificate in cert_file and no bundle_file".into(),
            ));
        }
        Ok(Self {
            inner: Arc::new(UpstreamInner {
                signer,
                certificate: first.clone(),
                subject,
                key_id,
                window,
                chain_tail,
                roots,
            }),
        })
    }

    /// The roots that SVIDs chain to (the bundle in upstream mode).
    pub fn roots(&self) -> &[Vec<u8>] {
        &self.inner.roots
    }

    /// The upstream CA certificate (DER).
    pub fn certificate_der(&self) -> &[u8] {
        &self.inner.certificate
    }

    /// When the upstream certificate expires (intermediates never outlive
    /// it).
    pub fn not_after(&self) -> SystemTime {
        from_unix_seconds(self.inner.window.not_after)
    }
}

/// An X509-SVID.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct X509Svid {
    /// The SPIFFE ID in its URI SAN.
    pub spiffe_id: SpiffeId,
    /// DER certificates, leaf first, then the intermediates up to (not
    /// including) a root of the bundle.
    pub chain_der: Vec<Vec<u8>>,
    /// The leaf's notBefore.
    pub not_before: SystemTime,
    /// The leaf's notAfter.
    pub not_after: SystemTime,
    /// Id of the CA key that signed it.
    pub authority_id: String,
}

impl X509Svid {
    /// The leaf certificate (DER).
    pub fn leaf_der(&self) -> &[u8] {
        // `chain_der` always holds the leaf.
        self.chain_der.first().map_or(&[], Vec::as_slice)
    }

    /// The chain as concatenated DER, the Workload API's `x509_svid` field.
    pub fn chain_concat_der(&self) -> Vec<u8> {
        self.chain_der.concat()
    }
}

/// Public facts about one CA key, for `bundle show`, the datastore and
/// logs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct X509AuthorityInfo {
    /// The key's id (also in the CA subject's serialNumber).
    pub id: String,
    /// Prepared, active or retired.
    pub state: KeyState,
    /// CA certificate notBefore.
    pub not_before: SystemTime,
    /// CA certificate notAfter.
    pub not_after: SystemTime,
    /// The CA certificate (DER).
    pub certificate_der: Vec<u8>,
}

/// One CA key with its certificate and the pre-encoded pieces of every
/// leaf it signs.
pub(crate) struct X509Signer {
    id: String,
    key: P256Key,
    certificate: Vec<u8>,
    /// What follows the leaf in an SVID chain: nothing for a root; the
    /// intermediate and upstream intermediates otherwise.
    chain_tail: Vec<Vec<u8>>,
    window: KeyWindow,
    /// signature AlgorithmIdentifier ‖ issuer Name, as they appear in the
    /// leaf's TBSCertificate.
    issuer_block: Vec<u8>,
    /// The leaf's authorityKeyIdentifier extension.
    aki_extension: Vec<u8>,
}

impl std::fmt::Debug for X509Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("X509Signer")
            .field("id", &self.id)
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

impl X509Signer {
    /// Wraps a CA certificate and its key, checking they belong together.
    fn new(
        id: String,
        key: P256Key,
        certificate: Vec<u8>,
        chain_tail: Vec<Vec<u8>>,
    ) -> Result<Self, String> {
        let cert = parse_certificate(&certificate)?;
        if cert.public_key().subject_public_key.data.as_ref() != key.public_point() {
            return Err("a certificate whose key is not the key file's".into());
        }
        let key_id =
            subject_key_id(&cert).ok_or("a CA certificate without subjectKeyIdentifier")?;
        let window = KeyWindow {
            not_before: clamp_time(cert.validity().not_before.timestamp()),
            not_after: clamp_time(cert.validity().not_after.timestamp()),
        };
        let issuer_block = [
            ECDSA_SHA256_ALGORITHM.as_slice(),
            cert.tbs_certificate.subject.as_raw(),
        ]
        .concat();
        let aki_extension = der::extension(
            oid::AUTHORITY_KEY_ID,
            false,
            &der::seq(&[&der::tlv(0x80, &key_id)]),
        );
        Ok(Self {
            id,
            key,
            certificate,
            chain_tail,
            window,
            issuer_block,
            aki_extension,
        })
    }
}

/// Parts of every leaf that depend only on the configuration.
struct LeafTemplate {
    subject: Vec<u8>,
    /// basicConstraints (critical, cA FALSE by omission) ‖ keyUsage
    /// (critical) ‖ extKeyUsage, for EC and for RSA keys.
    fixed_extensions_ec: Vec<u8>,
    fixed_extensions_rsa: Vec<u8>,
}

impl LeafTemplate {
    fn new(organization: &str) -> Self {
        let subject = der::name(&[(oid::ORGANIZATION, tag::UTF8_STRING, organization)]);
        // An empty SEQUENCE: cA is FALSE by DEFAULT, which DER omits.
        let basic_constraints = der::extension(oid::BASIC_CONSTRAINTS, true, &der::seq(&[]));
        // digitalSignature always (X509-SVID §4.3). RFC 5480 forbids
        // keyEncipherment for EC keys, so EC keys get keyAgreement (ECDH)
        // and RSA keys keyEncipherment (RSA key transport).
        let key_usage_ec = der::extension(oid::KEY_USAGE, true, &der::named_bits(&[0, 4]));
        let key_usage_rsa = der::extension(oid::KEY_USAGE, true, &der::named_bits(&[0, 2]));
        let eku = der::extension(
            oid::EXT_KEY_USAGE,
            false,
            &der::seq(&[
                &der::oid(oid::KP_SERVER_AUTH),
                &der::oid(oid::KP_CLIENT_AUTH),
            ]),
        );
        Self {
            subject,
            fixed_extensions_ec: [basic_constraints.clone(), key_usage_ec, eku.clone()].concat(),
            fixed_extensions_rsa: [basic_constraints, key_usage_rsa, eku].concat(),
        }
    }
}

type Rotation = CaRotation<Arc<X509Signer>>;

/// The X.509 CA. Cheap to share (`Arc`); minting takes `&self` and runs
/// concurrently with itself and with [`X509Authority::rotate`].
pub struct X509Authority {
    config: X509CaConfig,
    clock: Arc<dyn Clock>,
    dir: Option<PathBuf>,
    template: LeafTemplate,
    state: RwLock<Arc<Rotation>>,
    /// Serializes rotations (each writes files).
    rotating: Mutex<()>,
    initial: RotationReport,
}

impl std::fmt::Debug for X509Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("X509Authority")
            .field("config", &self.config)
            .field("dir", &self.dir)
            .field("state", &self.snapshot())
            .finish_non_exhaustive()
    }
}

impl X509Authority {
    /// A CA kept in memory only (tests, benchmarks, tools), with its first
    /// key minted and active.
    ///
    /// # Errors
    /// [`CaError`] for a bad configuration or when the first key cannot be
    /// minted (e.g. the upstream CA has expired).
    pub fn new(config: X509CaConfig, clock: Arc<dyn Clock>) -> Result<Self, CaError> {
        config.validate()?;
        let mut authority = Self::empty(config, clock, None);
        authority.initial = authority.rotate()?;
        Ok(authority)
    }

    /// A CA whose keys and certificates live in `dir` (created 0700 if
    /// missing): the state saved there is loaded — keys that no longer fit
    /// the configuration (another upstream CA, a switch between self-signed
    /// and upstream) are dropped — and brought up to date with a rotation.
    /// Every later rotation is saved before it takes effect.
    ///
    /// # Errors
    /// [`CaError`] naming the file or field that is wrong: a trust domain
    /// other than the saved one, a key file group or others can access, a
    /// certificate that does not match its key…
    pub fn open(config: X509CaConfig, dir: &Path, clock: Arc<dyn Clock>) -> Result<Self, CaError> {
        config.validate()?;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| CaError::io(dir, "create directory", e))?;
        let mut authority = Self::empty(config, clock, Some(dir.to_path_buf()));
        let (rotation, discarded) = authority.load(dir)?;
        *authority
            .state
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(rotation);
        let mut report = authority.rotate()?;
        if !discarded.is_empty() {
            // The discarded keys must not come back at the next start.
            authority.save(&authority.snapshot())?;
            for id in &discarded {
                // Best effort, as for pruned keys.
                let _ = fs::remove_file(key_path(dir, id));
            }
            report.discarded = discarded;
        }
        authority.initial = report;
        Ok(authority)
    }

    fn empty(config: X509CaConfig, clock: Arc<dyn Clock>, dir: Option<PathBuf>) -> Self {
        let template = LeafTemplate::new(&config.organization);
        Self {
            config,
            clock,
            dir,
            template,
            state: RwLock::new(Arc::new(Rotation::new())),
            rotating: Mutex::new(()),
            initial: RotationReport::default(),
        }
    }

    /// What construction changed: keys minted at start-up, keys dropped
    /// from the saved state.
    pub fn initial_report(&self) -> &RotationReport {
        &self.initial
    }

    /// The trust domain.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.config.trust_domain
    }

    /// The configuration.
    pub fn config(&self) -> &X509CaConfig {
        &self.config
    }

    fn snapshot(&self) -> Arc<Rotation> {
        Arc::clone(&self.state.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Brings the keys up to date with the clock: prepares, activates and
    /// prunes as [`super::CaRotation`] says, saving the result first when
    /// the CA lives on disk. Call it periodically (it does nothing when
    /// nothing is due); [`X509Authority::next_rotation`] says when next.
    ///
    /// # Errors
    /// [`CaError`] when a key cannot be minted or saved; the CA then keeps
    /// its previous state.
    pub fn rotate(&self) -> Result<RotationReport, CaError> {
        let _guard = self.rotating.lock().unwrap_or_else(PoisonError::into_inner);
        let now = unix_seconds(self.clock.now());
        let mut rotation = (*self.snapshot()).clone();
        let outcome = rotation.advance(now, |now| {
            let signer = self.mint_ca(now)?;
            if let Some(dir) = &self.dir {
                keys::write_key_file(&key_path(dir, &signer.id), &signer.key.pkcs8)?;
            }
            let window = signer.window;
            Ok::<_, CaError>((Arc::new(signer), window))
        })?;
        let report = RotationReport {
            prepared: outcome.prepared.as_ref().map(|s| s.id.clone()),
            activated: outcome.activated.as_ref().map(|s| s.id.clone()),
            pruned: outcome.pruned.iter().map(|s| s.id.clone()).collect(),
            discarded: Vec::new(),
        };
        if report.is_empty() {
            return Ok(report);
        }
        if self.dir.is_some() {
            self.save(&rotation)?;
        }
        *self.state.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(rotation);
        if let Some(dir) = &self.dir {
            for id in &report.pruned {
                // Best effort: the manifest no longer names the key, so a
                // leftover file is inert.
                let _ = fs::remove_file(key_path(dir, id));
            }
        }
        Ok(report)
    }

    /// When [`X509Authority::rotate`] next has something to do.
    pub fn next_rotation(&self) -> SystemTime {
        self.snapshot()
            .next_change()
            .map_or_else(|| self.clock.now(), from_unix_seconds)
    }

    /// The CA certificates verifiers must trust now (the X.509 part of the
    /// bundle): every unexpired CA certificate when self-signed — the
    /// prepared one included, so it is known before it signs — or the
    /// upstream roots.
    pub fn bundle(&self) -> Vec<Vec<u8>> {
        if let Some(upstream) = &self.config.upstream {
            return upstream.inner.roots.clone();
        }
        let now = unix_seconds(self.clock.now());
        self.snapshot()
            .published(now)
            .map(|slot| slot.key.certificate.clone())
            .collect()
    }

    /// Every CA key with its state and certificate.
    pub fn authorities(&self) -> Vec<X509AuthorityInfo> {
        self.snapshot()
            .slots()
            .iter()
            .map(|slot| X509AuthorityInfo {
                id: slot.key.id.clone(),
                state: slot.state,
                not_before: from_unix_seconds(slot.window.not_before),
                not_after: from_unix_seconds(slot.window.not_after),
                certificate_der: slot.key.certificate.clone(),
            })
            .collect()
    }

    /// Mints an X509-SVID for `spiffe_id` over `key`.
    ///
    /// The leaf has exactly one URI SAN (the ID) plus a DNS SAN per entry
    /// of `dns_names`; basicConstraints cA=FALSE (critical); keyUsage
    /// (critical) digitalSignature plus keyAgreement for EC keys or
    /// keyEncipherment for RSA keys; extKeyUsage serverAuth and clientAuth;
    /// a random positive 128-bit serial; notBefore [`BACKDATE`] before now;
    /// notAfter at now + `ttl` or the CA's own expiry, whichever is first;
    /// authorityKeyIdentifier = the CA's subjectKeyIdentifier.
    ///
    /// # Errors
    /// [`CaError::InvalidInput`] naming `spiffe_id` (not a member of the
    /// trust domain, or the trust domain ID itself), `ttl` (under a second)
    /// or `dns_names[i]`; [`CaError::NoActiveKey`] / [`CaError::Expired`]
    /// when the CA cannot sign now.
    pub fn mint_x509_svid(
        &self,
        spiffe_id: &SpiffeId,
        key: &WorkloadKey,
        ttl: Duration,
        dns_names: &[String],
    ) -> Result<X509Svid, CaError> {
        if !spiffe_id.is_member_of(&self.config.trust_domain) || spiffe_id.is_trust_domain_id() {
            return Err(CaError::invalid(
                "spiffe_id",
                format!(
                    "an ID in trust domain {} with a non-empty path",
                    self.config.trust_domain
                ),
                spiffe_id,
            ));
        }
        if ttl.as_secs() == 0 {
            return Err(CaError::invalid(
                "ttl",
                "at least 1 second",
                format!("{ttl:?}"),
            ));
        }
        if dns_names.len() > MAX_DNS_NAMES {
            return Err(CaError::invalid(
                "dns_names",
                format!("at most {MAX_DNS_NAMES} names"),
                dns_names.len(),
            ));
        }
        for (i, name) in dns_names.iter().enumerate() {
            check_dns_name(name)
                .map_err(|expected| CaError::invalid(format!("dns_names[{i}]"), expected, name))?;
        }

        let now = unix_seconds(self.clock.now());
        let signer = {
            let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
            match state.active() {
                Some(slot) => Arc::clone(&slot.key),
                None => return Err(CaError::NoActiveKey { what: "X.509 CA" }),
            }
        };
        if signer.window.expired(now) {
            return Err(CaError::Expired {
                what: "X.509 CA",
                not_after: signer.window.not_after,
                now,
            });
        }
        let not_before = now.saturating_sub(BACKDATE.as_secs());
        let not_after = now
            .saturating_add(ttl.as_secs())
            .min(signer.window.not_after);
        let serial = random_bytes::<16>()?;
        let tbs = self.leaf_tbs(
            &signer, spiffe_id, key, dns_names, &serial, not_before, not_after,
        );
        let signature = signer
            .key
            .pair
            .sign(&aws_lc_rs::rand::SystemRandom::new(), &tbs)
            .map_err(|_| CaError::crypto("sign X509-SVID"))?;
        let certificate = certificate(&tbs, signature.as_ref());
        let mut chain_der = Vec::with_capacity(1 + signer.chain_tail.len());
        chain_der.push(certificate);
        chain_der.extend(signer.chain_tail.iter().cloned());
        Ok(X509Svid {
            spiffe_id: spiffe_id.clone(),
            chain_der,
            not_before: from_unix_seconds(not_before),
            not_after: from_unix_seconds(not_after),
            authority_id: signer.id.clone(),
        })
    }

    /// The leaf's TBSCertificate, assembled from the pre-encoded pieces.
    #[allow(clippy::too_many_arguments)]
    fn leaf_tbs(
        &self,
        signer: &X509Signer,
        spiffe_id: &SpiffeId,
        key: &WorkloadKey,
        dns_names: &[String],
        serial: &[u8; 16],
        not_before: u64,
        not_after: u64,
    ) -> Vec<u8> {
        // subjectAltName: the URI, then the DNS names (IA5String, checked
        // ASCII by check_dns_name).
        let mut names = Vec::with_capacity(8 + spiffe_id.as_str().len());
        der::push_tlv(&mut names, 0x86, spiffe_id.as_str().as_bytes());
        for name in dns_names {
            der::push_tlv(&mut names, 0x82, name.as_bytes());
        }
        let san = der::extension(
            oid::SUBJECT_ALT_NAME,
            false,
            &der::tlv(tag::SEQUENCE, &names),
        );
        let ski = der::extension(
            oid::SUBJECT_KEY_ID,
            false,
            &der::tlv(tag::OCTET_STRING, &sha1(key.public_key_bits())),
        );
        let fixed = if key.kind().is_ec() {
            &self.template.fixed_extensions_ec
        } else {
            &self.template.fixed_extensions_rsa
        };
        let extensions_len = fixed.len() + ski.len() + signer.aki_extension.len() + san.len();
        let extensions_seq_len = der::header_len(extensions_len) + extensions_len;

        let mut validity = Vec::with_capacity(2 + 2 * 17);
        validity.extend_from_slice(&[tag::SEQUENCE, 0]);
        der::push_time(&mut validity, not_before);
        der::push_time(&mut validity, not_after);
        validity[1] = (validity.len() - 2) as u8;

        let serial = der::unsigned_integer(serial);
        const VERSION_3: [u8; 5] = [0xa0, 0x03, 0x02, 0x01, 0x02];
        let spki = key.spki_der();
        let content_len = VERSION_3.len()
            + serial.len()
            + signer.issuer_block.len()
            + validity.len()
            + self.template.subject.len()
            + spki.len()
            + der::header_len(extensions_seq_len)
            + extensions_seq_len;
        let mut tbs = Vec::with_capacity(der::header_len(content_len) + content_len);
        tbs.push(tag::SEQUENCE);
        der::push_len(&mut tbs, content_len);
        tbs.extend_from_slice(&VERSION_3);
        tbs.extend_from_slice(&serial);
        tbs.extend_from_slice(&signer.issuer_block);
        tbs.extend_from_slice(&validity);
        tbs.extend_from_slice(&self.template.subject);
        tbs.extend_from_slice(spki);
        tbs.push(0xa3);
        der::push_len(&mut tbs, extensions_seq_len);
        tbs.push(tag::SEQUENCE);
        der::push_len(&mut tbs, extensions_len);
        tbs.extend_from_slice(fixed);
        tbs.extend_from_slice(&ski);
        tbs.extend_from_slice(&signer.aki_extension);
        tbs.extend_from_slice(&san);
        tbs
    }

    /// Mints a new CA key and its certificate, valid from now (backdated)
    /// for `ca_ttl`, self-signed or signed by the upstream CA.
    fn mint_ca(&self, now: u64) -> Result<X509Signer, CaError> {
        let id = random_id()?;
        let key = P256Key::generate(&ECDSA_P256_SHA256_ASN1_SIGNING)?;
        let not_before = now.saturating_sub(BACKDATE.as_secs());
        let mut not_after = now.saturating_add(self.config.ca_ttl.as_secs());
        if let Some(upstream) = &self.config.upstream {
            let window = upstream.inner.window;
            if window.expired(now) {
                return Err(CaError::Expired {
                    what: "upstream CA",
                    not_after: window.not_after,
                    now,
                });
            }
            not_after = not_after.min(window.not_after);
        }
        let subject = der::name(&[
            (
                oid::ORGANIZATION,
                tag::UTF8_STRING,
                &self.config.organization,
            ),
            (oid::COMMON_NAME, tag::UTF8_STRING, &self.config.common_name),
            // A per-key serialNumber attribute keeps the subjects of
            // successive CAs apart, for tools that look issuers up by name.
            (oid::SERIAL_NUMBER, tag::PRINTABLE_STRING, &id),
        ]);
        let public_point = key.public_point().to_vec();
        let own_key_id = sha1(&public_point);
        let mut spki = vec![
            0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06,
            0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
        ];
        spki.extend_from_slice(&public_point);

        let (issuer_name, issuer_key_id, signature_algorithm) = match &self.config.upstream {
            None => (
                subject.clone(),
                own_key_id.clone(),
                ECDSA_SHA256_ALGORITHM.to_vec(),
            ),
            Some(upstream) => {
                let u = &upstream.inner;
                (
                    u.subject.clone(),
                    u.key_id.clone(),
                    u.signer.algorithm_identifier(),
                )
            }
        };
        // cA TRUE, pathLenConstraint 0: the CA signs leaves only.
        let basic_constraints = der::extension(
            oid::BASIC_CONSTRAINTS,
            true,
            &der::seq(&[&[tag::BOOLEAN, 1, 0xff], &der::unsigned_integer(&[0])]),
        );
        let key_usage = der::extension(oid::KEY_USAGE, true, &der::named_bits(&[5, 6]));
        let ski = der::extension(
            oid::SUBJECT_KEY_ID,
            false,
            &der::tlv(tag::OCTET_STRING, &own_key_id),
        );
        let aki = der::extension(
            oid::AUTHORITY_KEY_ID,
            false,
            &der::seq(&[&der::tlv(0x80, &issuer_key_id)]),
        );
        let trust_domain_id = self.config.trust_domain.id();
        let san = der::extension(
            oid::SUBJECT_ALT_NAME,
            false,
            &der::seq(&[&der::tlv(0x86, trust_domain_id.as_str().as_bytes())]),
        );
        let extensions = der::seq(&[&basic_constraints, &key_usage, &ski, &aki, &san]);
        let mut validity = Vec::new();
        der::push_time(&mut validity, not_before);
        der::push_time(&mut validity, not_after);
        let tbs = der::seq(&[
            &[0xa0, 0x03, 0x02, 0x01, 0x02],
            &der::unsigned_integer(&random_bytes::<16>()?),
            &signature_algorithm,
            &issuer_name,
            &der::seq(&[&validity]),
            &subject,
            &spki,
            &der::tlv(0xa3, &extensions),
        ]);
        let signature = match &self.config.upstream {
            None => key
                .pair
                .sign(&aws_lc_rs::rand::SystemRandom::new(), &tbs)
                .map(|s| s.as_ref().to_vec())
                .map_err(|_| CaError::crypto("self-sign CA certificate"))?,
            Some(upstream) => upstream.inner.signer.sign(&tbs)?,
        };
        let cert = der::seq(&[&tbs, &signature_algorithm, &der::bit_string(&signature)]);
        let chain_tail = match &self.config.upstream {
            None => Vec::new(),
            Some(upstream) => {
                let mut tail = vec![cert.clone()];
                tail.extend(upstream.inner.chain_tail.iter().cloned());
                tail
            }
        };
        X509Signer::new(id, key, cert, chain_tail).map_err(|found| CaError::State {
            path: PathBuf::from("(new CA certificate)"),
            expected: "a certificate matching the new key".into(),
            found,
        })
    }

    /// Reads the saved state, keeping the keys that fit the configuration.
    fn load(&self, dir: &Path) -> Result<(Rotation, Vec<String>), CaError> {
        let path = dir.join(MANIFEST);
        let bad = |expected: &str, found: String| CaError::State {
            path: path.clone(),
            expected: expected.into(),
            found,
        };
        let Some(manifest) = keys::read_manifest::<X509Manifest>(
            &path,
            "X.509 CA state",
            self.config.trust_domain.as_str(),
        )?
        else {
            return Ok((Rotation::new(), Vec::new()));
        };
        let mut slots = Vec::new();
        let mut discarded = Vec::new();
        for entry in manifest.keys {
            if !is_key_id(&entry.id) {
                return Err(bad(
                    "key ids of 16 lowercase hex digits",
                    format!("{:?}", entry.id),
                ));
            }
            let decode = |b64: &str| {
                BASE64
                    .decode(b64)
                    .map_err(|e| bad("base64 DER certificates", format!("key {}: {e}", entry.id)))
            };
            let certificate = decode(&entry.certificate)?;
            let chain_tail = entry
                .chain
                .iter()
                .map(|c| decode(c))
                .collect::<Result<Vec<_>, _>>()?;
            let pkcs8 = keys::read_key_file(&key_path(dir, &entry.id))?;
            let key =
                P256Key::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &pkcs8).map_err(|e| {
                    CaError::KeyFile {
                        path: key_path(dir, &entry.id),
                        expected: "a PKCS#8 ECDSA P-256 key",
                        found: e.to_string(),
                    }
                })?;
            let signer = X509Signer::new(entry.id.clone(), key, certificate, chain_tail).map_err(
                |found| {
                    bad(
                        "certificates matching their key files",
                        format!("key {}: {found}", entry.id),
                    )
                },
            )?;
            if self.fits_configuration(&signer) {
                slots.push(RotationSlot {
                    window: signer.window,
                    key: Arc::new(signer),
                    state: entry.state,
                });
            } else {
                discarded.push(entry.id);
            }
        }
        // Dropping the active key of another configuration leaves its
        // prepared successor without an active key: drop that one too.
        if !slots.iter().any(|s| s.state == KeyState::Active) {
            for slot in slots.drain(..) {
                discarded.push(slot.key.id.clone());
            }
        }
        let rotation = CaRotation::from_slots(slots)
            .map_err(|e| bad("a valid rotation state", e.to_string()))?;
        Ok((rotation, discarded))
    }

    /// Whether a saved CA key was made for the current configuration:
    /// self-signed now and then, or signed by the same upstream key.
    fn fits_configuration(&self, signer: &X509Signer) -> bool {
        let Ok(cert) = parse_certificate(&signer.certificate) else {
            return false;
        };
        let issuer = cert.tbs_certificate.issuer.as_raw();
        match &self.config.upstream {
            None => issuer == cert.tbs_certificate.subject.as_raw(),
            Some(upstream) => {
                issuer == upstream.inner.subject.as_slice()
                    && authority_key_id(&cert).as_deref() == Some(upstream.inner.key_id.as_slice())
            }
        }
    }

    /// Writes the manifest (atomically) naming the slots of `rotation`.
    fn save(&self, rotation: &Rotation) -> Result<(), CaError> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        let manifest = X509Manifest {
            version: 1,
            trust_domain: self.config.trust_domain.as_str().to_owned(),
            keys: rotation
                .slots()
                .iter()
                .map(|slot| X509ManifestKey {
                    id: slot.key.id.clone(),
                    state: slot.state,
                    certificate: BASE64.encode(&slot.key.certificate),
                    chain: slot
                        .key
                        .chain_tail
                        .iter()
                        .map(|c| BASE64.encode(c))
                        .collect(),
                })
                .collect(),
        };
        let json = serde_json::to_vec_pretty(&manifest).map_err(|e| CaError::State {
            path: dir.join(MANIFEST),
            expected: "a serializable state".into(),
            found: e.to_string(),
        })?;
        keys::write_file_atomic(&dir.join(MANIFEST), &json, 0o600)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct X509Manifest {
    version: u32,
    trust_domain: String,
    keys: Vec<X509ManifestKey>,
}

impl keys::ManifestHeader for X509Manifest {
    fn version(&self) -> u32 {
        self.version
    }
    fn trust_domain(&self) -> &str {
        &self.trust_domain
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct X509ManifestKey {
    id: String,
    state: KeyState,
    /// Base64 DER.
    certificate: String,
    /// Base64 DER of the certificates following the leaf in SVID chains.
    chain: Vec<String>,
}

fn key_path(dir: &Path, id: &str) -> PathBuf {
    dir.join(format!("x509-ca-{id}.key"))
}

/// Ids are generated as 16 hex digits; anything else in a manifest could
/// make a key path escape the directory.
fn is_key_id(id: &str) -> bool {
    id.len() == 16
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// AlgorithmIdentifier ecdsa-with-SHA256 (parameters absent): how every
/// leaf is signed.
const ECDSA_SHA256_ALGORITHM: [u8; 12] = [
    0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02,
];

/// Assembles a leaf Certificate from its signed part.
fn certificate(tbs: &[u8], signature: &[u8]) -> Vec<u8> {
    let algorithm = &ECDSA_SHA256_ALGORITHM;
    let content_len =
        tbs.len() + algorithm.len() + der::header_len(signature.len() + 1) + signature.len() + 1;
    let mut out = Vec::with_capacity(der::header_len(content_len) + content_len);
    out.push(tag::SEQUENCE);
    der::push_len(&mut out, content_len);
    out.extend_from_slice(tbs);
    out.extend_from_slice(algorithm);
    out.push(tag::BIT_STRING);
    der::push_len(&mut out, signature.len() + 1);
    out.push(0);
    out.extend_from_slice(signature);
    out
}

/// Checks a DNS SAN: preferred name syntax (RFC 1034 §3.5 as relaxed by
/// RFC 1123), optionally with a leading `*.` wildcard label. Returns what
/// was expected on failure.
fn check_dns_name(name: &str) -> Result<(), &'static str> {
    const EXPECTED: &str = "a DNS name of at most 253 characters: labels of 1-63 letters, \
                            digits and '-' (not at either end), separated by '.', optionally \
                            starting with '*.'";
    let bare = name.strip_prefix("*.").unwrap_or(name);
    if name.is_empty() || name.len() > 253 || bare.is_empty() {
        return Err(EXPECTED);
    }
    for label in bare.split('.') {
        let bytes = label.as_bytes();
        let ok = !bytes.is_empty()
            && bytes.len() <= 63
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
            && bytes.first() != Some(&b'-')
            && bytes.last() != Some(&b'-');
        if !ok {
            return Err(EXPECTED);
        }
    }
    Ok(())
}

fn parse_certificate(der: &[u8]) -> Result<X509Certificate<'_>, String> {
    match X509Certificate::from_der(der) {
        Ok(([], cert)) => Ok(cert),
        Ok((rest, _)) => Err(format!("{} bytes after the certificate", rest.len())),
        Err(e) => Err(format!("an unparsable certificate ({e})")),
    }
}

fn subject_key_id(cert: &X509Certificate<'_>) -> Option<Vec<u8>> {
    cert.extensions()
        .iter()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
            _ => None,
        })
}

fn authority_key_id(cert: &X509Certificate<'_>) -> Option<Vec<u8>> {
    cert.extensions()
        .iter()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                aki.key_identifier.as_ref().map(|id| id.0.to_vec())
            }
            _ => None,
        })
}

/// SHA-1 of a public key's bits: RFC 5280 §4.2.1.2 method (1) key
/// identifiers, what OpenSSL computes too.
fn sha1(bytes: &[u8]) -> Vec<u8> {
    digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, bytes)
        .as_ref()
        .to_vec()
}

fn clamp_time(timestamp: i64) -> u64 {
    u64::try_from(timestamp).unwrap_or(0)
}

/// Reads the certificates of a PEM file (every `CERTIFICATE` block) or a
/// single DER certificate.
pub(crate) fn read_certificates(path: &Path, field: &'static str) -> Result<Vec<Vec<u8>>, CaError> {
    let mut file = fs::File::open(path).map_err(|e| CaError::io(path, "open", e))?;
    let bytes = keys::read_limited(path, &mut file)?;
    if bytes.first() == Some(&tag::SEQUENCE) {
        return Ok(vec![bytes]);
    }
    let mut out = Vec::new();
    for pem in x509_parser::pem::Pem::iter_from_buffer(&bytes) {
        let pem = pem.map_err(|e| CaError::Upstream {
            field,
            expected: format!("PEM certificates in {}", path.display()),
            found: format!("unreadable PEM ({e})"),
        })?;
        if pem.label == "CERTIFICATE" {
            out.push(pem.contents);
        }
    }
    if out.is_empty() {
        return Err(CaError::Upstream {
            field,
            expected: format!("at least one certificate in {}", path.display()),
            found: "none".into(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names() {
        for ok in [
            "example.org",
            "a",
            "*.example.org",
            "a-b.c1",
            "XN--BCHER-KVA.example",
        ] {
            assert!(check_dns_name(ok).is_ok(), "{ok}");
        }
        let long_label = "a".repeat(64);
        for bad in [
            "",
            "*.",
            "*",
            "a..b",
            ".a",
            "a.",
            "-a",
            "a-",
            "a_b",
            "a b",
            "ä.example",
            "a.*.b",
            long_label.as_str(),
        ] {
            assert!(check_dns_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_dns_name(&format!("{}.x", "a.".repeat(126))).is_err());
    }

    #[test]
    fn key_ids() {
        assert!(is_key_id("0123456789abcdef"));
        assert!(!is_key_id("../../etc/passwd"));
        assert!(!is_key_id("0123456789ABCDEF"));
    }
}
