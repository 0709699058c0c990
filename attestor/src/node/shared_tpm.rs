//! One TPM shared by the attestation client, the TLS signer and the sealed
//! cache.
//!
//! Every command goes through one [`Tpm`] behind a mutex, so commands never
//! interleave and its two cached key slots stay valid. A swtpm serves one
//! client connection at a time; with `release` set, the connection is
//! closed after every operation so other tools (tpm2-tools, a test that
//! extends PCRs) can use the TPM in between.

use std::sync::{Arc, Mutex, PoisonError};

use crate::tpm::{Tpm, TpmError};

struct Slot {
    tcti: String,
    tpm: Option<Tpm>,
    release: bool,
}

/// A [`Tpm`] that several tasks use in turn.
#[derive(Clone)]
pub struct SharedTpm {
    inner: Arc<Mutex<Slot>>,
}

impl std::fmt::Debug for SharedTpm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedTpm")
    }
}

impl SharedTpm {
    /// Opens the TPM named by `tcti` (checking it can be opened now). With
    /// `release`, the connection is closed after each operation and
    /// reopened for the next.
    pub fn open(tcti: &str, release: bool) -> Result<Self, TpmError> {
        let tpm = Tpm::open(tcti)?;
        Ok(SharedTpm {
            inner: Arc::new(Mutex::new(Slot {
                tcti: tcti.to_owned(),
                tpm: (!release).then_some(tpm),
                release,
            })),
        })
    }

    /// Runs `f` with the TPM, blocking the calling thread until it is free.
    ///
    /// A panic inside an earlier `f` does not poison the TPM for good: the
    /// TPM itself has no half-done state a later command could trip over.
    pub fn with<R, E>(&self, f: impl FnOnce(&mut Tpm) -> Result<R, E>) -> Result<R, E>
    where
        E: From<TpmError>,
    {
        let mut slot = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let tpm = match slot.tpm.take() {
            Some(tpm) => tpm,
            None => Tpm::open(&slot.tcti)?,
        };
        let mut tpm = tpm;
        let result = f(&mut tpm);
        if !slot.release {
            slot.tpm = Some(tpm);
        }
        // Otherwise `tpm` drops here: cached keys are flushed and the
        // connection closed.
        result
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
