//! What a process's data path cost: from per-syscall and per-operation counters to copies,
//! zero-copy bytes, transitions and a verdict. Following the classic analysis of zero copy:
//! read+write of a chunk costs 4 copies (2 by DMA, 2 by the CPU across the user/kernel
//! boundary) and 4 mode transitions; sendfile costs 0 CPU copies and 2 transitions. Each
//! syscall is one entry and one exit: 2 transitions. io_uring operations cost their method's
//! copies but no transitions of their own: the process pays 2 per `io_uring_enter` (none with
//! SQPOLL, as long as the kernel thread is awake). Reads and writes of an `O_DIRECT` file go
//! by DMA: no CPU copy. Zero-copy sends are zero copy only where the kernel's completion
//! notices say so. The share of zero copy is of the bytes delivered (the flows': each byte
//! once from its source to its destination), so a byte read by `O_DIRECT` and then written
//! to a socket by the CPU is not zero copy, and a byte spliced through a pipe counts once.

use serde::Serialize;
use zerocopy_trace_common::{Counters, Method};

use super::{
    flows::{flows, Flow},
    split::{MethodBytes, ZeroCopySends},
};
use crate::snapshot::ProcessCounters;

/// At or above this share of zero-copy bytes a process is `zero-copy`.
pub const ZERO_COPY_THRESHOLD: f64 = 0.9;
/// At or below this share it is `copying`.
pub const COPYING_THRESHOLD: f64 = 0.1;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    ZeroCopy,
    Mixed,
    Copying,
    Idle,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::ZeroCopy => "zero-copy",
            Verdict::Mixed => "mixed",
            Verdict::Copying => "copying",
            Verdict::Idle => "idle",
        }
    }
}

/// Calls and the bytes they moved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallsBytes {
    pub calls: u64,
    pub bytes: u64,
}

impl CallsBytes {
    fn add(&mut self, c: &Counters) {
        self.calls = self.calls.saturating_add(c.calls);
        self.bytes = self.bytes.saturating_add(c.bytes);
    }

    /// Bytes a call moved on average; `None` without calls that moved bytes.
    pub fn per_call(&self) -> Option<u64> {
        (self.calls > 0 && self.bytes > 0).then(|| self.bytes.div_ceil(self.calls))
    }
}

/// A process's own sendfile, splice and copy_file_range syscalls (not io_uring operations).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MoverCalls {
    pub sendfile: CallsBytes,
    /// Every splice call, into a pipe and out of it alike.
    pub splice: CallsBytes,
    pub copy_file_range: CallsBytes,
}

/// What a process's data path cost.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Cost {
    /// Bytes a CPU copied across the user/kernel boundary: twice each byte relayed by read
    /// and write, once each byte read into or written from user memory.
    pub copied_bytes: u64,
    /// Bytes delivered from their source to their destination without any CPU copy: in the
    /// kernel, by DMA between an `O_DIRECT` file and user memory, or by zero-copy sends the
    /// kernel confirmed. A byte spliced into a pipe and out of it counts once.
    pub zero_copy_bytes: u64,
    /// Bytes delivered, each once from its source to its destination: the flows' bytes. A
    /// byte read and written out again is one byte delivered (and two CPU copies).
    pub delivered_bytes: u64,
    /// User/kernel mode transitions spent on the data path: 2 per syscall (`io_uring_enter`
    /// included); io_uring operations add none of their own.
    pub transitions: u64,
    /// Syscalls completed.
    pub calls: u64,
    /// io_uring operations completed.
    pub ops: u64,
    pub errors: u64,
    /// The two paths of the classic picture: read/write/recv/send calls (whose bytes are
    /// copied, or pinned by zero-copy sends, or moved by DMA with `O_DIRECT`), and in-kernel
    /// movers with the bytes they moved (a byte through a pipe twice: into it and out);
    /// each as syscalls and as io_uring operations.
    pub copy_calls: u64,
    pub copy_ops: u64,
    /// Bytes of zero-copy sends the kernel confirmed it did not copy.
    pub pinned_bytes: u64,
    /// Bytes moved by DMA between user memory and an `O_DIRECT` file.
    pub direct_bytes: u64,
    pub kernel_calls: u64,
    pub kernel_ops: u64,
    pub kernel_bytes: u64,
    /// The process's own in-kernel mover syscalls: how many bytes a call of each moves for
    /// this process, to price a remedy by.
    pub movers: MoverCalls,
    pub zero_copy_sends: ZeroCopySends,
}

impl Cost {
    pub fn of(counters: &ProcessCounters) -> Cost {
        Cost::with_flows(counters, &flows(counters))
    }

    /// The cost of `counters`, whose flows (`flows(counters)`) the caller has already.
    pub fn with_flows(counters: &ProcessCounters, flows: &[Flow]) -> Cost {
        let mut cost = Cost::default();
        let sends = ZeroCopySends::of(counters);
        for (_, path, c) in counters.rows() {
            let (calls, copy_calls, kernel_calls) = if path.io_uring {
                (&mut cost.ops, &mut cost.copy_ops, &mut cost.kernel_ops)
            } else {
                cost.transitions = cost.transitions.saturating_add(c.calls.saturating_mul(2));
                (
                    &mut cost.calls,
                    &mut cost.copy_calls,
                    &mut cost.kernel_calls,
                )
            };
            *calls = calls.saturating_add(c.calls);
            cost.errors = cost.errors.saturating_add(c.errors);
            let split = MethodBytes::of(&path, c, &sends);
            cost.copied_bytes = cost.copied_bytes.saturating_add(split.copied);
            cost.direct_bytes = cost.direct_bytes.saturating_add(split.direct);
            cost.pinned_bytes = cost.pinned_bytes.saturating_add(split.pinned);
            match path.method {
                Method::UserCopy | Method::ZeroCopySend => {
                    *copy_calls = copy_calls.saturating_add(c.calls);
                }
                Method::Sendfile | Method::CopyFileRange | Method::PipeMover | Method::DirectIo => {
                    cost.kernel_bytes = cost.kernel_bytes.saturating_add(c.bytes);
                    *kernel_calls = kernel_calls.saturating_add(c.calls);
                    let mover = match (path.io_uring, path.method, path.name) {
                        (true, _, _) => None,
                        (false, Method::Sendfile, _) => Some(&mut cost.movers.sendfile),
                        (false, Method::CopyFileRange, _) => Some(&mut cost.movers.copy_file_range),
                        (false, Method::PipeMover, "splice") => Some(&mut cost.movers.splice),
                        _ => None,
                    };
                    if let Some(mover) = mover {
                        mover.add(c);
                    }
                }
                Method::RingSubmit => {}
            }
        }
        for f in flows {
            cost.delivered_bytes = cost.delivered_bytes.saturating_add(f.bytes);
            if f.cpu_copies == 0 {
                cost.zero_copy_bytes = cost.zero_copy_bytes.saturating_add(f.bytes);
            }
        }
        cost.zero_copy_sends = sends;
        cost
    }

    /// zero_copy_bytes / delivered_bytes; `None` when nothing was delivered.
    pub fn zero_copy_ratio(&self) -> Option<f64> {
        let delivered = self.delivered_bytes;
        (delivered > 0).then(|| self.zero_copy_bytes.min(delivered) as f64 / delivered as f64)
    }

    pub fn verdict(&self) -> Verdict {
        match self.zero_copy_ratio() {
            None => Verdict::Idle,
            Some(r) if r >= ZERO_COPY_THRESHOLD => Verdict::ZeroCopy,
            Some(r) if r <= COPYING_THRESHOLD => Verdict::Copying,
            Some(_) => Verdict::Mixed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy_trace_common::syscalls::syscall_id;

    fn with(entries: &[(&str, u64, u64)]) -> ProcessCounters {
        let mut counters = ProcessCounters::default();
        for &(name, calls, bytes) in entries {
            let c = counters.syscall_mut(syscall_id(name).unwrap());
            c.calls += calls;
            c.bytes += bytes;
        }
        counters
    }

    #[test]
    fn read_write_relay_is_copying_with_four_transitions_per_chunk() {
        // 16 chunks of 64 KiB read from a file and written to a socket.
        let cost = Cost::of(&with(&[("read", 16, 1 << 20), ("write", 16, 1 << 20)]));
        assert_eq!(cost.copied_bytes, 2 << 20);
        assert_eq!(cost.zero_copy_bytes, 0);
        assert_eq!(cost.transitions, 16 * 4);
        assert_eq!(cost.zero_copy_ratio(), Some(0.0));
        assert_eq!(cost.verdict(), Verdict::Copying);
    }

    #[test]
    fn sendfile_is_zero_copy_with_two_transitions_per_chunk() {
        let cost = Cost::of(&with(&[("sendfile64", 16, 1 << 20)]));
        assert_eq!((cost.copied_bytes, cost.zero_copy_bytes), (0, 1 << 20));
        assert_eq!(cost.transitions, 32);
        assert_eq!(cost.verdict(), Verdict::ZeroCopy);
    }

    #[test]
    fn every_in_kernel_mover_counts_as_zero_copy() {
        for name in ["sendfile64", "splice", "tee", "vmsplice", "copy_file_range"] {
            let cost = Cost::of(&with(&[(name, 1, 100)]));
            assert_eq!(
                (cost.copied_bytes, cost.zero_copy_bytes),
                (0, 100),
                "{name}"
            );
        }
        let io_uring_enter = Cost::of(&with(&[("io_uring_enter", 5, 0)]));
        assert_eq!(
            (io_uring_enter.delivered_bytes, io_uring_enter.transitions),
            (0, 10)
        );
        for name in [
            "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev",
            "preadv2", "pwritev2", "recvfrom", "recvmsg", "recvmmsg", "sendto", "sendmsg",
            "sendmmsg",
        ] {
            let cost = Cost::of(&with(&[(name, 1, 100)]));
            assert_eq!(
                (cost.copied_bytes, cost.zero_copy_bytes),
                (100, 0),
                "{name}"
            );
        }
    }

    /// `sends` MSG_ZEROCOPY sends of `bytes` among 4 sendmsg calls of 4000 bytes, and what
    /// the notices the process read said.
    fn zerocopy(sends: u64, bytes: u64, notified: u64, copied: u64) -> Cost {
        let mut counters = with(&[("sendmsg", 4, 4000)]);
        let c = counters.syscall_mut(syscall_id("sendmsg").unwrap());
        (c.zerocopy_sends, c.msg_zerocopy_bytes) = (sends, bytes);
        let r = counters.syscall_mut(syscall_id("recvmsg").unwrap());
        (r.calls, r.zerocopy_notified, r.zerocopy_copied) = (1, notified, copied);
        Cost::of(&counters)
    }

    #[test]
    fn zero_copy_sends_are_judged_by_the_kernel_s_notices() {
        // Confirmed not copied: zero copy.
        let cost = zerocopy(3, 3000, 3, 0);
        assert_eq!((cost.copied_bytes, cost.zero_copy_bytes), (1000, 3000));
        assert_eq!(cost.pinned_bytes, 3000);
        assert_eq!(cost.verdict(), Verdict::Mixed);
        // The kernel copied them all: copying, whatever the flag asked.
        let cost = zerocopy(3, 3000, 3, 3);
        assert_eq!((cost.copied_bytes, cost.zero_copy_bytes), (4000, 0));
        assert_eq!(cost.zero_copy_sends.kernel_copied(), 3);
        assert_eq!(cost.verdict(), Verdict::Copying);
        // No notice read: unconfirmed, not zero copy.
        let cost = zerocopy(3, 3000, 0, 0);
        assert_eq!((cost.copied_bytes, cost.zero_copy_bytes), (4000, 0));
        assert_eq!(cost.zero_copy_sends.unconfirmed(), 3);
        // One of three confirmed: its share of the bytes.
        let cost = zerocopy(3, 3000, 2, 1);
        assert_eq!(
            (cost.pinned_bytes, cost.zero_copy_sends.unconfirmed()),
            (1000, 1)
        );
        // Notices of sends made before the trace confirm nothing counted here.
        let cost = zerocopy(0, 0, 5, 0);
        assert_eq!(
            (cost.pinned_bytes, cost.zero_copy_sends.kernel_copied()),
            (0, 0)
        );
        // recvmsg's calls are transitions like any other.
        assert_eq!(cost.transitions, 10);
    }

    #[test]
    fn direct_io_is_zero_copy_and_io_uring_ops_cost_no_transitions() {
        use zerocopy_trace_common::io_uring::io_uring_op_index;
        let mut counters = with(&[("pread64", 4, 4096), ("io_uring_enter", 3, 0)]);
        counters
            .syscall_mut(syscall_id("pread64").unwrap())
            .direct_bytes = 4096;
        let read = counters.op_mut(io_uring_op_index("READ").unwrap());
        (read.calls, read.bytes, read.direct_bytes) = (8, 8192, 2048);
        let splice = counters.op_mut(io_uring_op_index("SPLICE").unwrap());
        (splice.calls, splice.bytes) = (2, 500);
        let cost = Cost::of(&counters);
        assert_eq!(cost.direct_bytes, 4096 + 2048);
        assert_eq!(cost.copied_bytes, 8192 - 2048);
        assert_eq!(cost.kernel_bytes, 500);
        // Delivered with no CPU copy: the O_DIRECT bytes, which stay in the process, and the
        // spliced ones.
        assert_eq!(cost.zero_copy_bytes, 4096 + 2048 + 500);
        assert_eq!(cost.delivered_bytes, 4096 + 8192 + 500);
        assert_eq!((cost.calls, cost.ops, cost.transitions), (7, 10, 14));
        assert_eq!((cost.copy_calls, cost.copy_ops, cost.kernel_ops), (4, 8, 2));
    }

    #[test]
    fn the_two_paths_of_the_picture() {
        let mut c = with(&[
            ("read", 4, 400),
            ("write", 4, 400),
            ("splice", 2, 800),
            ("sendmsg", 1, 100),
        ]);
        let sendmsg = c.syscall_mut(syscall_id("sendmsg").unwrap());
        (
            sendmsg.msg_zerocopy_bytes,
            sendmsg.zerocopy_sends,
            sendmsg.zerocopy_notified,
        ) = (60, 1, 1);
        let cost = Cost::of(&c);
        assert_eq!(
            (cost.copy_calls, cost.copied_bytes, cost.pinned_bytes),
            (9, 840, 60)
        );
        assert_eq!((cost.kernel_calls, cost.kernel_bytes), (2, 800));
        assert_eq!(cost.zero_copy_bytes, 860);
    }

    #[test]
    fn thresholds_are_inclusive() {
        let at = |zc: u64, copied: u64| {
            Cost::of(&with(&[("splice", 1, zc), ("read", 1, copied)])).verdict()
        };
        assert_eq!(at(90, 10), Verdict::ZeroCopy);
        assert_eq!(at(89, 11), Verdict::Mixed);
        assert_eq!(at(11, 89), Verdict::Mixed);
        assert_eq!(at(10, 90), Verdict::Copying);
    }

    #[test]
    fn idle_and_errors_only() {
        let empty = Cost::of(&with(&[]));
        assert_eq!(
            (empty.zero_copy_ratio(), empty.verdict()),
            (None, Verdict::Idle)
        );
        let mut failing = with(&[("read", 3, 0)]);
        failing.syscall_mut(0).errors = 3;
        let cost = Cost::of(&failing);
        assert_eq!(
            (cost.transitions, cost.errors, cost.verdict()),
            (6, 3, Verdict::Idle)
        );
    }

    #[test]
    fn huge_counters_saturate_instead_of_wrapping() {
        let cost = Cost::of(&with(&[
            ("read", u64::MAX, u64::MAX),
            ("write", 1, u64::MAX),
        ]));
        assert_eq!(cost.copied_bytes, u64::MAX);
        assert_eq!(cost.transitions, u64::MAX);
        assert_eq!(cost.verdict(), Verdict::Copying);
    }
}
