//! The finding: did this process achieve zero copy, and if not, what would. A structured value
//! carrying its numbers; `describe` turns it into the sentence every output prints.

use zerocopy_trace_common::SYSCALLS;

use super::flows::{End, Flow};
use crate::model::{Cost, ProcessCounters, ZERO_COPY_THRESHOLD};

/// A relay matters when it carries at least this share (1 / N) of what the process moved.
const RELAY_SHARE: u64 = 10;

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
    fn for_relay(flow: &Flow) -> Remedy {
        match (flow.source.is_storage(), flow.destination.is_storage()) {
            (true, true) => Remedy::CopyFileRange,
            (true, false) => Remedy::Sendfile,
            (false, _) => Remedy::Splice,
        }
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
    /// Zero copy achieved without an in-kernel flow: sends that pinned their pages
    /// (`MSG_ZEROCOPY`, `pinned` gives the ends of the largest flow), or in-kernel moves whose
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

/// The finding of a process with these counters, cost and flows (flows largest first).
pub fn finding(counters: &ProcessCounters, cost: &Cost, flows: &[Flow]) -> Finding {
    let Some(ratio) = cost.zero_copy_ratio() else {
        return Finding::NothingMoved { calls: cost.calls };
    };
    let moved = cost.moved_bytes();
    let top_kernel = flows.iter().find(|f| f.in_kernel());
    let top_relay = flows.iter().find(|f| f.is_relay());
    match (top_relay, top_kernel) {
        (Some(relay), _) if relay.bytes.saturating_mul(RELAY_SHARE) >= moved => {
            // The relay's share of the user-space data path: 2 copies per byte relayed, and
            // its share of the transitions (read + write per chunk: 4).
            let cpu_copied_bytes = relay.bytes.saturating_mul(2);
            let share = cpu_copied_bytes as f64 / cost.copied_bytes.max(1) as f64;
            let transitions = (user_space_transitions(counters) as f64 * share.min(1.0)).round();
            let transitions = transitions as u64;
            Finding::Relay {
                flow: relay.clone(),
                cpu_copied_bytes,
                transitions,
                remedy: Remedy::for_relay(relay),
                remedy_transitions: transitions / 2,
            }
        }
        (_, Some(kernel)) if ratio >= ZERO_COPY_THRESHOLD => Finding::ZeroCopy {
            ratio,
            moved,
            flow: kernel.clone(),
        },
        (_, None) if ratio >= ZERO_COPY_THRESHOLD => {
            let pinned = counters
                .syscalls
                .iter()
                .map(|c| c.msg_zerocopy_bytes)
                .sum::<u64>()
                > 0;
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

fn user_space_transitions(counters: &ProcessCounters) -> u64 {
    SYSCALLS
        .iter()
        .zip(&counters.syscalls)
        .filter(|(d, _)| d.method.copies())
        .map(|(_, c)| c.calls.saturating_mul(2))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::correlate::{
        fixtures::{with, CHAR, FILE, TCP},
        flows,
    };

    fn of(counters: &ProcessCounters) -> Finding {
        let cost = Cost::of(counters);
        finding(counters, &cost, &flows(counters))
    }

    #[test]
    fn the_remedy_follows_the_relay_s_ends() {
        let remedy = |source, destination| match of(&with(&[
            ("read", 1, 1000, Some(source), None),
            ("write", 1, 1000, None, Some(destination)),
        ])) {
            Finding::Relay { remedy, .. } => remedy,
            other => panic!("not a relay: {other:?}"),
        };
        assert_eq!(remedy(FILE, FILE), Remedy::CopyFileRange);
        assert_eq!(remedy(FILE, TCP), Remedy::Sendfile);
        assert_eq!(remedy(TCP, TCP), Remedy::Splice);
        assert_eq!(remedy(TCP, CHAR), Remedy::Splice);
    }

    #[test]
    fn a_relay_too_small_to_matter_gets_no_remedy() {
        // 100 B relayed beside 1 MiB received for the process itself: under a tenth.
        let c = with(&[
            ("recvfrom", 10, (1 << 20) + 100, Some(TCP), None),
            ("write", 1, 100, None, Some(FILE)),
        ]);
        match of(&c) {
            Finding::Copying { largest, .. } => {
                let largest = largest.expect("a user-space flow");
                assert_eq!(largest.bytes, 1 << 20);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn relay_cost_is_two_copies_per_byte_and_its_share_of_transitions() {
        let c = with(&[
            ("read", 16, 1 << 20, Some(FILE), None),
            ("write", 16, 1 << 20, None, Some(TCP)),
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
