//! The endorsement key and its certificate.

use std::fmt;
use std::str::FromStr;

use tss_esapi::abstraction::AsymmetricAlgorithmSelection;
use tss_esapi::abstraction::ek::create_ek_public_from_default_template_2;
use tss_esapi::abstraction::nv;
use tss_esapi::handles::{KeyHandle, NvIndexTpmHandle, TpmHandle};
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::key_bits::RsaKeyBits;
use tss_esapi::interface_types::resource_handles::{Hierarchy, NvAuth};
use tss_esapi::interface_types::session_handles::AuthSession;
use tss_esapi::structures::Public;

use super::blob::public_to_tpm2b;
use super::{Tpm, TpmError, flush_quietly};

/// The EK key types of the TCG EK Credential Profile that Rootmark uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EkAlgorithm {
    /// RSA 2048, template L-1, certificate in NV 0x01c00002.
    Rsa2048,
    /// ECC NIST P-256, template L-2, certificate in NV 0x01c0000a.
    EccP256,
    /// ECC NIST P-384, template H-4, certificate in NV 0x01c00016.
    EccP384,
}

impl EkAlgorithm {
    /// Every supported algorithm, in the order `auto` tries them.
    pub const ALL: [EkAlgorithm; 3] = [
        EkAlgorithm::Rsa2048,
        EkAlgorithm::EccP256,
        EkAlgorithm::EccP384,
    ];

    /// The NV index where manufacturers store the EK certificate.
    pub fn certificate_nv_index(self) -> u32 {
        match self {
            EkAlgorithm::Rsa2048 => 0x01c0_0002,
            EkAlgorithm::EccP256 => 0x01c0_000a,
            EkAlgorithm::EccP384 => 0x01c0_0016,
        }
    }

    fn selection(self) -> AsymmetricAlgorithmSelection {
        match self {
            EkAlgorithm::Rsa2048 => AsymmetricAlgorithmSelection::Rsa(RsaKeyBits::Rsa2048),
            EkAlgorithm::EccP256 => AsymmetricAlgorithmSelection::Ecc(EccCurve::NistP256),
            EkAlgorithm::EccP384 => AsymmetricAlgorithmSelection::Ecc(EccCurve::NistP384),
        }
    }

    /// The default TCG template for this EK type.
    pub fn template(self) -> Result<Public, TpmError> {
        create_ek_public_from_default_template_2(self.selection(), None).map_err(|e| {
            TpmError::InvalidInput {
                field: "EK template",
                reason: e.to_string(),
            }
        })
    }
}

impl fmt::Display for EkAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EkAlgorithm::Rsa2048 => "rsa2048",
            EkAlgorithm::EccP256 => "ecc-p256",
            EkAlgorithm::EccP384 => "ecc-p384",
        })
    }
}

impl FromStr for EkAlgorithm {
    type Err = TpmError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "rsa2048" => Ok(EkAlgorithm::Rsa2048),
            "ecc-p256" => Ok(EkAlgorithm::EccP256),
            "ecc-p384" => Ok(EkAlgorithm::EccP384),
            other => Err(TpmError::InvalidInput {
                field: "ek_algorithm",
                reason: format!("expected rsa2048, ecc-p256 or ecc-p384, got {other:?}"),
            }),
        }
    }
}

/// What the attestor presents about its endorsement key.
#[derive(Debug, Clone)]
pub struct Endorsement {
    /// The EK type.
    pub algorithm: EkAlgorithm,
    /// The EK certificate (DER, NV padding removed), if the TPM has one.
    pub certificate: Option<Vec<u8>>,
    /// The EK public area as a marshalled TPM2B_PUBLIC.
    pub public: Vec<u8>,
}

impl Tpm {
    /// Reads the EK certificate for `algorithm` from its NV index.
    ///
    /// Returns `Ok(None)` when the index is not defined (many TPMs, and VMs,
    /// ship without certificates). NV areas are often larger than the DER
    /// certificate and padded with 0x00 or 0xFF; the padding is removed.
    pub fn read_ek_certificate(
        &mut self,
        algorithm: EkAlgorithm,
    ) -> Result<Option<Vec<u8>>, TpmError> {
        let index = algorithm.certificate_nv_index();
        let nv_handle = NvIndexTpmHandle::new(index).map_err(|e| TpmError::InvalidInput {
            field: "NV index",
            reason: e.to_string(),
        })?;
        // Probe for the index first: an undefined index is not an error.
        let mut object = match self
            .ctx
            .execute_without_session(|ctx| ctx.tr_from_tpm_public(TpmHandle::NvIndex(nv_handle)))
        {
            Ok(object) => object,
            // TPM_RC_HANDLE: the index is not defined.
            Err(_) => return Ok(None),
        };
        // read_full opens its own ESYS handle for the index (and may close
        // ours), so release ours first; EK certificate indexes are
        // owner-readable per the TCG EK Credential Profile.
        let _ = self.ctx.tr_close(&mut object);
        let read = self
            .ctx
            .execute_with_session(Some(AuthSession::Password), |ctx| {
                nv::read_full(ctx, NvAuth::Owner, nv_handle)
            });
        let raw = read.map_err(TpmError::command("TPM2_NV_Read(EK certificate)"))?;
        strip_nv_padding(&raw)
            .map(|der| Some(der.to_vec()))
            .ok_or_else(|| TpmError::UnexpectedOutput {
                command: "TPM2_NV_Read(EK certificate)",
                reason: format!(
                    "NV index {index:#010x} does not start with a DER certificate ({} bytes)",
                    raw.len()
                ),
            })
    }

    /// Creates the EK from the default TCG template and returns its public
    /// area; the key is flushed again.
    pub fn ek_public(&mut self, algorithm: EkAlgorithm) -> Result<Public, TpmError> {
        let handle = self.create_ek(algorithm)?;
        let public = self
            .ctx
            .read_public(handle)
            .map(|(public, _, _)| public)
            .map_err(TpmError::command("TPM2_ReadPublic(EK)"));
        flush_quietly(&mut self.ctx, handle.into(), "EK");
        public
    }

    /// The EK to use: `preferred`, or with `None` the first type (RSA 2048,
    /// ECC P-256, ECC P-384) whose certificate is provisioned, falling back to
    /// RSA 2048 without a certificate.
    pub fn endorsement(&mut self, preferred: Option<EkAlgorithm>) -> Result<Endorsement, TpmError> {
        let (algorithm, certificate) = match preferred {
            Some(algorithm) => (algorithm, self.read_ek_certificate(algorithm)?),
            None => {
                let mut found = None;
                for algorithm in EkAlgorithm::ALL {
                    if let Some(cert) = self.read_ek_certificate(algorithm)? {
                        found = Some((algorithm, Some(cert)));
                        break;
                    }
                }
                found.unwrap_or((EkAlgorithm::Rsa2048, None))
            }
        };
        let public = public_to_tpm2b(&self.ek_public(algorithm)?)?;
        Ok(Endorsement {
            algorithm,
            certificate,
            public,
        })
    }

    /// Creates the EK primary; the caller must flush the handle.
    pub(crate) fn create_ek(&mut self, algorithm: EkAlgorithm) -> Result<KeyHandle, TpmError> {
        let template = algorithm.template()?;
        self.ctx
            .execute_with_session(Some(AuthSession::Password), |ctx| {
                ctx.create_primary(Hierarchy::Endorsement, template, None, None, None, None)
            })
            .map(|result| result.key_handle)
            .map_err(TpmError::command("TPM2_CreatePrimary(EK)"))
    }
}

/// Returns the DER certificate at the start of `nv`, dropping the padding
/// after it. `None` if `nv` does not start with a DER SEQUENCE that fits.
pub fn strip_nv_padding(nv: &[u8]) -> Option<&[u8]> {
    let (&tag, rest) = nv.split_first()?;
    if tag != 0x30 {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (content_len, header_len) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let octets = usize::from(first & 0x7f);
        if octets == 0 || octets > 4 || rest.len() < octets {
            return None;
        }
        let len = rest[..octets]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, 2 + octets)
    };
    let total = header_len.checked_add(content_len)?;
    nv.get(..total)
}

#[cfg(test)]
mod tests {
    use super::strip_nv_padding;

    #[test]
    fn padding_after_the_certificate_is_removed() {
        let mut nv = vec![0x30, 0x82, 0x00, 0x03, 1, 2, 3];
        nv.extend_from_slice(&[0xff; 9]);
        assert_eq!(
            strip_nv_padding(&nv),
            Some(&[0x30, 0x82, 0, 3, 1, 2, 3][..])
        );
        assert_eq!(
            strip_nv_padding(&[0x30, 0x02, 9, 9, 0, 0]),
            Some(&[0x30, 2, 9, 9][..])
        );
    }

    #[test]
    fn truncated_or_non_der_content_is_refused() {
        assert_eq!(strip_nv_padding(&[0x30, 0x82, 0x01, 0x00, 1]), None);
        assert_eq!(strip_nv_padding(&[0xff, 0xff]), None);
        assert_eq!(strip_nv_padding(&[]), None);
        assert_eq!(strip_nv_padding(&[0x30, 0x80]), None);
    }
}
