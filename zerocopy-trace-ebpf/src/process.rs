//! Process lifecycle: following children at fork, and at exit freeing per-thread state and
//! delivering a process's final counts once, then freeing them, so a reused pid starts at zero.
//!
//! Each program comes twice: on the raw tracepoint (`*_raw`, used wherever BTF gives the
//! task's layout) and on the classic one (the fallback). A classic tracepoint's program is
//! skipped while any other BPF work runs on its CPU (the kernel's `bpf_prog_active`), which
//! includes the agent's own map reads when the scheduler preempts them: a fork or an exit
//! missed that way is a child not followed or a process's counts never delivered. A raw
//! tracepoint's program is skipped only when it would run inside itself.

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_ktime_get_ns,
    },
    macros::{raw_tracepoint, tracepoint},
    programs::{RawTracePointContext, TracePointContext},
    EbpfContext,
};
use aya_log_ebpf::warn;
use core::ptr::read_volatile;

use zerocopy_trace_common::{
    drop_reason, hot, Counters, ExecRecord, ExitRecord, ProcKey, COMM_LEN, ID_COUNT,
};

use crate::{
    config,
    counters::dropped_batch,
    fd_kind, hot_slot,
    maps::{EXECS, EXITS, EXIT_CLAIMS, HOT_COUNTERS, PARENTS, PENDING, PROC_COUNTERS, TRACED},
    syscall::is_traced,
};

#[tracepoint]
pub fn process_fork(ctx: TracePointContext) -> u32 {
    // SAFETY: `child_pid` is a pid_t at the configured offset of sched_process_fork.
    if let Ok(child) = unsafe { ctx.read_at::<i32>(config::fork_child_pid_offset()) } {
        on_fork(&ctx, child as u32);
    }
    0
}

/// `sched_process_fork(struct task_struct *parent, struct task_struct *child)`.
#[raw_tracepoint(tracepoint = "sched_process_fork")]
pub fn process_fork_raw(ctx: RawTracePointContext) -> i32 {
    let child: u64 = ctx.arg(1);
    if let Some(pid) = fd_kind::read::<i32>(child + u64::from(config::task_pid())) {
        on_fork(&ctx, pid as u32);
    }
    0
}

#[inline(always)]
fn on_fork(ctx: &impl EbpfContext, child: u32) {
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

#[raw_tracepoint(tracepoint = "sched_process_exec")]
pub fn process_exec_raw(ctx: RawTracePointContext) -> i32 {
    on_exec(&ctx);
    0
}

/// Runs after exec set the new name, in the execing thread, which is the thread group's leader
/// by then. `--comm NAME`: a process that execs under a traced name joins the traced set, so
/// servers started after attach are followed too. A traced process's new name goes to the
/// agent (`EXECS`), which names it after the program it runs now.
#[inline(always)]
fn on_exec(ctx: &impl EbpfContext) {
    let Ok(comm) = bpf_get_current_comm() else {
        return;
    };
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if config::filter_enabled() {
        let mut i = 0;
        while let Some(name) = config::comm(i) {
            if name == comm {
                if TRACED.insert(tgid, 1, 0).is_err() {
                    warn!(ctx, "traced-process map full: {} not followed", tgid);
                }
                break;
            }
            i += 1;
        }
    }
    if !is_traced(tgid) {
        return;
    }
    // A full ring buffer leaves the old name until the process exits; nothing is counted
    // wrong.
    if let Some(mut entry) = EXECS.reserve::<ExecRecord>(0) {
        let record = entry.as_mut_ptr();
        // SAFETY: `record` points to ring buffer memory reserved for one ExecRecord; every
        // field is written before submit.
        unsafe {
            (*record).tgid = tgid;
            (*record)._reserved = 0;
            (*record).exec_ns = bpf_ktime_get_ns();
            (*record).comm = comm;
        }
        entry.submit(0);
    }
}

#[tracepoint]
pub fn process_exit(ctx: TracePointContext) -> u32 {
    let group_dead_offset = config::exit_group_dead_offset();
    let group_dead = if group_dead_offset != 0 {
        // SAFETY: `group_dead` is a bool at the configured offset of sched_process_exit.
        Some(unsafe { ctx.read_at::<u8>(group_dead_offset) }.unwrap_or(0) != 0)
    } else {
        None
    };
    on_exit(group_dead);
    0
}

/// `sched_process_exit(struct task_struct *p)`, with `bool group_dead` after it from 6.16 on.
#[raw_tracepoint(tracepoint = "sched_process_exit")]
pub fn process_exit_raw(ctx: RawTracePointContext) -> i32 {
    let group_dead = if config::exit_group_dead_offset() != 0 {
        Some(ctx.arg::<u64>(1) & 0xff != 0)
    } else {
        None
    };
    on_exit(group_dead);
    0
}

/// The exit of the current thread; `group_dead` as the tracepoint says, `None` where it does
/// not (before 6.16).
#[inline(always)]
fn on_exit(group_dead: Option<bool>) {
    // The exiting task is the current one, as sched_process_exit's `pid` is.
    let pid_tgid = bpf_get_current_pid_tgid();
    let pid = pid_tgid as u32;
    let tgid = (pid_tgid >> 32) as u32;

    let _ = PENDING.remove(pid);
    if pid != tgid {
        // A thread: its entries are per-thread. The leader's stay until the group is dead.
        let _ = PARENTS.remove(pid);
        let _ = TRACED.remove(pid);
    }
    let claimed = match group_dead {
        // The kernel says which thread was the last: exactly one delivers.
        Some(dead) => {
            if !dead {
                return;
            }
            false
        }
        None => {
            if !last_live_thread() {
                return;
            }
            match claim_delivery(tgid) {
                Claim::Won => true,
                Claim::Taken => return,
                Claim::Unavailable => false,
            }
        }
    };
    if is_traced(tgid) {
        deliver_final_counts(tgid);
    }
    let _ = PARENTS.remove(tgid);
    let _ = TRACED.remove(tgid);
    if claimed {
        let _ = EXIT_CLAIMS.remove(tgid);
    }
}

/// What `claim_delivery` found.
enum Claim {
    /// This thread delivers the process's final counts.
    Won,
    /// Another thread of the process is delivering them right now.
    Taken,
    /// The claims map is full: this thread delivers, and the delete of each entry decides
    /// (see `deliver_final_counts`).
    Unavailable,
}

/// `-EEXIST`, what a `BPF_NOEXIST` insert of a present key returns.
const EEXIST: i32 = -17;

/// Claims the delivery of process `tgid`'s final counts, where the kernel does not say which
/// exiting thread was the last (before 6.16). Threads that exit together, as all of them do
/// at `exit_group` (an io_uring process's io-wq workers and SQPOLL thread among them), may
/// each have decremented the live count before any of them reads it, and then all read 0. Were
/// they all to deliver, each would take the ids whose entry it deleted first, each under its
/// own `exit_ns`: the agent would see two exits of one pid, each with part of its counts. The
/// claim lasts while the delivery runs; a thread that comes after it finds nothing left.
#[inline(always)]
fn claim_delivery(tgid: u32) -> Claim {
    match EXIT_CLAIMS.insert(tgid, 1, BPF_NOEXIST.into()) {
        Ok(()) => Claim::Won,
        Err(EEXIST) => Claim::Taken,
        Err(_) => Claim::Unavailable,
    }
}

/// Whether the exiting thread is the last of its process, where the tracepoint does not say
/// (before 6.16): from the thread group's live count, which the exiting thread decremented
/// before the tracepoint, 0 when none is left. Threads exiting together may all read 0; the
/// one that wins `claim_delivery` delivers.
#[inline(always)]
fn last_live_thread() -> bool {
    let (task_signal, signal_live) = config::live_thread_offsets();
    if task_signal == 0 {
        // No way to tell: only the leader's exit ends the process (the loader refuses this
        // case, so it is never taken).
        return false;
    }
    // SAFETY: the helper has no preconditions.
    let task = unsafe { aya_ebpf::helpers::bpf_get_current_task() };
    let Some(signal) = fd_kind::read::<u64>(task + task_signal as u64) else {
        return false;
    };
    fd_kind::read::<i32>(signal + signal_live as u64) == Some(0)
}

/// The name of the current task's thread group leader: the program's after its last exec
/// (the execing thread becomes the leader), whichever thread exits last and whatever names
/// the other threads gave themselves. The exiting thread's own name where the offsets are
/// unknown or the read fails. A leader that exited before its threads is a zombie whose
/// task, and name, stay until the group is dead.
#[inline(always)]
fn leader_comm() -> [u8; COMM_LEN] {
    let (group_leader, comm) = config::leader_comm_offsets();
    if group_leader != 0 && comm != 0 {
        // SAFETY: the helper has no preconditions.
        let task = unsafe { aya_ebpf::helpers::bpf_get_current_task() };
        if let Some(leader) = fd_kind::read::<u64>(task + u64::from(group_leader)) {
            if let Some(name) = fd_kind::read::<[u8; COMM_LEN]>(leader + u64::from(comm)) {
                return name;
            }
        }
    }
    bpf_get_current_comm().unwrap_or([0; COMM_LEN])
}

/// Moves the process's counters out of `PROC_COUNTERS` and its hot slots: each used id's entry
/// and slot are added into one `ExitRecord` on the ring buffer, then freed. The work is the
/// same on any number of CPUs. Should two threads deliver at once (only where
/// `claim_delivery` could not claim), deleting the entry decides who delivers it: the one whose
/// delete fails discards its record. What does not fit in the ring buffer is counted as dropped
/// (`exit_lost`, in every report). No kernel log line here: the logging macro doubled this
/// program's size and tripled its verification time, which every start pays.
#[inline(always)]
fn deliver_final_counts(tgid: u32) {
    // SAFETY: reading a map value of our own; a missing parent is 0.
    let ppid = unsafe { PARENTS.get(tgid) }.copied().unwrap_or(0);
    let comm = leader_comm();
    // SAFETY: the helper has no preconditions.
    let exit_ns = unsafe { bpf_ktime_get_ns() };
    // SAFETY: the helper has no preconditions (0 where cgroup v2 is not mounted).
    let cgroup_id = unsafe { bpf_get_current_cgroup_id() };
    for id in 0..ID_COUNT as u32 {
        let key = ProcKey { tgid, syscall: id };
        let Some(shared) = PROC_COUNTERS.get_ptr(key) else {
            continue;
        };
        match EXITS.reserve::<ExitRecord>(0) {
            Some(mut entry) => {
                let record = entry.as_mut_ptr();
                // SAFETY: `record` points to ring buffer memory reserved for one ExitRecord;
                // every field is written before submit (the counters by the copy).
                unsafe {
                    (*record).tgid = tgid;
                    (*record).ppid = ppid;
                    (*record).syscall = id;
                    (*record)._reserved = 0;
                    (*record).exit_ns = exit_ns;
                    (*record).cgroup_id = cgroup_id;
                    (*record).comm = comm;
                    copy_counters(shared, &raw mut (*record).counters);
                }
                if PROC_COUNTERS.remove(key).is_err() {
                    entry.discard(0);
                    continue;
                }
                // SAFETY: as above.
                take_hot_slot(&key, |hot| unsafe { (*record).counters.add(hot) });
                entry.submit(0);
            }
            None => {
                // SAFETY: `shared` points to a live entry's value.
                let (mut calls, mut bytes) = unsafe { ((*shared).calls, (*shared).bytes) };
                if PROC_COUNTERS.remove(key).is_err() {
                    continue;
                }
                take_hot_slot(&key, |hot| {
                    calls = calls.wrapping_add(hot.calls);
                    bytes = bytes.wrapping_add(hot.bytes);
                });
                dropped_batch(drop_reason::EXIT_LOST, calls, bytes);
            }
        }
    }
}

/// Shows `take` the counters of the hot slot `key` owns, if it owns one, then frees it (no
/// thread of the process is left to count in it).
#[inline(always)]
fn take_hot_slot(key: &ProcKey, take: impl FnOnce(&Counters)) {
    let index = hot::index(key, config::hot_slot_bits());
    let Some(slot) = HOT_COUNTERS.get_ptr_mut(index) else {
        return;
    };
    // SAFETY: a live element of the hot-slot array, 8-byte aligned; its owner, if `key`, has
    // no thread left.
    unsafe {
        if read_volatile(&raw const (*slot).owner) == hot::owner(key) {
            take(&(*slot).counters);
            hot_slot::free(slot);
        }
    }
}

/// Copies the counters at `from` (a map value) to `out` with one helper call: zeroing 224
/// bytes first, or a member-wise copy, would cost the verifier far more.
///
/// # Safety
/// `out` points to writable memory for one `Counters`.
#[inline(always)]
unsafe fn copy_counters(from: *const Counters, out: *mut Counters) {
    // SAFETY: `from` is a live value; a failed read leaves zeroes (the helper clears the
    // destination on error).
    unsafe {
        let _ = aya_ebpf::helpers::bpf_probe_read_kernel_buf(
            from as *const u8,
            core::slice::from_raw_parts_mut(out as *mut u8, core::mem::size_of::<Counters>()),
        );
    }
}
