//! Everything the outputs show of a process, computed once per snapshot: its cost, its flows
//! and its finding; and the series a metrics exporter shows (`series`). The table, the JSON,
//! the dashboard and the exporter only format these.

pub mod series;

use crate::{
    correlate::{self, Finding, Flow},
    snapshot::{groups::GroupKey, Dropped, ProcessRecord, Snapshot},
};

use crate::{model::Cost, snapshot::ProcessCounters};

#[derive(Clone, Debug, PartialEq)]
pub struct Analysis {
    pub cost: Cost,
    /// Largest first.
    pub flows: Vec<Flow>,
    pub finding: Finding,
}

impl Analysis {
    /// The analysis of one process's counters (or of a group's).
    pub fn of(counters: &ProcessCounters) -> Analysis {
        let cost = Cost::of(counters);
        let flows = correlate::flows(counters);
        let finding = correlate::finding(&cost, &flows);
        Analysis {
            cost,
            flows,
            finding,
        }
    }
}

/// A process and its analysis.
#[derive(Clone, Debug)]
pub struct ProcessAnalysis {
    pub record: ProcessRecord,
    pub analysis: Analysis,
}

/// Exited processes of one group, folded together, and the analysis of their sum.
#[derive(Clone, Debug)]
pub struct FoldedAnalysis {
    pub key: GroupKey,
    /// How many exited processes were folded.
    pub processes: u64,
    pub counters: ProcessCounters,
    pub analysis: Analysis,
}

/// A snapshot analysed: the processes that made data-path calls or io_uring operations,
/// largest movers first (then most calls and operations, then pid), the folded groups of
/// exited processes ranked the same way, and what could not be attributed.
#[derive(Clone, Debug)]
pub struct SnapshotAnalysis {
    pub processes: Vec<ProcessAnalysis>,
    pub folded: Vec<FoldedAnalysis>,
    /// Processes counted under the `other` group because the group cap was reached.
    pub groups_overflowed: u64,
    pub dropped: Dropped,
}

impl SnapshotAnalysis {
    pub fn of(snapshot: Snapshot) -> SnapshotAnalysis {
        let mut folded: Vec<FoldedAnalysis> = snapshot
            .groups
            .into_iter()
            .filter(|g| g.exited > 0)
            .map(|g| FoldedAnalysis {
                analysis: Analysis::of(&g.counters),
                key: g.key,
                processes: g.exited,
                counters: g.counters,
            })
            .collect();
        folded.sort_by(|a, b| {
            let (ca, cb) = (&a.analysis.cost, &b.analysis.cost);
            cb.moved_bytes()
                .cmp(&ca.moved_bytes())
                .then(cb.calls.cmp(&ca.calls))
                .then(a.key.cmp(&b.key))
        });
        let mut processes: Vec<ProcessAnalysis> = snapshot
            .processes
            .into_iter()
            .map(|record| {
                let analysis = Analysis::of(&record.counters);
                ProcessAnalysis { record, analysis }
            })
            .filter(|p| p.analysis.cost.calls > 0 || p.analysis.cost.ops > 0)
            .collect();
        processes.sort_by(|a, b| {
            let (ca, cb) = (&a.analysis.cost, &b.analysis.cost);
            cb.moved_bytes()
                .cmp(&ca.moved_bytes())
                .then((cb.calls + cb.ops).cmp(&(ca.calls + ca.ops)))
                .then(a.record.pid.cmp(&b.record.pid))
        });
        SnapshotAnalysis {
            processes,
            folded,
            groups_overflowed: snapshot.groups_overflowed,
            dropped: snapshot.dropped,
        }
    }
}
