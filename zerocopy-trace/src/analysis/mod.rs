//! Everything the outputs show of a process, computed once per snapshot: its cost, its flows
//! and its finding; the same of each container, all its processes added up; and the series a
//! metrics exporter shows (`series`). The table, the JSON, the dashboard and the exporter only
//! format these.

pub mod series;

use std::{collections::BTreeMap, sync::Arc};

use crate::{
    correlate::{self, Finding},
    snapshot::{groups::GroupKey, Container, ContainerId, Dropped, ProcessRecord, Snapshot},
};

use crate::{
    model::{self, Cost, Flow},
    snapshot::ProcessCounters,
};

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
        let flows = model::flows(counters);
        let cost = Cost::with_flows(counters, &flows);
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
    /// The group's container, with its names.
    pub container: Option<Arc<Container>>,
    /// How many exited processes were folded.
    pub processes: u64,
    pub counters: ProcessCounters,
    pub analysis: Analysis,
}

/// One container's processes (live, exited and folded) added up, and the analysis of the sum.
#[derive(Clone, Debug)]
pub struct ContainerAnalysis {
    pub container: Arc<Container>,
    /// Processes counted in it.
    pub processes: u64,
    pub analysis: Analysis,
}

/// A snapshot analysed: the processes that made data-path calls or io_uring operations,
/// largest movers first (then most calls and operations, then pid), the folded groups of
/// exited processes ranked the same way, the containers ranked the same way, and what could
/// not be attributed.
#[derive(Clone, Debug)]
pub struct SnapshotAnalysis {
    pub processes: Vec<ProcessAnalysis>,
    pub folded: Vec<FoldedAnalysis>,
    pub containers: Vec<ContainerAnalysis>,
    /// Processes counted under the `other` group because the group cap was reached.
    pub groups_overflowed: u64,
    pub dropped: Dropped,
}

/// Every container's processes added up: the folded ones of its groups, and each of
/// `processes`; ranked like processes. Containers whose processes made no call are left out.
pub fn containers(snapshot: &Snapshot) -> Vec<ContainerAnalysis> {
    let mut sums: BTreeMap<&ContainerId, (Arc<Container>, u64, ProcessCounters)> = BTreeMap::new();
    let folded = snapshot
        .groups
        .iter()
        .filter(|g| g.exited > 0)
        .filter_map(|g| Some((g.container.as_ref()?, g.exited, &g.counters)));
    let processes = snapshot
        .processes
        .iter()
        .filter_map(|p| Some((p.container.as_ref()?, 1, &p.counters)));
    for (container, n, counters) in folded.chain(processes) {
        let sum = sums
            .entry(&container.id)
            .or_insert_with(|| (Arc::clone(container), 0, ProcessCounters::default()));
        sum.1 += n;
        sum.2.add(counters);
    }
    let mut out: Vec<ContainerAnalysis> = sums
        .into_values()
        .map(|(container, processes, counters)| ContainerAnalysis {
            analysis: Analysis::of(&counters),
            container,
            processes,
        })
        .filter(|c| c.analysis.cost.calls > 0 || c.analysis.cost.ops > 0)
        .collect();
    out.sort_by(|a, b| {
        let (ca, cb) = (&a.analysis.cost, &b.analysis.cost);
        cb.delivered_bytes
            .cmp(&ca.delivered_bytes)
            .then((cb.calls + cb.ops).cmp(&(ca.calls + ca.ops)))
            .then(a.container.id.cmp(&b.container.id))
    });
    out
}

impl SnapshotAnalysis {
    pub fn of(snapshot: Snapshot) -> SnapshotAnalysis {
        let containers = containers(&snapshot);
        let mut folded: Vec<FoldedAnalysis> = snapshot
            .groups
            .into_iter()
            .filter(|g| g.exited > 0)
            .map(|g| FoldedAnalysis {
                analysis: Analysis::of(&g.counters),
                key: g.key,
                container: g.container,
                processes: g.exited,
                counters: g.counters,
            })
            .collect();
        folded.sort_by(|a, b| {
            let (ca, cb) = (&a.analysis.cost, &b.analysis.cost);
            cb.delivered_bytes
                .cmp(&ca.delivered_bytes)
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
            cb.delivered_bytes
                .cmp(&ca.delivered_bytes)
                .then((cb.calls + cb.ops).cmp(&(ca.calls + ca.ops)))
                .then(a.record.pid.cmp(&b.record.pid))
        });
        SnapshotAnalysis {
            processes,
            folded,
            containers,
            groups_overflowed: snapshot.groups_overflowed,
            dropped: snapshot.dropped,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{fixtures::served, groups::Group, Runtime};

    fn container(id: &str) -> Arc<Container> {
        Arc::new(Container {
            id: ContainerId {
                runtime: Runtime::Podman,
                id: id.into(),
                pod_uid: String::new(),
            },
            names: None,
        })
    }

    fn process(pid: u32, container: Option<Arc<Container>>, bytes: u64) -> ProcessRecord {
        ProcessRecord {
            pid,
            ppid: 1,
            comm: "nginx".into(),
            exited: false,
            seq: 0,
            group: 0,
            container,
            counters: served(&[("sendfile64", 1, bytes)]),
        }
    }

    #[test]
    fn containers_add_up_their_processes_and_folded_exits() {
        let (a, b) = (container("a"), container("b"));
        let snapshot = Snapshot {
            processes: vec![
                process(1, Some(Arc::clone(&a)), 100),
                process(2, Some(Arc::clone(&a)), 50),
                process(3, Some(Arc::clone(&b)), 500),
                process(4, None, 9999),
            ],
            groups: vec![Group {
                key: GroupKey::default(),
                container: Some(Arc::clone(&a)),
                exited: 3,
                counters: served(&[("sendfile64", 3, 1000)]),
            }],
            groups_overflowed: 0,
            dropped: Default::default(),
        };
        let analysed = SnapshotAnalysis::of(snapshot);
        let rows: Vec<(&str, u64, u64)> = analysed
            .containers
            .iter()
            .map(|c| {
                (
                    c.container.id.id.as_str(),
                    c.processes,
                    c.analysis.cost.zero_copy_bytes,
                )
            })
            .collect();
        assert_eq!(
            rows,
            [("a", 5, 1150), ("b", 1, 500)],
            "largest first; the host's process is in none"
        );
        assert_eq!(analysed.folded[0].container.as_deref(), Some(&*a));
        let empty = SnapshotAnalysis::of(Snapshot {
            processes: vec![],
            groups: vec![],
            groups_overflowed: 0,
            dropped: Default::default(),
        });
        assert!(empty.containers.is_empty());
    }
}
