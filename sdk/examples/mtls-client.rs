//! An echo client over mutual TLS with SPIFFE identities: the counterpart
//! of `mtls-server`.
//!
//! It gets its X509-SVID and trust bundles from the Workload API named by
//! `SPIFFE_ENDPOINT_SOCKET`, connects, accepts the server only if its SVID
//! chains to the bundle and its SPIFFE ID is the one given with
//! `--authorize`, sends one line and prints the echo on stdout.
//!
//! ```text
//! SPIFFE_ENDPOINT_SOCKET=unix:///run/rootmark/agent.sock \
//!   cargo run -p rootmark-sdk --example mtls-client -- \
//!   --connect 127.0.0.1:8443 --authorize spiffe://example.org/server --message hi
//! ```

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use rootmark_sdk::tls::{Authorizer, client_config, peer_spiffe_id};
use rootmark_sdk::{SpiffeId, X509Source};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Echo client over mTLS: presents this workload's X509-SVID (from the
/// Workload API at $SPIFFE_ENDPOINT_SOCKET), accepts only a server with the
/// SPIFFE ID given by --authorize, sends one line and prints the echo on
/// stdout. Exits 0 when the echo matches, 1 with an error on stderr
/// otherwise.
#[derive(Debug, Parser)]
#[command(name = "mtls-client", version)]
struct Args {
    /// Server address (host:port).
    #[arg(long, value_name = "ADDR")]
    connect: String,
    /// The only server SPIFFE ID accepted (e.g. spiffe://example.org/server).
    #[arg(long, value_name = "SPIFFE_ID", value_parser = parse_id)]
    authorize: SpiffeId,
    /// The line to send (without newline).
    #[arg(long, value_name = "TEXT", default_value = "hello")]
    message: String,
    /// Give up after this many seconds (connect, handshake and echo).
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    timeout: u64,
}

fn parse_id(s: &str) -> Result<SpiffeId, String> {
    SpiffeId::parse(s).map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if args.message.contains('\n') {
        eprintln!("mtls-client: error: --message must be a single line");
        return ExitCode::FAILURE;
    }
    let limit = Duration::from_secs(args.timeout);
    match tokio::time::timeout(limit, run(args)).await {
        Ok(Ok(echo)) => {
            println!("{echo}");
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => {
            eprintln!("mtls-client: error: {e}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("mtls-client: error: no echo within {limit:?}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<String, String> {
    let source = Arc::new(
        X509Source::new()
            .await
            .map_err(|e| format!("cannot get an X509-SVID: {e}"))?,
    );
    let config = client_config(
        Arc::clone(&source),
        Authorizer::exact(args.authorize.clone()),
    )
    .map_err(|e| e.to_string())?;
    let connector = TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(&args.connect)
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", args.connect))?;
    // The server is identified by its SPIFFE ID, not by a DNS name: any
    // syntactically valid name will do here.
    let name = ServerName::try_from("spiffe-peer").map_err(|e| e.to_string())?;
    let mut tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS handshake with {} failed: {}", args.connect, reason(&e)))?;
    let peer = peer_spiffe_id(tls.get_ref().1);
    eprintln!(
        "mtls-client: connected to {}",
        peer.map(|p| p.to_string()).unwrap_or_default()
    );
    // With TLS 1.3 the server checks the client certificate after the
    // client considers the handshake done: a refusal shows up as an alert
    // on the first read.
    let exchange = async {
        tls.write_all(format!("{}\n", args.message).as_bytes())
            .await?;
        tls.flush().await?;
        let mut reader = BufReader::new(&mut tls);
        let mut line = String::new();
        reader.read_line(&mut line).await?;
        // close_notify, so the server sees a clean end of the connection.
        tls.shutdown().await?;
        Ok::<_, std::io::Error>(line)
    };
    let line = exchange
        .await
        .map_err(|e| format!("the server refused or broke the connection: {}", reason(&e)))?;
    let echo = line.strip_suffix('\n').ok_or_else(|| {
        "the server closed the connection without echoing (did it refuse our SPIFFE ID?)".to_owned()
    })?;
    if echo != args.message {
        return Err(format!(
            "echo mismatch: sent {:?}, got {echo:?}",
            args.message
        ));
    }
    Ok(echo.to_owned())
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
