//! A complete single-host Rootmark under one directory: a manufactured
//! swtpm that booted a simulated measured boot, the event log it would
//! expose, the EK CA, and `issuer.toml` / `attestor.toml` that point at all
//! of it. `./dev/up` and the end-to-end tests both start from here.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::path::{Path, PathBuf};

use rootmark_attestor::tpm::Tpm;

use crate::boot::{Bank, BootLog, BootProfile};
use crate::measure;
use crate::swtpm::{Swtpm, SwtpmError};

/// Why the environment could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DevEnvError {
    /// The swtpm could not be manufactured or started.
    #[error(transparent)]
    Swtpm(#[from] SwtpmError),
    /// The simulated boot could not be measured into the swtpm.
    #[error("measuring the simulated boot: {0}")]
    Measure(String),
    /// A file could not be written.
    #[error("{what}: {source}")]
    Io {
        /// What was being written.
        what: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> DevEnvError {
    let what = what.into();
    move |source| DevEnvError::Io { what, source }
}

/// Lifetimes and pacing of the environment.
#[derive(Debug, Clone)]
pub struct DevEnvOptions {
    /// The trust domain.
    pub trust_domain: String,
    /// Node SVID lifetime (`1h`, `60s`, …).
    pub node_ttl: String,
    /// Default X509-SVID lifetime.
    pub x509_ttl: String,
    /// Default JWT-SVID lifetime.
    pub jwt_ttl: String,
    /// The attestor's longest retry pause, in seconds.
    pub retry_max_seconds: u64,
}

impl Default for DevEnvOptions {
    fn default() -> Self {
        DevEnvOptions {
            trust_domain: "example.org".to_owned(),
            node_ttl: "1h".to_owned(),
            x509_ttl: "1h".to_owned(),
            jwt_ttl: "5m".to_owned(),
            retry_max_seconds: 30,
        }
    }
}

/// The name of the node policy `init` writes: it pins the simulated boot's
/// PCRs 0, 2, 4 and 7, and entries select nodes with `tpm:policy:dev-boot`.
pub const DEV_POLICY: &str = "dev-boot";

/// A prepared environment; the swtpm runs for as long as this lives (or
/// until [`detach`](Self::detach)).
pub struct DevEnv {
    dir: PathBuf,
    swtpm: Swtpm,
    /// The simulated boot measured into the swtpm.
    pub boot: BootLog,
    /// The node attestation API port.
    pub node_api_port: u16,
    /// The issuance API port.
    pub issuance_api_port: u16,
}

impl DevEnv {
    /// Manufactures a swtpm under `dir/swtpm`, boots it, writes the event
    /// log, the EK roots and both configuration files.
    pub fn init(dir: &Path, options: &DevEnvOptions) -> Result<Self, DevEnvError> {
        std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
        let dir = dir
            .canonicalize()
            .map_err(io(format!("resolving {}", dir.display())))?;
        let swtpm = Swtpm::start_in(&dir.join("swtpm"))?;
        let boot = BootLog::simulate(&BootProfile::default());
        {
            let mut tpm =
                Tpm::open(&swtpm.tcti()).map_err(|e| DevEnvError::Measure(e.to_string()))?;
            measure::extend_boot(tpm.context_mut(), &boot)
                .map_err(|e| DevEnvError::Measure(e.to_string()))?;
        }
        std::fs::write(dir.join("eventlog.bin"), boot.to_bytes())
            .map_err(io("writing the event log"))?;
        let roots = dir.join("ek-roots");
        std::fs::create_dir_all(&roots).map_err(io("creating ek-roots"))?;
        std::fs::copy(swtpm.ek_root_ca_pem_path(), roots.join("swtpm-root.pem"))
            .map_err(io("copying the EK root CA"))?;
        std::fs::copy(
            swtpm.ek_issuer_ca_pem_path(),
            roots.join("swtpm-issuer.pem"),
        )
        .map_err(io("copying the EK issuer CA"))?;
        let env = DevEnv {
            dir,
            swtpm,
            boot,
            node_api_port: free_port()?,
            issuance_api_port: free_port()?,
        };
        std::fs::write(env.issuer_config(), env.issuer_toml(options))
            .map_err(io("writing issuer.toml"))?;
        std::fs::write(env.attestor_config(), env.attestor_toml(options))
            .map_err(io("writing attestor.toml"))?;
        Ok(env)
    }

    /// The environment's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The swtpm.
    pub fn swtpm(&self) -> &Swtpm {
        &self.swtpm
    }

    /// The swtpm, to extend PCRs or reboot it.
    pub fn swtpm_mut(&mut self) -> &mut Swtpm {
        &mut self.swtpm
    }

    /// `issuer.toml`.
    pub fn issuer_config(&self) -> PathBuf {
        self.dir.join("issuer.toml")
    }

    /// `attestor.toml`.
    pub fn attestor_config(&self) -> PathBuf {
        self.dir.join("attestor.toml")
    }

    /// The Workload API socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("workload.sock")
    }

    /// `unix://…` for `SPIFFE_ENDPOINT_SOCKET`.
    pub fn endpoint(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    /// The issuer CA file the attestor trusts at first contact.
    pub fn bundle_path(&self) -> PathBuf {
        self.dir.join("bundle.pem")
    }

    /// Leaves the swtpm running and returns its pid.
    pub fn detach(self) -> Option<u32> {
        self.swtpm.detach()
    }

    fn issuer_toml(&self, options: &DevEnvOptions) -> String {
        let d = self.dir.display();
        let admin_uid = match current_uid() {
            Some(uid) if uid != 0 => format!("admin_uid = {uid}\n"),
            _ => String::new(),
        };
        let mut toml = format!(
            "# Written by rootmark-dev init: a single-host development issuer.\n\
             trust_domain = \"{td}\"\n\
             data_dir = \"{d}/issuer\"\n\
             listen = \"127.0.0.1:{node}\"\n\
             issuance_listen = \"127.0.0.1:{iss}\"\n\
             admin_socket = \"{d}/issuer-admin.sock\"\n\
             {admin_uid}\n\
             [svid]\n\
             node_ttl = \"{node_ttl}\"\n\
             x509_ttl = \"{x509_ttl}\"\n\
             jwt_ttl = \"{jwt_ttl}\"\n\n\
             [attestation]\n\
             ek_roots = \"{d}/ek-roots\"\n\
             max_attestations_per_node_per_minute = 120\n\n\
             # The simulated boot's firmware, boot loader, kernel and Secure Boot state.\n\
             [[node_policy]]\n\
             name = \"{DEV_POLICY}\"\n\n\
             [node_policy.pcrs.sha256]\n",
            td = options.trust_domain,
            node = self.node_api_port,
            iss = self.issuance_api_port,
            node_ttl = options.node_ttl,
            x509_ttl = options.x509_ttl,
            jwt_ttl = options.jwt_ttl,
        );
        let pcrs = self.boot.expected_pcrs(Bank::Sha256);
        for index in [0u32, 2, 4, 7] {
            if let Some(value) = pcrs.get(&index) {
                let _ = writeln!(toml, "\"{index}\" = [\"{}\"]", hex::encode(value));
            }
        }
        toml
    }

    fn attestor_toml(&self, options: &DevEnvOptions) -> String {
        let d = self.dir.display();
        format!(
            "# Written by rootmark-dev init: the attestor of the development host.\n\
             trust_domain = \"{td}\"\n\
             data_dir = \"{d}/attestor\"\n\
             socket_path = \"{d}/workload.sock\"\n\n\
             [issuer]\n\
             node_api = \"127.0.0.1:{node}\"\n\
             issuance_api = \"127.0.0.1:{iss}\"\n\
             bundle_path = \"{d}/bundle.pem\"\n\
             retry_max_seconds = {retry}\n\n\
             [tpm]\n\
             tcti = \"{tcti}\"\n\
             event_log_path = \"{d}/eventlog.bin\"\n",
            td = options.trust_domain,
            node = self.node_api_port,
            iss = self.issuance_api_port,
            retry = options.retry_max_seconds,
            tcti = self.swtpm.tcti(),
        )
    }
}

/// A loopback port nothing listens on right now.
fn free_port() -> Result<u16, DevEnvError> {
    let listener = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))
        .map_err(io("finding a free port"))?;
    let port = listener
        .local_addr()
        .map_err(io("finding a free port"))?
        .port();
    Ok(port)
}

/// The uid of this process (the owner of `/proc/self`).
fn current_uid() -> Option<u32> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}
