//! Event-log parsing, replay and typed views, against real logs from
//! google/go-attestation (see testdata/eventlogs/README.md) and against
//! malformed logs built here.
#![allow(clippy::unwrap_used)] // tests and benches fail loudly by design

use std::collections::BTreeMap;
use std::path::PathBuf;

use rootmark_issuer::eventlog::events::{EV_EFI_ACTION, EV_NO_ACTION, EV_SEPARATOR};
use rootmark_issuer::eventlog::{
    EventLog, EventLogError, EventLogLimits, LogFormat, ReplayMismatch, compare_with_quote,
    log_digest, parse, replay_json, replay_json_pretty,
};
use rootmark_issuer::pcr::PcrValues;
use rootmark_issuer::tpm::HashAlg;

const SHA1: u16 = 0x0004;
const SHA256: u16 = 0x000B;
const SHA384: u16 = 0x000C;
const SM3_256: u16 = 0x0012;

// ---------------------------------------------------------------- helpers

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/eventlogs")
        .join(name)
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixture_path(name)).unwrap_or_else(|e| panic!("reading {name}: {e}"))
}

fn parse_ok(bytes: &[u8]) -> EventLog {
    parse(bytes, &EventLogLimits::default()).unwrap_or_else(|e| panic!("parse failed: {e}"))
}

fn parse_err(bytes: &[u8]) -> EventLogError {
    match parse(bytes, &EventLogLimits::default()) {
        Ok(log) => panic!("parsed a bad log into {} events", log.events().len()),
        Err(e) => e,
    }
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s.trim_start_matches("0x")).unwrap_or_else(|e| panic!("bad hex {s:?}: {e}"))
}

/// Reads a `*.pcrs.json` file: `{"pcrs": {"sha1": {"0": "hex", …}, …}}`.
fn pcrs_json(name: &str) -> PcrValues {
    let json: serde_json::Value = serde_json::from_slice(&fixture(name)).expect("valid JSON");
    let mut out = PcrValues::new();
    for (bank, pcrs) in json["pcrs"].as_object().expect("pcrs object") {
        let bank: HashAlg = bank.parse().expect("bank name");
        for (pcr, value) in pcrs.as_object().expect("bank object") {
            let value = unhex(value.as_str().expect("hex string"));
            out.entry(bank)
                .or_default()
                .insert(pcr.parse().expect("PCR index"), value);
        }
    }
    out
}

/// Keeps only the (bank, PCR) pairs of `values` that `replay` has.
fn restrict_to(values: &PcrValues, replay: &PcrValues) -> PcrValues {
    values
        .iter()
        .filter_map(|(bank, pcrs)| {
            let replayed = replay.get(bank)?;
            let kept: BTreeMap<u32, Vec<u8>> = pcrs
                .iter()
                .filter(|(pcr, _)| replayed.contains_key(pcr))
                .map(|(p, v)| (*p, v.clone()))
                .collect();
            Some((*bank, kept))
        })
        .collect()
}

/// Standard base64 (RFC 4648 with padding), enough for the test fixtures.
fn base64_decode(text: &str) -> Vec<u8> {
    fn value(c: u8) -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c:#x}"),
        }
    }
    let clean: Vec<u8> = text.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    let mut out = Vec::with_capacity(clean.len() / 4 * 3);
    for chunk in clean.chunks(4) {
        let data: Vec<u8> = chunk.iter().copied().filter(|&c| c != b'=').collect();
        let bits = data
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &c)| acc | (value(c) << (18 - 6 * i)));
        let bytes = bits.to_be_bytes();
        out.extend_from_slice(&bytes[1..data.len()]);
    }
    out
}

// Builders for synthetic logs.

fn legacy_event(pcr: u32, event_type: u32, digest: [u8; 20], data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&pcr.to_le_bytes());
    out.extend_from_slice(&event_type.to_le_bytes());
    out.extend_from_slice(&digest);
    out.extend_from_slice(&u32::try_from(data.len()).expect("small").to_le_bytes());
    out.extend_from_slice(data);
    out
}

fn spec_id_header(algs: &[(u16, u16)]) -> Vec<u8> {
    let mut data = b"Spec ID Event03\0".to_vec();
    data.extend_from_slice(&0u32.to_le_bytes()); // platformClass
    data.extend_from_slice(&[0, 2, 0, 2]); // minor, major, errata, uintnSize
    data.extend_from_slice(&u32::try_from(algs.len()).expect("small").to_le_bytes());
    for (id, size) in algs {
        data.extend_from_slice(&id.to_le_bytes());
        data.extend_from_slice(&size.to_le_bytes());
    }
    data.push(0); // vendorInfoSize
    legacy_event(0, EV_NO_ACTION, [0; 20], &data)
}

fn agile_event(pcr: u32, event_type: u32, digests: &[(u16, Vec<u8>)], data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&pcr.to_le_bytes());
    out.extend_from_slice(&event_type.to_le_bytes());
    out.extend_from_slice(&u32::try_from(digests.len()).expect("small").to_le_bytes());
    for (id, digest) in digests {
        out.extend_from_slice(&id.to_le_bytes());
        out.extend_from_slice(digest);
    }
    out.extend_from_slice(&u32::try_from(data.len()).expect("small").to_le_bytes());
    out.extend_from_slice(data);
    out
}

fn startup_locality_data(locality: u8) -> Vec<u8> {
    let mut data = b"StartupLocality\0".to_vec();
    data.push(locality);
    data
}

fn sha1_of(data: &[u8]) -> [u8; 20] {
    HashAlg::Sha1.hash(data).try_into().expect("20 bytes")
}

/// A deterministic xorshift generator, so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n).expect("fits")).expect("fits")
    }
}

/// Byte length of each event record of a parsed log, to know where events end.
fn record_len(log: &EventLog, index: usize) -> usize {
    let event = &log.events()[index];
    let fixed = match (log.format(), index) {
        (LogFormat::Sha1Legacy, _) | (_, 0) => 32,
        _ => {
            let algs = &log.spec_id().expect("crypto-agile").algorithms;
            12 + algs
                .iter()
                .map(|a| 2 + usize::from(a.digest_size))
                .sum::<usize>()
                + 4
        }
    };
    fixed + event.data().len()
}

// ---------------------------------------------------------------- real logs

#[test]
fn sb_cert_eventlog_replays_to_tpm_pcrs() {
    let bytes = fixture("sb_cert_eventlog");
    let log = parse_ok(&bytes);
    assert_eq!(log.format(), LogFormat::CryptoAgile);
    assert_eq!(
        log.banks(),
        [HashAlg::Sha1, HashAlg::Sha256, HashAlg::Sha384]
    );
    assert_eq!(log.startup_locality(), None);

    let replay = log.replay();
    let tpm = pcrs_json("sb_cert_eventlog.pcrs.json");
    let mut compared = 0;
    for bank in [HashAlg::Sha1, HashAlg::Sha256] {
        let replayed = &replay[&bank];
        assert_eq!(
            replayed.keys().copied().collect::<Vec<_>>(),
            [0, 4, 5, 7],
            "{bank} PCRs with events"
        );
        for (pcr, value) in replayed {
            assert_eq!(
                hex::encode(value),
                hex::encode(&tpm[&bank][pcr]),
                "{bank} PCR {pcr}"
            );
            compared += 1;
        }
    }
    assert_eq!(compared, 8);

    // The full quoted selection (PCR 0-23, both banks): everything matches
    // except PCR 10, which IMA extended after boot and this log cannot explain.
    match log.check_quote(&tpm) {
        Err(ReplayMismatch::NoEvents {
            bank: HashAlg::Sha1,
            pcr: 10,
            ..
        }) => {}
        other => panic!("expected PCR 10 without events, got {other:?}"),
    }
    let mut without_ima = tpm.clone();
    for pcrs in without_ima.values_mut() {
        pcrs.remove(&10);
    }
    // Unextended PCRs (zeros, and all-ones 17-22) are consistent with a log
    // that has no events for them.
    // check_quote replays just the quoted banks.
    let mut quoted_banks = replay.clone();
    quoted_banks.remove(&HashAlg::Sha384);
    assert_eq!(log.check_quote(&without_ima), Ok(quoted_banks.clone()));
    assert_eq!(
        log.replay_banks(&[HashAlg::Sha256, HashAlg::Sha1, HashAlg::Sha512]),
        quoted_banks
    );
    assert_eq!(compare_with_quote(&replay, &without_ima), Ok(()));
}

#[test]
fn option_rom_eventlog_replays_to_tpm_pcrs() {
    let log = parse_ok(&fixture("option_rom_eventlog"));
    assert_eq!(log.format(), LogFormat::Sha1Legacy);
    assert_eq!(log.banks(), [HashAlg::Sha1]);
    assert!(log.spec_id().is_none());

    let replay = log.replay();
    let tpm = pcrs_json("option_rom_eventlog.pcrs.json");
    for pcr in 0..=7 {
        assert_eq!(
            hex::encode(&replay[&HashAlg::Sha1][&pcr]),
            hex::encode(&tpm[&HashAlg::Sha1][&pcr]),
            "sha1 PCR {pcr}"
        );
    }
    assert_eq!(compare_with_quote(&replay, &tpm), Ok(()));
    // Windows boot manager events extend PCRs 11-14 too.
    assert_eq!(
        replay[&HashAlg::Sha1].keys().copied().collect::<Vec<_>>(),
        [0, 1, 2, 3, 4, 5, 6, 7, 11, 12, 13, 14]
    );
}

#[test]
fn windows_gcp_shielded_vm_log_replays_to_reported_pcrs() {
    let dump: serde_json::Value =
        serde_json::from_slice(&fixture("windows_gcp_shielded_vm.json")).expect("JSON");
    let raw = base64_decode(dump["Log"]["Raw"].as_str().expect("Log.Raw"));
    let log = parse_ok(&raw);
    assert_eq!(log.format(), LogFormat::Sha1Legacy);

    // DigestAlg is Go's crypto.Hash: 3 = SHA1, 5 = SHA256.
    let mut reported = PcrValues::new();
    for pcr in dump["Log"]["PCRs"].as_array().expect("Log.PCRs") {
        assert_eq!(pcr["DigestAlg"], 3, "the dump holds SHA-1 PCRs only");
        let index = u32::try_from(pcr["Index"].as_u64().expect("Index")).expect("small");
        let digest = base64_decode(pcr["Digest"].as_str().expect("Digest"));
        reported
            .entry(HashAlg::Sha1)
            .or_default()
            .insert(index, digest);
    }
    assert_eq!(reported[&HashAlg::Sha1].len(), 24);

    // Every reported PCR is explained: replayed ones match, the others are at
    // their reset value.
    let replay = log.check_quote(&reported).unwrap_or_else(|e| panic!("{e}"));
    let replayed: Vec<u32> = replay[&HashAlg::Sha1].keys().copied().collect();
    assert_eq!(replayed, [0, 4, 5, 7, 11, 12, 13, 14]);
    for pcr in replayed {
        assert_eq!(
            replay[&HashAlg::Sha1][&pcr],
            reported[&HashAlg::Sha1][&pcr],
            "PCR {pcr}"
        );
    }
}

#[test]
fn no_secure_boot_logs_read_secure_boot_disabled() {
    for name in [
        "ubuntu_2104_shielded_vm_no_secure_boot_eventlog",
        "coreos_36_shielded_vm_no_secure_boot_eventlog",
    ] {
        let log = parse_ok(&fixture(name));
        assert_eq!(log.format(), LogFormat::CryptoAgile, "{name}");
        assert_eq!(log.secure_boot(), Some(false), "{name}");
        let sb: Vec<_> = log
            .efi_variables()
            .into_iter()
            .filter(|v| v.name == "SecureBoot")
            .collect();
        assert_eq!(sb.len(), 1, "{name}");
        assert_eq!(
            (sb[0].pcr, sb[0].data.as_slice(), sb[0].digests_match_data),
            (7, &[0u8][..], true)
        );
    }
}

#[test]
fn sb_cert_eventlog_reads_secure_boot_enabled() {
    // Its SecureBoot variable holds 01 (tpm2_eventlog agrees).
    assert_eq!(
        parse_ok(&fixture("sb_cert_eventlog")).secure_boot(),
        Some(true)
    );
}

#[test]
fn secure_boot_with_data_not_matching_its_digest_reads_unknown() {
    // Flip the SecureBoot value from 0 to 1 without fixing the digests: the
    // replay still matches the TPM, so the data must not be believed.
    let mut bytes = fixture("ubuntu_2104_shielded_vm_no_secure_boot_eventlog");
    let log = parse_ok(&bytes);
    let sb = log
        .efi_variables()
        .into_iter()
        .find(|v| v.name == "SecureBoot")
        .expect("SecureBoot event");
    let event = &log.events()[sb.index];
    let value_offset = event.offset + record_len(&log, sb.index) - 1;
    assert_eq!(bytes[value_offset], 0);
    bytes[value_offset] = 1;
    let tampered = parse_ok(&bytes);
    assert_eq!(tampered.replay(), log.replay());
    assert_eq!(tampered.secure_boot(), None);
}

#[test]
fn ebs_event_missing_eventlog_pcr5_mismatch_is_reported() {
    let log = parse_ok(&fixture("ebs_event_missing_eventlog"));
    assert_eq!(log.format(), LogFormat::Sha1Legacy);

    // The firmware measured "Exit Boot Services Invocation" and "… Returned
    // with Success" into PCR 5 after handing the log over, so PCR 5 lacks them.
    let pcr5_actions: Vec<String> = log
        .events()
        .iter()
        .filter(|e| e.pcr == 5 && e.event_type == EV_EFI_ACTION)
        .map(|e| String::from_utf8_lossy(e.data()).into_owned())
        .collect();
    assert_eq!(pcr5_actions, ["Calling EFI Application from Boot Option"]);
    // Unlike a complete log of the same kind:
    let complete = parse_ok(&fixture("ubuntu_2104_shielded_vm_no_secure_boot_eventlog"));
    assert!(
        complete
            .events()
            .iter()
            .any(|e| e.pcr == 5 && e.data() == b"Exit Boot Services Invocation")
    );

    // SHA-1 PCR 5 as read from that machine's TPM (go-attestation,
    // attest/eventlog_test.go TestEBSVerifyWorkaround).
    let tpm_pcr5 = unhex("31245808d6d35849bc394f6343f2b3ff908ed5e3");
    let quoted = PcrValues::from([(HashAlg::Sha1, BTreeMap::from([(5, tpm_pcr5.clone())]))]);
    let replay = log.replay();
    match log.check_quote(&quoted) {
        Err(ReplayMismatch::ValueDiffers {
            bank: HashAlg::Sha1,
            pcr: 5,
            replayed,
            quoted,
        }) => {
            assert_eq!(replayed, replay[&HashAlg::Sha1][&5]);
            assert_eq!(quoted, tpm_pcr5);
        }
        other => panic!("expected a PCR 5 mismatch, got {other:?}"),
    }
    // …and the two missing actions are exactly the difference.
    let mut pcr5 = replay[&HashAlg::Sha1][&5].clone();
    for action in [
        &b"Exit Boot Services Invocation"[..],
        b"Exit Boot Services Returned with Success",
    ] {
        pcr5 = HashAlg::Sha1.extend(&pcr5, &HashAlg::Sha1.hash(action));
    }
    assert_eq!(pcr5, tpm_pcr5);
}

#[test]
fn crypto_agile_eventlog_parses_sha256_only() {
    let log = parse_ok(&fixture("crypto_agile_eventlog"));
    assert_eq!(log.format(), LogFormat::CryptoAgile);
    assert_eq!(log.banks(), [HashAlg::Sha256]);
    let spec = log.spec_id().expect("Spec ID header");
    assert_eq!(spec.algorithms.len(), 1);
    assert_eq!(
        (spec.algorithms[0].alg_id, spec.algorithms[0].digest_size),
        (SHA256, 32)
    );
    assert_eq!(log.events().len(), 27);
    for event in log.events().iter().filter(|e| e.is_measured()) {
        let digests: Vec<(HashAlg, &[u8])> = event.digests().collect();
        assert_eq!(digests.len(), 1, "event {}", event.index);
        assert_eq!(digests[0].0, HashAlg::Sha256);
        assert_eq!(digests[0].1.len(), 32);
    }
    // Values from tpm2_eventlog (tpm2-tools), an independent implementation.
    let expected = [
        "1536de221b2187a421602cd81f43aa04496b0bd5a424d3b25b637a942080d0fa",
        "f883c25efc566190a8449b54717cacb3f35fc83e4f8e19330b3e32a2b57bb03f",
        "3d458cfe55cc03ea1f443f1562beec8df51c75e14a9fcf9a7234a13f198e7969",
        "3d458cfe55cc03ea1f443f1562beec8df51c75e14a9fcf9a7234a13f198e7969",
        "b0af298ea2ca63fe39d0f9887948f8c9ccedd1cca90b6ed20f0aa1f9cbd8504e",
        "3f2855fc9db5201707a42708e00f9f54ebf78e250152decbf5086cab1690add8",
        "3d458cfe55cc03ea1f443f1562beec8df51c75e14a9fcf9a7234a13f198e7969",
        "3d6207f9a2c3fa1db729f06e71b09d2e7ca7c0c198f6c1410c2186bbe2cc1826",
    ];
    let replay = log.replay();
    assert_eq!(
        replay.keys().copied().collect::<Vec<_>>(),
        [HashAlg::Sha256]
    );
    let got: Vec<String> = replay[&HashAlg::Sha256].values().map(hex::encode).collect();
    assert_eq!(got, expected);
    // A quote over a bank the log does not carry cannot be checked.
    let sha1_quote = PcrValues::from([(HashAlg::Sha1, BTreeMap::from([(0, vec![0; 20])]))]);
    let err = compare_with_quote(&replay, &sha1_quote).expect_err("no sha1 bank");
    assert_eq!(
        err,
        ReplayMismatch::BankNotInLog {
            bank: HashAlg::Sha1
        }
    );
    assert_eq!(
        err.to_string(),
        "the quote selects sha1 PCRs but the log carries no sha1 bank"
    );
}

#[test]
fn short_no_action_eventlog_sets_pcr0_locality_3() {
    let bytes = fixture("short_no_action_eventlog");
    let log = parse_ok(&bytes);
    assert_eq!(log.format(), LogFormat::Sha1Legacy);
    assert_eq!(log.startup_locality(), Some(3));
    assert_eq!(log.events().len(), 1);
    assert!(!log.events()[0].is_measured());
    // Nothing measured: the SHA-1 bank is there, without PCRs.
    assert_eq!(
        log.replay(),
        PcrValues::from([(HashAlg::Sha1, BTreeMap::new())])
    );

    // PCR 0 at its locality-3 reset value is what this log predicts…
    let mut loc3 = vec![0u8; 20];
    loc3[19] = 3;
    let quoted = PcrValues::from([(HashAlg::Sha1, BTreeMap::from([(0, loc3.clone())]))]);
    assert!(log.check_quote(&quoted).is_ok());

    // …and the first PCR 0 measurement extends 00…03, not zeros.
    let digest = sha1_of(b"S-CRTM version");
    let mut extended = bytes.clone();
    extended.extend(legacy_event(0, 8, digest, b"S-CRTM version"));
    let log = parse_ok(&extended);
    let replay = log.replay();
    assert_eq!(
        replay[&HashAlg::Sha1][&0],
        HashAlg::Sha1.extend(&loc3, &digest)
    );
    assert_ne!(
        replay[&HashAlg::Sha1][&0],
        HashAlg::Sha1.extend(&[0; 20], &digest)
    );
}

#[test]
fn startup_locality_in_crypto_agile_log_sets_pcr0_of_every_bank() {
    let d1 = sha1_of(b"x").to_vec();
    let d256 = HashAlg::Sha256.hash(b"x");
    let mut bytes = spec_id_header(&[(SHA1, 20), (SHA256, 32)]);
    bytes.extend(agile_event(
        0,
        EV_NO_ACTION,
        &[(SHA1, vec![0; 20]), (SHA256, vec![0; 32])],
        &startup_locality_data(3),
    ));
    bytes.extend(agile_event(
        0,
        8,
        &[(SHA256, d256.clone()), (SHA1, d1.clone())],
        b"x",
    ));
    let log = parse_ok(&bytes);
    assert_eq!(log.startup_locality(), Some(3));
    let replay = log.replay();
    let mut init1 = vec![0u8; 20];
    init1[19] = 3;
    let mut init256 = vec![0u8; 32];
    init256[31] = 3;
    assert_eq!(
        replay[&HashAlg::Sha1][&0],
        HashAlg::Sha1.extend(&init1, &d1)
    );
    assert_eq!(
        replay[&HashAlg::Sha256][&0],
        HashAlg::Sha256.extend(&init256, &d256)
    );
}

#[test]
fn replay_agrees_with_tpm2_eventlog() {
    // tpm2_eventlog (tpm2-tools) is an independent replay; skip where absent.
    for name in [
        "sb_cert_eventlog",
        "crypto_agile_eventlog",
        "ubuntu_2104_shielded_vm_no_secure_boot_eventlog",
        "coreos_36_shielded_vm_no_secure_boot_eventlog",
    ] {
        let output = match std::process::Command::new("tpm2_eventlog")
            .arg(fixture_path(name))
            .output()
        {
            Ok(output) if output.status.success() => output,
            Ok(output) => panic!(
                "tpm2_eventlog {name}: {}",
                String::from_utf8_lossy(&output.stderr)
            ),
            Err(e) => {
                eprintln!("skipping the tpm2_eventlog cross-check: {e}");
                return;
            }
        };
        let yaml = String::from_utf8(output.stdout).expect("UTF-8");
        let mut theirs = PcrValues::new();
        let mut bank = None;
        for line in yaml.lines().skip_while(|l| *l != "pcrs:").skip(1) {
            let trimmed = line.trim();
            if let Some(name) = trimmed.strip_suffix(':') {
                bank = Some(name.parse::<HashAlg>().expect("bank"));
            } else if let Some((pcr, value)) = trimmed.split_once(':') {
                let bank = bank.expect("bank before PCRs");
                theirs
                    .entry(bank)
                    .or_default()
                    .insert(pcr.trim().parse().expect("PCR"), unhex(value.trim()));
            }
        }
        let ours = parse_ok(&fixture(name)).replay();
        assert!(!theirs.is_empty(), "{name}: no pcrs section");
        assert_eq!(ours, theirs, "{name}");
    }
}

// ---------------------------------------------------------------- views

#[test]
fn typed_views_of_real_logs() {
    let ubuntu = parse_ok(&fixture("ubuntu_2104_shielded_vm_no_secure_boot_eventlog"));
    let apps = ubuntu.boot_applications();
    let paths: Vec<_> = apps.iter().map(|a| a.file_path.as_deref()).collect();
    assert_eq!(
        paths,
        [
            Some("\\EFI\\ubuntu\\shimx64.efi"),
            Some("\\EFI\\ubuntu\\grubx64.efi")
        ]
    );
    for app in &apps {
        let event = &ubuntu.events()[app.index];
        assert_eq!((event.pcr, app.digests.len()), (4, 3));
        assert_eq!(app.digest(HashAlg::Sha256), event.digest(HashAlg::Sha256));
        assert!(app.device_path.is_some());
    }

    let ipl = ubuntu.ipl_strings();
    assert!(
        ipl.iter()
            .any(|(pcr, s)| *pcr == 8 && s.starts_with("kernel_cmdline: ")),
        "{ipl:?}"
    );
    assert!(ipl.contains(&(9, "(hd0,gpt15)/EFI/ubuntu/grub.cfg".to_owned())));
    assert!(ipl.iter().all(|(_, s)| !s.ends_with('\0')));

    for name in [
        "sb_cert_eventlog",
        "ubuntu_2104_shielded_vm_no_secure_boot_eventlog",
        "coreos_36_shielded_vm_no_secure_boot_eventlog",
        "crypto_agile_eventlog",
        "ebs_event_missing_eventlog",
    ] {
        let log = parse_ok(&fixture(name));
        let separators = log.separators();
        assert!(!separators.is_empty(), "{name}");
        assert!(
            separators.iter().all(|(_, standard)| *standard),
            "{name}: {separators:?}"
        );
    }
    // Windows' boot manager separators on PCRs 12-14 carry "WBCL"-style data,
    // not the firmware's 00000000.
    let windows = parse_ok(&fixture("option_rom_eventlog"));
    let odd: Vec<u32> = windows
        .separators()
        .into_iter()
        .filter(|(_, s)| !s)
        .map(|(p, _)| p)
        .collect();
    assert_eq!(odd, [12, 13, 14]);
    assert!(
        windows
            .events()
            .iter()
            .filter(|e| e.event_type == EV_SEPARATOR)
            .count()
            == 11
    );

    let sb = parse_ok(&fixture("sb_cert_eventlog"));
    let pcr7: Vec<(String, String)> = sb
        .efi_variables()
        .into_iter()
        .filter(|v| v.pcr == 7)
        .map(|v| (v.guid.to_string(), v.name))
        .collect();
    let global = "8be4df61-93ca-11d2-aa0d-00e098032b8c".to_owned();
    let imgdb = "d719b2cb-3d3a-4596-a3bc-dad00e67656f".to_owned();
    assert_eq!(
        pcr7,
        [
            (global.clone(), "SecureBoot".to_owned()),
            (global.clone(), "PK".to_owned()),
            (global, "KEK".to_owned()),
            (imgdb.clone(), "db".to_owned()),
            (imgdb.clone(), "dbx".to_owned()),
            (imgdb, "db".to_owned()), // EV_EFI_VARIABLE_AUTHORITY
        ]
    );
}

#[test]
fn raw_digest_is_sha256_of_the_bytes() {
    let bytes = fixture("sb_cert_eventlog");
    let log = parse_ok(&bytes);
    let expected = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
    assert_eq!(log.sha256_of_raw(), expected);
    assert_eq!(log_digest(&bytes), expected);
    assert_eq!(hex::encode(log.raw_sha256()), expected);
}

#[test]
fn replay_json_has_banks_and_measured_pcrs_in_lowercase_hex() {
    let log = parse_ok(&fixture("sb_cert_eventlog"));
    let json = replay_json(&log.replay());
    let banks: Vec<&String> = json.as_object().expect("object").keys().collect();
    assert_eq!(banks, ["sha1", "sha256", "sha384"]);
    assert_eq!(
        json["sha1"]["0"],
        "51c323de0c0c694f4601cdd02beb58ff13629f74"
    );
    assert_eq!(
        json["sha256"]["7"],
        "51b30488c9e6255d822bdc1b20d9a92c32bde6c3e7bc02bcdd32825eb5ef069a"
    );
    assert_eq!(json["sha1"].as_object().expect("object").len(), 4);
    let pretty = replay_json_pretty(&log.replay());
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&pretty).expect("valid JSON"),
        json
    );
}

#[test]
fn tampered_pcr_value_is_reported_with_bank_pcr_and_both_values() {
    let log = parse_ok(&fixture("sb_cert_eventlog"));
    let replay = log.replay();
    let mut quoted = restrict_to(&pcrs_json("sb_cert_eventlog.pcrs.json"), &replay);
    let tampered = quoted
        .get_mut(&HashAlg::Sha256)
        .and_then(|b| b.get_mut(&4))
        .expect("PCR 4");
    tampered[0] ^= 1;
    let err = compare_with_quote(&replay, &quoted).expect_err("mismatch");
    let message = err.to_string();
    assert!(
        message.starts_with("sha256 PCR 4: event log replays to a92968806f795fa3")
            && message.contains("the quote has a82968806f795fa3"),
        "{message}"
    );
    let quoted_sha384 = PcrValues::from([(HashAlg::Sha512, BTreeMap::from([(0, vec![0; 64])]))]);
    assert_eq!(
        compare_with_quote(&replay, &quoted_sha384).map_err(|e| e.to_string()),
        Err("the quote selects sha512 PCRs but the log carries no sha512 bank".to_owned())
    );
    // A PCR extended outside the log, against a log that has none of its events.
    let mut extended = PcrValues::new();
    extended
        .entry(HashAlg::Sha1)
        .or_default()
        .insert(4, vec![0; 20]);
    extended
        .entry(HashAlg::Sha1)
        .or_default()
        .insert(9, vec![0x42; 20]);
    let replay_no_4 = PcrValues::from([(HashAlg::Sha1, BTreeMap::new())]);
    assert_eq!(
        compare_with_quote(&replay_no_4, &extended).map_err(|e| e.to_string()),
        Err(format!(
            "sha1 PCR 9 was extended (quoted {}) but the log has no events for it",
            "42".repeat(20)
        ))
    );
}

// ---------------------------------------------------------------- malformed logs

#[test]
fn truncated_logs_name_the_event_and_offset() {
    for name in ["sb_cert_eventlog", "option_rom_eventlog"] {
        let bytes = fixture(name);
        let full = parse_ok(&bytes);
        let ends: Vec<usize> = (0..full.events().len())
            .map(|i| full.events()[i].offset + record_len(&full, i))
            .collect();
        // Every cut in the first events, then a stride across the rest.
        let cuts = (1..400)
            .chain((400..bytes.len()).step_by(61))
            .chain(ends.iter().map(|e| e - 1));
        let mut errors = 0;
        for cut in cuts {
            let prefix = &bytes[..cut];
            let complete = ends.iter().filter(|&&end| end <= cut).count();
            match parse(prefix, &EventLogLimits::default()) {
                Ok(log) => {
                    // Only a cut at an event boundary, or one that leaves
                    // nothing but zero bytes of the next event, parses.
                    assert_eq!(log.events().len(), complete, "{name} cut at {cut:#x}");
                    let last_end = ends[complete - 1];
                    assert!(
                        prefix[last_end..].iter().all(|&b| b == 0),
                        "{name} cut at {cut:#x}"
                    );
                }
                Err(
                    EventLogError::Truncated { at, .. }
                    | EventLogError::EventDataOverflow { at, .. },
                ) => {
                    let event = &full.events()[complete];
                    assert_eq!(
                        (at.event, at.event_offset),
                        (event.index, event.offset),
                        "{name} cut at {cut:#x}"
                    );
                    assert!(
                        at.field_offset <= cut && at.field_offset >= event.offset,
                        "{name} cut at {cut:#x}"
                    );
                    errors += 1;
                }
                // A cut inside the first event's leading zero bytes.
                Err(EventLogError::AllZero { len }) if len == cut && complete == 0 => {}
                Err(e) => panic!("{name} cut at {cut:#x}: unexpected error {e}"),
            }
        }
        assert!(errors > 300, "{name}: {errors}");
    }
}

#[test]
fn truncation_errors_read_well() {
    let bytes = fixture("sb_cert_eventlog");
    // Cut event 1 in its SHA-256 digest: the record starts at 0x49
    // (32 + 41 bytes of header event), the SHA-1 entry at 0x55, the SHA-256
    // entry at 0x6b and its digest at 0x6d.
    let err = parse_err(&bytes[..0x6d + 5]);
    assert_eq!(
        err.to_string(),
        "event 1 at offset 0x49, field digests.digest at 0x6d: truncated: needs 32 bytes, 5 left"
    );
    // Cut the header in its algorithm list.
    let err = parse_err(&bytes[..0x3a]);
    assert!(
        err.to_string().starts_with(
            "event 0 at offset 0x0, field eventSize at 0x1c: event data size 41 exceeds"
        )
    );
}

#[test]
fn event_data_size_overflow_is_refused() {
    let mut bytes = fixture("sb_cert_eventlog");
    let log = parse_ok(&bytes);
    let event = &log.events()[12];
    let size_offset = event.offset + record_len(&log, 12) - event.data().len() - 4;
    bytes[size_offset..size_offset + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    let left = bytes.len() - size_offset - 4;
    let err = parse_err(&bytes);
    assert_eq!(
        err.to_string(),
        format!(
            "event 12 at offset {:#x}, field eventSize at {size_offset:#x}: event data size 4294967295 exceeds the {left} bytes left",
            event.offset
        )
    );
}

#[test]
fn undeclared_algorithm_in_event_is_refused() {
    let mut bytes = fixture("sb_cert_eventlog");
    // Event 1 at 0x49: pcr, type, count, then the first hashAlg (SHA-1).
    let alg_offset = 0x49 + 12;
    assert_eq!(bytes[alg_offset..alg_offset + 2], SHA1.to_le_bytes());
    bytes[alg_offset..alg_offset + 2].copy_from_slice(&SM3_256.to_le_bytes());
    match parse_err(&bytes) {
        EventLogError::UndeclaredAlgorithm {
            at,
            alg_id: SM3_256,
        } => {
            assert_eq!((at.event, at.field_offset), (1, alg_offset));
        }
        other => panic!("{other}"),
    }
}

#[test]
fn unknown_algorithm_declared_in_header_is_skipped_by_its_size() {
    // SM3-256 is not a HashAlg, but the header gives its size, so events can
    // still be walked and the SHA-256 bank replayed.
    let d = HashAlg::Sha256.hash(b"kernel");
    let mut bytes = spec_id_header(&[(SM3_256, 32), (SHA256, 32)]);
    bytes.extend(agile_event(
        4,
        0x8000_0003,
        &[(SM3_256, vec![0xee; 32]), (SHA256, d.clone())],
        b"kernel",
    ));
    bytes.extend(agile_event(
        4,
        0x8000_0003,
        &[(SHA256, d.clone()), (SM3_256, vec![0xee; 32])],
        b"kernel",
    ));
    let log = parse_ok(&bytes);
    assert_eq!(log.banks(), [HashAlg::Sha256]);
    assert_eq!(log.spec_id().expect("header").algorithms.len(), 2);
    assert_eq!(
        log.events()[1].digests().collect::<Vec<_>>(),
        [(HashAlg::Sha256, d.as_slice())]
    );
    let once = HashAlg::Sha256.extend(&[0; 32], &d);
    assert_eq!(
        log.replay()[&HashAlg::Sha256][&4],
        HashAlg::Sha256.extend(&once, &d)
    );
}

#[test]
fn digest_count_mismatch_is_refused() {
    let mut bytes = fixture("sb_cert_eventlog");
    let count_offset = 0x49 + 8;
    assert_eq!(bytes[count_offset..count_offset + 4], 3u32.to_le_bytes());
    bytes[count_offset..count_offset + 4].copy_from_slice(&2u32.to_le_bytes());
    let err = parse_err(&bytes);
    assert_eq!(
        err.to_string(),
        "event 1 at offset 0x49, field digests.count at 0x51: digest count 2, expected 3 (one per algorithm of the Spec ID header)"
    );
}

#[test]
fn duplicate_digest_in_event_is_refused() {
    let mut bytes = spec_id_header(&[(SHA1, 20), (SHA256, 32)]);
    bytes.extend(agile_event(
        0,
        8,
        &[(SHA1, vec![1; 20]), (SHA1, vec![1; 20])],
        b"",
    ));
    assert!(matches!(
        parse_err(&bytes),
        EventLogError::DuplicateDigest { alg_id: SHA1, .. }
    ));
}

#[test]
fn malformed_spec_id_headers_are_refused() {
    let cases: [(&[(u16, u16)], &str); 3] = [
        (&[], "numberOfAlgorithms is 0"),
        (&[(SHA256, 20)], "sha256 digest size 20, expected 32"),
        (
            &[(SHA1, 20), (SHA1, 20)],
            "algorithm 0x0004 is declared twice",
        ),
    ];
    for (algs, reason) in cases {
        let err = parse_err(&spec_id_header(algs));
        assert!(matches!(err, EventLogError::InvalidSpecId { .. }), "{err}");
        assert!(err.to_string().contains(reason), "{err}");
    }
    // vendorInfoSize pointing past the header's data.
    let mut bytes = spec_id_header(&[(SHA384, 48)]);
    let last = bytes.len() - 1;
    bytes[last] = 9;
    assert!(
        matches!(parse_err(&bytes), EventLogError::Truncated { at, .. } if at.field == "specIdEvent.vendorInfo")
    );
}

#[test]
fn measured_event_beyond_pcr_23_is_refused() {
    let mut bytes = legacy_event(0, 8, sha1_of(b"a"), b"a");
    bytes.extend(legacy_event(24, 0xd, sha1_of(b"b"), b"b"));
    match parse_err(&bytes) {
        EventLogError::PcrIndexOutOfRange { at, pcr: 24 } => {
            assert_eq!((at.event, at.event_offset), (1, 33))
        }
        other => panic!("{other}"),
    }
    // EV_NO_ACTION is never extended, so its PCR index is not checked
    // (Windows logs use 0xffffffff there).
    let mut bytes = legacy_event(0, 8, sha1_of(b"a"), b"a");
    bytes.extend(legacy_event(u32::MAX, EV_NO_ACTION, [0; 20], b"info"));
    assert_eq!(parse_ok(&bytes).events().len(), 2);
}

#[test]
fn bad_startup_locality_events_are_refused() {
    let twice = [
        legacy_event(0, EV_NO_ACTION, [0; 20], &startup_locality_data(3)),
        legacy_event(0, EV_NO_ACTION, [0; 20], &startup_locality_data(0)),
    ]
    .concat();
    assert!(
        parse_err(&twice)
            .to_string()
            .contains("second StartupLocality event (locality 0, first said 3)")
    );
    let on_pcr_1 = legacy_event(1, EV_NO_ACTION, [0; 20], &startup_locality_data(3));
    assert!(
        parse_err(&on_pcr_1)
            .to_string()
            .contains("on PCR 1, expected PCR 0")
    );
    let mut long = startup_locality_data(3);
    long.push(0);
    assert!(
        parse_err(&legacy_event(0, EV_NO_ACTION, [0; 20], &long))
            .to_string()
            .contains("18 bytes, expected 17")
    );
    assert!(
        parse_err(&legacy_event(
            0,
            EV_NO_ACTION,
            [0; 20],
            &startup_locality_data(7)
        ))
        .to_string()
        .contains("locality 7")
    );
}

#[test]
fn zero_padding_is_tolerated_and_other_trailing_bytes_are_not() {
    let bytes = fixture("crypto_agile_eventlog");
    let events = parse_ok(&bytes).events().len();
    let mut padded = bytes.clone();
    padded.extend([0; 4096]);
    assert_eq!(parse_ok(&padded).events().len(), events);

    let mut garbage = bytes.clone();
    garbage.extend([0, 0, 0, 0, 0xde, 0xad]);
    match parse_err(&garbage) {
        EventLogError::Truncated { at, .. } => {
            assert_eq!(
                (at.event, at.event_offset, at.field),
                (events, bytes.len(), "eventType")
            );
        }
        other => panic!("{other}"),
    }
    let mut late = padded.clone();
    late.push(1);
    assert!(parse(&late, &EventLogLimits::default()).is_err());

    assert_eq!(parse_err(&[]), EventLogError::Empty);
    assert_eq!(parse_err(&[0; 64]), EventLogError::AllZero { len: 64 });
}

#[test]
fn logs_over_the_limits_are_refused() {
    let bytes = fixture("ubuntu_2104_shielded_vm_no_secure_boot_eventlog");
    let mut limits = EventLogLimits::default();
    limits.max_log_bytes = 32 * 1024;
    assert_eq!(
        parse(&bytes, &limits),
        Err(EventLogError::TooLarge {
            size: bytes.len(),
            limit: 32 * 1024
        })
    );

    let mut limits = EventLogLimits::default();
    limits.max_events = 100;
    let offset = parse_ok(&bytes).events()[100].offset;
    assert_eq!(
        parse(&bytes, &limits),
        Err(EventLogError::TooManyEvents { limit: 100, offset })
    );
    limits.max_events = 106;
    assert!(parse(&bytes, &limits).is_ok());

    let mut limits = EventLogLimits::default();
    limits.max_event_data = 4096;
    match parse(&bytes, &limits) {
        Err(EventLogError::EventDataTooLarge {
            at,
            size,
            limit: 4096,
        }) => {
            // The dbx variable (event 7) is the first one over 4 KiB.
            assert_eq!((at.event, at.field), (7, "eventSize"));
            let dbx = parse_ok(&bytes)
                .efi_variables()
                .into_iter()
                .find(|v| v.index == 7)
                .map(|v| v.name);
            assert_eq!(dbx.as_deref(), Some("dbx"));
            assert!(size > 4096);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn random_bytes_are_refused_without_panicking() {
    let mut rng = Rng(0x5eed_cafe_f00d_d00d);
    for round in 0..2000 {
        let len = rng.below(3000) + 1;
        let bytes: Vec<u8> = (0..len).map(|_| rng.next().to_le_bytes()[0]).collect();
        assert!(
            parse(&bytes, &EventLogLimits::default()).is_err(),
            "round {round} parsed"
        );
    }
}

#[test]
fn mutated_real_logs_never_panic() {
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    for name in [
        "sb_cert_eventlog",
        "option_rom_eventlog",
        "short_no_action_eventlog",
    ] {
        let original = fixture(name);
        for _ in 0..400 {
            let mut bytes = original.clone();
            for _ in 0..=rng.below(4) {
                let at = rng.below(bytes.len());
                bytes[at] = rng.next().to_le_bytes()[0];
            }
            if rng.below(4) == 0 {
                bytes.truncate(rng.below(bytes.len()) + 1);
            }
            // Either outcome is fine; every view of an accepted log must run.
            if let Ok(log) = parse(&bytes, &EventLogLimits::default()) {
                let replay = log.replay();
                let _ = compare_with_quote(&replay, &replay);
                let _ = (
                    log.secure_boot(),
                    log.boot_applications(),
                    log.ipl_strings(),
                );
                let _ = (log.separators(), log.efi_variables(), replay_json(&replay));
            }
        }
    }
}
