//! Adding to the shared counters, and counting what could not be added.

use core::intrinsics::{atomic_xadd, AtomicOrdering};

use zerocopy_trace_common::{drop_reason, fd_kind, hot, notices::Notice, Counters, ProcKey};

use crate::{
    config, hot_slot,
    maps::{DROPPED, HOT_COUNTERS, PROC_COUNTERS},
};

/// Adds `delta` to `*slot`, atomically: threads of one process count into the same entry
/// from several CPUs at once. Relaxed: each counter is a sum on its own, read by the agent
/// with no order against the others; the compiler emits the `lock add` form (no fetch), which
/// every kernel's verifier accepts.
#[inline(always)]
fn bump(slot: *mut u64, delta: u64) {
    // SAFETY: `slot` points into a live map value, 8-byte aligned.
    unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(slot, delta) };
}

/// Adds `delta` to a per-CPU counter: this CPU's alone, and the kernel never runs a second
/// program of ours on a CPU while one is running there, so a plain add is enough.
#[inline(always)]
fn bump_local(slot: *mut u64, delta: u64) {
    // SAFETY: `slot` points into this CPU's element of a per-CPU array, 8-byte aligned.
    unsafe { *slot = (*slot).wrapping_add(delta) };
}

/// One completed call of syscall (or io_uring operation) `key.syscall` by process `key.tgid`.
pub struct Call {
    pub bytes: u64,
    pub error: bool,
    /// Sends in this call that asked for zero copy (`MSG_ZEROCOPY`, `SEND_ZC`); when not 0,
    /// `bytes` are theirs.
    pub zerocopy_sends: u64,
    /// `fd_kind`s of the two ends (`fd_kind::DIRECT` or'ed in for an `O_DIRECT` file),
    /// `NO_FD` where the end is user memory.
    pub source_kind: u8,
    pub destination_kind: u8,
    /// A zero-copy completion notice this call read (recvmsg with `MSG_ERRQUEUE`).
    pub notice: Option<Notice>,
}

/// What a new entry starts from, in read-only data.
static ZERO: Counters = Counters::ZERO;

/// The counters of `key`: its hot slot where it owns it, or claims it once the key is busy,
/// else its entry in `PROC_COUNTERS`. `None` (and `bytes` counted as dropped) when the map is
/// full.
#[inline(always)]
fn slot(key: &ProcKey, bytes: u64) -> Option<*mut Counters> {
    let owner = hot::owner(key);
    let hot = HOT_COUNTERS.get_ptr_mut(hot::index(key, config::hot_slot_bits()));
    if let Some(hot) = hot {
        // SAFETY: `hot` is a live element of the hot-slot array; its owner is read plainly
        // (an 8-byte aligned load is atomic) and changed only by `hot_slot`.
        if unsafe { core::ptr::read_volatile(&raw const (*hot).owner) } == owner {
            return Some(unsafe { &raw mut (*hot).counters });
        }
    }
    let shared = shared_slot(key, bytes)?;
    if let Some(hot) = hot {
        // SAFETY: `shared` points to a live entry's value; `hot` as above.
        unsafe {
            // The shared entry stays: it tells the exit program the id was used, and holds
            // the calls made before the claim.
            if core::ptr::read_volatile(&raw const (*shared).calls) >= hot::HOT_AFTER_CALLS
                && core::ptr::read_volatile(&raw const (*hot).owner) == 0
                && hot_slot::claim(hot, owner)
            {
                return Some(&raw mut (*hot).counters);
            }
        }
    }
    Some(shared)
}

/// The counters of `key` in `PROC_COUNTERS`, created at the first call. `None` (and `bytes`
/// counted as dropped) when the map is full.
#[inline(always)]
fn shared_slot(key: &ProcKey, bytes: u64) -> Option<*mut Counters> {
    if let Some(slot) = PROC_COUNTERS.get_ptr_mut(key) {
        return Some(slot);
    }
    // First call of this id by this process. BPF_NOEXIST: if another CPU just created it, its
    // insert wins and the lookup below finds it.
    // A reference, not a copy: the value must stay in read-only data, off the stack.
    #[allow(clippy::needless_borrows_for_generic_args)]
    let _ = PROC_COUNTERS.insert(key, &ZERO, aya_ebpf::bindings::BPF_NOEXIST.into());
    let slot = PROC_COUNTERS.get_ptr_mut(key);
    if slot.is_none() {
        dropped(drop_reason::COUNTERS_FULL, bytes);
    }
    slot
}

#[inline(always)]
pub fn record(key: &ProcKey, call: &Call) {
    let Some(slot) = slot(key, call.bytes) else {
        return;
    };
    let (source, source_direct) = fd_kind::split(call.source_kind);
    let (destination, destination_direct) = fd_kind::split(call.destination_kind);
    // SAFETY: `slot` points to a live map entry's value.
    unsafe {
        bump(&raw mut (*slot).calls, 1);
        bump(&raw mut (*slot).bytes, call.bytes);
        if call.error {
            bump(&raw mut (*slot).errors, 1);
        }
        if call.zerocopy_sends != 0 {
            bump(&raw mut (*slot).zerocopy_sends, call.zerocopy_sends);
            bump(&raw mut (*slot).msg_zerocopy_bytes, call.bytes);
        }
        if source_direct || destination_direct {
            bump(&raw mut (*slot).direct_bytes, call.bytes);
        }
        // NO_FD and anything out of range fail the bound check and count nowhere.
        let source = source as usize;
        if source < fd_kind::COUNT {
            bump(&raw mut (*slot).source_kind_bytes[source], call.bytes);
        }
        let destination = destination as usize;
        if destination < fd_kind::COUNT {
            bump(
                &raw mut (*slot).destination_kind_bytes[destination],
                call.bytes,
            );
        }
        if let Some(notice) = call.notice {
            add_notice(slot, notice);
        }
    }
}

/// A zero-copy completion notice received outside any counted call (an io_uring
/// notification), filed under id `key.syscall` of the process.
#[inline(always)]
pub fn record_notice(key: &ProcKey, notice: Notice) {
    if let Some(slot) = slot(key, 0) {
        // SAFETY: as in `record`.
        unsafe { add_notice(slot, notice) };
    }
}

/// # Safety
/// `slot` points to a live map entry's value.
#[inline(always)]
unsafe fn add_notice(slot: *mut Counters, notice: Notice) {
    // SAFETY: guaranteed by the caller.
    unsafe {
        bump(&raw mut (*slot).zerocopy_notified, notice.sends);
        if notice.copied {
            bump(&raw mut (*slot).zerocopy_copied, notice.sends);
        }
    }
}

/// One call (and its bytes, where known) that could not be attributed, for `reason`.
#[inline(always)]
pub fn dropped(reason: u32, bytes: u64) {
    if let Some(slot) = DROPPED.get_ptr_mut(reason) {
        // SAFETY: `slot` points to this CPU's element of a per-CPU array.
        unsafe {
            bump_local(&raw mut (*slot).calls, 1);
            bump_local(&raw mut (*slot).bytes, bytes);
        }
    }
}

/// A whole batch of lost counts (a process's final totals that could not be delivered).
#[inline(always)]
pub fn dropped_batch(reason: u32, calls: u64, bytes: u64) {
    if let Some(slot) = DROPPED.get_ptr_mut(reason) {
        // SAFETY: as in `dropped`.
        unsafe {
            bump_local(&raw mut (*slot).calls, calls);
            bump_local(&raw mut (*slot).bytes, bytes);
        }
    }
}
