//! UDP batches: `sendmmsg` against `recvmmsg` over loopback. UDP may drop what the receive
//! buffer cannot hold, so the sender works in lock-step: after each batch it waits (spinning
//! with `sched_yield`, no data syscall) until the receiver has counted that batch in shared
//! memory. At most one batch is ever in flight, well within the receive buffer.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::Result;

use super::{Mode, Params};
use crate::child::{ChildResult, Children};
use crate::ground_truth::{Failure, OrFail, Recorder, SharedSlots};
use crate::net::{self, IO_TIMEOUT};
use crate::pattern::{pattern, Verifier};
use crate::report::ProcessReport;
use crate::sys::{self, MAX_MMSG_BATCH};

/// Largest datagram this mode sends: `--chunk` is capped to it.
pub const MAX_MESSAGE: usize = 8192;

const BATCH: u64 = MAX_MMSG_BATCH as u64;

/// How a round is cut into datagrams: `--chunk` bytes each (at most `MAX_MESSAGE`), the last
/// one shorter if the round does not divide evenly.
#[derive(Clone, Copy)]
struct Messages {
    size: usize,
    round_len: usize,
    per_round: u64,
}

impl Messages {
    fn new(chunk: usize, round_len: usize) -> Self {
        let size = chunk.clamp(1, MAX_MESSAGE);
        Messages {
            size,
            round_len,
            per_round: round_len.div_ceil(size) as u64,
        }
    }

    /// Offset and length within the round of message `index` (counted over all rounds).
    fn span(&self, index: u64) -> (usize, usize) {
        let start = (index % self.per_round) as usize * self.size;
        (start, self.size.min(self.round_len - start))
    }
}

/// sender: `sendmmsg` of batches of 8 datagrams (the last batch may be smaller), repeating a
/// call for the rest of a batch if the kernel took only part of it. receiver: `recvmmsg`
/// asking for the rest of the current batch, so it never waits for a datagram that the
/// sender will only send after hearing from it.
pub fn mmsg(params: &Params) -> Result<Vec<ProcessReport>> {
    let sizes = params.sizes;
    let data = pattern(sizes.bytes);
    let messages = Messages::new(sizes.chunk, data.len());
    let total = messages.per_round * sizes.rounds;
    let pair = net::udp_pair()?;

    let slots = SharedSlots::new(2)?;
    // Messages the receiver has taken so far; the sender waits on it.
    let progress = &slots.slot(0).progress;
    let mut children = Children::new(Mode::Mmsg.name(), &slots, params.hold);

    let receiver = pair.receiver.as_raw_fd();
    let mut buf = vec![0u8; messages.size * MAX_MMSG_BATCH];
    let mut verifier = Verifier::new(sizes.bytes, sizes.rounds);
    children.spawn("receiver", &[receiver], move |rec| {
        receive(
            rec,
            receiver,
            messages,
            total,
            &mut buf,
            &mut verifier,
            progress,
        )
    })?;

    let sender = pair.sender.as_raw_fd();
    children.spawn("sender", &[sender], move |rec| {
        send(rec, sender, messages, total, &data, progress)
    })?;
    drop(pair);
    children.wait()
}

fn send(
    rec: &Recorder,
    socket: RawFd,
    messages: Messages,
    total: u64,
    data: &[u8],
    progress: &AtomicU64,
) -> ChildResult {
    let mut next: u64 = 0;
    while next < total {
        let batch_end = (next + BATCH).min(total);
        while next < batch_end {
            let count = (batch_end - next) as usize;
            let mut iov = [IoSlice::new(&[]); MAX_MMSG_BATCH];
            for (k, slice) in iov[..count].iter_mut().enumerate() {
                let (start, len) = messages.span(next + k as u64);
                *slice = IoSlice::new(&data[start..start + len]);
            }
            let n = sys::sendmmsg(rec, socket, &iov[..count], 0).or_fail("sendmmsg")?;
            if n == 0 {
                return Err(Failure::new("sendmmsg sent no message"));
            }
            next += n as u64;
        }
        wait_for(progress, batch_end)?;
    }
    Ok(())
}

fn receive(
    rec: &Recorder,
    socket: RawFd,
    messages: Messages,
    total: u64,
    buf: &mut [u8],
    verifier: &mut Verifier,
    progress: &AtomicU64,
) -> ChildResult {
    let mut got: u64 = 0;
    while got < total {
        let count = (BATCH - got % BATCH).min(total - got) as usize;
        let mut lens = [0u32; MAX_MMSG_BATCH];
        let mut pieces = buf.chunks_mut(messages.size);
        let mut iov: [IoSliceMut; MAX_MMSG_BATCH] =
            std::array::from_fn(|_| IoSliceMut::new(pieces.next().unwrap_or_default()));
        let n = sys::recvmmsg(rec, socket, &mut iov[..count], 0, &mut lens).or_fail("recvmmsg")?;
        if n == 0 {
            return Err(Failure::new("recvmmsg returned no message"));
        }
        for (k, &len) in lens[..n].iter().enumerate() {
            let (_, expected) = messages.span(got + k as u64);
            if len as usize != expected {
                return Err(Failure::new("a datagram arrived with the wrong length"));
            }
            let start = k * messages.size;
            verifier.check(&buf[start..start + expected])?;
        }
        got += n as u64;
        progress.store(got, Ordering::Release);
    }
    verifier.finish()
}

/// Spins until the receiver has taken `target` messages, or fails after `IO_TIMEOUT`.
fn wait_for(progress: &AtomicU64, target: u64) -> ChildResult {
    let deadline = Instant::now() + IO_TIMEOUT;
    while progress.load(Ordering::Acquire) < target {
        if Instant::now() > deadline {
            return Err(Failure::new("the receiver did not take a batch in time"));
        }
        // SAFETY: takes no arguments; only yields the CPU to the receiver.
        unsafe { libc::sched_yield() };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_cover_each_round_exactly() {
        let m = Messages::new(65536, 20000);
        assert_eq!((m.size, m.per_round), (MAX_MESSAGE, 3));
        assert_eq!(m.span(0), (0, 8192));
        assert_eq!(m.span(2), (16384, 20000 - 16384));
        // The next round starts over.
        assert_eq!(m.span(3), (0, 8192));
        assert_eq!(Messages::new(100, 0).per_round, 0);
    }
}
