//! SPIFFE identities: [`TrustDomain`] and [`SpiffeId`].
//!
//! Both types can only hold values that follow the
//! [SPIFFE ID specification](https://github.com/spiffe/spiffe/blob/main/standards/SPIFFE-ID.md)
//! exactly, so code that receives one never re-validates it:
//!
//! * the scheme is `spiffe` followed by `://` (lowercase, as every SPIFFE
//!   implementation writes it);
//! * the trust domain is non-empty, at most 255 bytes, and made of lowercase
//!   ASCII letters, digits, `.`, `-` and `_` — so no userinfo (`@`), no port
//!   (`:`), no percent-encoding and no uppercase;
//! * the path is empty or a sequence of `/segment`, each segment non-empty,
//!   not `.` or `..`, and made of ASCII letters, digits, `.`, `-` and `_` — so
//!   no trailing slash, no percent-encoding, no query (`?`) and no fragment
//!   (`#`);
//! * the whole ID is at most 2048 bytes.
//!
//! Parsing never panics and every refusal names the part of the ID that is
//! wrong and what was expected there ([`IdError`]).
//!
//! ```
//! use rootmark_sdk::id::{SpiffeId, TrustDomain};
//!
//! let id: SpiffeId = "spiffe://example.org/payments/web".parse()?;
//! assert_eq!(id.trust_domain().as_str(), "example.org");
//! assert_eq!(id.path(), "/payments/web");
//!
//! let td = TrustDomain::parse("example.org")?;
//! assert_eq!(td.id().to_string(), "spiffe://example.org");
//! assert!(id.is_member_of(&td));
//! # Ok::<(), rootmark_sdk::id::IdError>(())
//! ```

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The scheme prefix every SPIFFE ID starts with.
pub const SPIFFE_SCHEME_PREFIX: &str = "spiffe://";

/// Longest SPIFFE ID accepted, in bytes (SPIFFE ID spec §2.3: implementations
/// must support 2048 bytes and should not generate longer IDs).
pub const MAX_SPIFFE_ID_LEN: usize = 2048;

/// Longest trust domain name accepted, in bytes (RFC 3986 limits the URI host
/// to 255 characters, SPIFFE ID spec §2.3).
pub const MAX_TRUST_DOMAIN_LEN: usize = 255;

/// Why a string is not a valid SPIFFE ID or trust domain.
///
/// Each variant names the part of the ID that is wrong (`scheme`, `trust
/// domain`, `path`) and what the specification expects there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// The input was the empty string.
    #[error("SPIFFE ID: expected `spiffe://<trust domain>[/<path>]`, found an empty string")]
    Empty,
    /// The ID is longer than [`MAX_SPIFFE_ID_LEN`].
    #[error("SPIFFE ID: expected at most {max} bytes, found {len}")]
    TooLong {
        /// Length of the input in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The ID does not start with `spiffe://`.
    #[error("SPIFFE ID scheme: expected `spiffe://`, found {found:?}")]
    Scheme {
        /// The start of the input (at most 16 bytes of it).
        found: String,
    },
    /// Nothing between `spiffe://` and the path.
    #[error("trust domain: expected a non-empty name after `spiffe://`")]
    MissingTrustDomain,
    /// The trust domain is longer than [`MAX_TRUST_DOMAIN_LEN`].
    #[error("trust domain: expected at most {max} bytes, found {len}")]
    TrustDomainTooLong {
        /// Length of the trust domain in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The trust domain contains an uppercase letter.
    #[error(
        "trust domain: expected lowercase only, found {character:?} at byte {position} \
         (write the trust domain in lowercase)"
    )]
    TrustDomainUppercase {
        /// The offending character.
        character: char,
        /// Its byte offset in the trust domain.
        position: usize,
    },
    /// The authority has a userinfo part (`user@host`).
    #[error("trust domain: expected a bare name, found userinfo (`@`)")]
    UserInfo,
    /// The authority has a port (`host:port`).
    #[error("trust domain: expected a bare name, found a port (`:`)")]
    Port,
    /// A character outside `[a-z0-9.-_]` in the trust domain.
    #[error(
        "trust domain: expected only lowercase letters, digits, '.', '-' and '_', \
         found {character:?} at byte {position}"
    )]
    TrustDomainCharacter {
        /// The offending character.
        character: char,
        /// Its byte offset in the trust domain.
        position: usize,
    },
    /// A `%` anywhere: SPIFFE IDs are never percent-encoded.
    #[error("{part}: expected no percent-encoding, found '%' at byte {position}")]
    PercentEncoding {
        /// `trust domain` or `path`.
        part: &'static str,
        /// Byte offset of the `%` in the whole ID.
        position: usize,
    },
    /// A query component (`?…`).
    #[error("SPIFFE ID: expected no query, found '?' at byte {position}")]
    Query {
        /// Byte offset of the `?` in the whole ID.
        position: usize,
    },
    /// A fragment component (`#…`).
    #[error("SPIFFE ID: expected no fragment, found '#' at byte {position}")]
    Fragment {
        /// Byte offset of the `#` in the whole ID.
        position: usize,
    },
    /// Two consecutive slashes (an empty segment).
    #[error("path: expected non-empty segments, found an empty one at byte {position}")]
    EmptySegment {
        /// Byte offset in the path where the empty segment starts.
        position: usize,
    },
    /// A `.` or `..` segment.
    #[error("path: expected no '.' or '..' segments, found {segment:?} at byte {position}")]
    DotSegment {
        /// `.` or `..`.
        segment: &'static str,
        /// Byte offset of the segment in the path.
        position: usize,
    },
    /// The path ends with `/`.
    #[error("path: expected no trailing '/'")]
    TrailingSlash,
    /// The path does not start with `/` (only possible through
    /// [`SpiffeId::from_path`]).
    #[error("path: expected empty or starting with '/', found {found:?}")]
    PathStart {
        /// The first character of the path.
        found: char,
    },
    /// A character outside `[A-Za-z0-9.-_]` in a path segment.
    #[error(
        "path: expected only letters, digits, '.', '-' and '_' in segments, \
         found {character:?} at byte {position}"
    )]
    PathCharacter {
        /// The offending character.
        character: char,
        /// Its byte offset in the path.
        position: usize,
    },
}

/// A SPIFFE trust domain name, such as `example.org`.
///
/// Serialized (serde) as the bare name. [`TrustDomain::parse`] also accepts a
/// SPIFFE ID and keeps its trust domain, as go-spiffe's
/// `TrustDomainFromString` does, so configuration may say either
/// `example.org` or `spiffe://example.org`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TrustDomain {
    name: String,
}

impl TrustDomain {
    /// Parses a trust domain name (`example.org`) or takes the trust domain
    /// of a SPIFFE ID (`spiffe://example.org[/path]`).
    ///
    /// # Errors
    /// [`IdError`] naming what is wrong with the name or the ID.
    pub fn parse(input: &str) -> Result<Self, IdError> {
        if input.starts_with(SPIFFE_SCHEME_PREFIX) {
            return SpiffeId::parse(input).map(|id| id.td);
        }
        if input.is_empty() {
            return Err(IdError::MissingTrustDomain);
        }
        if input.contains("://") {
            return Err(IdError::Scheme {
                found: prefix(input),
            });
        }
        validate_trust_domain(input, 0)?;
        Ok(Self {
            name: input.to_owned(),
        })
    }

    /// The trust domain name, e.g. `example.org`.
    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// The trust domain's own SPIFFE ID, `spiffe://<name>` (no path): the ID
    /// of its signing authorities and the key of bundle maps on the Workload
    /// API.
    pub fn id(&self) -> SpiffeId {
        SpiffeId {
            full: format!("{SPIFFE_SCHEME_PREFIX}{}", self.name),
            td: self.clone(),
        }
    }
}

impl fmt::Display for TrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl fmt::Debug for TrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TrustDomain({:?})", self.name)
    }
}

impl FromStr for TrustDomain {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<&str> for TrustDomain {
    type Error = IdError;

    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::parse(s)
    }
}

impl AsRef<str> for TrustDomain {
    fn as_ref(&self) -> &str {
        &self.name
    }
}

impl Serialize for TrustDomain {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.name)
    }
}

impl<'de> Deserialize<'de> for TrustDomain {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A SPIFFE ID, such as `spiffe://example.org/payments/web`.
///
/// Equality, ordering and hashing are those of the ID string. Serialized
/// (serde) as the string.
#[derive(Clone)]
pub struct SpiffeId {
    /// The whole ID; the trust domain is repeated in `td` so that
    /// [`SpiffeId::trust_domain`] can hand out a reference.
    full: String,
    td: TrustDomain,
}

impl SpiffeId {
    /// Parses a SPIFFE ID.
    ///
    /// # Errors
    /// [`IdError`] naming the part of the ID that is wrong.
    pub fn parse(input: &str) -> Result<Self, IdError> {
        if input.is_empty() {
            return Err(IdError::Empty);
        }
        if input.len() > MAX_SPIFFE_ID_LEN {
            return Err(IdError::TooLong {
                len: input.len(),
                max: MAX_SPIFFE_ID_LEN,
            });
        }
        let Some(rest) = input.strip_prefix(SPIFFE_SCHEME_PREFIX) else {
            return Err(IdError::Scheme {
                found: prefix(input),
            });
        };
        let base = SPIFFE_SCHEME_PREFIX.len();
        // Query and fragment are reported as such rather than as a bad
        // character, wherever they appear, because that is what a reader who
        // pasted a URL needs to hear.
        if let Some(position) = rest.find('?') {
            return Err(IdError::Query {
                position: base + position,
            });
        }
        if let Some(position) = rest.find('#') {
            return Err(IdError::Fragment {
                position: base + position,
            });
        }
        let td_end = rest.find('/').unwrap_or(rest.len());
        let (td, path) = rest.split_at(td_end);
        if td.is_empty() {
            return Err(IdError::MissingTrustDomain);
        }
        validate_trust_domain(td, base)?;
        validate_path(path, base + td_end)?;
        Ok(Self {
            full: input.to_owned(),
            td: TrustDomain {
                name: td.to_owned(),
            },
        })
    }

    /// Builds the ID `spiffe://<trust_domain><path>`; `path` is empty or
    /// starts with `/`.
    ///
    /// # Errors
    /// [`IdError`] when the path breaks a path rule or the whole ID is too
    /// long.
    pub fn from_path(trust_domain: &TrustDomain, path: &str) -> Result<Self, IdError> {
        if let Some(found) = path.chars().next().filter(|c| *c != '/') {
            return Err(IdError::PathStart { found });
        }
        validate_path(path, 0)?;
        let full = format!("{SPIFFE_SCHEME_PREFIX}{}{path}", trust_domain.name);
        if full.len() > MAX_SPIFFE_ID_LEN {
            return Err(IdError::TooLong {
                len: full.len(),
                max: MAX_SPIFFE_ID_LEN,
            });
        }
        Ok(Self {
            full,
            td: trust_domain.clone(),
        })
    }

    /// Builds the ID `spiffe://<trust_domain>/<segment>/<segment>…`, e.g.
    /// `from_segments(&td, &["rootmark", "node", hash])`.
    ///
    /// # Errors
    /// [`IdError`] when a segment is empty, `.`/`..`, contains a character
    /// outside `[A-Za-z0-9.-_]` (a `/` included), or the ID is too long.
    pub fn from_segments<S: AsRef<str>>(
        trust_domain: &TrustDomain,
        segments: &[S],
    ) -> Result<Self, IdError> {
        let mut path = String::new();
        for segment in segments {
            let segment = segment.as_ref();
            if segment.is_empty() {
                return Err(IdError::EmptySegment {
                    position: path.len() + 1,
                });
            }
            // A '/' inside a segment would silently add a level to the path:
            // the caller asked for one segment and must get one or an error.
            if let Some(offset) = segment.find('/') {
                return Err(IdError::PathCharacter {
                    character: '/',
                    position: path.len() + 1 + offset,
                });
            }
            path.push('/');
            path.push_str(segment);
        }
        Self::from_path(trust_domain, &path)
    }

    /// The whole ID as a string.
    pub fn as_str(&self) -> &str {
        &self.full
    }

    /// The trust domain the ID belongs to.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.td
    }

    /// The path: empty for a trust domain ID, otherwise `/segment/…`.
    pub fn path(&self) -> &str {
        // The prefix and trust domain are ASCII, so this index is a char
        // boundary.
        &self.full[SPIFFE_SCHEME_PREFIX.len() + self.td.name.len()..]
    }

    /// The path segments, without slashes (none for a trust domain ID).
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.path().split('/').skip(1)
    }

    /// Whether this is a trust domain's own ID (`spiffe://td`, no path).
    /// Leaf SVIDs never carry such an ID (X509-SVID spec §3.1).
    pub fn is_trust_domain_id(&self) -> bool {
        self.path().is_empty()
    }

    /// Whether the ID belongs to `trust_domain`.
    pub fn is_member_of(&self, trust_domain: &TrustDomain) -> bool {
        self.td == *trust_domain
    }
}

impl PartialEq for SpiffeId {
    fn eq(&self, other: &Self) -> bool {
        self.full == other.full
    }
}

impl Eq for SpiffeId {}

impl PartialOrd for SpiffeId {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SpiffeId {
    fn cmp(&self, other: &Self) -> Ordering {
        self.full.cmp(&other.full)
    }
}

impl Hash for SpiffeId {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.full.hash(state);
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

impl fmt::Debug for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpiffeId({:?})", self.full)
    }
}

impl FromStr for SpiffeId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<&str> for SpiffeId {
    type Error = IdError;

    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::parse(s)
    }
}

impl AsRef<str> for SpiffeId {
    fn as_ref(&self) -> &str {
        &self.full
    }
}

impl Serialize for SpiffeId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.full)
    }
}

impl<'de> Deserialize<'de> for SpiffeId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// At most 16 bytes of `input`, cut on a char boundary, for error messages
/// (an attacker-sized input must not end up whole in logs).
fn prefix(input: &str) -> String {
    let mut end = input.len().min(16);
    while !input.is_char_boundary(end) {
        end -= 1;
    }
    input[..end].to_owned()
}

/// Checks a non-empty trust domain name; `base` is its offset in the whole
/// ID, for `%` positions.
fn validate_trust_domain(td: &str, base: usize) -> Result<(), IdError> {
    if td.len() > MAX_TRUST_DOMAIN_LEN {
        return Err(IdError::TrustDomainTooLong {
            len: td.len(),
            max: MAX_TRUST_DOMAIN_LEN,
        });
    }
    // Authority delimiters first: "user@host:port" should be reported as
    // userinfo/port, not as a bad character.
    if td.contains('@') {
        return Err(IdError::UserInfo);
    }
    if td.contains(':') {
        return Err(IdError::Port);
    }
    for (position, character) in td.char_indices() {
        match character {
            'a'..='z' | '0'..='9' | '.' | '-' | '_' => {}
            'A'..='Z' => {
                return Err(IdError::TrustDomainUppercase {
                    character,
                    position,
                });
            }
            '%' => {
                return Err(IdError::PercentEncoding {
                    part: "trust domain",
                    position: base + position,
                });
            }
            _ => {
                return Err(IdError::TrustDomainCharacter {
                    character,
                    position,
                });
            }
        }
    }
    Ok(())
}

/// Checks a path (empty, or `/seg/seg…`); `base` is its offset in the whole
/// ID, for `%` positions.
fn validate_path(path: &str, base: usize) -> Result<(), IdError> {
    if path.is_empty() {
        return Ok(());
    }
    if path.ends_with('/') {
        // A lone "/" is a trailing slash too; it is the clearer message.
        return Err(IdError::TrailingSlash);
    }
    let mut start = 0;
    // The first byte is '/', so splitting yields an empty first piece.
    for segment in path.split('/').skip(1) {
        start += 1;
        match segment {
            "" => return Err(IdError::EmptySegment { position: start }),
            "." => {
                return Err(IdError::DotSegment {
                    segment: ".",
                    position: start,
                });
            }
            ".." => {
                return Err(IdError::DotSegment {
                    segment: "..",
                    position: start,
                });
            }
            _ => {}
        }
        for (offset, character) in segment.char_indices() {
            match character {
                'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '-' | '_' => {}
                '%' => {
                    return Err(IdError::PercentEncoding {
                        part: "path",
                        position: base + start + offset,
                    });
                }
                _ => {
                    return Err(IdError::PathCharacter {
                        character,
                        position: start + offset,
                    });
                }
            }
        }
        start += segment.len();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(input: &str) -> IdError {
        match SpiffeId::parse(input) {
            Ok(id) => panic!("{input:?} parsed as {id}"),
            Err(e) => e,
        }
    }

    #[test]
    fn valid_ids() {
        for input in [
            "spiffe://example.org",
            "spiffe://example.org/workload",
            "spiffe://example.org/ns/staging/sa/default",
            "spiffe://trust-domain_1.example/A-Z_a.z-0.9",
            "spiffe://1.2.3.4/x",
            "spiffe://example.org/...",
            "spiffe://example.org/.hidden/..x",
        ] {
            let id = SpiffeId::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(id.to_string(), input);
            assert_eq!(id.as_str(), input);
            assert_eq!(id, input.parse::<SpiffeId>().expect("FromStr"));
        }
    }

    #[test]
    fn parts() {
        let id = SpiffeId::parse("spiffe://example.org/a/b").expect("valid");
        assert_eq!(id.trust_domain().as_str(), "example.org");
        assert_eq!(id.path(), "/a/b");
        assert_eq!(id.segments().collect::<Vec<_>>(), ["a", "b"]);
        assert!(!id.is_trust_domain_id());
        let td = TrustDomain::parse("example.org").expect("valid");
        assert!(id.is_member_of(&td));
        assert!(!id.is_member_of(&TrustDomain::parse("example.com").expect("valid")));
        let td_id = td.id();
        assert_eq!(td_id.as_str(), "spiffe://example.org");
        assert_eq!(td_id.path(), "");
        assert!(td_id.is_trust_domain_id());
        assert_eq!(td_id.segments().count(), 0);
        assert_eq!(
            td_id,
            SpiffeId::parse("spiffe://example.org").expect("valid")
        );
    }

    #[test]
    fn builders() {
        let td = TrustDomain::parse("example.org").expect("valid");
        let node = SpiffeId::from_segments(&td, &["rootmark", "node", "ab12"]).expect("valid");
        assert_eq!(node.as_str(), "spiffe://example.org/rootmark/node/ab12");
        assert_eq!(
            SpiffeId::from_path(&td, "/rootmark/issuer")
                .expect("valid")
                .as_str(),
            "spiffe://example.org/rootmark/issuer"
        );
        assert_eq!(SpiffeId::from_path(&td, "").expect("valid"), td.id());
        assert_eq!(
            SpiffeId::from_path(&td, "x"),
            Err(IdError::PathStart { found: 'x' })
        );
        assert_eq!(
            SpiffeId::from_segments(&td, &["x", "a/b"]),
            Err(IdError::PathCharacter {
                character: '/',
                position: 4
            })
        );
        assert!(matches!(
            SpiffeId::from_segments(&td, &["a", ""]),
            Err(IdError::EmptySegment { .. })
        ));
        assert!(matches!(
            SpiffeId::from_segments(&td, &[".."]),
            Err(IdError::DotSegment { .. })
        ));
        let long = "a".repeat(MAX_SPIFFE_ID_LEN);
        assert!(matches!(
            SpiffeId::from_segments(&td, &[long]),
            Err(IdError::TooLong { .. })
        ));
    }

    #[test]
    fn scheme_and_empty() {
        assert_eq!(err(""), IdError::Empty);
        for input in [
            "example.org/workload",
            "https://example.org/workload",
            "SPIFFE://example.org/workload",
            "spiffe:/example.org",
            "spiffe:example.org",
            "spiff://example.org",
            "//example.org/x",
        ] {
            assert!(
                matches!(err(input), IdError::Scheme { .. }),
                "{input}: {}",
                err(input)
            );
        }
        assert_eq!(err("spiffe://"), IdError::MissingTrustDomain);
        assert_eq!(err("spiffe:///path"), IdError::MissingTrustDomain);
    }

    #[test]
    fn uppercase_trust_domain() {
        assert_eq!(
            err("spiffe://Example.org/workload"),
            IdError::TrustDomainUppercase {
                character: 'E',
                position: 0
            }
        );
        assert!(matches!(
            TrustDomain::parse("example.ORG"),
            Err(IdError::TrustDomainUppercase { character: 'O', .. })
        ));
        let message = err("spiffe://exAmple.org").to_string();
        assert!(message.starts_with("trust domain:"), "{message}");
        assert!(message.contains("lowercase"), "{message}");
    }

    #[test]
    fn trust_domain_characters_userinfo_port() {
        assert_eq!(err("spiffe://user@example.org/x"), IdError::UserInfo);
        assert_eq!(err("spiffe://user:pw@example.org/x"), IdError::UserInfo);
        assert_eq!(err("spiffe://example.org:8080/x"), IdError::Port);
        assert_eq!(err("spiffe://[::1]/x"), IdError::Port);
        assert!(matches!(
            err("spiffe://exa mple.org"),
            IdError::TrustDomainCharacter { character: ' ', .. }
        ));
        assert!(matches!(
            err("spiffe://exämple.org"),
            IdError::TrustDomainCharacter {
                character: 'ä', ..
            }
        ));
        assert!(matches!(
            err("spiffe://example%2eorg/x"),
            IdError::PercentEncoding {
                part: "trust domain",
                position: 16
            }
        ));
        let long = format!("spiffe://{}", "a".repeat(MAX_TRUST_DOMAIN_LEN + 1));
        assert_eq!(
            err(&long),
            IdError::TrustDomainTooLong { len: 256, max: 255 }
        );
        assert!(SpiffeId::parse(&format!("spiffe://{}", "a".repeat(MAX_TRUST_DOMAIN_LEN))).is_ok());
    }

    #[test]
    fn empty_and_dot_segments() {
        assert_eq!(
            err("spiffe://example.org//workload"),
            IdError::EmptySegment { position: 1 }
        );
        assert_eq!(
            err("spiffe://example.org/a//b"),
            IdError::EmptySegment { position: 3 }
        );
        assert_eq!(
            err("spiffe://example.org/."),
            IdError::DotSegment {
                segment: ".",
                position: 1
            }
        );
        assert_eq!(
            err("spiffe://example.org/a/../b"),
            IdError::DotSegment {
                segment: "..",
                position: 3
            }
        );
        assert_eq!(
            err("spiffe://example.org/a/./b"),
            IdError::DotSegment {
                segment: ".",
                position: 3
            }
        );
    }

    #[test]
    fn trailing_slash() {
        assert_eq!(err("spiffe://example.org/"), IdError::TrailingSlash);
        assert_eq!(err("spiffe://example.org/a/"), IdError::TrailingSlash);
        assert_eq!(err("spiffe://example.org/a/b/"), IdError::TrailingSlash);
    }

    #[test]
    fn percent_encoding() {
        assert_eq!(
            err("spiffe://example.org/a%20b"),
            IdError::PercentEncoding {
                part: "path",
                position: 22
            }
        );
        assert!(matches!(
            err("spiffe://example.org/%2e%2e"),
            IdError::PercentEncoding { part: "path", .. }
        ));
    }

    #[test]
    fn query_and_fragment() {
        assert_eq!(
            err("spiffe://example.org/workload?x=1"),
            IdError::Query { position: 29 }
        );
        assert_eq!(
            err("spiffe://example.org?x"),
            IdError::Query { position: 20 }
        );
        assert_eq!(
            err("spiffe://example.org/workload#frag"),
            IdError::Fragment { position: 29 }
        );
        assert_eq!(
            err("spiffe://example.org#"),
            IdError::Fragment { position: 20 }
        );
    }

    #[test]
    fn path_characters() {
        for (input, character) in [
            ("spiffe://example.org/a b", ' '),
            ("spiffe://example.org/a:b", ':'),
            ("spiffe://example.org/a@b", '@'),
            ("spiffe://example.org/a+b", '+'),
            ("spiffe://example.org/ä", 'ä'),
            ("spiffe://example.org/a\u{0}", '\u{0}'),
            ("spiffe://example.org/a~b", '~'),
        ] {
            assert!(
                matches!(err(input), IdError::PathCharacter { character: c, .. } if c == character),
                "{input}: {}",
                err(input)
            );
        }
    }

    #[test]
    fn over_long() {
        let base = "spiffe://example.org/";
        let exact = format!("{base}{}", "a".repeat(MAX_SPIFFE_ID_LEN - base.len()));
        assert_eq!(exact.len(), MAX_SPIFFE_ID_LEN);
        assert!(SpiffeId::parse(&exact).is_ok());
        let over = format!("{exact}b");
        assert_eq!(
            err(&over),
            IdError::TooLong {
                len: 2049,
                max: 2048
            }
        );
        // The length check comes first, so a huge input is refused without
        // being scanned.
        assert!(matches!(err(&"x".repeat(1 << 20)), IdError::TooLong { .. }));
    }

    #[test]
    fn trust_domain_parse_forms() {
        let td = TrustDomain::parse("example.org").expect("valid");
        assert_eq!(td.to_string(), "example.org");
        assert_eq!(TrustDomain::parse("spiffe://example.org").expect("id"), td);
        assert_eq!(
            TrustDomain::parse("spiffe://example.org/some/path").expect("id"),
            td
        );
        assert_eq!(TrustDomain::parse(""), Err(IdError::MissingTrustDomain));
        assert!(matches!(
            TrustDomain::parse("https://example.org"),
            Err(IdError::Scheme { .. })
        ));
        assert_eq!(TrustDomain::parse("example.org:443"), Err(IdError::Port));
        assert!(matches!(
            TrustDomain::parse("example.org/path"),
            Err(IdError::TrustDomainCharacter { character: '/', .. })
        ));
    }

    #[test]
    fn error_messages_name_the_part() {
        for (input, part) in [
            ("http://x", "scheme"),
            ("spiffe://", "trust domain"),
            ("spiffe://A", "trust domain"),
            ("spiffe://a:1", "trust domain"),
            ("spiffe://a/", "path"),
            ("spiffe://a//b", "path"),
            ("spiffe://a/%41", "path"),
            ("spiffe://a/b?c", "query"),
            ("spiffe://a/b#c", "fragment"),
        ] {
            let message = err(input).to_string();
            assert!(message.contains(part), "{input}: {message}");
            assert!(message.contains("expected"), "{input}: {message}");
        }
        // The scheme error quotes at most 16 bytes of the input.
        let message = err(&format!("http://{}", "é".repeat(100))).to_string();
        assert!(message.len() < 120, "{message}");
    }

    #[test]
    fn serde_as_strings() {
        let id = SpiffeId::parse("spiffe://example.org/w").expect("valid");
        let json = serde_json::to_string(&id).expect("serialize");
        assert_eq!(json, r#""spiffe://example.org/w""#);
        assert_eq!(
            serde_json::from_str::<SpiffeId>(&json).expect("deserialize"),
            id
        );
        let td = TrustDomain::parse("example.org").expect("valid");
        assert_eq!(
            serde_json::to_string(&td).expect("serialize"),
            r#""example.org""#
        );
        assert_eq!(
            serde_json::from_str::<TrustDomain>(r#""example.org""#).expect("deserialize"),
            td
        );
        let bad = serde_json::from_str::<SpiffeId>(r#""spiffe://Example.org/w""#)
            .expect_err("uppercase refused");
        assert!(bad.to_string().contains("trust domain"), "{bad}");
        assert!(serde_json::from_str::<TrustDomain>(r#""a b""#).is_err());
    }

    #[test]
    fn ordering_and_hash_follow_the_string() {
        use std::collections::HashSet;
        let a = SpiffeId::parse("spiffe://a.org/x").expect("valid");
        let b = SpiffeId::parse("spiffe://b.org/x").expect("valid");
        assert!(a < b);
        let set: HashSet<_> = [a.clone(), a.clone(), b].into_iter().collect();
        assert_eq!(set.len(), 2);
    }
}
