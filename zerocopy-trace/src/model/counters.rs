//! What is counted of a process: the plain data every later step works on. A group of
//! processes (all those of one name, say) adds up to the same shape.

use zerocopy_trace_common::{Counters, SYSCALL_COUNT};

/// Per-syscall counters, indexed by syscall id.
pub type SyscallCounters = [Counters; SYSCALL_COUNT];

/// Everything counted of one process, or of several added together. A new data path adds its
/// counters here, and to `add` and `difference`, which every sum and rate goes through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessCounters {
    pub syscalls: SyscallCounters,
}

impl Default for ProcessCounters {
    fn default() -> Self {
        ProcessCounters {
            syscalls: [Counters::default(); SYSCALL_COUNT],
        }
    }
}

impl ProcessCounters {
    /// Adds `other` in, field by field (64-bit byte counts do not wrap in any real trace).
    pub fn add(&mut self, other: &ProcessCounters) {
        for (s, o) in self.syscalls.iter_mut().zip(&other.syscalls) {
            s.add(o);
        }
    }

    /// `self - before`, field by field; a counter that went backwards gives 0, not a wrap.
    pub fn difference(&self, before: &ProcessCounters) -> ProcessCounters {
        let mut out = ProcessCounters::default();
        let minus = |n: &[u64], b: &[u64], o: &mut [u64]| {
            for ((o, n), b) in o.iter_mut().zip(n).zip(b) {
                *o = n.saturating_sub(*b);
            }
        };
        for ((o, n), b) in out
            .syscalls
            .iter_mut()
            .zip(&self.syscalls)
            .zip(&before.syscalls)
        {
            o.calls = n.calls.saturating_sub(b.calls);
            o.bytes = n.bytes.saturating_sub(b.bytes);
            o.errors = n.errors.saturating_sub(b.errors);
            o.msg_zerocopy_bytes = n.msg_zerocopy_bytes.saturating_sub(b.msg_zerocopy_bytes);
            minus(
                &n.source_kind_bytes,
                &b.source_kind_bytes,
                &mut o.source_kind_bytes,
            );
            minus(
                &n.destination_kind_bytes,
                &b.destination_kind_bytes,
                &mut o.destination_kind_bytes,
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use zerocopy_trace_common::fd_kind;

    use super::*;

    #[test]
    fn differences_saturate_and_cover_every_field() {
        let mut before = ProcessCounters::default();
        let mut now = ProcessCounters::default();
        before.syscalls[0].calls = 9;
        before.syscalls[0].bytes = u64::MAX;
        now.syscalls[0].calls = 12;
        now.syscalls[0].bytes = 5;
        now.syscalls[3].msg_zerocopy_bytes = 7;
        now.syscalls[3].source_kind_bytes[fd_kind::FILE as usize] = 4;
        now.syscalls[3].destination_kind_bytes[fd_kind::TCP as usize] = 6;
        let d = now.difference(&before);
        assert_eq!((d.syscalls[0].calls, d.syscalls[0].bytes), (3, 0));
        assert_eq!(d.syscalls[3].msg_zerocopy_bytes, 7);
        assert_eq!(d.syscalls[3].source_kind_bytes[fd_kind::FILE as usize], 4);
        assert_eq!(
            d.syscalls[3].destination_kind_bytes[fd_kind::TCP as usize],
            6
        );
        assert_eq!(before.difference(&before), ProcessCounters::default());
        let mut sum = ProcessCounters::default();
        sum.add(&now);
        sum.add(&now);
        assert_eq!(sum.syscalls[0].calls, 24);
    }
}
