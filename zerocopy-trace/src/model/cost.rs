//! What a process's data path cost: from per-syscall and per-operation counters to copies,
//! zero-copy bytes, transitions and a verdict. Following the classic analysis of zero copy:
//! read+write of a chunk costs 4 copies (2 by DMA, 2 by the CPU across the user/kernel
//! boundary) and 4 mode transitions; sendfile costs 0 CPU copies and 2 transitions. Each
//! syscall is one entry and one exit: 2 transitions. io_uring operations cost their method's
//! copies but no transitions of their own: the process pays 2 per `io_uring_enter` (none with
//! SQPOLL, as long as the kernel thread is awake). Reads and writes of an `O_DIRECT` file go
//! by DMA: no CPU copy. Zero-copy sends are zero copy only where the kernel's completion
//! notices say so.

use serde::Serialize;
use zerocopy_trace_common::{Counters, Method};

use crate::snapshot::{Path, ProcessCounters};

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

/// The sends of a process that asked for zero copy (`MSG_ZEROCOPY`, io_uring's `SEND_ZC`),
/// and what the kernel's completion notices said of them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ZeroCopySends {
    /// Sends that asked for zero copy and took bytes.
    pub sends: u64,
    pub bytes: u64,
    /// Sends covered by a notice the process read (with io_uring: a notification with a
    /// usage report).
    pub notified: u64,
    /// Of those, the sends the kernel copied anyway.
    pub copied: u64,
    /// Some of the sends were `MSG_ZEROCOPY` syscalls; some were io_uring operations.
    pub by_syscall: bool,
    pub by_io_uring: bool,
}

impl ZeroCopySends {
    pub fn of(counters: &ProcessCounters) -> ZeroCopySends {
        let mut z = ZeroCopySends::default();
        for (_, path, c) in counters.rows() {
            z.sends = z.sends.saturating_add(c.zerocopy_sends);
            z.bytes = z.bytes.saturating_add(c.msg_zerocopy_bytes.min(c.bytes));
            z.notified = z.notified.saturating_add(c.zerocopy_notified);
            z.copied = z.copied.saturating_add(c.zerocopy_copied);
            if c.zerocopy_sends > 0 {
                if path.io_uring {
                    z.by_io_uring = true;
                } else {
                    z.by_syscall = true;
                }
            }
        }
        z
    }

    /// Notices cover at most the sends made (notices of sends made before the trace began
    /// confirm nothing counted here), and copied ones at most those notified.
    fn clamped(&self) -> (u64, u64) {
        let notified = self.notified.min(self.sends);
        (notified, self.copied.min(notified))
    }

    /// Sends the kernel said it copied.
    pub fn kernel_copied(&self) -> u64 {
        self.clamped().1
    }

    /// Sends no notice confirmed either way: not taken as zero copy.
    pub fn unconfirmed(&self) -> u64 {
        self.sends.saturating_sub(self.clamped().0)
    }

    /// Sends the kernel confirmed it did not copy.
    pub fn confirmed(&self) -> u64 {
        let (notified, copied) = self.clamped();
        notified - copied
    }

    /// The confirmed share of `bytes` asked for zero copy. Notices count sends, not bytes:
    /// when only some sends are confirmed, their bytes are taken as that share of the bytes.
    pub fn confirmed_share(&self, bytes: u64) -> u64 {
        if self.sends == 0 {
            return 0;
        }
        let share = u128::from(bytes) * u128::from(self.confirmed()) / u128::from(self.sends);
        u64::try_from(share).unwrap_or(u64::MAX).min(bytes)
    }
}

/// What a process's data path cost.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Cost {
    /// Bytes a CPU copied across the user/kernel boundary.
    pub copied_bytes: u64,
    /// Bytes moved without a CPU copy through user memory: in the kernel, by DMA to or from
    /// an `O_DIRECT` file, or by zero-copy sends the kernel confirmed.
    pub zero_copy_bytes: u64,
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
    /// movers with the bytes they moved; each as syscalls and as io_uring operations.
    pub copy_calls: u64,
    pub copy_ops: u64,
    /// Bytes of zero-copy sends the kernel confirmed it did not copy.
    pub pinned_bytes: u64,
    /// Bytes moved by DMA between user memory and an `O_DIRECT` file.
    pub direct_bytes: u64,
    pub kernel_calls: u64,
    pub kernel_ops: u64,
    pub kernel_bytes: u64,
    pub zero_copy_sends: ZeroCopySends,
}

/// How one syscall's (or operation's) bytes split between the two paths.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MethodBytes {
    /// Copied by a CPU across the user/kernel boundary.
    pub copied: u64,
    /// Moved in the kernel (sendfile, splice, ...), by DMA (`O_DIRECT`), or by zero-copy
    /// sends the kernel confirmed.
    pub zero_copy: u64,
    /// Of `zero_copy`: by DMA to or from an `O_DIRECT` file.
    pub direct: u64,
    /// Of `zero_copy`: sends the kernel confirmed it did not copy.
    pub pinned: u64,
}

impl MethodBytes {
    /// How `c`'s bytes, counted for `path`, split between the two paths, given what the
    /// process's zero-copy notices said (`sends`).
    pub fn of(path: &Path, c: &Counters, sends: &ZeroCopySends) -> MethodBytes {
        match path.method {
            Method::UserCopy | Method::ZeroCopySend => {
                // DMA to or from an O_DIRECT file, then sends that asked for zero copy (as far
                // as the notices confirm them), then the rest: copied.
                let direct = c.direct_bytes.min(c.bytes);
                let asked = c.msg_zerocopy_bytes.min(c.bytes - direct);
                let pinned = sends.confirmed_share(asked);
                MethodBytes {
                    copied: c.bytes - direct - pinned,
                    zero_copy: direct + pinned,
                    direct,
                    pinned,
                }
            }
            Method::Sendfile | Method::CopyFileRange | Method::PipeMover | Method::DirectIo => {
                MethodBytes {
                    zero_copy: c.bytes,
                    ..MethodBytes::default()
                }
            }
            Method::RingSubmit => MethodBytes::default(),
        }
    }
}

impl Cost {
    pub fn of(counters: &ProcessCounters) -> Cost {
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
            cost.zero_copy_bytes = cost.zero_copy_bytes.saturating_add(split.zero_copy);
            cost.direct_bytes = cost.direct_bytes.saturating_add(split.direct);
            cost.pinned_bytes = cost.pinned_bytes.saturating_add(split.pinned);
            match path.method {
                Method::UserCopy | Method::ZeroCopySend => {
                    *copy_calls = copy_calls.saturating_add(c.calls);
                }
                Method::Sendfile | Method::CopyFileRange | Method::PipeMover | Method::DirectIo => {
                    cost.kernel_bytes = cost.kernel_bytes.saturating_add(c.bytes);
                    *kernel_calls = kernel_calls.saturating_add(c.calls);
                }
                Method::RingSubmit => {}
            }
        }
        cost.zero_copy_sends = sends;
        cost
    }

    pub fn moved_bytes(&self) -> u64 {
        self.copied_bytes.saturating_add(self.zero_copy_bytes)
    }

    /// zero_copy_bytes / (zero_copy_bytes + copied_bytes); `None` when nothing moved.
    pub fn zero_copy_ratio(&self) -> Option<f64> {
        let moved = self.moved_bytes();
        (moved > 0).then(|| self.zero_copy_bytes as f64 / moved as f64)
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
            (io_uring_enter.moved_bytes(), io_uring_enter.transitions),
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
        assert_eq!(cost.zero_copy_bytes, 4096 + 2048 + 500);
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
