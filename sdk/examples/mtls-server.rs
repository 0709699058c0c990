//! An echo server over mutual TLS with SPIFFE identities.
//!
//! It gets its X509-SVID and trust bundles from the Workload API named by
//! `SPIFFE_ENDPOINT_SOCKET` (kept up to date as they rotate), accepts only
//! clients whose SVID chains to the bundle and whose SPIFFE ID is the one
//! given with `--authorize`, logs each client's SPIFFE ID and echoes every
//! line it receives back to it.
//!
//! ```text
//! SPIFFE_ENDPOINT_SOCKET=unix:///run/rootmark/agent.sock \
//!   cargo run -p rootmark-sdk --example mtls-server -- \
//!   --listen 127.0.0.1:8443 --authorize spiffe://example.org/client
//! ```

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use rootmark_sdk::tls::{Authorizer, peer_spiffe_id, server_config};
use rootmark_sdk::{SpiffeId, X509Source};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tracing::{info, warn};

/// Echo server over mTLS: presents this workload's X509-SVID (from the
/// Workload API at $SPIFFE_ENDPOINT_SOCKET) and accepts only clients with the
/// SPIFFE ID given by --authorize. Echoes each line back; logs each client's
/// SPIFFE ID to stderr.
#[derive(Debug, Parser)]
#[command(name = "mtls-server", version)]
struct Args {
    /// Address to listen on (e.g. 127.0.0.1:8443; port 0 picks a free one,
    /// printed on stderr).
    #[arg(long, value_name = "ADDR")]
    listen: SocketAddr,
    /// The only client SPIFFE ID accepted (e.g. spiffe://example.org/client).
    #[arg(long, value_name = "SPIFFE_ID", value_parser = parse_id)]
    authorize: SpiffeId,
}

fn parse_id(s: &str) -> Result<SpiffeId, String> {
    SpiffeId::parse(s).map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mtls-server: error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let source = Arc::new(
        X509Source::new()
            .await
            .map_err(|e| format!("cannot get an X509-SVID: {e}"))?,
    );
    info!(me = %source.svid().spiffe_id(), "got an X509-SVID");
    let config = server_config(Arc::clone(&source), Authorizer::exact(args.authorize))?;
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    // One line tests and scripts can wait for.
    info!(address = %listener.local_addr()?, "listening");
    loop {
        let (tcp, remote) = listener.accept().await?;
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            if let Err(e) = serve(acceptor, tcp).await {
                warn!(%remote, "connection refused or broken: {}", reason(&e));
            }
        });
    }
}

async fn serve(acceptor: TlsAcceptor, tcp: TcpStream) -> std::io::Result<()> {
    let remote = tcp.peer_addr()?;
    let tls = acceptor.accept(tcp).await?;
    let peer = peer_spiffe_id(tls.get_ref().1)
        .map(|id| id.to_string())
        .unwrap_or_else(|| "(none)".into());
    info!(%remote, %peer, "client connected");
    let (read, mut write) = tokio::io::split(tls);
    let mut lines = BufReader::new(read).lines();
    while let Some(line) = lines.next_line().await? {
        write.write_all(line.as_bytes()).await?;
        write.write_all(b"\n").await?;
        write.flush().await?;
    }
    write.shutdown().await?;
    info!(%remote, %peer, "client disconnected");
    Ok(())
}

/// The reason inside a TLS error: for a refused certificate, the SDK's
/// message (which names the SPIFFE ID and the authorizer) rather than
/// rustls' debug form of it.
fn reason(error: &std::io::Error) -> String {
    use rustls::{CertificateError, Error, OtherError};
    match error.get_ref().and_then(|e| e.downcast_ref::<Error>()) {
        Some(Error::InvalidCertificate(CertificateError::Other(OtherError(inner)))) => {
            format!("peer certificate refused: {inner}")
        }
        _ => error.to_string(),
    }
}
