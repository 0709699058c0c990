//! Limits on what the datastore accepts, and the checks that apply them.
//!
//! Every input is bounded (DESIGN §9) so that a buggy or hostile admin
//! client cannot bloat the database or the audit log, and so that every
//! refusal says which field and which limit.

use super::error::StoreError;

/// Longest string field (SPIFFE IDs, selectors, reasons, hints…), in bytes.
pub const MAX_STRING: usize = 2048;
/// Most workload selectors, and most node selectors, per entry.
pub const MAX_ENTRY_SELECTORS: usize = 64;
/// Most DNS names per entry.
pub const MAX_DNS_NAMES: usize = 64;
/// Longest DNS name (RFC 1035), in bytes.
pub const MAX_DNS_NAME: usize = 253;
/// Longest SVID TTL an entry may ask for: one year.
pub const MAX_TTL_S: u32 = 365 * 24 * 3600;
/// Most node selectors in one verdict (one per PCR per bank, plus a few).
pub const MAX_NODE_SELECTORS: usize = 1024;
/// Largest verdict, as JSON, in bytes.
pub const MAX_VERDICT_JSON: usize = 1 << 20;
/// Largest payload of a custom audit event, as JSON, in bytes.
pub const MAX_EVENT_PAYLOAD: usize = 64 << 10;
/// Longest actor or audit kind, in bytes.
pub const MAX_NAME: usize = 256;
/// Largest public part of a key (a certificate chain), in bytes.
pub const MAX_KEY_PUBLIC: usize = 64 << 10;
/// Largest private key (PKCS#8 DER), in bytes.
pub const MAX_KEY_PRIVATE: usize = 16 << 10;
/// Rows returned by a list call when the caller asks for 0.
pub const DEFAULT_PAGE: u32 = 100;
/// Most rows a list call returns.
pub const MAX_PAGE: u32 = 10_000;

pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> StoreError {
    StoreError::InvalidInput {
        field: field.into(),
        reason: reason.into(),
    }
}

/// A bounded string without control characters (they would garble the
/// CLI's tables and logs).
pub(crate) fn check_text(field: &str, s: &str, max: usize) -> Result<(), StoreError> {
    if s.len() > max {
        return Err(invalid(
            field,
            format!("{} bytes, more than the limit of {max}", s.len()),
        ));
    }
    if let Some(c) = s.chars().find(|c| c.is_control()) {
        return Err(invalid(
            field,
            format!("contains the control character {:?}", c),
        ));
    }
    Ok(())
}

pub(crate) fn check_nonempty_text(field: &str, s: &str, max: usize) -> Result<(), StoreError> {
    if s.is_empty() {
        return Err(invalid(field, "is empty"));
    }
    check_text(field, s, max)
}

/// Lowercase hex of a SHA-256 (the EK hash): the node ID is built from it
/// and the bans table is keyed by it, so one spelling only.
pub(crate) fn check_sha256_hex(field: &str, s: &str) -> Result<(), StoreError> {
    if s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("{s:?} is not 64 lowercase hex digits (a SHA-256)"),
        ))
    }
}

/// The SPIFFE ID syntax (spiffe.io SPIFFE-ID standard §2): `spiffe://`,
/// a trust domain of `[a-z0-9.-_]`, and a path of non-empty segments of
/// `[A-Za-z0-9.-_]` that are not `.` or `..`; no query, fragment, port or
/// userinfo.
pub(crate) fn check_spiffe_id(field: &str, s: &str) -> Result<(), StoreError> {
    check_text(field, s, MAX_STRING)?;
    let rest = s
        .strip_prefix("spiffe://")
        .ok_or_else(|| invalid(field, format!("{s:?} does not start with spiffe://")))?;
    let (td, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if td.is_empty() {
        return Err(invalid(field, format!("{s:?} has no trust domain")));
    }
    if let Some(c) = td
        .chars()
        .find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '.' | '-' | '_'))
    {
        return Err(invalid(
            field,
            format!("{s:?}: trust domain contains {c:?} (only a-z 0-9 . - _)"),
        ));
    }
    if path.is_empty() {
        return Ok(());
    }
    for segment in path[1..].split('/') {
        if segment.is_empty() {
            return Err(invalid(
                field,
                format!("{s:?}: empty path segment (or trailing /)"),
            ));
        }
        if segment == "." || segment == ".." {
            return Err(invalid(
                field,
                format!("{s:?}: path segment {segment:?} not allowed"),
            ));
        }
        if let Some(c) = segment
            .chars()
            .find(|c| !matches!(c, 'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '-' | '_'))
        {
            return Err(invalid(
                field,
                format!("{s:?}: path contains {c:?} (only A-Z a-z 0-9 . - _)"),
            ));
        }
    }
    Ok(())
}

/// `type:value`, type `[a-z0-9_-]+`, value non-empty.
pub(crate) fn check_selector(field: &str, s: &str) -> Result<(), StoreError> {
    check_nonempty_text(field, s, MAX_STRING)?;
    let (ty, value) = s
        .split_once(':')
        .ok_or_else(|| invalid(field, format!("{s:?} is not type:value")))?;
    if ty.is_empty()
        || !ty
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'))
    {
        return Err(invalid(
            field,
            format!("{s:?}: selector type {ty:?} must be lowercase a-z 0-9 _ -"),
        ));
    }
    if value.is_empty() {
        return Err(invalid(field, format!("{s:?} has an empty value")));
    }
    Ok(())
}

/// Checks, sorts and deduplicates a selector list.
pub(crate) fn normalise_selectors(
    field: &str,
    selectors: &[String],
    max: usize,
) -> Result<Vec<String>, StoreError> {
    if selectors.len() > max {
        return Err(invalid(
            field,
            format!(
                "{} selectors, more than the limit of {max}",
                selectors.len()
            ),
        ));
    }
    for (i, s) in selectors.iter().enumerate() {
        check_selector(&format!("{field}[{i}]"), s)?;
    }
    let mut out = selectors.to_vec();
    out.sort();
    out.dedup();
    Ok(out)
}

/// A DNS name for a SAN: LDH labels of 1–63 bytes, optionally a leading
/// `*.` wildcard label.
pub(crate) fn check_dns_name(field: &str, s: &str) -> Result<(), StoreError> {
    if s.is_empty() || s.len() > MAX_DNS_NAME {
        return Err(invalid(
            field,
            format!("{s:?}: a DNS name is 1 to {MAX_DNS_NAME} bytes"),
        ));
    }
    let body = s.strip_prefix("*.").unwrap_or(s);
    for label in body.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(invalid(
                field,
                format!("{s:?}: label {label:?} is not a DNS label (a-z 0-9 -, 1 to 63 bytes)"),
            ));
        }
    }
    Ok(())
}

pub(crate) fn check_ttl(field: &str, ttl: Option<u32>) -> Result<(), StoreError> {
    match ttl {
        Some(0) => Err(invalid(
            field,
            "0 seconds (leave it unset for the issuer's default)",
        )),
        Some(t) if t > MAX_TTL_S => Err(invalid(
            field,
            format!("{t} seconds, more than the limit of {MAX_TTL_S} (one year)"),
        )),
        _ => Ok(()),
    }
}

/// Dotted lowercase names: audit kinds.
pub(crate) fn check_kind(field: &str, s: &str) -> Result<(), StoreError> {
    if s.is_empty()
        || s.len() > MAX_NAME
        || !s
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-'))
    {
        return Err(invalid(
            field,
            format!("{s:?} must be 1 to {MAX_NAME} bytes of a-z 0-9 . _ -"),
        ));
    }
    Ok(())
}

pub(crate) fn clamp_page(limit: u32) -> u32 {
    match limit {
        0 => DEFAULT_PAGE,
        l => l.min(MAX_PAGE),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spiffe_ids() {
        for ok in [
            "spiffe://example.org",
            "spiffe://example.org/rootmark/node/abc",
            "spiffe://a-b_c.d/X.y-z_1",
        ] {
            assert!(check_spiffe_id("id", ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://example.org/x",
            "spiffe:///x",
            "spiffe://Example.org/x",
            "spiffe://example.org/",
            "spiffe://example.org//x",
            "spiffe://example.org/./x",
            "spiffe://example.org/a/..",
            "spiffe://example.org/a?b",
            "spiffe://example.org:443/a",
            "spiffe://user@example.org/a",
        ] {
            assert!(check_spiffe_id("id", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn selectors_are_sorted_and_bounded() {
        let sel = vec!["unix:uid:1".to_owned(), "tpm:a".into(), "unix:uid:1".into()];
        assert_eq!(
            normalise_selectors("s", &sel, 64).ok(),
            Some(vec!["tpm:a".to_owned(), "unix:uid:1".into()])
        );
        for bad in ["nocolon", ":v", "t:", "T:v", "t:v\n"] {
            assert!(check_selector("s", bad).is_err(), "{bad}");
        }
        let many: Vec<String> = (0..65).map(|i| format!("unix:uid:{i}")).collect();
        let err = normalise_selectors("entry.selectors", &many, 64)
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("invalid entry.selectors: 65 selectors, more than the limit of 64")
        );
    }

    #[test]
    fn dns_names() {
        for ok in ["a.example.org", "*.example.org", "x-1"] {
            assert!(check_dns_name("d", ok).is_ok(), "{ok}");
        }
        for bad in ["", "a..b", "-a.b", "a_b.c", "a.*.b", "é.org"] {
            assert!(check_dns_name("d", bad).is_err(), "{bad}");
        }
    }
}
