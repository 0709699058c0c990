//! Measured-boot simulator.
//!
//! Builds a realistic TCG PC Client crypto-agile event log (TCG PC Client Platform
//! Firmware Profile: a SHA-1-format `TCG_PCR_EVENT` header carrying the
//! "Spec ID Event03" structure, followed by `TCG_PCR_EVENT2` records) with SHA-1 and
//! SHA-256 banks, in the shape that EDK II-based UEFI firmware, shim and GRUB produce,
//! together with the PCR values a TPM would hold after extending the same digests.
//!
//! The order of measured events produced by [`BootLog::simulate`] is:
//!
//! | # | PCR | event type | digest over |
//! |---|-----|------------|-------------|
//! | 1 | 0 | `EV_S_CRTM_VERSION` | event data (UTF-16LE version + NUL) |
//! | 2.. | 0 | `EV_EFI_PLATFORM_FIRMWARE_BLOB` (one per blob) | blob contents |
//! | | 7 | `EV_EFI_VARIABLE_DRIVER_CONFIG` SecureBoot, PK, KEK, db, dbx | whole `UEFI_VARIABLE_DATA` |
//! | | 7 | `EV_SEPARATOR` | `00 00 00 00` |
//! | | 1 | `EV_EFI_VARIABLE_BOOT` BootOrder, Boot0001 | variable data only |
//! | | 4 | `EV_EFI_ACTION` "Calling EFI Application from Boot Option" | the ASCII string |
//! | | 0..=6 | `EV_SEPARATOR` | `00 00 00 00` |
//! | | 7 | `EV_EFI_VARIABLE_AUTHORITY` (only with Secure Boot on) | whole `UEFI_VARIABLE_DATA` |
//! | | 4 | `EV_EFI_BOOT_SERVICES_APPLICATION` boot loader | image bytes |
//! | | 9 | `EV_IPL` kernel path (GRUB file measurement) | kernel bytes |
//! | | 8 | `EV_IPL` `kernel_cmdline: <cmdline>` | `<cmdline>` (no prefix, no NUL) |
//! | | 4 | `EV_EFI_BOOT_SERVICES_APPLICATION` kernel | image bytes |
//! | | 5 | `EV_EFI_ACTION` "Exit Boot Services Invocation" | the ASCII string |
//! | | 5 | `EV_EFI_ACTION` "Exit Boot Services Returned with Success" | the ASCII string |
//!
//! The only `EV_NO_ACTION` records are the Spec ID header and, when
//! [`BootProfile::startup_locality`] is set, a `StartupLocality` event right after it.

use std::collections::BTreeMap;
use std::path::Path;

use sha1::Sha1;
use sha2::{Digest, Sha256};

/// TCG event types (TCG PC Client Platform Firmware Profile, section 10.4.1).
pub mod event_type {
    /// `EV_PREBOOT_CERT`.
    pub const EV_PREBOOT_CERT: u32 = 0x0000_0000;
    /// `EV_POST_CODE`.
    pub const EV_POST_CODE: u32 = 0x0000_0001;
    /// `EV_UNUSED`.
    pub const EV_UNUSED: u32 = 0x0000_0002;
    /// `EV_NO_ACTION`: logged but never extended into a PCR.
    pub const EV_NO_ACTION: u32 = 0x0000_0003;
    /// `EV_SEPARATOR`.
    pub const EV_SEPARATOR: u32 = 0x0000_0004;
    /// `EV_ACTION`.
    pub const EV_ACTION: u32 = 0x0000_0005;
    /// `EV_EVENT_TAG`.
    pub const EV_EVENT_TAG: u32 = 0x0000_0006;
    /// `EV_S_CRTM_CONTENTS`.
    pub const EV_S_CRTM_CONTENTS: u32 = 0x0000_0007;
    /// `EV_S_CRTM_VERSION`.
    pub const EV_S_CRTM_VERSION: u32 = 0x0000_0008;
    /// `EV_CPU_MICROCODE`.
    pub const EV_CPU_MICROCODE: u32 = 0x0000_0009;
    /// `EV_PLATFORM_CONFIG_FLAGS`.
    pub const EV_PLATFORM_CONFIG_FLAGS: u32 = 0x0000_000A;
    /// `EV_TABLE_OF_DEVICES`.
    pub const EV_TABLE_OF_DEVICES: u32 = 0x0000_000B;
    /// `EV_COMPACT_HASH`.
    pub const EV_COMPACT_HASH: u32 = 0x0000_000C;
    /// `EV_IPL` (used by GRUB for commands, files and the kernel command line).
    pub const EV_IPL: u32 = 0x0000_000D;
    /// `EV_IPL_PARTITION_DATA`.
    pub const EV_IPL_PARTITION_DATA: u32 = 0x0000_000E;
    /// `EV_NONHOST_CODE`.
    pub const EV_NONHOST_CODE: u32 = 0x0000_000F;
    /// `EV_NONHOST_CONFIG`.
    pub const EV_NONHOST_CONFIG: u32 = 0x0000_0010;
    /// `EV_NONHOST_INFO`.
    pub const EV_NONHOST_INFO: u32 = 0x0000_0011;
    /// `EV_OMIT_BOOT_DEVICE_EVENTS`.
    pub const EV_OMIT_BOOT_DEVICE_EVENTS: u32 = 0x0000_0012;
    /// `EV_EFI_EVENT_BASE`.
    pub const EV_EFI_EVENT_BASE: u32 = 0x8000_0000;
    /// `EV_EFI_VARIABLE_DRIVER_CONFIG`.
    pub const EV_EFI_VARIABLE_DRIVER_CONFIG: u32 = 0x8000_0001;
    /// `EV_EFI_VARIABLE_BOOT`.
    pub const EV_EFI_VARIABLE_BOOT: u32 = 0x8000_0002;
    /// `EV_EFI_BOOT_SERVICES_APPLICATION`.
    pub const EV_EFI_BOOT_SERVICES_APPLICATION: u32 = 0x8000_0003;
    /// `EV_EFI_BOOT_SERVICES_DRIVER`.
    pub const EV_EFI_BOOT_SERVICES_DRIVER: u32 = 0x8000_0004;
    /// `EV_EFI_RUNTIME_SERVICES_DRIVER`.
    pub const EV_EFI_RUNTIME_SERVICES_DRIVER: u32 = 0x8000_0005;
    /// `EV_EFI_GPT_EVENT`.
    pub const EV_EFI_GPT_EVENT: u32 = 0x8000_0006;
    /// `EV_EFI_ACTION`.
    pub const EV_EFI_ACTION: u32 = 0x8000_0007;
    /// `EV_EFI_PLATFORM_FIRMWARE_BLOB`.
    pub const EV_EFI_PLATFORM_FIRMWARE_BLOB: u32 = 0x8000_0008;
    /// `EV_EFI_HANDOFF_TABLES`.
    pub const EV_EFI_HANDOFF_TABLES: u32 = 0x8000_0009;
    /// `EV_EFI_PLATFORM_FIRMWARE_BLOB2`.
    pub const EV_EFI_PLATFORM_FIRMWARE_BLOB2: u32 = 0x8000_000A;
    /// `EV_EFI_HANDOFF_TABLES2`.
    pub const EV_EFI_HANDOFF_TABLES2: u32 = 0x8000_000B;
    /// `EV_EFI_VARIABLE_BOOT2`.
    pub const EV_EFI_VARIABLE_BOOT2: u32 = 0x8000_000C;
    /// `EV_EFI_HCRTM_EVENT`.
    pub const EV_EFI_HCRTM_EVENT: u32 = 0x8000_0010;
    /// `EV_EFI_VARIABLE_AUTHORITY`.
    pub const EV_EFI_VARIABLE_AUTHORITY: u32 = 0x8000_00E0;
    /// `EV_EFI_SPDM_FIRMWARE_BLOB`.
    pub const EV_EFI_SPDM_FIRMWARE_BLOB: u32 = 0x8000_00E1;
    /// `EV_EFI_SPDM_FIRMWARE_CONFIG`.
    pub const EV_EFI_SPDM_FIRMWARE_CONFIG: u32 = 0x8000_00E2;
}

/// Hash banks the simulator measures into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Bank {
    /// SHA-1 (`TPM_ALG_SHA1`, 20-byte digests).
    Sha1,
    /// SHA-256 (`TPM_ALG_SHA256`, 32-byte digests).
    Sha256,
}

impl Bank {
    /// Every bank the simulator measures into, in the order they appear in the log.
    pub const ALL: [Bank; 2] = [Bank::Sha1, Bank::Sha256];

    /// The `TPM_ALG_ID` of this bank's hash (0x0004 for SHA-1, 0x000B for SHA-256).
    pub fn tpm_alg_id(self) -> u16 {
        match self {
            Bank::Sha1 => 0x0004,
            Bank::Sha256 => 0x000B,
        }
    }

    /// The bank for a `TPM_ALG_ID`, if the simulator knows it.
    pub fn from_tpm_alg_id(alg: u16) -> Option<Self> {
        Bank::ALL.into_iter().find(|b| b.tpm_alg_id() == alg)
    }

    /// Digest (and PCR) length in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            Bank::Sha1 => 20,
            Bank::Sha256 => 32,
        }
    }

    /// Hashes `data` with this bank's algorithm.
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            Bank::Sha1 => Sha1::digest(data).to_vec(),
            Bank::Sha256 => Sha256::digest(data).to_vec(),
        }
    }

    /// `TPM2_PCR_Extend` in software: `H(pcr || digest)`.
    fn extend(self, pcr: &[u8], digest: &[u8]) -> Vec<u8> {
        let mut buf = Vec::with_capacity(pcr.len() + digest.len());
        buf.extend_from_slice(pcr);
        buf.extend_from_slice(digest);
        self.digest(&buf)
    }
}

/// One measured event (not `EV_NO_ACTION`): what is written to the log and what is
/// extended into the TPM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeasuredEvent {
    /// PCR index the digests are extended into.
    pub pcr: u32,
    /// TCG event type (see [`event_type`]).
    pub event_type: u32,
    /// One digest per bank, in [`Bank::ALL`] order.
    pub digests: Vec<(Bank, Vec<u8>)>,
    /// The event data written to the log.
    pub data: Vec<u8>,
}

impl MeasuredEvent {
    /// An event whose digests are the hashes of `measured` in every bank.
    fn hashed(pcr: u32, event_type: u32, measured: &[u8], data: Vec<u8>) -> Self {
        MeasuredEvent {
            pcr,
            event_type,
            digests: Bank::ALL.iter().map(|&b| (b, b.digest(measured))).collect(),
            data,
        }
    }

    /// An event whose digests are the hashes of its own data.
    fn self_hashed(pcr: u32, event_type: u32, data: Vec<u8>) -> Self {
        let measured = data.clone();
        Self::hashed(pcr, event_type, &measured, data)
    }

    /// This event's digest in `bank`, if present.
    pub fn digest(&self, bank: Bank) -> Option<&[u8]> {
        self.digests
            .iter()
            .find(|(b, _)| *b == bank)
            .map(|(_, d)| d.as_slice())
    }
}

/// Describes the host being booted. `Default` is a "good" host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootProfile {
    /// Value of the `SecureBoot` variable (1/0) measured into PCR 7. When true, the
    /// firmware also logs the `db` entry that authorised the boot loader
    /// (`EV_EFI_VARIABLE_AUTHORITY`, PCR 7).
    pub secure_boot: bool,
    /// S-CRTM version string (PCR 0, `EV_S_CRTM_VERSION`).
    pub firmware_version: String,
    /// Firmware volumes measured as `EV_EFI_PLATFORM_FIRMWARE_BLOB` into PCR 0; the
    /// digest is over each blob's contents.
    pub firmware_blobs: Vec<Vec<u8>>,
    /// Bytes of the boot application (shim/GRUB), PCR 4.
    pub bootloader: Vec<u8>,
    /// Kernel image: second boot application on PCR 4, and GRUB's file measurement
    /// on PCR 9.
    pub kernel: Vec<u8>,
    /// Path GRUB loads the kernel from, logged on PCR 9 (e.g. `/boot/vmlinuz-...`).
    pub kernel_path: String,
    /// Kernel command line as GRUB records it: logged on PCR 8 as
    /// `kernel_cmdline: <this>\0`, digest over `<this>` alone. GRUB's form starts
    /// with the kernel path.
    pub kernel_cmdline: String,
    /// Contents of the `PK` variable (EFI_SIGNATURE_LISTs).
    pub pk: Vec<u8>,
    /// Contents of the `KEK` variable (EFI_SIGNATURE_LISTs).
    pub kek: Vec<u8>,
    /// Contents of the `db` variable (EFI_SIGNATURE_LISTs).
    pub db: Vec<u8>,
    /// Contents of the `dbx` variable (EFI_SIGNATURE_LISTs).
    pub dbx: Vec<u8>,
    /// When `Some(n)`, a `StartupLocality` `EV_NO_ACTION` event is logged after the
    /// Spec ID header and PCR 0 starts at `00..0n` instead of all zeros (the TPM was
    /// started with `TPM2_Startup` from locality `n`, normally 3).
    pub startup_locality: Option<u8>,
}

impl Default for BootProfile {
    fn default() -> Self {
        let kernel_path = "/boot/vmlinuz-6.8.0-31-generic".to_owned();
        let kernel_cmdline =
            format!("{kernel_path} root=UUID=3f6c1c2e-7a5b-4d2e-9c8f-1b2a3c4d5e6f ro quiet splash");
        BootProfile {
            secure_boot: true,
            firmware_version: "Rootmark Simulated UEFI 2024.02 (EDK II)".to_owned(),
            firmware_blobs: vec![
                firmware_volume("PEIFV", 0x4000),
                firmware_volume("DXEFV", 0xC000),
            ],
            bootloader: pe_image("shimx64.efi 15.8", 0x6000),
            kernel: pe_image("vmlinuz-6.8.0-31-generic", 0xA000),
            kernel_path,
            kernel_cmdline,
            pk: x509_esl(&[("Rootmark Platform Key", "Rootmark Platform Key")]),
            kek: x509_esl(&[("Rootmark KEK CA 2024", "Rootmark Platform Key")]),
            db: x509_esl(&[
                ("Rootmark UEFI CA 2024", "Rootmark KEK CA 2024"),
                ("Rootmark Windows PCA 2024", "Rootmark KEK CA 2024"),
            ]),
            dbx: sha256_esl(&[
                "revoked: grubx64.efi 2.04",
                "revoked: shimx64.efi 15.4",
                "revoked: bootmgfw.efi 2016",
            ]),
            startup_locality: None,
        }
    }
}

impl BootProfile {
    /// The same host with a modified kernel image (a marker is appended to the kernel
    /// bytes, so applying this repeatedly keeps producing new kernels). Changes the
    /// kernel's measurements on PCR 4 (boot application) and PCR 9 (GRUB's file
    /// measurement); every other PCR stays the same.
    #[must_use]
    pub fn tampered_kernel(mut self) -> Self {
        self.kernel
            .extend_from_slice(b"\0rootmark: tampered kernel\0");
        self
    }
}

/// A complete simulated boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootLog {
    events: Vec<MeasuredEvent>,
    startup_locality: Option<u8>,
}

impl BootLog {
    /// Simulates booting `profile` (see the module docs for the event order).
    pub fn simulate(profile: &BootProfile) -> Self {
        use event_type::*;

        let mut ev = Vec::new();

        // PCR 0: S-CRTM version and firmware volumes (PEI).
        ev.push(MeasuredEvent::self_hashed(
            0,
            EV_S_CRTM_VERSION,
            utf16z(&profile.firmware_version),
        ));
        let mut base: u64 = FIRMWARE_BASE;
        for blob in &profile.firmware_blobs {
            let len = len_u64(blob.len());
            let mut data = Vec::with_capacity(16);
            data.extend_from_slice(&base.to_le_bytes());
            data.extend_from_slice(&len.to_le_bytes());
            ev.push(MeasuredEvent::hashed(
                0,
                EV_EFI_PLATFORM_FIRMWARE_BLOB,
                blob,
                data,
            ));
            base = base.saturating_add(align_up(len.max(1), 0x1_0000));
        }

        // PCR 7: Secure Boot policy (DXE), then its separator (as EDK II does).
        let secure_boot = [u8::from(profile.secure_boot)];
        for (guid, name, value) in [
            (EFI_GLOBAL_VARIABLE, "SecureBoot", &secure_boot[..]),
            (EFI_GLOBAL_VARIABLE, "PK", &profile.pk[..]),
            (EFI_GLOBAL_VARIABLE, "KEK", &profile.kek[..]),
            (EFI_IMAGE_SECURITY_DATABASE, "db", &profile.db[..]),
            (EFI_IMAGE_SECURITY_DATABASE, "dbx", &profile.dbx[..]),
        ] {
            ev.push(MeasuredEvent::self_hashed(
                7,
                EV_EFI_VARIABLE_DRIVER_CONFIG,
                uefi_variable_data(&guid, name, value),
            ));
        }
        ev.push(separator(7));

        // PCR 1: boot variables (digest over the variable data only).
        let shim_path = "\\EFI\\ubuntu\\shimx64.efi";
        let boot_order: Vec<u8> = [0x0001u16].iter().flat_map(|n| n.to_le_bytes()).collect();
        let boot0001 = load_option("ubuntu", &short_device_path(1, shim_path));
        for (name, value) in [("BootOrder", boot_order), ("Boot0001", boot0001)] {
            ev.push(MeasuredEvent::hashed(
                1,
                EV_EFI_VARIABLE_BOOT,
                &value,
                uefi_variable_data(&EFI_GLOBAL_VARIABLE, name, &value),
            ));
        }

        // Ready to boot: PCR 4 action, then separators for PCRs 0..=6.
        ev.push(efi_action(4, CALLING_EFI_APPLICATION));
        for pcr in 0..=6 {
            ev.push(separator(pcr));
        }

        // Boot loader, verified against db when Secure Boot is on.
        if profile.secure_boot {
            let authority = first_signature_data(&profile.db).unwrap_or(&profile.db);
            ev.push(MeasuredEvent::self_hashed(
                7,
                EV_EFI_VARIABLE_AUTHORITY,
                uefi_variable_data(&EFI_IMAGE_SECURITY_DATABASE, "db", authority),
            ));
        }
        ev.push(MeasuredEvent::hashed(
            4,
            EV_EFI_BOOT_SERVICES_APPLICATION,
            &profile.bootloader,
            image_load_event(
                BOOTLOADER_LOAD_ADDRESS,
                &profile.bootloader,
                &full_device_path(1, shim_path),
            ),
        ));

        // GRUB: kernel file (PCR 9, digest over the file contents), then the command
        // line (PCR 8; the logged text is "kernel_cmdline: <cmdline>\0" but GRUB
        // hashes only <cmdline>, without the prefix and the NUL).
        ev.push(MeasuredEvent::hashed(
            9,
            EV_IPL,
            &profile.kernel,
            asciiz(&profile.kernel_path),
        ));
        let cmdline = format!("kernel_cmdline: {}", profile.kernel_cmdline);
        ev.push(MeasuredEvent::hashed(
            8,
            EV_IPL,
            profile.kernel_cmdline.as_bytes(),
            asciiz(&cmdline),
        ));

        // The kernel (EFI stub) started through LoadImage/StartImage.
        let kernel_efi_path = profile.kernel_path.replace('/', "\\");
        ev.push(MeasuredEvent::hashed(
            4,
            EV_EFI_BOOT_SERVICES_APPLICATION,
            &profile.kernel,
            image_load_event(
                KERNEL_LOAD_ADDRESS,
                &profile.kernel,
                &full_device_path(2, &kernel_efi_path),
            ),
        ));

        // ExitBootServices.
        ev.push(efi_action(5, EXIT_BOOT_SERVICES_INVOCATION));
        ev.push(efi_action(5, EXIT_BOOT_SERVICES_SUCCESS));

        BootLog {
            events: ev,
            startup_locality: profile.startup_locality,
        }
    }

    /// Simulates booting `profile` on a bigger machine, with `target_events`
    /// measured events (or as many as [`BootLog::simulate`] gives, if that is
    /// more), as benchmarks of log replay need (150 is a typical server): right after the firmware
    /// volumes, DXE adds alternately a PCI option ROM driver
    /// (`EV_EFI_BOOT_SERVICES_DRIVER` on PCR 2, digest over the image, data a
    /// `UEFI_IMAGE_LOAD_EVENT` with a `PciRoot/Pci/Offset` device path) and a
    /// further firmware volume (`EV_EFI_PLATFORM_FIRMWARE_BLOB` on PCR 0, digest
    /// over its contents) until the count is reached; the rest of the boot is
    /// that of [`BootLog::simulate`]. Deterministic: the same arguments give
    /// the same log.
    pub fn simulate_large(profile: &BootProfile, target_events: usize) -> Self {
        /// `ImageLocationInMemory` of the first option ROM driver.
        const OPTION_ROM_LOAD_ADDRESS: u64 = 0x7D00_0000;
        /// Base of the extra firmware volumes.
        const EXTRA_FIRMWARE_BASE: u64 = 0xFF00_0000;

        let mut log = Self::simulate(profile);
        let extra = target_events.saturating_sub(log.events.len());
        let at = 1 + profile.firmware_blobs.len();
        let mut added = Vec::with_capacity(extra);
        for i in 0..extra {
            let n = len_u64(i / 2);
            if i % 2 == 0 {
                let rom = pe_image(&format!("option ROM driver {n}"), 0x400);
                let device = u8::try_from(n % 30).unwrap_or(0) + 1;
                let mut offset = Vec::with_capacity(20);
                offset.extend_from_slice(&0u32.to_le_bytes());
                offset.extend_from_slice(&0u64.to_le_bytes());
                offset.extend_from_slice(&len_u64(rom.len() - 1).to_le_bytes());
                let mut path = device_path_node(0x02, 0x01, &[0xD0, 0x41, 0x03, 0x0A, 0, 0, 0, 0]);
                path.extend(device_path_node(0x01, 0x01, &[0x00, device]));
                path.extend(device_path_node(0x04, 0x08, &offset));
                path.extend(device_path_node(0x7f, 0xff, &[]));
                let location = OPTION_ROM_LOAD_ADDRESS.saturating_add(n.saturating_mul(0x1_0000));
                added.push(MeasuredEvent::hashed(
                    2,
                    event_type::EV_EFI_BOOT_SERVICES_DRIVER,
                    &rom,
                    image_load_event(location, &rom, &path),
                ));
            } else {
                let fv = firmware_volume(&format!("FV {n}"), 0x200);
                let base = EXTRA_FIRMWARE_BASE.saturating_add(n.saturating_mul(0x1_0000));
                let mut data = Vec::with_capacity(16);
                data.extend_from_slice(&base.to_le_bytes());
                data.extend_from_slice(&len_u64(fv.len()).to_le_bytes());
                added.push(MeasuredEvent::hashed(
                    0,
                    event_type::EV_EFI_PLATFORM_FIRMWARE_BLOB,
                    &fv,
                    data,
                ));
            }
        }
        log.events.splice(at..at, added);
        log
    }

    /// Appends an `EV_IPL` event measuring `data` into `pcr` (what a boot
    /// loader that loads one more component logs) and returns it, so the
    /// caller extends the same digests into the TPM.
    pub fn measure_ipl(&mut self, pcr: u32, data: &[u8]) -> MeasuredEvent {
        let event = MeasuredEvent::self_hashed(pcr, event_type::EV_IPL, data.to_vec());
        self.events.push(event.clone());
        event
    }

    /// The measured events, in log order (`EV_NO_ACTION` records are not included).
    pub fn events(&self) -> &[MeasuredEvent] {
        &self.events
    }

    /// The locality logged in the `StartupLocality` event, if any.
    pub fn startup_locality(&self) -> Option<u8> {
        self.startup_locality
    }

    /// The binary event log: a SHA-1-format `TCG_PCR_EVENT` header carrying the
    /// "Spec ID Event03" structure (SHA-1 and SHA-256), an optional `StartupLocality`
    /// `EV_NO_ACTION` event, then one `TCG_PCR_EVENT2` per measured event.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();

        // TCG_EfiSpecIDEventStruct.
        let mut spec = Vec::new();
        spec.extend_from_slice(b"Spec ID Event03\0");
        spec.extend_from_slice(&0u32.to_le_bytes()); // platformClass: client
        spec.push(0); // specVersionMinor
        spec.push(2); // specVersionMajor
        spec.push(0); // specErrata
        spec.push(2); // uintnSize: UINT64
        spec.extend_from_slice(&len_u32(Bank::ALL.len()).to_le_bytes());
        for bank in Bank::ALL {
            spec.extend_from_slice(&bank.tpm_alg_id().to_le_bytes());
            spec.extend_from_slice(&len_u16(bank.digest_len()).to_le_bytes());
        }
        spec.push(0); // vendorInfoSize

        // TCG_PCR_EVENT (SHA-1 log format) header.
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&event_type::EV_NO_ACTION.to_le_bytes());
        out.extend_from_slice(&[0u8; 20]);
        out.extend_from_slice(&len_u32(spec.len()).to_le_bytes());
        out.extend_from_slice(&spec);

        if let Some(locality) = self.startup_locality {
            let mut data = Vec::with_capacity(17);
            data.extend_from_slice(b"StartupLocality\0");
            data.push(locality);
            let zero_digests = Bank::ALL
                .iter()
                .map(|&b| (b, vec![0u8; b.digest_len()]))
                .collect::<Vec<_>>();
            write_event2(&mut out, 0, event_type::EV_NO_ACTION, &zero_digests, &data);
        }

        for e in &self.events {
            write_event2(&mut out, e.pcr, e.event_type, &e.digests, &e.data);
        }
        out
    }

    /// Writes [`BootLog::to_bytes`] to `path`.
    pub fn write_to(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, self.to_bytes())
    }

    /// Software replay of the log from reset PCRs: for each PCR that has at least one
    /// event, its final value in `bank` (`PCR_new = H(PCR_old || digest)`). PCRs start
    /// at all zeros, except PCR 0 which starts at `00..0n` when the log carries a
    /// `StartupLocality` of `n`.
    pub fn expected_pcrs(&self, bank: Bank) -> BTreeMap<u32, Vec<u8>> {
        let mut pcrs: BTreeMap<u32, Vec<u8>> = BTreeMap::new();
        for e in &self.events {
            let Some(digest) = e.digest(bank) else {
                continue;
            };
            let current = pcrs
                .entry(e.pcr)
                .or_insert_with(|| self.initial_pcr(e.pcr, bank));
            *current = bank.extend(current, digest);
        }
        pcrs
    }

    /// The value a PCR holds after `TPM2_Startup(CLEAR)` for this boot.
    fn initial_pcr(&self, pcr: u32, bank: Bank) -> Vec<u8> {
        let mut value = vec![0u8; bank.digest_len()];
        if let (0, Some(locality), Some(last)) = (pcr, self.startup_locality, value.last_mut()) {
            *last = locality;
        }
        value
    }

    /// The sorted, distinct PCR indexes this boot measures into.
    pub fn boot_pcr_indexes(&self) -> Vec<u32> {
        let mut pcrs: Vec<u32> = self.events.iter().map(|e| e.pcr).collect();
        pcrs.sort_unstable();
        pcrs.dedup();
        pcrs
    }
}

// ---------------------------------------------------------------------------------
// Encoding helpers.

const CALLING_EFI_APPLICATION: &str = "Calling EFI Application from Boot Option";
const EXIT_BOOT_SERVICES_INVOCATION: &str = "Exit Boot Services Invocation";
const EXIT_BOOT_SERVICES_SUCCESS: &str = "Exit Boot Services Returned with Success";

/// Where the first firmware volume is mapped (OVMF's PEIFV base).
const FIRMWARE_BASE: u64 = 0x0082_0000;
/// `ImageLocationInMemory` of the boot loader.
const BOOTLOADER_LOAD_ADDRESS: u64 = 0x7E1D_8018;
/// `ImageLocationInMemory` of the kernel.
const KERNEL_LOAD_ADDRESS: u64 = 0x7C9A_0018;

/// An EFI GUID in its text form; encoded mixed-endian.
#[derive(Debug, Clone, Copy)]
struct Guid {
    d1: u32,
    d2: u16,
    d3: u16,
    d4: [u8; 8],
}

impl Guid {
    fn to_bytes(self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[0..4].copy_from_slice(&self.d1.to_le_bytes());
        out[4..6].copy_from_slice(&self.d2.to_le_bytes());
        out[6..8].copy_from_slice(&self.d3.to_le_bytes());
        out[8..16].copy_from_slice(&self.d4);
        out
    }
}

/// `EFI_GLOBAL_VARIABLE` 8be4df61-93ca-11d2-aa0d-00e098032b8c.
const EFI_GLOBAL_VARIABLE: Guid = Guid {
    d1: 0x8be4_df61,
    d2: 0x93ca,
    d3: 0x11d2,
    d4: [0xaa, 0x0d, 0x00, 0xe0, 0x98, 0x03, 0x2b, 0x8c],
};

/// `EFI_IMAGE_SECURITY_DATABASE_GUID` d719b2cb-3d3a-4596-a3bc-dad00e67656f.
const EFI_IMAGE_SECURITY_DATABASE: Guid = Guid {
    d1: 0xd719_b2cb,
    d2: 0x3d3a,
    d3: 0x4596,
    d4: [0xa3, 0xbc, 0xda, 0xd0, 0x0e, 0x67, 0x65, 0x6f],
};

/// `EFI_CERT_X509_GUID` a5c059a1-94e4-4aa7-87b5-ab155c2bf072.
const EFI_CERT_X509: Guid = Guid {
    d1: 0xa5c0_59a1,
    d2: 0x94e4,
    d3: 0x4aa7,
    d4: [0x87, 0xb5, 0xab, 0x15, 0x5c, 0x2b, 0xf0, 0x72],
};

/// `EFI_CERT_SHA256_GUID` c1c41626-504c-4092-aca9-41f936934328.
const EFI_CERT_SHA256: Guid = Guid {
    d1: 0xc1c4_1626,
    d2: 0x504c,
    d3: 0x4092,
    d4: [0xac, 0xa9, 0x41, 0xf9, 0x36, 0x93, 0x43, 0x28],
};

/// SignatureOwner of the simulated platform's keys (made up).
const ROOTMARK_OWNER: Guid = Guid {
    d1: 0x3f1c_6a2e,
    d2: 0x8b4d,
    d3: 0x4e57,
    d4: [0x9a, 0x61, 0x0c, 0x7d, 0x5e, 0x2b, 0x9f, 0x10],
};

/// GPT partition GUID of the simulated disk's partitions (partition number in d1).
fn partition_guid(partition: u32) -> Guid {
    Guid {
        d1: 0x6443_a6a0 | partition,
        d2: 0xe5e9,
        d3: 0x4df7,
        d4: [0x9a, 0x06, 0xd1, 0x32, 0x9e, 0x50, 0xf3, 0x3c],
    }
}

fn len_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// Length fields in the log are 32-bit; saturates for (unrealistic) >4 GiB data.
fn len_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn len_u16(n: usize) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}

fn align_up(n: u64, align: u64) -> u64 {
    n.div_ceil(align).saturating_mul(align)
}

/// UTF-16LE with a terminating NUL.
fn utf16z(s: &str) -> Vec<u8> {
    s.encode_utf16()
        .chain(std::iter::once(0))
        .flat_map(u16::to_le_bytes)
        .collect()
}

/// The bytes of `s` with a terminating NUL.
fn asciiz(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

fn separator(pcr: u32) -> MeasuredEvent {
    MeasuredEvent::self_hashed(pcr, event_type::EV_SEPARATOR, vec![0u8; 4])
}

fn efi_action(pcr: u32, text: &str) -> MeasuredEvent {
    MeasuredEvent::self_hashed(pcr, event_type::EV_EFI_ACTION, text.as_bytes().to_vec())
}

/// `UEFI_VARIABLE_DATA`: GUID, name length (chars), data length, CHAR16 name (no
/// NUL), data.
fn uefi_variable_data(guid: &Guid, name: &str, value: &[u8]) -> Vec<u8> {
    let name16: Vec<u16> = name.encode_utf16().collect();
    let mut out = Vec::with_capacity(32 + name16.len() * 2 + value.len());
    out.extend_from_slice(&guid.to_bytes());
    out.extend_from_slice(&len_u64(name16.len()).to_le_bytes());
    out.extend_from_slice(&len_u64(value.len()).to_le_bytes());
    out.extend(name16.iter().flat_map(|c| c.to_le_bytes()));
    out.extend_from_slice(value);
    out
}

/// `UEFI_IMAGE_LOAD_EVENT`.
fn image_load_event(location: u64, image: &[u8], device_path: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + device_path.len());
    out.extend_from_slice(&location.to_le_bytes());
    out.extend_from_slice(&len_u64(image.len()).to_le_bytes());
    out.extend_from_slice(&0u64.to_le_bytes()); // ImageLinkTimeAddress
    out.extend_from_slice(&len_u64(device_path.len()).to_le_bytes());
    out.extend_from_slice(device_path);
    out
}

/// `TCG_PCR_EVENT2`.
fn write_event2(out: &mut Vec<u8>, pcr: u32, ty: u32, digests: &[(Bank, Vec<u8>)], data: &[u8]) {
    out.extend_from_slice(&pcr.to_le_bytes());
    out.extend_from_slice(&ty.to_le_bytes());
    out.extend_from_slice(&len_u32(digests.len()).to_le_bytes());
    for (bank, digest) in digests {
        out.extend_from_slice(&bank.tpm_alg_id().to_le_bytes());
        out.extend_from_slice(digest);
    }
    out.extend_from_slice(&len_u32(data.len()).to_le_bytes());
    out.extend_from_slice(data);
}

fn device_path_node(ty: u8, subtype: u8, body: &[u8]) -> Vec<u8> {
    let mut node = vec![ty, subtype];
    node.extend_from_slice(&len_u16(body.len() + 4).to_le_bytes());
    node.extend_from_slice(body);
    node
}

/// `HD(partition, GPT, <guid>, start, size)/\path` + end node.
fn short_device_path(partition: u32, file: &str) -> Vec<u8> {
    let mut hd = Vec::with_capacity(38);
    hd.extend_from_slice(&partition.to_le_bytes());
    let (start, size): (u64, u64) = if partition == 1 {
        (0x800, 0x10_0000)
    } else {
        (0x10_0800, 0x3E0_0000)
    };
    hd.extend_from_slice(&start.to_le_bytes());
    hd.extend_from_slice(&size.to_le_bytes());
    hd.extend_from_slice(&partition_guid(partition).to_bytes());
    hd.push(0x02); // MBRType: GPT
    hd.push(0x02); // SignatureType: GUID
    let mut path = device_path_node(0x04, 0x01, &hd);
    path.extend(device_path_node(0x04, 0x04, &utf16z(file)));
    path.extend(device_path_node(0x7f, 0xff, &[]));
    path
}

/// `PciRoot(0x0)/Pci(0x3,0x0)/HD(...)/\path` + end node.
fn full_device_path(partition: u32, file: &str) -> Vec<u8> {
    let mut acpi = Vec::with_capacity(8);
    acpi.extend_from_slice(&0x0A03_41D0u32.to_le_bytes()); // EISA PNP0A03
    acpi.extend_from_slice(&0u32.to_le_bytes());
    let mut path = device_path_node(0x02, 0x01, &acpi);
    path.extend(device_path_node(0x01, 0x01, &[0x00, 0x03]));
    path.extend(short_device_path(partition, file));
    path
}

/// `EFI_LOAD_OPTION` with `LOAD_OPTION_ACTIVE` and no optional data.
fn load_option(description: &str, device_path: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&len_u16(device_path.len()).to_le_bytes());
    out.extend(utf16z(description));
    out.extend_from_slice(device_path);
    out
}

/// The first `EFI_SIGNATURE_DATA` (owner GUID + signature) of the first
/// `EFI_SIGNATURE_LIST` in `esls`, if it parses.
fn first_signature_data(esls: &[u8]) -> Option<&[u8]> {
    let u32_at = |at: usize| -> Option<usize> {
        let bytes: [u8; 4] = esls.get(at..at + 4)?.try_into().ok()?;
        usize::try_from(u32::from_le_bytes(bytes)).ok()
    };
    let list_size = u32_at(16)?;
    let header_size = u32_at(20)?;
    let sig_size = u32_at(24)?;
    let start = 28usize.checked_add(header_size)?;
    let end = start.checked_add(sig_size)?;
    if sig_size <= 16 || end > list_size {
        return None;
    }
    esls.get(start..end)
}

/// Deterministic filler bytes: SHA-256 in counter mode over `label`.
fn filler(label: &str, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    let mut counter: u64 = 0;
    while out.len() < len {
        let mut h = Sha256::new();
        h.update(label.as_bytes());
        h.update(counter.to_le_bytes());
        out.extend_from_slice(&h.finalize());
        counter += 1;
    }
    out.truncate(len);
    out
}

/// A PE/COFF-looking image ("MZ" header, PE signature at 0x80).
fn pe_image(label: &str, len: usize) -> Vec<u8> {
    let mut img = filler(label, len.max(0x100));
    img[0..2].copy_from_slice(b"MZ");
    img[0x3c..0x40].copy_from_slice(&0x80u32.to_le_bytes());
    img[0x80..0x84].copy_from_slice(b"PE\0\0");
    img
}

/// A firmware-volume-looking blob (`_FVH` signature at offset 0x28).
fn firmware_volume(label: &str, len: usize) -> Vec<u8> {
    let mut fv = filler(label, len.max(0x48));
    fv[0..16].fill(0);
    fv[0x28..0x2c].copy_from_slice(b"_FVH");
    fv
}

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len_u16(len).to_le_bytes()[0]);
    } else if len <= 0xff {
        out.push(0x81);
        out.push(len_u16(len).to_le_bytes()[0]);
    } else {
        out.push(0x82);
        out.extend_from_slice(&len_u16(len).to_be_bytes());
    }
    out.extend_from_slice(content);
    out
}

fn der_seq(parts: &[Vec<u8>]) -> Vec<u8> {
    der(0x30, &parts.concat())
}

fn der_name(cn: &str) -> Vec<u8> {
    let atv = der_seq(&[der(0x06, &[0x55, 0x04, 0x03]), der(0x0c, cn.as_bytes())]);
    der_seq(&[der(0x31, &atv)])
}

/// A syntactically valid X.509 v3 certificate (Ed25519 key, CN-only names) whose key
/// and signature are deterministic filler: parseable, not verifiable.
fn fake_certificate(subject: &str, issuer: &str) -> Vec<u8> {
    let ed25519 = der_seq(&[der(0x06, &[0x2b, 0x65, 0x70])]);
    let mut serial = filler(&format!("serial:{subject}"), 8);
    serial[0] &= 0x7f;
    serial[0] |= 0x01;
    let mut key = vec![0u8];
    key.extend(filler(&format!("key:{subject}"), 32));
    let tbs = der_seq(&[
        der(0xa0, &der(0x02, &[2])),
        der(0x02, &serial),
        ed25519.clone(),
        der_name(issuer),
        der_seq(&[der(0x17, b"240101000000Z"), der(0x17, b"491231235959Z")]),
        der_name(subject),
        der_seq(&[ed25519.clone(), der(0x03, &key)]),
    ]);
    let mut sig = vec![0u8];
    sig.extend(filler(&format!("sig:{subject}"), 64));
    der_seq(&[tbs, ed25519, der(0x03, &sig)])
}

/// One `EFI_SIGNATURE_LIST` of `type_guid` holding `entries` (all the same size).
fn esl(type_guid: &Guid, entries: &[Vec<u8>]) -> Vec<u8> {
    let sig_size = 16 + entries.first().map_or(0, Vec::len);
    let mut out = Vec::new();
    out.extend_from_slice(&type_guid.to_bytes());
    out.extend_from_slice(&len_u32(28 + sig_size * entries.len()).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&len_u32(sig_size).to_le_bytes());
    for entry in entries {
        out.extend_from_slice(&ROOTMARK_OWNER.to_bytes());
        out.extend_from_slice(entry);
    }
    out
}

/// One X.509 `EFI_SIGNATURE_LIST` per (subject, issuer) certificate.
fn x509_esl(certs: &[(&str, &str)]) -> Vec<u8> {
    certs
        .iter()
        .flat_map(|(subject, issuer)| esl(&EFI_CERT_X509, &[fake_certificate(subject, issuer)]))
        .collect()
}

/// One SHA-256 `EFI_SIGNATURE_LIST` with the hashes of `labels`.
fn sha256_esl(labels: &[&str]) -> Vec<u8> {
    let hashes: Vec<Vec<u8>> = labels
        .iter()
        .map(|l| Sha256::digest(l.as_bytes()).to_vec())
        .collect();
    esl(&EFI_CERT_SHA256, &hashes)
}

#[cfg(test)]
mod tests {
    use super::event_type::*;
    use super::*;
    use std::process::Command;

    /// A minimal reader of crypto-agile logs, independent of the writer.
    struct Reader<'a> {
        buf: &'a [u8],
        pos: usize,
    }

    impl<'a> Reader<'a> {
        fn take(&mut self, n: usize) -> &'a [u8] {
            let s = &self.buf[self.pos..self.pos + n];
            self.pos += n;
            s
        }
        fn u8(&mut self) -> u8 {
            self.take(1)[0]
        }
        fn u16(&mut self) -> u16 {
            u16::from_le_bytes(self.take(2).try_into().unwrap())
        }
        fn u32(&mut self) -> u32 {
            u32::from_le_bytes(self.take(4).try_into().unwrap())
        }
        fn done(&self) -> bool {
            self.pos == self.buf.len()
        }
    }

    /// Parses a log: returns (StartupLocality, measured events).
    fn parse_log(bytes: &[u8]) -> (Option<u8>, Vec<MeasuredEvent>) {
        let mut r = Reader { buf: bytes, pos: 0 };
        assert_eq!(r.u32(), 0, "header PCR");
        assert_eq!(r.u32(), EV_NO_ACTION, "header type");
        assert_eq!(r.take(20), &[0u8; 20], "header digest");
        let size = r.u32() as usize;
        let mut s = Reader {
            buf: r.take(size),
            pos: 0,
        };
        assert_eq!(s.take(16), b"Spec ID Event03\0");
        assert_eq!(s.u32(), 0, "platformClass");
        assert_eq!((s.u8(), s.u8(), s.u8(), s.u8()), (0, 2, 0, 2));
        let n = s.u32();
        let mut sizes = BTreeMap::new();
        for _ in 0..n {
            let alg = s.u16();
            let len = s.u16();
            sizes.insert(alg, len as usize);
        }
        assert_eq!(sizes, BTreeMap::from([(0x0004, 20), (0x000B, 32)]));
        assert_eq!(s.u8(), 0, "vendorInfoSize");
        assert!(s.done());

        let mut locality = None;
        let mut events = Vec::new();
        while !r.done() {
            let pcr = r.u32();
            let ty = r.u32();
            let count = r.u32();
            let mut digests = Vec::new();
            for _ in 0..count {
                let alg = r.u16();
                let bank = Bank::from_tpm_alg_id(alg).expect("known alg");
                digests.push((bank, r.take(sizes[&alg]).to_vec()));
            }
            let len = r.u32() as usize;
            let data = r.take(len).to_vec();
            if ty == EV_NO_ACTION {
                assert_eq!(&data[..16], b"StartupLocality\0");
                assert!(digests.iter().all(|(_, d)| d.iter().all(|&b| b == 0)));
                locality = Some(data[16]);
            } else {
                events.push(MeasuredEvent {
                    pcr,
                    event_type: ty,
                    digests,
                    data,
                });
            }
        }
        (locality, events)
    }

    /// Runs `tpm2_eventlog` on the log; returns its YAML output.
    fn tpm2_eventlog(log: &BootLog) -> String {
        let file = tempfile::NamedTempFile::new().unwrap();
        log.write_to(file.path()).unwrap();
        let out = Command::new("tpm2_eventlog")
            .arg(file.path())
            .output()
            .expect("run tpm2_eventlog");
        assert!(
            out.status.success(),
            "tpm2_eventlog failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // tpm2_eventlog checks the digests of events it understands (e.g. GRUB's
        // EV_IPL strings) and warns on stderr when they do not match.
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("WARN"), "tpm2_eventlog warned: {stderr}");
        String::from_utf8(out.stdout).unwrap()
    }

    /// Parses the trailing `pcrs:` section of `tpm2_eventlog` output.
    fn parse_pcrs_section(yaml: &str) -> BTreeMap<String, BTreeMap<u32, Vec<u8>>> {
        let mut banks = BTreeMap::new();
        let mut current: Option<String> = None;
        let mut in_pcrs = false;
        for line in yaml.lines() {
            if line == "pcrs:" {
                in_pcrs = true;
                continue;
            }
            if !in_pcrs {
                continue;
            }
            let trimmed = line.trim();
            if let Some(bank) = trimmed.strip_suffix(':') {
                current = Some(bank.to_owned());
                banks.insert(bank.to_owned(), BTreeMap::new());
            } else if let Some((idx, value)) = trimmed.split_once(':') {
                let bank = current.clone().expect("bank header before values");
                let value = value.trim().trim_start_matches("0x");
                banks
                    .get_mut(&bank)
                    .unwrap()
                    .insert(idx.trim().parse().unwrap(), hex::decode(value).unwrap());
            }
        }
        banks
    }

    fn bank_name(bank: Bank) -> &'static str {
        match bank {
            Bank::Sha1 => "sha1",
            Bank::Sha256 => "sha256",
        }
    }

    #[test]
    fn log_is_accepted_by_tpm2_eventlog() {
        let profile = BootProfile::default();
        let log = BootLog::simulate(&profile);
        let yaml = tpm2_eventlog(&log);

        assert!(yaml.contains("EV_EFI_BOOT_SERVICES_APPLICATION"));
        assert!(yaml.contains("Spec ID Event03"));
        for bank in Bank::ALL {
            let d = hex::encode(bank.digest(&profile.bootloader));
            assert!(yaml.contains(&d), "bootloader {bank:?} digest {d} missing");
        }
        assert!(yaml.contains("UnicodeName: SecureBoot"));
        assert!(yaml.contains("kernel_cmdline: /boot/vmlinuz-6.8.0-31-generic"));

        let pcrs = parse_pcrs_section(&yaml);
        assert_eq!(pcrs.len(), 2, "{pcrs:?}");
        for bank in Bank::ALL {
            assert_eq!(pcrs[bank_name(bank)], log.expected_pcrs(bank), "{bank:?}");
        }
    }

    #[test]
    fn tpm2_eventlog_accepts_insecure_boot_too() {
        let profile = BootProfile {
            secure_boot: false,
            firmware_blobs: vec![],
            ..BootProfile::default()
        };
        let log = BootLog::simulate(&profile);
        let pcrs = parse_pcrs_section(&tpm2_eventlog(&log));
        for bank in Bank::ALL {
            assert_eq!(pcrs[bank_name(bank)], log.expected_pcrs(bank), "{bank:?}");
        }
    }

    #[test]
    fn expected_pcrs_follow_extend_rule() {
        let log = BootLog::simulate(&BootProfile::default());

        // Independent replay with the hash crates directly.
        let mut sha1: BTreeMap<u32, [u8; 20]> = BTreeMap::new();
        let mut sha256: BTreeMap<u32, [u8; 32]> = BTreeMap::new();
        for e in log.events() {
            assert_eq!(e.digests.len(), 2);
            let old = sha1.entry(e.pcr).or_insert([0; 20]);
            let mut h = Sha1::new();
            h.update(*old);
            h.update(&e.digests[0].1);
            *old = h.finalize().into();
            let old = sha256.entry(e.pcr).or_insert([0; 32]);
            let mut h = Sha256::new();
            h.update(*old);
            h.update(&e.digests[1].1);
            *old = h.finalize().into();
        }
        let to_vec = |m: BTreeMap<u32, Vec<u8>>| m;
        assert_eq!(
            log.expected_pcrs(Bank::Sha1),
            to_vec(sha1.into_iter().map(|(k, v)| (k, v.to_vec())).collect())
        );
        assert_eq!(
            log.expected_pcrs(Bank::Sha256),
            to_vec(sha256.into_iter().map(|(k, v)| (k, v.to_vec())).collect())
        );

        // PCRs 2, 3, 6 only hold a separator: the well-known values of real logs.
        for pcr in [2, 3, 6] {
            assert_eq!(
                hex::encode(&log.expected_pcrs(Bank::Sha1)[&pcr]),
                "b2a83b0ebf2f8374299a5b2bdfc31ea955ad7236"
            );
            assert_eq!(
                hex::encode(&log.expected_pcrs(Bank::Sha256)[&pcr]),
                "3d458cfe55cc03ea1f443f1562beec8df51c75e14a9fcf9a7234a13f198e7969"
            );
        }

        // PCR 5 from scratch: separator, then the two ExitBootServices actions.
        let mut pcr5 = [0u8; 32].to_vec();
        for m in [
            &[0u8; 4][..],
            b"Exit Boot Services Invocation",
            b"Exit Boot Services Returned with Success",
        ] {
            let mut h = Sha256::new();
            h.update(&pcr5);
            h.update(Sha256::digest(m));
            pcr5 = h.finalize().to_vec();
        }
        assert_eq!(log.expected_pcrs(Bank::Sha256)[&5], pcr5);

        assert_eq!(log.boot_pcr_indexes(), vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    }

    #[test]
    fn digests_match_event_semantics() {
        let p = BootProfile::default();
        let log = BootLog::simulate(&p);
        let ev = log.events();
        let h = |d: &[u8]| Bank::Sha256.digest(d);
        let sha256 = |e: &MeasuredEvent| e.digest(Bank::Sha256).unwrap().to_vec();

        // S-CRTM version: UTF-16LE + NUL, digest over the data.
        assert_eq!(ev[0].event_type, EV_S_CRTM_VERSION);
        assert_eq!(ev[0].data, utf16z(&p.firmware_version));
        assert_eq!(sha256(&ev[0]), h(&ev[0].data));
        // Firmware blobs: {base, length}, digest over contents.
        for (i, blob) in p.firmware_blobs.iter().enumerate() {
            let e = &ev[1 + i];
            assert_eq!(e.event_type, EV_EFI_PLATFORM_FIRMWARE_BLOB);
            assert_eq!(e.data.len(), 16);
            assert_eq!(&e.data[8..], &(blob.len() as u64).to_le_bytes());
            assert_eq!(sha256(e), h(blob));
        }
        // SecureBoot driver config: whole UEFI_VARIABLE_DATA hashed.
        let sb = &ev[1 + p.firmware_blobs.len()];
        assert_eq!((sb.pcr, sb.event_type), (7, EV_EFI_VARIABLE_DRIVER_CONFIG));
        assert_eq!(
            &sb.data[..16],
            &[
                0x61, 0xdf, 0xe4, 0x8b, 0xca, 0x93, 0xd2, 0x11, 0xaa, 0x0d, 0x00, 0xe0, 0x98, 0x03,
                0x2b, 0x8c
            ]
        );
        assert_eq!(sb.data.len(), 16 + 8 + 8 + 20 + 1);
        assert_eq!(*sb.data.last().unwrap(), 1);
        assert_eq!(sha256(sb), h(&sb.data));
        // Boot variables: digest over the variable data only.
        for e in ev.iter().filter(|e| e.event_type == EV_EFI_VARIABLE_BOOT) {
            let name_len = u64::from_le_bytes(e.data[16..24].try_into().unwrap()) as usize;
            assert_eq!(sha256(e), h(&e.data[32 + 2 * name_len..]));
        }
        // Boot applications: digest over the image.
        let apps: Vec<_> = ev
            .iter()
            .filter(|e| e.event_type == EV_EFI_BOOT_SERVICES_APPLICATION)
            .collect();
        assert_eq!(apps.len(), 2);
        assert_eq!(sha256(apps[0]), h(&p.bootloader));
        assert_eq!(sha256(apps[1]), h(&p.kernel));
        // GRUB: cmdline digest over the string without NUL; kernel file over contents.
        let ipl: Vec<_> = ev.iter().filter(|e| e.event_type == EV_IPL).collect();
        assert_eq!(ipl[0].pcr, 9);
        assert_eq!(ipl[0].data, b"/boot/vmlinuz-6.8.0-31-generic\0");
        assert_eq!(sha256(ipl[0]), h(&p.kernel));
        assert_eq!(ipl[1].pcr, 8);
        let cmdline = format!("kernel_cmdline: {}", p.kernel_cmdline);
        assert_eq!(ipl[1].data, [cmdline.as_bytes(), b"\0"].concat());
        assert_eq!(sha256(ipl[1]), h(p.kernel_cmdline.as_bytes()));
        // Separators before the first boot application in every PCR 0..=7.
        let first_app = ev
            .iter()
            .position(|e| e.event_type == EV_EFI_BOOT_SERVICES_APPLICATION)
            .unwrap();
        for pcr in 0..=7 {
            let seps: Vec<_> = ev
                .iter()
                .enumerate()
                .filter(|(_, e)| e.pcr == pcr && e.event_type == EV_SEPARATOR)
                .collect();
            assert_eq!(seps.len(), 1, "pcr {pcr}");
            assert!(seps[0].0 < first_app);
            assert_eq!(seps[0].1.data, [0u8; 4]);
        }
        // The authority event carries the first db signature (owner + cert DER).
        let auth = ev
            .iter()
            .find(|e| e.event_type == EV_EFI_VARIABLE_AUTHORITY)
            .unwrap();
        // 32-byte UEFI_VARIABLE_DATA header + "db" in UTF-16, then EFI_SIGNATURE_DATA.
        assert_eq!(&auth.data[36..52], &ROOTMARK_OWNER.to_bytes());
        assert_eq!(auth.data[52], 0x30);
        assert_eq!(auth.data[36..], *first_signature_data(&p.db).unwrap());
    }

    #[test]
    fn tampered_kernel_changes_only_pcr4() {
        // Only the kernel's PCR 4 boot-application event and GRUB's PCR 9 file
        // measurement of the same kernel change; firmware and policy PCRs do not.
        let good = BootLog::simulate(&BootProfile::default());
        let bad = BootLog::simulate(&BootProfile::default().tampered_kernel());
        for bank in Bank::ALL {
            let (g, b) = (good.expected_pcrs(bank), bad.expected_pcrs(bank));
            assert_eq!(g.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
            for pcr in g.keys() {
                if [4, 9].contains(pcr) {
                    assert_ne!(g[pcr], b[pcr], "{bank:?} PCR {pcr}");
                } else {
                    assert_eq!(g[pcr], b[pcr], "{bank:?} PCR {pcr}");
                }
            }
            assert_eq!(g[&0], b[&0]);
            assert_eq!(g[&7], b[&7]);
        }
    }

    #[test]
    fn secure_boot_disabled_changes_pcr7() {
        let on = BootLog::simulate(&BootProfile::default());
        let off = BootLog::simulate(&BootProfile {
            secure_boot: false,
            ..BootProfile::default()
        });
        for bank in Bank::ALL {
            let (a, b) = (on.expected_pcrs(bank), off.expected_pcrs(bank));
            for pcr in a.keys() {
                if *pcr == 7 {
                    assert_ne!(a[pcr], b[pcr], "{bank:?}");
                } else {
                    assert_eq!(a[pcr], b[pcr], "{bank:?} PCR {pcr}");
                }
            }
        }
        let sb = |log: &BootLog| {
            log.events()
                .iter()
                .find(|e| e.event_type == EV_EFI_VARIABLE_DRIVER_CONFIG)
                .unwrap()
                .data
                .last()
                .copied()
        };
        assert_eq!(sb(&on), Some(1));
        assert_eq!(sb(&off), Some(0));
        assert!(
            !off.events()
                .iter()
                .any(|e| e.event_type == EV_EFI_VARIABLE_AUTHORITY)
        );
    }

    #[test]
    fn log_round_trips_digest_per_bank() {
        for profile in [
            BootProfile::default(),
            BootProfile::default().tampered_kernel(),
            BootProfile {
                secure_boot: false,
                startup_locality: Some(3),
                ..BootProfile::default()
            },
        ] {
            let log = BootLog::simulate(&profile);
            let (locality, events) = parse_log(&log.to_bytes());
            assert_eq!(locality, profile.startup_locality);
            assert_eq!(events, log.events());
            for e in &events {
                assert_eq!(
                    e.digests.iter().map(|(b, _)| *b).collect::<Vec<_>>(),
                    Bank::ALL
                );
                for (bank, d) in &e.digests {
                    assert_eq!(d.len(), bank.digest_len());
                }
            }
        }
    }

    #[test]
    fn startup_locality_sets_pcr0_initial_value() {
        let plain = BootLog::simulate(&BootProfile::default());
        let log = BootLog::simulate(&BootProfile {
            startup_locality: Some(3),
            ..BootProfile::default()
        });
        assert_eq!(log.events(), plain.events());
        for bank in Bank::ALL {
            let mut pcr0 = vec![0u8; bank.digest_len()];
            pcr0[bank.digest_len() - 1] = 3;
            for e in log.events().iter().filter(|e| e.pcr == 0) {
                pcr0 = bank.extend(&pcr0, e.digest(bank).unwrap());
            }
            let (a, b) = (log.expected_pcrs(bank), plain.expected_pcrs(bank));
            assert_eq!(a[&0], pcr0);
            assert_ne!(a[&0], b[&0]);
            for pcr in 1..=9 {
                assert_eq!(a[&pcr], b[&pcr]);
            }
        }
        // tpm2_eventlog accepts the event (it shows it as raw hex: "StartupLocality\0"
        // + 0x03) and agrees on PCRs 1..=9. For PCR 0, tpm2-tools up to 5.5 wrongly
        // extends EV_NO_ACTION digests (all zeros) and ignores the locality
        // (tpm2-tools issues #3224/#3146, fixed by PRs #3230/#3242), so accept either
        // the spec value or that one.
        let yaml = tpm2_eventlog(&log);
        assert!(
            yaml.contains("537461727475704c6f63616c6974790003"),
            "{yaml}"
        );
        let pcrs = parse_pcrs_section(&yaml);
        for bank in Bank::ALL {
            let mut tool = pcrs[bank_name(bank)].clone();
            let tool_pcr0 = tool.remove(&0).unwrap();
            let mut ours = log.expected_pcrs(bank);
            let ours_pcr0 = ours.remove(&0).unwrap();
            assert_eq!(tool, ours, "{bank:?}");
            let zero = vec![0u8; bank.digest_len()];
            let mut old_tool_pcr0 = bank.extend(&zero, &zero);
            for e in log.events().iter().filter(|e| e.pcr == 0) {
                old_tool_pcr0 = bank.extend(&old_tool_pcr0, e.digest(bank).unwrap());
            }
            assert!(
                tool_pcr0 == ours_pcr0 || tool_pcr0 == old_tool_pcr0,
                "{bank:?} PCR 0"
            );
        }
    }

    #[test]
    fn bank_constants() {
        assert_eq!(Bank::Sha1.tpm_alg_id(), 0x0004);
        assert_eq!(Bank::Sha256.tpm_alg_id(), 0x000B);
        assert_eq!(Bank::Sha1.digest(b"").len(), Bank::Sha1.digest_len());
        assert_eq!(Bank::Sha256.digest(b"").len(), Bank::Sha256.digest_len());
        assert_eq!(Bank::from_tpm_alg_id(0x000B), Some(Bank::Sha256));
        assert_eq!(Bank::from_tpm_alg_id(0x000C), None);
    }
}
