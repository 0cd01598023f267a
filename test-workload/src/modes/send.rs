//! The socket send/receive family over TCP: `sendto`/`sendmsg` against `recvfrom`/`recvmsg`,
//! and `sendto` with `MSG_ZEROCOPY` (over TCP and UDP), whose senders then read the kernel's
//! completion notices from their error queue and record what they say. Senders send from
//! memory, so they make no file reads.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::Result;

use super::tcp::{run_stream, Receive};
use super::{transfer_all, Mode, Params, Sizes};
use crate::child::{ChildResult, Children};
use crate::ground_truth::{Errno, Failure, OrFail, Recorder, SharedSlots};
use crate::net::{self, IO_TIMEOUT};
use crate::pattern::{pattern, Verifier};
use crate::report::ProcessReport;
use crate::sys;

/// `SO_EE_ORIGIN_ZEROCOPY` and `SO_EE_CODE_ZEROCOPY_COPIED` from `<linux/errqueue.h>` (libc
/// has neither).
const SO_EE_ORIGIN_ZEROCOPY: u8 = 5;
const SO_EE_CODE_ZEROCOPY_COPIED: u8 = 1;
/// Room for one notice's control message (IPv6's is the longest: 64 bytes).
const CONTROL_LEN: usize = 128;
/// Largest datagram of the UDP mode.
const MAX_DATAGRAM: usize = 8192;

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

/// sender: `sendto(..., MSG_ZEROCOPY)` per chunk on a socket with `SO_ZEROCOPY` set, then
/// reads every completion notice from its error queue (`recvmsg(MSG_ERRQUEUE |
/// MSG_DONTWAIT)`, recorded like any other call; a read that finds the queue empty fails with
/// EAGAIN) and records what they say. If a send fails with ENOBUFS (queue over its memory
/// limit) it reads the notices queued so far and sends again. receiver: `read`.
pub fn msg_zerocopy(params: &Params) -> Result<Vec<ProcessReport>> {
    let sizes = params.sizes;
    let data = pattern(sizes.bytes);
    let send = move |rec: &Recorder, socket| send_zerocopy_rounds(rec, socket, &data, sizes);
    let pair = net::tcp_pair()?;
    net::enable_zerocopy(&pair.sender)?;
    run_stream(Mode::MsgZerocopy, params, pair, Receive::Read, &[], send)
}

/// UDP: sender: `sendto(..., MSG_ZEROCOPY)` of one datagram (at most `--chunk`, at most 8192
/// bytes) at a time, waiting (spinning, no syscall) until the receiver has taken it, so none
/// is dropped; then reads its completion notices as the TCP mode does. receiver: `recvfrom`.
pub fn msg_zerocopy_udp(params: &Params) -> Result<Vec<ProcessReport>> {
    let sizes = params.sizes;
    let data = pattern(sizes.bytes);
    let size = sizes.chunk.clamp(1, MAX_DATAGRAM);
    let total = data.chunks(size).count() as u64 * sizes.rounds;
    let pair = net::udp_pair()?;
    net::enable_zerocopy(&pair.sender)?;
    let slots = SharedSlots::new(2)?;
    // Datagrams the receiver has taken so far; the sender waits on it.
    let progress = &slots.slot(0).progress;
    let mut children = Children::new(Mode::MsgZerocopyUdp.name(), &slots, params.hold);

    let receiver = pair.receiver.as_raw_fd();
    let mut buf = vec![0u8; size];
    let mut verifier = Verifier::new(sizes.bytes, sizes.rounds);
    children.spawn("receiver", &[receiver], move |rec| {
        for _ in 0..total {
            let n = sys::recvfrom(rec, receiver, &mut buf, 0).or_fail("recvfrom a datagram")?;
            verifier.check(&buf[..n])?;
            progress.fetch_add(1, Ordering::Release);
        }
        verifier.finish()
    })?;

    let sender = pair.sender.as_raw_fd();
    children.spawn("sender", &[sender], move |rec| {
        let mut control = [0u8; CONTROL_LEN];
        let mut notices = Notices::default();
        let mut sent = 0u64;
        for _ in 0..sizes.rounds {
            for datagram in data.chunks(size) {
                let n = send_zerocopy(rec, sender, datagram, &mut control, &mut notices)?;
                if n != datagram.len() {
                    return Err(Failure::new("a datagram went out short"));
                }
                sent += 1;
                wait_for(progress, sent)?;
            }
        }
        notices.read_all(rec, sender, &mut control)
    })?;
    drop(pair);
    children.wait()
}

/// Spins (no syscall) until `counter` reaches `target`, at most `IO_TIMEOUT`.
fn wait_for(counter: &AtomicU64, target: u64) -> ChildResult {
    let deadline = Instant::now() + IO_TIMEOUT;
    while counter.load(Ordering::Acquire) < target {
        if Instant::now() > deadline {
            return Err(Failure::new("the receiver stopped taking datagrams"));
        }
        std::thread::yield_now();
    }
    Ok(())
}

/// What the sender has sent with `MSG_ZEROCOPY` and what notices covered so far.
#[derive(Default)]
struct Notices {
    sends: u64,
    covered: u64,
}

impl Notices {
    /// Reads the notices queued now (until EAGAIN), recording each. Returns how many reads
    /// found one.
    fn drain(&mut self, rec: &Recorder, socket: RawFd, control: &mut [u8]) -> Result<u64, Failure> {
        let mut found = 0;
        loop {
            match sys::recvmsg_errqueue(rec, socket, control) {
                Ok((_, len)) => {
                    let (sends, copied) = parse_notice(&control[..len.min(control.len())]).ok_or(
                        Failure::new("an error-queue message that is not a zero-copy notice"),
                    )?;
                    rec.notice(sends, copied);
                    self.covered += sends;
                    found += 1;
                }
                Err(Errno(libc::EAGAIN)) => return Ok(found),
                Err(e) => return Err(e).or_fail("recvmsg the zero-copy notices"),
            }
        }
    }

    /// Waits (`poll` for POLLERR, not a data-path syscall) and reads until every send is
    /// covered by a notice.
    fn read_all(&mut self, rec: &Recorder, socket: RawFd, control: &mut [u8]) -> ChildResult {
        let deadline = Instant::now() + IO_TIMEOUT;
        while self.covered < self.sends {
            if Instant::now() > deadline {
                return Err(Failure::new("not every zero-copy send got its notice"));
            }
            let mut fd = libc::pollfd {
                fd: socket,
                events: 0,
                revents: 0,
            };
            // SAFETY: one valid pollfd for the call.
            unsafe { libc::poll(&mut fd, 1, 1000) };
            if fd.revents & libc::POLLERR != 0 {
                self.drain(rec, socket, control)?;
            }
        }
        Ok(())
    }
}

/// The sends a zero-copy notice covers and whether the kernel copied them, parsed with
/// libc's control-message walk (independently of the tracer's own parser).
fn parse_notice(control: &[u8]) -> Option<(u64, bool)> {
    // SAFETY: msghdr is plain C data; all-zero is valid.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_control = control.as_ptr().cast_mut().cast();
    msg.msg_controllen = control.len() as _;
    // SAFETY: the CMSG_* walk stays within `msg_control`/`msg_controllen`, which describe
    // `control`; the extended error is read unaligned from inside it.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            let (level, kind) = ((*cmsg).cmsg_level, (*cmsg).cmsg_type);
            let recverr = (level == libc::SOL_IP && kind == libc::IP_RECVERR)
                || (level == libc::SOL_IPV6 && kind == libc::IPV6_RECVERR);
            if recverr {
                let ee: libc::sock_extended_err =
                    std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                if ee.ee_errno != 0 || ee.ee_origin != SO_EE_ORIGIN_ZEROCOPY {
                    return None;
                }
                let sends = u64::from(ee.ee_data.wrapping_sub(ee.ee_info)) + 1;
                return Some((sends, ee.ee_code & SO_EE_CODE_ZEROCOPY_COPIED != 0));
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    None
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
    let mut control = [0u8; CONTROL_LEN];
    let mut notices = Notices::default();
    for _ in 0..sizes.rounds {
        for chunk in data.chunks(sizes.chunk) {
            let mut rest = chunk;
            while !rest.is_empty() {
                rest = &rest[send_zerocopy(rec, socket, rest, &mut control, &mut notices)?..];
            }
        }
    }
    notices.read_all(rec, socket, &mut control)
}

/// One `MSG_ZEROCOPY` send, recorded as one; on ENOBUFS the notices queued so far are read
/// and the send is tried again. Returns the bytes the kernel took.
fn send_zerocopy(
    rec: &Recorder,
    socket: RawFd,
    data: &[u8],
    control: &mut [u8],
    notices: &mut Notices,
) -> Result<usize, Failure> {
    loop {
        match sys::sendto(rec, socket, data, libc::MSG_ZEROCOPY) {
            Ok(0) => return Err(Failure::new("sendto with MSG_ZEROCOPY accepted no bytes")),
            Ok(n) => {
                rec.zerocopy_send(n);
                notices.sends += 1;
                return Ok(n);
            }
            Err(Errno(libc::ENOBUFS)) => {
                if notices.drain(rec, socket, control)? == 0 {
                    return Err(Failure {
                        what: "sendto with MSG_ZEROCOPY (no notices to read)",
                        errno: libc::ENOBUFS,
                    });
                }
            }
            Err(e) => return Err(e).or_fail("sendto with MSG_ZEROCOPY"),
        }
    }
}
