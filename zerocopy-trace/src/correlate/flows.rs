//! From per-syscall and per-operation, per-fd-kind byte counts to flows ("file -> tcp via
//! sendfile").
//!
//! How reads and writes are paired: counters are totals over the trace, so a flow is inferred,
//! not observed. Within one process and one method (the tables' `Method`), bytes that came in
//! from each fd kind are paired with bytes that went out to each fd kind, largest with largest,
//! a flow taking the smaller of the two and the rest pairing on. The methods are: user space
//! (the read and recv families in, the write and send families out, syscalls and io_uring
//! operations alike), direct I/O (the bytes of those calls on an `O_DIRECT` file, taken off
//! its `file` end first, then `block`), sendfile, copy_file_range, io_uring's zero-copy sends,
//! and the pipe movers together (splice, tee, vmsplice, io_uring SPLICE and TEE), where bytes
//! that went into a pipe and came out of one cancel out, so `file -> pipe -> tcp` by two
//! splices is one `file -> tcp` flow. Where it can be wrong: a process that reads one thing and writes another
//! unrelated thing (a config file in, logs out) shows a flow between them; a process relaying
//! two streams of different kinds in parallel may have them paired crosswise. Bytes without a
//! partner are a flow from or to the process itself (`process`), e.g. a client that only
//! receives.

use std::collections::BTreeMap;

use zerocopy_trace_common::{fd_kind, Method};

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
    /// `user space`, or the syscalls that moved the bytes in the kernel (`sendfile`,
    /// `splice+tee`, ...).
    pub label: String,
}

impl Via {
    pub fn user_space() -> Via {
        Via {
            method: Method::UserCopy,
            label: "user space".to_string(),
        }
    }

    pub fn direct_io() -> Via {
        Via {
            method: Method::DirectIo,
            label: "direct I/O".to_string(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flow {
    pub source: End,
    pub destination: End,
    pub via: Via,
    pub bytes: u64,
}

impl Flow {
    /// A user-space flow with an fd at both ends: data read only to be written again.
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
}

/// Bytes by end: the fd kinds, then `PROCESS_END` (user memory) last.
type Ends = [u64; fd_kind::COUNT + 1];
const PROCESS_END: usize = fd_kind::COUNT;

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

/// Pairs sources with destinations largest-first (see the module doc).
fn pair(mut sources: Ends, mut destinations: Ends, via: &Via, out: &mut Vec<Flow>) {
    loop {
        let (si, &s) = sources
            .iter()
            .enumerate()
            .max_by_key(|(_, &b)| b)
            .unwrap_or((0, &0));
        let (di, &d) = destinations
            .iter()
            .enumerate()
            .max_by_key(|(_, &b)| b)
            .unwrap_or((0, &0));
        if s == 0 && d == 0 {
            break;
        }
        // One side exhausted: the rest goes to or comes from the process itself.
        let bytes = match (s, d) {
            (0, d) => d,
            (s, 0) => s,
            (s, d) => s.min(d),
        };
        let si = if s == 0 { PROCESS_END } else { si };
        let di = if d == 0 { PROCESS_END } else { di };
        sources[si] = sources[si].saturating_sub(bytes);
        destinations[di] = destinations[di].saturating_sub(bytes);
        if si == PROCESS_END && di == PROCESS_END {
            // User memory to user memory is not a flow (only reachable through vmsplice).
            continue;
        }
        out.push(Flow {
            source: end_at(si),
            destination: end_at(di),
            via: via.clone(),
            bytes,
        });
    }
}

/// What one method moved: bytes in from each end, bytes out to each end, and the syscalls
/// and operations that did it (their display names, in table order).
#[derive(Default)]
struct MethodBytes {
    sources: Ends,
    destinations: Ends,
    syscalls: Vec<&'static str>,
}

/// Takes up to `bytes` off the `file` end of `ends`, then off `block`: the bytes of a
/// user-copy call on an `O_DIRECT` file (its one fd end is a file or a block device).
fn take_direct(ends: &mut [u64; fd_kind::COUNT], bytes: u64) -> [u64; fd_kind::COUNT] {
    let mut taken = [0; fd_kind::COUNT];
    let mut left = bytes;
    for kind in [fd_kind::FILE as usize, fd_kind::BLOCK as usize] {
        let t = ends[kind].min(left);
        ends[kind] -= t;
        taken[kind] = t;
        left -= t;
    }
    taken
}

/// The flows of one process, largest first.
pub fn flows(counters: &ProcessCounters) -> Vec<Flow> {
    // Keyed so the in-kernel methods come first: of two flows of equal size, the in-kernel
    // one is listed first.
    let mut by_method: BTreeMap<(bool, Method), MethodBytes> = BTreeMap::new();
    for (_, path, c) in counters.rows() {
        if c.bytes == 0 {
            continue;
        }
        let (mut sources, mut destinations) = (c.source_kind_bytes, c.destination_kind_bytes);
        let direct = c.direct_bytes.min(c.bytes);
        if path.method == Method::UserCopy && direct > 0 {
            let d = by_method.entry((false, Method::DirectIo)).or_default();
            if path.source_fd {
                add_ends(&mut d.sources, &take_direct(&mut sources, direct));
            } else {
                add_ends(&mut d.destinations, &take_direct(&mut destinations, direct));
            }
            d.syscalls.push(path.display);
        }
        let m = by_method
            .entry((!path.method.in_kernel(), path.method))
            .or_default();
        add_ends(&mut m.sources, &sources);
        add_ends(&mut m.destinations, &destinations);
        if path.method == Method::PipeMover && !path.source_fd {
            // vmsplice: user pages mapped into a pipe.
            m.sources[PROCESS_END] = m.sources[PROCESS_END].saturating_add(c.bytes);
        }
        m.syscalls.push(path.display);
    }
    let mut out = Vec::new();
    for ((_, method), mut m) in by_method {
        let via = match method {
            Method::UserCopy => Via::user_space(),
            Method::DirectIo => Via::direct_io(),
            _ => Via {
                method,
                label: m.syscalls.join("+"),
            },
        };
        if method == Method::PipeMover {
            cancel_pipes(&mut m);
        }
        pair(m.sources, m.destinations, &via, &mut out);
    }
    out.sort_by_key(|f| std::cmp::Reverse(f.bytes));
    out
}

/// Through a pipe and out again: the pipe is only the means, unless pipes are all there is.
fn cancel_pipes(m: &mut MethodBytes) {
    let pipe = fd_kind::PIPE as usize;
    let through = m.sources[pipe].min(m.destinations[pipe]);
    let only_pipes = |ends: &Ends| ends.iter().enumerate().all(|(i, &b)| b == 0 || i == pipe);
    if !(only_pipes(&m.sources) && only_pipes(&m.destinations)) {
        m.sources[pipe] -= through;
        m.destinations[pipe] -= through;
    }
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
    fn direct_io_is_its_own_method_and_io_uring_ops_join_theirs() {
        use crate::snapshot::fixtures::with_ops;
        // 64 MiB read by O_DIRECT pread64, 1 MiB by a buffered one; an io_uring READ of a
        // file and SEND to tcp (a relay through user space), and SPLICE file -> pipe -> tcp.
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
                flow("file", "process", "direct I/O", 64 << 20),
                flow("file", "tcp", "user space", 1 << 20),
                flow("file", "process", "user space", 1 << 20),
                flow("file", "tcp", "io_uring SPLICE", 4096),
            ]
        );
        let flows = flows(&c);
        assert!(flows[0].in_kernel() && flows[1].is_relay() && flows[3].in_kernel());
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
