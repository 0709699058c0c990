//! Event types and typed views of event data for node policy.
//!
//! Event data is not covered by the quote: only digests are. A view that
//! drives a policy decision therefore either reports digests (which the
//! replay binds to the quote) or checks that the data hashes to the event's
//! digests before believing it, and says which it does.

use std::fmt;

use super::{Event, EventLog};
use crate::tpm::HashAlg;

/// EV_PREBOOT_CERT.
pub const EV_PREBOOT_CERT: u32 = 0x0000_0000;
/// EV_POST_CODE.
pub const EV_POST_CODE: u32 = 0x0000_0001;
/// EV_UNUSED.
pub const EV_UNUSED: u32 = 0x0000_0002;
/// EV_NO_ACTION: informational, never extended into a PCR.
pub const EV_NO_ACTION: u32 = 0x0000_0003;
/// EV_SEPARATOR.
pub const EV_SEPARATOR: u32 = 0x0000_0004;
/// EV_ACTION.
pub const EV_ACTION: u32 = 0x0000_0005;
/// EV_EVENT_TAG.
pub const EV_EVENT_TAG: u32 = 0x0000_0006;
/// EV_S_CRTM_CONTENTS.
pub const EV_S_CRTM_CONTENTS: u32 = 0x0000_0007;
/// EV_S_CRTM_VERSION.
pub const EV_S_CRTM_VERSION: u32 = 0x0000_0008;
/// EV_CPU_MICROCODE.
pub const EV_CPU_MICROCODE: u32 = 0x0000_0009;
/// EV_PLATFORM_CONFIG_FLAGS.
pub const EV_PLATFORM_CONFIG_FLAGS: u32 = 0x0000_000A;
/// EV_TABLE_OF_DEVICES.
pub const EV_TABLE_OF_DEVICES: u32 = 0x0000_000B;
/// EV_COMPACT_HASH.
pub const EV_COMPACT_HASH: u32 = 0x0000_000C;
/// EV_IPL: boot loader measurements (GRUB logs its commands and kernel command line here).
pub const EV_IPL: u32 = 0x0000_000D;
/// EV_IPL_PARTITION_DATA.
pub const EV_IPL_PARTITION_DATA: u32 = 0x0000_000E;
/// EV_NONHOST_CODE.
pub const EV_NONHOST_CODE: u32 = 0x0000_000F;
/// EV_NONHOST_CONFIG.
pub const EV_NONHOST_CONFIG: u32 = 0x0000_0010;
/// EV_NONHOST_INFO.
pub const EV_NONHOST_INFO: u32 = 0x0000_0011;
/// EV_OMIT_BOOT_DEVICE_EVENTS.
pub const EV_OMIT_BOOT_DEVICE_EVENTS: u32 = 0x0000_0012;
/// EV_EFI_EVENT_BASE.
pub const EV_EFI_EVENT_BASE: u32 = 0x8000_0000;
/// EV_EFI_VARIABLE_DRIVER_CONFIG: Secure Boot configuration variables (PCR 7) and others.
pub const EV_EFI_VARIABLE_DRIVER_CONFIG: u32 = 0x8000_0001;
/// EV_EFI_VARIABLE_BOOT: boot variables (PCR 1).
pub const EV_EFI_VARIABLE_BOOT: u32 = 0x8000_0002;
/// EV_EFI_BOOT_SERVICES_APPLICATION: boot loaders and kernels (PCR 4).
pub const EV_EFI_BOOT_SERVICES_APPLICATION: u32 = 0x8000_0003;
/// EV_EFI_BOOT_SERVICES_DRIVER.
pub const EV_EFI_BOOT_SERVICES_DRIVER: u32 = 0x8000_0004;
/// EV_EFI_RUNTIME_SERVICES_DRIVER.
pub const EV_EFI_RUNTIME_SERVICES_DRIVER: u32 = 0x8000_0005;
/// EV_EFI_GPT_EVENT.
pub const EV_EFI_GPT_EVENT: u32 = 0x8000_0006;
/// EV_EFI_ACTION.
pub const EV_EFI_ACTION: u32 = 0x8000_0007;
/// EV_EFI_PLATFORM_FIRMWARE_BLOB.
pub const EV_EFI_PLATFORM_FIRMWARE_BLOB: u32 = 0x8000_0008;
/// EV_EFI_HANDOFF_TABLES.
pub const EV_EFI_HANDOFF_TABLES: u32 = 0x8000_0009;
/// EV_EFI_PLATFORM_FIRMWARE_BLOB2.
pub const EV_EFI_PLATFORM_FIRMWARE_BLOB2: u32 = 0x8000_000A;
/// EV_EFI_HANDOFF_TABLES2.
pub const EV_EFI_HANDOFF_TABLES2: u32 = 0x8000_000B;
/// EV_EFI_VARIABLE_BOOT2.
pub const EV_EFI_VARIABLE_BOOT2: u32 = 0x8000_000C;
/// EV_EFI_GPT_EVENT2.
pub const EV_EFI_GPT_EVENT2: u32 = 0x8000_000D;
/// EV_EFI_HCRTM_EVENT.
pub const EV_EFI_HCRTM_EVENT: u32 = 0x8000_0010;
/// EV_EFI_VARIABLE_AUTHORITY: the db entry that authorised a boot image (PCR 7).
pub const EV_EFI_VARIABLE_AUTHORITY: u32 = 0x8000_00E0;
/// EV_EFI_SPDM_FIRMWARE_BLOB.
pub const EV_EFI_SPDM_FIRMWARE_BLOB: u32 = 0x8000_00E1;
/// EV_EFI_SPDM_FIRMWARE_CONFIG.
pub const EV_EFI_SPDM_FIRMWARE_CONFIG: u32 = 0x8000_00E2;

/// The specification name of an event type (`EV_IPL`, …), if it is one the
/// TCG PC Client Platform Firmware Profile defines.
pub fn event_type_name(event_type: u32) -> Option<&'static str> {
    Some(match event_type {
        EV_PREBOOT_CERT => "EV_PREBOOT_CERT",
        EV_POST_CODE => "EV_POST_CODE",
        EV_UNUSED => "EV_UNUSED",
        EV_NO_ACTION => "EV_NO_ACTION",
        EV_SEPARATOR => "EV_SEPARATOR",
        EV_ACTION => "EV_ACTION",
        EV_EVENT_TAG => "EV_EVENT_TAG",
        EV_S_CRTM_CONTENTS => "EV_S_CRTM_CONTENTS",
        EV_S_CRTM_VERSION => "EV_S_CRTM_VERSION",
        EV_CPU_MICROCODE => "EV_CPU_MICROCODE",
        EV_PLATFORM_CONFIG_FLAGS => "EV_PLATFORM_CONFIG_FLAGS",
        EV_TABLE_OF_DEVICES => "EV_TABLE_OF_DEVICES",
        EV_COMPACT_HASH => "EV_COMPACT_HASH",
        EV_IPL => "EV_IPL",
        EV_IPL_PARTITION_DATA => "EV_IPL_PARTITION_DATA",
        EV_NONHOST_CODE => "EV_NONHOST_CODE",
        EV_NONHOST_CONFIG => "EV_NONHOST_CONFIG",
        EV_NONHOST_INFO => "EV_NONHOST_INFO",
        EV_OMIT_BOOT_DEVICE_EVENTS => "EV_OMIT_BOOT_DEVICE_EVENTS",
        EV_EFI_EVENT_BASE => "EV_EFI_EVENT_BASE",
        EV_EFI_VARIABLE_DRIVER_CONFIG => "EV_EFI_VARIABLE_DRIVER_CONFIG",
        EV_EFI_VARIABLE_BOOT => "EV_EFI_VARIABLE_BOOT",
        EV_EFI_BOOT_SERVICES_APPLICATION => "EV_EFI_BOOT_SERVICES_APPLICATION",
        EV_EFI_BOOT_SERVICES_DRIVER => "EV_EFI_BOOT_SERVICES_DRIVER",
        EV_EFI_RUNTIME_SERVICES_DRIVER => "EV_EFI_RUNTIME_SERVICES_DRIVER",
        EV_EFI_GPT_EVENT => "EV_EFI_GPT_EVENT",
        EV_EFI_ACTION => "EV_EFI_ACTION",
        EV_EFI_PLATFORM_FIRMWARE_BLOB => "EV_EFI_PLATFORM_FIRMWARE_BLOB",
        EV_EFI_HANDOFF_TABLES => "EV_EFI_HANDOFF_TABLES",
        EV_EFI_PLATFORM_FIRMWARE_BLOB2 => "EV_EFI_PLATFORM_FIRMWARE_BLOB2",
        EV_EFI_HANDOFF_TABLES2 => "EV_EFI_HANDOFF_TABLES2",
        EV_EFI_VARIABLE_BOOT2 => "EV_EFI_VARIABLE_BOOT2",
        EV_EFI_GPT_EVENT2 => "EV_EFI_GPT_EVENT2",
        EV_EFI_HCRTM_EVENT => "EV_EFI_HCRTM_EVENT",
        EV_EFI_VARIABLE_AUTHORITY => "EV_EFI_VARIABLE_AUTHORITY",
        EV_EFI_SPDM_FIRMWARE_BLOB => "EV_EFI_SPDM_FIRMWARE_BLOB",
        EV_EFI_SPDM_FIRMWARE_CONFIG => "EV_EFI_SPDM_FIRMWARE_CONFIG",
        _ => return None,
    })
}

/// An EFI GUID, kept in its on-the-wire byte order (first three fields
/// little-endian, as UEFI lays them out in memory).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EfiGuid(pub [u8; 16]);

impl EfiGuid {
    /// EFI_GLOBAL_VARIABLE, 8be4df61-93ca-11d2-aa0d-00e098032b8c: SecureBoot, PK, KEK, Boot####.
    pub const GLOBAL_VARIABLE: EfiGuid = EfiGuid::from_fields(
        0x8be4_df61,
        0x93ca,
        0x11d2,
        [0xaa, 0x0d, 0x00, 0xe0, 0x98, 0x03, 0x2b, 0x8c],
    );
    /// EFI_IMAGE_SECURITY_DATABASE_GUID, d719b2cb-3d3a-4596-a3bc-dad00e67656f: db and dbx.
    pub const IMAGE_SECURITY_DATABASE: EfiGuid = EfiGuid::from_fields(
        0xd719_b2cb,
        0x3d3a,
        0x4596,
        [0xa3, 0xbc, 0xda, 0xd0, 0x0e, 0x67, 0x65, 0x6f],
    );

    /// Builds a GUID from the fields of its text form
    /// (`data1-data2-data3-data4[0..2]-data4[2..8]`).
    pub const fn from_fields(data1: u32, data2: u16, data3: u16, data4: [u8; 8]) -> EfiGuid {
        let a = data1.to_le_bytes();
        let b = data2.to_le_bytes();
        let c = data3.to_le_bytes();
        let d = data4;
        EfiGuid([
            a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d[0], d[1], d[2], d[3], d[4], d[5],
            d[6], d[7],
        ])
    }
}

impl fmt::Display for EfiGuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a0, a1, a2, a3, b0, b1, c0, c1, d @ ..] = self.0;
        let [d0, d1, e @ ..] = d;
        write!(
            f,
            "{:08x}-{:04x}-{:04x}-{:02x}{:02x}-{}",
            u32::from_le_bytes([a0, a1, a2, a3]),
            u16::from_le_bytes([b0, b1]),
            u16::from_le_bytes([c0, c1]),
            d0,
            d1,
            hex::encode(e)
        )
    }
}

/// A UEFI_VARIABLE_DATA structure, borrowed from an event's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UefiVariableData<'a> {
    /// VariableName (the vendor GUID).
    pub guid: EfiGuid,
    /// UnicodeName, decoded from UTF-16 (unpaired surrogates become U+FFFD).
    pub name: String,
    /// VariableData.
    pub data: &'a [u8],
}

impl<'a> UefiVariableData<'a> {
    /// Parses UEFI_VARIABLE_DATA: GUID, u64 UnicodeNameLength (in UTF-16
    /// code units), u64 VariableDataLength, the name, the data. The lengths
    /// must account for every byte; `None` if they do not.
    pub fn parse(bytes: &'a [u8]) -> Option<UefiVariableData<'a>> {
        let (guid, rest) = bytes.split_first_chunk::<16>()?;
        let (name_len, rest) = rest.split_first_chunk::<8>()?;
        let (data_len, rest) = rest.split_first_chunk::<8>()?;
        let name_bytes = usize::try_from(u64::from_le_bytes(*name_len))
            .ok()?
            .checked_mul(2)?;
        let data_len = usize::try_from(u64::from_le_bytes(*data_len)).ok()?;
        if name_bytes.checked_add(data_len)? != rest.len() {
            return None;
        }
        let (name, data) = rest.split_at_checked(name_bytes)?;
        Some(UefiVariableData {
            guid: EfiGuid(*guid),
            name: utf16le_lossy(name),
            data,
        })
    }
}

/// Decodes UTF-16LE, dropping trailing NULs (some firmware counts the terminator).
fn utf16le_lossy(bytes: &[u8]) -> String {
    let units = bytes.chunks_exact(2).map(|pair| match pair {
        [lo, hi] => u16::from_le_bytes([*lo, *hi]),
        _ => 0,
    });
    let text: String = char::decode_utf16(units)
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect();
    text.trim_end_matches('\0').to_owned()
}

/// An EFI variable measured into the log.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EfiVariable {
    /// Index of the event in the log.
    pub index: usize,
    /// PCR the event extended.
    pub pcr: u32,
    /// EV_EFI_VARIABLE_DRIVER_CONFIG, EV_EFI_VARIABLE_BOOT, EV_EFI_VARIABLE_BOOT2
    /// or EV_EFI_VARIABLE_AUTHORITY.
    pub event_type: u32,
    /// Vendor GUID.
    pub guid: EfiGuid,
    /// Variable name.
    pub name: String,
    /// Variable contents.
    pub data: Vec<u8>,
    /// Whether the event's digests cover what is shown here, which is what
    /// binds `guid`, `name` and `data` to a verified replay: every digest is
    /// the hash of the whole UEFI_VARIABLE_DATA or, for EV_EFI_VARIABLE_BOOT
    /// and _BOOT2 only, of the variable contents alone (what most firmware
    /// measures there, which binds `data` but not the name).
    pub digests_match_data: bool,
}

/// An EFI boot application (shim, boot loader, kernel) loaded during boot.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BootApplication {
    /// Index of the event in the log.
    pub index: usize,
    /// The Authenticode digests of the image, per bank. These are what a
    /// verified replay vouches for.
    pub digests: Vec<(HashAlg, Vec<u8>)>,
    /// The UEFI device path of the image, if the event data is a well-formed
    /// UEFI_IMAGE_LOAD_EVENT. Informational: not covered by the digests.
    pub device_path: Option<Vec<u8>>,
    /// The file path nodes of the device path (`\EFI\BOOT\BOOTX64.EFI`), if
    /// any. Informational: not covered by the digests.
    pub file_path: Option<String>,
}

impl BootApplication {
    /// The digest of one bank, if the log carries it.
    pub fn digest(&self, alg: HashAlg) -> Option<&[u8]> {
        self.digests
            .iter()
            .find(|(a, _)| *a == alg)
            .map(|(_, d)| d.as_slice())
    }
}

/// Whether there is at least one digest and each is the hash of `data`.
fn digests_match(event: &Event, data: &[u8]) -> bool {
    let mut any = false;
    let all = event.digests().all(|(alg, d)| {
        any = true;
        alg.hash(data) == d
    });
    any && all
}

/// Parses UEFI_IMAGE_LOAD_EVENT and returns its device path.
fn image_load_device_path(data: &[u8]) -> Option<&[u8]> {
    // ImageLocationInMemory, ImageLengthInMemory, ImageLinkTimeAddress: 3 × u64.
    let (_, rest) = data.split_first_chunk::<24>()?;
    let (path_len, rest) = rest.split_first_chunk::<8>()?;
    let path_len = usize::try_from(u64::from_le_bytes(*path_len)).ok()?;
    rest.get(..path_len)
}

/// Media device path node type and its File Path subtype (UEFI spec 10.3.5.4).
const MEDIA_DEVICE_PATH: u8 = 0x04;
const MEDIA_FILEPATH_DP: u8 = 0x04;
/// End of hardware device path node type.
const END_DEVICE_PATH: u8 = 0x7f;

/// Walks a device path and joins its file path nodes, or `None` if it has none
/// or a node length is inconsistent.
fn device_path_file_path(mut path: &[u8]) -> Option<String> {
    let mut out = String::new();
    while let Some((header, _)) = path.split_first_chunk::<4>() {
        let [node_type, subtype, len_lo, len_hi] = *header;
        let len = usize::from(u16::from_le_bytes([len_lo, len_hi]));
        // A node shorter than its own header would loop forever.
        if len < 4 {
            return None;
        }
        let node = path.get(..len)?;
        if node_type == END_DEVICE_PATH {
            break;
        }
        if node_type == MEDIA_DEVICE_PATH && subtype == MEDIA_FILEPATH_DP {
            let segment = utf16le_lossy(node.get(4..)?);
            // Consecutive file path nodes concatenate into one path.
            if !out.is_empty() && !out.ends_with('\\') && !segment.starts_with('\\') {
                out.push('\\');
            }
            out.push_str(&segment);
        }
        path = path.get(len..)?;
    }
    (!out.is_empty()).then_some(out)
}

impl Event {
    /// Whether this event was extended into its PCR (everything but EV_NO_ACTION).
    pub fn is_measured(&self) -> bool {
        self.event_type != EV_NO_ACTION
    }

    /// Whether every digest of the event is the hash of its data, which is
    /// what lets a policy believe the data of a replay-verified event. False
    /// for an event without digests. Event types whose digest covers
    /// something else (boot applications: the PE image; GRUB's EV_IPL: the
    /// command without its prefix) legitimately return false.
    pub fn digests_match_data(&self) -> bool {
        digests_match(self, self.data())
    }

    /// The specification name of the event type, if known.
    pub fn type_name(&self) -> Option<&'static str> {
        event_type_name(self.event_type)
    }
}

impl EventLog {
    /// The Secure Boot state from the log: the `SecureBoot` variable
    /// (EFI global GUID) measured by an EV_EFI_VARIABLE_DRIVER_CONFIG event on
    /// PCR 7.
    ///
    /// `Some(true)` when it is 1, `Some(false)` when it is 0 or empty (the
    /// variable is absent). `None` — unknown, which a policy requiring Secure
    /// Boot must treat as a failure — when there is no such event, when its
    /// data does not hash to its digests (the data would be unverified), when
    /// its value is anything else, or when several such events disagree.
    pub fn secure_boot(&self) -> Option<bool> {
        let mut state = None;
        for event in &self.events {
            if event.pcr != 7 || event.event_type != EV_EFI_VARIABLE_DRIVER_CONFIG {
                continue;
            }
            let Some(var) = UefiVariableData::parse(event.data()) else {
                continue;
            };
            if var.guid != EfiGuid::GLOBAL_VARIABLE || var.name != "SecureBoot" {
                continue;
            }
            if !event.digests_match_data() {
                return None;
            }
            let value = match var.data {
                [1] => true,
                [0] | [] => false,
                _ => return None,
            };
            if state.is_some_and(|s| s != value) {
                return None;
            }
            state = Some(value);
        }
        state
    }

    /// EV_EFI_BOOT_SERVICES_APPLICATION events on PCR 4, in log order.
    pub fn boot_applications(&self) -> Vec<BootApplication> {
        self.events
            .iter()
            .filter(|e| e.pcr == 4 && e.event_type == EV_EFI_BOOT_SERVICES_APPLICATION)
            .map(|e| {
                let device_path = image_load_device_path(e.data());
                BootApplication {
                    index: e.index,
                    digests: e.digests().map(|(alg, d)| (alg, d.to_vec())).collect(),
                    device_path: device_path.map(<[u8]>::to_vec),
                    file_path: device_path.and_then(device_path_file_path),
                }
            })
            .collect()
    }

    /// The data of EV_IPL events as text, with (PCR, text): GRUB logs
    /// `grub_cmd: …` and `kernel_cmdline: …` there. Lossy UTF-8, NULs trimmed.
    ///
    /// Informational: GRUB hashes the command without its prefix, so these
    /// strings are not bound to the digests a replay verifies.
    pub fn ipl_strings(&self) -> Vec<(u32, String)> {
        self.events
            .iter()
            .filter(|e| e.event_type == EV_IPL)
            .map(|e| {
                (
                    e.pcr,
                    String::from_utf8_lossy(e.data())
                        .trim_matches('\0')
                        .to_owned(),
                )
            })
            .collect()
    }

    /// EV_SEPARATOR events as (PCR, standard). A separator is standard when
    /// its data is 00000000 (or FFFFFFFF, which firmware uses to signal an
    /// error) and every digest is the hash of that data.
    pub fn separators(&self) -> Vec<(u32, bool)> {
        self.events
            .iter()
            .filter(|e| e.event_type == EV_SEPARATOR)
            .map(|e| {
                let standard_data = matches!(e.data(), [0, 0, 0, 0] | [0xff, 0xff, 0xff, 0xff]);
                (e.pcr, standard_data && e.digests_match_data())
            })
            .collect()
    }

    /// Measured EFI variables (EV_EFI_VARIABLE_DRIVER_CONFIG, _BOOT, _BOOT2,
    /// _AUTHORITY) whose data is a well-formed UEFI_VARIABLE_DATA, in log order.
    pub fn efi_variables(&self) -> Vec<EfiVariable> {
        self.events
            .iter()
            .filter(|e| {
                matches!(
                    e.event_type,
                    EV_EFI_VARIABLE_DRIVER_CONFIG
                        | EV_EFI_VARIABLE_BOOT
                        | EV_EFI_VARIABLE_BOOT2
                        | EV_EFI_VARIABLE_AUTHORITY
                )
            })
            .filter_map(|e| {
                let var = UefiVariableData::parse(e.data())?;
                let boot = matches!(e.event_type, EV_EFI_VARIABLE_BOOT | EV_EFI_VARIABLE_BOOT2);
                let digests_match_data =
                    e.digests_match_data() || (boot && digests_match(e, var.data));
                Some(EfiVariable {
                    index: e.index,
                    pcr: e.pcr,
                    event_type: e.event_type,
                    guid: var.guid,
                    name: var.name,
                    data: var.data.to_vec(),
                    digests_match_data,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_text_form() {
        assert_eq!(
            EfiGuid::GLOBAL_VARIABLE.to_string(),
            "8be4df61-93ca-11d2-aa0d-00e098032b8c"
        );
        assert_eq!(
            EfiGuid::IMAGE_SECURITY_DATABASE.to_string(),
            "d719b2cb-3d3a-4596-a3bc-dad00e67656f"
        );
    }

    #[test]
    fn variable_data_lengths_must_account_for_every_byte() {
        let mut bytes = EfiGuid::GLOBAL_VARIABLE.0.to_vec();
        bytes.extend_from_slice(&2u64.to_le_bytes());
        bytes.extend_from_slice(&1u64.to_le_bytes());
        bytes.extend_from_slice(&[b'P', 0, b'K', 0, 7]);
        let var = UefiVariableData::parse(&bytes).expect("well-formed");
        assert_eq!((var.name.as_str(), var.data), ("PK", &[7u8][..]));
        bytes.push(0);
        assert_eq!(UefiVariableData::parse(&bytes), None);
        // A name length that overflows when doubled must not wrap.
        let mut huge = EfiGuid::GLOBAL_VARIABLE.0.to_vec();
        huge.extend_from_slice(&u64::MAX.to_le_bytes());
        huge.extend_from_slice(&0u64.to_le_bytes());
        assert_eq!(UefiVariableData::parse(&huge), None);
    }

    #[test]
    fn device_path_file_nodes_join() {
        let mut path = Vec::new();
        for segment in ["\\EFI", "BOOT\\BOOTX64.EFI"] {
            let utf16: Vec<u8> = segment
                .encode_utf16()
                .chain([0])
                .flat_map(u16::to_le_bytes)
                .collect();
            path.extend_from_slice(&[MEDIA_DEVICE_PATH, MEDIA_FILEPATH_DP]);
            path.extend_from_slice(&u16::try_from(utf16.len() + 4).expect("small").to_le_bytes());
            path.extend_from_slice(&utf16);
        }
        path.extend_from_slice(&[END_DEVICE_PATH, 0xff, 4, 0]);
        assert_eq!(
            device_path_file_path(&path).as_deref(),
            Some("\\EFI\\BOOT\\BOOTX64.EFI")
        );
        // A zero-length node is refused rather than looped on.
        assert_eq!(device_path_file_path(&[1, 1, 0, 0]), None);
    }
}
