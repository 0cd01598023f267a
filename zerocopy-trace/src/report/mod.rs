//! The end-of-trace report: one row per process, as a text table or as JSON.

mod json;
mod table;

pub use json::to_json;
pub use table::to_table;

use std::time::Duration;

use crate::{
    attach::Occupancy,
    collect::{ProcessRecord, Snapshot},
    model::Cost,
};

/// What a report is made of.
pub struct Report<'a> {
    pub duration: Duration,
    pub snapshot: &'a Snapshot,
    /// Syscalls without tracepoints in this kernel: not counted.
    pub not_covered: &'a [&'static str],
    /// Why the trace ended, when it was not the duration or an interrupt (e.g. "pid 42 exited").
    pub ended_because: Option<String>,
    /// Entries left in the kernel maps at the end, when known.
    pub occupancy: Option<Occupancy>,
}

/// Processes with their costs, largest movers first (then most calls, then pid).
pub fn ranked(snapshot: &Snapshot) -> Vec<(&ProcessRecord, Cost)> {
    let mut rows: Vec<_> = snapshot
        .processes
        .iter()
        .map(|p| (p, Cost::of(&p.syscalls)))
        .filter(|(_, cost)| cost.calls > 0)
        .collect();
    rows.sort_by(|(a, ca), (b, cb)| {
        cb.moved_bytes()
            .cmp(&ca.moved_bytes())
            .then(cb.calls.cmp(&ca.calls))
            .then(a.pid.cmp(&b.pid))
    });
    rows
}
