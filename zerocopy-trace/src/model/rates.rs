//! Differences between two snapshots and rates over the time between them.

use zerocopy_trace_common::{Counters, SYSCALL_COUNT};

use super::SyscallCounters;

pub fn zero_counters() -> SyscallCounters {
    [Counters::default(); SYSCALL_COUNT]
}

/// `now - before`, field by field; a counter that went backwards gives 0, not a wrap.
pub fn difference(now: &SyscallCounters, before: &SyscallCounters) -> SyscallCounters {
    let mut out = zero_counters();
    let minus = |n: &[u64], b: &[u64], o: &mut [u64]| {
        for ((o, n), b) in o.iter_mut().zip(n).zip(b) {
            *o = n.saturating_sub(*b);
        }
    };
    for ((o, n), b) in out.iter_mut().zip(now).zip(before) {
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

/// Adds `more` into `sum`, field by field (machine-wide totals; 64-bit byte counts do not
/// wrap in any real trace).
pub fn add_all(sum: &mut SyscallCounters, more: &SyscallCounters) {
    for (s, m) in sum.iter_mut().zip(more) {
        s.add(m);
    }
}

/// `n` over `seconds`; 0 for an empty interval rather than infinity.
pub fn per_second(n: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        n as f64 / seconds
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use zerocopy_trace_common::fd_kind;

    use super::*;

    #[test]
    fn differences_saturate_and_cover_every_field() {
        let mut before = zero_counters();
        let mut now = zero_counters();
        before[0].calls = 9;
        before[0].bytes = u64::MAX;
        now[0].calls = 12;
        now[0].bytes = 5;
        now[3].msg_zerocopy_bytes = 7;
        now[3].source_kind_bytes[fd_kind::FILE as usize] = 4;
        now[3].destination_kind_bytes[fd_kind::TCP as usize] = 6;
        let d = difference(&now, &before);
        assert_eq!((d[0].calls, d[0].bytes), (3, 0));
        assert_eq!(d[3].msg_zerocopy_bytes, 7);
        assert_eq!(d[3].source_kind_bytes[fd_kind::FILE as usize], 4);
        assert_eq!(d[3].destination_kind_bytes[fd_kind::TCP as usize], 6);
        assert_eq!(difference(&before, &before), zero_counters());
        let mut sum = zero_counters();
        add_all(&mut sum, &now);
        add_all(&mut sum, &now);
        assert_eq!(sum[0].calls, 24);
    }

    #[test]
    fn rates_over_an_empty_interval_are_zero() {
        assert_eq!(per_second(5, 0.0), 0.0);
        assert_eq!(per_second(10, 2.0), 5.0);
    }
}
