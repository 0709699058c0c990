//! The attestation client: one run of the DESIGN §3 protocol against the
//! issuer's node API, ending with a node X509-SVID for the TPM-resident node
//! key.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rootmark_proto::node::v1 as pb;
use rootmark_proto::node::v1::node_attestation_client::NodeAttestationClient;
use rootmark_sdk::SpiffeId;
use rootmark_sdk::tls::{SpiffeServerVerifier, svid_spiffe_id};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::channel::tls_channel;
use super::error::NodeError;
use super::shared_tpm::SharedTpm;
use super::signer::TpmSigningKey;
use crate::config::AttestorConfig;
use crate::eventlog::{EventLogReadError, read_event_log};
use crate::tpm::{
    AkAlgorithm, AttestationKey, EkAlgorithm, NodeKey, PcrBank, PcrSelection, Tpm, TpmError,
};

/// Largest message accepted from the issuer.
const MAX_RESPONSE_BYTES: usize = 4 << 20;

/// How the node attests.
#[derive(Debug, Clone)]
pub struct NodeAttestorConfig {
    /// Where `ak.key` and `node-key.key` are kept.
    pub data_dir: PathBuf,
    /// The EK to use, or the first one with a certificate.
    pub ek_algorithm: Option<EkAlgorithm>,
    /// The AK type when one is created.
    pub ak_algorithm: AkAlgorithm,
    /// The boot PCRs the node key is bound to.
    pub boot_pcrs: PcrSelection,
    /// The TCG event log.
    pub event_log_path: PathBuf,
    /// Largest event log sent.
    pub max_event_log_bytes: u64,
    /// `host:port` of the node attestation API.
    pub node_api: String,
    /// The SPIFFE ID the issuer must present.
    pub issuer_id: SpiffeId,
}

impl NodeAttestorConfig {
    /// Takes the relevant parts of a validated [`AttestorConfig`].
    pub fn from_config(config: &AttestorConfig) -> Result<Self, String> {
        Ok(NodeAttestorConfig {
            data_dir: config.data_dir.clone(),
            ek_algorithm: config.tpm.ek_algorithm()?,
            ak_algorithm: config.tpm.ak_algorithm()?,
            boot_pcrs: config.tpm.boot_selection()?,
            event_log_path: config.tpm.event_log_path.clone(),
            max_event_log_bytes: config.tpm.max_event_log_bytes,
            node_api: config.issuer.node_api.clone(),
            issuer_id: config.issuer_spiffe_id()?,
        })
    }

    fn ak_path(&self) -> PathBuf {
        self.data_dir.join("ak.key")
    }

    fn node_key_path(&self) -> PathBuf {
        self.data_dir.join("node-key.key")
    }
}

/// The node's identity after a successful attestation.
#[derive(Debug, Clone)]
pub struct NodeIdentity {
    /// `spiffe://<td>/rootmark/node/<ek hash>`.
    pub spiffe_id: SpiffeId,
    /// The node X509-SVID, leaf first, DER.
    pub chain: Vec<Vec<u8>>,
    /// The trust domain's CA certificates, DER.
    pub bundle: Vec<Vec<u8>>,
    /// The node selectors the issuer derived.
    pub selectors: Vec<String>,
    /// When to attest again.
    pub renew_after: SystemTime,
    /// The node SVID's notAfter.
    pub expires: SystemTime,
    /// The TPM-resident key the SVID certifies.
    pub signing_key: TpmSigningKey,
}

/// Runs attestations for one node.
#[derive(Debug, Clone)]
pub struct NodeAttestor {
    tpm: SharedTpm,
    config: NodeAttestorConfig,
    /// Set when an attestation found the stored node key unusable (the
    /// boot changed) and replaced it: the node SVID of the old key is then
    /// worthless, whether or not the new attestation succeeds.
    node_key_replaced: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// What the TPM prepared for a `Hello`.
struct Prepared {
    hello: pb::Hello,
    ak: AttestationKey,
    node_key: NodeKey,
    replaced_node_key: bool,
}

impl NodeAttestor {
    /// An attestor using `tpm`.
    pub fn new(tpm: SharedTpm, config: NodeAttestorConfig) -> Self {
        NodeAttestor {
            tpm,
            config,
            node_key_replaced: std::sync::Arc::default(),
        }
    }

    /// Whether an attestation since the last call replaced the node key
    /// because the old one could no longer sign (and clears the flag).
    pub fn take_node_key_replaced(&self) -> bool {
        self.node_key_replaced
            .swap(false, std::sync::atomic::Ordering::SeqCst)
    }

    /// The shared TPM.
    pub fn tpm(&self) -> &SharedTpm {
        &self.tpm
    }

    /// Attests once, trusting the issuer through `bundle` (DER CA certificates).
    ///
    /// The node key is reused while the TPM can still sign with it; once a
    /// boot PCR changed, a new one is created (and must pass the issuer's
    /// policies again).
    pub async fn attest(&self, bundle: &[Vec<u8>]) -> Result<NodeIdentity, NodeError> {
        let config = self.config.clone();
        let prepared = self.tpm.run(move |tpm| prepare(tpm, &config)).await?;
        if prepared.replaced_node_key {
            self.node_key_replaced
                .store(true, std::sync::atomic::Ordering::SeqCst);
        }
        let addr = &self.config.node_api;
        let tls =
            SpiffeServerVerifier::new(bundle, self.config.issuer_id.clone())?.client_config()?;
        let channel = tls_channel(addr, tls)?;
        let mut client =
            NodeAttestationClient::new(channel).max_decoding_message_size(MAX_RESPONSE_BYTES);

        let (tx, rx) = mpsc::channel(2);
        let _ = tx
            .send(step(pb::attest_request::Step::Hello(
                prepared.hello.clone(),
            )))
            .await;
        let mut responses = client
            .attest(ReceiverStream::new(rx))
            .await
            .map_err(NodeError::status("Attest", addr))?
            .into_inner();
        let challenge = match responses
            .message()
            .await
            .map_err(NodeError::status("Attest", addr))?
        {
            Some(pb::AttestResponse {
                step: Some(pb::attest_response::Step::Challenge(challenge)),
            }) => challenge,
            other => {
                return Err(NodeError::Protocol {
                    call: "Attest",
                    reason: format!("expected a Challenge, got {other:?}"),
                });
            }
        };
        let config = self.config.clone();
        let ak = prepared.ak.clone();
        let answer = self
            .tpm
            .run(move |tpm| answer_challenge(tpm, &config, &ak, &challenge))
            .await;
        let answer = match answer {
            Ok(answer) => answer,
            Err(AnswerError::Tpm(e)) => return Err(NodeError::Tpm(e)),
            Err(AnswerError::EventLog(e)) => return Err(NodeError::EventLog(e)),
            Err(AnswerError::Challenge(reason)) => {
                return Err(NodeError::Protocol {
                    call: "Attest",
                    reason,
                });
            }
        };
        let _ = tx
            .send(step(pb::attest_request::Step::ChallengeResponse(answer)))
            .await;
        let result = match responses
            .message()
            .await
            .map_err(NodeError::status("Attest", addr))?
        {
            Some(pb::AttestResponse {
                step: Some(pb::attest_response::Step::Result(result)),
            }) => result,
            other => {
                return Err(NodeError::Protocol {
                    call: "Attest",
                    reason: format!("expected an AttestResult, got {other:?}"),
                });
            }
        };
        drop(tx);
        let identity = self.check_result(result, prepared.node_key)?;
        tracing::info!(
            spiffe_id = %identity.spiffe_id,
            expires = ?identity.expires,
            selectors = identity.selectors.len(),
            "node attested"
        );
        Ok(identity)
    }

    /// Checks that what the issuer sent is a node SVID for our node key.
    fn check_result(
        &self,
        result: pb::AttestResult,
        node_key: NodeKey,
    ) -> Result<NodeIdentity, NodeError> {
        let bad = |reason: String| NodeError::Protocol {
            call: "Attest",
            reason,
        };
        let spiffe_id = SpiffeId::parse(&result.spiffe_id)
            .map_err(|e| bad(format!("spiffe_id {:?}: {e}", result.spiffe_id)))?;
        let leaf = result
            .node_svid_chain
            .first()
            .ok_or_else(|| bad("node_svid_chain is empty".to_owned()))?;
        let leaf_id = svid_spiffe_id(leaf).map_err(|e| bad(format!("node SVID: {e}")))?;
        if leaf_id != spiffe_id {
            return Err(bad(format!(
                "node SVID is for {leaf_id}, the result says {spiffe_id}"
            )));
        }
        let (_, cert) = x509_parser::parse_x509_certificate(leaf)
            .map_err(|e| bad(format!("node SVID: {e}")))?;
        let point = node_key.public_point()?;
        if cert.public_key().subject_public_key.data.as_ref() != point.as_slice() {
            return Err(bad("node SVID does not certify our node key".to_owned()));
        }
        if result.trust_bundle.is_empty() {
            return Err(bad("trust_bundle is empty".to_owned()));
        }
        Ok(NodeIdentity {
            spiffe_id,
            chain: result.node_svid_chain,
            bundle: result.trust_bundle,
            selectors: result.node_selectors,
            renew_after: unix_ms(result.renew_after_unix_ms),
            expires: unix_ms(result.expires_unix_ms),
            signing_key: TpmSigningKey::new(self.tpm.clone(), node_key),
        })
    }
}

fn step(step: pb::attest_request::Step) -> pb::AttestRequest {
    pb::AttestRequest { step: Some(step) }
}

/// A time from the wire; negative values are the epoch.
pub(crate) fn unix_ms(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// Loads or creates the AK and the node key, and certifies the node key.
fn prepare(tpm: &mut Tpm, config: &NodeAttestorConfig) -> Result<Prepared, TpmError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| TpmError::Io {
        action: "cannot create",
        path: config.data_dir.clone(),
        source,
    })?;
    let endorsement = tpm.endorsement(config.ek_algorithm)?;
    let ak = tpm.load_or_create_ak(
        &config.ak_path(),
        endorsement.algorithm,
        config.ak_algorithm,
    )?;
    let (node_key, replaced_node_key) =
        usable_node_key(tpm, &config.node_key_path(), &config.boot_pcrs)?;
    let certification = tpm.certify_node_key(&node_key, &ak, b"")?;
    let hello = pb::Hello {
        ek_certificate: endorsement.certificate.unwrap_or_default(),
        ek_public: endorsement.public,
        ak_public: ak.public_bytes()?,
        node_key_public: node_key.public_bytes()?,
        node_key_certify_info: certification.attest,
        node_key_certify_signature: certification.signature,
        node_key_pcrs: config
            .boot_pcrs
            .iter()
            .flat_map(|(_, set)| set.iter().map(|&i| u32::from(i)))
            .collect(),
        csr: Vec::new(),
    };
    Ok(Prepared {
        hello,
        ak,
        node_key,
        replaced_node_key,
    })
}

/// The stored node key if the TPM still signs with it, else a new one bound
/// to the current boot (and `true`: an old key was replaced).
fn usable_node_key(
    tpm: &mut Tpm,
    path: &Path,
    boot_pcrs: &PcrSelection,
) -> Result<(NodeKey, bool), TpmError> {
    let existed = path.exists();
    if existed {
        match NodeKey::read(path, boot_pcrs.clone())
            .and_then(|key| tpm.sign_with_node_key(&key, &[0u8; 32]).map(|_| key))
        {
            Ok(key) => return Ok((key, false)),
            Err(e) => tracing::warn!(
                error = %e,
                path = %path.display(),
                "the node key can no longer be used (the boot changed?); creating a new one"
            ),
        }
    }
    let key = tpm.create_node_key(boot_pcrs)?;
    key.blob.write(path)?;
    tracing::info!(path = %path.display(), pcrs = %boot_pcrs, "created a node key bound to this boot");
    Ok((key, existed))
}

enum AnswerError {
    Tpm(TpmError),
    EventLog(EventLogReadError),
    Challenge(String),
}

impl From<TpmError> for AnswerError {
    fn from(e: TpmError) -> Self {
        AnswerError::Tpm(e)
    }
}

/// ActivateCredential, Quote and the event log.
fn answer_challenge(
    tpm: &mut Tpm,
    config: &NodeAttestorConfig,
    ak: &AttestationKey,
    challenge: &pb::Challenge,
) -> Result<pb::ChallengeResponse, AnswerError> {
    let selection =
        selection_from_wire(&challenge.pcr_selection).map_err(AnswerError::Challenge)?;
    let activated_secret = if challenge.credential_blob.is_empty() {
        Vec::new()
    } else {
        let blob = tpm2b_payload(&challenge.credential_blob, "credential_blob")
            .map_err(AnswerError::Challenge)?;
        let secret = tpm2b_payload(&challenge.encrypted_secret, "encrypted_secret")
            .map_err(AnswerError::Challenge)?;
        tpm.activate_credential(ak, blob, secret)?.to_vec()
    };
    let quote = tpm.quote(ak, &selection, &challenge.nonce)?;
    let event_log = match read_event_log(&config.event_log_path, config.max_event_log_bytes) {
        Ok(log) => log,
        Err(EventLogReadError::Io { source, path })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            tracing::warn!(path = %path.display(), "no TCG event log; attesting with PCRs only");
            Vec::new()
        }
        Err(e) => return Err(AnswerError::EventLog(e)),
    };
    let pcr_banks = quote
        .pcrs
        .banks
        .iter()
        .map(|(bank, values)| pb::PcrBank {
            hash: hash_to_wire(*bank) as i32,
            values: values
                .iter()
                .map(|(&i, v)| (u32::from(i), v.clone()))
                .collect(),
        })
        .collect();
    Ok(pb::ChallengeResponse {
        activated_secret,
        quote_attest: quote.attest,
        quote_signature: quote.signature,
        pcr_banks,
        event_log,
    })
}

/// The content of a TPM2B (its 2-byte size prefix checked and removed).
fn tpm2b_payload<'a>(bytes: &'a [u8], field: &str) -> Result<&'a [u8], String> {
    match bytes {
        [hi, lo, rest @ ..] if usize::from(u16::from_be_bytes([*hi, *lo])) == rest.len() => {
            Ok(rest)
        }
        _ => Err(format!(
            "challenge {field} is not a TPM2B ({} bytes, size prefix does not match)",
            bytes.len()
        )),
    }
}

fn hash_to_wire(bank: PcrBank) -> pb::HashAlgorithm {
    match bank {
        PcrBank::Sha1 => pb::HashAlgorithm::Sha1,
        PcrBank::Sha256 => pb::HashAlgorithm::Sha256,
        PcrBank::Sha384 => pb::HashAlgorithm::Sha384,
    }
}

/// The challenge's PCR selection, refusing unknown banks and indexes above 23.
fn selection_from_wire(wire: &[pb::PcrSelection]) -> Result<PcrSelection, String> {
    let mut selection = PcrSelection::new();
    for entry in wire {
        let bank = match pb::HashAlgorithm::try_from(entry.hash) {
            Ok(pb::HashAlgorithm::Sha1) => PcrBank::Sha1,
            Ok(pb::HashAlgorithm::Sha256) => PcrBank::Sha256,
            Ok(pb::HashAlgorithm::Sha384) => PcrBank::Sha384,
            _ => {
                return Err(format!(
                    "challenge pcr_selection: unknown bank {}",
                    entry.hash
                ));
            }
        };
        let indexes = entry
            .pcrs
            .iter()
            .map(|&i| u8::try_from(i).map_err(|_| format!("challenge pcr_selection: PCR {i}")))
            .collect::<Result<Vec<u8>, String>>()?;
        selection = selection
            .with(bank, &indexes)
            .map_err(|e| format!("challenge pcr_selection: {e}"))?;
    }
    if selection.is_empty() {
        return Err("challenge pcr_selection is empty".to_owned());
    }
    Ok(selection)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn wire_selection_refuses_unknown_bank_and_big_index() {
        let bad_bank = [pb::PcrSelection {
            hash: 9,
            pcrs: vec![0],
        }];
        assert!(
            selection_from_wire(&bad_bank)
                .unwrap_err()
                .contains("unknown bank 9")
        );
        let big = [pb::PcrSelection {
            hash: pb::HashAlgorithm::Sha256 as i32,
            pcrs: vec![300],
        }];
        assert!(selection_from_wire(&big).unwrap_err().contains("PCR 300"));
        assert!(selection_from_wire(&[]).unwrap_err().contains("empty"));
    }

    #[test]
    fn tpm2b_prefix_must_match_length() {
        assert_eq!(tpm2b_payload(&[0, 2, 7, 8], "x").unwrap(), &[7, 8]);
        assert!(tpm2b_payload(&[0, 3, 7, 8], "x").is_err());
        assert!(tpm2b_payload(&[0], "x").is_err());
    }
}
