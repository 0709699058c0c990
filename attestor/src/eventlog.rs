//! Reading the firmware's TCG event log.
//!
//! The attestor ships the log to the issuer as bytes; the issuer parses and
//! replays it. The attestor only bounds its size: securityfs reports a size of
//! zero for the log, so the bound is enforced while reading.

use std::io::Read as _;
use std::path::{Path, PathBuf};

/// Where Linux exposes the firmware event log.
pub const DEFAULT_EVENT_LOG_PATH: &str = "/sys/kernel/security/tpm0/binary_bios_measurements";

/// The default cap on the event log size (real logs are 10–100 KiB).
pub const DEFAULT_MAX_EVENT_LOG_BYTES: u64 = 2 * 1024 * 1024;

/// Why the event log could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EventLogReadError {
    /// The file could not be opened or read.
    #[error(
        "cannot read the TCG event log at {path}: {source}; check `event_log_path` in the attestor \
         config and that securityfs is mounted (mount -t securityfs securityfs /sys/kernel/security)"
    )]
    Io {
        /// The configured path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The log is larger than the configured limit.
    #[error(
        "the TCG event log at {path} is larger than {limit} bytes; raise `max_event_log_bytes` if it is genuine"
    )]
    TooLarge {
        /// The configured path.
        path: PathBuf,
        /// The limit in bytes.
        limit: u64,
    },
    /// The file is empty.
    #[error("the TCG event log at {path} is empty")]
    Empty {
        /// The configured path.
        path: PathBuf,
    },
}

/// Reads the event log at `path`, refusing logs larger than `max_bytes`.
pub fn read_event_log(path: &Path, max_bytes: u64) -> Result<Vec<u8>, EventLogReadError> {
    let io = |source| EventLogReadError::Io {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::new();
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > max_bytes {
        return Err(EventLogReadError::TooLarge {
            path: path.to_owned(),
            limit: max_bytes,
        });
    }
    if bytes.is_empty() {
        return Err(EventLogReadError::Empty {
            path: path.to_owned(),
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_within_limit_is_returned_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, vec![7u8; 100]).unwrap();
        assert_eq!(read_event_log(&path, 100).unwrap(), vec![7u8; 100]);
    }

    #[test]
    fn log_over_limit_is_refused_with_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, vec![7u8; 101]).unwrap();
        let err = read_event_log(&path, 100).unwrap_err();
        assert!(
            matches!(err, EventLogReadError::TooLarge { limit: 100, .. }),
            "{err}"
        );
    }

    #[test]
    fn missing_log_names_the_path_and_the_fix() {
        let err = read_event_log(Path::new("/nonexistent/log"), 100).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("/nonexistent/log") && text.contains("event_log_path"),
            "{text}"
        );
    }
}
