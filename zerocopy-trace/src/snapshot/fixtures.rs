//! Counters as the kernel records them, for the tests of correlation and of what reads it:
//! every byte also counted under the fd kinds of its ends.

use zerocopy_trace_common::{fd_kind, syscalls::syscall_id, Counters};

use super::ProcessCounters;

pub const FILE: usize = fd_kind::FILE as usize;
pub const TCP: usize = fd_kind::TCP as usize;
pub const PIPE: usize = fd_kind::PIPE as usize;
pub const CHAR: usize = fd_kind::CHAR as usize;

/// Counters of `calls` calls that moved `bytes` bytes, nothing else.
pub fn calls_and_bytes(calls: u64, bytes: u64) -> Counters {
    Counters {
        calls,
        bytes,
        ..Counters::default()
    }
}

/// (syscall, calls, bytes, source kind, destination kind)
pub type Entry<'a> = (&'a str, u64, u64, Option<usize>, Option<usize>);

/// Adds io_uring operations (by `op_str` name) to `counters`, as `with` does syscalls.
pub fn with_ops(counters: &mut ProcessCounters, entries: &[Entry]) {
    for &(name, calls, bytes, source, destination) in entries {
        let op = zerocopy_trace_common::io_uring::io_uring_op_index(name)
            .expect("a traced io_uring operation");
        add(counters.op_mut(op), calls, bytes, source, destination);
    }
}

pub fn with(entries: &[Entry]) -> ProcessCounters {
    let mut counters = ProcessCounters::default();
    for &(name, calls, bytes, source, destination) in entries {
        let id = syscall_id(name).expect("a traced syscall");
        add(counters.syscall_mut(id), calls, bytes, source, destination);
    }
    counters
}

/// One entry's figures, its bytes also under the kinds of its ends.
fn add(
    c: &mut Counters,
    calls: u64,
    bytes: u64,
    source: Option<usize>,
    destination: Option<usize>,
) {
    c.calls += calls;
    c.bytes += bytes;
    if let Some(s) = source {
        c.source_kind_bytes[s] += bytes;
    }
    if let Some(d) = destination {
        c.destination_kind_bytes[d] += bytes;
    }
}

/// Counters for (syscall, calls, bytes) entries, with each byte also under the fd kinds a
/// typical server's calls have: reads from files, receives from and writes and sends to tcp,
/// sendfile from a file to tcp, and splices half into a pipe from tcp, half out of it to
/// tcp (a splice proxy).
pub fn served(entries: &[(&str, u64, u64)]) -> ProcessCounters {
    let mut kinds: Vec<Entry> = Vec::new();
    for &(name, calls, bytes) in entries {
        match name {
            "read" | "readv" | "pread64" => kinds.push((name, calls, bytes, Some(FILE), None)),
            "recvfrom" | "recvmsg" => kinds.push((name, calls, bytes, Some(TCP), None)),
            "write" | "writev" | "sendto" | "sendmsg" => {
                kinds.push((name, calls, bytes, None, Some(TCP)))
            }
            "sendfile64" => kinds.push((name, calls, bytes, Some(FILE), Some(TCP))),
            "splice" => {
                let (first, second) = (bytes / 2, bytes - bytes / 2);
                kinds.push((name, calls / 2, first, Some(TCP), Some(PIPE)));
                kinds.push((name, calls - calls / 2, second, Some(PIPE), Some(TCP)));
            }
            other => panic!("no typical fd kinds for {other}"),
        }
    }
    with(&kinds)
}
