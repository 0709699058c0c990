//! TCG event logs (TCG PC Client Platform Firmware Profile): parsing,
//! replay into PCR values, comparison with a quote, and typed views of the
//! events node policy looks at.
//!
//! Both formats firmware hands to the OS are read: crypto-agile logs (a
//! SHA-1-format "Spec ID Event03" header, then TCG_PCR_EVENT2 records with a
//! digest per bank) and legacy SHA-1 logs (TCG_PCR_EVENT records only).
//!
//! A log is only evidence once its replay matches a quote
//! ([`EventLog::check_quote`]); before that, nothing in it is trusted. Even
//! then only the digests are vouched for — see [`events`] for which views
//! also check the data against them.

pub mod error;
pub mod events;
mod parse;
mod replay;

pub use error::{EventLogError, Location, ReplayMismatch};
pub use events::{BootApplication, EfiGuid, EfiVariable, UefiVariableData, event_type_name};
pub use parse::parse;
pub use replay::{compare_with_quote, replay_json, replay_json_pretty};

use std::fmt;
use std::ops::Range;
use std::sync::{Arc, OnceLock};

use sha2::Digest as _;

use crate::tpm::HashAlg;

/// Bounds on what [`parse`] accepts, so a hostile log cannot make the
/// issuer allocate or work without limit.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EventLogLimits {
    /// Largest log, in bytes.
    pub max_log_bytes: usize,
    /// Most events, counting the Spec ID header.
    pub max_events: usize,
    /// Largest data of one event, in bytes.
    pub max_event_data: usize,
}

impl Default for EventLogLimits {
    /// 2 MiB, 10 000 events, 1 MiB per event: well above real firmware logs
    /// (tens to a few hundred KiB, hundreds to a few thousand events, the
    /// largest single event a dbx of tens of KiB), far below what would
    /// strain the issuer.
    fn default() -> Self {
        EventLogLimits {
            max_log_bytes: 2 * 1024 * 1024,
            max_events: 10_000,
            max_event_data: 1024 * 1024,
        }
    }
}

/// Which record format the log uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LogFormat {
    /// Spec ID Event03 header and TCG_PCR_EVENT2 records (TPM 2.0 firmware).
    CryptoAgile,
    /// TCG_PCR_EVENT records with SHA-1 digests only.
    Sha1Legacy,
}

/// A (TPM_ALG_ID, digest size) pair declared by the Spec ID header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlgorithmSize {
    /// TPM_ALG_ID, possibly one [`HashAlg`] does not know (e.g. SM3_256).
    pub alg_id: u16,
    /// Digest size in bytes.
    pub digest_size: u16,
}

/// The TCG_EfiSpecIDEvent header of a crypto-agile log.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SpecIdEvent {
    /// platformClass (0 client, 1 server).
    pub platform_class: u32,
    /// specVersionMinor.
    pub spec_version_minor: u8,
    /// specVersionMajor.
    pub spec_version_major: u8,
    /// specErrata.
    pub spec_errata: u8,
    /// uintnSize (1 for 32-bit UINTN, 2 for 64-bit).
    pub uintn_size: u8,
    /// Every algorithm of the log with its digest size, in header order,
    /// including algorithms [`HashAlg`] does not know.
    pub algorithms: Vec<AlgorithmSize>,
    /// vendorInfo.
    pub vendor_info: Vec<u8>,
}

/// Number of banks an event can carry a digest for: one per [`HashAlg`].
const BANKS: usize = HashAlg::ALL.len();

/// One event of the log.
///
/// Digests and data are ranges into the log's one shared buffer rather than
/// allocations of their own: a 150-event log would otherwise cost some 750
/// allocations, more than its parsing.
#[derive(Clone)]
#[non_exhaustive]
pub struct Event {
    /// Position in the log; the Spec ID header of a crypto-agile log is 0.
    pub index: usize,
    /// Byte offset of the record in the log.
    pub offset: usize,
    /// PCR index (0–23 for measured events; EV_NO_ACTION may say anything).
    pub pcr: u32,
    /// Event type (see the `EV_*` constants in [`events`]).
    pub event_type: u32,
    raw: Arc<[u8]>,
    /// Where each known bank's digest starts in `raw`, by position in
    /// [`HashAlg::ALL`]; its length is the algorithm's digest length.
    digests: [Option<usize>; BANKS],
    data: Range<usize>,
}

impl Event {
    /// The event data.
    pub fn data(&self) -> &[u8] {
        // The parser only stores ranges it has read, so this never falls back.
        self.raw.get(self.data.clone()).unwrap_or(&[])
    }

    /// The digests of the banks [`HashAlg`] knows, in [`HashAlg::ALL`] order.
    /// Digests of other algorithms the header declares are skipped. Empty for
    /// the Spec ID header event.
    pub fn digests(&self) -> impl Iterator<Item = (HashAlg, &[u8])> + '_ {
        HashAlg::ALL
            .into_iter()
            .filter_map(|alg| Some((alg, self.digest(alg)?)))
    }

    /// The digest of one bank, if the event carries it.
    pub fn digest(&self, alg: HashAlg) -> Option<&[u8]> {
        let start = (*self.digests.get(bank_slot(alg)?)?)?;
        self.raw.get(start..start.checked_add(alg.digest_len())?)
    }
}

/// Position of a bank in [`HashAlg::ALL`].
fn bank_slot(alg: HashAlg) -> Option<usize> {
    HashAlg::ALL.iter().position(|a| *a == alg)
}

impl fmt::Debug for Event {
    // The shared buffer is the whole log; show this event's parts only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("index", &self.index)
            .field("offset", &self.offset)
            .field("pcr", &self.pcr)
            .field(
                "event_type",
                &event_type_name(self.event_type).unwrap_or("unknown"),
            )
            .field(
                "digests",
                &self
                    .digests()
                    .map(|(alg, d)| format!("{alg}:{}", hex::encode(d)))
                    .collect::<Vec<_>>(),
            )
            .field("data_len", &self.data.len())
            .finish()
    }
}

impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        (self.index, self.offset, self.pcr, self.event_type)
            == (other.index, other.offset, other.pcr, other.event_type)
            && self.digests().eq(other.digests())
            && self.data() == other.data()
    }
}

impl Eq for Event {}

/// A parsed TCG event log. It keeps one copy of the raw bytes, which its
/// events point into.
///
/// Two logs are equal when their raw bytes are: everything else is parsed
/// from them.
#[derive(Clone)]
pub struct EventLog {
    raw: Arc<[u8]>,
    format: LogFormat,
    banks: Vec<HashAlg>,
    spec_id: Option<SpecIdEvent>,
    startup_locality: Option<u8>,
    events: Vec<Event>,
    /// SHA-256 of `raw`, computed on first use: on a 150-event log it costs
    /// as much as parsing and a SHA-256 replay together, and not every
    /// caller needs it.
    raw_sha256: OnceLock<[u8; 32]>,
}

impl PartialEq for EventLog {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}

impl Eq for EventLog {}

impl EventLog {
    /// Parses a log; see [`parse`].
    ///
    /// # Errors
    ///
    /// As [`parse`].
    pub fn parse(bytes: &[u8], limits: &EventLogLimits) -> Result<EventLog, EventLogError> {
        parse(bytes, limits)
    }

    /// The record format.
    pub fn format(&self) -> LogFormat {
        self.format
    }

    /// The banks the log carries: those of the Spec ID header that
    /// [`HashAlg`] knows, in header order, or SHA-1 for a legacy log.
    pub fn banks(&self) -> &[HashAlg] {
        &self.banks
    }

    /// The Spec ID header, for crypto-agile logs.
    pub fn spec_id(&self) -> Option<&SpecIdEvent> {
        self.spec_id.as_ref()
    }

    /// The locality of TPM2_Startup from a StartupLocality EV_NO_ACTION
    /// event, if the log has one; it sets PCR 0's initial value.
    pub fn startup_locality(&self) -> Option<u8> {
        self.startup_locality
    }

    /// Every event, in log order, EV_NO_ACTION included.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// The raw log bytes, as given to [`parse`].
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// SHA-256 of the raw log bytes (computed once, on first call).
    pub fn raw_sha256(&self) -> &[u8; 32] {
        self.raw_sha256
            .get_or_init(|| sha2::Sha256::digest(&self.raw).into())
    }

    /// SHA-256 of the raw log bytes, lowercase hex: the event-log digest the
    /// verdict records.
    pub fn sha256_of_raw(&self) -> String {
        hex::encode(self.raw_sha256())
    }
}

impl fmt::Debug for EventLog {
    // The raw bytes are summarised by their length and digest.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventLog")
            .field("format", &self.format)
            .field("banks", &self.banks)
            .field("spec_id", &self.spec_id)
            .field("startup_locality", &self.startup_locality)
            .field("len", &self.raw.len())
            .field("sha256", &self.sha256_of_raw())
            .field("events", &self.events)
            .finish()
    }
}

/// SHA-256 of raw log bytes, lowercase hex (what [`EventLog::sha256_of_raw`]
/// returns after a successful parse).
pub fn log_digest(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}
