//! The SDK's mTLS end to end: a real swtpm, the real `rootmark-issuer` and
//! `rootmark-attestor` processes, and the test process (registered by its
//! uid) as both server and client, with SVIDs from the Workload API through
//! `rootmark_sdk::X509Source` and rustls configs from `rootmark_sdk::tls`.
//! The last test runs the `mtls-server`/`mtls-client` example binaries.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::collections::BTreeSet;
use std::io::{BufRead as _, BufReader as StdBufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rootmark_sdk::source::SourceOptions;
use rootmark_sdk::tls::{Authorizer, client_config, peer_spiffe_id, server_config};
use rootmark_sdk::{SpiffeId, X509Source};
use rootmark_swtpm_tests::cluster::{Cluster, bin_dir, current_uid};
use rootmark_swtpm_tests::devenv::DevEnvOptions;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::{TlsAcceptor, TlsConnector};

const ME: &str = "spiffe://example.org/sdk/me";
const OTHER: &str = "spiffe://example.org/sdk/other";

fn id(s: &str) -> SpiffeId {
    SpiffeId::parse(s).unwrap()
}

/// A cluster whose attestor serves `ME` to this process.
fn cluster_serving_me(extra: &[&str]) -> Cluster {
    let mut cluster = Cluster::start(&DevEnvOptions::default()).unwrap();
    let selector = format!("unix:uid:{}", current_uid());
    cluster.register(ME, &[&selector], extra).unwrap();
    cluster.start_attestor().unwrap();
    cluster
}

/// A live source on the cluster's Workload API (waits for the first SVID).
async fn source(cluster: &Cluster) -> Arc<X509Source> {
    let options = SourceOptions::new()
        .address(cluster.endpoint())
        .initial_timeout(Some(Duration::from_secs(60)));
    match X509Source::with_options(options).await {
        Ok(source) => Arc::new(source),
        Err(e) => panic!("no X509Source: {e}{}", cluster.log_tails()),
    }
}

/// What the in-process echo server saw of one connection.
#[derive(Debug, Clone)]
enum Seen {
    /// Handshake done: the client's SPIFFE ID and leaf serial.
    Peer(SpiffeId, String),
    /// Handshake or echo failed.
    Failed(String),
}

struct EchoServer {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn serial(der: &[u8]) -> String {
    x509_parser::parse_x509_certificate(der)
        .unwrap()
        .1
        .raw_serial_as_string()
}

/// The reason inside a TLS I/O error (the SDK's message for a refused
/// certificate).
fn reason(error: &std::io::Error) -> String {
    use tokio_rustls::rustls::{CertificateError, Error, OtherError};
    match error.get_ref().and_then(|e| e.downcast_ref::<Error>()) {
        Some(Error::InvalidCertificate(CertificateError::Other(OtherError(inner)))) => {
            inner.to_string()
        }
        _ => error.to_string(),
    }
}

/// The same logic as the `mtls-server` example, in-process: accepts mTLS
/// clients that `authorizer` accepts and echoes each line.
async fn echo_server(source: &Arc<X509Source>, authorizer: Authorizer) -> EchoServer {
    let config = server_config(Arc::clone(source), authorizer).unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                let tls = match acceptor.accept(tcp).await {
                    Ok(tls) => tls,
                    Err(e) => {
                        log.lock().unwrap().push(Seen::Failed(reason(&e)));
                        return;
                    }
                };
                let connection = tls.get_ref().1;
                let peer = peer_spiffe_id(connection).expect("an authorized peer has an ID");
                let leaf = serial(connection.peer_certificates().unwrap()[0].as_ref());
                log.lock().unwrap().push(Seen::Peer(peer, leaf));
                let (read, mut write) = tokio::io::split(tls);
                let mut lines = BufReader::new(read).lines();
                loop {
                    match lines.next_line().await {
                        Ok(Some(line)) => {
                            if write
                                .write_all(format!("{line}\n").as_bytes())
                                .await
                                .is_err()
                            {
                                return;
                            }
                        }
                        Ok(None) => return,
                        Err(e) => {
                            log.lock().unwrap().push(Seen::Failed(reason(&e)));
                            return;
                        }
                    }
                }
            });
        }
    });
    EchoServer { addr, seen, task }
}

/// What the client saw of a successful exchange.
struct Exchange {
    echo: String,
    server_id: SpiffeId,
    server_serial: String,
}

/// Where a client exchange failed.
#[derive(Debug)]
enum ClientFailure {
    /// The client refused the server (or the handshake broke).
    Handshake(String),
    /// The handshake completed on the client side but the exchange failed
    /// (with TLS 1.3, the server refusing our certificate shows here).
    Exchange(String),
}

/// The same logic as the `mtls-client` example: connect, authorize the
/// server, send `message`, read the echo.
async fn exchange(
    source: &Arc<X509Source>,
    authorizer: Authorizer,
    addr: SocketAddr,
    message: &str,
) -> Result<Exchange, ClientFailure> {
    let config = client_config(Arc::clone(source), authorizer).unwrap();
    let connector = TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut tls = connector
        .connect(ServerName::try_from("spiffe-peer").unwrap(), tcp)
        .await
        .map_err(|e| ClientFailure::Handshake(reason(&e)))?;
    let connection = tls.get_ref().1;
    let server_id = peer_spiffe_id(connection).expect("an authorized server has an ID");
    let server_serial = serial(connection.peer_certificates().unwrap()[0].as_ref());
    let io = async {
        tls.write_all(format!("{message}\n").as_bytes()).await?;
        let mut line = String::new();
        BufReader::new(&mut tls).read_line(&mut line).await?;
        tls.shutdown().await?;
        Ok::<_, std::io::Error>(line)
    };
    let line = io.await.map_err(|e| ClientFailure::Exchange(reason(&e)))?;
    let echo = line
        .strip_suffix('\n')
        .ok_or_else(|| ClientFailure::Exchange(format!("no echo, got {line:?}")))?
        .to_owned();
    Ok(Exchange {
        echo,
        server_id,
        server_serial,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_client_and_server_authenticate_each_other_with_attestor_svids() {
    let cluster = cluster_serving_me(&[]);
    let source = source(&cluster).await;
    assert_eq!(source.svid().spiffe_id(), &id(ME));

    let server = echo_server(&source, Authorizer::exact(id(ME))).await;
    let done = exchange(&source, Authorizer::exact(id(ME)), server.addr, "hello")
        .await
        .unwrap();
    assert_eq!(done.echo, "hello");
    assert_eq!(done.server_id, id(ME));
    // The server presented exactly the attestor's current SVID.
    assert_eq!(done.server_serial, serial(source.svid().leaf().as_ref()));
    let seen = server.seen.lock().unwrap().clone();
    match seen.as_slice() {
        [Seen::Peer(peer, client_serial)] => {
            assert_eq!(peer, &id(ME));
            assert_eq!(client_serial, &serial(source.svid().leaf().as_ref()));
        }
        other => panic!("the server saw {other:?}"),
    }

    // Authorizers other than `exact` on the live source.
    let td = id(ME).trust_domain().clone();
    let server = echo_server(&source, Authorizer::member_of(td.clone())).await;
    let done = exchange(
        &source,
        Authorizer::one_of([id(OTHER), id(ME)]),
        server.addr,
        "again",
    )
    .await
    .unwrap();
    assert_eq!(done.echo, "again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unauthorized_peer_id_is_refused_during_the_handshake_on_both_sides() {
    let cluster = cluster_serving_me(&[]);
    let source = source(&cluster).await;

    // The server wants OTHER: it refuses our client certificate. With TLS
    // 1.3 the client learns it from the server's alert, before any data.
    let picky_server = echo_server(&source, Authorizer::exact(id(OTHER))).await;
    let failure = exchange(&source, Authorizer::exact(id(ME)), picky_server.addr, "hi")
        .await
        .err()
        .expect("the server must refuse a client it does not authorize");
    let message = match &failure {
        ClientFailure::Handshake(m) | ClientFailure::Exchange(m) => m.clone(),
    };
    assert!(
        message.contains("CertificateUnknown") || message.contains("alert"),
        "{failure:?}"
    );
    let seen = picky_server.seen.lock().unwrap().clone();
    match seen.as_slice() {
        [Seen::Failed(why)] => assert!(
            why.contains(&format!("client SPIFFE ID {ME} is not authorized")),
            "{why}"
        ),
        other => panic!("the server should have refused the handshake, saw {other:?}"),
    }

    // The client wants OTHER: it refuses the server's certificate during
    // the handshake, and never sends data.
    let server = echo_server(&source, Authorizer::exact(id(ME))).await;
    let failure = exchange(&source, Authorizer::exact(id(OTHER)), server.addr, "hi")
        .await
        .err()
        .expect("the client must refuse a server it does not authorize");
    match &failure {
        ClientFailure::Handshake(why) => assert!(
            why.contains(&format!("server SPIFFE ID {ME} is not authorized")),
            "{why}"
        ),
        other => panic!("expected a handshake failure, got {other:?}"),
    }
    // The server saw the client's alert, not a connection.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let seen = server.seen.lock().unwrap().clone();
    assert!(
        seen.iter().all(|s| matches!(s, Seen::Failed(_))),
        "the server must not have a connection: {seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_20_second_svid_rotates_under_a_60_second_connection_loop_without_a_failed_connection() {
    let cluster = cluster_serving_me(&["--x509-ttl", "20s"]);
    let source = source(&cluster).await;
    let server = echo_server(&source, Authorizer::exact(id(ME))).await;

    let mut server_serials = BTreeSet::new();
    let start = tokio::time::Instant::now();
    let mut connections = 0u32;
    while start.elapsed() < Duration::from_secs(60) {
        let message = format!("ping {connections}");
        let done = exchange(&source, Authorizer::exact(id(ME)), server.addr, &message)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "connection {connections} at {:?} failed: {e:?}{}",
                    start.elapsed(),
                    cluster.log_tails()
                )
            });
        assert_eq!(done.echo, message);
        server_serials.insert(done.server_serial);
        connections += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let seen = server.seen.lock().unwrap().clone();
    let failures: Vec<&Seen> = seen
        .iter()
        .filter(|s| matches!(s, Seen::Failed(_)))
        .collect();
    assert!(failures.is_empty(), "the server saw failures: {failures:?}");
    let client_serials: BTreeSet<&String> = seen
        .iter()
        .filter_map(|s| match s {
            Seen::Peer(_, serial) => Some(serial),
            Seen::Failed(_) => None,
        })
        .collect();
    eprintln!(
        "{connections} connections in 60 s; server certificates: {} serials, client certificates: {} serials",
        server_serials.len(),
        client_serials.len()
    );
    assert!(connections >= 100, "only {connections} connections");
    assert!(
        server_serials.len() >= 2,
        "the server's certificate never rotated: {server_serials:?}"
    );
    assert!(
        client_serials.len() >= 2,
        "the client's certificate never rotated: {client_serials:?}"
    );
}

/// Runs the example binaries (`cargo build --examples` puts them in
/// `target/debug/examples`, which `./dev/test` builds).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_binaries_talk_mtls_and_refuse_unauthorized_peers() {
    let examples = bin_dir().join("examples");
    let server_bin = examples.join("mtls-server");
    let client_bin = examples.join("mtls-client");
    assert!(
        server_bin.exists() && client_bin.exists(),
        "{} or {} is not built: run `cargo build --workspace --bins --examples` (./dev/test does)",
        server_bin.display(),
        client_bin.display()
    );
    let cluster = cluster_serving_me(&[]);
    // Wait until the attestor serves us (the examples wait too, but the
    // check below should not count attestation time).
    drop(source(&cluster).await);

    struct Server(std::process::Child, SocketAddr);
    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let start_server = |authorize: &str| {
        let mut child = Command::new(&server_bin)
            .args(["--listen", "127.0.0.1:0", "--authorize", authorize])
            .env("SPIFFE_ENDPOINT_SOCKET", cluster.endpoint())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        // Killed and reaped on drop, whatever happens below.
        let mut server = Server(child, SocketAddr::from(([0, 0, 0, 0], 0)));
        let (tx, rx) = std::sync::mpsc::channel();
        // Forward the server's log: the listening address, then every line.
        std::thread::spawn(move || {
            for line in StdBufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                let _ = tx.send(line);
            }
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let line = rx
                .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
                .expect("mtls-server printed no listening address");
            if let Some(addr) = line.split("address=").nth(1) {
                server.1 = addr.trim().parse().unwrap();
                return (server, rx);
            }
        }
    };
    let run_client = |addr: SocketAddr, authorize: &str, message: &str| {
        Command::new(&client_bin)
            .args(["--connect", &addr.to_string(), "--authorize", authorize])
            .args(["--message", message])
            .env("SPIFFE_ENDPOINT_SOCKET", cluster.endpoint())
            .output()
            .unwrap()
    };
    let server_log = |rx: &std::sync::mpsc::Receiver<String>| {
        std::thread::sleep(Duration::from_millis(300));
        rx.try_iter().collect::<Vec<_>>().join("\n")
    };

    let (server, log) = start_server(ME);
    let out = run_client(server.1, ME, "hello from the example");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hello from the example\n"
    );
    let logged = server_log(&log);
    assert!(
        logged.contains("client connected") && logged.contains(&format!("peer={ME}")),
        "the server logs the client's SPIFFE ID:\n{logged}"
    );

    // The client authorizes another ID: it refuses the server.
    let out = run_client(server.1, OTHER, "x");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("TLS handshake")
            && stderr.contains(&format!("server SPIFFE ID {ME} is not authorized")),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
    drop(server);

    // The server authorizes another ID: it refuses the client.
    let (server, log) = start_server(OTHER);
    let out = run_client(server.1, ME, "x");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("mtls-client: error:"), "{stderr}");
    assert!(out.stdout.is_empty());
    let logged = server_log(&log);
    assert!(
        logged.contains(&format!("client SPIFFE ID {ME} is not authorized")),
        "{logged}"
    );
    assert!(!logged.contains("client connected"), "{logged}");
}
