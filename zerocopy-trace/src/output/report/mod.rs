//! The end-of-trace report: one row per process, as a text table or as JSON. Both format the
//! model's analysis; neither computes anything of its own. `AtEnd` is the report's side of the
//! trace's loop: it needs only the final snapshot.

mod json;
mod table;

pub use json::to_json;
pub use table::to_table;

use std::time::Duration;

use super::Output;
use crate::{
    analysis::SnapshotAnalysis,
    collect::{groups::Grouping, Retention},
    snapshot::Occupancy,
};

/// What a report is made of.
pub struct Report<'a> {
    pub duration: Duration,
    pub analysed: &'a SnapshotAnalysis,
    /// Syscalls without tracepoints in this kernel: not counted.
    pub not_covered: &'a [&'static str],
    /// Why the trace ended, when it was not the duration or an interrupt (e.g. "pid 42 exited").
    pub ended_because: Option<String>,
    /// Entries left in the kernel maps at the end, when known.
    pub occupancy: Option<Occupancy>,
    /// Exited processes listed one by one (`--max-rows`); the rest are folded.
    pub max_rows: usize,
}

/// The report while the trace runs: nothing to show until the end, when it lists the last
/// `keep_exited` exited processes one by one.
pub struct AtEnd {
    keep_exited: usize,
    /// For the bench: every counter read at this interval and dropped.
    refresh: Option<Duration>,
}

impl AtEnd {
    /// A report listing the last `max_rows` exited processes one by one.
    pub fn new(max_rows: usize) -> AtEnd {
        AtEnd {
            keep_exited: max_rows,
            refresh: None,
        }
    }

    /// For the bench: reads every counter each `refresh`, as the dashboard does, to measure
    /// what its refreshes cost; exited processes are then kept as the dashboard keeps them.
    #[cfg(feature = "bench")]
    pub fn refreshing(refresh: Duration) -> AtEnd {
        AtEnd {
            keep_exited: super::dashboard::EXITED_ROWS,
            refresh: Some(refresh),
        }
    }
}

impl Output for AtEnd {
    fn retention(&self) -> Retention {
        Retention {
            keep_exited: self.keep_exited,
            grouping: Grouping::default(),
        }
    }

    fn refresh(&self) -> Option<Duration> {
        self.refresh
    }
}
