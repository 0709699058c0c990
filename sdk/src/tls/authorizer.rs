//! Which SPIFFE IDs a peer may have.

use std::fmt;
use std::sync::Arc;

use crate::{SpiffeId, TrustDomain};

type Predicate = dyn Fn(&SpiffeId) -> bool + Send + Sync;

/// Decides whether an authenticated peer's SPIFFE ID is acceptable.
///
/// The chain has already been verified against the trust bundle when an
/// authorizer runs: it only answers "is this the peer I want?".
#[derive(Clone)]
pub struct Authorizer {
    rule: Rule,
}

#[derive(Clone)]
enum Rule {
    Any,
    Exact(SpiffeId),
    OneOf(Vec<SpiffeId>),
    MemberOf(TrustDomain),
    Custom(Arc<Predicate>),
}

impl Authorizer {
    /// Any SPIFFE ID whose SVID chains to the bundle.
    pub fn any() -> Self {
        Authorizer { rule: Rule::Any }
    }

    /// Exactly `id`.
    pub fn exact(id: SpiffeId) -> Self {
        Authorizer {
            rule: Rule::Exact(id),
        }
    }

    /// One of `ids`.
    pub fn one_of(ids: impl IntoIterator<Item = SpiffeId>) -> Self {
        Authorizer {
            rule: Rule::OneOf(ids.into_iter().collect()),
        }
    }

    /// Any ID in `trust_domain`.
    pub fn member_of(trust_domain: TrustDomain) -> Self {
        Authorizer {
            rule: Rule::MemberOf(trust_domain),
        }
    }

    /// Whatever `predicate` accepts.
    pub fn custom(predicate: impl Fn(&SpiffeId) -> bool + Send + Sync + 'static) -> Self {
        Authorizer {
            rule: Rule::Custom(Arc::new(predicate)),
        }
    }

    /// Whether `id` is acceptable.
    pub fn authorize(&self, id: &SpiffeId) -> bool {
        match &self.rule {
            Rule::Any => true,
            Rule::Exact(expected) => expected == id,
            Rule::OneOf(ids) => ids.iter().any(|expected| expected == id),
            Rule::MemberOf(td) => id.trust_domain() == td,
            Rule::Custom(predicate) => predicate(id),
        }
    }
}

impl fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.rule {
            Rule::Any => f.write_str("Authorizer::any"),
            Rule::Exact(id) => write!(f, "Authorizer::exact({id})"),
            Rule::OneOf(ids) => {
                let ids: Vec<&str> = ids.iter().map(SpiffeId::as_str).collect();
                write!(f, "Authorizer::one_of({ids:?})")
            }
            Rule::MemberOf(td) => write!(f, "Authorizer::member_of({td})"),
            Rule::Custom(_) => f.write_str("Authorizer::custom(..)"),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn id(s: &str) -> SpiffeId {
        SpiffeId::parse(s).unwrap()
    }

    #[test]
    fn exact_accepts_only_that_id() {
        let a = Authorizer::exact(id("spiffe://example.org/a"));
        assert!(a.authorize(&id("spiffe://example.org/a")));
        assert!(!a.authorize(&id("spiffe://example.org/a/b")));
        assert!(!a.authorize(&id("spiffe://other.org/a")));
    }

    #[test]
    fn one_of_accepts_each_listed_id() {
        let a = Authorizer::one_of([id("spiffe://example.org/a"), id("spiffe://example.org/b")]);
        assert!(a.authorize(&id("spiffe://example.org/b")));
        assert!(!a.authorize(&id("spiffe://example.org/c")));
    }

    #[test]
    fn member_of_checks_the_trust_domain_not_a_prefix() {
        let a = Authorizer::member_of(TrustDomain::parse("example.org").unwrap());
        assert!(a.authorize(&id("spiffe://example.org/anything")));
        assert!(!a.authorize(&id("spiffe://example.org.evil/x")));
    }

    #[test]
    fn custom_runs_the_predicate() {
        let a = Authorizer::custom(|id| id.path().starts_with("/ops/"));
        assert!(a.authorize(&id("spiffe://example.org/ops/db")));
        assert!(!a.authorize(&id("spiffe://example.org/dev/db")));
    }
}
