//! What the attestor serves its workloads, in memory ([`state`]) and sealed
//! on disk ([`sealed`]).

pub mod sealed;
pub mod state;

pub use sealed::{CacheError, SealedCache};
pub use state::{Bundle, Entry, HeldX509Svid, Readiness, Snapshot};
