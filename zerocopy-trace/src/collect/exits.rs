//! Exited processes: the most recent ones kept one by one (a bounded window, for the rows of
//! the dashboard and the report), every older one folded into its group's totals as it leaves
//! the window. Memory stays the same whatever the churn.

use std::collections::{HashMap, VecDeque};

use zerocopy_trace_common::{Counters, ID_COUNT};

use super::groups::GroupTable;
use crate::snapshot::{GroupId, ProcessCounters};

/// Final counts of an exited process (`ProcessCounters` keeps only the ids it used: most
/// processes use 2 to 5 of the 22 syscalls and 17 io_uring operations).
#[derive(Clone, Debug)]
pub struct ExitedProcess {
    /// Order of exit, from 1: tells apart processes that had the same pid.
    pub seq: u64,
    pub pid: u32,
    pub ppid: u32,
    pub comm: String,
    pub group: GroupId,
    pub counters: ProcessCounters,
}

/// How long after an exit its records are still matched to it. One exit's records are written
/// together, so a second is plenty.
const EXIT_RECORDS_WINDOW_NS: u64 = 1_000_000_000;

/// Who an exit is, once its first record arrived.
pub struct NewExit {
    pub pid: u32,
    pub ppid: u32,
    pub comm: String,
    pub group: GroupId,
}

/// The window of recent exits.
pub struct Exits {
    /// Most exited processes kept one by one.
    keep: usize,
    /// Oldest first; `seq`s are consecutive.
    window: VecDeque<ExitedProcess>,
    next_seq: u64,
    /// Exits whose records may still be arriving: (tgid, exit_ns) -> (seq, group).
    open: HashMap<(u32, u64), (u64, GroupId)>,
}

impl Exits {
    pub fn new(keep: usize) -> Exits {
        Exits {
            keep,
            window: VecDeque::new(),
            next_seq: 1,
            open: HashMap::new(),
        }
    }

    /// Whether the exit of `tgid` at `exit_ns` has had a record already.
    pub fn is_open(&self, tgid: u32, exit_ns: u64) -> bool {
        self.open.contains_key(&(tgid, exit_ns))
    }

    /// Starts the exit of `tgid` at `exit_ns` (on its first record; see `is_open`).
    pub fn begin(&mut self, tgid: u32, exit_ns: u64, who: NewExit) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.open.insert((tgid, exit_ns), (seq, who.group));
        self.window.push_back(ExitedProcess {
            seq,
            pid: who.pid,
            ppid: who.ppid,
            comm: who.comm,
            group: who.group,
            counters: ProcessCounters::default(),
        });
    }

    /// Files one syscall's final counts under the exit of `tgid` at `exit_ns` (begun before:
    /// records of an exit not begun are ignored), then folds the exits beyond the window.
    pub fn add(
        &mut self,
        tgid: u32,
        exit_ns: u64,
        syscall: u32,
        counters: &Counters,
        groups: &mut GroupTable,
    ) {
        let Some(&(seq, group)) = self.open.get(&(tgid, exit_ns)) else {
            return;
        };
        if (syscall as usize) < ID_COUNT {
            let syscall = syscall as u8;
            match self.window.front().map(|front| front.seq) {
                Some(first) if seq >= first => {
                    let process = self.window.get_mut((seq - first) as usize);
                    if let Some(slot) =
                        process.and_then(|p| p.counters.slot_mut(usize::from(syscall)))
                    {
                        *slot = *counters;
                    }
                }
                // Already folded: the rest of its counts go to its group.
                _ => groups.fold_late(group, syscall, counters),
            }
        }
        self.fold_overflow(groups);
    }

    /// Folds the oldest exits beyond `keep` into their groups.
    fn fold_overflow(&mut self, groups: &mut GroupTable) {
        while self.window.len() > self.keep {
            if let Some(oldest) = self.window.pop_front() {
                groups.fold(oldest.group, oldest.counters.entries());
            }
        }
    }

    /// Forgets open exits older than the matching window, counted back from `latest_ns`.
    pub fn close_older_than(&mut self, latest_ns: u64) {
        let horizon = latest_ns.saturating_sub(EXIT_RECORDS_WINDOW_NS);
        self.open.retain(|(_, exit_ns), _| *exit_ns >= horizon);
    }

    /// The exits in the window, oldest first.
    pub fn recent(&self) -> impl Iterator<Item = &ExitedProcess> {
        self.window.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::groups::Grouping;

    use crate::snapshot::fixtures::calls_and_bytes as c;

    /// Files a record, beginning its exit first when it is the first.
    fn file(
        exits: &mut Exits,
        groups: &mut GroupTable,
        (pid, exit_ns, syscall): (u32, u64, u32),
        counters: Counters,
        group: GroupId,
    ) {
        if !exits.is_open(pid, exit_ns) {
            let who = NewExit {
                pid,
                ppid: 1,
                comm: "srv".into(),
                group,
            };
            exits.begin(pid, exit_ns, who);
        }
        exits.add(pid, exit_ns, syscall, &counters, groups);
    }

    #[test]
    fn records_gather_per_exit_and_a_reused_pid_stays_apart() {
        let mut groups = GroupTable::new(Grouping::default());
        let g = groups.admit(Grouping::default().key("srv", "/"));
        let mut exits = Exits::new(10);
        file(&mut exits, &mut groups, (9, 100, 0), c(3, 30), g);
        assert!(exits.is_open(9, 100));
        file(&mut exits, &mut groups, (9, 100, 16), c(1, 4096), g);
        // The same pid, exited later: another process.
        file(&mut exits, &mut groups, (9, 200, 1), c(5, 50), g);
        let recent: Vec<&ExitedProcess> = exits.recent().collect();
        assert_eq!(recent.len(), 2);
        assert_eq!(recent.len(), exits.recent().count());
        assert_eq!((recent[0].seq, recent[1].seq), (1, 2));
        let first = &recent[0].counters;
        assert_eq!(
            (*first.syscall(0), *first.syscall(16)),
            (c(3, 30), c(1, 4096))
        );
        assert!(first.syscall(1).is_zero());
        assert_eq!(*recent[1].counters.syscall(1), c(5, 50));
        // An id past the table is ignored, not a panic; so is a record of an exit not begun.
        file(&mut exits, &mut groups, (9, 200, 999), c(1, 1), g);
        exits.add(77, 1, 0, &c(1, 1), &mut groups);
        assert_eq!(exits.recent().nth(1).unwrap().counters.entries().len(), 1);
        exits.close_older_than(100 + EXIT_RECORDS_WINDOW_NS + 1);
        assert!(!exits.is_open(9, 100) && exits.is_open(9, 200));
    }

    #[test]
    fn the_window_is_bounded_and_folds_exactly() {
        let mut groups = GroupTable::new(Grouping::default());
        let g = groups.admit(Grouping::default().key("churner", "/"));
        let mut exits = Exits::new(3);
        for pid in 1..=1000u32 {
            file(
                &mut exits,
                &mut groups,
                (pid, u64::from(pid), 1),
                c(1, 1000),
                g,
            );
        }
        // A late record of a process already folded goes to its group.
        file(&mut exits, &mut groups, (1, 1, 0), c(1, 7), g);
        let recent: Vec<u32> = exits.recent().map(|p| p.pid).collect();
        assert_eq!(recent, [998, 999, 1000]);
        let group = &groups.groups()[g as usize];
        assert_eq!(group.exited, 997);
        assert_eq!(group.counters.syscall(1).bytes, 997 * 1000);
        assert_eq!(group.counters.syscall(0).bytes, 7);
    }

    #[test]
    fn a_window_of_none_folds_at_once() {
        let mut groups = GroupTable::new(Grouping::default());
        let g = groups.admit(Grouping::default().key("x", "/"));
        let mut exits = Exits::new(0);
        file(&mut exits, &mut groups, (5, 1, 0), c(1, 10), g);
        file(&mut exits, &mut groups, (5, 1, 1), c(2, 20), g);
        assert_eq!(exits.recent().count(), 0);
        let group = &groups.groups()[g as usize];
        assert_eq!(
            (
                group.exited,
                group.counters.syscall(0).bytes,
                group.counters.syscall(1).bytes
            ),
            (1, 10, 20)
        );
    }
}
