//! The little DER the CA writes: certificates are assembled from byte
//! strings rather than through a generic ASN.1 library, because minting an
//! X509-SVID must cost little more than its signature (see
//! `benches/mint.rs`). Everything here is infallible on the inputs the CA
//! gives it; lengths are encoded in definite form up to 2^32-1 bytes.

/// Universal tags used by the CA.
pub(crate) mod tag {
    pub const BOOLEAN: u8 = 0x01;
    pub const INTEGER: u8 = 0x02;
    pub const BIT_STRING: u8 = 0x03;
    pub const OCTET_STRING: u8 = 0x04;
    pub const OID: u8 = 0x06;
    pub const UTF8_STRING: u8 = 0x0c;
    pub const PRINTABLE_STRING: u8 = 0x13;
    pub const UTC_TIME: u8 = 0x17;
    pub const GENERALIZED_TIME: u8 = 0x18;
    pub const SEQUENCE: u8 = 0x30;
    pub const SET: u8 = 0x31;
}

/// Pre-encoded object identifiers (content bytes only, without tag/length).
pub(crate) mod oid {
    /// id-ecPublicKey 1.2.840.10045.2.1
    pub const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    /// prime256v1 1.2.840.10045.3.1.7
    pub const P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    /// secp384r1 1.3.132.0.34
    pub const P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
    /// rsaEncryption 1.2.840.113549.1.1.1
    pub const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
    /// ecdsa-with-SHA256 1.2.840.10045.4.3.2
    pub const ECDSA_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
    /// ecdsa-with-SHA384 1.2.840.10045.4.3.3
    pub const ECDSA_SHA384: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03];
    /// sha256WithRSAEncryption 1.2.840.113549.1.1.11
    pub const RSA_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b];
    /// sha384WithRSAEncryption 1.2.840.113549.1.1.12
    pub const RSA_SHA384: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c];
    /// sha512WithRSAEncryption 1.2.840.113549.1.1.13
    pub const RSA_SHA512: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d];
    /// id-at-commonName 2.5.4.3
    pub const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
    /// id-at-serialNumber 2.5.4.5
    pub const SERIAL_NUMBER: &[u8] = &[0x55, 0x04, 0x05];
    /// id-at-organizationName 2.5.4.10
    pub const ORGANIZATION: &[u8] = &[0x55, 0x04, 0x0a];
    /// id-ce-subjectKeyIdentifier 2.5.29.14
    pub const SUBJECT_KEY_ID: &[u8] = &[0x55, 0x1d, 0x0e];
    /// id-ce-keyUsage 2.5.29.15
    pub const KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x0f];
    /// id-ce-subjectAltName 2.5.29.17
    pub const SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];
    /// id-ce-basicConstraints 2.5.29.19
    pub const BASIC_CONSTRAINTS: &[u8] = &[0x55, 0x1d, 0x13];
    /// id-ce-authorityKeyIdentifier 2.5.29.35
    pub const AUTHORITY_KEY_ID: &[u8] = &[0x55, 0x1d, 0x23];
    /// id-ce-extKeyUsage 2.5.29.37
    pub const EXT_KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x25];
    /// id-kp-serverAuth 1.3.6.1.5.5.7.3.1
    pub const KP_SERVER_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01];
    /// id-kp-clientAuth 1.3.6.1.5.5.7.3.2
    pub const KP_CLIENT_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02];
}

/// Appends a definite-form length.
pub(crate) fn push_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = (len as u64).to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (8 - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

/// Size of a tag + length header for `len` content bytes.
pub(crate) fn header_len(len: usize) -> usize {
    match len {
        0..0x80 => 2,
        0x80..0x100 => 3,
        0x100..0x1_0000 => 4,
        0x1_0000..0x100_0000 => 5,
        _ => 6,
    }
}

/// Appends a TLV.
pub(crate) fn push_tlv(out: &mut Vec<u8>, tag: u8, content: &[u8]) {
    out.push(tag);
    push_len(out, content.len());
    out.extend_from_slice(content);
}

/// A TLV as a new vector.
pub(crate) fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(header_len(content.len()) + content.len());
    push_tlv(&mut out, tag, content);
    out
}

/// A constructed TLV whose content is the concatenation of `parts`.
pub(crate) fn tlv_parts(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
    let len = parts.iter().map(|p| p.len()).sum();
    let mut out = Vec::with_capacity(header_len(len) + len);
    out.push(tag);
    push_len(&mut out, len);
    for part in parts {
        out.extend_from_slice(part);
    }
    out
}

/// SEQUENCE of the concatenated parts.
pub(crate) fn seq(parts: &[&[u8]]) -> Vec<u8> {
    tlv_parts(tag::SEQUENCE, parts)
}

/// OBJECT IDENTIFIER from pre-encoded content bytes.
pub(crate) fn oid(content: &[u8]) -> Vec<u8> {
    tlv(tag::OID, content)
}

/// INTEGER holding the non-negative big-endian number `magnitude`, minimally
/// encoded (leading zero bytes dropped, one added when the top bit is set).
pub(crate) fn unsigned_integer(magnitude: &[u8]) -> Vec<u8> {
    let skip = magnitude.iter().take_while(|b| **b == 0).count();
    let digits = &magnitude[skip..];
    let mut out = Vec::with_capacity(digits.len() + 3);
    out.push(tag::INTEGER);
    match digits.first() {
        None => {
            out.push(1);
            out.push(0);
        }
        Some(first) if first & 0x80 != 0 => {
            push_len(&mut out, digits.len() + 1);
            out.push(0);
            out.extend_from_slice(digits);
        }
        Some(_) => {
            push_len(&mut out, digits.len());
            out.extend_from_slice(digits);
        }
    }
    out
}

/// BIT STRING with no unused bits.
pub(crate) fn bit_string(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(header_len(bytes.len() + 1) + bytes.len() + 1);
    out.push(tag::BIT_STRING);
    push_len(&mut out, bytes.len() + 1);
    out.push(0);
    out.extend_from_slice(bytes);
    out
}

/// A named-bit-list BIT STRING (KeyUsage) from the bits' numbers (bit 0 is
/// the most significant bit of the first byte), DER-minimal: trailing zero
/// bits are dropped and counted as unused.
pub(crate) fn named_bits(bits: &[u8]) -> Vec<u8> {
    let Some(highest) = bits.iter().copied().max() else {
        return vec![tag::BIT_STRING, 1, 0];
    };
    let mut bytes = vec![0u8; usize::from(highest / 8) + 1];
    for bit in bits {
        bytes[usize::from(bit / 8)] |= 0x80 >> (bit % 8);
    }
    let unused = 7 - highest % 8;
    let mut out = vec![tag::BIT_STRING];
    push_len(&mut out, bytes.len() + 1);
    out.push(unused);
    out.extend_from_slice(&bytes);
    out
}

/// One Extension: SEQUENCE { extnID, critical BOOLEAN DEFAULT FALSE,
/// extnValue OCTET STRING }.
pub(crate) fn extension(id: &[u8], critical: bool, value: &[u8]) -> Vec<u8> {
    let id = oid(id);
    let value = tlv(tag::OCTET_STRING, value);
    if critical {
        seq(&[&id, &[tag::BOOLEAN, 1, 0xff], &value])
    } else {
        seq(&[&id, &value])
    }
}

/// AlgorithmIdentifier with absent parameters (ECDSA) or NULL parameters
/// (RSA PKCS#1 v1.5, which RFC 4055 requires to carry NULL).
pub(crate) fn algorithm(id: &[u8], null_params: bool) -> Vec<u8> {
    if null_params {
        seq(&[&oid(id), &[0x05, 0x00]])
    } else {
        seq(&[&oid(id)])
    }
}

/// A Name of one RDN per attribute: (type, string tag, value).
pub(crate) fn name(attributes: &[(&[u8], u8, &str)]) -> Vec<u8> {
    let rdns: Vec<Vec<u8>> = attributes
        .iter()
        .map(|(id, string_tag, value)| {
            let atv = seq(&[&oid(id), &tlv(*string_tag, value.as_bytes())]);
            tlv(tag::SET, &atv)
        })
        .collect();
    let parts: Vec<&[u8]> = rdns.iter().map(Vec::as_slice).collect();
    seq(&parts)
}

/// Civil date (proleptic Gregorian, UTC) of a count of days since 1970-01-01
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Largest time the CA writes: 9999-12-31T23:59:59Z, the RFC 5280 "no
/// well-defined expiration" value and the last GeneralizedTime with a
/// four-digit year.
pub(crate) const MAX_TIME: u64 = 253_402_300_799;

/// Appends an RFC 5280 Time: UTCTime through 2049, GeneralizedTime from 2050
/// (§4.1.2.5). `unix` is clamped to [`MAX_TIME`].
pub(crate) fn push_time(out: &mut Vec<u8>, unix: u64) {
    let unix = unix.min(MAX_TIME);
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    let (year, month, day) = civil_from_days(days);
    let (hh, mm, ss) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut digits = [0u8; 15];
    let start = if year < 2050 {
        out.extend_from_slice(&[tag::UTC_TIME, 13]);
        2
    } else {
        out.extend_from_slice(&[tag::GENERALIZED_TIME, 15]);
        0
    };
    let fields = [
        (year / 100) as u64,
        (year % 100) as u64,
        u64::from(month),
        u64::from(day),
        hh,
        mm,
        ss,
    ];
    for (i, value) in fields.iter().enumerate() {
        digits[2 * i] = b'0' + (value / 10) as u8;
        digits[2 * i + 1] = b'0' + (value % 10) as u8;
    }
    digits[14] = b'Z';
    out.extend_from_slice(&digits[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(unix: u64) -> String {
        let mut out = Vec::new();
        push_time(&mut out, unix);
        String::from_utf8_lossy(&out[2..]).into_owned()
    }

    #[test]
    fn times() {
        assert_eq!(time(0), "700101000000Z");
        assert_eq!(time(951_782_400), "000229000000Z"); // 2000-02-29
        assert_eq!(time(1_700_000_000), "231114221320Z");
        assert_eq!(time(2_524_607_999), "491231235959Z");
        assert_eq!(time(2_524_608_000), "20500101000000Z");
        assert_eq!(time(u64::MAX), "99991231235959Z");
        let mut out = Vec::new();
        push_time(&mut out, 2_524_608_000);
        assert_eq!(out[0], tag::GENERALIZED_TIME);
    }

    #[test]
    fn integers() {
        assert_eq!(unsigned_integer(&[]), [2, 1, 0]);
        assert_eq!(unsigned_integer(&[0, 0]), [2, 1, 0]);
        assert_eq!(unsigned_integer(&[0, 0x7f]), [2, 1, 0x7f]);
        assert_eq!(unsigned_integer(&[0x80]), [2, 2, 0, 0x80]);
        assert_eq!(unsigned_integer(&[0, 1, 2]), [2, 2, 1, 2]);
    }

    #[test]
    fn lengths() {
        for len in [0usize, 1, 127, 128, 255, 256, 65_535, 65_536, 1 << 24] {
            let mut out = Vec::new();
            push_len(&mut out, len);
            assert_eq!(out.len() + 1, header_len(len), "{len}");
        }
        let mut out = Vec::new();
        push_len(&mut out, 300);
        assert_eq!(out, [0x82, 0x01, 0x2c]);
    }

    #[test]
    fn key_usage_bits() {
        // digitalSignature (0) alone: one byte, 7 unused bits.
        assert_eq!(named_bits(&[0]), [3, 2, 7, 0x80]);
        // keyCertSign (5) + cRLSign (6): 1 unused bit.
        assert_eq!(named_bits(&[5, 6]), [3, 2, 1, 0x06]);
        // digitalSignature + keyAgreement (4).
        assert_eq!(named_bits(&[0, 4]), [3, 2, 3, 0x88]);
    }
}
