//! From per-syscall, per-fd-kind byte counts to flows ("file -> tcp via sendfile") and a finding
//! an operator can act on. Pure functions over plain data.
//!
//! How reads and writes are paired: counters are totals over the trace, so a flow is inferred,
//! not observed. Within one process and one method, bytes that came in from each fd kind are
//! paired with bytes that went out to each fd kind, largest with largest, a flow taking the
//! smaller of the two and the rest pairing on. The methods are: user space (the read and recv
//! families in, the write and send families out), sendfile, copy_file_range, and the pipe
//! movers together (splice, tee, vmsplice), where bytes that went into a pipe and came out of
//! one cancel out, so `file -> pipe -> tcp` by two splices is one `file -> tcp` flow.
//! Where it can be wrong: a process that reads one thing and writes another unrelated thing
//! (a config file in, logs out) shows a flow between them; a process relaying two streams of
//! different kinds in parallel may have them paired crosswise. Bytes without a partner are a
//! flow from or to the process itself (`process`), e.g. a client that only receives.

use zerocopy_trace_common::{fd_kind, Counters, Family, SYSCALLS};

use crate::{model::Cost, model::SyscallCounters, units};

/// The user memory of the process: the far end of a read or a write.
pub const PROCESS: &str = "process";

/// How bytes moved between the two ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Via {
    /// Copied into and out of user memory (read+write, recv+send, ...).
    UserSpace,
    /// Moved in the kernel by these syscalls (`sendfile`, `splice`, `splice+tee`, ...).
    Kernel(String),
}

impl Via {
    pub fn label(&self) -> String {
        match self {
            Via::UserSpace => "user space".to_string(),
            Via::Kernel(syscalls) => syscalls.clone(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flow {
    pub source: &'static str,
    pub destination: &'static str,
    pub via: Via,
    pub bytes: u64,
}

impl Flow {
    /// A user-space flow with an fd at both ends: data read only to be written again.
    pub fn is_relay(&self) -> bool {
        self.via == Via::UserSpace && self.source != PROCESS && self.destination != PROCESS
    }
}

/// Bytes by end: the fd kinds, then `PROCESS` (user memory) last.
type Ends = [u64; fd_kind::COUNT + 1];
const PROCESS_END: usize = fd_kind::COUNT;

fn end_name(i: usize) -> &'static str {
    fd_kind::NAMES.get(i).copied().unwrap_or(PROCESS)
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
            source: end_name(si),
            destination: end_name(di),
            via: via.clone(),
            bytes,
        });
    }
}

/// The flows of one process, largest first.
pub fn flows(counters: &SyscallCounters) -> Vec<Flow> {
    let mut out = Vec::new();
    let (mut user_in, mut user_out) = ([0u64; fd_kind::COUNT + 1], [0u64; fd_kind::COUNT + 1]);
    let (mut pipe_in, mut pipe_out) = ([0u64; fd_kind::COUNT + 1], [0u64; fd_kind::COUNT + 1]);
    let mut pipe_movers: Vec<&str> = Vec::new();
    for (desc, c) in SYSCALLS.iter().zip(counters) {
        if c.bytes == 0 {
            continue;
        }
        match (desc.family, desc.name) {
            (Family::Read | Family::Recv, _) => add_ends(&mut user_in, &c.source_kind_bytes),
            (Family::Write | Family::Send, _) => add_ends(&mut user_out, &c.destination_kind_bytes),
            (Family::InKernel, "sendfile64" | "copy_file_range") => {
                let (mut s, mut d) = ([0u64; fd_kind::COUNT + 1], [0u64; fd_kind::COUNT + 1]);
                add_ends(&mut s, &c.source_kind_bytes);
                add_ends(&mut d, &c.destination_kind_bytes);
                let name = if desc.name == "sendfile64" {
                    "sendfile"
                } else {
                    desc.name
                };
                pair(s, d, &Via::Kernel(name.to_string()), &mut out);
            }
            (Family::InKernel, name) => {
                add_ends(&mut pipe_in, &c.source_kind_bytes);
                add_ends(&mut pipe_out, &c.destination_kind_bytes);
                if desc.source_fd.is_none() {
                    // vmsplice: user pages mapped into a pipe.
                    pipe_in[PROCESS_END] = pipe_in[PROCESS_END].saturating_add(c.bytes);
                }
                pipe_movers.push(name);
            }
        }
    }
    // Through a pipe and out again: the pipe is only the means.
    let through = pipe_in[fd_kind::PIPE as usize].min(pipe_out[fd_kind::PIPE as usize]);
    let only_pipes = pipe_in
        .iter()
        .enumerate()
        .all(|(i, &b)| b == 0 || i == fd_kind::PIPE as usize)
        && pipe_out
            .iter()
            .enumerate()
            .all(|(i, &b)| b == 0 || i == fd_kind::PIPE as usize);
    if !only_pipes {
        pipe_in[fd_kind::PIPE as usize] -= through;
        pipe_out[fd_kind::PIPE as usize] -= through;
    }
    if !pipe_movers.is_empty() {
        pair(
            pipe_in,
            pipe_out,
            &Via::Kernel(pipe_movers.join("+")),
            &mut out,
        );
    }
    pair(user_in, user_out, &Via::UserSpace, &mut out);
    out.sort_by_key(|f| std::cmp::Reverse(f.bytes));
    out
}

/// The syscall that would move a relay's bytes without the copies.
fn remedy(flow: &Flow) -> &'static str {
    match (flow.source, flow.destination) {
        ("file" | "block", "file" | "block") => "copy_file_range()",
        ("file" | "block", _) => "sendfile()",
        _ => "splice()",
    }
}

/// Serving a file over TLS encrypted in user space (Kafka's TLS listener, nginx with ssl) is the
/// common reason a sendfile server relays instead; the agent cannot see the TLS, so it says when
/// that would be the cause, and the way out.
fn tls_clause(flow: &Flow) -> &'static str {
    match (flow.source, flow.destination) {
        ("file" | "block", "tcp") => {
            "; if the socket carries TLS, user-space TLS forces this copy: kernel TLS (kTLS) lets sendfile() encrypt in the kernel"
        }
        _ => "",
    }
}

/// One line for an operator: did this process achieve zero copy, and if not, what would.
pub fn finding(comm: &str, pid: u32, counters: &SyscallCounters) -> String {
    let cost = Cost::of(counters);
    let who = format!("{comm}[{pid}]");
    let Some(ratio) = cost.zero_copy_ratio() else {
        return format!(
            "{who}: {} data-path calls, no bytes moved",
            units::count(cost.calls)
        );
    };
    let flows = flows(counters);
    let moved = cost.moved_bytes();
    let top_kernel = flows.iter().find(|f| f.via != Via::UserSpace);
    let top_relay = flows.iter().find(|f| f.is_relay());
    match (top_relay, top_kernel) {
        (Some(relay), _) if relay.bytes.saturating_mul(10) >= moved => {
            // The relay's share of the user-space data path: 2 copies per byte relayed, and
            // its share of the transitions (read + write per chunk: 4).
            let user_transitions = user_space_transitions(counters);
            let share = (relay.bytes.saturating_mul(2)) as f64 / cost.copied_bytes.max(1) as f64;
            let spent = (user_transitions as f64 * share.min(1.0)).round() as u64;
            format!(
                "{who}: {} {}->{} through user space: {} of CPU copies and {} transitions; {} would copy none of it and spend {} transitions{}",
                units::bytes(relay.bytes),
                relay.source,
                relay.destination,
                units::bytes(relay.bytes.saturating_mul(2)),
                units::count(spent),
                remedy(relay),
                units::count(spent / 2),
                tls_clause(relay),
            )
        }
        (_, Some(kernel)) if ratio >= crate::model::ZERO_COPY_THRESHOLD => format!(
            "{who}: {} of {} moved {}->{} by {}: zero copy achieved",
            units::percent(Some(ratio)),
            units::bytes(moved),
            kernel.source,
            kernel.destination,
            kernel.via.label()
        ),
        // Zero copy without an in-kernel flow: sends that pinned their pages (MSG_ZEROCOPY), or
        // in-kernel moves whose fd kinds are unknown.
        (_, None) if ratio >= crate::model::ZERO_COPY_THRESHOLD => {
            let pinned: u64 = counters.iter().map(|c| c.msg_zerocopy_bytes).sum();
            let how = match flows.first() {
                Some(top) if pinned > 0 => format!(
                    "{}->{} with MSG_ZEROCOPY sends",
                    top.source, top.destination
                ),
                _ => "in the kernel".to_string(),
            };
            format!(
                "{who}: {} of {} moved {how}: zero copy achieved",
                units::percent(Some(ratio)),
                units::bytes(moved),
            )
        }
        _ => format!(
            "{who}: {} zero copy of {} moved; {} copied through user space{}",
            units::percent(Some(ratio)),
            units::bytes(moved),
            units::bytes(cost.copied_bytes),
            flows
                .iter()
                .find(|f| f.via == Via::UserSpace)
                .map(|f| format!(
                    " (largest: {}->{}, {})",
                    f.source,
                    f.destination,
                    units::bytes(f.bytes)
                ))
                .unwrap_or_default()
        ),
    }
}

fn user_space_transitions(counters: &SyscallCounters) -> u64 {
    SYSCALLS
        .iter()
        .zip(counters)
        .filter(|(d, _)| d.family.copies_across_boundary())
        .map(|(_, c): (_, &Counters)| c.calls.saturating_mul(2))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy_trace_common::{syscalls::syscall_id, SYSCALL_COUNT};

    const FILE: usize = fd_kind::FILE as usize;
    const TCP: usize = fd_kind::TCP as usize;
    const PIPE: usize = fd_kind::PIPE as usize;
    const CHAR: usize = fd_kind::CHAR as usize;

    /// (syscall, calls, bytes, source kind, destination kind)
    type Entry<'a> = (&'a str, u64, u64, Option<usize>, Option<usize>);

    fn with(entries: &[Entry]) -> SyscallCounters {
        let mut counters = [Counters::default(); SYSCALL_COUNT];
        for &(name, calls, bytes, source, destination) in entries {
            let c = &mut counters[syscall_id(name).unwrap()];
            c.calls += calls;
            c.bytes += bytes;
            if let Some(s) = source {
                c.source_kind_bytes[s] += bytes;
            }
            if let Some(d) = destination {
                c.destination_kind_bytes[d] += bytes;
            }
        }
        counters
    }

    fn flow(source: &'static str, destination: &'static str, via: Via, bytes: u64) -> Flow {
        Flow {
            source,
            destination,
            via,
            bytes,
        }
    }

    #[test]
    fn sendfile_server() {
        let c = with(&[
            ("sendfile64", 16, 1 << 20, Some(FILE), Some(TCP)),
            ("read", 2, 100, Some(TCP), None),
        ]);
        assert_eq!(
            flows(&c),
            vec![
                flow("file", "tcp", Via::Kernel("sendfile".into()), 1 << 20),
                flow("tcp", PROCESS, Via::UserSpace, 100),
            ]
        );
        let f = finding("nginx", 4121, &c);
        assert!(
            f.starts_with(
                "nginx[4121]: 100.0% of 1.0 MiB moved file->tcp by sendfile: zero copy achieved"
            ),
            "{f}"
        );
    }

    #[test]
    fn user_space_relay_and_its_cost() {
        // 512 MiB file -> tcp in 64 KiB chunks: 8192 reads, 8192 writes.
        let c = with(&[
            ("read", 8192, 512 << 20, Some(FILE), None),
            ("write", 8192, 512 << 20, None, Some(TCP)),
        ]);
        assert_eq!(
            flows(&c),
            vec![flow("file", "tcp", Via::UserSpace, 512 << 20)]
        );
        assert!(flows(&c)[0].is_relay());
        assert_eq!(
            finding("python3", 880, &c),
            "python3[880]: 512.0 MiB file->tcp through user space: 1.0 GiB of CPU copies and 32 768 transitions; sendfile() would copy none of it and spend 16 384 transitions; if the socket carries TLS, user-space TLS forces this copy: kernel TLS (kTLS) lets sendfile() encrypt in the kernel"
        );
    }

    #[test]
    fn splice_through_a_pipe_is_one_flow() {
        let c = with(&[
            ("splice", 16, 1 << 20, Some(FILE), Some(PIPE)),
            ("splice", 16, 1 << 20, Some(PIPE), Some(TCP)),
        ]);
        assert_eq!(
            flows(&c),
            vec![flow("file", "tcp", Via::Kernel("splice".into()), 1 << 20)]
        );
    }

    #[test]
    fn tcp_proxy_relay_recommends_splice() {
        let c = with(&[
            ("recvfrom", 10, 5000, Some(TCP), None),
            ("sendto", 10, 5000, None, Some(TCP)),
        ]);
        let f = finding("socat", 9, &c);
        assert!(
            f.contains("tcp->tcp through user space") && f.contains("splice()"),
            "{f}"
        );
        assert!(!f.contains("TLS"), "only file->tcp relays name TLS: {f}");
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
        let via = Via::Kernel("splice+tee+vmsplice".into());
        assert_eq!(
            flows(&c),
            vec![
                flow(PROCESS, "char", via.clone(), 100),
                flow("pipe", "char", via, 100)
            ]
        );
        let tee_only = with(&[("tee", 1, 100, Some(PIPE), Some(PIPE))]);
        assert_eq!(
            flows(&tee_only),
            vec![flow("pipe", "pipe", Via::Kernel("tee".into()), 100)]
        );
    }

    #[test]
    fn unpaired_bytes_end_in_the_process() {
        let c = with(&[("recvfrom", 3, 3000, Some(TCP), None)]);
        assert_eq!(flows(&c), vec![flow("tcp", PROCESS, Via::UserSpace, 3000)]);
        assert!(!flows(&c)[0].is_relay());
        assert!(
            finding("curl", 5, &c).contains("0.0% zero copy of 2.9 KiB moved"),
            "{}",
            finding("curl", 5, &c)
        );
    }

    #[test]
    fn msg_zerocopy_sends_are_zero_copy_without_a_mover() {
        let mut c = with(&[("sendto", 16, 1 << 20, None, Some(TCP))]);
        c[syscall_id("sendto").unwrap()].msg_zerocopy_bytes = 1 << 20;
        assert_eq!(
            finding("srv", 3, &c),
            "srv[3]: 100.0% of 1.0 MiB moved process->tcp with MSG_ZEROCOPY sends: zero copy achieved"
        );
    }

    #[test]
    fn nothing_moved() {
        let c = with(&[("read", 3, 0, None, None)]);
        assert!(flows(&c).is_empty());
        assert_eq!(
            finding("x", 1, &c),
            "x[1]: 3 data-path calls, no bytes moved"
        );
        assert!(flows(&[Counters::default(); SYSCALL_COUNT]).is_empty());
    }

    #[test]
    fn bytes_with_unknown_kinds_still_pair() {
        // A process whose fd kinds could not be resolved: bytes are kept, under "unknown".
        let c = with(&[
            ("read", 1, 10, Some(0), None),
            ("write", 1, 10, None, Some(0)),
        ]);
        assert_eq!(
            flows(&c),
            vec![flow("unknown", "unknown", Via::UserSpace, 10)]
        );
    }
}
