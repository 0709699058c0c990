//! Reading one process's facts from procfs: start time, cgroup, executable.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::WorkloadAttestationError;

/// `ESRCH`: some procfs files report a vanished task this way.
const ESRCH: i32 = 3;

/// What `/proc/<pid>/stat` tells the attestor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcStat {
    /// Field 3: `R`, `S`, `Z`, ...
    pub(crate) state: u8,
    /// Field 22: start time in clock ticks (USER_HZ) since boot.
    pub(crate) start_ticks: u64,
}

impl ProcStat {
    /// A zombie or dead task is no longer the process that connected.
    pub(crate) fn is_gone(self) -> bool {
        matches!(self.state, b'Z' | b'X' | b'x')
    }
}

/// Parses the content of `/proc/<pid>/stat`.
///
/// The command name (field 2) is in parentheses and may itself contain
/// spaces, parentheses and non-UTF-8 bytes, so the fields after it are
/// located from the *last* `)`.
pub(crate) fn parse_stat(content: &[u8]) -> Result<ProcStat, &'static str> {
    let open = content
        .iter()
        .position(|&b| b == b'(')
        .ok_or("no '(' before the command name")?;
    let close = content
        .iter()
        .rposition(|&b| b == b')')
        .ok_or("no ')' after the command name")?;
    if close < open {
        return Err("')' before '('");
    }
    let rest = content.get(close + 1..).unwrap_or_default();
    let rest =
        std::str::from_utf8(rest).map_err(|_| "fields after the command name are not UTF-8")?;
    let mut fields = rest.split_ascii_whitespace();
    let state = match fields.next().map(str::as_bytes) {
        Some(&[state]) => state,
        _ => return Err("missing or malformed state (field 3)"),
    };
    // Fields 4..=21 precede the start time (field 22).
    let start = fields.nth(18).ok_or("missing start time (field 22)")?;
    if !start.bytes().all(|b| b.is_ascii_digit()) {
        return Err("start time (field 22) is not a number");
    }
    let start_ticks = start
        .parse::<u64>()
        .map_err(|_| "start time (field 22) is not a number")?;
    Ok(ProcStat { state, start_ticks })
}

/// Procfs access for one pid.
pub(crate) struct Proc<'a> {
    pub(crate) root: &'a Path,
    pub(crate) pid: i32,
}

impl Proc<'_> {
    fn path(&self, file: &str) -> PathBuf {
        self.root.join(self.pid.to_string()).join(file)
    }

    /// Maps an I/O error on `file` to `ProcessGone` when the task vanished.
    fn error(&self, file: &'static str, source: io::Error) -> WorkloadAttestationError {
        if source.kind() == io::ErrorKind::NotFound || source.raw_os_error() == Some(ESRCH) {
            WorkloadAttestationError::ProcessGone { pid: self.pid }
        } else {
            WorkloadAttestationError::Proc {
                pid: self.pid,
                file,
                source,
            }
        }
    }

    /// Reads and parses `stat`; a zombie counts as gone.
    pub(crate) fn stat(&self) -> Result<ProcStat, WorkloadAttestationError> {
        let content = std::fs::read(self.path("stat")).map_err(|e| self.error("stat", e))?;
        let stat =
            parse_stat(&content).map_err(|detail| WorkloadAttestationError::MalformedProc {
                pid: self.pid,
                file: "stat",
                detail,
            })?;
        if stat.is_gone() {
            return Err(WorkloadAttestationError::ProcessGone { pid: self.pid });
        }
        Ok(stat)
    }

    /// The content of `cgroup`, or `None` on a kernel without cgroups (the
    /// file is missing while the process directory exists).
    pub(crate) fn cgroup(&self) -> Result<Option<String>, WorkloadAttestationError> {
        match std::fs::read(self.path("cgroup")) {
            Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if self.root.join(self.pid.to_string()).is_dir() {
                    Ok(None)
                } else {
                    Err(WorkloadAttestationError::ProcessGone { pid: self.pid })
                }
            }
            Err(e) => Err(self.error("cgroup", e)),
        }
    }

    /// The target of the `exe` link, as the kernel prints it (possibly with
    /// a ` (deleted)` suffix).
    pub(crate) fn exe_link(&self) -> Result<PathBuf, WorkloadAttestationError> {
        std::fs::read_link(self.path("exe")).map_err(|e| self.error("exe", e))
    }

    /// Opens the executable through the `exe` magic link: the file the
    /// process runs, even if it was since deleted or replaced on disk.
    pub(crate) fn open_exe(&self) -> Result<(File, std::fs::Metadata), WorkloadAttestationError> {
        let file = File::open(self.path("exe")).map_err(|e| self.error("exe", e))?;
        let meta = file.metadata().map_err(|e| self.error("exe", e))?;
        Ok((file, meta))
    }

    /// `(dev, inode)` of the executable the process runs now.
    pub(crate) fn exe_identity(&self) -> Result<(u64, u64), WorkloadAttestationError> {
        let meta = std::fs::metadata(self.path("exe")).map_err(|e| self.error("exe", e))?;
        Ok((meta.dev(), meta.ino()))
    }
}

/// Cache key of one version of an executable file. ctime is included
/// because, unlike mtime, no unprivileged caller can set it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ExeKey {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl ExeKey {
    pub(crate) fn of(meta: &std::fs::Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }

    pub(crate) fn dev_ino(&self) -> (u64, u64) {
        (self.dev, self.ino)
    }

    pub(crate) fn size(&self) -> u64 {
        self.size
    }
}

/// SHA-256 of at most `limit` bytes of `file`; `Err(Some(n))` if the file
/// holds more than `limit` bytes (it grew since it was stat'ed).
pub(crate) fn hash_file(file: &mut File, limit: u64) -> Result<[u8; 32], HashError> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut total: u64 = 0;
    let mut reader = file.take(limit.saturating_add(1));
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(HashError::Io(e)),
        };
        total = total.saturating_add(n as u64);
        if total > limit {
            return Err(HashError::TooLarge(total));
        }
        hasher.update(buf.get(..n).unwrap_or_default());
    }
    Ok(hasher.finalize().into())
}

/// Why [`hash_file`] failed.
#[derive(Debug)]
pub(crate) enum HashError {
    Io(io::Error),
    /// At least this many bytes were found, over the limit.
    TooLarge(u64),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A realistic stat line with `comm` replaced by `comm`.
    fn stat_line(comm: &str, state: char, start: u64) -> Vec<u8> {
        format!(
            "4242 ({comm}) {state} 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 {start} \
             2240512 180 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
        )
        .into_bytes()
    }

    #[test]
    fn parses_plain_stat() {
        let stat = parse_stat(&stat_line("sleep", 'S', 123456)).expect("parse");
        assert_eq!(stat.start_ticks, 123456);
        assert_eq!(stat.state, b'S');
        assert!(!stat.is_gone());
    }

    #[test]
    fn comm_with_parens_and_spaces() {
        let stat = parse_stat(&stat_line("a) (b", 'R', 77)).expect("parse");
        assert_eq!(stat.start_ticks, 77);
        assert_eq!(stat.state, b'R');
        let stat = parse_stat(&stat_line(
            ") 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 (",
            'S',
            9,
        ))
        .expect("parse");
        assert_eq!(stat.start_ticks, 9);
        let stat = parse_stat(&stat_line("))", 'S', 10)).expect("parse");
        assert_eq!(stat.start_ticks, 10);
        let stat = parse_stat(&stat_line("", 'S', 11)).expect("parse");
        assert_eq!(stat.start_ticks, 11);
    }

    #[test]
    fn comm_with_non_utf8_bytes() {
        let mut line = b"12 (\xff\xfe) ".to_vec();
        line.extend_from_slice(b"S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 555 0 0\n");
        assert_eq!(parse_stat(&line).expect("parse").start_ticks, 555);
    }

    #[test]
    fn zombie_is_gone() {
        assert!(
            parse_stat(&stat_line("x", 'Z', 1))
                .expect("parse")
                .is_gone()
        );
    }

    #[test]
    fn malformed_stat_is_refused_without_panic() {
        for bad in [
            &b""[..],
            b"12",
            b"12 (x",
            b"12 x) S",
            b") 12 (x S 1",
            b"12 (x) S 1 2 3",
            b"12 (x) SS 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 555 0",
            b"12 (x) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 -5 0",
            b"12 (x) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 +5 0",
            b"12 (x) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 99999999999999999999999 0",
            b"12 (x) \xff 1",
        ] {
            assert!(
                parse_stat(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn parses_real_self_stat() {
        let content = std::fs::read("/proc/self/stat").expect("read");
        let stat = parse_stat(&content).expect("parse");
        assert!(stat.start_ticks > 0);
        assert!(!stat.is_gone());
    }
}
