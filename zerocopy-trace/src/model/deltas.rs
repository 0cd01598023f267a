//! Following processes from one snapshot to the next: which record continues which, what each
//! counted since the snapshot before, and how long an exited one has been gone. The live
//! dashboard's rates are these deltas over the time between the snapshots.
//!
//! A process keeps one stable id across snapshots and across its exit: the exit record of a
//! pid continues the live process of that pid, so the burst it made just before exiting is
//! counted once. Exit records are told apart by their order of exit, so a reused pid is a new
//! process. An exited process stays followed for `linger` after its exit was first seen, then
//! is retired for good (its counts stay in the machine-wide totals). A live process missing
//! from a snapshot (it exited between the collector draining exit records and reading the live
//! map) keeps its baseline for a few snapshots, so its exit record is not counted twice.
//!
//! Containers are followed as wholes too: a container's totals are its folded exits plus its
//! processes in the snapshot, so they only grow (as the machine's do), and its delta is their
//! growth since the snapshot before.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::Duration,
};

use crate::snapshot::{Container, ContainerId, ProcessCounters, Snapshot};

/// Snapshots a live process may be missing from before it is no longer followed.
const MISSING_GRACE: u32 = 3;

/// Which record of a snapshot a followed process is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Key {
    Live(u32),
    Exited { seq: u64 },
}

/// One followed process, and what an output keeps beside it (`view`).
#[derive(Clone, Debug)]
pub struct Followed<T> {
    /// Stable across snapshots and across the process exiting.
    pub id: u64,
    pub pid: u32,
    pub comm: String,
    /// The container it runs in, with its names as of the last snapshot.
    pub container: Option<Arc<Container>>,
    pub exited: bool,
    /// Counts since attach.
    pub totals: ProcessCounters,
    /// Counts since the snapshot before.
    pub delta: ProcessCounters,
    /// The output's own state of this process (the dashboard's analysis and history).
    pub view: T,
    /// When (since attach) the exit was first seen.
    exited_at: Option<Duration>,
    missing: u32,
}

/// One container's processes added up (or, with no container, the host's: every process in
/// none), since attach and since the snapshot before.
#[derive(Clone, Debug)]
pub struct ContainerTotals {
    /// Stable across snapshots, for an output's selection; distinct from processes' ids.
    pub id: u64,
    pub container: Option<Arc<Container>>,
    /// Its live processes in the last snapshot.
    pub live: usize,
    pub totals: ProcessCounters,
    pub delta: ProcessCounters,
}

/// Ids of `ContainerTotals` start here, above any process's id.
const CONTAINER_IDS: u64 = 1 << 63;

impl<T> Followed<T> {
    /// A row that is not one process but several added up (a container's), for an output
    /// that shows them as it shows processes; `pid` is what the output makes of it.
    pub fn aggregate(
        id: u64,
        pid: u32,
        comm: String,
        container: Option<Arc<Container>>,
        totals: ProcessCounters,
        delta: ProcessCounters,
        view: T,
    ) -> Followed<T> {
        Followed {
            id,
            pid,
            comm,
            container,
            exited: false,
            totals,
            delta,
            view,
            exited_at: None,
            missing: 0,
        }
    }
}

/// Every followed process, and the whole machine's totals.
#[derive(Clone, Debug)]
pub struct Deltas<T> {
    followed: HashMap<Key, Followed<T>>,
    /// Exits up to this `seq` have lingered long enough: never followed again. Exits are first
    /// seen in the order of their `seq`, so those that lingered long enough are always the
    /// oldest ones.
    retired_through: u64,
    next_id: u64,
    /// All processes, exited and folded ones included.
    machine_totals: ProcessCounters,
    machine_delta: ProcessCounters,
    /// Every container seen (and the host), by container.
    containers: BTreeMap<Option<ContainerId>, ContainerTotals>,
}

impl<T: Default> Default for Deltas<T> {
    fn default() -> Self {
        Deltas {
            followed: HashMap::new(),
            retired_through: 0,
            next_id: 0,
            machine_totals: ProcessCounters::default(),
            machine_delta: ProcessCounters::default(),
            containers: BTreeMap::new(),
        }
    }
}

impl<T: Default> Deltas<T> {
    /// Takes the snapshot made `elapsed` after attach; exited processes stay followed for
    /// `linger`. `refreshed` sees every followed process once its figures are updated (a
    /// process missing from this snapshot too, with an empty delta).
    pub fn advance(
        &mut self,
        snapshot: Snapshot,
        elapsed: Duration,
        linger: Duration,
        mut refreshed: impl FnMut(&mut Followed<T>),
    ) {
        self.advance_containers(&snapshot);
        let mut previous = std::mem::take(&mut self.followed);
        let mut totals = ProcessCounters::default();
        for group in &snapshot.groups {
            totals.add(&group.counters);
        }
        for record in snapshot.processes {
            totals.add(&record.counters);
            let key = if record.exited {
                Key::Exited { seq: record.seq }
            } else {
                Key::Live(record.pid)
            };
            if record.exited && record.seq <= self.retired_through {
                continue;
            }
            // An exit record continues the live process of the same pid: its baseline is the
            // last live count, so the final burst before exit is counted once.
            let existing = previous.remove(&key).or_else(|| match key {
                Key::Exited { .. } => previous.remove(&Key::Live(record.pid)),
                Key::Live(_) => None,
            });
            let mut followed = existing.unwrap_or_else(|| {
                self.next_id += 1;
                Followed {
                    id: self.next_id,
                    pid: record.pid,
                    comm: String::new(),
                    container: None,
                    exited: false,
                    totals: ProcessCounters::default(),
                    delta: ProcessCounters::default(),
                    view: T::default(),
                    exited_at: None,
                    missing: 0,
                }
            });
            followed.delta = record.counters.difference(&followed.totals);
            followed.totals = record.counters;
            followed.comm = record.comm;
            followed.container = record.container;
            followed.missing = 0;
            if record.exited && !followed.exited {
                followed.exited = true;
                followed.exited_at = Some(elapsed);
            }
            refreshed(&mut followed);
            self.followed.insert(key, followed);
        }
        for (key, mut followed) in previous {
            // An exit no longer in the snapshot was folded: it goes. A live process missing
            // keeps its baseline for a few snapshots.
            if followed.exited {
                continue;
            }
            followed.missing += 1;
            if followed.missing <= MISSING_GRACE {
                followed.delta = ProcessCounters::default();
                refreshed(&mut followed);
                self.followed.insert(key, followed);
            }
        }
        let expired: Vec<(Key, u64)> = self
            .followed
            .iter()
            .filter(|(_, f)| {
                f.exited_at
                    .is_some_and(|at| elapsed.saturating_sub(at) >= linger)
            })
            .filter_map(|(key, _)| match key {
                Key::Exited { seq } => Some((*key, *seq)),
                Key::Live(_) => None,
            })
            .collect();
        for (key, seq) in expired {
            self.followed.remove(&key);
            self.retired_through = self.retired_through.max(seq);
        }
        // Machine-wide, everything ever counted only grows: the delta is its growth, which
        // includes processes that exited and were folded between two snapshots.
        self.machine_delta = totals.difference(&self.machine_totals);
        self.machine_totals = totals;
    }

    /// Each container's totals in `snapshot`, and their growth.
    fn advance_containers(&mut self, snapshot: &Snapshot) {
        /// One container's share of the snapshot.
        #[derive(Default)]
        struct Sum {
            container: Option<Arc<Container>>,
            live: usize,
            totals: ProcessCounters,
        }
        let mut sums: BTreeMap<Option<ContainerId>, Sum> = BTreeMap::new();
        let groups = snapshot
            .groups
            .iter()
            .map(|g| (&g.container, 0, &g.counters));
        let processes = snapshot
            .processes
            .iter()
            .map(|p| (&p.container, usize::from(!p.exited), &p.counters));
        for (container, live, counters) in groups.chain(processes) {
            let sum = sums
                .entry(container.as_ref().map(|c| c.id.clone()))
                .or_default();
            if container.is_some() {
                sum.container.clone_from(container);
            }
            sum.live += live;
            sum.totals.add(counters);
        }
        let mut next_id = CONTAINER_IDS + self.containers.len() as u64;
        for (key, sum) in sums {
            let entry = self.containers.entry(key).or_insert_with(|| {
                next_id += 1;
                ContainerTotals {
                    id: next_id,
                    container: None,
                    live: 0,
                    totals: ProcessCounters::default(),
                    delta: ProcessCounters::default(),
                }
            });
            entry.delta = sum.totals.difference(&entry.totals);
            entry.totals = sum.totals;
            entry.live = sum.live;
            if sum.container.is_some() {
                entry.container = sum.container;
            }
        }
    }
}

impl<T> Deltas<T> {
    /// Every followed process, in no particular order.
    pub fn followed(&self) -> impl Iterator<Item = &Followed<T>> {
        self.followed.values()
    }

    pub fn machine_totals(&self) -> &ProcessCounters {
        &self.machine_totals
    }

    pub fn machine_delta(&self) -> &ProcessCounters {
        &self.machine_delta
    }

    /// Every container seen since attach, and the host's processes (`container: None`), in
    /// no particular order.
    pub fn containers(&self) -> impl Iterator<Item = &ContainerTotals> {
        self.containers.values()
    }

    /// The last exit retired for good (its order of exit).
    #[cfg(test)]
    pub fn retired_through(&self) -> u64 {
        self.retired_through
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{fixtures::served, ProcessRecord};

    fn snapshot(records: &[(u32, bool, u64, u64)]) -> Snapshot {
        Snapshot {
            processes: records
                .iter()
                .map(|&(pid, exited, seq, bytes)| ProcessRecord {
                    pid,
                    ppid: 1,
                    comm: "srv".into(),
                    exited,
                    seq,
                    group: 0,
                    container: None,
                    counters: served(&[("write", 1, bytes)]),
                })
                .collect(),
            groups: vec![],
            groups_overflowed: 0,
            dropped: Default::default(),
        }
    }

    fn write() -> usize {
        zerocopy_trace_common::syscalls::syscall_id("write").expect("a traced syscall")
    }

    fn ids_and_deltas(deltas: &Deltas<()>) -> Vec<(u64, u32, bool, u64)> {
        let mut out: Vec<_> = deltas
            .followed()
            .map(|f| (f.id, f.pid, f.exited, f.delta.syscall(write()).bytes))
            .collect();
        out.sort();
        out
    }

    #[test]
    fn an_exit_continues_its_live_process_and_a_reused_pid_is_new() {
        let linger = Duration::from_secs(10);
        let mut deltas = Deltas::<()>::default();
        let mut seen = 0;
        deltas.advance(
            snapshot(&[(7, false, 0, 100)]),
            Duration::from_secs(1),
            linger,
            |_| seen += 1,
        );
        assert_eq!(ids_and_deltas(&deltas), [(1, 7, false, 100)]);
        // It exits having written 50 more: the same id, a delta of 50, not 150.
        deltas.advance(
            snapshot(&[(7, true, 1, 150)]),
            Duration::from_secs(2),
            linger,
            |_| seen += 1,
        );
        assert_eq!(ids_and_deltas(&deltas), [(1, 7, true, 50)]);
        // Pid 7 again, alive: a new process beside the exited one.
        deltas.advance(
            snapshot(&[(7, false, 0, 10), (7, true, 1, 150)]),
            Duration::from_secs(3),
            linger,
            |_| seen += 1,
        );
        assert_eq!(
            ids_and_deltas(&deltas),
            [(1, 7, true, 0), (2, 7, false, 10)]
        );
        assert_eq!(seen, 4);
        assert_eq!(deltas.machine_totals().syscall(write()).bytes, 160);
        // Past the linger, the exit is retired for good, even while the snapshot still has it.
        deltas.advance(
            snapshot(&[(7, false, 0, 10), (7, true, 1, 150)]),
            Duration::from_secs(12),
            linger,
            |_| {},
        );
        assert_eq!(ids_and_deltas(&deltas), [(2, 7, false, 0)]);
        assert_eq!(deltas.retired_through(), 1);
    }
}
