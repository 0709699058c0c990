//! Key rotation as SPIRE's CA manager does it, as pure logic over an
//! injected time.
//!
//! A [`CaRotation`] holds the signing keys of one authority, each with its
//! validity window and a [`KeyState`]:
//!
//! * at most one **active** key signs;
//! * at 1/2 of the active key's lifetime a **prepared** key is minted and
//!   published in the bundle right away, so that by the time it signs,
//!   every verifier has had a third of a lifetime to learn it;
//! * at 5/6 of the active key's lifetime the prepared key becomes active and
//!   the old one **retired**; a retired key stays in the bundle until it
//!   expires, because SVIDs it signed are still in use until then;
//! * expired keys that are not active are removed.
//!
//! If the issuer was down through those instants, one [`CaRotation::advance`]
//! catches up (it prepares and activates in the same call, as SPIRE does);
//! with no active key at all it mints one and activates it at once.
//!
//! Times are unix seconds.

use serde::{Deserialize, Serialize};

/// The validity window of a key (of its CA certificate for X.509), in unix
/// seconds: valid from `not_before` up to and excluding `not_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KeyWindow {
    /// First second of validity.
    pub not_before: u64,
    /// First second after validity.
    pub not_after: u64,
}

impl KeyWindow {
    /// The window's length in seconds (0 for an inverted window).
    pub fn lifetime(&self) -> u64 {
        self.not_after.saturating_sub(self.not_before)
    }

    /// When the next key is prepared: half-way through the lifetime.
    pub fn prepare_at(&self) -> u64 {
        self.not_before + self.lifetime() / 2
    }

    /// When the next key is activated: at 5/6 of the lifetime.
    pub fn activate_at(&self) -> u64 {
        // u128 so that a window near u64::MAX cannot overflow.
        self.not_before + (u128::from(self.lifetime()) * 5 / 6) as u64
    }

    /// Whether the window has ended at `now`.
    pub fn expired(&self, now: u64) -> bool {
        now >= self.not_after
    }
}

/// Where a key is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    /// Published in the bundle, not signing yet.
    Prepared,
    /// Signing.
    Active,
    /// Replaced; published in the bundle until it expires.
    Retired,
}

/// One key under rotation.
#[derive(Debug, Clone)]
pub struct RotationSlot<K> {
    /// The key (for the authorities: the signer and its certificate).
    pub key: K,
    /// Its validity window.
    pub window: KeyWindow,
    /// Its state.
    pub state: KeyState,
}

/// A set of slots that cannot be a rotation state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RotationError {
    /// More than one slot in a state that allows at most one.
    #[error("key states: expected at most one {state:?} key, found {count}")]
    Duplicate {
        /// The state.
        state: KeyState,
        /// How many slots are in it.
        count: usize,
    },
    /// A prepared key without an active one.
    #[error("key states: expected an active key next to the prepared one, found none")]
    PreparedWithoutActive,
}

/// What one [`CaRotation::advance`] did, with the keys concerned.
#[derive(Debug, Clone)]
pub struct RotationOutcome<K> {
    /// The key minted and prepared (published).
    pub prepared: Option<K>,
    /// The key that became active.
    pub activated: Option<K>,
    /// The keys removed because they expired.
    pub pruned: Vec<K>,
}

impl<K> Default for RotationOutcome<K> {
    fn default() -> Self {
        Self {
            prepared: None,
            activated: None,
            pruned: Vec::new(),
        }
    }
}

/// The rotation state of one authority's keys. See the module docs.
#[derive(Debug, Clone)]
pub struct CaRotation<K> {
    /// Kept in minting order (oldest first).
    slots: Vec<RotationSlot<K>>,
}

impl<K> Default for CaRotation<K> {
    fn default() -> Self {
        Self { slots: Vec::new() }
    }
}

impl<K: Clone> CaRotation<K> {
    /// No keys yet: the first [`advance`](Self::advance) mints one.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds a state, e.g. from disk, oldest key first.
    ///
    /// # Errors
    /// [`RotationError`] when there is more than one active or prepared key,
    /// or a prepared key without an active one.
    pub fn from_slots(slots: Vec<RotationSlot<K>>) -> Result<Self, RotationError> {
        for state in [KeyState::Active, KeyState::Prepared] {
            let count = slots.iter().filter(|s| s.state == state).count();
            if count > 1 {
                return Err(RotationError::Duplicate { state, count });
            }
        }
        let has = |state| slots.iter().any(|s: &RotationSlot<K>| s.state == state);
        if has(KeyState::Prepared) && !has(KeyState::Active) {
            return Err(RotationError::PreparedWithoutActive);
        }
        Ok(Self { slots })
    }

    /// All slots, oldest first.
    pub fn slots(&self) -> &[RotationSlot<K>] {
        &self.slots
    }

    /// The signing key.
    pub fn active(&self) -> Option<&RotationSlot<K>> {
        self.slots.iter().find(|s| s.state == KeyState::Active)
    }

    /// The key that will sign next.
    pub fn prepared(&self) -> Option<&RotationSlot<K>> {
        self.slots.iter().find(|s| s.state == KeyState::Prepared)
    }

    /// The keys verifiers must trust at `now`: every key, whatever its
    /// state, that has not expired.
    pub fn published(&self, now: u64) -> impl Iterator<Item = &RotationSlot<K>> {
        self.slots.iter().filter(move |s| !s.window.expired(now))
    }

    /// The next instant at which [`advance`](Self::advance) will change
    /// something: preparing, activating or pruning. `None` with no keys
    /// (the next `advance` mints one immediately).
    pub fn next_change(&self) -> Option<u64> {
        let active = self.active()?;
        let mut next = if self.prepared().is_some() {
            active.window.activate_at()
        } else {
            active.window.prepare_at()
        };
        for slot in &self.slots {
            if slot.state != KeyState::Active {
                next = next.min(slot.window.not_after);
            }
        }
        Some(next)
    }

    /// Brings the state up to `now`. `mint` is called with `now` for each
    /// key needed (at most two: one to prepare, one more when a key had to
    /// be prepared and activated at once and that one also came out past
    /// its activation point — which only a window shorter than a second
    /// can do) and returns the key and its window.
    ///
    /// The state changes only when the whole call succeeds.
    ///
    /// # Errors
    /// The first error of `mint`.
    pub fn advance<E>(
        &mut self,
        now: u64,
        mut mint: impl FnMut(u64) -> Result<(K, KeyWindow), E>,
    ) -> Result<RotationOutcome<K>, E> {
        let mut next = self.clone();
        let mut outcome = RotationOutcome::default();
        next.prune(now, &mut outcome);

        // A single pass suffices unless a freshly minted key is itself past
        // its activation point; bound the catch-up so that a misbehaving
        // `mint` cannot loop forever.
        for _ in 0..2 {
            let Some(active) = next.active().map(|s| s.window) else {
                // Bootstrap (or every key expired and was pruned): the new
                // key signs at once.
                let (key, window) = mint(now)?;
                next.slots.push(RotationSlot {
                    key: key.clone(),
                    window,
                    state: KeyState::Active,
                });
                outcome.prepared = Some(key.clone());
                outcome.activated = Some(key);
                continue;
            };
            if now >= active.prepare_at() && next.prepared().is_none() {
                let (key, window) = mint(now)?;
                next.slots.push(RotationSlot {
                    key: key.clone(),
                    window,
                    state: KeyState::Prepared,
                });
                outcome.prepared = Some(key);
            }
            if now >= active.activate_at() && next.prepared().is_some() {
                for slot in &mut next.slots {
                    slot.state = match slot.state {
                        KeyState::Active => KeyState::Retired,
                        KeyState::Prepared => {
                            outcome.activated = Some(slot.key.clone());
                            KeyState::Active
                        }
                        KeyState::Retired => KeyState::Retired,
                    };
                }
                next.prune(now, &mut outcome);
                continue;
            }
            break;
        }
        *self = next;
        Ok(outcome)
    }

    /// Removes expired keys that do not sign.
    fn prune(&mut self, now: u64, outcome: &mut RotationOutcome<K>) {
        let mut kept = Vec::with_capacity(self.slots.len());
        for slot in self.slots.drain(..) {
            if slot.state != KeyState::Active && slot.window.expired(now) {
                outcome.pruned.push(slot.key);
            } else {
                kept.push(slot);
            }
        }
        self.slots = kept;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: u64 = 600;

    /// A rotation whose keys are numbered in minting order, each valid for
    /// TTL seconds from its minting.
    struct Harness {
        rotation: CaRotation<u32>,
        minted: u32,
    }

    impl Harness {
        fn new() -> Self {
            Self {
                rotation: CaRotation::new(),
                minted: 0,
            }
        }

        fn at(&mut self, now: u64) -> RotationOutcome<u32> {
            let minted = &mut self.minted;
            self.rotation
                .advance(now, |t| {
                    *minted += 1;
                    Ok::<_, ()>((
                        *minted,
                        KeyWindow {
                            not_before: t,
                            not_after: t + TTL,
                        },
                    ))
                })
                .expect("mint never fails here")
        }

        fn active(&self) -> Option<u32> {
            self.rotation.active().map(|s| s.key)
        }

        fn prepared(&self) -> Option<u32> {
            self.rotation.prepared().map(|s| s.key)
        }

        fn published(&self, now: u64) -> Vec<u32> {
            self.rotation.published(now).map(|s| s.key).collect()
        }
    }

    #[test]
    fn bootstrap_mints_and_activates() {
        let mut h = Harness::new();
        assert_eq!(h.rotation.next_change(), None);
        let out = h.at(1000);
        assert_eq!(out.prepared, Some(1));
        assert_eq!(out.activated, Some(1));
        assert_eq!(h.active(), Some(1));
        assert_eq!(h.prepared(), None);
        assert_eq!(h.published(1000), [1]);
        assert_eq!(h.rotation.next_change(), Some(1300));
    }

    #[test]
    fn full_cycle_prepare_half_activate_five_sixths_prune_at_expiry() {
        let mut h = Harness::new();
        h.at(0); // key 1: [0, 600)

        // Before half-life nothing happens.
        let out = h.at(299);
        assert!(out.prepared.is_none() && out.activated.is_none() && out.pruned.is_empty());
        assert_eq!(h.prepared(), None);

        // At exactly 1/2 the next key is prepared and published, not active.
        let out = h.at(300);
        assert_eq!(out.prepared, Some(2)); // key 2: [300, 900)
        assert_eq!(out.activated, None);
        assert_eq!((h.active(), h.prepared()), (Some(1), Some(2)));
        assert_eq!(h.published(300), [1, 2]);
        assert_eq!(h.rotation.next_change(), Some(500));

        // Still one signer just before 5/6.
        assert!(h.at(499).activated.is_none());
        assert_eq!(h.active(), Some(1));

        // At exactly 5/6 the prepared key signs; the old one is retired but
        // still published.
        let out = h.at(500);
        assert_eq!(out.activated, Some(2));
        assert_eq!(out.prepared, None);
        assert_eq!((h.active(), h.prepared()), (Some(2), None));
        assert_eq!(h.rotation.slots()[0].state, KeyState::Retired);
        assert_eq!(h.published(500), [1, 2]);
        assert_eq!(h.rotation.next_change(), Some(600));

        // The retired key stays until its expiry...
        assert!(h.at(599).pruned.is_empty());
        assert_eq!(h.published(599), [1, 2]);
        // ...and is gone at its expiry. Key 2 (minted at 300) reaches its
        // own half-life at 600 too, so key 3 is prepared in the same call.
        let out = h.at(600);
        assert_eq!(out.pruned, [1]);
        assert_eq!(out.prepared, Some(3));
        assert_eq!(h.published(600), [2, 3]);
        assert_eq!(h.rotation.slots().len(), 2);
    }

    #[test]
    fn steady_state_never_has_more_than_three_keys_and_always_one_signer() {
        let mut h = Harness::new();
        for now in (0..10 * TTL).step_by(7) {
            h.at(now);
            assert!(h.active().is_some(), "{now}");
            assert!(h.rotation.slots().len() <= 3, "{now}: {:?}", h.rotation);
            let active = h.rotation.active().expect("active").window;
            assert!(!active.expired(now), "{now}");
            // Every published key is valid now; the signer has at least
            // 1/6 of a lifetime left (it was activated at its
            // predecessor's 5/6 with a full lifetime of its own).
            for slot in h.rotation.published(now) {
                assert!(slot.window.not_before <= now && now < slot.window.not_after);
            }
        }
    }

    #[test]
    fn catch_up_after_downtime_prepares_and_activates_at_once() {
        let mut h = Harness::new();
        h.at(0);
        // Down from 0 to 550: past both thresholds, nothing prepared.
        let out = h.at(550);
        assert_eq!(out.prepared, Some(2));
        assert_eq!(out.activated, Some(2));
        assert_eq!(h.active(), Some(2));
        // The old key is still valid until 600: still published.
        assert_eq!(h.published(550), [1, 2]);
    }

    #[test]
    fn everything_expired_restarts_with_a_fresh_key() {
        let mut h = Harness::new();
        h.at(0);
        h.at(300); // prepared 2
        let out = h.at(5000); // 1 and 2 long expired
        assert_eq!(out.activated, Some(3), "{out:?}");
        assert_eq!(h.active(), Some(3));
        assert_eq!(h.published(5000), [3]);
        assert!(out.pruned.contains(&1) && out.pruned.contains(&2));
    }

    #[test]
    fn failed_mint_changes_nothing() {
        let mut h = Harness::new();
        h.at(0);
        h.at(300);
        h.at(500); // 1 retired, 2 active
        let before: Vec<_> = h
            .rotation
            .slots()
            .iter()
            .map(|s| (s.key, s.state))
            .collect();
        // At 600: 1 expires (prune) and 2 wants a prepared key; mint fails.
        let result = h
            .rotation
            .advance(600, |_| Err::<(u32, KeyWindow), _>("boom"));
        assert_eq!(result.err(), Some("boom"));
        let after: Vec<_> = h
            .rotation
            .slots()
            .iter()
            .map(|s| (s.key, s.state))
            .collect();
        assert_eq!(before, after);
    }

    #[test]
    fn from_slots_validates() {
        let w = KeyWindow {
            not_before: 0,
            not_after: 10,
        };
        let slot = |key, state| RotationSlot {
            key,
            window: w,
            state,
        };
        assert!(
            CaRotation::from_slots(vec![slot(1, KeyState::Active), slot(2, KeyState::Retired)])
                .is_ok()
        );
        assert_eq!(
            CaRotation::from_slots(vec![slot(1, KeyState::Active), slot(2, KeyState::Active)])
                .err(),
            Some(RotationError::Duplicate {
                state: KeyState::Active,
                count: 2
            })
        );
        assert_eq!(
            CaRotation::from_slots(vec![slot(1, KeyState::Prepared)]).err(),
            Some(RotationError::PreparedWithoutActive)
        );
    }

    #[test]
    fn thresholds() {
        let w = KeyWindow {
            not_before: 100,
            not_after: 100 + 86_400,
        };
        assert_eq!(w.lifetime(), 86_400);
        assert_eq!(w.prepare_at(), 100 + 43_200);
        assert_eq!(w.activate_at(), 100 + 72_000);
        let inverted = KeyWindow {
            not_before: 10,
            not_after: 5,
        };
        assert_eq!(inverted.lifetime(), 0);
        assert_eq!(inverted.activate_at(), 10);
        let huge = KeyWindow {
            not_before: 0,
            not_after: u64::MAX,
        };
        assert_eq!(huge.activate_at(), (u128::from(u64::MAX) * 5 / 6) as u64);
    }
}
