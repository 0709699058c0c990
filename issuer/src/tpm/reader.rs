//! A bounds-checked big-endian reader for TPM wire structures.

/// Why a TPM structure could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TpmParseError {
    /// The input ended before a field was complete.
    #[error("{structure}.{field} at offset {offset}: needs {needed} bytes, only {available} left")]
    Truncated {
        /// The structure being parsed, e.g. `TPMT_PUBLIC`.
        structure: &'static str,
        /// The field, e.g. `authPolicy`.
        field: &'static str,
        /// Byte offset of the field.
        offset: usize,
        /// Bytes the field needs.
        needed: usize,
        /// Bytes left.
        available: usize,
    },
    /// A field holds a value that is not allowed.
    #[error("{structure}.{field} at offset {offset}: {reason}")]
    Invalid {
        /// The structure being parsed.
        structure: &'static str,
        /// The field.
        field: &'static str,
        /// Byte offset of the field.
        offset: usize,
        /// What was expected.
        reason: String,
    },
    /// Bytes remain after the structure.
    #[error("{structure}: {count} unexpected bytes after the end of the structure")]
    Trailing {
        /// The structure being parsed.
        structure: &'static str,
        /// How many bytes remain.
        count: usize,
    },
}

/// Reads big-endian TPM fields from a byte slice, never past its end.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    structure: &'static str,
}

impl<'a> Reader<'a> {
    /// A reader over `buf` for the structure named `structure` (used in errors).
    pub fn new(buf: &'a [u8], structure: &'static str) -> Self {
        Self {
            buf,
            pos: 0,
            structure,
        }
    }

    /// Changes the structure name used in errors (for nested structures).
    pub fn set_structure(&mut self, structure: &'static str) {
        self.structure = structure;
    }

    /// Current offset.
    pub fn offset(&self) -> usize {
        self.pos
    }

    /// The bytes between two offsets already read.
    pub fn span(&self, start: usize, end: usize) -> Option<&'a [u8]> {
        self.buf.get(start..end)
    }

    /// Bytes left.
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// Takes `n` raw bytes.
    pub fn bytes(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], TpmParseError> {
        let available = self.remaining();
        if n > available {
            return Err(TpmParseError::Truncated {
                structure: self.structure,
                field,
                offset: self.pos,
                needed: n,
                available,
            });
        }
        let start = self.pos;
        self.pos += n;
        Ok(&self.buf[start..start + n])
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], TpmParseError> {
        let bytes = self.bytes(N, field)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    /// A UINT8.
    pub fn u8(&mut self, field: &'static str) -> Result<u8, TpmParseError> {
        Ok(self.array::<1>(field)?[0])
    }

    /// A big-endian UINT16.
    pub fn u16(&mut self, field: &'static str) -> Result<u16, TpmParseError> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }

    /// A big-endian UINT32.
    pub fn u32(&mut self, field: &'static str) -> Result<u32, TpmParseError> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }

    /// A big-endian UINT64.
    pub fn u64(&mut self, field: &'static str) -> Result<u64, TpmParseError> {
        Ok(u64::from_be_bytes(self.array(field)?))
    }

    /// A TPM2B: a UINT16 size and that many bytes, refusing sizes above `max`.
    pub fn tpm2b(&mut self, field: &'static str, max: usize) -> Result<&'a [u8], TpmParseError> {
        let offset = self.pos;
        let size = usize::from(self.u16(field)?);
        if size > max {
            return Err(self.invalid_at(
                offset,
                field,
                format!("size {size} exceeds the maximum {max}"),
            ));
        }
        self.bytes(size, field)
    }

    /// An error for `field` at `offset`.
    pub fn invalid_at(
        &self,
        offset: usize,
        field: &'static str,
        reason: impl Into<String>,
    ) -> TpmParseError {
        TpmParseError::Invalid {
            structure: self.structure,
            field,
            offset,
            reason: reason.into(),
        }
    }

    /// Fails unless every byte was consumed.
    pub fn finish(self) -> Result<(), TpmParseError> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(TpmParseError::Trailing {
                structure: self.structure,
                count,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_names_structure_field_and_offset() {
        let mut r = Reader::new(&[0, 1, 2], "TPMS_TEST");
        assert_eq!(r.u16("first").unwrap(), 1);
        let err = r.u16("second").unwrap_err();
        assert_eq!(
            err,
            TpmParseError::Truncated {
                structure: "TPMS_TEST",
                field: "second",
                offset: 2,
                needed: 2,
                available: 1
            }
        );
        assert_eq!(
            err.to_string(),
            "TPMS_TEST.second at offset 2: needs 2 bytes, only 1 left"
        );
    }

    #[test]
    fn tpm2b_respects_its_maximum() {
        let mut r = Reader::new(&[0, 3, 1, 2, 3], "T");
        assert!(matches!(
            r.clone().tpm2b("b", 2),
            Err(TpmParseError::Invalid { .. })
        ));
        assert_eq!(r.tpm2b("b", 3).unwrap(), &[1, 2, 3]);
        r.finish().unwrap();
    }

    #[test]
    fn trailing_bytes_are_reported() {
        let r = Reader::new(&[1], "T");
        assert_eq!(
            r.finish(),
            Err(TpmParseError::Trailing {
                structure: "T",
                count: 1
            })
        );
    }
}
