//! `rootmark-attestor`: the node daemon (`run`), and Workload API tools for
//! operators (`fetch`, `healthcheck`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand, ValueEnum};
use hyper_util::rt::TokioIo;
use rootmark_attestor::config::{ATTESTOR_CONFIG_ENV, AttestorConfig};
use rootmark_attestor::daemon::Daemon;
use rootmark_proto::workload as pb;
use rootmark_proto::workload::spiffe_workload_api_client::SpiffeWorkloadApiClient;
use rootmark_sdk::{SPIFFE_ENDPOINT_SOCKET_ENV, WORKLOAD_API_SECURITY_HEADER};
use tonic::transport::{Channel, Endpoint};

#[derive(Parser)]
#[command(
    name = "rootmark-attestor",
    version,
    about = "Rootmark node attestor: proves this host's measured boot with its TPM, keeps a \
             TPM-bound node key, and serves workload identities over the SPIFFE Workload API."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the attestor: attest the node to the issuer, follow its entries,
    /// rotate SVIDs, and serve the Workload API on the configured socket.
    Run {
        /// The attestor configuration (TOML).
        #[arg(long, env = ATTESTOR_CONFIG_ENV)]
        config: PathBuf,
    },
    /// Fetch this process's identity from the Workload API, like
    /// `spire-agent api fetch`.
    Fetch {
        #[command(subcommand)]
        what: FetchCommand,
    },
    /// Check that the attestor serves the Workload API (exit 0) or say why not (exit 1).
    Healthcheck {
        #[command(flatten)]
        socket: SocketArgs,
    },
}

#[derive(Subcommand)]
enum FetchCommand {
    /// Fetch the caller's X509-SVIDs and the trust bundle.
    X509 {
        #[command(flatten)]
        socket: SocketArgs,
        /// Also write svid.N.pem, svid.N.key and bundle.pem into this directory.
        #[arg(long)]
        write: Option<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Fetch JWT-SVIDs for an audience.
    Jwt {
        #[command(flatten)]
        socket: SocketArgs,
        /// The `aud` claim; repeat for several audiences.
        #[arg(long, required = true)]
        audience: Vec<String>,
        /// Only the SVID for this SPIFFE ID (when the caller has several).
        #[arg(long)]
        spiffe_id: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
}

#[derive(clap::Args)]
struct SocketArgs {
    /// The Workload API socket. Default: $SPIFFE_ENDPOINT_SOCKET, else the
    /// `socket_path` of the config in $ROOTMARK_ATTESTOR_CONFIG, else
    /// /run/rootmark/workload.sock.
    #[arg(long)]
    socket: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    Text,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run { config } => run(&config).await,
        Command::Fetch {
            what:
                FetchCommand::X509 {
                    socket,
                    write,
                    output,
                },
        } => fetch_x509(&socket, write.as_deref(), output).await,
        Command::Fetch {
            what:
                FetchCommand::Jwt {
                    socket,
                    audience,
                    spiffe_id,
                    output,
                },
        } => fetch_jwt(&socket, audience, spiffe_id, output).await,
        Command::Healthcheck { socket } => healthcheck(&socket).await,
    }
}

async fn run(config_path: &Path) -> anyhow::Result<ExitCode> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = AttestorConfig::load(config_path)?;
    let daemon = Daemon::start(&config).await?;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot install the SIGTERM handler")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("stopping");
    daemon.shutdown();
    Ok(ExitCode::SUCCESS)
}

/// The socket path from the flag, the environment or the config.
fn socket_path(args: &SocketArgs) -> anyhow::Result<PathBuf> {
    let given = args
        .socket
        .clone()
        .or_else(|| std::env::var(SPIFFE_ENDPOINT_SOCKET_ENV).ok());
    if let Some(addr) = given {
        let path = addr
            .strip_prefix("unix://")
            .or_else(|| addr.strip_prefix("unix:"))
            .unwrap_or(&addr);
        if path.is_empty() || !path.starts_with('/') {
            bail!("{addr:?} is not a Unix socket address; use unix:///path/to/workload.sock");
        }
        return Ok(PathBuf::from(path));
    }
    if let Ok(config) = std::env::var(ATTESTOR_CONFIG_ENV) {
        return Ok(AttestorConfig::load(Path::new(&config))?.socket_path);
    }
    Ok(AttestorConfig::default().socket_path)
}

async fn client(args: &SocketArgs) -> anyhow::Result<SpiffeWorkloadApiClient<Channel>> {
    let path = socket_path(args)?;
    let target = path.clone();
    let channel = Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_| {
            let target = target.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(
                    tokio::net::UnixStream::connect(target).await?,
                ))
            }
        }))
        .await
        .with_context(|| format!("cannot connect to the Workload API at {}", path.display()))?;
    Ok(SpiffeWorkloadApiClient::new(channel))
}

fn with_header<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        WORKLOAD_API_SECURITY_HEADER,
        tonic::metadata::MetadataValue::from_static("true"),
    );
    request
}

fn status_error(call: &str, status: &tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{call}: {:?}: {}", status.code(), status.message())
}

async fn fetch_x509(
    args: &SocketArgs,
    write: Option<&Path>,
    output: Output,
) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let mut client = client(args).await?;
    let mut stream = client
        .fetch_x509svid(with_header(pb::X509svidRequest {}))
        .await
        .map_err(|s| status_error("FetchX509SVID", &s))?
        .into_inner();
    let response = tokio::time::timeout(Duration::from_secs(30), stream.message())
        .await
        .context("no answer from the Workload API within 30 s")?
        .map_err(|s| status_error("FetchX509SVID", &s))?
        .context("the Workload API closed the stream without an answer")?;
    let elapsed = started.elapsed();
    let mut svids = Vec::new();
    for (i, svid) in response.svids.iter().enumerate() {
        let chain = rootmark_attestor::daemon::parse_certificates(&svid.x509_svid)
            .map_err(|e| anyhow::anyhow!("SVID {i}: {e}"))?;
        let bundle = rootmark_attestor::daemon::parse_certificates(&svid.bundle)
            .map_err(|e| anyhow::anyhow!("bundle of SVID {i}: {e}"))?;
        if let Some(dir) = write {
            std::fs::create_dir_all(dir)?;
            std::fs::write(dir.join(format!("svid.{i}.pem")), pem_certs(&chain))?;
            write_key(&dir.join(format!("svid.{i}.key")), &svid.x509_svid_key)?;
            std::fs::write(dir.join("bundle.pem"), pem_certs(&bundle))?;
        }
        svids.push(serde_json::json!({
            "spiffe_id": svid.spiffe_id,
            "hint": svid.hint,
            "chain": chain.iter().map(|c| describe_cert(c)).collect::<Vec<_>>(),
            "bundle": bundle.iter().map(|c| describe_cert(c)).collect::<Vec<_>>(),
        }));
    }
    match output {
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "svids": svids }))?
        ),
        Output::Text => {
            println!("Received {} svid(s) after {elapsed:.1?}", svids.len());
            for svid in &svids {
                println!();
                println!(
                    "SPIFFE ID:        {}",
                    svid["spiffe_id"].as_str().unwrap_or("")
                );
                if let Some(hint) = svid["hint"].as_str().filter(|h| !h.is_empty()) {
                    println!("Hint:             {hint}");
                }
                if let Some(leaf) = svid["chain"].get(0) {
                    println!(
                        "SVID valid after: {}",
                        leaf["not_before"].as_str().unwrap_or("")
                    );
                    println!(
                        "SVID valid until: {}",
                        leaf["not_after"].as_str().unwrap_or("")
                    );
                    println!(
                        "SVID serial:      {}",
                        leaf["serial"].as_str().unwrap_or("")
                    );
                }
                for (k, ca) in svid["bundle"].as_array().into_iter().flatten().enumerate() {
                    println!(
                        "CA #{} valid until: {} ({})",
                        k + 1,
                        ca["not_after"].as_str().unwrap_or(""),
                        ca["subject"].as_str().unwrap_or("")
                    );
                }
            }
            if let Some(dir) = write {
                println!(
                    "\nWrote svid.N.pem, svid.N.key and bundle.pem to {}",
                    dir.display()
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn fetch_jwt(
    args: &SocketArgs,
    audience: Vec<String>,
    spiffe_id: Option<String>,
    output: Output,
) -> anyhow::Result<ExitCode> {
    let mut client = client(args).await?;
    let response = client
        .fetch_jwtsvid(with_header(pb::JwtsvidRequest {
            audience,
            spiffe_id: spiffe_id.unwrap_or_default(),
        }))
        .await
        .map_err(|s| status_error("FetchJWTSVID", &s))?
        .into_inner();
    let svids: Vec<serde_json::Value> = response
        .svids
        .iter()
        .map(|svid| {
            let parsed = rootmark_sdk::jwt::JwtSvid::parse_insecure(&svid.svid);
            let expires = parsed
                .as_ref()
                .ok()
                .and_then(|p| p.expiry().duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs());
            serde_json::json!({
                "spiffe_id": svid.spiffe_id,
                "hint": svid.hint,
                "token": svid.svid,
                "expires_unix": expires,
            })
        })
        .collect();
    match output {
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "svids": svids }))?
        ),
        Output::Text => {
            for svid in &svids {
                println!("token({}):", svid["spiffe_id"].as_str().unwrap_or(""));
                println!("\t{}", svid["token"].as_str().unwrap_or(""));
                if let Some(exp) = svid["expires_unix"].as_u64() {
                    println!("\texpires at {exp} (Unix time)");
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn healthcheck(args: &SocketArgs) -> anyhow::Result<ExitCode> {
    let mut client = match client(args).await {
        Ok(c) => c,
        Err(e) => {
            println!("unhealthy: {e:#}");
            return Ok(ExitCode::FAILURE);
        }
    };
    match client
        .fetch_x509_bundles(with_header(pb::X509BundlesRequest {}))
        .await
    {
        Ok(_) => {
            println!("healthy: the Workload API serves identities");
            Ok(ExitCode::SUCCESS)
        }
        Err(status) if status.code() == tonic::Code::PermissionDenied => {
            println!("healthy: the Workload API is serving (this caller has no identity)");
            Ok(ExitCode::SUCCESS)
        }
        Err(status) => {
            println!("unhealthy: {:?}: {}", status.code(), status.message());
            Ok(ExitCode::FAILURE)
        }
    }
}

fn describe_cert(der: &[u8]) -> serde_json::Value {
    match x509_parser::parse_x509_certificate(der) {
        Ok((_, cert)) => serde_json::json!({
            "subject": cert.subject().to_string(),
            "serial": cert.raw_serial_as_string(),
            "not_before": cert.validity().not_before.to_rfc2822().unwrap_or_default(),
            "not_after": cert.validity().not_after.to_rfc2822().unwrap_or_default(),
        }),
        Err(e) => serde_json::json!({ "error": e.to_string() }),
    }
}

fn pem_certs(certs: &[Vec<u8>]) -> String {
    use base64::Engine as _;
    let mut out = String::new();
    for der in certs {
        out.push_str("-----BEGIN CERTIFICATE-----\n");
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        for line in b64.as_bytes().chunks(64) {
            out.push_str(&String::from_utf8_lossy(line));
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
    }
    out
}

fn write_key(path: &Path, pkcs8: &[u8]) -> anyhow::Result<()> {
    use base64::Engine as _;
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    let b64 = base64::engine::general_purpose::STANDARD.encode(pkcs8);
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(pem.as_bytes())?;
    Ok(())
}
