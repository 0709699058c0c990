//! Test helper for the PID-reuse guard: connects to the Workload API
//! socket, hands the connected socket to another process over a second
//! Unix socket (`SCM_RIGHTS`), then exits (or, with `--stay`, waits to be
//! killed). The receiver then speaks on a connection whose `SO_PEERCRED`
//! names this process's pid.
//!
//! Usage: `rootmark-fd-donor WORKLOAD_SOCKET RECEIVER_SOCKET [--stay]`

use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::os::fd::AsFd as _;
use std::os::unix::net::UnixStream;
use std::process::ExitCode;

use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags, sendmsg};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (workload, receiver, stay) = match args.as_slice() {
        [w, r] => (w, r, false),
        [w, r, flag] if flag == "--stay" => (w, r, true),
        _ => {
            eprintln!("usage: rootmark-fd-donor WORKLOAD_SOCKET RECEIVER_SOCKET [--stay]");
            return ExitCode::from(2);
        }
    };
    let donated = match UnixStream::connect(workload) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("connect {workload}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let channel = match UnixStream::connect(receiver) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("connect {receiver}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    let fds = [donated.as_fd()];
    if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        eprintln!("control buffer too small");
        return ExitCode::FAILURE;
    }
    if let Err(e) = sendmsg(
        &channel,
        &[IoSlice::new(b"fd")],
        &mut control,
        SendFlags::empty(),
    ) {
        eprintln!("sendmsg: {e}");
        return ExitCode::FAILURE;
    }
    if stay {
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
    ExitCode::SUCCESS
}
