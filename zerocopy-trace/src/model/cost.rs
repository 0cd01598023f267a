//! What a process's data path cost: from per-syscall counters to copies, zero-copy bytes, transitions and
//! a verdict. Following the classic analysis of zero copy: read+write of a chunk costs 4 copies
//! (2 by DMA, 2 by the CPU across the user/kernel boundary) and 4 mode transitions; sendfile
//! costs 0 CPU copies and 2 transitions. Each syscall is one entry and one exit: 2 transitions.

use serde::Serialize;
use zerocopy_trace_common::{Counters, SyscallDesc, SYSCALLS};

use super::ProcessCounters;

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

/// What a process's data path cost.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Cost {
    /// Bytes a CPU copied across the user/kernel boundary.
    pub copied_bytes: u64,
    /// Bytes the kernel moved without copying them through user memory.
    pub zero_copy_bytes: u64,
    /// User/kernel mode transitions spent on the data path.
    pub transitions: u64,
    pub calls: u64,
    pub errors: u64,
    /// The two paths of the classic picture: read/write/recv/send calls (whose bytes are
    /// copied, or pinned by MSG_ZEROCOPY), and in-kernel movers with the bytes they moved.
    pub copy_calls: u64,
    pub pinned_bytes: u64,
    pub kernel_calls: u64,
    pub kernel_bytes: u64,
}

/// One syscall's bytes by the path they took: the split every sum of the cost model (and the
/// exporter's `method` label) is made of.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MethodBytes {
    /// Copied by a CPU across the user/kernel boundary.
    pub copied: u64,
    /// Moved in the kernel (sendfile, splice, ...) or pinned by MSG_ZEROCOPY.
    pub zero_copy: u64,
}

impl MethodBytes {
    /// How `c`'s bytes, counted for the syscall `desc`, split between the two paths.
    pub fn of(desc: &SyscallDesc, c: &Counters) -> MethodBytes {
        if desc.method.copies() {
            // A MSG_ZEROCOPY send pins the user pages instead of copying them.
            let pinned = c.msg_zerocopy_bytes.min(c.bytes);
            MethodBytes {
                copied: c.bytes - pinned,
                zero_copy: pinned,
            }
        } else {
            MethodBytes {
                copied: 0,
                zero_copy: c.bytes,
            }
        }
    }
}

impl Cost {
    pub fn of(counters: &ProcessCounters) -> Cost {
        let mut cost = Cost::default();
        for (desc, c) in SYSCALLS.iter().zip(&counters.syscalls) {
            let split = MethodBytes::of(desc, c);
            cost.copied_bytes = cost.copied_bytes.saturating_add(split.copied);
            cost.zero_copy_bytes = cost.zero_copy_bytes.saturating_add(split.zero_copy);
            if desc.method.copies() {
                cost.pinned_bytes = cost.pinned_bytes.saturating_add(split.zero_copy);
                cost.copy_calls = cost.copy_calls.saturating_add(c.calls);
            } else {
                cost.kernel_bytes = cost.kernel_bytes.saturating_add(c.bytes);
                cost.kernel_calls = cost.kernel_calls.saturating_add(c.calls);
            }
            cost.transitions = cost.transitions.saturating_add(c.calls.saturating_mul(2));
            cost.calls = cost.calls.saturating_add(c.calls);
            cost.errors = cost.errors.saturating_add(c.errors);
        }
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
            let c = &mut counters.syscalls[syscall_id(name).unwrap()];
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

    #[test]
    fn msg_zerocopy_sends_are_counted_apart() {
        let mut counters = with(&[("sendmsg", 4, 4000)]);
        counters.syscalls[syscall_id("sendmsg").unwrap()].msg_zerocopy_bytes = 3000;
        let cost = Cost::of(&counters);
        assert_eq!((cost.copied_bytes, cost.zero_copy_bytes), (1000, 3000));
        assert_eq!(cost.verdict(), Verdict::Mixed);
    }

    #[test]
    fn the_two_paths_of_the_picture() {
        let mut c = with(&[
            ("read", 4, 400),
            ("write", 4, 400),
            ("splice", 2, 800),
            ("sendmsg", 1, 100),
        ]);
        c.syscalls[syscall_id("sendmsg").unwrap()].msg_zerocopy_bytes = 60;
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
        failing.syscalls[0].errors = 3;
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
