//! The `rootmark-issuer` offline commands, run as a user would run them.
#![allow(clippy::unwrap_used)] // tests and benches fail loudly by design

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use rootmark_swtpm_tests::Swtpm;
use rootmark_swtpm_tests::boot::{BootLog, BootProfile};
use rootmark_swtpm_tests::measure;

fn issuer(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rootmark-issuer"))
        .args(args)
        .output()
        .unwrap()
}

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/eventlogs")
        .join(name)
}

fn booted_swtpm() -> Swtpm {
    let swtpm = Swtpm::start().unwrap();
    let mut tpm = rootmark_attestor::tpm::Tpm::open(&swtpm.tcti()).unwrap();
    measure::extend_boot(
        tpm.context_mut(),
        &BootLog::simulate(&BootProfile::default()),
    )
    .unwrap();
    swtpm
}

#[test]
fn eventlog_replay_json_reproduces_the_tpm_pcrs() {
    let out = issuer(&[
        "eventlog",
        "replay",
        "--json",
        testdata("sb_cert_eventlog").to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let replay: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let truth: serde_json::Value =
        serde_json::from_slice(&std::fs::read(testdata("sb_cert_eventlog.pcrs.json")).unwrap())
            .unwrap();
    let mut compared = 0;
    for bank in ["sha1", "sha256"] {
        for (pcr, value) in replay[bank].as_object().unwrap() {
            assert_eq!(value, &truth["pcrs"][bank][pcr], "{bank}:{pcr}");
            compared += 1;
        }
    }
    assert!(compared >= 8, "compared {compared} PCRs");
    // Lowercase hex, PCRs in numeric order.
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text, text.to_lowercase());
}

#[test]
fn eventlog_replay_of_garbage_names_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    std::fs::write(&path, [0x01u8, 0, 0, 0, 0x03, 0, 0, 0, 9, 9]).unwrap();
    let out = issuer(&["eventlog", "replay", path.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("not a valid TCG event log") && stderr.contains("offset"),
        "{stderr}"
    );
}

#[test]
fn quote_verify_accepts_tpm2_quote_output_and_refuses_a_wrong_nonce() {
    let swtpm = booted_swtpm();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    swtpm.tool_ok(
        d,
        &["tpm2_createek", "-c", "ek.ctx", "-G", "rsa", "-u", "ek.pub"],
    );
    swtpm.tool_ok(
        d,
        &[
            "tpm2_createak",
            "-C",
            "ek.ctx",
            "-c",
            "ak.ctx",
            "-G",
            "rsa",
            "-g",
            "sha256",
            "-s",
            "rsassa",
            "-u",
            "ak.pub",
            "-n",
            "ak.name",
        ],
    );
    swtpm.tool_ok(
        d,
        &[
            "tpm2_quote",
            "-c",
            "ak.ctx",
            "-l",
            "sha256:0,1,2,3,4,5,6,7",
            "-q",
            "c0ffee",
            "-m",
            "q.msg",
            "-s",
            "q.sig",
            "-o",
            "q.pcrs",
            "-g",
            "sha256",
        ],
    );
    let p = |name: &str| d.join(name).display().to_string();
    let args = |nonce: &'static str| -> Vec<String> {
        [
            "quote",
            "verify",
            "--ak",
            &p("ak.pub"),
            "--quote",
            &p("q.msg"),
            "--sig",
            &p("q.sig"),
            "--pcrs",
            &p("q.pcrs"),
            "--nonce",
            nonce,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let run = |nonce| {
        let a = args(nonce);
        issuer(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let ok = run("c0ffee");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(
        stdout.contains("quote: valid (sha256:0,1,2,3,4,5,6,7)"),
        "{stdout}"
    );
    let expected = BootLog::simulate(&BootProfile::default())
        .expected_pcrs(rootmark_swtpm_tests::boot::Bank::Sha256);
    assert!(
        stdout.contains(&hex::encode(&expected[&4])),
        "prints PCR 4: {stdout}"
    );

    let bad = run("c0ffef");
    assert_eq!(bad.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("extraData does not equal the issued nonce")
            && stderr.contains("quote.nonce"),
        "{stderr}"
    );
}

#[test]
fn credential_make_output_activates_with_tpm2_activatecredential() {
    let swtpm = booted_swtpm();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    swtpm.tool_ok(
        d,
        &["tpm2_createek", "-c", "ek.ctx", "-G", "rsa", "-u", "ek.pub"],
    );
    swtpm.tool_ok(
        d,
        &[
            "tpm2_readpublic",
            "-c",
            "ek.ctx",
            "-f",
            "pem",
            "-o",
            "ek.pem",
        ],
    );
    swtpm.tool_ok(
        d,
        &[
            "tpm2_createak",
            "-C",
            "ek.ctx",
            "-c",
            "ak.ctx",
            "-G",
            "ecc",
            "-g",
            "sha256",
            "-s",
            "ecdsa",
            "-u",
            "ak.pub",
            "-n",
            "ak.name",
        ],
    );
    swtpm.tool_ok(
        d,
        &[
            "tpm2_createak",
            "-C",
            "ek.ctx",
            "-c",
            "other.ctx",
            "-G",
            "ecc",
            "-g",
            "sha256",
            "-s",
            "ecdsa",
            "-u",
            "other.pub",
            "-n",
            "other.name",
        ],
    );
    let name = hex::encode(std::fs::read(d.join("ak.name")).unwrap());
    let other = hex::encode(std::fs::read(d.join("other.name")).unwrap());
    let secret = "5ec2e7000000000000000000000000000000000000000000000000000000cafe";

    for (ek, for_name, blob) in [
        ("ek.pub", &name, "tss.blob"),
        ("ek.pem", &name, "pem.blob"),
        ("ek.pub", &other, "other.blob"),
    ] {
        let out = issuer(&[
            "credential",
            "make",
            "--ek-pub",
            d.join(ek).to_str().unwrap(),
            "--name",
            for_name,
            "--secret",
            secret,
            "--out",
            d.join(blob).to_str().unwrap(),
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let activate = |blob: &str, out: &str| -> bool {
        let tcti = swtpm.tcti();
        let run = |args: &[&str]| {
            let _ = Command::new("tpm2_flushcontext")
                .args(["-T", &tcti, "-t"])
                .output();
            Command::new(args[0])
                .args(["-T", &tcti])
                .args(&args[1..])
                .current_dir(d)
                .output()
                .unwrap()
        };
        assert!(
            run(&[
                "tpm2_startauthsession",
                "--policy-session",
                "-S",
                "session.ctx"
            ])
            .status
            .success()
        );
        assert!(
            run(&["tpm2_policysecret", "-S", "session.ctx", "-c", "e"])
                .status
                .success()
        );
        let ok = run(&[
            "tpm2_activatecredential",
            "-c",
            "ak.ctx",
            "-C",
            "ek.ctx",
            "-i",
            blob,
            "-o",
            out,
            "-P",
            "session:session.ctx",
        ])
        .status
        .success();
        let _ = run(&["tpm2_flushcontext", "session.ctx"]);
        ok
    };
    assert!(
        activate("tss.blob", "tss.out"),
        "blob from a TPM2B_PUBLIC EK activates"
    );
    assert_eq!(
        hex::encode(std::fs::read(d.join("tss.out")).unwrap()),
        secret
    );
    assert!(
        activate("pem.blob", "pem.out"),
        "blob from a PEM EK activates"
    );
    assert_eq!(
        hex::encode(std::fs::read(d.join("pem.out")).unwrap()),
        secret
    );
    assert!(
        !activate("other.blob", "other.out"),
        "a blob for another AK's name must not activate"
    );
}

#[test]
fn policy_from_eventlog_accepts_exactly_that_boot() {
    use rootmark_issuer::eventlog::{EventLog, EventLogLimits};
    use rootmark_issuer::policy::{NodePolicyConfig, PolicyFacts, PolicySet};

    #[derive(serde::Deserialize)]
    struct Document {
        node_policy: Vec<NodePolicyConfig>,
    }
    let good = testdata("sb_cert_eventlog");
    let out = issuer(&[
        "policy",
        "from-eventlog",
        "--name",
        "sb-cert-host",
        good.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let document: Document = toml::from_str(std::str::from_utf8(&out.stdout).unwrap()).unwrap();
    let policies = PolicySet::compile(&document.node_policy).unwrap();

    let log = EventLog::parse(&std::fs::read(&good).unwrap(), &EventLogLimits::default()).unwrap();
    let quoted = log.replay();
    let results = policies.evaluate(&PolicyFacts {
        quoted: &quoted,
        event_log: Some(&log),
    });
    assert_eq!(results.passed, vec!["sb-cert-host"]);

    // Another machine's boot does not satisfy it.
    let other = EventLog::parse(
        &std::fs::read(testdata("ubuntu_2104_shielded_vm_no_secure_boot_eventlog")).unwrap(),
        &EventLogLimits::default(),
    )
    .unwrap();
    let other_quoted = other.replay();
    let results = policies.evaluate(&PolicyFacts {
        quoted: &other_quoted,
        event_log: Some(&other),
    });
    assert!(results.passed.is_empty());
    let rules: Vec<&str> = results.failed[0]
        .1
        .iter()
        .map(|v| v.rule.as_str())
        .collect();
    assert!(
        rules.contains(&"require_secure_boot") && rules.contains(&"pcrs.sha256.0"),
        "{rules:?}"
    );
}

#[test]
fn help_lists_every_command() {
    let out = issuer(&["--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for command in ["eventlog", "quote", "credential", "policy"] {
        assert!(text.contains(command), "{text}");
    }
}

/// A store with `n` audit records and a config pointing at it.
fn store_with_records(dir: &Path, n: usize) -> PathBuf {
    use rootmark_issuer::store::{Actor, AuditEvent, Datastore, SqliteStore};
    let data = dir.join("data");
    let store = SqliteStore::open_in_dir(&data).unwrap();
    for i in 0..n {
        store
            .append_event(&AuditEvent {
                kind: "admin.note",
                actor: Actor::Admin { uid: 0 },
                subject: "test",
                payload: &serde_json::json!({ "n": i }),
            })
            .unwrap();
    }
    drop(store);
    let config = dir.join("issuer.toml");
    std::fs::write(
        &config,
        format!("data_dir = {:?}\n", data.display().to_string()),
    )
    .unwrap();
    config
}

#[test]
fn audit_verify_passes_then_names_the_edited_and_the_deleted_record() {
    let dir = tempfile::tempdir().unwrap();
    let config = store_with_records(dir.path(), 10);
    let db = dir.path().join("data/rootmark.db");
    let verify = |extra: &[&str]| {
        let mut args = vec!["audit", "verify", "--config", config.to_str().unwrap()];
        args.extend_from_slice(extra);
        issuer(&args)
    };
    let ok = verify(&[]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("10 records"));
    let json = verify(&["--output", "json"]);
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(value["ok"], true);
    assert_eq!(value["records"], 10);

    let sqlite = |sql: &str| {
        let out = Command::new("sqlite3").arg(&db).arg(sql).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    sqlite("UPDATE audit SET payload = '{\"n\":99}' WHERE seq = 5");
    let edited = verify(&[]);
    assert_eq!(edited.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&edited.stderr);
    assert!(
        stderr.contains('5') && stderr.contains("edited"),
        "{stderr}"
    );

    // A fresh store, with one record deleted.
    let dir = tempfile::tempdir().unwrap();
    let config = store_with_records(dir.path(), 10);
    let db = dir.path().join("data/rootmark.db");
    let out = Command::new("sqlite3")
        .arg(&db)
        .arg("DELETE FROM audit WHERE seq = 7")
        .output()
        .unwrap();
    assert!(out.status.success());
    let deleted = issuer(&["audit", "verify", "--config", config.to_str().unwrap()]);
    assert_eq!(deleted.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&deleted.stderr);
    assert!(stderr.contains("record 7 missing"), "{stderr}");
}

#[test]
fn audit_export_writes_one_json_line_per_record() {
    let dir = tempfile::tempdir().unwrap();
    let config = store_with_records(dir.path(), 3);
    let out = issuer(&["audit", "export", "--config", config.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[2]["seq"], 3);
    assert_eq!(lines[2]["kind"], "admin.note");
}

#[test]
fn audit_verify_without_config_says_how_to_fix() {
    let out = Command::new(env!("CARGO_BIN_EXE_rootmark-issuer"))
        .args(["audit", "verify", "--config", "/nonexistent/issuer.toml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("ROOTMARK_ISSUER_CONFIG"));
}
