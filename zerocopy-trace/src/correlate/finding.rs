//! The finding: did this process achieve zero copy, and if not, what would. A structured value
//! carrying its numbers; `describe` turns it into the sentence every output prints.

use super::flows::{End, Flow};
use crate::model::{Cost, ZeroCopySends, ZERO_COPY_THRESHOLD};

/// A finding is about a path that matters: one that carries at least this share (1 / N) of
/// what the process moved...
pub const SHARE: u64 = 10;
/// ...and at least this many bytes (a shell relaying 39 bytes is not worth a remedy).
pub const MIN_BYTES: u64 = 1 << 20;

/// `bytes` of `moved` matter enough for a finding.
fn matters(bytes: u64, moved: u64) -> bool {
    bytes >= MIN_BYTES && bytes.saturating_mul(SHARE) >= moved
}

/// The syscall that would move a relay's bytes without the copies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Remedy {
    /// File to file.
    CopyFileRange,
    /// File to anything else.
    Sendfile,
    /// Anything else: through a pipe.
    Splice,
}

impl Remedy {
    /// The call that would move this relay's bytes in the kernel; `None` where none applies:
    /// an end the kernel cannot move pages to or from (a terminal, /dev/null, an unknown fd).
    fn for_relay(flow: &Flow) -> Option<Remedy> {
        if !(flow.source.can_splice() && flow.destination.can_splice()) {
            return None;
        }
        Some(
            match (flow.source.is_storage(), flow.destination.is_storage()) {
                (true, true) => Remedy::CopyFileRange,
                (true, false) => Remedy::Sendfile,
                (false, _) => Remedy::Splice,
            },
        )
    }

    pub fn call(self) -> &'static str {
        match self {
            Remedy::CopyFileRange => "copy_file_range()",
            Remedy::Sendfile => "sendfile()",
            Remedy::Splice => "splice()",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Finding {
    /// Data-path calls, but no bytes moved.
    NothingMoved { calls: u64 },
    /// Data read into user memory only to be written out again, enough of it to matter: the
    /// copies and transitions it cost, and what `remedy` would spend instead.
    Relay {
        flow: Flow,
        cpu_copied_bytes: u64,
        transitions: u64,
        remedy: Remedy,
        remedy_transitions: u64,
    },
    /// Zero copy achieved, mostly by this in-kernel flow.
    ZeroCopy { ratio: f64, moved: u64, flow: Flow },
    /// Zero-copy sends (`MSG_ZEROCOPY`, io_uring `SEND_ZC`) that the kernel's notices do not
    /// confirm, enough of them to matter: it copied `sends.kernel_copied()` of them, and
    /// `sends.unconfirmed()` have no notice either way.
    ZeroCopySendsNotConfirmed { sends: ZeroCopySends },
    /// Zero copy achieved without an in-kernel flow: sends whose pages the kernel confirmed
    /// it did not copy (`pinned` gives the ends of the largest flow), or in-kernel moves whose
    /// fd kinds are unknown (`pinned` is `None`).
    ZeroCopyWithoutMover {
        ratio: f64,
        moved: u64,
        pinned: Option<(End, End)>,
    },
    /// Mostly or partly copying, without a relay worth a remedy.
    Copying {
        ratio: f64,
        moved: u64,
        copied: u64,
        /// The largest flow through user space.
        largest: Option<Flow>,
    },
}

/// The finding of a process with this cost and these flows (flows largest first).
pub fn finding(cost: &Cost, flows: &[Flow]) -> Finding {
    let Some(ratio) = cost.zero_copy_ratio() else {
        return Finding::NothingMoved { calls: cost.calls };
    };
    let moved = cost.moved_bytes();
    let sends = cost.zero_copy_sends;
    if ratio < ZERO_COPY_THRESHOLD
        && sends.kernel_copied() + sends.unconfirmed() > 0
        && matters(sends.bytes, moved)
    {
        return Finding::ZeroCopySendsNotConfirmed { sends };
    }
    let top_kernel = flows.iter().find(|f| f.in_kernel());
    let top_relay = flows
        .iter()
        .find(|f| f.is_relay())
        .filter(|relay| matters(relay.bytes, moved))
        .and_then(|relay| Some((relay, Remedy::for_relay(relay)?)));
    match (top_relay, top_kernel) {
        (Some((relay, remedy)), _) => {
            // The relay's share of the user-space data path: 2 copies per byte relayed, and
            // its share of the transitions (read + write per chunk: 4).
            let cpu_copied_bytes = relay.bytes.saturating_mul(2);
            let share = cpu_copied_bytes as f64 / cost.copied_bytes.max(1) as f64;
            // The user-space path's transitions: 2 per read/write/recv/send call (io_uring
            // operations have none of their own).
            let path_transitions = cost.copy_calls.saturating_mul(2);
            let transitions = (path_transitions as f64 * share.min(1.0)).round();
            let transitions = transitions as u64;
            Finding::Relay {
                flow: relay.clone(),
                cpu_copied_bytes,
                transitions,
                remedy,
                remedy_transitions: transitions / 2,
            }
        }
        (_, Some(kernel)) if ratio >= ZERO_COPY_THRESHOLD => Finding::ZeroCopy {
            ratio,
            moved,
            flow: kernel.clone(),
        },
        (_, None) if ratio >= ZERO_COPY_THRESHOLD => {
            let pinned = cost.pinned_bytes > 0;
            Finding::ZeroCopyWithoutMover {
                ratio,
                moved,
                pinned: flows
                    .first()
                    .filter(|_| pinned)
                    .map(|f| (f.source, f.destination)),
            }
        }
        _ => Finding::Copying {
            ratio,
            moved,
            copied: cost.copied_bytes,
            largest: flows.iter().find(|f| !f.in_kernel()).cloned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::ProcessCounters;
    use crate::{
        correlate::flows,
        snapshot::fixtures::{with, CHAR, FILE, PIPE, TCP},
    };

    fn of(counters: &ProcessCounters) -> Finding {
        let cost = Cost::of(counters);
        finding(&cost, &flows(counters))
    }

    #[test]
    fn the_remedy_follows_the_relay_s_ends() {
        let remedy = |source, destination| match of(&with(&[
            ("read", 1, MIN_BYTES, Some(source), None),
            ("write", 1, MIN_BYTES, None, Some(destination)),
        ])) {
            Finding::Relay { remedy, .. } => Some(remedy),
            Finding::Copying { .. } => None,
            other => panic!("neither a relay nor copying: {other:?}"),
        };
        assert_eq!(remedy(FILE, FILE), Some(Remedy::CopyFileRange));
        assert_eq!(remedy(FILE, TCP), Some(Remedy::Sendfile));
        assert_eq!(remedy(TCP, TCP), Some(Remedy::Splice));
        assert_eq!(remedy(PIPE, FILE), Some(Remedy::Splice));
        // curl -o /dev/null, a terminal, an fd of unknown kind: no remedy applies.
        assert_eq!(remedy(TCP, CHAR), None);
        assert_eq!(remedy(0, TCP), None);
    }

    #[test]
    fn a_relay_too_small_to_matter_gets_no_remedy() {
        // A 39-byte pipe -> file relay in a shell: nothing else moved, but 39 bytes.
        match of(&with(&[
            ("read", 1, 39, Some(PIPE), None),
            ("write", 1, 39, None, Some(FILE)),
        ])) {
            Finding::Copying { .. } => {}
            other => panic!("{other:?}"),
        }
        // 2 MiB relayed beside 32 MiB received for the process itself: under a tenth.
        let c = with(&[
            ("recvfrom", 10, (32 << 20) + (2 << 20), Some(TCP), None),
            ("write", 1, 2 << 20, None, Some(FILE)),
        ]);
        match of(&c) {
            Finding::Copying { largest, .. } => {
                let largest = largest.expect("a user-space flow");
                assert_eq!(largest.bytes, 32 << 20);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn zero_copy_sends_the_kernel_copied_are_said_so() {
        let mut c = with(&[("sendto", 256, 16 << 20, None, Some(TCP))]);
        let sendto = c.syscall_mut(zerocopy_trace_common::syscalls::syscall_id("sendto").unwrap());
        (sendto.zerocopy_sends, sendto.msg_zerocopy_bytes) = (256, 16 << 20);
        // Notices read: all 256 copied.
        let mut copied = c.clone();
        let recvmsg =
            copied.syscall_mut(zerocopy_trace_common::syscalls::syscall_id("recvmsg").unwrap());
        (
            recvmsg.calls,
            recvmsg.zerocopy_notified,
            recvmsg.zerocopy_copied,
        ) = (4, 256, 256);
        match of(&copied) {
            Finding::ZeroCopySendsNotConfirmed { sends } => {
                assert_eq!(
                    (sends.sends, sends.kernel_copied(), sends.unconfirmed()),
                    (256, 256, 0)
                );
                assert!(sends.by_syscall && !sends.by_io_uring);
            }
            other => panic!("{other:?}"),
        }
        // No notice read: all unconfirmed.
        match of(&c) {
            Finding::ZeroCopySendsNotConfirmed { sends } => {
                assert_eq!((sends.kernel_copied(), sends.unconfirmed()), (0, 256));
            }
            other => panic!("{other:?}"),
        }
        // Confirmed not copied: zero copy.
        let mut confirmed = c.clone();
        let recvmsg =
            confirmed.syscall_mut(zerocopy_trace_common::syscalls::syscall_id("recvmsg").unwrap());
        (recvmsg.calls, recvmsg.zerocopy_notified) = (4, 256);
        assert!(matches!(
            of(&confirmed),
            Finding::ZeroCopyWithoutMover {
                pinned: Some(_),
                ..
            }
        ));
    }

    #[test]
    fn relay_cost_is_two_copies_per_byte_and_its_share_of_transitions() {
        let c = with(&[
            ("read", 16, 1 << 20, Some(FILE), None),
            ("write", 16, 1 << 20, None, Some(TCP)),
            ("io_uring_enter", 5, 0, None, None),
        ]);
        assert_eq!(
            of(&c),
            Finding::Relay {
                flow: flows(&c)[0].clone(),
                cpu_copied_bytes: 2 << 20,
                transitions: 64,
                remedy: Remedy::Sendfile,
                remedy_transitions: 32,
            }
        );
    }
}
