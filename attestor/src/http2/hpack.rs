//! HPACK decoding (RFC 7541): integers, string literals, the static and
//! dynamic tables. Huffman-coded strings are decoded by `httlib-huffman`'s
//! table-driven decoder.
//!
//! Fields are handed to a callback as borrowed slices, so a block that
//! references the same large table entry many times costs no copies; the
//! callback can stop decoding at any field.

use std::borrow::Cow;
use std::collections::VecDeque;

/// Why a header block could not be decoded: the connection's compression
/// state is lost (COMPRESSION_ERROR).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HpackError {
    /// The block ends inside an integer or a string.
    #[error("the header block is truncated")]
    Truncated,
    /// An integer longer than any table or string here.
    #[error("an integer in the header block is too large")]
    IntegerTooLarge,
    /// An index that names no table entry.
    #[error("index {0} names no entry in the header tables")]
    BadIndex(usize),
    /// A Huffman-coded string that does not decode.
    #[error("a Huffman-coded string is invalid")]
    BadHuffman,
    /// A dynamic table size update above SETTINGS_HEADER_TABLE_SIZE.
    #[error("dynamic table size update to {requested}, over the {allowed} allowed")]
    TableSizeTooLarge {
        /// The size asked for.
        requested: usize,
        /// SETTINGS_HEADER_TABLE_SIZE.
        allowed: usize,
    },
    /// A dynamic table size update after a field (RFC 7541 §4.2).
    #[error("dynamic table size update after the first field of a block")]
    LateTableSizeUpdate,
}

/// Table entries cost their name and value plus 32 bytes (RFC 7541 §4.1).
const ENTRY_OVERHEAD: usize = 32;

/// Integers above this are refused: nothing in a header block needs more.
const MAX_INTEGER: usize = 1 << 24;

/// The static table (RFC 7541 Appendix A), index 1 first.
static STATIC_TABLE: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

/// A dynamic table entry: name and value.
type Entry = (Box<[u8]>, Box<[u8]>);

/// An HPACK decoder: the dynamic table one connection's client fills.
#[derive(Debug)]
pub struct HpackDecoder {
    /// Newest first.
    entries: VecDeque<Entry>,
    size: usize,
    max_size: usize,
    allowed_max_size: usize,
}

impl HpackDecoder {
    /// A decoder whose client may use up to `allowed_max_size` bytes of
    /// dynamic table (this side's SETTINGS_HEADER_TABLE_SIZE).
    pub fn new(allowed_max_size: usize) -> Self {
        HpackDecoder {
            entries: VecDeque::new(),
            size: 0,
            max_size: allowed_max_size,
            allowed_max_size,
        }
    }

    /// Decodes `block`, calling `field(name, value)` for every field in
    /// order. An `Err` from `field` stops decoding and is returned as
    /// `Ok(Err(..))`: the table is then out of step with the client, so
    /// the caller must end the connection.
    pub fn decode<E>(
        &mut self,
        block: &[u8],
        mut field: impl FnMut(&[u8], &[u8]) -> Result<(), E>,
    ) -> Result<Result<(), E>, HpackError> {
        let mut pos = 0;
        let mut fields_seen = false;
        while let Some(&first) = block.get(pos) {
            if first & 0x80 != 0 {
                // Indexed field.
                let index = integer(block, &mut pos, 7)?;
                let (name, value) = self.get(index)?;
                if let Err(e) = field(name, value) {
                    return Ok(Err(e));
                }
            } else if first & 0x40 != 0 {
                // Literal with incremental indexing.
                let index = integer(block, &mut pos, 6)?;
                let name = match index {
                    0 => string(block, &mut pos)?.into_owned(),
                    i => self.get(i)?.0.to_vec(),
                };
                let value = string(block, &mut pos)?.into_owned();
                if let Err(e) = field(&name, &value) {
                    return Ok(Err(e));
                }
                self.insert(name, value);
            } else if first & 0x20 != 0 {
                // Dynamic table size update.
                if fields_seen {
                    return Err(HpackError::LateTableSizeUpdate);
                }
                let requested = integer(block, &mut pos, 5)?;
                if requested > self.allowed_max_size {
                    return Err(HpackError::TableSizeTooLarge {
                        requested,
                        allowed: self.allowed_max_size,
                    });
                }
                self.max_size = requested;
                self.evict_to(requested);
                continue;
            } else {
                // Literal without indexing (0000) or never indexed (0001).
                let index = integer(block, &mut pos, 4)?;
                let value_and_name = match index {
                    0 => {
                        let name = string(block, &mut pos)?;
                        let value = string(block, &mut pos)?;
                        field(&name, &value)
                    }
                    i => {
                        let (name, _) = self.get(i)?;
                        let value = string(block, &mut pos)?;
                        field(name, &value)
                    }
                };
                if let Err(e) = value_and_name {
                    return Ok(Err(e));
                }
            }
            fields_seen = true;
        }
        Ok(Ok(()))
    }

    /// The entry at `index` (1-based; static table first).
    fn get(&self, index: usize) -> Result<(&[u8], &[u8]), HpackError> {
        if index == 0 {
            return Err(HpackError::BadIndex(0));
        }
        if let Some((name, value)) = STATIC_TABLE.get(index - 1) {
            return Ok((name.as_bytes(), value.as_bytes()));
        }
        self.entries
            .get(index - 1 - STATIC_TABLE.len())
            .map(|(n, v)| (&n[..], &v[..]))
            .ok_or(HpackError::BadIndex(index))
    }

    fn insert(&mut self, name: Vec<u8>, value: Vec<u8>) {
        let size = name.len() + value.len() + ENTRY_OVERHEAD;
        if size > self.max_size {
            // An entry larger than the table empties it (RFC 7541 §4.4).
            self.evict_to(0);
            return;
        }
        self.evict_to(self.max_size - size);
        self.size += size;
        self.entries
            .push_front((name.into_boxed_slice(), value.into_boxed_slice()));
    }

    fn evict_to(&mut self, target: usize) {
        while self.size > target {
            match self.entries.pop_back() {
                Some((n, v)) => self.size -= n.len() + v.len() + ENTRY_OVERHEAD,
                None => {
                    self.size = 0;
                    break;
                }
            }
        }
    }
}

/// An integer with an `n`-bit prefix (RFC 7541 §5.1) at `*pos`.
fn integer(block: &[u8], pos: &mut usize, n: u8) -> Result<usize, HpackError> {
    let mask = (1usize << n) - 1;
    let first = *block.get(*pos).ok_or(HpackError::Truncated)?;
    *pos += 1;
    let mut value = usize::from(first) & mask;
    if value < mask {
        return Ok(value);
    }
    let mut shift = 0u32;
    loop {
        let byte = *block.get(*pos).ok_or(HpackError::Truncated)?;
        *pos += 1;
        value += usize::from(byte & 0x7f) << shift;
        if value > MAX_INTEGER {
            return Err(HpackError::IntegerTooLarge);
        }
        if byte & 0x80 == 0 {
            return Ok(value);
        }
        shift += 7;
        if shift > 21 {
            return Err(HpackError::IntegerTooLarge);
        }
    }
}

/// A string literal (RFC 7541 §5.2) at `*pos`: borrowed when raw, decoded
/// when Huffman-coded.
fn string<'a>(block: &'a [u8], pos: &mut usize) -> Result<Cow<'a, [u8]>, HpackError> {
    let huffman = block.get(*pos).ok_or(HpackError::Truncated)? & 0x80 != 0;
    let len = integer(block, pos, 7)?;
    let end = pos.checked_add(len).ok_or(HpackError::Truncated)?;
    let raw = block.get(*pos..end).ok_or(HpackError::Truncated)?;
    *pos = end;
    if !huffman {
        return Ok(Cow::Borrowed(raw));
    }
    // Huffman codes are at least 5 bits: the decoded string is at most
    // 8/5 of the coded one.
    let mut decoded = Vec::with_capacity(len + len / 2 + 1);
    httlib_huffman::decode(raw, &mut decoded, httlib_huffman::DecoderSpeed::FourBits)
        .map_err(|_| HpackError::BadHuffman)?;
    Ok(Cow::Owned(decoded))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(
        decoder: &mut HpackDecoder,
        hex_block: &str,
    ) -> Result<Vec<(String, String)>, HpackError> {
        let block = hex::decode(hex_block.replace(' ', "")).unwrap();
        let mut fields = Vec::new();
        decoder
            .decode(&block, |n, v| {
                fields.push((
                    String::from_utf8(n.to_vec()).unwrap(),
                    String::from_utf8(v.to_vec()).unwrap(),
                ));
                Ok::<(), ()>(())
            })?
            .unwrap();
        Ok(fields)
    }

    fn pairs(fields: &[(&str, &str)]) -> Vec<(String, String)> {
        fields
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn rfc7541_c3_requests_without_huffman() {
        let mut d = HpackDecoder::new(4096);
        let first = decode_all(&mut d, "828684410f7777772e6578616d706c652e636f6d").unwrap();
        assert_eq!(
            first,
            pairs(&[
                (":method", "GET"),
                (":scheme", "http"),
                (":path", "/"),
                (":authority", "www.example.com")
            ])
        );
        assert_eq!(d.size, 57);
        let second = decode_all(&mut d, "828684be58086e6f2d6361636865").unwrap();
        assert_eq!(second[3], (":authority".into(), "www.example.com".into()));
        assert_eq!(second[4], ("cache-control".into(), "no-cache".into()));
        assert_eq!(d.size, 110);
    }

    #[test]
    fn rfc7541_c4_requests_with_huffman() {
        let mut d = HpackDecoder::new(4096);
        let first = decode_all(&mut d, "828684418cf1e3c2e5f23a6ba0ab90f4ff").unwrap();
        assert_eq!(first[3], (":authority".into(), "www.example.com".into()));
        let second = decode_all(&mut d, "828684be5886a8eb10649cbf").unwrap();
        assert_eq!(second[4], ("cache-control".into(), "no-cache".into()));
        let third = decode_all(&mut d, "828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf").unwrap();
        assert_eq!(
            third,
            pairs(&[
                (":method", "GET"),
                (":scheme", "https"),
                (":path", "/index.html"),
                (":authority", "www.example.com"),
                ("custom-key", "custom-value")
            ])
        );
        assert_eq!(d.size, 164);
    }

    #[test]
    fn old_entries_are_evicted_to_fit_the_table() {
        // A 100-byte table holds one 32+4+60 entry at a time.
        let mut d = HpackDecoder::new(100);
        let mut block = vec![0x40, 4];
        block.extend_from_slice(b"x-aa");
        block.push(60);
        block.extend_from_slice(&[b'1'; 60]);
        let mut second = block.clone();
        second[5] = b'b';
        for b in [&block, &second] {
            d.decode(b, |_, _| Ok::<(), ()>(())).unwrap().unwrap();
        }
        assert_eq!(d.entries.len(), 1);
        assert_eq!(&d.entries[0].0[..], b"x-ab");
        assert_eq!(d.get(63), Err(HpackError::BadIndex(63)));
    }

    #[test]
    fn an_entry_larger_than_the_table_empties_it() {
        let mut d = HpackDecoder::new(64);
        d.decode(&[0x40, 3, b'x', b'-', b'a', 1, b'b'], |_, _| {
            Ok::<(), ()>(())
        })
        .unwrap()
        .unwrap();
        assert_eq!(d.entries.len(), 1);
        let mut big = vec![0x40, 3, b'x', b'-', b'b', 40];
        big.extend_from_slice(&[b'v'; 40]);
        d.decode(&big, |_, _| Ok::<(), ()>(())).unwrap().unwrap();
        assert!(d.entries.is_empty());
        assert_eq!(d.size, 0);
    }

    #[test]
    fn table_size_updates_are_bounded_and_come_first() {
        let mut d = HpackDecoder::new(4096);
        // 0x3f 0xe1 0x1f = 4096: allowed, then a field.
        assert!(decode_all(&mut d, "3fe11f82").is_ok());
        // 4097 is over SETTINGS_HEADER_TABLE_SIZE.
        assert_eq!(
            decode_all(&mut d, "3fe21f82"),
            Err(HpackError::TableSizeTooLarge {
                requested: 4097,
                allowed: 4096
            })
        );
        // After a field, a size update is an error.
        assert_eq!(
            decode_all(&mut d, "8220"),
            Err(HpackError::LateTableSizeUpdate)
        );
    }

    #[test]
    fn broken_blocks_are_refused_with_the_reason() {
        let mut d = HpackDecoder::new(4096);
        assert_eq!(decode_all(&mut d, "80"), Err(HpackError::BadIndex(0)));
        assert_eq!(decode_all(&mut d, "be"), Err(HpackError::BadIndex(62)));
        assert_eq!(decode_all(&mut d, "ff"), Err(HpackError::Truncated));
        assert_eq!(decode_all(&mut d, "0005616263"), Err(HpackError::Truncated));
        assert_eq!(
            decode_all(&mut d, "ffffffffff0f"),
            Err(HpackError::IntegerTooLarge)
        );
        // A Huffman string of all-ones (EOS) is invalid.
        assert_eq!(
            decode_all(&mut d, "0081ff84ffffffff"),
            Err(HpackError::BadHuffman)
        );
    }

    #[test]
    fn the_callback_can_stop_decoding() {
        let mut d = HpackDecoder::new(4096);
        let mut seen = 0;
        let stopped = d
            .decode(&[0x82, 0x86, 0x84], |_, _| {
                seen += 1;
                if seen == 2 { Err("enough") } else { Ok(()) }
            })
            .unwrap();
        assert_eq!(stopped, Err("enough"));
        assert_eq!(seen, 2);
    }
}
