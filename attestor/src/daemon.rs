//! `rootmark-attestor run`: the TPM, the sealed cache, the agent's
//! background tasks and the Workload API server, wired from one
//! [`AttestorConfig`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::task::JoinHandle;

use crate::agent::{Agent, IssuerLink, Timing};
use crate::cache::{Readiness, SealedCache, Snapshot};
use crate::config::AttestorConfig;
use crate::node::{NodeAttestor, NodeAttestorConfig, SharedTpm};
use crate::tpm::TpmError;
use crate::workload::{WorkloadAttestor, WorkloadAttestorConfig};
use crate::workload_api::{WorkloadApi, bind, incoming};

/// Why the attestor could not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaemonError {
    /// A configuration value is unusable.
    #[error("configuration: {0}")]
    Config(String),
    /// The TPM could not be opened.
    #[error(transparent)]
    Tpm(#[from] TpmError),
    /// The trust bundle could not be read.
    #[error(
        "cannot use the issuer bundle {path}: {reason}; write the issuer's CA there \
         (`rootmark-issuer bundle show --pem > {path}`)"
    )]
    Bundle {
        /// The configured file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The Workload API socket could not be bound.
    #[error("cannot listen on the Workload API socket {path}: {source}")]
    Socket {
        /// The configured socket.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The Workload API server failed.
    #[error("the Workload API server stopped: {0}")]
    Server(String),
}

/// A running attestor.
#[derive(Debug)]
pub struct Daemon {
    agent: Arc<Agent>,
    tasks: Vec<JoinHandle<()>>,
    server: JoinHandle<()>,
    socket_path: PathBuf,
}

impl Daemon {
    /// Opens the TPM and the sealed cache, starts attesting and serves the
    /// Workload API. Returns once the socket is listening.
    pub async fn start(config: &AttestorConfig) -> Result<Self, DaemonError> {
        raise_open_file_limit();
        let node_config = NodeAttestorConfig::from_config(config).map_err(DaemonError::Config)?;
        let issuer_id = config.issuer_spiffe_id().map_err(DaemonError::Config)?;
        let tcti = config.tpm.tcti.clone();
        let release = config.tpm.release_between_operations();
        let tpm = tokio::task::spawn_blocking(move || SharedTpm::open(&tcti, release))
            .await
            .map_err(|e| DaemonError::Config(format!("TPM open task: {e}")))??;

        let (cache, initial) = open_cache(&tpm, config).await;
        let bundle = bootstrap_bundle(&config.issuer.bundle_path, &initial)?;

        let link = IssuerLink::new(config.issuer.issuance_api.clone(), issuer_id);
        let timing = Timing {
            retry_max: Duration::from_secs(config.issuer.retry_max_seconds),
            ..Timing::default()
        };
        let agent = Agent::new(
            link,
            config.workload.max_cached_jwt_svids,
            initial,
            timing,
            cache,
        );
        let tasks = agent.start(NodeAttestor::new(tpm, node_config), bundle);

        let workload_attestor = Arc::new(WorkloadAttestor::new(WorkloadAttestorConfig {
            max_exe_bytes: config.workload.max_exe_bytes,
            ..WorkloadAttestorConfig::default()
        }));
        let listener = bind(&config.socket_path).map_err(|source| DaemonError::Socket {
            path: config.socket_path.clone(),
            source,
        })?;
        let service = WorkloadApi::new(Arc::clone(&agent), workload_attestor).into_service();
        // Reflection lets grpcurl and friends discover the API on the socket.
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(rootmark_proto::workload::FILE_DESCRIPTOR_SET)
            .build_v1()
            .map_err(|e| DaemonError::Server(format!("gRPC reflection: {e}")))?;
        let routes = tonic::service::Routes::new(service).add_service(reflection);
        let server = tokio::spawn(crate::http2::serve(incoming(listener), routes));
        tracing::info!(socket = %config.socket_path.display(), "Workload API listening");
        Ok(Daemon {
            agent,
            tasks,
            server,
            socket_path: config.socket_path.clone(),
        })
    }

    /// The agent's state.
    pub fn agent(&self) -> &Arc<Agent> {
        &self.agent
    }

    /// Runs until the Workload API server stops (which it does only on error).
    pub async fn wait(self) -> Result<(), DaemonError> {
        let result = match self.server.await {
            // The accept loop runs until the listener is gone.
            Ok(()) => Err(DaemonError::Server(
                "the Workload API socket stopped accepting".into(),
            )),
            Err(e) => Err(DaemonError::Server(e.to_string())),
        };
        for task in &self.tasks {
            task.abort();
        }
        result
    }

    /// Stops everything and removes the socket.
    pub fn shutdown(self) {
        self.server.abort();
        for task in &self.tasks {
            task.abort();
        }
        let _ = std::fs::remove_file(&self.socket_path);
    }
}

/// Opens the sealed cache and reads what it holds (unexpired SVIDs only).
/// A cache that cannot be used is logged and replaced: the attestor then
/// starts empty and waits for the issuer.
async fn open_cache(
    tpm: &SharedTpm,
    config: &AttestorConfig,
) -> (Option<Arc<SealedCache>>, Snapshot) {
    let dir = config.data_dir.clone();
    let boot_pcrs = match config.tpm.boot_selection() {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "no boot PCRs; the sealed cache is off");
            return (None, Snapshot::default());
        }
    };
    let opened = tpm
        .run(move |tpm| SealedCache::open(tpm, &dir, &boot_pcrs))
        .await;
    let cache = match opened {
        Ok(cache) => Arc::new(cache),
        Err(e) => {
            tracing::error!(error = %e, "the sealed cache is unavailable; identities will not survive a restart");
            return (None, Snapshot::default());
        }
    };
    let loaded = {
        let cache = Arc::clone(&cache);
        tokio::task::spawn_blocking(move || cache.load()).await
    };
    let snapshot = match loaded {
        Ok(Ok(Some(mut snapshot))) => {
            snapshot.prune(SystemTime::now());
            tracing::info!(
                entries = snapshot.entries.len(),
                svids = snapshot.svids.len(),
                readiness = ?snapshot.readiness,
                "serving the sealed cache until the issuer answers"
            );
            snapshot
        }
        Ok(Ok(None)) => Snapshot::default(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "the sealed cache could not be read; starting empty");
            Snapshot::default()
        }
        Err(e) => {
            tracing::warn!(error = %e, "the sealed cache reader failed; starting empty");
            Snapshot::default()
        }
    };
    (Some(cache), snapshot)
}

/// The CA certificates the first attestation trusts: the configured file,
/// plus the bundle the sealed cache remembers (it may hold a newer CA).
fn bootstrap_bundle(path: &Path, cached: &Snapshot) -> Result<Vec<Vec<u8>>, DaemonError> {
    let mut bundle = match std::fs::read(path) {
        Ok(bytes) => parse_certificates(&bytes).map_err(|reason| DaemonError::Bundle {
            path: path.to_owned(),
            reason,
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && cached.bundle.is_some() => Vec::new(),
        Err(e) => {
            return Err(DaemonError::Bundle {
                path: path.to_owned(),
                reason: e.to_string(),
            });
        }
    };
    if cached.readiness == Readiness::Ready
        && let Some(b) = &cached.bundle
    {
        for cert in &b.x509_authorities {
            if !bundle.contains(cert) {
                bundle.push(cert.clone());
            }
        }
    }
    Ok(bundle)
}

/// Certificates from PEM text or concatenated DER.
pub fn parse_certificates(bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut certs = Vec::new();
    if bytes.trim_ascii_start().starts_with(b"-----BEGIN") {
        for pem in x509_parser::pem::Pem::iter_from_buffer(bytes) {
            let pem = pem.map_err(|e| format!("bad PEM: {e}"))?;
            if pem.label == "CERTIFICATE" {
                x509_parser::parse_x509_certificate(&pem.contents)
                    .map_err(|e| format!("certificate {}: {e}", certs.len() + 1))?;
                certs.push(pem.contents);
            }
        }
    } else {
        let mut rest = bytes;
        while !rest.is_empty() {
            let (next, _) = x509_parser::parse_x509_certificate(rest)
                .map_err(|e| format!("DER certificate {}: {e}", certs.len() + 1))?;
            let used = rest.len() - next.len();
            certs.push(rest[..used].to_vec());
            rest = next;
        }
    }
    if certs.is_empty() {
        return Err("no CERTIFICATE in the file".to_owned());
    }
    Ok(certs)
}

/// Raises the open-file limit as far as allowed: every Workload API
/// connection holds a socket and a pidfd, and a host can have thousands of
/// watching workloads. With CAP_SYS_RESOURCE (root) the hard limit goes up
/// to the kernel's `fs.nr_open`; otherwise the soft limit goes up to the
/// hard one (raise it with `LimitNOFILE=` in the unit).
fn raise_open_file_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let ceiling = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    if let Some(ceiling) = ceiling
        && limit.maximum.is_some_and(|max| max < ceiling)
        && setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(ceiling),
                maximum: Some(ceiling),
            },
        )
        .is_ok()
    {
        tracing::debug!(limit = ceiling, "raised the open-file limit to fs.nr_open");
        return;
    }
    if limit.current != limit.maximum {
        let raised = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => tracing::debug!(limit = ?limit.maximum, "raised the open-file limit"),
            Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
        }
    }
}
