//! `workload-load`: load on the attestor's Workload API, measured.
//!
//! Starts a whole Rootmark (swtpm, issuer, attestor: the binaries next to
//! this one, so build them with the same profile), registers an identity
//! for this process, then:
//!
//! 1. reads the attestor's idle RSS;
//! 2. runs `--clients` concurrent clients, each on its own connection,
//!    each fetching its X509-SVID (FetchX509SVID, first message) every
//!    `--interval-ms` (with jitter) for `--seconds`, and reports latency
//!    percentiles;
//! 3. opens `--streams` FetchX509SVID streams, each on its own connection,
//!    holds them idle and reports the attestor's RSS.
//!
//! `cargo build --release --workspace --bins && target/release/workload-load --clients 1000`

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use rootmark_proto::workload as pb;
use rootmark_proto::workload::spiffe_workload_api_client::SpiffeWorkloadApiClient;
use rootmark_swtpm_tests::cluster::{Cluster, current_uid, workload_channel};
use rootmark_swtpm_tests::devenv::DevEnvOptions;
use tonic::transport::Channel;

struct Args {
    clients: usize,
    seconds: u64,
    interval_ms: u64,
    streams: usize,
    streams_per_connection: usize,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        clients: 1000,
        seconds: 20,
        interval_ms: 500,
        streams: 10_000,
        streams_per_connection: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || -> anyhow::Result<u64> {
            it.next()
                .with_context(|| format!("{flag} needs a value"))?
                .parse()
                .with_context(|| format!("{flag} needs a number"))
        };
        match flag.as_str() {
            "--clients" => args.clients = usize::try_from(value()?)?,
            "--seconds" => args.seconds = value()?,
            "--interval-ms" => args.interval_ms = value()?,
            "--streams" => args.streams = usize::try_from(value()?)?,
            "--streams-per-connection" => {
                args.streams_per_connection = usize::try_from(value()?)?.max(1);
            }
            "-h" | "--help" => {
                println!(
                    "Usage: workload-load [--clients N (1000)] [--seconds S (20)] [--interval-ms MS (500)] [--streams N (10000)]\n\
                     [--streams-per-connection N (1: every stream on its own connection, like separate workloads)]\n\n\
                     Starts swtpm + rootmark-issuer + rootmark-attestor (binaries next to this one), then measures\n\
                     FetchX509SVID latency with N concurrent clients and the attestor's RSS idle and with N open streams."
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other}; see --help"),
        }
    }
    Ok(args)
}

fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS")
}

async fn connect(path: std::path::PathBuf) -> anyhow::Result<SpiffeWorkloadApiClient<Channel>> {
    let channel = workload_channel(path).await?;
    Ok(SpiffeWorkloadApiClient::new(channel))
}

fn request() -> tonic::Request<pb::X509svidRequest> {
    let mut request = tonic::Request::new(pb::X509svidRequest {});
    request.metadata_mut().insert(
        "workload.spiffe.io",
        tonic::metadata::MetadataValue::from_static("true"),
    );
    request
}

/// One FetchX509SVID: open the stream, read the first message.
async fn fetch_once(client: &mut SpiffeWorkloadApiClient<Channel>) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let mut stream = client.fetch_x509svid(request()).await?.into_inner();
    let first = stream.message().await?.context("stream ended")?;
    if first.svids.is_empty() {
        bail!("no SVID");
    }
    Ok(start.elapsed())
}

/// Each client holds a connection: raise the open-file limit (to
/// `fs.nr_open` when allowed, else to the hard limit).
fn raise_nofile() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let ceiling = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    let raised = ceiling.is_some_and(|c| {
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(c),
                maximum: Some(c),
            },
        )
        .is_ok()
    });
    if !raised {
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: limit.maximum,
                maximum: limit.maximum,
            },
        );
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64)).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    raise_nofile();
    eprintln!("==> starting swtpm, issuer and attestor");
    let mut cluster = Cluster::start(&DevEnvOptions::default())?;
    cluster.register(
        "spiffe://example.org/load/me",
        &[&format!("unix:uid:{}", current_uid())],
        &[],
    )?;
    cluster.start_attestor()?;
    let socket = cluster.env().socket();
    let pid = cluster.attestor_pid().context("attestor not running")?;
    let ready = Instant::now();
    loop {
        if let Ok(mut client) = connect(socket.clone()).await
            && fetch_once(&mut client).await.is_ok()
        {
            break;
        }
        if ready.elapsed() > Duration::from_secs(60) {
            bail!("the attestor never served an SVID{}", cluster.log_tails());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = rss_kib(pid)?;
    println!("attestor idle RSS: {:.1} MiB", idle as f64 / 1024.0);

    // Phase 1: latency under concurrent clients.
    eprintln!(
        "==> {} clients, one FetchX509SVID each every ~{} ms, for {} s",
        args.clients, args.interval_ms, args.seconds
    );
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let mut clients = Vec::with_capacity(args.clients);
    for _ in 0..args.clients {
        clients.push(connect(socket.clone()).await?);
    }
    let errors = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::with_capacity(args.clients);
    for (i, mut client) in clients.into_iter().enumerate() {
        let errors = Arc::clone(&errors);
        let interval = args.interval_ms;
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            // Spread the clients' phases over one interval.
            let offset = (i as u64 * 7919) % interval.max(1);
            tokio::time::sleep(Duration::from_millis(offset)).await;
            while Instant::now() < deadline {
                match fetch_once(&mut client).await {
                    Ok(d) => latencies.push(d),
                    Err(_) => {
                        errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                let jitter = (latencies.len() as u64 * 31 + i as u64) % (interval / 5 + 1);
                tokio::time::sleep(Duration::from_millis(interval - interval / 10 + jitter)).await;
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await?);
    }
    all.sort();
    let rate = all.len() as f64 / args.seconds as f64;
    println!(
        "FetchX509SVID with {} clients: {} fetches ({rate:.0}/s), {} errors; p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        args.clients,
        all.len(),
        errors.load(std::sync::atomic::Ordering::Relaxed),
        percentile(&all, 50.0).as_secs_f64() * 1e3,
        percentile(&all, 90.0).as_secs_f64() * 1e3,
        percentile(&all, 99.0).as_secs_f64() * 1e3,
        all.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );

    // Phase 2: idle streams.
    eprintln!("==> opening {} idle FetchX509SVID streams", args.streams);
    let mut held = Vec::with_capacity(args.streams);
    let mut shared: Option<SpiffeWorkloadApiClient<Channel>> = None;
    for i in 0..args.streams {
        if i % args.streams_per_connection == 0 {
            shared = None;
        }
        let opened = async {
            let mut client = match &shared {
                Some(client) => client.clone(),
                None => connect(socket.clone()).await?,
            };
            let mut stream = client.fetch_x509svid(request()).await?.into_inner();
            stream.message().await?.context("stream ended")?;
            anyhow::Ok((client, stream))
        }
        .await;
        if let Ok((client, _)) = &opened {
            shared.get_or_insert_with(|| client.clone());
        }
        match opened {
            Ok(pair) => held.push(pair),
            Err(e) => bail!("stream {i} failed: {e:#}{}", cluster.log_tails()),
        }
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let with_streams = rss_kib(pid)?;
    println!(
        "attestor RSS with {} open streams ({} per connection): {:.1} MiB",
        held.len(),
        args.streams_per_connection,
        with_streams as f64 / 1024.0
    );
    drop(held);
    Ok(())
}
