//! The issuance API client, authenticated by the current node SVID.

use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _};
use rootmark_proto::node::v1 as pb;
use rootmark_proto::node::v1::issuance_client::IssuanceClient;
use rootmark_sdk::SpiffeId;
use rootmark_sdk::tls::SpiffeServerVerifier;
use tonic::transport::Channel;
use zeroize::Zeroizing;

use crate::cache::state::{Entry, HeldX509Svid, to_unix_ms};
use crate::node::channel::tls_channel;
use crate::node::{NodeClientCert, NodeError, NodeIdentity};

/// Largest message accepted from the issuer.
const MAX_RESPONSE_BYTES: usize = 16 << 20;

/// `SubjectPublicKeyInfo` prefix of an uncompressed P-256 point
/// (id-ecPublicKey, prime256v1, BIT STRING of 66 bytes).
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// The issuance API, reached with the node SVID.
#[derive(Debug)]
pub struct IssuerLink {
    addr: String,
    issuer_id: SpiffeId,
    client_cert: Arc<NodeClientCert>,
    client: RwLock<Option<IssuanceClient<Channel>>>,
}

impl IssuerLink {
    /// A link to `addr` expecting the issuer to be `issuer_id`; unusable
    /// until [`update`](Self::update) gives it a node identity.
    pub fn new(addr: String, issuer_id: SpiffeId) -> Self {
        IssuerLink {
            addr,
            issuer_id,
            client_cert: Arc::new(NodeClientCert::default()),
            client: RwLock::new(None),
        }
    }

    /// Authenticates with `identity` from now on and trusts its bundle.
    pub fn update(&self, identity: &NodeIdentity) -> Result<(), NodeError> {
        self.client_cert
            .set(&identity.chain, identity.signing_key.clone());
        let tls = SpiffeServerVerifier::new(&identity.bundle, self.issuer_id.clone())?
            .client_config_with_client_cert(self.client_cert.clone())?;
        let channel = tls_channel(&self.addr, tls)?;
        let client = IssuanceClient::new(channel).max_decoding_message_size(MAX_RESPONSE_BYTES);
        *self
            .client
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(client);
        Ok(())
    }

    /// Forgets the node identity (it expired or the node was banned).
    pub fn clear(&self) {
        self.client_cert.clear();
        *self
            .client
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }

    /// The client, if the node has an identity.
    pub fn client(&self) -> Result<IssuanceClient<Channel>, NodeError> {
        self.client
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
            .ok_or_else(|| NodeError::Connect {
                addr: self.addr.clone(),
                reason: "the node has not attested yet".to_owned(),
            })
    }

    /// The issuance API address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Generates a P-256 workload key and has the issuer sign an
    /// X509-SVID for `entry` over it.
    pub async fn mint_x509(&self, entry: &Entry) -> Result<HeldX509Svid, NodeError> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            .map_err(|_| self.local("cannot generate a workload key"))?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref())
            .map_err(|_| self.local("cannot load the workload key"))?;
        let mut spki = P256_SPKI_PREFIX.to_vec();
        spki.extend_from_slice(pair.public_key().as_ref());
        let response = self
            .client()?
            .mint_x509_svid(pb::MintX509SvidRequest {
                entry_id: entry.id.clone(),
                key: Some(pb::mint_x509_svid_request::Key::Spki(spki)),
            })
            .await
            .map_err(NodeError::status("MintX509Svid", &self.addr))?
            .into_inner();
        if response.chain.is_empty() {
            return Err(NodeError::Protocol {
                call: "MintX509Svid",
                reason: "empty chain".to_owned(),
            });
        }
        if response.spiffe_id != entry.spiffe_id {
            return Err(NodeError::Protocol {
                call: "MintX509Svid",
                reason: format!(
                    "asked for {}, got an SVID for {}",
                    entry.spiffe_id, response.spiffe_id
                ),
            });
        }
        let issued = SystemTime::now();
        let issued_ms = to_unix_ms(issued);
        let lifetime = response.expires_unix_ms.saturating_sub(issued_ms).max(0);
        Ok(HeldX509Svid {
            entry_id: entry.id.clone(),
            entry_revision: entry.revision,
            spiffe_id: response.spiffe_id,
            chain: response.chain,
            key_pkcs8: Zeroizing::new(pkcs8.as_ref().to_vec()),
            issued_unix_ms: issued_ms,
            expires_unix_ms: response.expires_unix_ms,
            rotate_unix_ms: issued_ms + lifetime / 2 + jitter_ms(lifetime / 10),
        })
    }

    /// Has the issuer mint a JWT-SVID for `entry_id` and `audience`.
    pub async fn mint_jwt(
        &self,
        entry_id: &str,
        audience: &[String],
    ) -> Result<pb::JwtSvidResponse, NodeError> {
        Ok(self
            .client()?
            .mint_jwt_svid(pb::MintJwtSvidRequest {
                entry_id: entry_id.to_owned(),
                audience: audience.to_vec(),
            })
            .await
            .map_err(NodeError::status("MintJwtSvid", &self.addr))?
            .into_inner())
    }

    fn local(&self, reason: &str) -> NodeError {
        NodeError::Protocol {
            call: "MintX509Svid",
            reason: reason.to_owned(),
        }
    }
}

/// A uniformly random delay in `0..=max_ms` milliseconds.
pub fn jitter_ms(max_ms: i64) -> i64 {
    let Ok(max) = u64::try_from(max_ms) else {
        return 0;
    };
    if max == 0 {
        return 0;
    }
    let mut bytes = [0u8; 8];
    if SystemRandom::new().fill(&mut bytes).is_err() {
        return 0;
    }
    i64::try_from(u64::from_le_bytes(bytes) % (max + 1)).unwrap_or(0)
}

/// Exponential backoff with full jitter, for retries against the issuer.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    /// Starts at `base`, doubling up to `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Backoff {
            base,
            max,
            attempt: 0,
        }
    }

    /// The next delay: a random point in `[d/2, d]` where `d` doubles each time.
    pub fn next_delay(&mut self) -> Duration {
        let factor = 1u32 << self.attempt.min(16);
        self.attempt = self.attempt.saturating_add(1);
        let d = self.base.saturating_mul(factor).min(self.max);
        let half = i64::try_from(d.as_millis() / 2).unwrap_or(0);
        Duration::from_millis(u64::try_from(half + jitter_ms(half)).unwrap_or(0))
    }

    /// Back to `base` after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_jitter_and_caps() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000));
        let d1 = b.next_delay();
        assert!(
            d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100),
            "{d1:?}"
        );
        let d2 = b.next_delay();
        assert!(
            d2 >= Duration::from_millis(100) && d2 <= Duration::from_millis(200),
            "{d2:?}"
        );
        let d3 = b.next_delay();
        assert!(
            d3 >= Duration::from_millis(200) && d3 <= Duration::from_millis(400),
            "{d3:?}"
        );
        // From the fourth retry on, 800 ms and then the 1 s cap.
        b.next_delay();
        for _ in 0..20 {
            let d = b.next_delay();
            assert!(
                d >= Duration::from_millis(500) && d <= Duration::from_millis(1000),
                "{d:?}"
            );
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }

    #[test]
    fn jitter_stays_in_range() {
        for _ in 0..1000 {
            let j = jitter_ms(10);
            assert!((0..=10).contains(&j));
        }
        assert_eq!(jitter_ms(0), 0);
        assert_eq!(jitter_ms(-5), 0);
    }
}
