//! What a metrics exporter shows of a snapshot, as plain values any exposition format can
//! encode (Prometheus text and OpenMetrics today): one series per group of processes (its
//! folded exits plus its live processes, or per live pid when pids are labels), and for each
//! the calls, errors and bytes by method of every data path, and the transitions; the exits
//! by group; live processes by verdict; what was dropped; how many processes overflowed the
//! group cap.
//!
//! Groups are told apart by container too, and labelled with its name once a runtime gave it
//! (its short id until then). Two groups with the same labels (a container restarted under
//! the same name) are one series: the exposition adds them up.
//!
//! A group's counters are its folded exited processes plus its live ones. Groups keep their
//! place for the whole trace and a live process's counts never change group, so every counter
//! only grows for the exporter's life, across exits.

use std::collections::BTreeMap;

use zerocopy_trace_common::Method;

use super::{Analysis, SnapshotAnalysis};
use crate::{
    model::{MethodBytes, Verdict},
    snapshot::{Container, Dropped, GroupId, ProcessCounters, Snapshot},
};

/// Which labels besides `comm`, `unit` and the container's (`container`: its name, else its
/// short id; `pod`: its pod's name, else its UID; `namespace`), which every series has (empty
/// outside a container).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Labels {
    /// `pid` on live processes' series (exited ones are summed without it).
    pub pid: bool,
    /// `cgroup`: the full path (the collector then groups by it).
    pub cgroup: bool,
}

/// The labels of one series, in the order they are shown.
pub type LabelSet = Vec<(&'static str, String)>;

/// The figures of one data path of one group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathFigures {
    /// The group's labels, then `syscall`: the path as lists name it (`Path::label`).
    pub labels: LabelSet,
    pub calls: u64,
    pub errors: u64,
    /// Bytes by method: `copied` and `zero_copy`. The method a path takes by nature always has
    /// a value (so a sum over it starts at 0); the other only once bytes took it (a confirmed
    /// zero-copy send, O_DIRECT).
    pub bytes: Vec<(&'static str, u64)>,
}

/// Everything a scrape shows.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub paths: Vec<PathFigures>,
    /// Per group: transitions spent on the data path.
    pub transitions: Vec<(LabelSet, u64)>,
    /// Per group: its processes that exited.
    pub exited: Vec<(LabelSet, u64)>,
    /// Live processes by verdict (every verdict, 0 included).
    pub processes: Vec<(Verdict, u64)>,
    pub dropped: Dropped,
    pub groups_overflowed: u64,
}

/// One series' worth of processes: a group, and a live pid when pids are labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct SeriesKey {
    group: GroupId,
    pid: Option<u32>,
}

impl Series {
    /// The series of `snapshot` with the `labels` asked for.
    pub fn of(snapshot: Snapshot, labels: Labels) -> Series {
        // Each series' processes added up: folded exits, then every process of the snapshot.
        let mut series: BTreeMap<SeriesKey, ProcessCounters> = BTreeMap::new();
        for (id, group) in snapshot.groups.iter().enumerate() {
            if group.exited > 0 {
                series
                    .entry(SeriesKey {
                        group: id as GroupId,
                        pid: None,
                    })
                    .or_default()
                    .add(&group.counters);
            }
        }
        for p in &snapshot.processes {
            let pid = (labels.pid && !p.exited).then_some(p.pid);
            series
                .entry(SeriesKey {
                    group: p.group,
                    pid,
                })
                .or_default()
                .add(&p.counters);
        }
        let mut exited_by_group: BTreeMap<GroupId, u64> = BTreeMap::new();
        for (id, group) in snapshot.groups.iter().enumerate() {
            *exited_by_group.entry(id as GroupId).or_default() += group.exited;
        }
        for p in snapshot.processes.iter().filter(|p| p.exited) {
            *exited_by_group.entry(p.group).or_default() += 1;
        }

        let group_labels = |id: GroupId, pid: Option<u32>| -> LabelSet {
            let mut set: LabelSet = Vec::with_capacity(7);
            if let Some(group) = snapshot.groups.get(id as usize) {
                set.push(("comm", group.key.comm.clone()));
                set.push(("unit", group.key.unit.clone()));
                let c = group.container.as_deref();
                set.push((
                    "container",
                    c.map(Container::display_name)
                        .unwrap_or_default()
                        .to_string(),
                ));
                set.push((
                    "pod",
                    c.map(Container::pod_name).unwrap_or_default().to_string(),
                ));
                set.push((
                    "namespace",
                    c.map(Container::namespace).unwrap_or_default().to_string(),
                ));
                if labels.cgroup {
                    set.push(("cgroup", group.key.cgroup.clone()));
                }
            }
            if let Some(pid) = pid {
                set.push(("pid", pid.to_string()));
            }
            set
        };

        let mut paths = Vec::new();
        let mut transitions = Vec::new();
        for (key, counters) in &series {
            let base = group_labels(key.group, key.pid);
            let analysis = Analysis::of(counters);
            if analysis.cost.calls == 0 && analysis.cost.ops == 0 {
                continue;
            }
            transitions.push((base.clone(), analysis.cost.transitions));
            // io_uring operations are series of their own under `syscall`, named as flows name
            // them (`io_uring READ`): a sum over the label stays every data path's.
            let sends = &analysis.cost.zero_copy_sends;
            for (_, path, c) in counters.rows() {
                if c.calls == 0 {
                    continue;
                }
                let mut with_syscall = base.clone();
                with_syscall.push(("syscall", path.label().to_string()));
                let split = MethodBytes::of(&path, c, sends);
                let copies = matches!(path.method, Method::UserCopy | Method::ZeroCopySend);
                let bytes = [
                    ("copied", split.copied, copies),
                    ("zero_copy", split.zero_copy, !copies),
                ]
                .into_iter()
                .filter(|&(_, bytes, natural)| natural || bytes > 0)
                .map(|(method, bytes, _)| (method, bytes))
                .collect();
                paths.push(PathFigures {
                    labels: with_syscall,
                    calls: c.calls,
                    errors: c.errors,
                    bytes,
                });
            }
        }
        let exited = exited_by_group
            .into_iter()
            .filter(|&(_, exited)| exited > 0)
            .map(|(id, exited)| (group_labels(id, None), exited))
            .collect();

        let dropped = snapshot.dropped;
        let groups_overflowed = snapshot.groups_overflowed;
        // The verdicts are those of the report: the analysis of each live process.
        let live = SnapshotAnalysis::of(Snapshot {
            processes: snapshot
                .processes
                .into_iter()
                .filter(|p| !p.exited)
                .collect(),
            groups: Vec::new(),
            groups_overflowed: 0,
            dropped,
        });
        let processes = [
            Verdict::ZeroCopy,
            Verdict::Mixed,
            Verdict::Copying,
            Verdict::Idle,
        ]
        .into_iter()
        .map(|verdict| {
            let n = live
                .processes
                .iter()
                .filter(|p| p.analysis.cost.verdict() == verdict)
                .count();
            (verdict, n as u64)
        })
        .collect();
        Series {
            paths,
            transitions,
            exited,
            processes,
            dropped,
            groups_overflowed,
        }
    }
}
