//! Reading the kernel maps into plain data: live counters, final counts of exited processes,
//! and drop counts. Everything after this module works on `Snapshot`s, not maps.
//!
//! Exited processes do not pile up: the most recent are kept one by one (`exits`), older ones
//! are folded into the totals of their group (`groups`: name and systemd unit), so memory is
//! the same after a million exits as after a thousand.

mod exits;
pub mod groups;

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use anyhow::Result;
use aya::maps::{MapData, RingBuf};
use zerocopy_trace_common::{Counters, ExecRecord, ExitRecord, ProcKey, ID_COUNT};

use self::{
    exits::{Exits, NewExit},
    groups::{GroupTable, Grouping},
};
use crate::{
    kernel::maps::Maps,
    snapshot::{
        groups::OTHER, Container, Group, GroupId, ProcessCounters, ProcessRecord, Snapshot,
    },
    system::{
        cgroup::{self, CgroupPaths},
        containers::names::NameCache,
        procfs::{self, ProcessInfo},
    },
};

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

/// Decodes one ring buffer item; `None` if it is not an `ExitRecord`'s size.
pub fn decode_exit(bytes: &[u8]) -> Option<ExitRecord> {
    if bytes.len() < std::mem::size_of::<ExitRecord>() {
        return None;
    }
    // SAFETY: the buffer holds at least size_of::<ExitRecord>() bytes; ExitRecord is plain
    // integers (any bit pattern is valid) and read_unaligned needs no alignment.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<ExitRecord>()) })
}

/// Decodes one exec ring buffer item; `None` if it is not an `ExecRecord`'s size.
pub fn decode_exec(bytes: &[u8]) -> Option<ExecRecord> {
    if bytes.len() < std::mem::size_of::<ExecRecord>() {
        return None;
    }
    // SAFETY: as in `decode_exit`: enough bytes, plain integers, an unaligned read.
    Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<ExecRecord>()) })
}

/// A live process as first learned: its parent and group stay what they were then, so its
/// counts never move from one group to another while it lives or when it exits. Its name
/// follows its execs (`rename`).
#[derive(Clone, Debug)]
struct LiveProcess {
    info: ProcessInfo,
    group: GroupId,
    /// The walk of the live map that last saw it.
    seen: u64,
    /// When /proc was read for it (CLOCK_MONOTONIC): an exec before then is in that name.
    learned_ns: u64,
}

/// An exit record that arrived this long before the live map was read may still have had its
/// entries in the map while it was read (the kernel frees them just after writing the records).
const EXIT_OVERLAP_NS: u64 = 1_000_000;

/// Keeps what has been learned across reads: exited processes (recent ones, and group totals),
/// and names, parents and groups of live ones (read once from /proc, so a process that dies is
/// still named).
pub struct Collector {
    groups: GroupTable,
    /// The names container runtimes give the containers of the groups.
    names: NameCache,
    exits: Exits,
    known: HashMap<u32, LiveProcess>,
    /// Walks of the live map so far: entries of `known` not seen in the last two are gone.
    walks: u64,
    cgroups: CgroupPaths,
    /// Parents learned outside the kernel's view (e.g. the command `run` forked before attach).
    parents: HashMap<u32, u32>,
}

impl Collector {
    /// A collector keeping `retention`, naming containers from what `names` learns.
    pub fn new(retention: Retention, names: NameCache) -> Collector {
        Collector {
            groups: GroupTable::new(retention.grouping),
            names,
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

    /// Renames the live processes that exec'd, from every record in the exec ring buffer.
    /// Returns how many records there were.
    pub fn drain_execs(&mut self, execs: &mut RingBuf<MapData>) -> usize {
        let mut n = 0;
        while let Some(item) = execs.next() {
            if let Some(record) = decode_exec(&item) {
                self.rename(&record);
                n += 1;
            }
        }
        n
    }

    /// A process exec'd: a known one is named after its new program from now on (its group
    /// stays: counts never move between groups). One not known yet is named when it is
    /// learned, from /proc, after the exec; one learned after the exec has the new name
    /// already, and a pid reused since is another process, which is left alone.
    fn rename(&mut self, record: &ExecRecord) {
        if let Some(known) = self.known.get_mut(&record.tgid) {
            if record.exec_ns >= known.learned_ns {
                known.info.comm = procfs::comm_from_bytes(&record.comm);
                log::debug!("pid {} exec'd: named {}", record.tgid, known.info.comm);
            }
        }
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

    /// Names an exit on its first record: by the record's name, its thread group leader's as
    /// it exited (the program after its last exec, whatever its threads called themselves),
    /// in the group it lived in if it was known alive, else in the group of that name.
    fn identify_exit(&mut self, record: &ExitRecord) -> NewExit {
        let known = self.known.remove(&record.tgid);
        let ppid = match (record.ppid, &known) {
            (0, Some(k)) => k.info.ppid,
            (0, None) => self.parents.get(&record.tgid).copied().unwrap_or(0),
            (ppid, _) => ppid,
        };
        let comm = procfs::comm_from_bytes(&record.comm);
        match known {
            Some(k) => NewExit {
                pid: record.tgid,
                ppid,
                comm: if comm.is_empty() { k.info.comm } else { comm },
                group: k.group,
            },
            None => {
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
    fn learn(&mut self, pid: u32) -> Option<&LiveProcess> {
        if !self.known.contains_key(&pid) {
            let learned_ns = monotonic_ns();
            // Keys of the live map are thread groups: the cheaper leader read is enough.
            let info = procfs::leader_info(pid)?;
            log::debug!("learned pid {pid}: {}", info.comm);
            let path = cgroup::of_process(pid).unwrap_or_default();
            let key = self.groups.grouping().key(&info.comm, &path);
            if let Some(container) = &key.container {
                // Asked now, so the names are there by the next snapshot.
                self.names.names(&container.id);
            }
            let group = self.groups.admit(key);
            self.known.insert(
                pid,
                LiveProcess {
                    info,
                    group,
                    seen: self.walks,
                    learned_ns,
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

    /// Records of the live processes among `entries`.
    fn live(&mut self, entries: Vec<(ProcKey, Counters)>) -> Vec<ProcessRecord> {
        let folded = fold_counters(entries);
        let mut out = Vec::with_capacity(folded.len());
        for (pid, counters) in folded {
            // Only successful reads are remembered: a process we could not read yet may be
            // readable next time, and one that is gone is named by its exit record.
            let (ppid, comm, group) = match self.learn(pid) {
                Some(k) => (k.info.ppid, k.info.comm.clone(), k.group),
                None => (0, "?".to_string(), OTHER),
            };
            out.push(ProcessRecord {
                pid,
                ppid,
                comm,
                exited: false,
                seq: 0,
                group,
                container: None,
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
        for pid in maps.live_processes() {
            self.learn(pid);
        }
        self.end_walk();
    }

    /// Everything counted so far, each process exactly once. The live map is read first, then
    /// the exit records that arrived meanwhile: an exit record of a syscall whose live entry
    /// was read replaces that entry (it holds the same counts and any made since). So a
    /// process that exits while the snapshot is taken is never missing and never counted twice,
    /// and every total only grows from one snapshot to the next.
    pub fn snapshot(&mut self, maps: &mut Maps) -> Result<Snapshot> {
        self.drain_execs(&mut maps.execs);
        self.drain_exits(&mut maps.exits);
        let reading_from = monotonic_ns().saturating_sub(EXIT_OVERLAP_NS);
        let mut entries = maps.live_counters();
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
            container: None,
            counters: p.counters.clone(),
        }));
        let groups = self.named_groups();
        for p in &mut processes {
            p.container = groups
                .get(p.group as usize)
                .and_then(|g| g.container.clone());
        }
        Ok(Snapshot {
            processes,
            groups,
            groups_overflowed: self.groups.overflowed(),
            dropped: maps.dropped()?,
        })
    }

    /// Starts the names helper, which asks the container runtimes for the agent: while the
    /// trace still has root's uid, before it drops its privileges.
    pub fn start_names_helper(&mut self) {
        self.names.start_helper();
    }

    /// Starts asking for container names (in the background): once the trace has dropped its
    /// capabilities, which the asking thread then does not have either.
    pub fn start_container_names(&mut self) {
        self.names.start();
    }

    /// Names the containers of `snapshot` again once the runtimes answered what was asked,
    /// waiting at most `wait` for them: for the last snapshot of a trace, whose processes may
    /// have been learned by that snapshot itself.
    pub fn name_containers(&self, snapshot: &mut Snapshot, wait: Duration) {
        let unnamed = snapshot
            .groups
            .iter()
            .any(|g| g.container.as_ref().is_some_and(|c| c.names.is_none()));
        if !unnamed {
            return;
        }
        self.names.settle(wait);
        let groups = self.named_groups();
        for p in &mut snapshot.processes {
            p.container = groups
                .get(p.group as usize)
                .and_then(|g| g.container.clone());
        }
        for (group, named) in snapshot.groups.iter_mut().zip(groups) {
            group.container = named.container;
        }
    }

    /// Every group, with its container's names as known now.
    fn named_groups(&self) -> Vec<Group> {
        self.groups
            .groups()
            .iter()
            .map(|g| {
                let mut g = g.clone();
                g.container = g.key.container.as_ref().map(|id| {
                    Arc::new(Container {
                        id: id.clone(),
                        names: self.names.names(&id.id),
                    })
                });
                g
            })
            .collect()
    }
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

    use crate::{snapshot::fixtures::calls_and_bytes as c, system::containers::Sources};

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

    fn comm(name: &str) -> [u8; 16] {
        let mut comm = [0; 16];
        comm[..name.len()].copy_from_slice(name.as_bytes());
        comm
    }

    fn exit_record(tgid: u32, exit_ns: u64, syscall: u32, counters: Counters) -> ExitRecord {
        named_exit_record("srv", tgid, exit_ns, syscall, counters)
    }

    fn named_exit_record(
        name: &str,
        tgid: u32,
        exit_ns: u64,
        syscall: u32,
        counters: Counters,
    ) -> ExitRecord {
        let comm = comm(name);
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
        let mut collector = Collector::new(
            Retention {
                keep_exited: 1,
                grouping: Grouping::default(),
            },
            NameCache::new(Sources::none()),
        );
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
            LiveProcess {
                info,
                group: nginx,
                seen: 0,
                learned_ns: 0,
            },
        );
        // Known while alive: its exit keeps that group (the parent the kernel saw fork it wins
        // over /proc's), and takes the record's name, its leader's as it exited.
        collector.add_exit_record(&named_exit_record("nginx", 5, 100, 0, c(1, 10)));
        collector.add_exit_record(&named_exit_record("nginx", 5, 100, 1, c(2, 20)));
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

    /// `sh -c '...; exec cp a b'`: learned as `sh`, renamed by the exec record after it was
    /// learned, and named `cp` at its exit even where that record was lost; its counts stay in
    /// the group it was first counted in.
    #[test]
    fn a_process_is_named_after_the_program_it_exec_d() {
        let mut collector = Collector::new(
            Retention {
                keep_exited: 4,
                grouping: Grouping::default(),
            },
            NameCache::new(Sources::none()),
        );
        let sh = collector.groups.admit(Grouping::default().key("sh", ""));
        let learned = |pid, learned_ns| LiveProcess {
            info: ProcessInfo {
                comm: "sh".into(),
                ppid: 1,
                tgid: pid,
            },
            group: sh,
            seen: 0,
            learned_ns,
        };
        let exec = |tgid, exec_ns| ExecRecord {
            tgid,
            _reserved: 0,
            exec_ns,
            comm: comm("cp"),
        };
        collector.known.insert(7, learned(7, 100));
        collector.rename(&exec(7, 150));
        assert_eq!(collector.known[&7].info.comm, "cp");
        assert_eq!(collector.known[&7].group, sh);
        // An exec before /proc was read is in that name already: a pid reused since, learned
        // after the exec, keeps the name it was learned with.
        collector.known.insert(8, learned(8, 200));
        collector.rename(&exec(8, 150));
        assert_eq!(collector.known[&8].info.comm, "sh");
        // Not known: nothing to rename (it is named from /proc when learned).
        collector.rename(&exec(9, 150));
        assert!(!collector.known.contains_key(&9));
        // Its exec record lost: the exit record's leader name wins over the stale one.
        collector.add_exit_record(&named_exit_record("cp", 8, 300, 0, c(1, 64)));
        let exited = collector.exits.recent().find(|p| p.pid == 8).unwrap();
        assert_eq!((exited.comm.as_str(), exited.group), ("cp", sh));
        // A record with no name (the kernel could not read one) keeps the known one.
        collector.add_exit_record(&named_exit_record("", 7, 400, 0, c(1, 64)));
        let exited = collector.exits.recent().find(|p| p.pid == 7).unwrap();
        assert_eq!(exited.comm, "cp");
    }

    #[test]
    fn decodes_exec_records_and_rejects_short_ones() {
        let record = ExecRecord {
            tgid: 42,
            _reserved: 0,
            exec_ns: 9,
            comm: comm("java"),
        };
        // SAFETY: viewing a plain #[repr(C)] value as bytes.
        let bytes = unsafe {
            std::slice::from_raw_parts(
                (&raw const record).cast::<u8>(),
                std::mem::size_of::<ExecRecord>(),
            )
        };
        let decoded = decode_exec(bytes).unwrap();
        assert_eq!((decoded.tgid, decoded.exec_ns), (42, 9));
        assert_eq!(procfs::comm_from_bytes(&decoded.comm), "java");
        assert!(decode_exec(&bytes[..31]).is_none());
        assert!(decode_exec(&[]).is_none());
    }

    #[test]
    fn processes_not_seen_by_two_walks_are_forgotten() {
        let mut collector = Collector::new(
            Retention {
                keep_exited: 0,
                grouping: Grouping::default(),
            },
            NameCache::new(Sources::none()),
        );
        let info = ProcessInfo {
            comm: "x".into(),
            ppid: 1,
            tgid: 3,
        };
        collector.known.insert(
            3,
            LiveProcess {
                info,
                group: OTHER,
                seen: 0,
                learned_ns: 0,
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
}
