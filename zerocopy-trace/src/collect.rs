//! Reading the kernel maps into plain data: live counters, final counts of exited processes,
//! and drop counts. Everything after this module works on `Snapshot`s, not maps.

use std::collections::{BTreeMap, HashMap};

use anyhow::{Context, Result};
use aya::maps::{MapData, RingBuf};
use zerocopy_trace_common::{
    drop_reason, Counters, DropCounters, ExitRecord, ProcKey, SYSCALL_COUNT,
};

use crate::{
    attach::Maps,
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
    pub counters: ProcessCounters,
}

/// Counts that could not be attributed, by reason (`drop_reason`).
pub type Dropped = [DropCounters; drop_reason::COUNT as usize];

/// Everything counted so far.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    pub processes: Vec<ProcessRecord>,
    pub dropped: Dropped,
}

/// Sums per-CPU entries into per-process counters. Keys may repeat (a map iteration restarts
/// when an entry is deleted under it); a repeated key replaces, never adds.
pub fn fold_counters(
    entries: impl IntoIterator<Item = (ProcKey, Counters)>,
) -> BTreeMap<u32, ProcessCounters> {
    let mut by_key: BTreeMap<(u32, u32), Counters> = BTreeMap::new();
    for (key, counters) in entries {
        if (key.syscall as usize) < SYSCALL_COUNT {
            by_key.insert((key.tgid, key.syscall), counters);
        }
    }
    let mut out: BTreeMap<u32, ProcessCounters> = BTreeMap::new();
    for ((tgid, syscall), counters) in by_key {
        out.entry(tgid).or_default().syscalls[syscall as usize] = counters;
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

/// Final counts of an exited process, kept compact: only the syscalls it used (a full record
/// is some 4 KiB, most processes use 2 to 5 of the 21 syscalls, and a long trace keeps one per
/// process that ever exited).
#[derive(Clone, Debug)]
struct ExitedProcess {
    pid: u32,
    ppid: u32,
    comm: String,
    syscalls: Vec<(u8, Counters)>,
}

impl ExitedProcess {
    fn record(&self) -> ProcessRecord {
        let mut counters = ProcessCounters::default();
        for (id, c) in &self.syscalls {
            if let Some(slot) = counters.syscalls.get_mut(*id as usize) {
                *slot = *c;
            }
        }
        ProcessRecord {
            pid: self.pid,
            ppid: self.ppid,
            comm: self.comm.clone(),
            exited: true,
            counters,
        }
    }
}

/// Keeps what has been learned across reads: final counts of exited processes, and names and
/// parents of live ones (read once from /proc, so a process that dies is still named).
#[derive(Default)]
pub struct Collector {
    exited: Vec<ExitedProcess>,
    /// Exits whose records may still be arriving: (tgid, exit_ns) -> index in `exited`.
    /// One exit's records are written together, so a second is plenty before forgetting it.
    open_exits: HashMap<(u32, u64), usize>,
    known: HashMap<u32, ProcessInfo>,
    /// Parents learned outside the kernel's view (e.g. the command `run` forked before attach).
    parents: HashMap<u32, u32>,
}

/// How long after an exit its records are still matched to it.
const EXIT_RECORDS_WINDOW_NS: u64 = 1_000_000_000;

impl Collector {
    /// Records `ppid` as the parent of `pid`, for when the kernel did not see the fork.
    pub fn remember_parent(&mut self, pid: u32, ppid: u32) {
        self.parents.insert(pid, ppid);
    }

    /// Moves every delivered exit record out of the ring buffer. Returns how many.
    pub fn drain_exits(&mut self, exits: &mut RingBuf<MapData>) -> usize {
        let mut n = 0;
        let mut latest = 0;
        while let Some(item) = exits.next() {
            if let Some(record) = decode_exit(&item) {
                self.add_exit_record(&record);
                latest = latest.max(record.exit_ns);
                n += 1;
            }
        }
        let horizon = latest.saturating_sub(EXIT_RECORDS_WINDOW_NS);
        self.open_exits
            .retain(|(_, exit_ns), _| *exit_ns >= horizon);
        n
    }

    /// Files one syscall's final counts under its process's exit (made on its first record).
    fn add_exit_record(&mut self, record: &ExitRecord) {
        let key = (record.tgid, record.exit_ns);
        let index = match self.open_exits.get(&key) {
            Some(&index) => index,
            None => {
                let known = self.known.remove(&record.tgid);
                let ppid = match (record.ppid, &known) {
                    (0, Some(info)) => info.ppid,
                    (0, None) => self.parents.get(&record.tgid).copied().unwrap_or(0),
                    (ppid, _) => ppid,
                };
                self.exited.push(ExitedProcess {
                    pid: record.tgid,
                    ppid,
                    comm: procfs::comm_from_bytes(&record.comm),
                    syscalls: Vec::new(),
                });
                self.open_exits.insert(key, self.exited.len() - 1);
                self.exited.len() - 1
            }
        };
        if (record.syscall as usize) < SYSCALL_COUNT {
            self.exited[index]
                .syscalls
                .push((record.syscall as u8, record.counters));
        }
    }

    /// Reads the live counters of every process that has any.
    pub fn live(&mut self, maps: &Maps) -> Result<Vec<ProcessRecord>> {
        let mut entries = Vec::new();
        for item in maps.counters.iter() {
            // An entry deleted while iterating is expected (its process just exited).
            let Ok((key, per_cpu)) = item else { continue };
            let mut sum = Counters::default();
            for c in per_cpu.iter() {
                sum.add(c);
            }
            entries.push((key, sum));
        }
        let folded = fold_counters(entries);
        Ok(folded
            .into_iter()
            .map(|(pid, counters)| {
                // Only successful reads are remembered: a process we could not read yet may
                // be readable next time, and one that is gone is named by its exit record.
                let info = match self.known.get(&pid) {
                    Some(info) => info.clone(),
                    None => match procfs::process_info(pid) {
                        Some(info) => self.known.entry(pid).or_insert(info).clone(),
                        None => ProcessInfo {
                            comm: "?".into(),
                            ppid: 0,
                            tgid: pid,
                        },
                    },
                };
                ProcessRecord {
                    pid,
                    ppid: info.ppid,
                    comm: info.comm,
                    exited: false,
                    counters,
                }
            })
            .collect())
    }

    /// Reads /proc once for each process with counters whose name is not known yet. Walks only
    /// the map's keys: values (a few hundred bytes per CPU each) are not needed for names.
    pub fn learn_names(&mut self, maps: &Maps) {
        for key in maps.counters.keys().flatten() {
            if let std::collections::hash_map::Entry::Vacant(slot) = self.known.entry(key.tgid) {
                if let Some(info) = procfs::process_info(key.tgid) {
                    slot.insert(info);
                }
            }
        }
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

    /// Exited processes' final counts plus the live ones, and the drop counts.
    pub fn snapshot(&mut self, maps: &mut Maps) -> Result<Snapshot> {
        self.drain_exits(&mut maps.exits);
        let mut processes: Vec<ProcessRecord> =
            self.exited.iter().map(ExitedProcess::record).collect();
        processes.extend(self.live(maps)?);
        Ok(Snapshot {
            processes,
            dropped: self.dropped(maps)?,
        })
    }
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
        assert_eq!(folded[&7].syscalls[0], c(4, 40));
        assert_eq!(folded[&7].syscalls[16], c(2, 20));
        assert_eq!(folded[&9].syscalls[1], c(3, 30));
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
            comm,
            counters,
        }
    }

    #[test]
    fn exit_records_gather_per_exit_and_a_reused_pid_stays_apart() {
        let mut collector = Collector::default();
        collector.add_exit_record(&exit_record(9, 100, 0, c(3, 30)));
        collector.add_exit_record(&exit_record(9, 100, 16, c(1, 4096)));
        // The same pid, exited later: another process.
        collector.add_exit_record(&exit_record(9, 200, 1, c(5, 50)));
        assert_eq!(collector.exited.len(), 2);
        let first = collector.exited[0].record();
        assert_eq!(
            (first.pid, first.ppid, first.exited, first.comm.as_str()),
            (9, 1, true, "srv")
        );
        assert_eq!(
            (first.counters.syscalls[0], first.counters.syscalls[16]),
            (c(3, 30), c(1, 4096))
        );
        assert!(first.counters.syscalls[1].is_zero());
        let second = collector.exited[1].record();
        assert_eq!(second.counters.syscalls[1], c(5, 50));
        assert!(second.counters.syscalls[0].is_zero());
        // An id past the table is ignored, not a panic.
        collector.add_exit_record(&exit_record(9, 200, 999, c(1, 1)));
        assert_eq!(collector.exited[1].syscalls.len(), 1);
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
