//! The maps the agent reads, and how it reads them: the live counters (the shared hash and the
//! hot slots in front of it), the drop counters (per CPU, summed here), and what is left in
//! each map. Batched where the kernel has batch lookups (`map_batch`), entry by entry where not.

use std::collections::{BTreeMap, HashSet};

use anyhow::{anyhow, Context, Result};
use aya::{
    maps::{Array, HashMap, IterableMap, MapData, PerCpuArray, RingBuf},
    Ebpf,
};
use zerocopy_trace_common::{
    drop_reason, hot, names, Counters, DropCounters, HotCounters, InflightOp, PendingCall, ProcKey,
};

use super::map_batch;
use crate::snapshot::{Dropped, Occupancy};

/// The maps the agent reads, owned apart from the programs so they stay readable after detach.
pub struct Maps {
    pub counters: HashMap<MapData, ProcKey, Counters>,
    /// The hot slots, in front of `counters` (see `zerocopy_trace_common::hot`).
    pub hot: Array<MapData, HotCounters>,
    pub traced: HashMap<MapData, u32, u32>,
    /// Final counts of exited processes; read as soon as they arrive.
    pub exits: RingBuf<MapData>,
    /// The names traced processes took at exec; read as soon as they arrive.
    pub execs: RingBuf<MapData>,
    pub dropped: PerCpuArray<MapData, DropCounters>,
    /// Held to count what is left in them (`occupancy`): the agent never writes them.
    pub pending: HashMap<MapData, u32, PendingCall>,
    pub parents: HashMap<MapData, u32, u32>,
    pub io_uring_inflight: HashMap<MapData, u64, InflightOp>,
}

impl Maps {
    /// Takes every map the agent reads out of the loaded object.
    pub(super) fn take(ebpf: &mut Ebpf) -> Result<Maps> {
        let mut take = |name: &str| {
            ebpf.take_map(name)
                .ok_or_else(|| anyhow!("map {name} missing from the eBPF object"))
        };
        Ok(Maps {
            counters: HashMap::try_from(take(names::MAP_PROC_COUNTERS)?)?,
            hot: Array::try_from(take(names::MAP_HOT_COUNTERS)?)?,
            traced: HashMap::try_from(take(names::MAP_TRACED)?)?,
            exits: RingBuf::try_from(take(names::MAP_EXITS)?)?,
            execs: RingBuf::try_from(take(names::MAP_EXECS)?)?,
            dropped: PerCpuArray::try_from(take(names::MAP_DROPPED)?)?,
            pending: HashMap::try_from(take(names::MAP_PENDING)?)?,
            parents: HashMap::try_from(take(names::MAP_PARENTS)?)?,
            io_uring_inflight: HashMap::try_from(take(names::MAP_IO_URING_INFLIGHT)?)?,
        })
    }

    /// Counts the entries of every per-process and per-thread map (a walk of the keys), and the
    /// hot slots still claimed.
    pub fn occupancy(&self) -> Occupancy {
        Occupancy {
            counters: self.counters.keys().flatten().count(),
            hot: self.claimed_hot_slots().len(),
            pending: self.pending.keys().flatten().count(),
            traced: self.traced.keys().flatten().count(),
            parents: self.parents.keys().flatten().count(),
            io_uring: self.io_uring_inflight.keys().flatten().count(),
        }
    }

    /// The live counters of every (process, id) that has any: its entry in the shared map and
    /// the hot slot it owns. The shared map is read first: a slot claimed meanwhile is in the
    /// second read, and neither ever loses counts it had.
    pub fn live_counters(&self) -> Vec<(ProcKey, Counters)> {
        let shared = self.shared_counters();
        with_hot_slots(shared, self.claimed_hot_slots())
    }

    /// The processes with an entry in the shared map. In batches where it can: the values come
    /// along (a few hundred bytes an entry), but one syscall per few hundred entries costs far
    /// less than two per entry.
    pub fn live_processes(&self) -> HashSet<u32> {
        match self.shared_batched() {
            Some(entries) => entries.iter().map(|(key, _)| key.tgid).collect(),
            None => self.counters.keys().flatten().map(|k| k.tgid).collect(),
        }
    }

    /// Sum over CPUs of the drop counters.
    pub fn dropped(&self) -> Result<Dropped> {
        let mut out = [DropCounters::default(); drop_reason::COUNT as usize];
        for (reason, slot) in out.iter_mut().enumerate() {
            let per_cpu = self
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

    /// The claimed hot slots: in one batch where the kernel has batch lookups, else slot by
    /// slot.
    pub fn claimed_hot_slots(&self) -> Vec<HotCounters> {
        let slots: Vec<HotCounters> =
            match read_batched::<u32, HotCounters>(self.hot.map(), "hot slots") {
                Some(entries) => entries.into_iter().map(|(_, slot)| slot).collect(),
                None => (0..self.hot.len())
                    .filter_map(|i| self.hot.get(&i, 0).ok())
                    .collect(),
            };
        slots.into_iter().filter(|slot| slot.owner != 0).collect()
    }

    /// The shared map's entries.
    fn shared_counters(&self) -> Vec<(ProcKey, Counters)> {
        if let Some(entries) = self.shared_batched() {
            return entries;
        }
        // An entry deleted while iterating is expected (its process just exited).
        self.counters.iter().flatten().collect()
    }

    /// The shared map's entries in a few syscalls where the kernel has batch lookups; `None`
    /// where it has not.
    fn shared_batched(&self) -> Option<Vec<(ProcKey, Counters)>> {
        read_batched(self.counters.map(), "live counters")
    }
}

/// `entries` (from the shared map; a repeated key replaces) with the counts of the hot slots
/// added to their owners'. Each key once.
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

/// Every entry of map `map` (`what`, for the log) in a few syscalls (`map_batch`). `None`
/// where the kernel has no batch lookups, the read failed, or a test hook forces the
/// one-by-one reads: the caller then reads entry by entry.
fn read_batched<K: aya::Pod, V: aya::Pod>(map: &MapData, what: &str) -> Option<Vec<(K, V)>> {
    #[cfg(feature = "test-hooks")]
    if crate::test_hooks::entry_by_entry() {
        return None;
    }
    match map_batch::entries(map) {
        Ok(entries) => entries,
        Err(e) => {
            log::debug!("batch read of the {what} failed ({e}): reading one by one");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::snapshot::fixtures::calls_and_bytes as c;

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
                // Process 7's id 1 owns a slot.
                slot(key(7, 1), 7, 4300),
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
