//! A real swtpm per test: manufactured in a temp dir with EK certificates from
//! a private local CA, listening on its own loopback TCP port pair, killed on
//! drop.

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// Why a swtpm could not be manufactured or started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SwtpmError {
    /// A tool is missing from PATH.
    #[error(
        "{tool} not found: install it with `apt-get install -y swtpm swtpm-tools` (or run ./dev/test, which does)"
    )]
    ToolMissing {
        /// The missing program.
        tool: &'static str,
    },
    /// A tool ran and failed.
    #[error("{tool} failed ({status}): {output}")]
    ToolFailed {
        /// The program.
        tool: &'static str,
        /// Its exit status.
        status: String,
        /// Its stderr and stdout.
        output: String,
    },
    /// Some file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What the harness was doing.
        what: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// swtpm did not come up on any of the ports tried.
    #[error("swtpm did not start after {attempts} port pairs; last log: {log}")]
    NotStarted {
        /// How many port pairs were tried.
        attempts: u32,
        /// The tail of swtpm's log.
        log: String,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> SwtpmError {
    let what = what.into();
    move |source| SwtpmError::Io { what, source }
}

/// A running swtpm with its own state, configuration and EK CA.
pub struct Swtpm {
    dir: SwtpmDir,
    child: Option<Child>,
    port: u16,
}

/// Where a swtpm keeps its state: a temp dir removed on drop, or a
/// directory the caller owns (`./dev/up`).
enum SwtpmDir {
    Temp(TempDir),
    Kept(PathBuf),
}

impl SwtpmDir {
    fn path(&self) -> &Path {
        match self {
            SwtpmDir::Temp(dir) => dir.path(),
            SwtpmDir::Kept(path) => path,
        }
    }
}

/// Next port-pair candidate. Each test process starts in its own region,
/// derived from its pid, so parallel test binaries rarely collide; a collision
/// is still handled by trying the next pair.
static NEXT_PORT: AtomicU32 = AtomicU32::new(0);

fn next_port_pair() -> u16 {
    const LOW: u32 = 20_000;
    const SPAN: u32 = 40_000;
    let mut current = NEXT_PORT.load(Ordering::Relaxed);
    loop {
        let base = if current == 0 {
            LOW + (std::process::id() * 97 % (SPAN / 2)) * 2
        } else {
            current
        };
        let next = if base + 2 >= LOW + SPAN {
            LOW
        } else {
            base + 2
        };
        match NEXT_PORT.compare_exchange(current, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return u16::try_from(base).unwrap_or(20_000),
            Err(actual) => current = actual,
        }
    }
}

fn port_free(port: u16) -> bool {
    TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)).is_ok()
}

impl Swtpm {
    /// Manufactures a fresh TPM 2.0 (RSA-2048 and ECC P-384 EKs with
    /// certificates, a platform certificate, SHA-1 and SHA-256 banks) and
    /// starts it.
    pub fn start() -> Result<Self, SwtpmError> {
        let dir = tempfile::Builder::new()
            .prefix("rootmark-swtpm-")
            .tempdir()
            .map_err(io("creating the swtpm temp dir"))?;
        manufacture(dir.path())?;
        let mut swtpm = Swtpm {
            dir: SwtpmDir::Temp(dir),
            child: None,
            port: 0,
        };
        swtpm.launch()?;
        Ok(swtpm)
    }

    /// Like [`start`](Self::start), with state, configuration and EK CA
    /// under `dir`, which is kept after the swtpm stops.
    pub fn start_in(dir: &Path) -> Result<Self, SwtpmError> {
        std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
        manufacture(dir)?;
        let mut swtpm = Swtpm {
            dir: SwtpmDir::Kept(dir.to_owned()),
            child: None,
            port: 0,
        };
        swtpm.launch()?;
        Ok(swtpm)
    }

    /// The swtpm's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Leaves the swtpm running after this handle is gone (for `./dev/up`,
    /// whose `./dev/down` stops it by pid). Returns the pid.
    pub fn detach(mut self) -> Option<u32> {
        self.child.take().map(|child| child.id())
    }

    /// The TCTI string for tss-esapi and tpm2-tools (`swtpm:host=…,port=…`).
    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    /// The TPM command port; the control port is `port() + 1`.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory holding the TPM state, config and CA.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The local CA's self-signed root certificate (PEM): the "manufacturer
    /// root" an issuer would trust for this TPM's EK certificate.
    pub fn ek_root_ca_pem_path(&self) -> PathBuf {
        self.ca_dir().join("swtpm-localca-rootca-cert.pem")
    }

    /// The local CA's intermediate certificate (PEM) that signed the EK certificates.
    pub fn ek_issuer_ca_pem_path(&self) -> PathBuf {
        self.ca_dir().join("issuercert.pem")
    }

    /// Runs a tpm2-tools command (`args[0]` is the tool) against this TPM in
    /// `dir`, after flushing transient objects (swtpm has no resource manager
    /// and tpm2-tools leave objects loaded). Returns the output whether or not
    /// the tool succeeded; see [`Swtpm::tool_ok`].
    pub fn tool(&self, dir: &Path, args: &[&str]) -> std::io::Result<std::process::Output> {
        let tcti = self.tcti();
        let _ = Command::new("tpm2_flushcontext")
            .args(["-T", &tcti, "-t"])
            .output();
        let (tool, rest) = args
            .split_first()
            .ok_or_else(|| std::io::Error::other("no tool given"))?;
        Command::new(tool)
            .args(["-T", &tcti])
            .args(rest)
            .current_dir(dir)
            .output()
    }

    /// Like [`Swtpm::tool`], but panics with the tool's stderr unless it succeeded:
    /// for test set-up steps that must work.
    pub fn tool_ok(&self, dir: &Path, args: &[&str]) -> std::process::Output {
        match self.tool(dir, args) {
            Ok(output) if output.status.success() => output,
            Ok(output) => panic!(
                "{args:?} failed: {}",
                String::from_utf8_lossy(&output.stderr)
            ),
            Err(e) => panic!("{args:?} did not run: {e}"),
        }
    }

    /// The root CA certificate's PEM text.
    pub fn ek_root_ca_pem(&self) -> Result<String, SwtpmError> {
        let path = self.ek_root_ca_pem_path();
        std::fs::read_to_string(&path).map_err(io(format!("reading {}", path.display())))
    }

    fn ca_dir(&self) -> PathBuf {
        self.dir.path().join("cfg/var/lib/swtpm-localca")
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("swtpm.log")
    }

    /// Simulates a reboot: stops swtpm and starts it again on the same state,
    /// so PCRs are reset while keys and NV survive.
    pub fn reboot(&mut self) -> Result<(), SwtpmError> {
        self.stop();
        self.launch()
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn launch(&mut self) -> Result<(), SwtpmError> {
        const ATTEMPTS: u32 = 20;
        for _ in 0..ATTEMPTS {
            let port = next_port_pair();
            if port == u16::MAX || !port_free(port) || !port_free(port + 1) {
                continue;
            }
            let state = self.state_dir();
            let log = self.log_path();
            let child = Command::new("swtpm")
                .arg("socket")
                .arg("--tpm2")
                .arg("--tpmstate")
                .arg(format!("dir={}", state.display()))
                .arg("--server")
                .arg(format!("type=tcp,port={port},bindaddr=127.0.0.1"))
                .arg("--ctrl")
                .arg(format!("type=tcp,port={},bindaddr=127.0.0.1", port + 1))
                .arg("--flags")
                .arg("not-need-init,startup-clear")
                .arg("--log")
                .arg(format!("file={},level=2", log.display()))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
            let mut child = match child {
                Ok(child) => child,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(SwtpmError::ToolMissing { tool: "swtpm" });
                }
                Err(e) => return Err(io("spawning swtpm")(e)),
            };
            if wait_listening(&mut child, port + 1) {
                self.child = Some(child);
                self.port = port;
                return Ok(());
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        Err(SwtpmError::NotStarted {
            attempts: ATTEMPTS,
            log: log.lines().rev().take(10).collect::<Vec<_>>().join(" | "),
        })
    }
}

/// Waits until swtpm accepts on its control port; false if it exited or
/// did not come up within five seconds.
fn wait_listening(child: &mut Child, ctrl_port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        let addr = SocketAddrV4::new(Ipv4Addr::LOCALHOST, ctrl_port);
        if TcpStream::connect_timeout(&addr.into(), Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs `swtpm_setup` twice in `dir`: once to write a private configuration
/// (so the local CA lives in `dir/cfg/var/lib/swtpm-localca`, never the
/// system one), then to manufacture the TPM state with EK and platform
/// certificates.
fn manufacture(dir: &Path) -> Result<(), SwtpmError> {
    let cfg = dir.join("cfg");
    let state = dir.join("state");
    std::fs::create_dir_all(&cfg).map_err(io("creating the swtpm config dir"))?;
    std::fs::create_dir_all(&state).map_err(io("creating the swtpm state dir"))?;
    run_swtpm_setup(
        &cfg,
        &["--tpm2", "--create-config-files", "root,skip-if-exist"],
    )?;
    let state_arg = state.display().to_string();
    run_swtpm_setup(
        &cfg,
        &[
            "--tpm2",
            "--tpmstate",
            &state_arg,
            "--create-ek-cert",
            "--create-platform-cert",
            "--pcr-banks",
            "sha1,sha256",
            "--overwrite",
        ],
    )
}

fn run_swtpm_setup(cfg: &Path, args: &[&str]) -> Result<(), SwtpmError> {
    let output = Command::new("swtpm_setup")
        .args(args)
        .env("XDG_CONFIG_HOME", cfg)
        .stdin(Stdio::null())
        .output();
    let output = match output {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(SwtpmError::ToolMissing {
                tool: "swtpm_setup",
            });
        }
        Err(e) => return Err(io("running swtpm_setup")(e)),
    };
    if !output.status.success() {
        return Err(SwtpmError::ToolFailed {
            tool: "swtpm_setup",
            status: output.status.to_string(),
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&output.stderr),
                String::from_utf8_lossy(&output.stdout)
            ),
        });
    }
    Ok(())
}
