//! `rootmark-dev init DIR`: prepares a single-host Rootmark under DIR (a
//! manufactured swtpm that booted a simulated measured boot, its event log,
//! the EK CA, `issuer.toml` and `attestor.toml`) and leaves the swtpm
//! running, its pid in `DIR/swtpm.pid`. `./dev/up` starts the issuer and
//! the attestor on top.

use std::path::PathBuf;
use std::process::ExitCode;

use rootmark_swtpm_tests::devenv::{DevEnv, DevEnvOptions};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = match args.as_slice() {
        [cmd, dir] if cmd == "init" => PathBuf::from(dir),
        [flag] if flag == "--help" || flag == "-h" => {
            println!(
                "Usage: rootmark-dev init DIR\n\n\
                 Manufactures a swtpm under DIR/swtpm, measures a simulated boot into it, writes\n\
                 DIR/eventlog.bin, DIR/ek-roots/, DIR/issuer.toml and DIR/attestor.toml, and leaves\n\
                 the swtpm running (pid in DIR/swtpm.pid). Used by ./dev/up."
            );
            return ExitCode::SUCCESS;
        }
        _ => {
            eprintln!("usage: rootmark-dev init DIR   (see --help)");
            return ExitCode::from(2);
        }
    };
    match DevEnv::init(&dir, &DevEnvOptions::default()) {
        Ok(env) => {
            let tcti = env.swtpm().tcti();
            let issuer = env.issuer_config();
            let attestor = env.attestor_config();
            let pid_file = env.dir().join("swtpm.pid");
            let Some(pid) = env.detach() else {
                eprintln!("error: the swtpm is not running");
                return ExitCode::FAILURE;
            };
            if let Err(e) = std::fs::write(&pid_file, format!("{pid}\n")) {
                eprintln!("error: cannot write {}: {e}", pid_file.display());
                return ExitCode::FAILURE;
            }
            println!("swtpm: pid {pid}, {tcti}");
            println!("issuer config: {}", issuer.display());
            println!("attestor config: {}", attestor.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
