//! The binary parser: TCG_PCR_EVENT (SHA-1 format) and TCG_PCR_EVENT2
//! (crypto-agile) records.
//!
//! Everything read here is attacker-controlled, so every length is checked
//! against what is left before it is used, all arithmetic is checked, and no
//! slice is indexed directly.

use std::ops::Range;
use std::sync::{Arc, OnceLock};

use super::error::{EventLogError, Location};
use super::events::EV_NO_ACTION;
use super::{
    AlgorithmSize, BANKS, Event, EventLog, EventLogLimits, LogFormat, SpecIdEvent, bank_slot,
};
use crate::tpm::HashAlg;

/// Signature of the crypto-agile header event (TCG_EfiSpecIDEvent), with its NUL.
const SPEC_ID_SIGNATURE: &[u8; 16] = b"Spec ID Event03\0";
/// Signature of TCG_EfiStartupLocalityEvent, with its NUL.
const STARTUP_LOCALITY_SIGNATURE: &[u8; 16] = b"StartupLocality\0";
/// TCG_EfiStartupLocalityEvent: the signature and a one-byte locality.
const STARTUP_LOCALITY_EVENT_LEN: usize = 17;
/// Size of a SHA-1 digest, the only digest of TCG_PCR_EVENT records.
const SHA1_LEN: usize = 20;
/// Highest PCR index of a PC Client TPM; measured events beyond it cannot
/// have been extended into any TPM.
const MAX_PCR: u32 = 23;
/// Cap on numberOfAlgorithms in the Spec ID header. The TCG algorithm
/// registry has a handful of hash algorithms; the cap keeps the per-event
/// duplicate check a small fixed array.
const MAX_SPEC_ID_ALGORITHMS: usize = 32;

/// A cursor over the log that knows absolute offsets, so errors can name them.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// Absolute offset of `bytes[0]` in the log (non-zero when reading the
    /// inside of an event's data).
    base: usize,
}

/// The event being read, for error locations.
#[derive(Clone, Copy)]
struct Ctx {
    index: usize,
    offset: usize,
}

impl Ctx {
    fn at(self, field: &'static str, field_offset: usize) -> Location {
        Location {
            event: self.index,
            event_offset: self.offset,
            field,
            field_offset,
        }
    }
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8], base: usize) -> Self {
        Reader {
            bytes,
            pos: 0,
            base,
        }
    }

    /// Absolute offset of the next byte.
    fn offset(&self) -> usize {
        self.base.saturating_add(self.pos)
    }

    fn left(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }

    fn take(&mut self, ctx: Ctx, field: &'static str, n: usize) -> Result<&'a [u8], EventLogError> {
        let end = self.pos.checked_add(n);
        match end.and_then(|end| Some((end, self.bytes.get(self.pos..end)?))) {
            Some((end, slice)) => {
                self.pos = end;
                Ok(slice)
            }
            None => Err(EventLogError::Truncated {
                at: ctx.at(field, self.offset()),
                needed: n,
                left: self.left(),
            }),
        }
    }

    fn array<const N: usize>(
        &mut self,
        ctx: Ctx,
        field: &'static str,
    ) -> Result<[u8; N], EventLogError> {
        let at = self.offset();
        let left = self.left();
        let slice = self.take(ctx, field, N)?;
        // `take` returned exactly N bytes; the fallback only satisfies the type.
        slice.try_into().map_err(|_| EventLogError::Truncated {
            at: ctx.at(field, at),
            needed: N,
            left,
        })
    }

    fn u8(&mut self, ctx: Ctx, field: &'static str) -> Result<u8, EventLogError> {
        self.array::<1>(ctx, field).map(|[b]| b)
    }

    fn u16(&mut self, ctx: Ctx, field: &'static str) -> Result<u16, EventLogError> {
        self.array(ctx, field).map(u16::from_le_bytes)
    }

    fn u32(&mut self, ctx: Ctx, field: &'static str) -> Result<u32, EventLogError> {
        self.array(ctx, field).map(u32::from_le_bytes)
    }

    /// Reads the event data size field and the data it announces, checking
    /// the size against what is left and against the limit. Returns where
    /// the data is.
    fn event_data(
        &mut self,
        ctx: Ctx,
        limits: &EventLogLimits,
    ) -> Result<Range<usize>, EventLogError> {
        let size_offset = self.offset();
        let size = self.u32(ctx, "eventSize")?;
        let left = self.left();
        let at = || ctx.at("eventSize", size_offset);
        let Ok(len) = usize::try_from(size) else {
            return Err(EventLogError::EventDataOverflow {
                at: at(),
                size,
                left,
            });
        };
        if len > left {
            return Err(EventLogError::EventDataOverflow {
                at: at(),
                size,
                left,
            });
        }
        if len > limits.max_event_data {
            return Err(EventLogError::EventDataTooLarge {
                at: at(),
                size,
                limit: limits.max_event_data,
            });
        }
        let start = self.offset();
        self.take(ctx, "event", len)?;
        Ok(start..self.offset())
    }
}

/// Parses a TCG event log, crypto-agile or legacy SHA-1.
///
/// The format is told by the first record, which is always in SHA-1 format:
/// an EV_NO_ACTION event whose data starts with "Spec ID Event03" makes the
/// log crypto-agile, anything else makes it a legacy SHA-1 log. Zero bytes
/// after the last event are tolerated (some firmware hands over its whole
/// pre-allocated log area); any other trailing byte must parse as an event.
///
/// # Errors
///
/// [`EventLogError`] for a log over `limits`, a truncated or inconsistent
/// record (naming the event, its offset and the field), a malformed Spec ID
/// or StartupLocality event, or a measured event on a PCR above 23.
pub fn parse(bytes: &[u8], limits: &EventLogLimits) -> Result<EventLog, EventLogError> {
    if bytes.is_empty() {
        return Err(EventLogError::Empty);
    }
    if bytes.len() > limits.max_log_bytes {
        return Err(EventLogError::TooLarge {
            size: bytes.len(),
            limit: limits.max_log_bytes,
        });
    }
    // Everything from `content_end` on is zero padding. Computed once so the
    // padding check per event is O(1): a per-event scan of the rest would be
    // quadratic on a log of many all-zero legacy records.
    let content_end = match bytes.iter().rposition(|&b| b != 0) {
        Some(last) => last.saturating_add(1),
        None => return Err(EventLogError::AllZero { len: bytes.len() }),
    };

    if limits.max_events == 0 {
        return Err(EventLogError::TooManyEvents {
            limit: 0,
            offset: 0,
        });
    }

    // One copy of the log, shared by every event, instead of an allocation
    // per digest and per data.
    let raw: Arc<[u8]> = Arc::from(bytes);
    let mut reader = Reader::new(bytes, 0);
    let first_ctx = Ctx {
        index: 0,
        offset: 0,
    };
    let first = read_sha1_event(&mut reader, first_ctx, limits)?;
    let first_data = slice(bytes, &first.data);
    let spec_id = if first.event_type == EV_NO_ACTION && first_data.starts_with(SPEC_ID_SIGNATURE) {
        Some(parse_spec_id(first_data, first_ctx, first.data.start)?)
    } else {
        None
    };

    let mut log = EventLog {
        raw: Arc::clone(&raw),
        format: if spec_id.is_some() {
            LogFormat::CryptoAgile
        } else {
            LogFormat::Sha1Legacy
        },
        banks: match &spec_id {
            Some(spec) => spec
                .algorithms
                .iter()
                .filter_map(|a| HashAlg::from_tpm_alg_id(a.alg_id))
                .collect(),
            None => vec![HashAlg::Sha1],
        },
        startup_locality: None,
        spec_id,
        events: Vec::new(),
        raw_sha256: OnceLock::new(),
    };

    // The header event is kept as event 0 so indexes match `tpm2_eventlog`;
    // its 20 zero bytes are a format placeholder, not a SHA-1 measurement, so
    // it carries no digest in a crypto-agile log.
    let first_event = if log.spec_id.is_some() {
        first.into_event(first_ctx, &raw, false)
    } else {
        check_event(
            &mut log,
            first_ctx,
            first.pcr,
            first.event_type,
            first_data,
            first.data.start,
        )?;
        first.into_event(first_ctx, &raw, true)
    };
    log.events.push(first_event);

    while reader.offset() < content_end {
        let ctx = Ctx {
            index: log.events.len(),
            offset: reader.offset(),
        };
        if ctx.index >= limits.max_events {
            return Err(EventLogError::TooManyEvents {
                limit: limits.max_events,
                offset: ctx.offset,
            });
        }
        let event = match &log.spec_id {
            Some(spec) => read_agile_event(&mut reader, ctx, spec, limits, &raw)?,
            None => read_sha1_event(&mut reader, ctx, limits)?.into_event(ctx, &raw, true),
        };
        check_event(
            &mut log,
            ctx,
            event.pcr,
            event.event_type,
            event.data(),
            event.data.start,
        )?;
        log.events.push(event);
    }
    Ok(log)
}

/// The bytes of a range the reader has already checked.
fn slice<'a>(bytes: &'a [u8], range: &Range<usize>) -> &'a [u8] {
    bytes.get(range.clone()).unwrap_or(&[])
}

/// A TCG_PCR_EVENT record (SHA-1 format).
struct Sha1Event {
    pcr: u32,
    event_type: u32,
    /// Offset of the 20-byte digest.
    digest: usize,
    data: Range<usize>,
}

impl Sha1Event {
    /// The event, with its SHA-1 digest when it is a measurement rather than
    /// the placeholder of a Spec ID header.
    fn into_event(self, ctx: Ctx, raw: &Arc<[u8]>, keep_digest: bool) -> Event {
        let mut digests = [None; BANKS];
        if keep_digest && let Some(slot) = bank_slot(HashAlg::Sha1).and_then(|i| digests.get_mut(i))
        {
            *slot = Some(self.digest);
        }
        Event {
            index: ctx.index,
            offset: ctx.offset,
            pcr: self.pcr,
            event_type: self.event_type,
            raw: Arc::clone(raw),
            digests,
            data: self.data,
        }
    }
}

fn read_sha1_event(
    reader: &mut Reader<'_>,
    ctx: Ctx,
    limits: &EventLogLimits,
) -> Result<Sha1Event, EventLogError> {
    let pcr = reader.u32(ctx, "pcrIndex")?;
    let event_type = reader.u32(ctx, "eventType")?;
    let digest = reader.offset();
    reader.take(ctx, "digest", SHA1_LEN)?;
    let data = reader.event_data(ctx, limits)?;
    Ok(Sha1Event {
        pcr,
        event_type,
        digest,
        data,
    })
}

/// Reads a TCG_PCR_EVENT2 record. Digest sizes come from the Spec ID header,
/// which is what lets algorithms unknown to [`HashAlg`] be skipped.
fn read_agile_event(
    reader: &mut Reader<'_>,
    ctx: Ctx,
    spec: &SpecIdEvent,
    limits: &EventLogLimits,
    raw: &Arc<[u8]>,
) -> Result<Event, EventLogError> {
    let pcr = reader.u32(ctx, "pcrIndex")?;
    let event_type = reader.u32(ctx, "eventType")?;
    let count_offset = reader.offset();
    let count = reader.u32(ctx, "digests.count")?;
    // Every event carries one digest per active bank; anything else means
    // the log and the header disagree, and a replay could silently miss a bank.
    if usize::try_from(count).ok() != Some(spec.algorithms.len()) {
        return Err(EventLogError::DigestCountMismatch {
            at: ctx.at("digests.count", count_offset),
            count,
            expected: spec.algorithms.len(),
        });
    }
    let mut digests = [None; BANKS];
    // Which header slots this event has filled, to refuse a repeated algorithm.
    let mut seen = [false; MAX_SPEC_ID_ALGORITHMS];
    for _ in 0..spec.algorithms.len() {
        let alg_offset = reader.offset();
        let alg_id = reader.u16(ctx, "digests.hashAlg")?;
        let Some(slot) = spec.algorithms.iter().position(|a| a.alg_id == alg_id) else {
            return Err(EventLogError::UndeclaredAlgorithm {
                at: ctx.at("digests.hashAlg", alg_offset),
                alg_id,
            });
        };
        match seen.get_mut(slot) {
            Some(filled) if !*filled => *filled = true,
            _ => {
                return Err(EventLogError::DuplicateDigest {
                    at: ctx.at("digests.hashAlg", alg_offset),
                    alg_id,
                });
            }
        }
        let size = spec
            .algorithms
            .get(slot)
            .map_or(0, |a| usize::from(a.digest_size));
        let start = reader.offset();
        reader.take(ctx, "digests.digest", size)?;
        // The header check made `size` the algorithm's digest length.
        if let Some(bank) = HashAlg::from_tpm_alg_id(alg_id)
            .and_then(bank_slot)
            .and_then(|i| digests.get_mut(i))
        {
            *bank = Some(start);
        }
    }
    let data = reader.event_data(ctx, limits)?;
    Ok(Event {
        index: ctx.index,
        offset: ctx.offset,
        pcr,
        event_type,
        raw: Arc::clone(raw),
        digests,
        data,
    })
}

/// Checks that apply to every event after it was read: PCR range of measured
/// events, and the StartupLocality event that sets PCR 0's initial value.
fn check_event(
    log: &mut EventLog,
    ctx: Ctx,
    pcr: u32,
    event_type: u32,
    data: &[u8],
    data_offset: usize,
) -> Result<(), EventLogError> {
    if event_type != EV_NO_ACTION {
        if pcr > MAX_PCR {
            return Err(EventLogError::PcrIndexOutOfRange {
                // pcrIndex is the first field of both record formats.
                at: ctx.at("pcrIndex", ctx.offset),
                pcr,
            });
        }
        return Ok(());
    }
    if !data.starts_with(STARTUP_LOCALITY_SIGNATURE) {
        return Ok(());
    }
    let at = || ctx.at("event", data_offset);
    let invalid = |reason: String| EventLogError::InvalidStartupLocality { at: at(), reason };
    // The locality decides PCR 0's initial value, so anything ambiguous about
    // it is refused rather than guessed.
    if pcr != 0 {
        return Err(invalid(format!("it is on PCR {pcr}, expected PCR 0")));
    }
    let locality = match data {
        [.., locality] if data.len() == STARTUP_LOCALITY_EVENT_LEN => *locality,
        _ => {
            return Err(invalid(format!(
                "event data is {} bytes, expected {}",
                data.len(),
                STARTUP_LOCALITY_EVENT_LEN
            )));
        }
    };
    // Locality 3 is the usual S-CRTM case; 4 marks an H-CRTM. 1 and 2 cannot
    // start a TPM but are harmless to honour; anything above 4 is not a locality.
    if locality > 4 {
        return Err(invalid(format!("locality {locality}, expected 0 to 4")));
    }
    if let Some(previous) = log.startup_locality {
        return Err(invalid(format!(
            "second StartupLocality event (locality {locality}, first said {previous})"
        )));
    }
    log.startup_locality = Some(locality);
    Ok(())
}

/// Parses TCG_EfiSpecIDEvent from the header event's data.
fn parse_spec_id(data: &[u8], ctx: Ctx, data_offset: usize) -> Result<SpecIdEvent, EventLogError> {
    let mut r = Reader::new(data, data_offset);
    let invalid =
        |field: &'static str, offset: usize, reason: String| EventLogError::InvalidSpecId {
            at: ctx.at(field, offset),
            reason,
        };
    r.take(ctx, "specIdEvent.signature", SPEC_ID_SIGNATURE.len())?;
    let platform_class = r.u32(ctx, "specIdEvent.platformClass")?;
    let spec_version_minor = r.u8(ctx, "specIdEvent.specVersionMinor")?;
    let spec_version_major = r.u8(ctx, "specIdEvent.specVersionMajor")?;
    let spec_errata = r.u8(ctx, "specIdEvent.specErrata")?;
    let uintn_size = r.u8(ctx, "specIdEvent.uintnSize")?;
    let count_offset = r.offset();
    let count = r.u32(ctx, "specIdEvent.numberOfAlgorithms")?;
    let count = usize::try_from(count).unwrap_or(usize::MAX);
    if count == 0 {
        return Err(invalid(
            "specIdEvent.numberOfAlgorithms",
            count_offset,
            "numberOfAlgorithms is 0, expected at least one bank".into(),
        ));
    }
    if count > MAX_SPEC_ID_ALGORITHMS {
        return Err(invalid(
            "specIdEvent.numberOfAlgorithms",
            count_offset,
            format!("numberOfAlgorithms is {count}, expected at most {MAX_SPEC_ID_ALGORITHMS}"),
        ));
    }
    let mut algorithms: Vec<AlgorithmSize> = Vec::with_capacity(count);
    for _ in 0..count {
        let alg_offset = r.offset();
        let alg_id = r.u16(ctx, "specIdEvent.digestSizes.algorithmId")?;
        let size_offset = r.offset();
        let digest_size = r.u16(ctx, "specIdEvent.digestSizes.digestSize")?;
        if algorithms.iter().any(|a| a.alg_id == alg_id) {
            return Err(invalid(
                "specIdEvent.digestSizes.algorithmId",
                alg_offset,
                format!("algorithm {alg_id:#06x} is declared twice"),
            ));
        }
        // A size that disagrees with a known algorithm would make the replay
        // hash the wrong bytes; refuse it rather than trust either.
        if let Some(alg) = HashAlg::from_tpm_alg_id(alg_id)
            && usize::from(digest_size) != alg.digest_len()
        {
            return Err(invalid(
                "specIdEvent.digestSizes.digestSize",
                size_offset,
                format!(
                    "{alg} digest size {digest_size}, expected {}",
                    alg.digest_len()
                ),
            ));
        }
        algorithms.push(AlgorithmSize {
            alg_id,
            digest_size,
        });
    }
    let vendor_info_size = r.u8(ctx, "specIdEvent.vendorInfoSize")?;
    let vendor_info = r.take(ctx, "specIdEvent.vendorInfo", usize::from(vendor_info_size))?;
    if r.left() != 0 {
        return Err(invalid(
            "specIdEvent",
            r.offset(),
            format!("{} bytes after vendorInfo, expected none", r.left()),
        ));
    }
    Ok(SpecIdEvent {
        platform_class,
        spec_version_minor,
        spec_version_major,
        spec_errata,
        uintn_size,
        algorithms,
        vendor_info: vendor_info.to_vec(),
    })
}
