//! The end-of-trace report: one row per process, as a text table or as JSON. Both format the
//! model's analysis; neither computes anything of its own.

mod json;
mod table;

pub use json::to_json;
pub use table::to_table;

use std::time::Duration;

use crate::{attach::Occupancy, model::Analysed};

/// What a report is made of.
pub struct Report<'a> {
    pub duration: Duration,
    pub analysed: &'a Analysed,
    /// Syscalls without tracepoints in this kernel: not counted.
    pub not_covered: &'a [&'static str],
    /// Why the trace ended, when it was not the duration or an interrupt (e.g. "pid 42 exited").
    pub ended_because: Option<String>,
    /// Entries left in the kernel maps at the end, when known.
    pub occupancy: Option<Occupancy>,
    /// Exited processes listed one by one (`--max-rows`); the rest are folded.
    pub max_rows: usize,
}
