//! Workload attestation: which selectors a Workload API caller has.
//!
//! The caller is identified by the kernel, never by what it says
//! (DESIGN.md §5). The server takes `SO_PEERCRED` (pid, uid, gid) from the
//! accepted Unix socket and a [`ConnectionInstant`] taken at accept time, and
//! [`WorkloadAttestor::attest`] turns them into [`WorkloadSelectors`]:
//!
//! - `unix:uid:<n>`, `unix:gid:<n>` from `SO_PEERCRED` only (the effective
//!   ids at `connect(2)` time);
//! - `unix:user:<name>`, `unix:group:<name>` from `/etc/passwd` and
//!   `/etc/group` (local files only; no name, no selector);
//! - `unix:path:<exe>` from `readlink /proc/<pid>/exe` (omitted when the
//!   binary was deleted or replaced on disk, or the path is not UTF-8);
//! - `unix:sha256:<hex>` of the file opened through `/proc/<pid>/exe`, i.e.
//!   the binary the process runs even if the path now holds another one;
//!   cached by (dev, inode, size, mtime, ctime);
//! - `systemd:unit:<unit>` from `/proc/<pid>/cgroup`: the unit of the
//!   *system* manager, as `sd_pid_get_unit(3)` reports it. A process of a
//!   user manager gets `user@<uid>.service`, not its user unit: user units
//!   are named by the unprivileged user, who could call one `nginx.service`.
//!
//! # PID reuse
//!
//! The pid from `SO_PEERCRED` may name a different process by the time
//! `/proc` is read. The attestor reads the process start time (clock ticks
//! since boot) before gathering anything and refuses a process that started
//! after the connection was accepted; it reads it again, together with the
//! executable's identity, after gathering, and refuses if either changed.
//! Start times and [`ConnectionInstant`] both count `CLOCK_BOOTTIME` (in the
//! attestor's time namespace), and the comparison is made in whole ticks,
//! rounding the connection instant down exactly as the kernel rounds the
//! start time, so a process that connects in the tick it started is
//! accepted.
//!
//! Known limits, shared with every `SO_PEERCRED` attestor: the credentials
//! are those of the process that called `connect(2)`; a process that hands
//! the socket to another (fork, `SCM_RIGHTS`) or `execve`s a different
//! binary *before* attestation is attested as what it is at attestation
//! time, and a connecting process that exits and whose pid is reused while
//! the connection waits in the listen backlog is not detected.
//!
//! [`WorkloadAttestor::attest`] blocks (procfs reads, hashing up to
//! [`WorkloadAttestorConfig::max_exe_bytes`]): call it from
//! `tokio::task::spawn_blocking`.

pub(crate) mod process;
pub(crate) mod selectors;
pub(crate) mod users;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

use process::{ExeKey, HashError, Proc};
pub use selectors::WorkloadSelectors;
use users::{DbKind, NameDb};

/// Default for [`WorkloadAttestorConfig::max_exe_bytes`]: 64 MiB.
pub const DEFAULT_MAX_EXE_BYTES: u64 = 64 * 1024 * 1024;
/// Default for [`WorkloadAttestorConfig::digest_cache_entries`].
pub const DEFAULT_DIGEST_CACHE_ENTRIES: usize = 1024;

/// What the kernel says about the peer of a Unix socket (`SO_PEERCRED`,
/// e.g. from `tokio::net::UnixStream::peer_cred`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCredentials {
    /// Pid of the process that connected, in the attestor's pid namespace
    /// (0 if it is in a namespace the attestor cannot see).
    pub pid: i32,
    /// Effective uid at `connect(2)`.
    pub uid: u32,
    /// Effective gid at `connect(2)`.
    pub gid: u32,
}

/// When a connection was accepted, on the clock process start times are
/// measured with: `CLOCK_BOOTTIME`, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnectionInstant {
    boottime_ns: u64,
}

impl ConnectionInstant {
    /// Now. Take it right after `accept(2)`, before anything else.
    pub fn now() -> Self {
        let ts = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
        let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
        let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
        Self {
            boottime_ns: secs.saturating_mul(1_000_000_000).saturating_add(nanos),
        }
    }

    /// An instant `ns` nanoseconds after boot (`CLOCK_BOOTTIME`).
    pub fn from_boottime_nanos(ns: u64) -> Self {
        Self { boottime_ns: ns }
    }

    /// Nanoseconds since boot (`CLOCK_BOOTTIME`).
    pub fn boottime_nanos(self) -> u64 {
        self.boottime_ns
    }

    /// Whole clock ticks since boot, rounded down like the kernel rounds a
    /// process start time (`nsec_to_clock_t`).
    fn ticks(self, ticks_per_second: u64) -> u64 {
        let ticks = u128::from(self.boottime_ns) * u128::from(ticks_per_second) / 1_000_000_000;
        u64::try_from(ticks).unwrap_or(u64::MAX)
    }
}

/// Settings of a [`WorkloadAttestor`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadAttestorConfig {
    /// Largest executable hashed for `unix:sha256`; a bigger one gets no
    /// `unix:sha256` selector (so entries that require one do not match it),
    /// and a warning is logged.
    pub max_exe_bytes: u64,
    /// Where procfs is mounted (`/proc`).
    pub proc_root: PathBuf,
    /// User database for `unix:user` (`/etc/passwd`).
    pub passwd_path: PathBuf,
    /// Group database for `unix:group` (`/etc/group`).
    pub group_path: PathBuf,
    /// How many executable digests are cached (one per distinct binary
    /// version; the cache is emptied when full).
    pub digest_cache_entries: usize,
}

impl Default for WorkloadAttestorConfig {
    fn default() -> Self {
        Self {
            max_exe_bytes: DEFAULT_MAX_EXE_BYTES,
            proc_root: PathBuf::from("/proc"),
            passwd_path: PathBuf::from("/etc/passwd"),
            group_path: PathBuf::from("/etc/group"),
            digest_cache_entries: DEFAULT_DIGEST_CACHE_ENTRIES,
        }
    }
}

/// Why the pid from `SO_PEERCRED` no longer names the process that
/// connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PidReuse {
    /// The process at that pid started after the connection was accepted.
    StartedAfterConnection {
        /// Its start time, in clock ticks since boot.
        start_ticks: u64,
        /// The connection instant, in whole clock ticks since boot.
        connected_ticks: u64,
    },
    /// The start time changed while the attestor was reading `/proc`.
    StartTimeChanged {
        /// Start time read before gathering selectors.
        before_ticks: u64,
        /// Start time read after.
        after_ticks: u64,
    },
}

impl fmt::Display for PidReuse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PidReuse::StartedAfterConnection {
                start_ticks,
                connected_ticks,
            } => write!(
                f,
                "the process started at tick {start_ticks}, after the connection was accepted at tick {connected_ticks}"
            ),
            PidReuse::StartTimeChanged {
                before_ticks,
                after_ticks,
            } => write!(
                f,
                "the process start time changed from tick {before_ticks} to {after_ticks} during attestation"
            ),
        }
    }
}

/// Why a caller could not be attested. The Workload API answers all of them
/// with "no identity issued"; the detail is for the attestor's log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkloadAttestationError {
    /// `SO_PEERCRED` gave no usable pid (0: the peer is in a pid namespace
    /// the attestor cannot see).
    #[error("peer pid {pid} does not name a process visible to the attestor")]
    InvalidPid {
        /// The pid reported.
        pid: i32,
    },
    /// The process exited (or is a zombie) before it could be attested.
    #[error("process {pid} is gone")]
    ProcessGone {
        /// The pid.
        pid: i32,
    },
    /// The pid now names a different process than the one that connected.
    #[error("pid {pid} no longer names the caller: {reason}")]
    PidReused {
        /// The pid.
        pid: i32,
        /// How that was detected.
        reason: PidReuse,
    },
    /// The process ran `execve(2)` while it was being attested.
    #[error("process {pid} changed its executable during attestation")]
    ExeChanged {
        /// The pid.
        pid: i32,
    },
    /// A procfs file of the process could not be read (other than because
    /// the process is gone), e.g. permission denied.
    #[error("reading /proc/{pid}/{file}: {source}")]
    Proc {
        /// The pid.
        pid: i32,
        /// The procfs file: `stat`, `cgroup` or `exe`.
        file: &'static str,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A procfs file had content the attestor does not understand.
    #[error("malformed /proc/{pid}/{file}: {detail}")]
    MalformedProc {
        /// The pid.
        pid: i32,
        /// The procfs file.
        file: &'static str,
        /// What was wrong.
        detail: &'static str,
    },
}

/// Suffix the kernel appends to the `exe` link of a binary whose directory
/// entry was removed.
const DELETED_SUFFIX: &str = " (deleted)";

/// Derives workload selectors for Workload API callers. Shareable across
/// threads (`Arc<WorkloadAttestor>`); digests and name tables are cached
/// inside.
#[derive(Debug)]
pub struct WorkloadAttestor {
    config: WorkloadAttestorConfig,
    ticks_per_second: u64,
    users: NameDb,
    groups: NameDb,
    digests: Mutex<HashMap<ExeKey, [u8; 32]>>,
}

/// What was learnt about the executable.
struct ExeFacts {
    path: Option<String>,
    /// `None` when the executable is over the hashing limit.
    digest: Option<[u8; 32]>,
    dev_ino: (u64, u64),
}

impl WorkloadAttestor {
    /// An attestor with `config`.
    pub fn new(config: WorkloadAttestorConfig) -> Self {
        // USER_HZ, the unit of /proc/<pid>/stat start times (100 on Linux).
        let ticks_per_second = match rustix::param::clock_ticks_per_second() {
            0 => 100,
            hz => hz,
        };
        Self {
            users: NameDb::new(config.passwd_path.clone(), DbKind::Passwd),
            groups: NameDb::new(config.group_path.clone(), DbKind::Group),
            digests: Mutex::new(HashMap::new()),
            ticks_per_second,
            config,
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &WorkloadAttestorConfig {
        &self.config
    }

    /// The selectors of the process behind `peer`, whose connection was
    /// accepted at `connected_at`. Blocks on procfs and file reads.
    pub fn attest(
        &self,
        peer: PeerCredentials,
        connected_at: ConnectionInstant,
    ) -> Result<WorkloadSelectors, WorkloadAttestationError> {
        let pid = peer.pid;
        if pid <= 0 {
            return Err(WorkloadAttestationError::InvalidPid { pid });
        }
        let proc = Proc {
            root: &self.config.proc_root,
            pid,
        };

        let before = proc.stat()?;
        let connected_ticks = connected_at.ticks(self.ticks_per_second);
        if before.start_ticks > connected_ticks {
            return Err(WorkloadAttestationError::PidReused {
                pid,
                reason: PidReuse::StartedAfterConnection {
                    start_ticks: before.start_ticks,
                    connected_ticks,
                },
            });
        }

        let unit = proc
            .cgroup()?
            .and_then(|content| selectors::systemd_unit_from_cgroup(&content));
        let exe = self.exe_facts(&proc)?;

        let after = proc.stat()?;
        if after.start_ticks != before.start_ticks {
            return Err(WorkloadAttestationError::PidReused {
                pid,
                reason: PidReuse::StartTimeChanged {
                    before_ticks: before.start_ticks,
                    after_ticks: after.start_ticks,
                },
            });
        }
        if proc.exe_identity()? != exe.dev_ino {
            return Err(WorkloadAttestationError::ExeChanged { pid });
        }

        let mut selectors = WorkloadSelectors::new();
        selectors.insert("unix:uid", &peer.uid.to_string());
        selectors.insert("unix:gid", &peer.gid.to_string());
        if let Some(user) = self.users.name_of(peer.uid) {
            selectors.insert("unix:user", &user);
        }
        if let Some(group) = self.groups.name_of(peer.gid) {
            selectors.insert("unix:group", &group);
        }
        if let Some(path) = &exe.path {
            selectors.insert("unix:path", path);
        }
        if let Some(digest) = exe.digest {
            selectors.insert("unix:sha256", &hex::encode(digest));
        }
        if let Some(unit) = &unit {
            selectors.insert("systemd:unit", unit);
        }
        tracing::debug!(pid, uid = peer.uid, gid = peer.gid, selectors = ?selectors, "workload attested");
        Ok(selectors)
    }

    /// Path and digest of the executable, through `/proc/<pid>/exe`.
    fn exe_facts(&self, proc: &Proc<'_>) -> Result<ExeFacts, WorkloadAttestationError> {
        let pid = proc.pid;
        // Open first, then read the link: an execve between the two (or
        // later) makes the final identity check fail instead of pairing one
        // binary's path with another's digest.
        let (mut file, meta) = proc.open_exe()?;
        let link = proc.exe_link()?;
        let key = ExeKey::of(&meta);
        let limit = self.config.max_exe_bytes;
        let path = exe_path_selector(&link, key.dev_ino());
        if key.size() > limit {
            tracing::warn!(
                pid,
                path = %link.display(),
                size = key.size(),
                limit,
                "executable over the hashing limit (workload.max_exe_bytes): no unix:sha256 selector"
            );
            return Ok(ExeFacts {
                path,
                digest: None,
                dev_ino: key.dev_ino(),
            });
        }

        let cached = self
            .digests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            .copied();
        let digest = match cached {
            Some(digest) => Some(digest),
            None => {
                match process::hash_file(&mut file, limit) {
                    Ok(digest) => {
                        // Cache only if the file did not change while it was read.
                        if file.metadata().ok().map(|m| ExeKey::of(&m)) == Some(key) {
                            self.cache_digest(key, digest);
                        }
                        Some(digest)
                    }
                    Err(HashError::TooLarge(size)) => {
                        tracing::warn!(pid, path = %link.display(), size, limit, "executable grew over the hashing limit while read: no unix:sha256 selector");
                        None
                    }
                    Err(HashError::Io(source)) => {
                        return Err(WorkloadAttestationError::Proc {
                            pid,
                            file: "exe",
                            source,
                        });
                    }
                }
            }
        };
        Ok(ExeFacts {
            path,
            digest,
            dev_ino: key.dev_ino(),
        })
    }

    fn cache_digest(&self, key: ExeKey, digest: [u8; 32]) {
        let capacity = self.config.digest_cache_entries;
        if capacity == 0 {
            return;
        }
        let mut cache = self.digests.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= capacity && !cache.contains_key(&key) {
            tracing::debug!(
                entries = cache.len(),
                "executable digest cache full; emptied"
            );
            cache.clear();
        }
        cache.insert(key, digest);
    }

    #[cfg(test)]
    fn cached_digests(&self) -> usize {
        self.digests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// The `unix:path` value for an `exe` link target, or `None` when the path
/// no longer leads to the running binary or is not UTF-8.
///
/// The kernel appends ` (deleted)` when the binary's directory entry was
/// removed (e.g. replaced by a package upgrade). Such a process gets no
/// path selector (its `unix:sha256` still names the code it runs), unless a
/// file really named `... (deleted)` is that binary.
fn exe_path_selector(link: &std::path::Path, dev_ino: (u64, u64)) -> Option<String> {
    use std::os::unix::fs::MetadataExt;

    let Some(path) = link.to_str() else {
        tracing::warn!(path = %link.display(), "executable path is not UTF-8; no unix:path selector");
        return None;
    };
    if path.ends_with(DELETED_SUFFIX) {
        let same_file = std::fs::metadata(link)
            .map(|m| (m.dev(), m.ino()) == dev_ino)
            .unwrap_or(false);
        if !same_file {
            tracing::debug!(
                path,
                "executable was deleted or replaced; no unix:path selector"
            );
            return None;
        }
    }
    Some(path.to_owned())
}
