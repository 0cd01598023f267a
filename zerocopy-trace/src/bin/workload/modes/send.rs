//! The socket send/receive family over TCP: `sendto`/`sendmsg` against `recvfrom`/`recvmsg`,
//! and `sendto` with `MSG_ZEROCOPY`. Senders send from memory, so they make no file reads.

use std::io::IoSlice;
use std::os::fd::RawFd;

use anyhow::Result;

use super::tcp::{run_stream, Receive};
use super::{transfer_all, Mode, Params, Sizes};
use crate::child::ChildResult;
use crate::ground_truth::{Errno, Failure, OrFail, Recorder};
use crate::net;
use crate::pattern::pattern;
use crate::report::ProcessReport;
use crate::sys;

/// sender: `sendto` (what `send` issues) and `sendmsg` in turn, one call each, starting with
/// `sendto`; a partial send's rest goes out with the next call, whichever it is.
/// receiver: `recvfrom` and `recvmsg` in turn, starting with `recvfrom`.
pub fn send_recv(params: &Params) -> Result<Vec<ProcessReport>> {
    let sizes = params.sizes;
    let data = pattern(sizes.bytes);
    let send = move |rec: &Recorder, socket| send_alternating(rec, socket, &data, sizes);
    let pair = net::tcp_pair()?;
    run_stream(
        Mode::SendRecv,
        params,
        pair,
        Receive::RecvfromRecvmsg,
        &[],
        send,
    )
}

/// sender: `sendto(..., MSG_ZEROCOPY)` per chunk on a socket with `SO_ZEROCOPY` set.
/// receiver: `read`. Completion notifications are left on the error queue; only if a send
/// fails with ENOBUFS (queue over its memory limit) does the sender drain them, with
/// `recvmsg(MSG_ERRQUEUE | MSG_DONTWAIT)` calls that are recorded like any other (the last
/// one of a drain fails with EAGAIN). At the default sizes that never happens.
pub fn msg_zerocopy(params: &Params) -> Result<Vec<ProcessReport>> {
    let sizes = params.sizes;
    let data = pattern(sizes.bytes);
    let send = move |rec: &Recorder, socket| send_zerocopy_rounds(rec, socket, &data, sizes);
    let pair = net::tcp_pair()?;
    net::enable_zerocopy(&pair.sender)?;
    run_stream(Mode::MsgZerocopy, params, pair, Receive::Read, &[], send)
}

fn send_alternating(rec: &Recorder, socket: RawFd, data: &[u8], sizes: Sizes) -> ChildResult {
    let mut turn: u64 = 0;
    for _ in 0..sizes.rounds {
        for chunk in data.chunks(sizes.chunk) {
            transfer_all(chunk, "sendto/sendmsg to the socket", |d| {
                let even = turn.is_multiple_of(2);
                turn += 1;
                if even {
                    sys::sendto(rec, socket, d, 0)
                } else {
                    sys::sendmsg(rec, socket, &[IoSlice::new(d)], 0)
                }
            })?;
        }
    }
    Ok(())
}

fn send_zerocopy_rounds(rec: &Recorder, socket: RawFd, data: &[u8], sizes: Sizes) -> ChildResult {
    for _ in 0..sizes.rounds {
        for chunk in data.chunks(sizes.chunk) {
            let mut rest = chunk;
            while !rest.is_empty() {
                rest = &rest[send_zerocopy(rec, socket, rest)?..];
            }
        }
    }
    Ok(())
}

/// One `MSG_ZEROCOPY` send, retried after draining notifications on ENOBUFS. Returns the bytes
/// the kernel took.
fn send_zerocopy(rec: &Recorder, socket: RawFd, data: &[u8]) -> Result<usize, Failure> {
    loop {
        match sys::sendto(rec, socket, data, libc::MSG_ZEROCOPY) {
            Ok(0) => return Err(Failure::new("sendto with MSG_ZEROCOPY accepted no bytes")),
            Ok(n) => return Ok(n),
            Err(Errno(libc::ENOBUFS)) => drain_notifications(rec, socket)?,
            Err(e) => return Err(e).or_fail("sendto with MSG_ZEROCOPY"),
        }
    }
}

fn drain_notifications(rec: &Recorder, socket: RawFd) -> ChildResult {
    let mut drained = 0;
    loop {
        let flags = libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT;
        match sys::recvmsg(rec, socket, &mut [], flags) {
            Ok(_) => drained += 1,
            Err(Errno(libc::EAGAIN)) if drained > 0 => return Ok(()),
            Err(Errno(libc::EAGAIN)) => {
                return Err(Failure {
                    what: "sendto with MSG_ZEROCOPY (no notifications to drain)",
                    errno: libc::ENOBUFS,
                })
            }
            Err(e) => return Err(e).or_fail("recvmsg the zerocopy notifications"),
        }
    }
}
