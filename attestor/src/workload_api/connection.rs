//! Workload API connections: a Unix stream plus what the kernel said about
//! its peer at accept time.

use std::io;
use std::path::Path;

use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::workload::{ConnectionInstant, PeerCredentials};

/// What is known about a connection's peer; every request on the
/// connection carries it as a request extension.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    /// `SO_PEERCRED`, if the kernel gave it.
    pub peer: Option<PeerCredentials>,
    /// When the connection was accepted (for the PID-reuse guard).
    pub accepted_at: ConnectionInstant,
    /// Whether the process that connected is still the one at its pid.
    pub process: Option<Arc<PeerProcess>>,
}

/// Tracks the process that connected, so that after reading `/proc/<pid>`
/// the attestor can tell whether the pid still names that process.
///
/// A pidfd opened at accept time keeps naming the connecting process, not
/// whoever gets its pid next. It is only needed until the clock has moved
/// a couple of ticks past the accept: once the process is seen alive then,
/// any process that later takes its pid started after the connection and
/// is refused by the start-time check. So the pidfd is closed after
/// [`SETTLE_AFTER`], and a connection costs one file descriptor, not two,
/// while it idles.
#[derive(Debug)]
pub struct PeerProcess {
    state: Mutex<PeerState>,
}

#[derive(Debug)]
enum PeerState {
    /// A pidfd for the connecting process, not yet settled.
    Watching(OwnedFd),
    /// Seen alive at least [`SETTLE_AFTER`] after the accept.
    Verified,
    /// Gone: nothing on this connection is that process any more.
    Gone,
    /// No pidfd (kernel before 5.3): the start-time check alone applies.
    Unknown,
}

/// How long after the accept the pidfd is kept: two clock ticks (USER_HZ is
/// 100 on Linux) and a margin.
pub const SETTLE_AFTER: std::time::Duration = std::time::Duration::from_millis(25);

impl PeerProcess {
    fn open(pid: i32) -> Self {
        let state = match rustix::process::Pid::from_raw(pid) {
            None => PeerState::Gone,
            Some(pid) => {
                match rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()) {
                    Ok(fd) => PeerState::Watching(fd),
                    Err(rustix::io::Errno::SRCH) => PeerState::Gone,
                    Err(rustix::io::Errno::NOSYS) => PeerState::Unknown,
                    Err(e) => {
                        tracing::warn!(pid = pid.as_raw_nonzero().get(), error = %e, "no pidfd for the Workload API peer; it gets no identity");
                        PeerState::Gone
                    }
                }
            }
        };
        PeerProcess {
            state: Mutex::new(state),
        }
    }

    /// Whether the connecting process still lives: `Some(true)` or
    /// `Some(false)`, or `None` when this kernel cannot tell.
    pub fn still_alive(&self) -> Option<bool> {
        let state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match &*state {
            PeerState::Watching(fd) => Some(!exited(fd)),
            PeerState::Verified => Some(true),
            PeerState::Gone => Some(false),
            PeerState::Unknown => None,
        }
    }

    /// Closes the pidfd once it is no longer needed (see the type docs).
    fn settle(&self) {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let PeerState::Watching(fd) = &*state {
            *state = if exited(fd) {
                PeerState::Gone
            } else {
                PeerState::Verified
            };
        }
    }
}

/// Whether the process behind `pidfd` has exited (a pidfd becomes readable
/// then). An error counts as exited: fail closed.
fn exited(pidfd: &OwnedFd) -> bool {
    let mut fds = [rustix::event::PollFd::new(
        pidfd,
        rustix::event::PollFlags::IN,
    )];
    let zero = rustix::time::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    rustix::event::poll(&mut fds, Some(&zero)).map_or(true, |ready| ready > 0)
}

/// Binds the Workload API socket at `path`: a stale socket file is replaced,
/// the parent directory is created, and the socket is made reachable by
/// every local user (0777: the kernel, not the file mode, tells callers apart).
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt as _;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777))?;
    Ok(listener)
}

/// Accepts connections on `listener`, recording the accept time and the
/// peer's credentials first thing, and yields each with its
/// [`ConnectionInfo`]. Accept errors (e.g. out of file descriptors) are
/// logged and retried after a pause instead of ending the server.
pub fn incoming(listener: UnixListener) -> ReceiverStream<(UnixStream, ConnectionInfo)> {
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = tx.closed() => return,
            };
            match accepted {
                Ok((stream, _)) => {
                    let accepted_at = ConnectionInstant::now();
                    let peer = match stream.peer_cred() {
                        Ok(cred) => Some(PeerCredentials {
                            pid: cred.pid().unwrap_or(0),
                            uid: cred.uid(),
                            gid: cred.gid(),
                        }),
                        Err(e) => {
                            tracing::warn!(error = %e, "SO_PEERCRED failed; the caller gets no identity");
                            None
                        }
                    };
                    let process = peer.map(|p| Arc::new(PeerProcess::open(p.pid)));
                    if let Some(process) = &process {
                        let process = Arc::clone(process);
                        tokio::spawn(async move {
                            tokio::time::sleep(SETTLE_AFTER).await;
                            process.settle();
                        });
                    }
                    let info = ConnectionInfo {
                        peer,
                        accepted_at,
                        process,
                    };
                    if tx.send((stream, info)).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "Workload API accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    });
    ReceiverStream::new(rx)
}
