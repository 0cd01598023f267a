//! Adding to the per-CPU counters, and counting what could not be added.

use zerocopy_trace_common::{drop_reason, fd_kind, Counters, ProcKey};

use crate::maps::{DROPPED, PROC_COUNTERS};

/// Adds `delta` to `*slot`. The slot is this CPU's, so there is no cross-CPU traffic, and a
/// plain add is enough: the kernel never runs a second tracing program on a CPU while one is
/// active there (`bpf_prog_active`), so no other program interleaves with this update.
#[inline(always)]
fn bump(slot: *mut u64, delta: u64) {
    // SAFETY: `slot` points into a live per-CPU map value, 8-byte aligned.
    unsafe { *slot = (*slot).wrapping_add(delta) };
}

/// One completed call of syscall `key.syscall` by process `key.tgid`.
pub struct Call {
    pub bytes: u64,
    pub error: bool,
    pub msg_zerocopy: bool,
    /// `fd_kind`s of the two ends, `NO_FD` where the end is user memory.
    pub source_kind: u8,
    pub destination_kind: u8,
}

#[inline(always)]
pub fn record(key: &ProcKey, call: &Call) {
    let slot = match PROC_COUNTERS.get_ptr_mut(key) {
        Some(slot) => slot,
        None => {
            // First call of this syscall by this process. BPF_NOEXIST: if another CPU just
            // created it, its insert wins and the lookup below finds it.
            let _ = PROC_COUNTERS.insert(
                key,
                Counters::default(),
                aya_ebpf::bindings::BPF_NOEXIST.into(),
            );
            match PROC_COUNTERS.get_ptr_mut(key) {
                Some(slot) => slot,
                None => {
                    dropped(drop_reason::COUNTERS_FULL, call.bytes);
                    return;
                }
            }
        }
    };
    // SAFETY: `slot` points to this CPU's value of a live map entry.
    unsafe {
        bump(&raw mut (*slot).calls, 1);
        bump(&raw mut (*slot).bytes, call.bytes);
        bump(&raw mut (*slot).errors, call.error as u64);
        if call.msg_zerocopy {
            bump(&raw mut (*slot).msg_zerocopy_bytes, call.bytes);
        }
        // NO_FD and anything out of range fail the bound check and count nowhere.
        let source = call.source_kind as usize;
        if source < fd_kind::COUNT {
            bump(&raw mut (*slot).source_kind_bytes[source], call.bytes);
        }
        let destination = call.destination_kind as usize;
        if destination < fd_kind::COUNT {
            bump(
                &raw mut (*slot).destination_kind_bytes[destination],
                call.bytes,
            );
        }
    }
}

/// One call (and its bytes, where known) that could not be attributed, for `reason`.
#[inline(always)]
pub fn dropped(reason: u32, bytes: u64) {
    if let Some(slot) = DROPPED.get_ptr_mut(reason) {
        // SAFETY: `slot` points to this CPU's element of a per-CPU array.
        unsafe {
            bump(&raw mut (*slot).calls, 1);
            bump(&raw mut (*slot).bytes, bytes);
        }
    }
}

/// A whole batch of lost counts (a process's final totals that could not be delivered).
#[inline(always)]
pub fn dropped_batch(reason: u32, calls: u64, bytes: u64) {
    if let Some(slot) = DROPPED.get_ptr_mut(reason) {
        // SAFETY: as in `dropped`.
        unsafe {
            bump(&raw mut (*slot).calls, calls);
            bump(&raw mut (*slot).bytes, bytes);
        }
    }
}
