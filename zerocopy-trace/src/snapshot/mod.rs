//! The plain values every layer above the kernel passes on: what a snapshot of the trace holds
//! (`Snapshot`, `ProcessRecord`, the groups exited processes are folded into, what could not be
//! attributed) and what is counted of one process (`ProcessCounters`). No logic beyond sums:
//! the collector makes them, the model and the outputs read them.

pub mod container;
pub mod counters;
#[cfg(test)]
pub mod fixtures;
pub mod groups;
mod occupancy;

use std::sync::Arc;

use zerocopy_trace_common::{drop_reason, DropCounters};

pub use self::{
    container::{Container, ContainerId, ContainerNames, Runtime},
    counters::{path, Path, ProcessCounters},
    groups::{Group, GroupId, GroupKey},
    occupancy::Occupancy,
};

/// One process's counters, live or final.
#[derive(Clone, Debug, PartialEq)]
pub struct ProcessRecord {
    pub pid: u32,
    pub ppid: u32,
    pub comm: String,
    /// The process exited while traced: these are its final counts.
    pub exited: bool,
    /// Order of exit (from 1) of an exited process, 0 for a live one: tells apart exited
    /// processes that had the same pid.
    pub seq: u64,
    /// Index of its group in `Snapshot::groups`.
    pub group: GroupId,
    /// The container it runs in (its group's), with the names its runtime gave it.
    pub container: Option<Arc<Container>>,
    pub counters: ProcessCounters,
}

/// Counts that could not be attributed, by reason (`drop_reason`).
pub type Dropped = [DropCounters; drop_reason::COUNT as usize];

/// Everything counted so far: the sum of `processes` and of every group's `counters`.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// Live processes, then the exited ones still kept one by one (oldest first).
    pub processes: Vec<ProcessRecord>,
    /// Every group, indexed by `GroupId`, with the totals of its exited processes that are no
    /// longer in `processes` (folded).
    pub groups: Vec<Group>,
    /// Processes counted under the `other` group because the group cap was reached.
    pub groups_overflowed: u64,
    pub dropped: Dropped,
}

impl Snapshot {
    /// Exited processes folded into their groups' totals.
    pub fn folded(&self) -> u64 {
        self.groups.iter().map(|g| g.exited).sum()
    }
}
