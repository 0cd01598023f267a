//! Process lifecycle: following children at fork, and at exit freeing per-thread state and
//! delivering a process's final counts once, then freeing them, so a reused pid starts at zero.

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid,
        bpf_ktime_get_ns, bpf_map_lookup_percpu_elem,
    },
    macros::tracepoint,
    programs::TracePointContext,
};
use aya_log_ebpf::warn;
use core::ptr::read_volatile;

use zerocopy_trace_common::{
    drop_reason, hot, Counters, ExitRecord, HotCounters, ProcKey, ID_COUNT,
};

use crate::{
    config,
    counters::dropped_batch,
    hot_slot,
    maps::{EXITS, HOT_COUNTERS, PARENTS, PENDING, PROC_COUNTERS, TRACED},
    syscall::is_traced,
};

#[tracepoint]
pub fn process_fork(ctx: TracePointContext) -> u32 {
    on_fork(&ctx);
    0
}

#[inline(always)]
fn on_fork(ctx: &TracePointContext) {
    // SAFETY: `child_pid` is a pid_t at the configured offset of sched_process_fork.
    let Ok(child) = (unsafe { ctx.read_at::<i32>(config::fork_child_pid_offset()) }) else {
        return;
    };
    let child = child as u32;
    // The tracepoint runs in the parent, so the current tgid is the parent process.
    let parent = (bpf_get_current_pid_tgid() >> 32) as u32;
    if !is_traced(parent) {
        return;
    }
    // Metadata only (the ppid shown for processes that exit): a full map loses no count.
    let _ = PARENTS.insert(child, parent, 0);
    if config::filter_enabled()
        && config::follow_children()
        && TRACED.insert(child, 1, BPF_NOEXIST.into()).is_err()
    {
        // SAFETY: presence test only.
        if unsafe { TRACED.get(child) }.is_none() {
            dropped_batch(drop_reason::UNFOLLOWED_CHILDREN, 1, 0);
            warn!(
                ctx,
                "traced-process map full: child {} of {} not followed", child, parent
            );
        }
    }
}

#[tracepoint]
pub fn process_exec(ctx: TracePointContext) -> u32 {
    on_exec(&ctx);
    0
}

/// `--comm NAME`: a process that execs under a traced name joins the traced set, so servers
/// started after attach are followed too. Runs after exec set the new name.
#[inline(always)]
fn on_exec(ctx: &TracePointContext) {
    if !config::filter_enabled() || config::comm(0).is_none() {
        return;
    }
    let Ok(comm) = bpf_get_current_comm() else {
        return;
    };
    let mut i = 0;
    while let Some(name) = config::comm(i) {
        if name == comm {
            let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
            if TRACED.insert(tgid, 1, 0).is_err() {
                warn!(ctx, "traced-process map full: {} not followed", tgid);
            }
            return;
        }
        i += 1;
    }
}

#[tracepoint]
pub fn process_exit(ctx: TracePointContext) -> u32 {
    on_exit(&ctx);
    0
}

#[inline(always)]
fn on_exit(ctx: &TracePointContext) {
    // SAFETY: `pid` and `group_dead` are at the configured offsets of sched_process_exit.
    let Ok(pid) = (unsafe { ctx.read_at::<i32>(config::exit_pid_offset()) }) else {
        return;
    };
    // SAFETY: as above.
    let group_dead = unsafe { ctx.read_at::<u8>(config::exit_group_dead_offset()) }.unwrap_or(0);
    let pid = pid as u32;
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;

    let _ = PENDING.remove(pid);
    if pid != tgid {
        // A thread: its entries are per-thread. The leader's stay until the group is dead.
        let _ = PARENTS.remove(pid);
        let _ = TRACED.remove(pid);
    }
    if group_dead == 0 {
        return;
    }
    if is_traced(tgid) {
        deliver_final_counts(tgid);
    }
    let _ = PARENTS.remove(tgid);
    let _ = TRACED.remove(tgid);
}

/// Moves the process's counters out of `PROC_COUNTERS` and the hot slots: each used id's
/// per-CPU values and slots are summed into one `ExitRecord` on the ring buffer, then freed.
/// What does not fit in the ring buffer is counted as dropped (`exit_lost`, in every report). No kernel log line here: the
/// logging macro doubled this program's size and tripled its verification time, which every
/// start pays.
#[inline(always)]
fn deliver_final_counts(tgid: u32) {
    let nr_cpus = config::nr_cpus();
    // SAFETY: reading a map value of our own; a missing parent is 0.
    let ppid = unsafe { PARENTS.get(tgid) }.copied().unwrap_or(0);
    let comm = bpf_get_current_comm().unwrap_or([0; 16]);
    // SAFETY: the helper has no preconditions.
    let exit_ns = unsafe { bpf_ktime_get_ns() };
    // SAFETY: the helper has no preconditions (0 where cgroup v2 is not mounted).
    let cgroup_id = unsafe { bpf_get_current_cgroup_id() };
    for id in 0..ID_COUNT as u32 {
        let key = ProcKey { tgid, syscall: id };
        // Per-CPU entries exist on every CPU or on none: absent on CPU 0 means unused.
        if percpu_counters(&key, 0).is_null() {
            continue;
        }
        match EXITS.reserve::<ExitRecord>(0) {
            Some(mut entry) => {
                let record = entry.as_mut_ptr();
                // SAFETY: `record` points to ring buffer memory reserved for one ExitRecord;
                // every field is written before submit (the counters by `sum_counters`).
                unsafe {
                    (*record).tgid = tgid;
                    (*record).ppid = ppid;
                    (*record).syscall = id;
                    (*record)._reserved = 0;
                    (*record).exit_ns = exit_ns;
                    (*record).cgroup_id = cgroup_id;
                    (*record).comm = comm;
                    sum_counters(&key, nr_cpus, &raw mut (*record).counters);
                    take_hot_slots(&key, nr_cpus, |hot| (*record).counters.add(hot));
                }
                entry.submit(0);
            }
            None => {
                let (mut calls, mut bytes) = sum_calls_and_bytes(&key, nr_cpus);
                take_hot_slots(&key, nr_cpus, |hot| {
                    calls = calls.wrapping_add(hot.calls);
                    bytes = bytes.wrapping_add(hot.bytes);
                });
                dropped_batch(drop_reason::EXIT_LOST, calls, bytes);
            }
        }
        let _ = PROC_COUNTERS.remove(key);
    }
}

/// Shows `take` the counters of every CPU's hot slot `key` owns, then frees the slot (no
/// thread of the process is left to count in it).
#[inline(always)]
fn take_hot_slots(key: &ProcKey, nr_cpus: u32, mut take: impl FnMut(&Counters)) {
    let owner = hot::owner(key);
    let index = hot::index(key, config::hot_slot_bits());
    let mut cpu = 0u32;
    while cpu < nr_cpus {
        let slot: *mut HotCounters = percpu_value(&raw const HOT_COUNTERS, &index, cpu);
        if slot.is_null() {
            break;
        }
        // SAFETY: non-null: a live element of a per-CPU array, 8-byte aligned; its owner, if
        // `key`, has no thread left.
        unsafe {
            if read_volatile(&raw const (*slot).owner) == owner {
                take(&(*slot).counters);
                hot_slot::free(slot);
            }
        }
        cpu += 1;
    }
}

/// This CPU slot's counters of `key` in `PROC_COUNTERS`, or null.
#[inline(always)]
fn percpu_counters(key: &ProcKey, cpu: u32) -> *const Counters {
    percpu_value(&raw const PROC_COUNTERS, key, cpu)
}

/// CPU `cpu`'s value of `key` in per-CPU map `map`, or null. `K` and `V` must be the map's
/// key and value types.
#[inline(always)]
fn percpu_value<M, K, V>(map: *const M, key: &K, cpu: u32) -> *mut V {
    // SAFETY: the helper takes the map and a pointer to a key of its key type; it returns null
    // or a pointer to that CPU's value.
    unsafe {
        bpf_map_lookup_percpu_elem(
            map as *mut core::ffi::c_void,
            key as *const K as *const core::ffi::c_void,
            cpu,
        )
    }
    .cast()
}

/// Every CPU's counters of `key`, added up into `out`. CPU 0's are copied in with one helper
/// call (the entry exists on every CPU): zeroing 224 bytes first would cost the verifier a
/// byte loop per id.
///
/// # Safety
/// `out` points to writable memory for one `Counters`.
#[inline(always)]
unsafe fn sum_counters(key: &ProcKey, nr_cpus: u32, out: *mut Counters) {
    let first = percpu_counters(key, 0);
    // SAFETY: `first` is null or a live value; a failed read leaves zeroes (the helper clears
    // the destination on error).
    unsafe {
        let _ = aya_ebpf::helpers::bpf_probe_read_kernel_buf(
            first as *const u8,
            core::slice::from_raw_parts_mut(out as *mut u8, core::mem::size_of::<Counters>()),
        );
    }
    let mut cpu = 1u32;
    while cpu < nr_cpus {
        let value = percpu_counters(key, cpu);
        if value.is_null() {
            break;
        }
        // SAFETY: non-null: a valid Counters of a live entry; `out` as the caller guarantees.
        unsafe { (*out).add(&*value) };
        cpu += 1;
    }
}

/// Calls and bytes of `key` over every CPU: what a lost exit record is counted as.
#[inline(always)]
fn sum_calls_and_bytes(key: &ProcKey, nr_cpus: u32) -> (u64, u64) {
    let (mut calls, mut bytes) = (0u64, 0u64);
    let mut cpu = 0u32;
    while cpu < nr_cpus {
        let value = percpu_counters(key, cpu);
        if value.is_null() {
            break;
        }
        // SAFETY: non-null: a valid Counters of a live entry.
        unsafe {
            calls = calls.wrapping_add((*value).calls);
            bytes = bytes.wrapping_add((*value).bytes);
        }
        cpu += 1;
    }
    (calls, bytes)
}
