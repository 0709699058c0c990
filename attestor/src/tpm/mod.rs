//! The attestor's TPM layer, on tss-esapi.
//!
//! [`Tpm`] owns one ESAPI context. There is no resource manager in front of
//! swtpm (and `/dev/tpm0` has none either), so the layer is careful with
//! transient slots: parents (EK, SRK) are created for the one command that
//! needs them and flushed straight after, sessions are flushed after every
//! operation, and at most two leaf keys (AK, node key) stay loaded between
//! calls. [`Tpm`]'s `Drop` flushes those.
//!
//! | operation | module |
//! |---|---|
//! | EK certificate and EK | [`ek`] |
//! | attestation key | [`ak`] |
//! | TPM2_ActivateCredential | [`credential`] |
//! | TPM2_Quote and PCR reads | [`quote`] |
//! | node key, TPM2_Certify, signing | [`node_key`] |
//! | seal / unseal | [`seal`] |

pub mod ak;
pub mod blob;
pub mod credential;
pub mod ek;
mod error;
pub mod node_key;
pub mod pcr;
pub mod quote;
pub mod seal;
mod session;
mod srk;

use std::str::FromStr as _;

use tss_esapi::handles::{KeyHandle, ObjectHandle};
use tss_esapi::{Context, TctiNameConf};

pub use ak::{AkAlgorithm, AttestationKey};
pub use blob::KeyBlob;
pub use ek::{EkAlgorithm, Endorsement};
pub use error::TpmError;
pub use node_key::{Certification, NodeKey, NodeKeySignature};
pub use pcr::{PcrBank, PcrSelection, PcrValues, policy_pcr_digest};
pub use quote::Quote;
pub use seal::SealedSecret;

/// The TCTI used when the configuration names none: the kernel's resource manager.
pub const DEFAULT_TCTI: &str = "device:/dev/tpmrm0";

/// A leaf object kept loaded between operations, keyed by its public area.
struct LoadedObject {
    public_id: Vec<u8>,
    handle: KeyHandle,
}

/// An open connection to a TPM.
pub struct Tpm {
    ctx: Context,
    /// The AK and node key stay loaded between calls (slot 0: AK, slot 1: node key).
    cached: [Option<LoadedObject>; 2],
}

/// Which cache slot a leaf object uses.
#[derive(Clone, Copy)]
enum CacheSlot {
    Ak = 0,
    NodeKey = 1,
}

impl Tpm {
    /// Opens the TPM named by a TCTI string such as `device:/dev/tpmrm0` or
    /// `swtpm:host=127.0.0.1,port=2321`.
    ///
    /// tss-esapi 7 ignores `swtpm:path=` and would silently talk to
    /// localhost:2321, so a swtpm TCTI must name `host=` and `port=`.
    pub fn open(tcti: &str) -> Result<Self, TpmError> {
        let open_error = |detail: String| TpmError::Open {
            tcti: tcti.to_owned(),
            detail,
        };
        if let Some(conf) = tcti.strip_prefix("swtpm:")
            && (conf.contains("path=") || !(conf.contains("host=") && conf.contains("port=")))
        {
            return Err(open_error(
                "a swtpm TCTI must give host= and port= (path= is not supported by this TSS)"
                    .to_owned(),
            ));
        }
        let conf = TctiNameConf::from_str(tcti).map_err(|e| open_error(e.to_string()))?;
        let ctx = Context::new(conf).map_err(|e| open_error(e.to_string()))?;
        Ok(Self {
            ctx,
            cached: [None, None],
        })
    }

    /// The raw ESAPI context, for operations the layer does not wrap (tests,
    /// diagnostics). Handles created through it are the caller's to flush.
    pub fn context_mut(&mut self) -> &mut Context {
        &mut self.ctx
    }

    /// Flushes the cached AK and node key, if loaded.
    pub fn flush_cached(&mut self) {
        for slot in &mut self.cached {
            if let Some(object) = slot.take() {
                flush_quietly(&mut self.ctx, object.handle.into(), "cached key");
            }
        }
    }

    /// Returns the handle of a cached object loaded from `public_id`, or loads
    /// it with `load` (evicting whatever the slot held).
    fn cached_or_load(
        &mut self,
        slot: CacheSlot,
        public_id: Vec<u8>,
        load: impl FnOnce(&mut Tpm) -> Result<KeyHandle, TpmError>,
    ) -> Result<KeyHandle, TpmError> {
        let index = slot as usize;
        if let Some(object) = &self.cached[index]
            && object.public_id == public_id
        {
            return Ok(object.handle);
        }
        if let Some(old) = self.cached[index].take() {
            flush_quietly(&mut self.ctx, old.handle.into(), "evicted key");
        }
        let handle = load(self)?;
        self.cached[index] = Some(LoadedObject { public_id, handle });
        Ok(handle)
    }

    /// The number of transient objects currently loaded in the TPM, from
    /// TPM2_GetCapability(TPM_CAP_HANDLES, TRANSIENT_FIRST). Lets tests prove
    /// that no operation leaks objects.
    pub fn loaded_transient_objects(&mut self) -> Result<usize, TpmError> {
        self.count_handles(0x8000_0000)
    }

    /// The number of sessions currently loaded in the TPM.
    pub fn loaded_sessions(&mut self) -> Result<usize, TpmError> {
        let hmac = self.count_handles(0x0200_0000)?;
        let policy = self.count_handles(0x0300_0000)?;
        Ok(hmac + policy)
    }

    fn count_handles(&mut self, first: u32) -> Result<usize, TpmError> {
        use tss_esapi::constants::CapabilityType;
        use tss_esapi::structures::CapabilityData;
        let (data, _more) = self
            .ctx
            .get_capability(CapabilityType::Handles, first, 64)
            .map_err(TpmError::command("TPM2_GetCapability"))?;
        match data {
            CapabilityData::Handles(list) => Ok(list
                .into_inner()
                .into_iter()
                .filter(|h| (u32::from(*h) & 0xFF00_0000) == (first & 0xFF00_0000))
                .count()),
            _ => Err(TpmError::UnexpectedOutput {
                command: "TPM2_GetCapability",
                reason: "did not return a handle list".to_owned(),
            }),
        }
    }
}

impl Drop for Tpm {
    fn drop(&mut self) {
        self.flush_cached();
    }
}

/// Flushes a handle, logging (not failing) if the TPM already dropped it: by
/// then the caller has its result or a more useful error.
pub(crate) fn flush_quietly(ctx: &mut Context, handle: ObjectHandle, what: &'static str) {
    if let Err(error) = ctx.flush_context(handle) {
        tracing::warn!(%error, what, "TPM2_FlushContext failed");
    }
}
