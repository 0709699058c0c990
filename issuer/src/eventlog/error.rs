//! Errors of event-log parsing and of comparing a replay with a quote.

use std::fmt;

use crate::tpm::HashAlg;

/// Where in the log a problem was found.
///
/// Offsets are byte offsets from the start of the log, so an admin can find
/// the spot with `xxd -s OFFSET`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// Index of the event (the Spec ID header of a crypto-agile log is event 0,
    /// as in `tpm2_eventlog`).
    pub event: usize,
    /// Offset of the first byte of the event.
    pub event_offset: usize,
    /// Name of the field being read, as the TCG specification spells it.
    pub field: &'static str,
    /// Offset of the first byte of that field.
    pub field_offset: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "event {} at offset {:#x}, field {} at {:#x}",
            self.event, self.event_offset, self.field, self.field_offset
        )
    }
}

/// Why an event log was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventLogError {
    /// The log has no bytes at all.
    #[error("event log is empty")]
    Empty,
    /// The log is nothing but zero bytes (unused firmware log area).
    #[error("event log is {len} zero bytes and holds no event")]
    AllZero {
        /// Length of the log.
        len: usize,
    },
    /// The log is larger than [`EventLogLimits::max_log_bytes`](super::EventLogLimits).
    #[error("event log is {size} bytes, over the limit of {limit} bytes")]
    TooLarge {
        /// Length of the log.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The log has more events than [`EventLogLimits::max_events`](super::EventLogLimits).
    #[error("event log has more than {limit} events (event {limit} starts at offset {offset:#x})")]
    TooManyEvents {
        /// The configured limit.
        limit: usize,
        /// Offset of the first event over the limit.
        offset: usize,
    },
    /// A field runs past the end of the log (or of its enclosing event data).
    #[error("{at}: truncated: needs {needed} bytes, {left} left")]
    Truncated {
        /// Where.
        at: Location,
        /// Bytes the field needs.
        needed: usize,
        /// Bytes that were left.
        left: usize,
    },
    /// An event's data size runs past the end of the log.
    #[error("{at}: event data size {size} exceeds the {left} bytes left")]
    EventDataOverflow {
        /// Where.
        at: Location,
        /// The declared event data size.
        size: u32,
        /// Bytes left in the log after the size field.
        left: usize,
    },
    /// An event's data is larger than [`EventLogLimits::max_event_data`](super::EventLogLimits).
    #[error("{at}: event data size {size} exceeds the limit of {limit} bytes")]
    EventDataTooLarge {
        /// Where.
        at: Location,
        /// The declared event data size.
        size: u32,
        /// The configured limit.
        limit: usize,
    },
    /// A crypto-agile event's digest count differs from the number of
    /// algorithms the Spec ID header declares.
    #[error(
        "{at}: digest count {count}, expected {expected} (one per algorithm of the Spec ID header)"
    )]
    DigestCountMismatch {
        /// Where.
        at: Location,
        /// The count in the event.
        count: u32,
        /// The number of algorithms in the header.
        expected: usize,
    },
    /// A crypto-agile event carries a digest of an algorithm the Spec ID
    /// header does not declare, so its size is unknown.
    #[error("{at}: digest algorithm {alg_id:#06x} is not declared in the Spec ID header")]
    UndeclaredAlgorithm {
        /// Where.
        at: Location,
        /// The TPM_ALG_ID found.
        alg_id: u16,
    },
    /// A crypto-agile event carries two digests of one algorithm.
    #[error("{at}: second digest of algorithm {alg_id:#06x} in one event")]
    DuplicateDigest {
        /// Where.
        at: Location,
        /// The repeated TPM_ALG_ID.
        alg_id: u16,
    },
    /// A measured event names a PCR a TPM does not have.
    #[error("{at}: PCR index {pcr} is out of range 0-23 for a measured event")]
    PcrIndexOutOfRange {
        /// Where.
        at: Location,
        /// The PCR index found.
        pcr: u32,
    },
    /// The Spec ID Event03 header is malformed.
    #[error("{at}: invalid Spec ID Event03 header: {reason}")]
    InvalidSpecId {
        /// Where.
        at: Location,
        /// What is wrong.
        reason: String,
    },
    /// A StartupLocality event is malformed or repeated.
    #[error("{at}: invalid StartupLocality event: {reason}")]
    InvalidStartupLocality {
        /// Where.
        at: Location,
        /// What is wrong.
        reason: String,
    },
}

/// Why an event-log replay does not match quoted PCR values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayMismatch {
    /// The log has events for this PCR, but they replay to another value.
    #[error(
        "{bank} PCR {pcr}: event log replays to {}, the quote has {}",
        hex::encode(replayed),
        hex::encode(quoted)
    )]
    ValueDiffers {
        /// The bank.
        bank: HashAlg,
        /// The PCR index.
        pcr: u32,
        /// Value the log replays to.
        replayed: Vec<u8>,
        /// Value in the quote.
        quoted: Vec<u8>,
    },
    /// The quoted PCR is not at its reset value, yet the log has no events for it.
    #[error(
        "{bank} PCR {pcr} was extended (quoted {}) but the log has no events for it",
        hex::encode(quoted)
    )]
    NoEvents {
        /// The bank.
        bank: HashAlg,
        /// The PCR index.
        pcr: u32,
        /// Value in the quote.
        quoted: Vec<u8>,
    },
    /// The quote selects a bank the log does not carry.
    #[error("the quote selects {bank} PCRs but the log carries no {bank} bank")]
    BankNotInLog {
        /// The bank.
        bank: HashAlg,
    },
}
