//! The JSON document the integration tests read: per measured process, the counts of every
//! traced syscall it made and io_uring operation it completed (those it never used are left
//! out), and its zero-copy sends with the notices it read about them.

use std::collections::BTreeMap;

use libc::pid_t;
use serde::Serialize;

use crate::ground_truth::{Counts, Slot, Syscall, ZeroCopyCounts};

#[derive(Serialize)]
pub struct Report {
    /// The mode asked for on the command line (`all` for every mode).
    pub mode: &'static str,
    pub processes: Vec<ProcessReport>,
}

#[derive(Debug, Serialize)]
pub struct ProcessReport {
    pub pid: pid_t,
    /// The mode this process ran (differs per process under `all`).
    pub mode: &'static str,
    pub role: &'static str,
    pub syscalls: BTreeMap<&'static str, Counts>,
    /// io_uring operations by `op_str` name: `calls` are completions.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub io_uring: BTreeMap<&'static str, Counts>,
    /// Zero-copy sends and the notices the sender read about them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msg_zerocopy: Option<ZeroCopyCounts>,
}

impl ProcessReport {
    pub fn new(pid: pid_t, mode: &'static str, role: &'static str, slot: &Slot) -> Self {
        let syscalls = Syscall::ALL
            .iter()
            .map(|&s| (s.name(), slot.counts(s)))
            .filter(|(_, c)| c.calls > 0)
            .collect();
        let zerocopy = slot.zerocopy();
        ProcessReport {
            pid,
            mode,
            role,
            syscalls,
            io_uring: slot.ops_used().map(|(op, c)| (op.name(), c)).collect(),
            msg_zerocopy: (zerocopy != ZeroCopyCounts::default()).then_some(zerocopy),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ground_truth::{Recorder, SharedSlots};

    #[test]
    fn lists_only_called_syscalls() {
        let slots = SharedSlots::new(1).expect("mmap");
        let rec = Recorder::start(slots.slot(0));
        let _ = rec.call(Syscall::Sendfile64, 4096);
        let report = ProcessReport::new(42, "sendfile", "sender", slots.slot(0));
        let json = serde_json::to_value(&report).expect("serialize");
        assert_eq!(
            json,
            serde_json::json!({
                "pid": 42, "mode": "sendfile", "role": "sender",
                "syscalls": {"sendfile64": {"calls": 1, "bytes": 4096, "errors": 0, "msg_zerocopy_bytes": 0}}
            })
        );
    }
}
