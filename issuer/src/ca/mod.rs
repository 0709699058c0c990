//! The issuer's certificate authorities: X.509 and JWT signing keys, their
//! rotation, SVID minting and the trust bundle (DESIGN.md §4).
//!
//! * [`X509Authority`] holds the X.509 CA: a self-signed root by default, or
//!   an intermediate under an [`UpstreamCa`] given as files. It mints
//!   X509-SVIDs with [`X509Authority::mint_x509_svid`] for workload public
//!   keys ([`WorkloadKey`], from a SubjectPublicKeyInfo or a verified CSR,
//!   [`verify_csr`]).
//! * [`JwtAuthority`] holds the ES256 JWT signing keys, each with a `kid`,
//!   and mints JWT-SVIDs with [`JwtAuthority::mint_jwt_svid`].
//! * Both rotate like SPIRE's CA manager ([`CaRotation`], pure logic over an
//!   injected clock): the next key is prepared (and published in the
//!   bundle) at 1/2 of the active key's lifetime and activated at 5/6; the
//!   old key stays in the bundle until it expires. The service calls
//!   `rotate()` on both periodically (at the latest at
//!   [`X509Authority::next_rotation`]) and pushes the bundle when
//!   [`RotationReport::bundle_changed`] says so.
//! * [`TrustBundle`] gathers both into the Workload API's X.509 roots
//!   (concatenated DER) and the SPIFFE bundle (JWKS).
//! * Keys live on disk as PKCS#8 files written atomically with mode 0600
//!   ([`keys`]); loading refuses key files that group or others can access.
//!
//! X509-SVIDs are assembled from pre-encoded DER pieces and signed with
//! aws-lc-rs, so minting costs little more than one ECDSA P-256 signature
//! (`cargo bench -p rootmark-issuer --bench mint`).

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

mod bundle;
pub(crate) mod der;
mod jwt;
pub mod keys;
mod rotation;
pub mod schedule;
mod workload;
mod x509;

pub use bundle::{DEFAULT_REFRESH_HINT, JwtAuthorityKey, TrustBundle};
pub use jwt::{JwtAuthority, JwtConfig, JwtSvid};
pub use rotation::{CaRotation, KeyState, KeyWindow, RotationError, RotationOutcome, RotationSlot};
pub use workload::{WorkloadKey, WorkloadKeyKind, verify_csr};
pub use x509::{UpstreamCa, X509Authority, X509AuthorityInfo, X509CaConfig, X509Svid};

/// How far before "now" certificates start (notBefore), so that a verifier
/// whose clock is a few seconds behind the issuer's still accepts them.
pub const BACKDATE: Duration = Duration::from_secs(10);

/// Default lifetime of an X.509 CA or JWT signing key (SPIRE's default).
pub const DEFAULT_CA_TTL: Duration = Duration::from_secs(24 * 3600);

/// Default X509-SVID lifetime (DESIGN.md §4).
pub const DEFAULT_X509_SVID_TTL: Duration = Duration::from_secs(3600);

/// Default JWT-SVID lifetime (DESIGN.md §4).
pub const DEFAULT_JWT_SVID_TTL: Duration = Duration::from_secs(300);

/// Most DNS names one X509-SVID may carry (DESIGN.md §9: a limit on every
/// input).
pub const MAX_DNS_NAMES: usize = 64;

/// Most audiences one JWT-SVID may carry.
pub const MAX_AUDIENCES: usize = 32;

/// Longest audience string accepted, in bytes.
pub const MAX_AUDIENCE_LEN: usize = 1024;

/// Why a CA operation failed. Each variant names the input, file or field
/// that is wrong and what was expected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaError {
    /// A request or configuration field has a bad value.
    #[error("{field}: expected {expected}, found {found}")]
    InvalidInput {
        /// The field, as the caller names it (`ttl`, `audience`,
        /// `dns_names[2]`, `spiffe_id`, `common_name`…).
        field: String,
        /// What the field must hold.
        expected: String,
        /// What it held (shortened when long).
        found: String,
    },
    /// A workload public key of a type the CA does not sign.
    #[error("public key: expected {expected}, found {found}")]
    UnsupportedKey {
        /// The key types accepted.
        expected: &'static str,
        /// What was presented.
        found: String,
    },
    /// A PKCS#10 certificate signing request that cannot be used.
    #[error("CSR {field}: expected {expected}, found {found}")]
    Csr {
        /// The CSR part (`encoding`, `signature`, `signature algorithm`…).
        field: &'static str,
        /// What it must be.
        expected: &'static str,
        /// What it was.
        found: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: cannot {action}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done (`read`, `write`, `rename`…).
        action: &'static str,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A private key file that group or others can access.
    #[error(
        "key file {path}: expected mode 0600 (owner only), found {mode:04o}, which lets group \
         or others access the key; run `chmod 600 {path}`",
        path = path.display()
    )]
    KeyFilePermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A private key file whose content is unusable.
    #[error("key file {path}: expected {expected}, found {found}", path = path.display())]
    KeyFile {
        /// The key file.
        path: PathBuf,
        /// What the file must hold.
        expected: &'static str,
        /// What it held.
        found: String,
    },
    /// The upstream CA's certificate, key or bundle cannot be used.
    #[error("upstream CA {field}: expected {expected}, found {found}")]
    Upstream {
        /// `cert_file`, `key_file`, `bundle_file`, `certificate`…
        field: &'static str,
        /// What it must be.
        expected: String,
        /// What it was.
        found: String,
    },
    /// The persisted CA state (manifest) is unusable.
    #[error("CA state {path}: expected {expected}, found {found}", path = path.display())]
    State {
        /// The manifest file.
        path: PathBuf,
        /// What it must hold.
        expected: String,
        /// What it held.
        found: String,
    },
    /// The signing key that would be used has expired (the issuer was off
    /// past its lifetime and `rotate()` was not called since).
    #[error(
        "{what}: expected a signing key valid now ({now}), found one that expired at {not_after}; call rotate()"
    )]
    Expired {
        /// Which authority.
        what: &'static str,
        /// The key's expiry, unix seconds.
        not_after: u64,
        /// The time of the request, unix seconds.
        now: u64,
    },
    /// The authority has no active key yet.
    #[error("{what}: expected an active signing key, found none; call rotate()")]
    NoActiveKey {
        /// Which authority.
        what: &'static str,
    },
    /// aws-lc-rs refused an operation that cannot fail on valid inputs.
    #[error("cryptographic operation failed: {operation}")]
    Crypto {
        /// What was being done.
        operation: &'static str,
    },
    /// A bundle cannot be expressed as requested.
    #[error("bundle {field}: expected {expected}, found {found}")]
    Bundle {
        /// The bundle entry.
        field: String,
        /// What it must be.
        expected: &'static str,
        /// What it was.
        found: String,
    },
}

impl CaError {
    pub(crate) fn invalid(
        field: impl Into<String>,
        expected: impl Into<String>,
        found: impl fmt::Display,
    ) -> Self {
        Self::InvalidInput {
            field: field.into(),
            expected: expected.into(),
            found: shorten(&found.to_string()),
        }
    }

    pub(crate) fn io(
        path: impl Into<PathBuf>,
        action: &'static str,
        source: std::io::Error,
    ) -> Self {
        Self::Io {
            path: path.into(),
            action,
            source,
        }
    }

    pub(crate) fn crypto(operation: &'static str) -> Self {
        Self::Crypto { operation }
    }
}

/// At most 80 characters of an input for an error message, so that an
/// attacker-sized value does not end up whole in logs and audit records.
pub(crate) fn shorten(value: &str) -> String {
    const MAX: usize = 80;
    if value.len() <= MAX {
        return format!("{value:?}");
    }
    let mut end = MAX;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}… ({} bytes)", &value[..end], value.len())
}

/// Where the authorities read the time. Injected so that rotation and
/// validity can be tested without waiting.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time.
    fn now(&self) -> SystemTime;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that only moves when told to; clones share the same time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<SystemTime>>,
}

impl ManualClock {
    /// A clock stopped at `now`.
    pub fn new(now: SystemTime) -> Self {
        Self {
            now: Arc::new(Mutex::new(now)),
        }
    }

    /// Sets the time.
    pub fn set(&self, now: SystemTime) {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner) = now;
    }

    /// Moves the time forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(PoisonError::into_inner);
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Seconds since the Unix epoch; times before it count as 0.
pub fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The `SystemTime` of a count of seconds since the Unix epoch.
pub fn from_unix_seconds(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(seconds)
}

/// What one `rotate()` call changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RotationReport {
    /// Id of the key prepared by this call (now published in the bundle).
    pub prepared: Option<String>,
    /// Id of the key activated by this call (now signing).
    pub activated: Option<String>,
    /// Ids of the expired keys removed from the bundle.
    pub pruned: Vec<String>,
    /// Ids of persisted keys dropped when the state was loaded because they
    /// no longer fit the configuration (for example another upstream CA).
    pub discarded: Vec<String>,
}

impl RotationReport {
    /// Whether the published keys changed, so the bundle must be pushed to
    /// the nodes again (and its sequence number bumped).
    pub fn bundle_changed(&self) -> bool {
        self.prepared.is_some() || !self.pruned.is_empty() || !self.discarded.is_empty()
    }

    /// Whether anything changed at all.
    pub fn is_empty(&self) -> bool {
        self.prepared.is_none()
            && self.activated.is_none()
            && self.pruned.is_empty()
            && self.discarded.is_empty()
    }
}

/// Random bytes from the operating system through aws-lc-rs.
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], CaError> {
    let mut out = [0u8; N];
    aws_lc_rs::rand::fill(&mut out).map_err(|_| CaError::crypto("random number generation"))?;
    Ok(out)
}

/// A random key id: 8 bytes as lowercase hex.
pub(crate) fn random_id() -> Result<String, CaError> {
    Ok(hex::encode(random_bytes::<8>()?))
}
