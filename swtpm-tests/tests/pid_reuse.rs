//! The Workload API's PID-reuse guard, end to end: a process connects to
//! the attestor and hands its connection to the test (`SCM_RIGHTS`), then
//! exits; a new process is made to take over its pid; the test then asks
//! for an identity on the first process's connection. The kernel still
//! names the old pid as the peer, and `/proc/<pid>` now describes the new
//! process, which the entry would match too. The attestor must refuse.
//!
//! The control case (the first process still alive) gets the identity, so
//! the refusal is the guard's doing and not the fd passing's.
#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::io::IoSliceMut;
use std::mem::MaybeUninit;
use std::os::unix::net::UnixListener;
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rootmark_proto::workload as pb;
use rootmark_proto::workload::spiffe_workload_api_client::SpiffeWorkloadApiClient;
use rootmark_swtpm_tests::cluster::{Cluster, bin_dir, current_uid};
use rootmark_swtpm_tests::devenv::DevEnvOptions;
use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, recvmsg};

const ME: &str = "spiffe://example.org/e2e/me";

/// Runs the donor and returns the connection it handed over and the donor.
fn donated_connection(cluster: &Cluster, stay: bool) -> (std::os::unix::net::UnixStream, Child) {
    let dir = tempfile::tempdir().unwrap();
    let receiver_path = dir.path().join("receiver.sock");
    let receiver = UnixListener::bind(&receiver_path).unwrap();
    let mut donor = Command::new(bin_dir().join("rootmark-fd-donor"));
    donor.arg(cluster.env().socket()).arg(&receiver_path);
    if stay {
        donor.arg("--stay");
    }
    let donor = donor.spawn().unwrap();
    let (channel, _) = receiver.accept().unwrap();
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut byte = [0u8; 2];
    recvmsg(
        &channel,
        &mut [IoSliceMut::new(&mut byte)],
        &mut control,
        RecvFlags::empty(),
    )
    .unwrap();
    let fd = control
        .drain()
        .find_map(|msg| match msg {
            RecvAncillaryMessage::ScmRights(mut fds) => fds.next(),
            _ => None,
        })
        .expect("a file descriptor");
    (std::os::unix::net::UnixStream::from(fd), donor)
}

/// A Workload API client speaking on an already-connected socket.
async fn client_on(
    stream: std::os::unix::net::UnixStream,
) -> SpiffeWorkloadApiClient<tonic::transport::Channel> {
    stream.set_nonblocking(true).unwrap();
    let slot = Arc::new(Mutex::new(Some(
        tokio::net::UnixStream::from_std(stream).unwrap(),
    )));
    let channel = tonic::transport::Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_| {
            let slot = Arc::clone(&slot);
            async move {
                let stream =
                    slot.lock().unwrap().take().ok_or_else(|| {
                        std::io::Error::other("the donated connection is used up")
                    })?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
            }
        }))
        .await
        .unwrap();
    SpiffeWorkloadApiClient::new(channel)
}

fn fetch_request() -> tonic::Request<pb::X509svidRequest> {
    let mut request = tonic::Request::new(pb::X509svidRequest {});
    request
        .metadata_mut()
        .insert("workload.spiffe.io", "true".parse().unwrap());
    request
}

/// Spawns `sleep` until one gets `pid` (steering the kernel with
/// `ns_last_pid` when allowed, cycling through pids otherwise).
fn spawn_with_pid(pid: u32) -> Child {
    for _ in 0..(2 * 4_194_304) {
        let _ = std::fs::write("/proc/sys/kernel/ns_last_pid", format!("{}", pid - 1));
        let child = Command::new("sleep").arg("60").spawn().unwrap();
        if child.id() == pid {
            return child;
        }
        let mut child = child;
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("pid {pid} never came back");
}

async fn ready_cluster() -> Cluster {
    let mut cluster = Cluster::start(&DevEnvOptions::default()).unwrap();
    cluster
        .register(ME, &[&format!("unix:uid:{}", current_uid())], &[])
        .unwrap();
    cluster.start_attestor().unwrap();
    // Wait until the attestor serves ME to this process.
    for _ in 0..300 {
        if let Ok(client) = spiffe::WorkloadApiClient::connect_to(cluster.endpoint()).await
            && client.fetch_x509_svid().await.is_ok()
        {
            return cluster;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("attestor never ready{}", cluster.log_tails());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_donated_connection_of_a_live_process_gets_that_process_identity() {
    let cluster = ready_cluster().await;
    let (stream, mut donor) = donated_connection(&cluster, true);
    let mut client = client_on(stream).await;
    let response = client.fetch_x509svid(fetch_request()).await;
    let _ = donor.kill();
    let _ = donor.wait();
    let mut stream = response.unwrap().into_inner();
    let first = stream.message().await.unwrap().unwrap();
    assert_eq!(first.svids[0].spiffe_id, ME);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_that_took_over_the_callers_pid_gets_no_identity() {
    let cluster = ready_cluster().await;
    let (stream, mut donor) = donated_connection(&cluster, false);
    let pid = donor.id();
    assert!(
        donor.wait().unwrap().success(),
        "the donor handed over and exited"
    );
    let mut impostor = spawn_with_pid(pid);

    let mut client = client_on(stream).await;
    let status = client.fetch_x509svid(fetch_request()).await.unwrap_err();
    let _ = impostor.kill();
    let _ = impostor.wait();
    assert_eq!(status.code(), tonic::Code::PermissionDenied, "{status:?}");
    assert_eq!(status.message(), "no identity issued");
    let log = std::fs::read_to_string(cluster.env().dir().join("attestor.log")).unwrap();
    assert!(
        log.contains(&format!("pid {pid} no longer names the caller")),
        "refused for PID reuse{}",
        cluster.log_tails()
    );
}
