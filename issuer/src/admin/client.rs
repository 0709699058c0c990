//! A blocking client of the admin socket, for the CLI.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::protocol::{MAX_RESPONSE_BYTES, Request, Response};

/// How long the client waits for the issuer's answer.
const TIMEOUT: Duration = Duration::from_secs(60);

/// Why an admin call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The socket is missing or nobody listens on it.
    #[error(
        "cannot reach the issuer at {path}: {source}; is `rootmark-issuer run` running with this \
         config (admin_socket)?"
    )]
    Unreachable {
        /// The socket.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file system refused access to the socket.
    #[error(
        "permission denied on the admin socket {path}; run the command as root or as the issuer's \
         admin_uid"
    )]
    PermissionDenied {
        /// The socket.
        path: PathBuf,
    },
    /// Reading or writing failed mid-call.
    #[error("admin socket {path}: {source}")]
    Io {
        /// The socket.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The issuer's answer is not a response.
    #[error("the issuer sent a malformed response: {0}")]
    Protocol(String),
    /// The issuer refused the request; the text says why.
    #[error("{0}")]
    Refused(String),
}

/// A connection to the admin socket.
#[derive(Debug)]
pub struct AdminClient {
    path: PathBuf,
    reader: BufReader<UnixStream>,
}

impl AdminClient {
    /// Connects to the socket at `path`.
    ///
    /// # Errors
    /// [`ClientError::Unreachable`] or [`ClientError::PermissionDenied`].
    pub fn connect(path: &Path) -> Result<Self, ClientError> {
        let stream = UnixStream::connect(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::PermissionDenied {
                ClientError::PermissionDenied {
                    path: path.to_owned(),
                }
            } else {
                ClientError::Unreachable {
                    path: path.to_owned(),
                    source,
                }
            }
        })?;
        let io = |source| ClientError::Io {
            path: path.to_owned(),
            source,
        };
        stream.set_read_timeout(Some(TIMEOUT)).map_err(io)?;
        stream.set_write_timeout(Some(TIMEOUT)).map_err(io)?;
        Ok(AdminClient {
            path: path.to_owned(),
            reader: BufReader::new(stream),
        })
    }

    /// Sends `request` and returns its result.
    ///
    /// # Errors
    /// [`ClientError::Refused`] with the issuer's message, or a transport error.
    pub fn call(&mut self, request: &Request) -> Result<Value, ClientError> {
        let io = |source| ClientError::Io {
            path: self.path.clone(),
            source,
        };
        let mut line =
            serde_json::to_vec(request).map_err(|e| ClientError::Protocol(e.to_string()))?;
        line.push(b'\n');
        self.reader.get_mut().write_all(&line).map_err(io)?;
        let mut answer = Vec::new();
        let limit = u64::try_from(MAX_RESPONSE_BYTES).unwrap_or(u64::MAX);
        (&mut self.reader)
            .take(limit)
            .read_until(b'\n', &mut answer)
            .map_err(|source| ClientError::Io {
                path: self.path.clone(),
                source,
            })?;
        if answer.is_empty() {
            return Err(ClientError::Protocol(
                "the issuer closed the connection without answering".into(),
            ));
        }
        let response: Response =
            serde_json::from_slice(&answer).map_err(|e| ClientError::Protocol(e.to_string()))?;
        if response.ok {
            Ok(response.result.unwrap_or(Value::Null))
        } else {
            Err(ClientError::Refused(response.error.unwrap_or_else(|| {
                "the issuer refused the request without a reason".into()
            })))
        }
    }
}
