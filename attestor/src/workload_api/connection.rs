//! Workload API connections: a Unix stream plus what the kernel said about
//! its peer at accept time.

use std::io;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};

use std::os::fd::OwnedFd;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use tonic::transport::server::Connected;

use crate::workload::{ConnectionInstant, PeerCredentials};

/// What is known about a connection's peer; every request on the
/// connection carries it as a request extension.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    /// `SO_PEERCRED`, if the kernel gave it.
    pub peer: Option<PeerCredentials>,
    /// When the connection was accepted (for the PID-reuse guard).
    pub accepted_at: ConnectionInstant,
    /// A pidfd for the peer's process, opened at accept time. It keeps
    /// naming that process (not whoever gets its pid next), so after the
    /// attestation it tells whether the caller is still the process that
    /// was attested. `None` if the process was already gone, or the kernel
    /// has no pidfds (before 5.3: the start-time check alone remains).
    pub pidfd: Option<Arc<OwnedFd>>,
}

impl ConnectionInfo {
    /// Whether the process that connected has exited, as far as its pidfd
    /// tells (a pidfd becomes readable when its process exits). `None`
    /// when there is no pidfd to ask.
    pub fn peer_exited(&self) -> Option<bool> {
        let pidfd = self.pidfd.as_ref()?;
        let mut fds = [rustix::event::PollFd::new(
            pidfd.as_ref(),
            rustix::event::PollFlags::IN,
        )];
        let zero = rustix::time::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        match rustix::event::poll(&mut fds, Some(&zero)) {
            Ok(ready) => Some(ready > 0),
            Err(_) => None,
        }
    }
}

/// An accepted Workload API connection.
#[derive(Debug)]
pub struct WorkloadConnection {
    stream: UnixStream,
    info: ConnectionInfo,
}

impl Connected for WorkloadConnection {
    type ConnectInfo = ConnectionInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.info.clone()
    }
}

impl AsyncRead for WorkloadConnection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for WorkloadConnection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
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
/// peer's credentials first thing. Accept errors (e.g. out of file
/// descriptors) are logged and retried after a pause instead of ending the
/// server.
pub fn incoming(listener: UnixListener) -> ReceiverStream<io::Result<WorkloadConnection>> {
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
                    let pidfd = peer.and_then(|p| peer_pidfd(p.pid));
                    let connection = WorkloadConnection {
                        stream,
                        info: ConnectionInfo {
                            peer,
                            accepted_at,
                            pidfd,
                        },
                    };
                    if tx.send(Ok(connection)).await.is_err() {
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

/// A pidfd for `pid`, or `None` if the process is gone or pidfds are
/// unsupported.
fn peer_pidfd(pid: i32) -> Option<Arc<OwnedFd>> {
    let pid = rustix::process::Pid::from_raw(pid)?;
    match rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()) {
        Ok(fd) => Some(Arc::new(fd)),
        Err(e) => {
            tracing::debug!(pid = pid.as_raw_nonzero().get(), error = %e, "no pidfd for the Workload API peer");
            None
        }
    }
}
