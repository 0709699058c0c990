//! A running Rootmark for end-to-end tests: the [`DevEnv`] (swtpm, event
//! log, configs) plus real `rootmark-issuer` and `rootmark-attestor`
//! processes, each killed when the cluster is dropped.
//!
//! The binaries are taken from `ROOTMARK_BIN_DIR`, or from the cargo
//! target directory of the running test (`target/debug`); `./dev/test`
//! builds them before running the tests.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::devenv::{DevEnv, DevEnvError, DevEnvOptions};

/// Why the cluster could not be started or driven.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// The environment could not be prepared.
    #[error(transparent)]
    DevEnv(#[from] DevEnvError),
    /// A binary is missing.
    #[error("{0} not found; build the binaries first: cargo build --workspace --bins")]
    MissingBinary(PathBuf),
    /// A process could not be started.
    #[error("starting {what}: {source}")]
    Spawn {
        /// Which process.
        what: &'static str,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Something did not happen in time.
    #[error("timed out after {waited:?} waiting for {what}; logs: {logs}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long.
        waited: Duration,
        /// The tail of the process logs.
        logs: String,
    },
    /// An admin command failed.
    #[error("`rootmark-issuer {args}` failed: {output}")]
    Admin {
        /// The arguments.
        args: String,
        /// Its stderr and stdout.
        output: String,
    },
}

/// The directory holding `rootmark-issuer` and `rootmark-attestor`.
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("ROOTMARK_BIN_DIR") {
        return PathBuf::from(dir);
    }
    // A test runs from target/<profile>/deps/, a binary from target/<profile>/.
    std::env::current_exe()
        .ok()
        .and_then(|exe| {
            let dir = exe.parent()?;
            if dir.file_name().is_some_and(|n| n == "deps") {
                dir.parent().map(Path::to_path_buf)
            } else {
                Some(dir.to_path_buf())
            }
        })
        .unwrap_or_else(|| PathBuf::from("target/debug"))
}

/// Issuer, attestor and swtpm of one host.
pub struct Cluster {
    env: DevEnv,
    _dir: tempfile::TempDir,
    bins: PathBuf,
    issuer: Option<Child>,
    attestor: Option<Child>,
}

impl Cluster {
    /// Prepares the environment and starts the issuer; the attestor is
    /// started by [`start_attestor`](Self::start_attestor), so entries can be
    /// registered first.
    pub fn start(options: &DevEnvOptions) -> Result<Self, ClusterError> {
        let bins = bin_dir();
        for name in ["rootmark-issuer", "rootmark-attestor"] {
            if !bins.join(name).exists() {
                return Err(ClusterError::MissingBinary(bins.join(name)));
            }
        }
        let dir = tempfile::Builder::new()
            .prefix("rootmark-e2e-")
            .tempdir()
            .map_err(|source| ClusterError::Spawn {
                what: "temp dir",
                source,
            })?;
        let env = DevEnv::init(dir.path(), options)?;
        let mut cluster = Cluster {
            env,
            _dir: dir,
            bins,
            issuer: None,
            attestor: None,
        };
        cluster.start_issuer()?;
        let bundle =
            cluster.wait_for("the issuer's admin socket", Duration::from_secs(30), || {
                cluster.admin(&["bundle", "show", "--pem"]).ok()
            })?;
        std::fs::write(cluster.env.bundle_path(), bundle.stdout).map_err(|source| {
            ClusterError::Spawn {
                what: "bundle.pem",
                source,
            }
        })?;
        Ok(cluster)
    }

    /// The environment (configs, swtpm, boot log).
    pub fn env(&self) -> &DevEnv {
        &self.env
    }

    /// The environment, mutably (to extend PCRs on the swtpm).
    pub fn env_mut(&mut self) -> &mut DevEnv {
        &mut self.env
    }

    /// `unix://…` of the Workload API.
    pub fn endpoint(&self) -> String {
        self.env.endpoint()
    }

    fn spawn(
        &self,
        what: &'static str,
        binary: &str,
        config: &Path,
        log: &str,
    ) -> Result<Child, ClusterError> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.env.dir().join(log))
            .map_err(|source| ClusterError::Spawn { what, source })?;
        let err = log
            .try_clone()
            .map_err(|source| ClusterError::Spawn { what, source })?;
        Command::new(self.bins.join(binary))
            .arg("run")
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "info")
            .env("TSS2_LOG", "all+NONE")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|source| ClusterError::Spawn { what, source })
    }

    /// Starts (or restarts) the issuer.
    pub fn start_issuer(&mut self) -> Result<(), ClusterError> {
        self.kill_issuer();
        let child = self.spawn(
            "rootmark-issuer",
            "rootmark-issuer",
            &self.env.issuer_config(),
            "issuer.log",
        )?;
        self.issuer = Some(child);
        Ok(())
    }

    /// Kills the issuer with SIGKILL.
    pub fn kill_issuer(&mut self) {
        if let Some(mut child) = self.issuer.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts (or restarts) the attestor and waits until its socket exists.
    pub fn start_attestor(&mut self) -> Result<(), ClusterError> {
        self.stop_attestor();
        let child = self.spawn(
            "rootmark-attestor",
            "rootmark-attestor",
            &self.env.attestor_config(),
            "attestor.log",
        )?;
        self.attestor = Some(child);
        let socket = self.env.socket();
        self.wait_for("the Workload API socket", Duration::from_secs(30), || {
            socket.exists().then_some(())
        })?;
        Ok(())
    }

    /// The attestor's pid, while it runs.
    pub fn attestor_pid(&self) -> Option<u32> {
        self.attestor.as_ref().map(Child::id)
    }

    /// Stops the attestor (SIGKILL: as abrupt as a crash).
    pub fn stop_attestor(&mut self) {
        if let Some(mut child) = self.attestor.take() {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_file(self.env.socket());
        }
    }

    /// Runs `rootmark-issuer ARGS` against this cluster's issuer.
    pub fn admin(&self, args: &[&str]) -> Result<Output, ClusterError> {
        let output = Command::new(self.bins.join("rootmark-issuer"))
            .args(args)
            .env("ROOTMARK_ISSUER_CONFIG", self.env.issuer_config())
            .output()
            .map_err(|source| ClusterError::Spawn {
                what: "rootmark-issuer (admin)",
                source,
            })?;
        if output.status.success() {
            Ok(output)
        } else {
            Err(ClusterError::Admin {
                args: args.join(" "),
                output: format!(
                    "{}{}",
                    String::from_utf8_lossy(&output.stderr),
                    String::from_utf8_lossy(&output.stdout)
                ),
            })
        }
    }

    /// Registers `spiffe_id` for workloads with all of `selectors` on this
    /// node (`tpm:policy:dev-boot`), with extra `rootmark-issuer entry
    /// create` flags; returns the entry id.
    pub fn register(
        &self,
        spiffe_id: &str,
        selectors: &[&str],
        extra: &[&str],
    ) -> Result<String, ClusterError> {
        let mut args = vec![
            "entry",
            "create",
            "--output",
            "json",
            "--spiffe-id",
            spiffe_id,
            "--node-selector",
            "tpm:policy:dev-boot",
        ];
        for s in selectors {
            args.push("--selector");
            args.push(s);
        }
        args.extend_from_slice(extra);
        let output = self.admin(&args)?;
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        // The JSON answer carries the new entry's "id".
        let id = text
            .split("\"id\"")
            .nth(1)
            .and_then(|rest| rest.split('"').nth(1))
            .map(str::to_owned)
            .ok_or_else(|| ClusterError::Admin {
                args: args.join(" "),
                output: format!("no id in {text}"),
            })?;
        Ok(id)
    }

    /// Polls `probe` every 100 ms until it returns `Some`, for at most `limit`.
    pub fn wait_for<T>(
        &self,
        what: &str,
        limit: Duration,
        mut probe: impl FnMut() -> Option<T>,
    ) -> Result<T, ClusterError> {
        let start = Instant::now();
        loop {
            if let Some(value) = probe() {
                return Ok(value);
            }
            // A process that already exited will not bring the awaited event.
            let exited = [
                ("issuer.log", &self.issuer),
                ("attestor.log", &self.attestor),
            ]
            .iter()
            .any(|(_, child)| child.as_ref().is_some_and(|c| process_exited(c.id())));
            if start.elapsed() > limit || exited {
                return Err(ClusterError::Timeout {
                    what: what.to_owned(),
                    waited: limit,
                    logs: self.log_tails(),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The last lines of the issuer's and the attestor's logs.
    pub fn log_tails(&self) -> String {
        let mut out = String::new();
        for log in ["issuer.log", "attestor.log"] {
            let text = std::fs::read_to_string(self.env.dir().join(log)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = &lines[lines.len().saturating_sub(15)..];
            out.push_str(&format!("\n--- {log} ---\n{}", tail.join("\n")));
        }
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop_attestor();
        self.kill_issuer();
        if std::env::var_os("ROOTMARK_KEEP_E2E").is_some() {
            eprintln!("ROOTMARK_KEEP_E2E: keeping {}", self.env.dir().display());
            let dir = std::mem::replace(
                &mut self._dir,
                tempfile::Builder::new()
                    .prefix("rootmark-e2e-empty-")
                    .tempdir()
                    .unwrap_or_else(|_| panic!("no temp dir")),
            );
            let _ = dir.keep();
        }
    }
}

/// Whether `pid` is gone or a zombie (a child that exited and was not reaped).
fn process_exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => true,
    }
}

/// A plain gRPC channel to the Workload API socket at `path`, for calls a
/// Workload API client library would not make (no security header,
/// reflection, load generation).
pub async fn workload_channel(
    path: PathBuf,
) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    tonic::transport::Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_| {
            let path = path.clone();
            async move {
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                    tokio::net::UnixStream::connect(path).await?,
                ))
            }
        }))
        .await
}

/// The uid of this process (the owner of `/proc/self`).
pub fn current_uid() -> u32 {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(u32::MAX)
}
