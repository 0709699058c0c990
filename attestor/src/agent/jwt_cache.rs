//! JWT-SVIDs cached per entry and audience set, reused until half their
//! lifetime has passed.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::SystemTime;

use crate::cache::state::to_unix_ms;

/// A cached token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedJwt {
    /// The SPIFFE ID (`sub`).
    pub spiffe_id: String,
    /// The compact JWS.
    pub token: String,
    /// When it was minted, ms since the epoch.
    pub issued_unix_ms: i64,
    /// Its `exp`, ms since the epoch.
    pub expires_unix_ms: i64,
}

impl CachedJwt {
    /// Whether it is still worth handing out at `now`: less than half of its
    /// lifetime has passed.
    fn is_fresh(&self, now: SystemTime) -> bool {
        let half = self.issued_unix_ms + (self.expires_unix_ms - self.issued_unix_ms) / 2;
        to_unix_ms(now) < half
    }
}

type Key = (String, Vec<String>);

/// A bounded cache of JWT-SVIDs.
#[derive(Debug)]
pub struct JwtCache {
    capacity: usize,
    tokens: Mutex<HashMap<Key, CachedJwt>>,
}

impl JwtCache {
    /// Holds at most `capacity` tokens.
    pub fn new(capacity: usize) -> Self {
        JwtCache {
            capacity: capacity.max(1),
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// The audience set as a key: sorted, without duplicates.
    fn key(entry_id: &str, audience: &[String]) -> Key {
        let mut audience = audience.to_vec();
        audience.sort();
        audience.dedup();
        (entry_id.to_owned(), audience)
    }

    /// A fresh token for `entry_id` and `audience`, if one is cached.
    pub fn get(&self, entry_id: &str, audience: &[String], now: SystemTime) -> Option<CachedJwt> {
        let tokens = self
            .tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        tokens
            .get(&Self::key(entry_id, audience))
            .filter(|t| t.is_fresh(now))
            .cloned()
    }

    /// A cached token for `entry_id` and `audience` that has not expired,
    /// however old (used when the issuer cannot mint a new one).
    pub fn get_unexpired(
        &self,
        entry_id: &str,
        audience: &[String],
        now: SystemTime,
    ) -> Option<CachedJwt> {
        let tokens = self
            .tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        tokens
            .get(&Self::key(entry_id, audience))
            .filter(|t| t.expires_unix_ms > to_unix_ms(now))
            .cloned()
    }

    /// Caches `token`, evicting expired tokens (and, when still full, the
    /// one closest to expiry).
    pub fn insert(&self, entry_id: &str, audience: &[String], token: CachedJwt, now: SystemTime) {
        let mut tokens = self
            .tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if tokens.len() >= self.capacity {
            let now_ms = to_unix_ms(now);
            tokens.retain(|_, t| t.expires_unix_ms > now_ms);
            if tokens.len() >= self.capacity
                && let Some(oldest) = tokens
                    .iter()
                    .min_by_key(|(_, t)| t.expires_unix_ms)
                    .map(|(k, _)| k.clone())
            {
                tokens.remove(&oldest);
            }
        }
        tokens.insert(Self::key(entry_id, audience), token);
    }

    /// Drops the tokens of entries for which `keep` is false.
    pub fn retain_entries(&self, keep: impl Fn(&str) -> bool) {
        self.tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|(entry_id, _), _| keep(entry_id));
    }

    /// Number of cached tokens.
    pub fn len(&self) -> usize {
        self.tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::state::from_unix_ms;

    fn jwt(issued: i64, expires: i64) -> CachedJwt {
        CachedJwt {
            spiffe_id: "spiffe://example.org/a".into(),
            token: format!("t{issued}"),
            issued_unix_ms: issued,
            expires_unix_ms: expires,
        }
    }

    #[test]
    fn audience_order_does_not_matter_and_stale_tokens_are_not_served() {
        let cache = JwtCache::new(10);
        let aud = vec!["b".to_owned(), "a".to_owned()];
        cache.insert("e", &aud, jwt(1_000, 3_000), from_unix_ms(1_000));
        let swapped = vec!["a".to_owned(), "b".to_owned(), "a".to_owned()];
        assert!(cache.get("e", &swapped, from_unix_ms(1_500)).is_some());
        assert!(
            cache.get("e", &swapped, from_unix_ms(2_000)).is_none(),
            "half-life passed"
        );
        assert!(cache.get("other", &aud, from_unix_ms(1_500)).is_none());
    }

    #[test]
    fn capacity_is_enforced_by_evicting_the_soonest_to_expire() {
        let cache = JwtCache::new(2);
        let now = from_unix_ms(0);
        cache.insert("a", &["x".into()], jwt(0, 100), now);
        cache.insert("b", &["x".into()], jwt(0, 200), now);
        cache.insert("c", &["x".into()], jwt(0, 300), now);
        assert_eq!(cache.len(), 2);
        assert!(cache.get("a", &["x".into()], now).is_none());
        assert!(cache.get("c", &["x".into()], now).is_some());
    }

    #[test]
    fn removed_entries_lose_their_tokens() {
        let cache = JwtCache::new(10);
        let now = from_unix_ms(0);
        cache.insert("a", &["x".into()], jwt(0, 100), now);
        cache.insert("b", &["x".into()], jwt(0, 100), now);
        cache.retain_entries(|id| id == "b");
        assert!(cache.get("a", &["x".into()], now).is_none());
        assert!(cache.get("b", &["x".into()], now).is_some());
    }
}
