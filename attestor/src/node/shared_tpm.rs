//! One TPM shared by the attestation client, the TLS signer and the sealed
//! cache.
//!
//! There is no resource manager in front of swtpm (and the kernel's only
//! virtualises handles), so every command goes through one [`Tpm`] behind a
//! mutex: commands never interleave and the two cached key slots stay valid.

use std::sync::{Arc, Mutex, PoisonError};

use crate::tpm::{Tpm, TpmError};

/// A [`Tpm`] that several tasks use in turn.
#[derive(Clone)]
pub struct SharedTpm {
    inner: Arc<Mutex<Tpm>>,
}

impl std::fmt::Debug for SharedTpm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedTpm")
    }
}

impl SharedTpm {
    /// Opens the TPM named by `tcti`.
    pub fn open(tcti: &str) -> Result<Self, TpmError> {
        Ok(Self::new(Tpm::open(tcti)?))
    }

    /// Shares `tpm`.
    pub fn new(tpm: Tpm) -> Self {
        SharedTpm {
            inner: Arc::new(Mutex::new(tpm)),
        }
    }

    /// Runs `f` with the TPM, blocking the calling thread until it is free.
    ///
    /// A panic inside an earlier `f` does not poison the TPM for good: the
    /// TPM itself has no half-done state a later command could trip over.
    pub fn with<R>(&self, f: impl FnOnce(&mut Tpm) -> R) -> R {
        let mut tpm = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut tpm)
    }

    /// Runs `f` with the TPM on tokio's blocking pool, so async tasks are
    /// not stalled by a TPM round trip.
    pub async fn run<R, E, F>(&self, f: F) -> Result<R, E>
    where
        F: FnOnce(&mut Tpm) -> Result<R, E> + Send + 'static,
        R: Send + 'static,
        E: From<TpmError> + Send + 'static,
    {
        let shared = self.clone();
        tokio::task::spawn_blocking(move || shared.with(f))
            .await
            .map_err(|e| {
                E::from(TpmError::InvalidInput {
                    field: "TPM task",
                    reason: format!("the TPM task stopped: {e}"),
                })
            })?
    }
}
