//! Workload attestation against real processes in the real `/proc`, plus a
//! synthetic procfs tree for what this machine cannot show (systemd units).
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::*;

/// Kills and reaps the child when dropped, so no test leaves `sleep`s behind.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Reaped {
    fn pid(&self) -> i32 {
        i32::try_from(self.0.id()).unwrap()
    }
}

/// Spawns `program args`, retrying on ETXTBSY (a freshly written binary can
/// still be open for writing in a concurrently forked test thread).
fn spawn(program: &Path, args: &[&str]) -> Reaped {
    let mut attempts = 0;
    loop {
        match Command::new(program).args(args).spawn() {
            Ok(child) => return Reaped(child),
            Err(e) if e.raw_os_error() == Some(26) && attempts < 50 => {
                attempts += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("spawn {}: {e}", program.display()),
        }
    }
}

fn which(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("{name} not found in PATH"))
}

/// This process's effective uid and gid (owner of `/proc/self`).
fn own_ids() -> (u32, u32) {
    let meta = std::fs::metadata("/proc/self").unwrap();
    (meta.uid(), meta.gid())
}

fn peer(pid: i32) -> PeerCredentials {
    let (uid, gid) = own_ids();
    PeerCredentials { pid, uid, gid }
}

fn sha256_hex(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

/// Defaults, except a limit big enough for this (debug, ~100 MiB) test binary.
fn config() -> WorkloadAttestorConfig {
    WorkloadAttestorConfig {
        max_exe_bytes: 1 << 30,
        ..WorkloadAttestorConfig::default()
    }
}

fn attestor() -> WorkloadAttestor {
    WorkloadAttestor::new(config())
}

#[test]
fn attests_self() {
    let attestor = attestor();
    let pid = i32::try_from(std::process::id()).unwrap();
    let (uid, gid) = own_ids();
    let selectors = attestor
        .attest(peer(pid), ConnectionInstant::now())
        .unwrap();

    let exe = std::env::current_exe().unwrap();
    assert!(
        selectors.contains(&format!("unix:uid:{uid}")),
        "{selectors:?}"
    );
    assert!(
        selectors.contains(&format!("unix:gid:{gid}")),
        "{selectors:?}"
    );
    assert!(
        selectors.contains(&format!("unix:path:{}", exe.display())),
        "{selectors:?}"
    );
    assert!(
        selectors.contains(&format!("unix:sha256:{}", sha256_hex(&exe))),
        "{selectors:?}"
    );

    // User and group names agree with the system's files.
    let passwd = users::parse_db(
        &std::fs::read("/etc/passwd").unwrap_or_default(),
        DbKind::Passwd,
    );
    match passwd.get(&uid) {
        Some(name) => assert!(
            selectors.contains(&format!("unix:user:{name}")),
            "{selectors:?}"
        ),
        None => assert!(!selectors.iter().any(|s| s.starts_with("unix:user:"))),
    }
    let group = users::parse_db(
        &std::fs::read("/etc/group").unwrap_or_default(),
        DbKind::Group,
    );
    match group.get(&gid) {
        Some(name) => assert!(
            selectors.contains(&format!("unix:group:{name}")),
            "{selectors:?}"
        ),
        None => assert!(!selectors.iter().any(|s| s.starts_with("unix:group:"))),
    }

    // The digest is cached; a second attestation gives the same answer.
    assert_eq!(attestor.cached_digests(), 1);
    let again = attestor
        .attest(peer(pid), ConnectionInstant::now())
        .unwrap();
    assert_eq!(again, selectors);
    assert_eq!(attestor.cached_digests(), 1);
}

#[test]
fn uid_and_gid_come_from_peer_credentials() {
    // Whatever /proc says about the process, the ids are the kernel's
    // SO_PEERCRED values the caller passed in.
    let dir = tempfile::tempdir().unwrap();
    let passwd = dir.path().join("passwd");
    let group = dir.path().join("group");
    std::fs::write(&passwd, "ghost:x:4242:4242::/:/bin/sh\n").unwrap();
    std::fs::write(&group, "spooks:x:4343:\n").unwrap();
    let attestor = WorkloadAttestor::new(WorkloadAttestorConfig {
        passwd_path: passwd,
        group_path: group,
        ..config()
    });
    let pid = i32::try_from(std::process::id()).unwrap();
    let creds = PeerCredentials {
        pid,
        uid: 4242,
        gid: 4343,
    };
    let selectors = attestor.attest(creds, ConnectionInstant::now()).unwrap();
    assert!(selectors.contains_all(&[
        "unix:uid:4242",
        "unix:gid:4343",
        "unix:user:ghost",
        "unix:group:spooks"
    ]));

    // A uid with no name gets no unix:user selector.
    let creds = PeerCredentials {
        pid,
        uid: 7,
        gid: 8,
    };
    let selectors = attestor.attest(creds, ConnectionInstant::now()).unwrap();
    assert!(selectors.contains_all(&["unix:uid:7", "unix:gid:8"]));
    assert!(
        !selectors
            .iter()
            .any(|s| s.starts_with("unix:user:") || s.starts_with("unix:group:")),
        "{selectors:?}"
    );
}

#[test]
fn attests_spawned_child() {
    let sleep = std::fs::canonicalize(which("sleep")).unwrap();
    let child = spawn(&sleep, &["30"]);
    // Taken right after the child started: a connection made in the same
    // clock tick as the process start must be accepted.
    let connected_at = ConnectionInstant::now();
    let selectors = attestor().attest(peer(child.pid()), connected_at).unwrap();
    assert!(
        selectors.contains(&format!("unix:path:{}", sleep.display())),
        "{selectors:?}"
    );
    assert!(
        selectors.contains(&format!("unix:sha256:{}", sha256_hex(&sleep))),
        "{selectors:?}"
    );
}

#[test]
fn pid_reuse_process_started_after_connection_is_refused() {
    let connected_at = ConnectionInstant::now();
    // Well over one 10 ms clock tick.
    std::thread::sleep(Duration::from_millis(50));
    let sleep = which("sleep");
    let child = spawn(&sleep, &["30"]);
    let err = attestor()
        .attest(peer(child.pid()), connected_at)
        .unwrap_err();
    match err {
        WorkloadAttestationError::PidReused {
            pid,
            reason:
                PidReuse::StartedAfterConnection {
                    start_ticks,
                    connected_ticks,
                },
        } => {
            assert_eq!(pid, child.pid());
            assert!(
                start_ticks > connected_ticks,
                "{start_ticks} {connected_ticks}"
            );
        }
        other => panic!("expected PidReused, got {other:?}"),
    }
}

#[test]
fn connection_ticks_round_down_like_the_kernel() {
    let at = |ns| ConnectionInstant::from_boottime_nanos(ns).ticks(100);
    assert_eq!(at(123_450_000_000), 12_345);
    assert_eq!(at(123_459_999_999), 12_345);
    assert_eq!(at(123_449_999_999), 12_344);
    assert_eq!(at(0), 0);
    assert_eq!(
        ConnectionInstant::from_boottime_nanos(u64::MAX).ticks(100),
        u64::MAX / 10_000_000
    );
    // The clock is CLOCK_BOOTTIME: after boot, and not before this process.
    let now = ConnectionInstant::now();
    let own = process::parse_stat(&std::fs::read("/proc/self/stat").unwrap()).unwrap();
    assert!(now.ticks(100) >= own.start_ticks);
}

#[test]
fn exited_process_is_gone() {
    let mut child = Command::new(which("true")).spawn().unwrap();
    let pid = i32::try_from(child.id()).unwrap();
    child.wait().unwrap();
    let err = attestor()
        .attest(peer(pid), ConnectionInstant::now())
        .unwrap_err();
    assert!(
        matches!(err, WorkloadAttestationError::ProcessGone { pid: p } if p == pid),
        "{err:?}"
    );
}

#[test]
fn zombie_is_gone() {
    let child = spawn(&which("true"), &[]);
    let pid = child.pid();
    let connected_at = ConnectionInstant::now();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let stat = std::fs::read(format!("/proc/{pid}/stat")).unwrap();
        if process::parse_stat(&stat).unwrap().state == b'Z' {
            break;
        }
        assert!(Instant::now() < deadline, "child never became a zombie");
        std::thread::sleep(Duration::from_millis(5));
    }
    let err = attestor().attest(peer(pid), connected_at).unwrap_err();
    assert!(
        matches!(err, WorkloadAttestationError::ProcessGone { pid: p } if p == pid),
        "{err:?}"
    );
}

#[test]
fn invalid_pid_is_refused() {
    for pid in [0, -1, i32::MIN] {
        let err = attestor()
            .attest(peer(pid), ConnectionInstant::now())
            .unwrap_err();
        assert!(
            matches!(err, WorkloadAttestationError::InvalidPid { .. }),
            "{err:?}"
        );
    }
}

#[test]
fn exe_over_the_hashing_limit_gets_no_sha256_selector_but_keeps_the_rest() {
    let attestor = WorkloadAttestor::new(WorkloadAttestorConfig {
        max_exe_bytes: 1,
        ..config()
    });
    let pid = i32::try_from(std::process::id()).unwrap();
    let selectors = attestor
        .attest(peer(pid), ConnectionInstant::now())
        .unwrap();
    let exe = std::env::current_exe().unwrap();
    assert!(
        !selectors.iter().any(|s| s.starts_with("unix:sha256:")),
        "{selectors:?}"
    );
    assert!(selectors.contains(&format!("unix:path:{}", exe.display())));
    assert!(selectors.contains(&format!("unix:uid:{}", peer(pid).uid)));
}

#[test]
fn deleted_binary_is_hashed_as_running_and_has_no_path() {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("my-sleep");
    std::fs::copy(which("sleep"), &copy).unwrap();
    let digest = sha256_hex(&copy);
    let child = spawn(&copy, &["30"]);
    let connected_at = ConnectionInstant::now();
    // Replace it on disk, as a package upgrade would.
    std::fs::remove_file(&copy).unwrap();
    std::fs::write(&copy, b"#!/bin/sh\necho replaced\n").unwrap();

    let selectors = attestor().attest(peer(child.pid()), connected_at).unwrap();
    assert!(
        selectors.contains(&format!("unix:sha256:{digest}")),
        "{selectors:?}"
    );
    assert!(
        !selectors.iter().any(|s| s.starts_with("unix:path:")),
        "{selectors:?}"
    );
}

/// A synthetic procfs entry for pid 4242 whose executable is `exe_content`.
fn fake_proc(
    stat: &[u8],
    cgroup: Option<&str>,
    exe_content: &[u8],
) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let pid_dir = dir.path().join("proc/4242");
    std::fs::create_dir_all(&pid_dir).unwrap();
    std::fs::write(pid_dir.join("stat"), stat).unwrap();
    if let Some(cgroup) = cgroup {
        std::fs::write(pid_dir.join("cgroup"), cgroup).unwrap();
    }
    let exe = dir.path().join("usr-bin-app");
    std::fs::write(&exe, exe_content).unwrap();
    std::os::unix::fs::symlink(&exe, pid_dir.join("exe")).unwrap();
    (dir, exe)
}

fn fake_stat(comm: &str, start_ticks: u64) -> Vec<u8> {
    format!(
        "4242 ({comm}) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 {start_ticks} 2240512 180\n"
    )
    .into_bytes()
}

#[test]
fn systemd_unit_end_to_end_with_injected_proc_root() {
    let (dir, exe) = fake_proc(
        &fake_stat("a) (b", 500),
        Some("1:name=systemd:/system.slice/app.service\n0::/system.slice/app.service\n"),
        b"hello",
    );
    let passwd = dir.path().join("passwd");
    let group = dir.path().join("group");
    std::fs::write(&passwd, "garbage\napp:x:990:990::/:/sbin/nologin\n").unwrap();
    std::fs::write(&group, "app:x:991:\n").unwrap();
    let attestor = WorkloadAttestor::new(WorkloadAttestorConfig {
        proc_root: dir.path().join("proc"),
        passwd_path: passwd,
        group_path: group,
        ..config()
    });
    let creds = PeerCredentials {
        pid: 4242,
        uid: 990,
        gid: 991,
    };
    let hz = attestor.ticks_per_second;
    let tick_ns = 1_000_000_000 / hz;

    // Connected in the very tick the process started: accepted.
    let selectors = attestor
        .attest(creds, ConnectionInstant::from_boottime_nanos(500 * tick_ns))
        .unwrap();
    let expected: Vec<String> = vec![
        "systemd:unit:app.service".into(),
        "unix:gid:991".into(),
        "unix:group:app".into(),
        format!("unix:path:{}", exe.display()),
        format!("unix:sha256:{}", hex::encode(Sha256::digest(b"hello"))),
        "unix:uid:990".into(),
        "unix:user:app".into(),
    ];
    assert_eq!(selectors.iter().collect::<Vec<_>>(), expected);
    assert!(selectors.contains_all(&expected));

    // Connected one nanosecond before that tick began: refused.
    let err = attestor
        .attest(
            creds,
            ConnectionInstant::from_boottime_nanos(500 * tick_ns - 1),
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            WorkloadAttestationError::PidReused {
                pid: 4242,
                reason: PidReuse::StartedAfterConnection {
                    start_ticks: 500,
                    connected_ticks: 499
                }
            }
        ),
        "{err:?}"
    );
}

#[test]
fn missing_cgroup_file_means_no_unit() {
    let (dir, _exe) = fake_proc(&fake_stat("app", 1), None, b"x");
    let attestor = WorkloadAttestor::new(WorkloadAttestorConfig {
        proc_root: dir.path().join("proc"),
        ..config()
    });
    let selectors = attestor
        .attest(peer(4242), ConnectionInstant::now())
        .unwrap();
    assert!(
        !selectors.iter().any(|s| s.starts_with("systemd:")),
        "{selectors:?}"
    );
}

#[test]
fn malformed_stat_is_an_error_not_a_panic() {
    let (dir, _exe) = fake_proc(b"4242 (app S 1 2", Some("0::/\n"), b"x");
    let attestor = WorkloadAttestor::new(WorkloadAttestorConfig {
        proc_root: dir.path().join("proc"),
        ..config()
    });
    let err = attestor
        .attest(peer(4242), ConnectionInstant::now())
        .unwrap_err();
    assert!(
        matches!(
            err,
            WorkloadAttestationError::MalformedProc {
                pid: 4242,
                file: "stat",
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn digest_cache_can_be_disabled_and_is_bounded() {
    let pid = i32::try_from(std::process::id()).unwrap();
    let off = WorkloadAttestor::new(WorkloadAttestorConfig {
        digest_cache_entries: 0,
        ..config()
    });
    off.attest(peer(pid), ConnectionInstant::now()).unwrap();
    assert_eq!(off.cached_digests(), 0);

    let one = WorkloadAttestor::new(WorkloadAttestorConfig {
        digest_cache_entries: 1,
        ..config()
    });
    one.attest(peer(pid), ConnectionInstant::now()).unwrap();
    let child = spawn(&which("sleep"), &["30"]);
    one.attest(peer(child.pid()), ConnectionInstant::now())
        .unwrap();
    assert_eq!(one.cached_digests(), 1);
}
