//! The shape every TCP mode shares: a receiver child reading a loopback connection to EOF and
//! checking the bytes, and a sender child running the mode's own send loop, then `shutdown`.

use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, RawFd};

use anyhow::Result;

use super::{shutdown_write, Mode, Params};
use crate::child::{ChildResult, Children};
use crate::ground_truth::{OrFail, Recorder, SharedSlots};
use crate::net::Pair;
use crate::pattern::Verifier;
use crate::report::ProcessReport;
use crate::sys;

/// Which syscalls the receiver reads with.
#[derive(Clone, Copy, Debug)]
pub enum Receive {
    /// `read` until it returns 0.
    Read,
    /// `readv` into two halves of the buffer until it returns 0.
    Readv,
    /// `recvfrom` and `recvmsg` in turn (starting with `recvfrom`) until one returns 0.
    RecvfromRecvmsg,
}

/// Runs a receiver over `pair.receiver` and a sender over `pair.sender`. The sender keeps
/// `sender_fds` (its input file, pipe) besides its socket; `send` must move exactly
/// `rounds * bytes` bytes of the pattern.
pub fn run_stream<F>(
    mode: Mode,
    params: &Params,
    pair: Pair,
    receive: Receive,
    sender_fds: &[RawFd],
    send: F,
) -> Result<Vec<ProcessReport>>
where
    F: FnOnce(&Recorder, RawFd) -> ChildResult,
{
    let sizes = params.sizes;
    let slots = SharedSlots::new(2)?;
    let mut children = Children::new(mode.name(), &slots, params.hold);

    let receiver = pair.receiver.as_raw_fd();
    let mut buf = vec![0u8; sizes.chunk];
    let mut verifier = Verifier::new(sizes.bytes, sizes.rounds);
    children.spawn("receiver", &[receiver], move |rec| {
        receive_to_eof(rec, receiver, receive, &mut buf, &mut verifier)
    })?;

    let sender = pair.sender.as_raw_fd();
    let mut keep = sender_fds.to_vec();
    keep.push(sender);
    children.spawn("sender", &keep, move |rec| {
        send(rec, sender)?;
        shutdown_write(sender)
    })?;

    // The children hold their own copies now; the parent needs none.
    drop(pair);
    children.wait()
}

fn receive_to_eof(
    rec: &Recorder,
    socket: RawFd,
    how: Receive,
    buf: &mut [u8],
    verifier: &mut Verifier,
) -> ChildResult {
    let mut turn: u64 = 0;
    loop {
        let n = match how {
            Receive::Read => sys::read(rec, socket, buf).or_fail("read from the socket")?,
            Receive::Readv => {
                let (a, b) = buf.split_at_mut(buf.len() / 2);
                let mut iov = [IoSliceMut::new(a), IoSliceMut::new(b)];
                sys::readv(rec, socket, &mut iov).or_fail("readv from the socket")?
            }
            Receive::RecvfromRecvmsg if turn.is_multiple_of(2) => {
                sys::recvfrom(rec, socket, buf, 0).or_fail("recvfrom the socket")?
            }
            Receive::RecvfromRecvmsg => {
                let mut iov = [IoSliceMut::new(buf)];
                sys::recvmsg(rec, socket, &mut iov, 0).or_fail("recvmsg from the socket")?
            }
        };
        turn += 1;
        if n == 0 {
            return verifier.finish();
        }
        // `readv` fills the halves in order, so the first `n` bytes of `buf` are the data.
        verifier.check(&buf[..n])?;
    }
}
