//! Per-node attestation rate limit: a sliding one-minute window in memory,
//! keyed by EK hash.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Most distinct nodes tracked at once; beyond it, idle windows are pruned
/// first and, if still full, new nodes are refused (the map cannot grow
/// without bound under a flood of made-up EKs).
const MAX_TRACKED: usize = 100_000;

/// The window length.
const WINDOW: Duration = Duration::from_secs(60);

/// A sliding-window limiter: at most `limit` attempts per key per minute.
#[derive(Debug)]
pub struct RateLimiter {
    limit: u32,
    windows: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl RateLimiter {
    /// A limiter allowing `limit` attempts per key per minute (at least 1).
    pub fn new(limit: u32) -> Self {
        RateLimiter {
            limit: limit.max(1),
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Attempts allowed per minute.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// Counts an attempt for `key` at `now`; `Err(wait)` when the key is
    /// over its limit, with how long until the oldest attempt leaves the
    /// window.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        if !windows.contains_key(key) && windows.len() >= MAX_TRACKED {
            windows.retain(|_, w| {
                prune(w, now);
                !w.is_empty()
            });
            if windows.len() >= MAX_TRACKED {
                return Err(WINDOW);
            }
        }
        let window = windows.entry(key.to_owned()).or_default();
        prune(window, now);
        if window.len() >= self.limit as usize {
            let oldest = window.front().copied().unwrap_or(now);
            return Err(WINDOW.saturating_sub(now.saturating_duration_since(oldest)));
        }
        window.push_back(now);
        Ok(())
    }
}

fn prune(window: &mut VecDeque<Instant>, now: Instant) {
    while let Some(&first) = window.front() {
        if now.saturating_duration_since(first) >= WINDOW {
            window.pop_front();
        } else {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_limit_then_refuses_until_the_window_slides() {
        let limiter = RateLimiter::new(2);
        let t0 = Instant::now();
        assert!(limiter.check("a", t0).is_ok());
        assert!(limiter.check("a", t0).is_ok());
        assert!(limiter.check("a", t0).is_err());
        assert!(limiter.check("b", t0).is_ok());
        assert!(limiter.check("a", t0 + WINDOW).is_ok());
    }
}
