//! From per-syscall and per-operation, per-fd-kind byte counts to flows ("file -> tcp via
//! sendfile, no CPU copy"): where the bytes went, each byte counted once from its source to
//! its destination, with the CPU copies each byte cost on the way.
//!
//! How reads and writes are paired: counters are totals over the trace, so a flow is inferred,
//! not observed. Within one process and one method (the tables' `Method`), bytes that came in
//! from each fd kind are paired with bytes that went out to each fd kind, largest with largest,
//! a flow taking the smaller of the two and the rest pairing on. The methods are: user space
//! (the read and recv families in, the write and send families out, syscalls and io_uring
//! operations alike), sendfile, copy_file_range, io_uring's zero-copy sends, and the pipe
//! movers together (splice, tee, vmsplice, io_uring SPLICE and TEE), where bytes that went
//! into a pipe and came out of one cancel out, so `file -> pipe -> tcp` by two splices is one
//! `file -> tcp` flow.
//!
//! Through user memory each byte crosses the user/kernel boundary on a leg in and a leg out,
//! and a leg is copied by the CPU, or moved by DMA (the bytes of a call on an `O_DIRECT`
//! file), or pinned (zero-copy sends the kernel confirmed it did not copy). A flow's CPU
//! copies a byte are its copied legs: read + write 2, an `O_DIRECT` read then a write 1, a
//! read whose bytes stay in the process 1, sendfile or splice 0.
//!
//! Where it can be wrong: a process that reads one thing and writes another unrelated thing
//! (a config file in, logs out) shows a flow between them; a process relaying two streams of
//! different kinds in parallel may have them paired crosswise. Bytes without a partner are a
//! flow from or to the process itself (`process`), e.g. a client that only receives.

use std::collections::BTreeMap;

use zerocopy_trace_common::{fd_kind, Method};

use super::split::{MethodBytes, ZeroCopySends};
use crate::snapshot::ProcessCounters;

/// One end of a flow: an fd of some kind, or the process's own memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// An fd of this `fd_kind`.
    Fd(u8),
    /// The user memory of the process: the far end of a read or a write.
    Process,
}

impl End {
    pub fn name(self) -> &'static str {
        match self {
            End::Fd(kind) => fd_kind::NAMES
                .get(usize::from(kind))
                .copied()
                .unwrap_or("unknown"),
            End::Process => "process",
        }
    }

    /// A regular file or a block device: where sendfile and copy_file_range can read from.
    pub fn is_storage(self) -> bool {
        matches!(self, End::Fd(fd_kind::FILE | fd_kind::BLOCK))
    }

    /// An fd the kernel can move pages to or from (through a pipe): files, block devices,
    /// sockets, pipes. Not a terminal or /dev/null (a char device: the data ends there), nor
    /// an fd whose kind is unknown.
    pub fn can_splice(self) -> bool {
        matches!(
            self,
            End::Fd(
                fd_kind::FILE
                    | fd_kind::BLOCK
                    | fd_kind::TCP
                    | fd_kind::UDP
                    | fd_kind::UNIX
                    | fd_kind::PIPE
            )
        )
    }
}

/// How bytes moved between the two ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Via {
    pub method: Method,
    /// `user space`, `direct I/O + user space`, or the syscalls that moved the bytes in the
    /// kernel (`sendfile`, `splice+tee`, ...).
    pub label: String,
}

impl Via {
    pub fn user_space() -> Via {
        Via {
            method: Method::UserCopy,
            label: Leg::Copied.label().to_string(),
        }
    }

    pub fn direct_io() -> Via {
        Via {
            method: Method::DirectIo,
            label: Leg::Direct.label().to_string(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flow {
    pub source: End,
    pub destination: End,
    pub via: Via,
    pub bytes: u64,
    /// CPU copies each byte of the flow cost: 2 for read + write, 1 where one of its legs
    /// went by DMA or was pinned (or where it ends in the process), 0 in the kernel.
    pub cpu_copies: u8,
}

impl Flow {
    /// Data read into user memory only to be written again, with an fd at both ends (one of
    /// the legs may have gone by DMA or been pinned).
    pub fn is_relay(&self) -> bool {
        self.via.method == Method::UserCopy
            && self.source != End::Process
            && self.destination != End::Process
    }

    /// Moved without a CPU copy by construction (in the kernel, or by DMA); zero-copy sends
    /// are not: the kernel's notices judge those.
    pub fn in_kernel(&self) -> bool {
        self.via.method.in_kernel()
    }

    /// The bytes the CPU copied for this flow.
    pub fn cpu_copied_bytes(&self) -> u64 {
        self.bytes.saturating_mul(u64::from(self.cpu_copies))
    }
}

/// How bytes crossed between an fd and user memory. In-kernel methods have no legs: their
/// bytes are all under `Copied`'s index, which there means nothing more than "bytes".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Leg {
    /// By the CPU.
    Copied,
    /// By DMA, to or from an `O_DIRECT` file.
    Direct,
    /// A zero-copy send whose pages the kernel confirmed it did not copy.
    Pinned,
}

const LEGS: [Leg; 3] = [Leg::Copied, Leg::Direct, Leg::Pinned];

impl Leg {
    fn label(self) -> &'static str {
        match self {
            Leg::Copied => "user space",
            Leg::Direct => "direct I/O",
            Leg::Pinned => "zero-copy send",
        }
    }
}

/// Bytes by end: the fd kinds, then `PROCESS_END` (user memory) last.
type Ends = [u64; fd_kind::COUNT + 1];
const PROCESS_END: usize = fd_kind::COUNT;

/// Bytes by leg (`LEGS`' order) and end.
type LegEnds = [Ends; LEGS.len()];

fn end_at(i: usize) -> End {
    if i < fd_kind::COUNT {
        End::Fd(i as u8)
    } else {
        End::Process
    }
}

fn add_ends(into: &mut Ends, from: &[u64; fd_kind::COUNT]) {
    for (a, b) in into.iter_mut().zip(from) {
        *a = a.saturating_add(*b);
    }
}

/// The largest entry: (leg, end, bytes); of equal ones the last.
fn largest(ends: &LegEnds) -> (usize, usize, u64) {
    let mut best = (0, 0, 0);
    for (leg, by_end) in ends.iter().enumerate() {
        for (end, &bytes) in by_end.iter().enumerate() {
            if bytes >= best.2 {
                best = (leg, end, bytes);
            }
        }
    }
    best
}

/// What one method moved: bytes in from each end, bytes out to each end, by leg, and the
/// syscalls and operations that did it (their display names, in table order).
#[derive(Default)]
struct Moved {
    sources: LegEnds,
    destinations: LegEnds,
    syscalls: Vec<&'static str>,
}

impl Moved {
    /// How a flow of this method with these legs (`None` for the process's own end) moved.
    fn via(&self, method: Method, legs: [Option<Leg>; 2]) -> Via {
        match method {
            Method::UserCopy => {
                let mut labels: Vec<&str> = legs.iter().flatten().map(|l| l.label()).collect();
                labels.dedup();
                if legs.iter().flatten().all(|&l| l == Leg::Direct) {
                    Via::direct_io()
                } else {
                    Via {
                        method,
                        label: labels.join(" + "),
                    }
                }
            }
            _ => Via {
                method,
                label: self.syscalls.join("+"),
            },
        }
    }

    /// Pairs sources with destinations largest-first (see the module doc).
    fn pair(mut self, method: Method, out: &mut Vec<Flow>) {
        let through_user_memory = !method.in_kernel();
        loop {
            let (sl, si, s) = largest(&self.sources);
            let (dl, di, d) = largest(&self.destinations);
            if s == 0 && d == 0 {
                break;
            }
            // One side exhausted: the rest goes to or comes from the process itself.
            let bytes = match (s, d) {
                (0, d) => d,
                (s, 0) => s,
                (s, d) => s.min(d),
            };
            let (sl, si) = if s == 0 { (0, PROCESS_END) } else { (sl, si) };
            let (dl, di) = if d == 0 { (0, PROCESS_END) } else { (dl, di) };
            self.sources[sl][si] = self.sources[sl][si].saturating_sub(bytes);
            self.destinations[dl][di] = self.destinations[dl][di].saturating_sub(bytes);
            if si == PROCESS_END && di == PROCESS_END {
                // User memory to user memory is not a flow (only reachable through vmsplice).
                continue;
            }
            let leg = |l: usize, i: usize| (i != PROCESS_END).then_some(LEGS[l]);
            let legs = [leg(sl, si), leg(dl, di)];
            let cpu_copies = if through_user_memory {
                legs.iter().flatten().filter(|&&l| l == Leg::Copied).count() as u8
            } else {
                0
            };
            out.push(Flow {
                source: end_at(si),
                destination: end_at(di),
                via: self.via(method, legs),
                bytes,
                cpu_copies,
            });
        }
    }

    /// Through a pipe and out again: the pipe is only the means, unless pipes are all there is.
    fn cancel_pipes(&mut self) {
        let pipe = fd_kind::PIPE as usize;
        let (sources, destinations) = (&mut self.sources[0], &mut self.destinations[0]);
        let through = sources[pipe].min(destinations[pipe]);
        let only_pipes = |ends: &Ends| ends.iter().enumerate().all(|(i, &b)| b == 0 || i == pipe);
        if !(only_pipes(sources) && only_pipes(destinations)) {
            sources[pipe] -= through;
            destinations[pipe] -= through;
        }
    }
}

/// Takes up to `bytes` off `ends`, kind by kind in `order`: the part of a call's bytes that
/// crossed on another leg.
fn take(
    ends: &mut [u64; fd_kind::COUNT],
    bytes: u64,
    order: impl IntoIterator<Item = u8>,
) -> [u64; fd_kind::COUNT] {
    let mut taken = [0; fd_kind::COUNT];
    let mut left = bytes;
    for kind in order {
        let kind = usize::from(kind);
        let t = ends[kind].min(left);
        ends[kind] -= t;
        taken[kind] += t;
        left -= t;
    }
    taken
}

/// The kernel counts each byte of an fd's side under its kind (`unknown` where it could not
/// tell); bytes counted without one (counters not from the kernel) are taken as `unknown`, so
/// every byte is delivered somewhere.
fn top_up(ends: &mut [u64; fd_kind::COUNT], bytes: u64) {
    let counted = ends.iter().fold(0u64, |sum, &b| sum.saturating_add(b));
    let unknown = &mut ends[usize::from(fd_kind::UNKNOWN)];
    *unknown = unknown.saturating_add(bytes.saturating_sub(counted));
}

/// The kinds an `O_DIRECT` call's fd can be, then any (an fd of unknown kind).
fn direct_kinds() -> impl Iterator<Item = u8> {
    [fd_kind::FILE, fd_kind::BLOCK]
        .into_iter()
        .chain(0..fd_kind::COUNT as u8)
}

/// The kinds a zero-copy send goes to, likeliest first, then any.
fn send_kinds() -> impl Iterator<Item = u8> {
    [fd_kind::TCP, fd_kind::UDP, fd_kind::UNIX]
        .into_iter()
        .chain(0..fd_kind::COUNT as u8)
}

/// The flows of one process, largest first.
pub fn flows(counters: &ProcessCounters) -> Vec<Flow> {
    let sends = ZeroCopySends::of(counters);
    // Keyed so the in-kernel methods come first: of two flows of equal size, the in-kernel
    // one is listed first.
    let mut by_method: BTreeMap<(bool, Method), Moved> = BTreeMap::new();
    for (_, path, c) in counters.rows() {
        if c.bytes == 0 {
            continue;
        }
        let (mut sources, mut destinations) = (c.source_kind_bytes, c.destination_kind_bytes);
        if path.source_fd {
            top_up(&mut sources, c.bytes);
        }
        if path.destination_fd {
            top_up(&mut destinations, c.bytes);
        }
        let m = by_method
            .entry((!path.method.in_kernel(), path.method))
            .or_default();
        let (fd_side, moved_side) = if path.source_fd {
            (&mut sources, &mut m.sources)
        } else {
            (&mut destinations, &mut m.destinations)
        };
        if matches!(path.method, Method::UserCopy | Method::ZeroCopySend) {
            let split = MethodBytes::of(&path, c, &sends);
            let direct = take(fd_side, split.direct, direct_kinds());
            add_ends(&mut moved_side[Leg::Direct as usize], &direct);
            let pinned = take(fd_side, split.pinned, send_kinds());
            add_ends(&mut moved_side[Leg::Pinned as usize], &pinned);
        }
        add_ends(&mut m.sources[0], &sources);
        add_ends(&mut m.destinations[0], &destinations);
        if path.method == Method::PipeMover && !path.source_fd {
            // vmsplice: user pages mapped into a pipe.
            m.sources[0][PROCESS_END] = m.sources[0][PROCESS_END].saturating_add(c.bytes);
        }
        m.syscalls.push(path.display);
    }
    let mut out = Vec::new();
    for ((_, method), mut m) in by_method {
        if method == Method::PipeMover {
            m.cancel_pipes();
        }
        m.pair(method, &mut out);
    }
    out.sort_by_key(|f| std::cmp::Reverse(f.bytes));
    out
}

/// A flow worth listing carries at least this many bytes...
pub const LISTED_BYTES: u64 = 1 << 20;
/// ...or at least this share (1 / N) of what the process delivered.
pub const LISTED_SHARE: u64 = 100;

/// `flows` (largest first) split into those worth listing and the small rest (a shell's
/// loader reads beside a server's gigabytes); the largest is always listed.
pub fn listed(flows: &[Flow], delivered: u64) -> (&[Flow], &[Flow]) {
    let worth =
        |f: &Flow| f.bytes >= LISTED_BYTES || f.bytes.saturating_mul(LISTED_SHARE) >= delivered;
    let n = flows
        .iter()
        .enumerate()
        .position(|(i, f)| i > 0 && !worth(f))
        .unwrap_or(flows.len());
    flows.split_at(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::fixtures::{with, CHAR, FILE, PIPE, TCP};

    /// Flows as (source, destination, via, bytes), to compare with what a test expects.
    fn seen(counters: &ProcessCounters) -> Vec<(&'static str, &'static str, String, u64)> {
        flows(counters)
            .into_iter()
            .map(|f| (f.source.name(), f.destination.name(), f.via.label, f.bytes))
            .collect()
    }

    fn flow(
        source: &'static str,
        destination: &'static str,
        via: &str,
        bytes: u64,
    ) -> (&'static str, &'static str, String, u64) {
        (source, destination, via.to_string(), bytes)
    }

    #[test]
    fn sendfile_server() {
        let c = with(&[
            ("sendfile64", 16, 1 << 20, Some(FILE), Some(TCP)),
            ("read", 2, 100, Some(TCP), None),
        ]);
        assert_eq!(
            seen(&c),
            vec![
                flow("file", "tcp", "sendfile", 1 << 20),
                flow("tcp", "process", "user space", 100),
            ]
        );
        assert!(flows(&c)[0].in_kernel() && !flows(&c)[1].in_kernel());
    }

    #[test]
    fn user_space_relay() {
        // 512 MiB file -> tcp in 64 KiB chunks: 8192 reads, 8192 writes.
        let c = with(&[
            ("read", 8192, 512 << 20, Some(FILE), None),
            ("write", 8192, 512 << 20, None, Some(TCP)),
        ]);
        assert_eq!(seen(&c), vec![flow("file", "tcp", "user space", 512 << 20)]);
        assert!(flows(&c)[0].is_relay());
    }

    #[test]
    fn splice_through_a_pipe_is_one_flow() {
        let c = with(&[
            ("splice", 16, 1 << 20, Some(FILE), Some(PIPE)),
            ("splice", 16, 1 << 20, Some(PIPE), Some(TCP)),
        ]);
        assert_eq!(seen(&c), vec![flow("file", "tcp", "splice", 1 << 20)]);
    }

    #[test]
    fn vmsplice_tee_and_pipes_only() {
        // vmsplice 100 B of user memory into a pipe, tee it to a second pipe, splice both
        // pipes (200 B) to /dev/null: what left the process for /dev/null is the 100 B it
        // mapped, plus the 100 B duplicate tee made from a pipe.
        let c = with(&[
            ("vmsplice", 1, 100, None, Some(PIPE)),
            ("tee", 1, 100, Some(PIPE), Some(PIPE)),
            ("splice", 2, 200, Some(PIPE), Some(CHAR)),
        ]);
        assert_eq!(
            seen(&c),
            vec![
                flow("process", "char", "splice+tee+vmsplice", 100),
                flow("pipe", "char", "splice+tee+vmsplice", 100)
            ]
        );
        let tee_only = with(&[("tee", 1, 100, Some(PIPE), Some(PIPE))]);
        assert_eq!(seen(&tee_only), vec![flow("pipe", "pipe", "tee", 100)]);
    }

    #[test]
    fn unpaired_bytes_end_in_the_process() {
        let c = with(&[("recvfrom", 3, 3000, Some(TCP), None)]);
        assert_eq!(seen(&c), vec![flow("tcp", "process", "user space", 3000)]);
        assert!(!flows(&c)[0].is_relay());
    }

    #[test]
    fn nothing_moved_is_no_flow() {
        assert!(flows(&with(&[("read", 3, 0, None, None)])).is_empty());
        assert!(flows(&ProcessCounters::default()).is_empty());
    }

    #[test]
    fn direct_io_legs_pair_like_the_others_and_io_uring_ops_join_their_method() {
        use crate::snapshot::fixtures::with_ops;
        // 64 MiB read by O_DIRECT pread64, 1 MiB by a buffered one; an io_uring READ of a
        // file and SEND to tcp, and SPLICE file -> pipe -> tcp. Largest first, the O_DIRECT
        // bytes pair with the send: what went out to tcp crossed by DMA, then by the CPU.
        let mut c = with(&[("pread64", 2, 65 << 20, Some(FILE), None)]);
        c.syscall_mut(zerocopy_trace_common::syscalls::syscall_id("pread64").unwrap())
            .direct_bytes = 64 << 20;
        with_ops(
            &mut c,
            &[
                ("READ", 8, 1 << 20, Some(FILE), None),
                ("SEND", 8, 1 << 20, None, Some(TCP)),
                ("SPLICE", 2, 4096, Some(FILE), Some(PIPE)),
                ("SPLICE", 2, 4096, Some(PIPE), Some(TCP)),
            ],
        );
        assert_eq!(
            seen(&c),
            vec![
                flow("file", "process", "direct I/O", 63 << 20),
                flow("file", "process", "user space", 2 << 20),
                flow("file", "tcp", "direct I/O + user space", 1 << 20),
                flow("file", "tcp", "io_uring SPLICE", 4096),
            ]
        );
        let flows = flows(&c);
        let copies: Vec<u8> = flows.iter().map(|f| f.cpu_copies).collect();
        assert_eq!(copies, [0, 1, 1, 0]);
        assert!(flows[0].in_kernel() && flows[2].is_relay() && flows[3].in_kernel());
    }

    #[test]
    fn each_flow_costs_its_copied_legs() {
        // read + write: 2; a zero-copy send the kernel confirmed: 0 for its leg; a receive
        // the process keeps: 1.
        let relay = with(&[
            ("read", 1, 4096, Some(FILE), None),
            ("write", 1, 4096, None, Some(TCP)),
        ]);
        assert_eq!(flows(&relay)[0].cpu_copies, 2);
        assert_eq!(flows(&relay)[0].cpu_copied_bytes(), 8192);
        let mut pinned = with(&[("sendto", 4, 4096, None, Some(TCP))]);
        let sendto =
            pinned.syscall_mut(zerocopy_trace_common::syscalls::syscall_id("sendto").unwrap());
        (sendto.zerocopy_sends, sendto.msg_zerocopy_bytes) = (4, 4096);
        let recvmsg =
            pinned.syscall_mut(zerocopy_trace_common::syscalls::syscall_id("recvmsg").unwrap());
        (recvmsg.calls, recvmsg.zerocopy_notified) = (1, 4);
        assert_eq!(
            seen(&pinned),
            vec![flow("process", "tcp", "zero-copy send", 4096)]
        );
        assert_eq!(flows(&pinned)[0].cpu_copies, 0);
        let sendfile = with(&[("sendfile64", 1, 4096, Some(FILE), Some(TCP))]);
        assert_eq!(flows(&sendfile)[0].cpu_copies, 0);
    }

    #[test]
    fn the_cpu_copies_of_the_flows_add_up_to_the_cost_s() {
        use crate::model::Cost;
        let mut c = with(&[
            ("pread64", 3, 3 << 20, Some(FILE), None),
            ("read", 5, 5000, Some(TCP), None),
            ("writev", 4, 2 << 20, None, Some(TCP)),
            ("write", 1, 77, None, Some(PIPE)),
            ("sendfile64", 2, 1 << 20, Some(FILE), Some(TCP)),
        ]);
        c.syscall_mut(zerocopy_trace_common::syscalls::syscall_id("pread64").unwrap())
            .direct_bytes = 1 << 20;
        let flows = flows(&c);
        let cost = Cost::with_flows(&c, &flows);
        let copied: u64 = flows.iter().map(Flow::cpu_copied_bytes).sum();
        assert_eq!(copied, cost.copied_bytes);
        let delivered: u64 = flows.iter().map(|f| f.bytes).sum();
        assert_eq!(delivered, cost.delivered_bytes);
    }

    #[test]
    fn small_flows_beside_large_ones_are_folded() {
        let c = with(&[
            ("read", 8, 8 << 20, Some(FILE), None),
            ("write", 8, 8 << 20, None, Some(TCP)),
            ("read", 1, 1, Some(PIPE), None),
            ("write", 1, 1, None, Some(FILE)),
        ]);
        let flows = flows(&c);
        let (shown, folded) = listed(&flows, 8 << 20);
        assert_eq!((shown.len(), folded.len()), (1, 1));
        // The largest is listed however small.
        let tiny = with(&[("read", 1, 10, Some(FILE), None)]);
        assert_eq!(listed(&super::flows(&tiny), 10).0.len(), 1);
    }

    #[test]
    fn bytes_with_unknown_kinds_still_pair() {
        // A process whose fd kinds could not be resolved: bytes are kept, under "unknown".
        let c = with(&[
            ("read", 1, 10, Some(0), None),
            ("write", 1, 10, None, Some(0)),
        ]);
        assert_eq!(seen(&c), vec![flow("unknown", "unknown", "user space", 10)]);
    }
}
