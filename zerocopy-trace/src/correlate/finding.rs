//! The finding: did this process achieve zero copy, and if not, what would. A structured value
//! carrying its numbers; `describe` turns it into the sentence every output prints.

use crate::model::{CallsBytes, Cost, End, Flow, ZeroCopySends, ZERO_COPY_THRESHOLD};

/// A finding is about a path that matters: one that carries at least this share (1 / N) of
/// what the process delivered...
pub const SHARE: u64 = 10;
/// ...and at least this many bytes (a shell relaying 39 bytes is not worth a remedy). A
/// process that delivered less than this in all gets no finding at all: its row says what it
/// did (a shell's loader reads are not a copying problem).
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

    /// Syscalls the remedy makes per chunk: splice goes into a pipe and out of it.
    fn calls_per_chunk(self) -> u64 {
        match self {
            Remedy::Splice => 2,
            Remedy::CopyFileRange | Remedy::Sendfile => 1,
        }
    }

    /// The process's own calls of the remedy, if it makes any elsewhere.
    fn own_calls(self, cost: &Cost) -> CallsBytes {
        match self {
            Remedy::CopyFileRange => cost.movers.copy_file_range,
            Remedy::Sendfile => cost.movers.sendfile,
            Remedy::Splice => cost.movers.splice,
        }
    }
}

/// What the transitions of a remedy were priced from: the bytes one of its calls would move.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pricing {
    /// What the process's own calls of the remedy move a call, elsewhere in its data path.
    Observed { bytes_per_call: u64 },
    /// Nothing observed: what a call of its user-space path moves now. The kernel's path
    /// usually moves as much or more a call (sendfile to a blocking socket takes the whole
    /// count in one call), so the transitions are an upper bound.
    ChunkNow { bytes_per_call: u64 },
}

impl Pricing {
    pub fn bytes_per_call(self) -> u64 {
        match self {
            Pricing::Observed { bytes_per_call } | Pricing::ChunkNow { bytes_per_call } => {
                bytes_per_call
            }
        }
    }

    /// The transitions `remedy` would spend moving `bytes`: 2 per call.
    fn transitions(self, remedy: Remedy, bytes: u64) -> u64 {
        let chunks = bytes.div_ceil(self.bytes_per_call().max(1));
        chunks
            .saturating_mul(remedy.calls_per_chunk())
            .saturating_mul(2)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Finding {
    /// Data-path calls, but no bytes moved.
    NothingMoved { calls: u64 },
    /// Less delivered than `MIN_BYTES`: too little for a finding.
    BelowFloor { delivered: u64 },
    /// Data read into user memory only to be written out again, enough of it to matter: the
    /// copies and transitions it cost, and what `remedy` would spend instead, priced by
    /// `pricing`.
    Relay {
        flow: Flow,
        cpu_copied_bytes: u64,
        transitions: u64,
        remedy: Remedy,
        remedy_transitions: u64,
        pricing: Pricing,
    },
    /// Zero copy achieved: `ratio` of the `moved` bytes delivered without a CPU copy, the most
    /// of them by this in-kernel flow.
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
    let moved = cost.delivered_bytes;
    if moved < MIN_BYTES {
        return Finding::BelowFloor { delivered: moved };
    }
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
            // The relay's share of the user-space data path: its copies, and that share of the
            // transitions (2 per read/write/recv/send call; io_uring operations have none of
            // their own).
            let cpu_copied_bytes = relay.cpu_copied_bytes();
            let share = cpu_copied_bytes as f64 / cost.copied_bytes.max(1) as f64;
            let path_transitions = cost.copy_calls.saturating_mul(2);
            let transitions = (path_transitions as f64 * share.min(1.0)).round() as u64;
            let pricing = match remedy.own_calls(cost).per_call() {
                Some(bytes_per_call) => Pricing::Observed { bytes_per_call },
                None => Pricing::ChunkNow {
                    // Every byte of the user-space calls, copied or not (an O_DIRECT read
                    // moves its chunk like any other).
                    bytes_per_call: cost
                        .copied_bytes
                        .saturating_add(cost.direct_bytes)
                        .saturating_add(cost.pinned_bytes)
                        .div_ceil(cost.copy_calls.saturating_add(cost.copy_ops).max(1)),
                },
            };
            Finding::Relay {
                flow: relay.clone(),
                cpu_copied_bytes,
                transitions,
                remedy,
                remedy_transitions: pricing.transitions(remedy, relay.bytes),
                pricing,
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
        model::flows,
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
        assert_eq!(
            of(&with(&[
                ("read", 1, 39, Some(PIPE), None),
                ("write", 1, 39, None, Some(FILE)),
            ])),
            Finding::BelowFloor { delivered: 39 }
        );
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
                pricing: Pricing::ChunkNow {
                    bytes_per_call: 64 << 10
                },
            }
        );
    }

    #[test]
    fn a_remedy_the_process_already_uses_is_priced_by_its_own_calls() {
        // 8 MiB relayed by 64 KiB reads and writes, while the same process sends other files
        // with sendfile at 1 MiB a call: sendfile would take 8 calls, 16 transitions.
        let c = with(&[
            ("read", 128, 8 << 20, Some(FILE), None),
            ("write", 128, 8 << 20, None, Some(TCP)),
            ("sendfile64", 8, 8 << 20, Some(FILE), Some(TCP)),
        ]);
        match of(&c) {
            Finding::Relay {
                cpu_copied_bytes,
                transitions,
                remedy,
                remedy_transitions,
                pricing,
                ..
            } => {
                assert_eq!((cpu_copied_bytes, transitions), (16 << 20, 512));
                assert_eq!(remedy, Remedy::Sendfile);
                assert_eq!(
                    pricing,
                    Pricing::Observed {
                        bytes_per_call: 1 << 20
                    }
                );
                assert_eq!(remedy_transitions, 16);
            }
            other => panic!("{other:?}"),
        }
        // A splice relay remedy takes two calls a chunk: into the pipe, out of it.
        let c = with(&[
            ("recvfrom", 64, 4 << 20, Some(TCP), None),
            ("sendto", 64, 4 << 20, None, Some(TCP)),
        ]);
        match of(&c) {
            Finding::Relay {
                remedy: Remedy::Splice,
                remedy_transitions,
                transitions,
                ..
            } => assert_eq!((transitions, remedy_transitions), (256, 256)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_o_direct_read_written_to_a_socket_is_a_relay_of_one_copy_a_byte() {
        // nginx with `directio`: the file by DMA into user memory, then written to the socket
        // by the CPU. Every byte served went through user memory: copying, not half zero copy.
        let mut c = with(&[
            ("pread64", 64, 4 << 20, Some(FILE), None),
            ("writev", 64, 4 << 20, None, Some(TCP)),
        ]);
        c.syscall_mut(zerocopy_trace_common::syscalls::syscall_id("pread64").unwrap())
            .direct_bytes = 4 << 20;
        let cost = Cost::of(&c);
        assert_eq!(
            (
                cost.copied_bytes,
                cost.zero_copy_bytes,
                cost.delivered_bytes
            ),
            (4 << 20, 0, 4 << 20)
        );
        assert_eq!(cost.verdict(), crate::model::Verdict::Copying);
        match of(&c) {
            Finding::Relay {
                flow,
                cpu_copied_bytes,
                remedy: Remedy::Sendfile,
                ..
            } => {
                assert_eq!(flow.via.label, "direct I/O + user space");
                assert_eq!((flow.cpu_copies, cpu_copied_bytes), (1, 4 << 20));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_splice_relay_is_delivered_once() {
        // haproxy's splice-response: 8 MiB tcp -> pipe -> tcp, 16 MiB of splice bytes.
        let c = with(&[
            ("splice", 128, 8 << 20, Some(TCP), Some(PIPE)),
            ("splice", 128, 8 << 20, Some(PIPE), Some(TCP)),
        ]);
        let cost = Cost::of(&c);
        assert_eq!(
            (cost.zero_copy_bytes, cost.delivered_bytes),
            (8 << 20, 8 << 20)
        );
        assert_eq!(cost.kernel_bytes, 16 << 20);
        match of(&c) {
            Finding::ZeroCopy { ratio, moved, flow } => {
                assert_eq!((ratio, moved, flow.bytes), (1.0, 8 << 20, 8 << 20));
            }
            other => panic!("{other:?}"),
        }
    }
}
