//! The two programs every data-path syscall tracepoint runs: one program per side, attached
//! to all of them, which tells syscalls apart by `__syscall_nr`.

use aya_ebpf::{
    helpers::{bpf_get_current_ancestor_cgroup_id, bpf_get_current_pid_tgid, bpf_probe_read_user},
    macros::tracepoint,
    programs::TracePointContext,
};
use zerocopy_trace_common::{
    drop_reason, PendingCall, ProcKey, MAX_MMSG, MMSGHDR_LEN_OFFSET, MMSGHDR_SIZE, MSG_ZEROCOPY,
};

use crate::{
    config,
    counters::{dropped, record, Call},
    fd_kind,
    fields::Slots,
    maps::{PENDING, TRACED},
};

/// Slots of an enter record: `__syscall_nr` and up to six arguments.
type EnterSlots = Slots<8>;
/// Slots of an exit record: `__syscall_nr` and `ret` (and one spare: a power of two).
type ExitSlots = Slots<4>;

/// The argument at `offset` (all are 8-byte slots in the `format` files). An offset of 0 means
/// the syscall has no such argument.
#[inline(always)]
fn arg(slots: &EnterSlots, offset: u16) -> Option<u64> {
    if offset == 0 {
        return None;
    }
    slots.at(offset as usize)
}

/// The `fd_kind` of the fd argument at `offset`, or `NO_FD` when the syscall has none there.
#[inline(always)]
fn fd_kind_arg(slots: &EnterSlots, offset: u16) -> u8 {
    match arg(slots, offset) {
        Some(fd) => fd_kind::of_fd(fd as i32),
        None => zerocopy_trace_common::fd_kind::NO_FD,
    }
}

/// Whether the current process is to be counted.
#[inline(always)]
pub fn is_traced(tgid: u32) -> bool {
    if tgid == config::agent_tgid() {
        return false;
    }
    if !config::filter_enabled() {
        return true;
    }
    // SAFETY: only tested for presence, the value is not read.
    if unsafe { TRACED.get(tgid) }.is_some() {
        return true;
    }
    let (cgroup, level) = config::cgroup_filter();
    // SAFETY: the helper only reads the current task's cgroup.
    cgroup != 0 && unsafe { bpf_get_current_ancestor_cgroup_id(level as i32) } == cgroup
}

/// The syscall id of the tracepoint being run, from `__syscall_nr` (an int: the low half of
/// its slot).
#[inline(always)]
fn current_syscall<const N: usize>(slots: &Slots<N>) -> Option<u32> {
    let nr = slots.at(config::nr_offset())? as i32;
    config::syscall_of_nr(nr)
}

#[tracepoint]
pub fn syscall_enter(ctx: TracePointContext) -> u32 {
    on_enter(&ctx);
    0
}

#[inline(always)]
fn on_enter(ctx: &TracePointContext) {
    let Some(slots) = EnterSlots::read(ctx) else {
        return;
    };
    let Some(id) = current_syscall(&slots) else {
        return;
    };
    let pid_tgid = bpf_get_current_pid_tgid();
    let (tgid, tid) = ((pid_tgid >> 32) as u32, pid_tgid as u32);
    if !is_traced(tgid) {
        return;
    }
    let offsets = config::syscall(id);
    let call = PendingCall {
        syscall: id,
        in_flight: 1,
        source_kind: fd_kind_arg(&slots, offsets.source_fd_offset),
        destination_kind: fd_kind_arg(&slots, offsets.destination_fd_offset),
        msg_flags: arg(&slots, offsets.msg_flags_offset).unwrap_or(0),
        mmsg_vector: arg(&slots, offsets.mmsg_vector_offset).unwrap_or(0),
    };
    // Overwriting the thread's existing slot avoids the bucket lock and free-list work of an
    // update; only a thread's first traced call inserts.
    match PENDING.get_ptr_mut(tid) {
        // SAFETY: the pointer is to this thread's own entry; only this thread writes it.
        Some(slot) => unsafe { *slot = call },
        None => {
            if PENDING.insert(tid, call, 0).is_err() {
                dropped(drop_reason::PENDING_FULL, 0);
            }
        }
    }
}

#[tracepoint]
pub fn syscall_exit(ctx: TracePointContext) -> u32 {
    on_exit(&ctx);
    0
}

#[inline(always)]
fn on_exit(ctx: &TracePointContext) {
    let Some(slots) = ExitSlots::read(ctx) else {
        return;
    };
    let Some(id) = current_syscall(&slots) else {
        return;
    };
    let pid_tgid = bpf_get_current_pid_tgid();
    let (tgid, tid) = ((pid_tgid >> 32) as u32, pid_tgid as u32);
    if !is_traced(tgid) {
        return;
    }
    let ret = slots.at(config::ret_offset()).map_or(-1, |v| v as i64);

    let pending = match PENDING.get_ptr_mut(tid) {
        // SAFETY: this thread's own entry; reading then clearing `in_flight` cannot race.
        Some(slot) => unsafe {
            let call = *slot;
            (*slot).in_flight = 0;
            call
        },
        None => PendingCall::default(),
    };
    let mmsg = config::syscall(id).mmsg_vector_offset != 0;
    if pending.in_flight == 0 || pending.syscall != id {
        // Began before attach, or its enter record could not be stored. The return value is
        // a byte count except for the mmsg pair, where it counts messages.
        let bytes = if ret > 0 && !mmsg { ret as u64 } else { 0 };
        dropped(drop_reason::MISSING_ENTER, bytes);
        return;
    }

    let bytes = if ret < 0 {
        0
    } else if mmsg {
        match mmsg_bytes(pending.mmsg_vector, ret as u64) {
            Some(bytes) => bytes,
            None => {
                dropped(drop_reason::MMSG_UNREADABLE, 0);
                return;
            }
        }
    } else {
        ret as u64
    };
    let key = ProcKey { tgid, syscall: id };
    record(
        &key,
        &Call {
            bytes,
            error: ret < 0,
            msg_zerocopy: pending.msg_flags & MSG_ZEROCOPY != 0,
            source_kind: pending.source_kind,
            destination_kind: pending.destination_kind,
        },
    );
}

/// Sum of `msg_len` over the first `count` entries of a `struct mmsghdr` array in user memory.
#[inline(always)]
fn mmsg_bytes(vector: u64, count: u64) -> Option<u64> {
    let mut total = 0u64;
    let mut i = 0u32;
    while i < MAX_MMSG {
        if i as u64 >= count {
            break;
        }
        let at = vector + i as u64 * MMSGHDR_SIZE + MMSGHDR_LEN_OFFSET;
        // SAFETY: a checked read of user memory; a fault returns an error, never crashes.
        let len = unsafe { bpf_probe_read_user(at as *const u32) }.ok()?;
        total += len as u64;
        i += 1;
    }
    Some(total)
}
