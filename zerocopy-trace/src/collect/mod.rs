//! Reading the kernel maps into plain data: live counters, final counts of exited processes,
//! and drop counts. Everything after this module works on `Snapshot`s, not maps.
//!
//! Exited processes do not pile up: the most recent are kept one by one (`exits`), older ones
//! are folded into the totals of their group (`groups`: name and systemd unit), so memory is
//! the same after a million exits as after a thousand.

mod exits;
pub mod groups;

use std::collections::{BTreeMap, HashMap, HashSet};

use anyhow::{Context, Result};
use aya::maps::{IterableMap, MapData, RingBuf};
use zerocopy_trace_common::{
    drop_reason, hot, Counters, DropCounters, ExitRecord, HotCounters, ProcKey, ID_COUNT,
};

use self::{
    exits::{Exits, NewExit},
    groups::{Group, GroupId, GroupTable, Grouping},
};
use crate::{
    attach::Maps,
    cgroup::{self, CgroupPaths},
    map_batch::{self, PerCpuEntries},
    model::ProcessCounters,
    procfs::{self, ProcessInfo},
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

/// What the collector keeps of exited processes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Most exited processes kept one by one; older ones are folded into their group.
    pub keep_exited: usize,
    pub grouping: Grouping,
}

/// Sums per-CPU entries into per-process counters. Keys may repeat (a map iteration restarts
/// when an entry is deleted under it); a repeated key replaces, never adds.
pub fn fold_counters(
    entries: impl IntoIterator<Item = (ProcKey, Counters)>,
) -> BTreeMap<u32, ProcessCounters> {
    let mut by_key: BTreeMap<(u32, u32), Counters> = BTreeMap::new();
    for (key, counters) in entries {
        if (key.syscall as usize) < ID_COUNT {
            by_key.insert((key.tgid, key.syscall), counters);
        }
    }
    let mut out: BTreeMap<u32, ProcessCounters> = BTreeMap::new();
    for ((tgid, id), counters) in by_key {
        if let Some(slot) = out.entry(tgid).or_default().slot_mut(id as usize) {
            *slot = counters;
        }
    }
    out
}

/// `entries` (from the shared map; a repeated key replaces) with the counts of the hot slots
/// added to their owners' (a key may own a slot on each CPU). Each key once.
pub fn with_hot_slots(
    entries: impl IntoIterator<Item = (ProcKey, Counters)>,
    slots: impl IntoIterator<Item = HotCounters>,
) -> Vec<(ProcKey, Counters)> {
    let mut by_key: BTreeMap<(u32, u32), Counters> = entries
        .into_iter()
        .map(|(key, counters)| ((key.tgid, key.syscall), counters))
        .collect();
    for slot in slots {
        if let Some(key) = hot::owner_key(slot.owner) {
            by_key
                .entry((key.tgid, key.syscall))
                .or_default()
                .add(&slot.counters);
        }
    }
    by_key
        .into_iter()
        .map(|((tgid, syscall), counters)| (ProcKey { tgid, syscall }, counters))
        .collect()
}

/// Decodes one ring buffer item; `None` if it is not an `ExitRecord`'s size.
pub fn decode_exit(bytes: &[u8]) -> Option<ExitRecord> {
    if bytes.len() < std::mem::size_of::<ExitRecord>() {
        return None;
    }
    // SAFETY: the buffer holds at least size_of::<ExitRecord>() bytes; ExitRecord is plain
    // integers (any bit pattern is valid) and read_unaligned needs no alignment.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<ExitRecord>()) })
}

/// A live process as first learned: its name, parent and group stay what they were then, so
/// its counts never move from one group to another while it lives or when it exits.
#[derive(Clone, Debug)]
struct Known {
    info: ProcessInfo,
    group: GroupId,
    /// The walk of the live map that last saw it.
    seen: u64,
}

/// An exit record that arrived this long before the live map was read may still have had its
/// entries in the map while it was read (the kernel frees them just after writing the records).
const EXIT_OVERLAP_NS: u64 = 1_000_000;

/// Keeps what has been learned across reads: exited processes (recent ones, and group totals),
/// and names, parents and groups of live ones (read once from /proc, so a process that dies is
/// still named).
pub struct Collector {
    groups: GroupTable,
    exits: Exits,
    known: HashMap<u32, Known>,
    /// Walks of the live map so far: entries of `known` not seen in the last two are gone.
    walks: u64,
    cgroups: CgroupPaths,
    /// Parents learned outside the kernel's view (e.g. the command `run` forked before attach).
    parents: HashMap<u32, u32>,
}

impl Collector {
    pub fn new(retention: Retention) -> Collector {
        Collector {
            groups: GroupTable::new(retention.grouping),
            exits: Exits::new(retention.keep_exited),
            known: HashMap::new(),
            walks: 0,
            cgroups: CgroupPaths::new(),
            parents: HashMap::new(),
        }
    }

    /// Records `ppid` as the parent of `pid`, for when the kernel did not see the fork.
    pub fn remember_parent(&mut self, pid: u32, ppid: u32) {
        self.parents.insert(pid, ppid);
    }

    /// Moves every delivered exit record out of the ring buffer. Returns how many.
    pub fn drain_exits(&mut self, exits: &mut RingBuf<MapData>) -> usize {
        self.drain(exits, |_| {})
    }

    /// Drains the ring buffer, filing each record and showing it to `seen`.
    fn drain(&mut self, exits: &mut RingBuf<MapData>, mut seen: impl FnMut(&ExitRecord)) -> usize {
        let mut n = 0;
        let mut latest = 0;
        while let Some(item) = exits.next() {
            if let Some(record) = decode_exit(&item) {
                self.add_exit_record(&record);
                seen(&record);
                latest = latest.max(record.exit_ns);
                n += 1;
            }
        }
        self.exits.close_older_than(latest);
        n
    }

    /// Files one syscall's final counts under its process's exit.
    fn add_exit_record(&mut self, record: &ExitRecord) {
        if !self.exits.is_open(record.tgid, record.exit_ns) {
            let who = self.identify_exit(record);
            self.exits.begin(record.tgid, record.exit_ns, who);
        }
        self.exits.add(
            record.tgid,
            record.exit_ns,
            record.syscall,
            &record.counters,
            &mut self.groups,
        );
    }

    /// Names an exit on its first record: as it was known while alive, else from the record.
    fn identify_exit(&mut self, record: &ExitRecord) -> NewExit {
        let known = self.known.remove(&record.tgid);
        let ppid = match (record.ppid, &known) {
            (0, Some(k)) => k.info.ppid,
            (0, None) => self.parents.get(&record.tgid).copied().unwrap_or(0),
            (ppid, _) => ppid,
        };
        match known {
            Some(k) => NewExit {
                pid: record.tgid,
                ppid,
                comm: k.info.comm,
                group: k.group,
            },
            None => {
                let comm = procfs::comm_from_bytes(&record.comm);
                let path = self
                    .cgroups
                    .path_of(record.cgroup_id)
                    .unwrap_or_default()
                    .to_string();
                let key = self.groups.grouping().key(&comm, &path);
                NewExit {
                    pid: record.tgid,
                    ppid,
                    comm,
                    group: self.groups.admit(key),
                }
            }
        }
    }

    /// Learns a live process: name and parent from /proc, its group from its cgroup.
    fn learn(&mut self, pid: u32) -> Option<&Known> {
        if !self.known.contains_key(&pid) {
            // Keys of the live map are thread groups: the cheaper leader read is enough.
            let info = procfs::leader_info(pid)?;
            let path = cgroup::of_process(pid).unwrap_or_default();
            let key = self.groups.grouping().key(&info.comm, &path);
            let group = self.groups.admit(key);
            self.known.insert(
                pid,
                Known {
                    info,
                    group,
                    seen: self.walks,
                },
            );
        }
        let known = self.known.get_mut(&pid)?;
        known.seen = self.walks;
        Some(known)
    }

    /// Forgets processes the last two walks of the live map did not see (their exit record was
    /// lost, or they were never traced to the end).
    fn end_walk(&mut self) {
        let walks = self.walks;
        self.known.retain(|_, k| k.seen + 2 > walks);
        self.walks += 1;
    }

    /// Reads the live counters of every (process, id) that has any: its entry in the shared
    /// map and the hot slots it owns, summed over CPUs. The shared map is read first: a slot
    /// claimed meanwhile is in the second read, and neither ever loses counts it had.
    fn read_live(maps: &Maps) -> Vec<(ProcKey, Counters)> {
        let shared = Self::read_shared(maps);
        with_hot_slots(shared, claimed_hot_slots(maps))
    }

    /// The shared map's entries, summed over CPUs.
    fn read_shared(maps: &Maps) -> Vec<(ProcKey, Counters)> {
        if let Some(entries) = Self::read_live_batched(maps) {
            return entries
                .into_iter()
                .map(|(key, per_cpu)| (key, sum_over_cpus(per_cpu.iter())))
                .collect();
        }
        let mut entries = Vec::new();
        for item in maps.counters.iter() {
            // An entry deleted while iterating is expected (its process just exited).
            let Ok((key, per_cpu)) = item else { continue };
            entries.push((key, sum_over_cpus(per_cpu.iter())));
        }
        entries
    }

    /// The live map's entries, each CPU's counters apart, in a few syscalls where the kernel
    /// has batch lookups; `None` where it has not.
    fn read_live_batched(maps: &Maps) -> Option<PerCpuEntries<ProcKey, Counters>> {
        read_batched(maps.counters.map(), "live counters")
    }

    /// Records of the live processes among `entries`.
    fn live(&mut self, entries: Vec<(ProcKey, Counters)>) -> Vec<ProcessRecord> {
        let folded = fold_counters(entries);
        let mut out = Vec::with_capacity(folded.len());
        for (pid, counters) in folded {
            // Only successful reads are remembered: a process we could not read yet may be
            // readable next time, and one that is gone is named by its exit record.
            let (ppid, comm, group) = match self.learn(pid) {
                Some(k) => (k.info.ppid, k.info.comm.clone(), k.group),
                None => (0, "?".to_string(), groups::OTHER),
            };
            out.push(ProcessRecord {
                pid,
                ppid,
                comm,
                exited: false,
                seq: 0,
                group,
                counters,
            });
        }
        self.end_walk();
        out
    }

    /// Reads /proc once for each process with counters whose name is not known yet. In
    /// batches where it can: the values come along (a few hundred bytes per CPU and entry),
    /// but one syscall per few hundred entries costs far less than two per entry.
    pub fn learn_names(&mut self, maps: &Maps) {
        let pids: HashSet<u32> = match Self::read_live_batched(maps) {
            Some(entries) => entries.iter().map(|(key, _)| key.tgid).collect(),
            None => maps.counters.keys().flatten().map(|k| k.tgid).collect(),
        };
        for pid in pids {
            self.learn(pid);
        }
        self.end_walk();
    }

    /// Sum over CPUs of the drop counters.
    pub fn dropped(&self, maps: &Maps) -> Result<Dropped> {
        let mut out = [DropCounters::default(); drop_reason::COUNT as usize];
        for (reason, slot) in out.iter_mut().enumerate() {
            let per_cpu = maps
                .dropped
                .get(&(reason as u32), 0)
                .context("reading the drop counters")?;
            for d in per_cpu.iter() {
                slot.calls = slot.calls.wrapping_add(d.calls);
                slot.bytes = slot.bytes.wrapping_add(d.bytes);
            }
        }
        Ok(out)
    }

    /// Everything counted so far, each process exactly once. The live map is read first, then
    /// the exit records that arrived meanwhile: an exit record of a syscall whose live entry
    /// was read replaces that entry (it holds the same counts and any made since). So a
    /// process that exits while the snapshot is taken is never missing and never counted twice,
    /// and every total only grows from one snapshot to the next.
    pub fn snapshot(&mut self, maps: &mut Maps) -> Result<Snapshot> {
        self.drain_exits(&mut maps.exits);
        let reading_from = monotonic_ns().saturating_sub(EXIT_OVERLAP_NS);
        let mut entries = Self::read_live(maps);
        let mut replaced: HashSet<(u32, u32)> = HashSet::new();
        self.drain(&mut maps.exits, |record| {
            if record.exit_ns >= reading_from {
                replaced.insert((record.tgid, record.syscall));
            }
        });
        entries.retain(|(key, _)| !replaced.contains(&(key.tgid, key.syscall)));
        let mut processes = self.live(entries);
        processes.extend(self.exits.recent().map(|p| ProcessRecord {
            pid: p.pid,
            ppid: p.ppid,
            comm: p.comm.clone(),
            exited: true,
            seq: p.seq,
            group: p.group,
            counters: p.counters.clone(),
        }));
        Ok(Snapshot {
            processes,
            groups: self.groups.groups().to_vec(),
            groups_overflowed: self.groups.overflowed(),
            dropped: self.dropped(maps)?,
        })
    }
}

/// Every CPU's claimed hot slots: in one batch where the kernel has batch lookups, else slot
/// by slot.
pub fn claimed_hot_slots(maps: &Maps) -> Vec<HotCounters> {
    let slots: Vec<HotCounters> =
        match read_batched::<u32, HotCounters>(maps.hot.map(), "hot slots") {
            Some(entries) => entries
                .into_iter()
                .flat_map(|(_, per_cpu)| per_cpu)
                .collect(),
            None => (0..maps.hot.len())
                .filter_map(|i| maps.hot.get(&i, 0).ok())
                .flat_map(|per_cpu| per_cpu.iter().copied().collect::<Vec<_>>())
                .collect(),
        };
    slots.into_iter().filter(|slot| slot.owner != 0).collect()
}

/// Every entry of per-CPU map `map` (`what`, for the log), each CPU's value apart, in a few
/// syscalls (`map_batch`). `None` where the kernel has no batch lookups, the read failed, or a
/// test hook forces the one-by-one reads: the caller then reads entry by entry.
fn read_batched<K: aya::Pod, V: aya::Pod>(
    map: &MapData,
    what: &str,
) -> Option<PerCpuEntries<K, V>> {
    #[cfg(feature = "test-hooks")]
    if crate::test_hooks::entry_by_entry() {
        return None;
    }
    let cpus = aya::util::nr_cpus().ok()?;
    match map_batch::per_cpu_entries(map, cpus) {
        Ok(entries) => entries,
        Err(e) => {
            log::debug!("batch read of the {what} failed ({e}): reading one by one");
            None
        }
    }
}

/// One process's counters of one id, summed over the CPUs' slots.
fn sum_over_cpus<'a>(per_cpu: impl Iterator<Item = &'a Counters>) -> Counters {
    let mut sum = Counters::default();
    for c in per_cpu {
        sum.add(c);
    }
    sum
}

/// CLOCK_MONOTONIC in nanoseconds: the clock of `bpf_ktime_get_ns`, so of `exit_ns`.
fn monotonic_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec to write to; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    (now.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(now.tv_nsec as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(calls: u64, bytes: u64) -> Counters {
        Counters {
            calls,
            bytes,
            ..Counters::default()
        }
    }

    #[test]
    fn folds_by_process_and_replaces_repeats() {
        let folded = fold_counters([
            (
                ProcKey {
                    tgid: 7,
                    syscall: 0,
                },
                c(1, 10),
            ),
            (
                ProcKey {
                    tgid: 7,
                    syscall: 16,
                },
                c(2, 20),
            ),
            (
                ProcKey {
                    tgid: 9,
                    syscall: 1,
                },
                c(3, 30),
            ),
            // Seen again after an iteration restart: the newer value wins, nothing doubles.
            (
                ProcKey {
                    tgid: 7,
                    syscall: 0,
                },
                c(4, 40),
            ),
            // An id past the table is ignored, not a panic.
            (
                ProcKey {
                    tgid: 9,
                    syscall: 999,
                },
                c(5, 50),
            ),
        ]);
        assert_eq!(folded.len(), 2);
        assert_eq!(*folded[&7].syscall(0), c(4, 40));
        assert_eq!(*folded[&7].syscall(16), c(2, 20));
        assert_eq!(*folded[&9].syscall(1), c(3, 30));
        assert!(fold_counters([]).is_empty());
    }

    fn exit_record(tgid: u32, exit_ns: u64, syscall: u32, counters: Counters) -> ExitRecord {
        let mut comm = [0; 16];
        comm[..3].copy_from_slice(b"srv");
        ExitRecord {
            tgid,
            ppid: 1,
            syscall,
            _reserved: 0,
            exit_ns,
            cgroup_id: 0,
            comm,
            counters,
        }
    }

    #[test]
    fn exits_keep_the_group_they_lived_in_and_fold_past_the_window() {
        let mut collector = Collector::new(Retention {
            keep_exited: 1,
            grouping: Grouping::default(),
        });
        let nginx = collector
            .groups
            .admit(Grouping::default().key("nginx", "/system.slice/nginx.service"));
        let info = ProcessInfo {
            comm: "nginx".into(),
            ppid: 4,
            tgid: 5,
        };
        collector.known.insert(
            5,
            Known {
                info,
                group: nginx,
                seen: 0,
            },
        );
        // Known while alive: its exit keeps that name and group, whatever the record says (the
        // parent the kernel saw fork it wins over /proc's).
        collector.add_exit_record(&exit_record(5, 100, 0, c(1, 10)));
        collector.add_exit_record(&exit_record(5, 100, 1, c(2, 20)));
        let recent: Vec<&exits::ExitedProcess> = collector.exits.recent().collect();
        assert_eq!(recent.len(), 1);
        assert_eq!(
            (recent[0].comm.as_str(), recent[0].group, recent[0].ppid),
            ("nginx", nginx, 1)
        );
        assert!(collector.known.is_empty(), "forgotten once exited");
        // Not known: named by the record, grouped by its cgroup; the first exit is folded.
        collector.add_exit_record(&exit_record(9, 200, 0, c(1, 7)));
        let recent: Vec<&exits::ExitedProcess> = collector.exits.recent().collect();
        assert_eq!((recent[0].pid, recent[0].comm.as_str()), (9, "srv"));
        let groups = collector.groups.groups();
        assert_eq!(groups[recent[0].group as usize].key.comm, "srv");
        let folded = &groups[nginx as usize];
        assert_eq!(folded.exited, 1);
        assert_eq!(
            (
                folded.counters.syscall(0).bytes,
                folded.counters.syscall(1).bytes
            ),
            (10, 20)
        );
    }

    #[test]
    fn processes_not_seen_by_two_walks_are_forgotten() {
        let mut collector = Collector::new(Retention {
            keep_exited: 0,
            grouping: Grouping::default(),
        });
        let info = ProcessInfo {
            comm: "x".into(),
            ppid: 1,
            tgid: 3,
        };
        collector.known.insert(
            3,
            Known {
                info,
                group: groups::OTHER,
                seen: 0,
            },
        );
        collector.end_walk();
        assert!(
            collector.known.contains_key(&3),
            "seen by the walk just ended"
        );
        collector.end_walk();
        assert!(collector.known.contains_key(&3));
        collector.end_walk();
        assert!(!collector.known.contains_key(&3));
    }

    #[test]
    fn decodes_exit_records_and_rejects_short_ones() {
        let record = exit_record(42, 7, 3, c(5, 500));
        // SAFETY: viewing a plain #[repr(C)] value as bytes.
        let bytes = unsafe {
            std::slice::from_raw_parts(
                (&raw const record).cast::<u8>(),
                std::mem::size_of::<ExitRecord>(),
            )
        };
        let decoded = decode_exit(bytes).unwrap();
        assert_eq!(
            (
                decoded.tgid,
                decoded.ppid,
                decoded.syscall,
                decoded.exit_ns,
                decoded.counters
            ),
            (42, 1, 3, 7, c(5, 500))
        );
        assert!(decode_exit(&bytes[..10]).is_none());
        assert!(decode_exit(&[]).is_none());
    }

    #[test]
    fn hot_slots_add_to_their_owners_shared_counts() {
        let key = |tgid, syscall| ProcKey { tgid, syscall };
        let slot = |k: ProcKey, calls, bytes| HotCounters {
            owner: hot::owner(&k),
            counters: c(calls, bytes),
        };
        let merged = with_hot_slots(
            [
                (key(7, 1), c(1, 10)),
                // A repeat of the shared walk replaces.
                (key(7, 1), c(2, 20)),
                (key(9, 0), c(5, 50)),
            ],
            [
                // Process 7's id 1 owns a slot on two CPUs.
                slot(key(7, 1), 3, 300),
                slot(key(7, 1), 4, 4000),
                // A slot claimed after the shared map was read.
                slot(key(8, 2), 1, 1),
                // A free slot adds nothing.
                HotCounters::default(),
            ],
        );
        assert_eq!(
            merged,
            vec![
                (key(7, 1), c(9, 4320)),
                (key(8, 2), c(1, 1)),
                (key(9, 0), c(5, 50)),
            ]
        );
    }
}
