//! What the attestor holds for its workloads: the entries matching the node,
//! the trust bundle, and one X509-SVID per entry. Published whole through a
//! `tokio::sync::watch` channel; every Workload API stream re-reads it when
//! it changes.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rootmark_proto::node::v1 as pb;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// A registration entry matching this node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The entry's id.
    pub id: String,
    /// The SPIFFE ID its workloads get.
    pub spiffe_id: String,
    /// Workload selectors (`type:value`) that must all match the caller.
    pub selectors: Vec<String>,
    /// X509-SVID lifetime in seconds (0: the issuer's default).
    pub x509_ttl_s: u32,
    /// JWT-SVID lifetime in seconds (0: the issuer's default).
    pub jwt_ttl_s: u32,
    /// DNS SANs.
    pub dns_names: Vec<String>,
    /// The Workload API hint.
    pub hint: String,
    /// Bumped by the issuer at every change.
    pub revision: u64,
}

impl From<pb::RegistrationEntry> for Entry {
    fn from(e: pb::RegistrationEntry) -> Self {
        Entry {
            id: e.id,
            spiffe_id: e.spiffe_id,
            selectors: e.selectors,
            x509_ttl_s: e.x509_ttl_s,
            jwt_ttl_s: e.jwt_ttl_s,
            dns_names: e.dns_names,
            hint: e.hint,
            revision: e.revision,
        }
    }
}

/// The trust material of the issuer's trust domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bundle {
    /// The trust domain name.
    pub trust_domain: String,
    /// X.509 CA certificates, DER.
    #[serde(with = "b64_list")]
    pub x509_authorities: Vec<Vec<u8>>,
    /// The JWT signing keys as JWKS text.
    pub jwt_jwks: String,
}

impl From<pb::Bundle> for Bundle {
    fn from(b: pb::Bundle) -> Self {
        Bundle {
            trust_domain: b.trust_domain,
            x509_authorities: b.x509_authorities,
            jwt_jwks: b.jwt_jwks,
        }
    }
}

/// An X509-SVID held for an entry, with its private key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldX509Svid {
    /// The entry it was minted for.
    pub entry_id: String,
    /// The entry revision it was minted for.
    pub entry_revision: u64,
    /// Its SPIFFE ID.
    pub spiffe_id: String,
    /// Leaf first, DER.
    #[serde(with = "b64_list")]
    pub chain: Vec<Vec<u8>>,
    /// The PKCS#8 DER private key.
    #[serde(with = "b64_secret")]
    pub key_pkcs8: Zeroizing<Vec<u8>>,
    /// When it was minted, ms since the epoch.
    pub issued_unix_ms: i64,
    /// Its notAfter, ms since the epoch.
    pub expires_unix_ms: i64,
    /// When to rotate it (half-life plus jitter), ms since the epoch.
    pub rotate_unix_ms: i64,
}

impl std::fmt::Debug for HeldX509Svid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeldX509Svid")
            .field("entry_id", &self.entry_id)
            .field("spiffe_id", &self.spiffe_id)
            .field("expires_unix_ms", &self.expires_unix_ms)
            .field("rotate_unix_ms", &self.rotate_unix_ms)
            .finish_non_exhaustive()
    }
}

impl HeldX509Svid {
    /// Whether it is still valid at `now`.
    pub fn is_valid_at(&self, now: SystemTime) -> bool {
        to_unix_ms(now) < self.expires_unix_ms
    }

    /// Whether it should be replaced at `now` (rotation time reached, or
    /// minted for an older revision of its entry).
    pub fn needs_rotation(&self, now: SystemTime, entry: &Entry) -> bool {
        to_unix_ms(now) >= self.rotate_unix_ms || self.entry_revision != entry.revision
    }
}

/// Why the attestor has nothing to serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Readiness {
    /// Neither the issuer nor the sealed cache has supplied state yet.
    Starting,
    /// Serving state from the issuer or the sealed cache.
    Ready,
    /// The issuer banned this node: nothing is served.
    Banned,
}

/// Everything the Workload API serves, as of one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Whether there is anything to serve.
    pub readiness: Readiness,
    /// Entries matching the node, by id.
    pub entries: BTreeMap<String, Entry>,
    /// The current X509-SVID of each entry, by entry id.
    pub svids: BTreeMap<String, HeldX509Svid>,
    /// The trust bundle.
    pub bundle: Option<Bundle>,
}

impl Default for Snapshot {
    fn default() -> Self {
        Snapshot {
            readiness: Readiness::Starting,
            entries: BTreeMap::new(),
            svids: BTreeMap::new(),
            bundle: None,
        }
    }
}

impl Snapshot {
    /// Drops SVIDs that expired at `now` or whose entry is gone; returns
    /// whether anything was dropped.
    pub fn prune(&mut self, now: SystemTime) -> bool {
        let before = self.svids.len();
        let entries = &self.entries;
        self.svids
            .retain(|id, svid| entries.contains_key(id) && svid.is_valid_at(now));
        before != self.svids.len()
    }

    /// The entries whose workload selectors are all among `selectors`, with
    /// their current SVID if they have a valid one, sorted by entry id.
    pub fn matching(
        &self,
        has_selector: impl Fn(&str) -> bool,
        now: SystemTime,
    ) -> Vec<(&Entry, Option<&HeldX509Svid>)> {
        self.entries
            .values()
            .filter(|entry| entry.selectors.iter().all(|s| has_selector(s)))
            .map(|entry| {
                let svid = self
                    .svids
                    .get(&entry.id)
                    .filter(|svid| svid.is_valid_at(now));
                (entry, svid)
            })
            .collect()
    }
}

/// Milliseconds since the Unix epoch.
pub fn to_unix_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The time `ms` milliseconds after the epoch (the epoch for negative values).
pub fn from_unix_ms(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

mod b64_list {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(list: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(list.iter().map(|b| STANDARD.encode(b)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|s| STANDARD.decode(s).map_err(serde::de::Error::custom))
            .collect()
    }
}

mod b64_secret {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};
    use zeroize::Zeroizing;

    pub fn serialize<S: Serializer>(bytes: &Zeroizing<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes.as_slice()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Zeroizing<Vec<u8>>, D::Error> {
        let text = Zeroizing::new(String::deserialize(d)?);
        STANDARD
            .decode(text.as_bytes())
            .map(Zeroizing::new)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn entry(id: &str, selectors: &[&str]) -> Entry {
        Entry {
            id: id.to_owned(),
            spiffe_id: format!("spiffe://example.org/{id}"),
            selectors: selectors.iter().map(|s| (*s).to_owned()).collect(),
            x509_ttl_s: 0,
            jwt_ttl_s: 0,
            dns_names: vec![],
            hint: String::new(),
            revision: 1,
        }
    }

    fn svid(id: &str, expires: i64) -> HeldX509Svid {
        HeldX509Svid {
            entry_id: id.to_owned(),
            entry_revision: 1,
            spiffe_id: format!("spiffe://example.org/{id}"),
            chain: vec![vec![1, 2, 3]],
            key_pkcs8: Zeroizing::new(vec![4, 5]),
            issued_unix_ms: 0,
            expires_unix_ms: expires,
            rotate_unix_ms: expires / 2,
        }
    }

    #[test]
    fn an_entry_matches_only_when_every_selector_is_present() {
        let mut snap = Snapshot::default();
        snap.entries
            .insert("a".into(), entry("a", &["unix:uid:0", "unix:gid:0"]));
        snap.entries
            .insert("b".into(), entry("b", &["unix:uid:1000"]));
        let have = |s: &str| ["unix:uid:0", "unix:gid:0", "unix:user:root"].contains(&s);
        let matched: Vec<&str> = snap
            .matching(have, SystemTime::now())
            .iter()
            .map(|(e, _)| e.id.as_str())
            .collect();
        assert_eq!(matched, vec!["a"]);
    }

    #[test]
    fn prune_drops_expired_svids_and_svids_of_removed_entries() {
        let mut snap = Snapshot::default();
        snap.entries.insert("a".into(), entry("a", &[]));
        snap.svids.insert("a".into(), svid("a", 2_000));
        snap.svids.insert("gone".into(), svid("gone", i64::MAX));
        assert!(snap.prune(from_unix_ms(1_000)));
        assert_eq!(snap.svids.keys().collect::<Vec<_>>(), vec!["a"]);
        assert!(snap.prune(from_unix_ms(2_000)));
        assert!(snap.svids.is_empty());
        assert!(!snap.prune(from_unix_ms(3_000)));
    }

    #[test]
    fn snapshot_round_trips_through_json() {
        let mut snap = Snapshot {
            readiness: Readiness::Ready,
            ..Snapshot::default()
        };
        snap.entries.insert("a".into(), entry("a", &["unix:uid:0"]));
        snap.svids.insert("a".into(), svid("a", 5));
        snap.bundle = Some(Bundle {
            trust_domain: "example.org".into(),
            x509_authorities: vec![vec![0xde, 0xad]],
            jwt_jwks: "{\"keys\":[]}".into(),
        });
        let json = serde_json::to_vec(&snap).unwrap();
        let back: Snapshot = serde_json::from_slice(&json).unwrap();
        assert_eq!(back, snap);
    }
}
