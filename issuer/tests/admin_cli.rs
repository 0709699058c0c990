//! `rootmark-issuer run` and the admin CLI as real processes: the issuer
//! runs with a temporary config, the CLI talks to its admin socket.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_rootmark-issuer");

/// A running issuer, killed on drop.
struct Issuer {
    child: Option<Child>,
    config: PathBuf,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Issuer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn write_config(dir: &Path, extra: &str) -> (PathBuf, PathBuf) {
    let ek = dir.join("ek-roots");
    std::fs::create_dir_all(&ek).expect("ek dir");
    // The socket's directory exists already, world-traversable, so the
    // non-admin test can reach the socket (the issuer keeps an existing dir).
    let run = dir.join("run");
    std::fs::create_dir_all(&run).expect("run dir");
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let socket = run.join("admin.sock");
    let config = dir.join("issuer.toml");
    std::fs::write(
        &config,
        format!(
            "trust_domain = \"example.org\"\nlisten = \"127.0.0.1:0\"\nissuance_listen = \"127.0.0.1:0\"\ndata_dir = {:?}\n\
             admin_socket = {:?}\n{extra}\n[attestation]\nek_roots = {:?}\n",
            dir.join("data"),
            socket,
            ek
        ),
    )
    .expect("config");
    (config, socket)
}

fn start(extra: &str) -> Issuer {
    let dir = tempfile::tempdir().expect("tempdir");
    let (config, socket) = write_config(dir.path(), extra);
    let child = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&config)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn rootmark-issuer run");
    let mut issuer = Issuer {
        child: Some(child),
        config,
        socket,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !issuer.socket.exists() {
        if let Some(child) = issuer.child.as_mut()
            && let Ok(Some(status)) = child.try_wait()
        {
            panic!("rootmark-issuer run exited early: {status}");
        }
        assert!(Instant::now() < deadline, "admin socket never appeared");
        std::thread::sleep(Duration::from_millis(50));
    }
    issuer
}

impl Issuer {
    fn cli(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .env("ROOTMARK_ISSUER_CONFIG", &self.config)
            .output()
            .expect("run the CLI")
    }

    /// Runs a command with `--output json`, expecting success.
    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        let out = self.cli(&all);
        assert!(
            out.status.success(),
            "{args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("JSON output")
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn entry_round_trip_errors_denial_audit_and_sigterm() {
    let mut issuer = start("");

    // Create, list, show, delete with --output json.
    let created = issuer.json(&[
        "entry",
        "create",
        "--spiffe-id",
        "spiffe://example.org/web",
        "--selector",
        "unix:uid:1000",
        "--selector",
        "unix:gid:100",
        "--node-selector",
        "tpm:policy:prod",
        "--x509-ttl",
        "30m",
        "--jwt-ttl",
        "2m",
        "--dns",
        "web.example.org",
        "--hint",
        "web",
    ]);
    let id = created["id"].as_str().expect("entry id").to_owned();
    assert_eq!(created["spiffe_id"], "spiffe://example.org/web");
    assert_eq!(created["x509_ttl_s"], 1800);
    assert_eq!(created["jwt_ttl_s"], 120);
    assert_eq!(
        created["selectors"],
        serde_json::json!(["unix:gid:100", "unix:uid:1000"])
    );
    assert_eq!(created["dns_names"], serde_json::json!(["web.example.org"]));

    let list = issuer.json(&["entry", "list"]);
    let list = list.as_array().expect("list is an array");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["id"], id.as_str());
    let shown = issuer.json(&["entry", "show", &id]);
    assert_eq!(shown, created);

    // Human output is a table naming the entry.
    let text = issuer.cli(&["entry", "list"]);
    assert!(text.status.success());
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(text.contains("SPIFFE ID") && text.contains(&id), "{text}");

    let deleted = issuer.json(&["entry", "delete", &id]);
    assert_eq!(deleted["id"], id.as_str());
    assert_eq!(issuer.json(&["entry", "list"]), serde_json::json!([]));
    let out = issuer.cli(&["entry", "show", &id]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!("no entry with ID {id}")),
        "{}",
        stderr(&out)
    );

    // Clear errors.
    let out = issuer.cli(&[
        "entry",
        "create",
        "--spiffe-id",
        "spiffe://example.org/x",
        "--selector",
        "unix",
        "--node-selector",
        "tpm:policy:prod",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("selector 'unix' must be TYPE:VALUE"),
        "{}",
        stderr(&out)
    );
    let missing = "spiffe://example.org/rootmark/node/0000000000000000000000000000000000000000000000000000000000000000";
    let out = issuer.cli(&["node", "ban", missing, "--reason", "stolen"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!("no node with ID {missing}")),
        "{}",
        stderr(&out)
    );
    let out = issuer.cli(&[
        "node", "ban", missing, "--reason", "stolen", "--output", "json",
    ]);
    assert!(!out.status.success());
    let error: Value = serde_json::from_slice(&out.stdout).expect("JSON error");
    assert_eq!(error["ok"], false);

    // Banning an EK hash that has not attested yet works, and is audited.
    let ek = "ab".repeat(32);
    let ban = issuer.json(&["node", "ban", &ek, "--reason", "lost laptop"]);
    assert_eq!(ban["ek_sha256"], ek.as_str());
    assert_eq!(ban["banned_by"], "uid:0");
    issuer.json(&["node", "unban", &ek]);

    assert_eq!(issuer.json(&["node", "list"]), serde_json::json!([]));
    assert_eq!(issuer.json(&["attestation", "list"]), serde_json::json!([]));
    let bundle = issuer.json(&["bundle", "show"]);
    let pem = bundle["x509_authorities"][0].as_str().expect("a root");
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    assert!(
        bundle["jwks"]["keys"]
            .as_array()
            .is_some_and(|k| k.len() >= 2),
        "{bundle}"
    );

    // A non-admin uid is refused by the issuer (not just the file mode) and audited.
    let denied = if Path::new("/usr/sbin/runuser").exists() || which("runuser") {
        std::fs::set_permissions(&issuer.socket, std::fs::Permissions::from_mode(0o666))
            .expect("open the socket to everyone for the test");
        let out = Command::new("runuser")
            .args(["-u", "nobody", "--", BIN, "entry", "list"])
            .env("ROOTMARK_ISSUER_CONFIG", &issuer.config)
            .output()
            .expect("runuser");
        // The config must be readable by nobody too; it is (0644 by default umask).
        assert!(!out.status.success(), "nobody was served");
        assert!(
            stderr(&out).contains("permission denied: uid 65534"),
            "{}",
            stderr(&out)
        );
        true
    } else {
        eprintln!("SKIPPED: runuser not found, the non-admin refusal is not exercised");
        false
    };

    // Every admin change is in the audit log, and the chain verifies.
    let export = Command::new(BIN)
        .args(["audit", "export", "--config"])
        .arg(&issuer.config)
        .output()
        .expect("audit export");
    assert!(export.status.success(), "{}", stderr(&export));
    let records: Vec<Value> = String::from_utf8_lossy(&export.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let kinds: Vec<&str> = records.iter().filter_map(|r| r["kind"].as_str()).collect();
    for kind in ["entry.create", "entry.delete", "node.ban", "node.unban"] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    let entry_records: Vec<&Value> = records
        .iter()
        .filter(|r| r["subject"] == id.as_str())
        .collect();
    assert_eq!(entry_records.len(), 2, "{records:?}");
    assert!(entry_records.iter().all(|r| r["actor"] == "uid:0"));
    if denied {
        assert!(
            records
                .iter()
                .any(|r| r["kind"] == "admin.denied" && r["actor"] == "uid:65534"),
            "{kinds:?}"
        );
    }
    let verify = Command::new(BIN)
        .args(["audit", "verify", "--config"])
        .arg(&issuer.config)
        .output()
        .expect("audit verify");
    assert!(
        verify.status.success(),
        "{}{}",
        String::from_utf8_lossy(&verify.stdout),
        stderr(&verify)
    );

    // SIGTERM: exit 0, socket removed.
    let mut child = issuer.child.take().expect("child");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("issuer did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status}");
    assert!(!issuer.socket.exists(), "socket file left behind");
}

fn which(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|p| p.join(tool).exists()))
}

#[test]
fn unknown_config_key_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (config, _) = write_config(dir.path(), "admin_uidd = 1000");
    let out = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("admin_uidd"), "{}", stderr(&out));
}

#[test]
fn cli_without_issuer_says_how_to_fix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (config, _) = write_config(dir.path(), "");
    let out = Command::new(BIN)
        .args(["entry", "list", "--config"])
        .arg(&config)
        .output()
        .expect("cli");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("is `rootmark-issuer run` running"),
        "{}",
        stderr(&out)
    );
}
