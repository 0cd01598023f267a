//! The groups exited processes are folded into: what tells them apart, and each group's
//! totals. The table that admits and folds them is the collector's (`collect::groups`).

use std::sync::Arc;

use super::{Container, ContainerId, ProcessCounters};

/// Index of a group in the table (and in `Snapshot::groups`).
pub type GroupId = u32;

/// The group every process beyond the cap is counted in.
pub const OTHER: GroupId = 0;
/// The name of that group.
pub const OTHER_COMM: &str = "other";

/// What a group is told apart by.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupKey {
    /// The process name (`comm`).
    pub comm: String,
    /// The systemd unit of its cgroup (`nginx.service`), empty when it is in none.
    pub unit: String,
    /// The full cgroup path, only when grouping by cgroup was asked for; else empty.
    pub cgroup: String,
    /// The container its cgroup belongs to, if any.
    pub container: Option<ContainerId>,
}

/// A group and the final counts of its processes that exited and left the window of recent
/// exits.
#[derive(Clone, Debug, PartialEq)]
pub struct Group {
    pub key: GroupKey,
    /// The key's container with the names its runtime gave it, as of the snapshot.
    pub container: Option<Arc<Container>>,
    /// Exited processes folded in.
    pub exited: u64,
    pub counters: ProcessCounters,
}
