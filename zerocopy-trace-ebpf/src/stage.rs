//! Parking a call in a per-CPU map while its fds' kinds are resolved.
//!
//! This is for the verifier, not for speed. Every way to a call's figures (a plain return
//! value, a sum of mmsg lengths, a zero-copy send) and every way through an fd walk (each file
//! type, each socket family and protocol, each read that may fail) ends with values of its
//! own in registers, and the verifier checks everything that follows once per combination:
//! with two walks per call that was 400 000 instructions and over half a second at every
//! start, close to its limit of a million. Values read back from a map are unknown to the
//! verifier, so the paths merge: parked before the walks and between them, the figures and the
//! first kind cost it 35 000 instructions and 20 ms instead. At run time the park is a few
//! stores and loads in this CPU's slot (the lookup of a per-CPU array is inlined).

use core::ptr::{read_volatile, write_volatile};

use aya_ebpf::{macros::map, maps::PerCpuArray};

/// Each CPU's parked call.
#[map]
static STAGE: PerCpuArray<Staged> = PerCpuArray::with_max_entries(1, 0);

/// A call's figures while its kinds are resolved.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Staged {
    /// The process (high half) and the syscall's id (low half).
    pub key: u64,
    pub bytes: u64,
    pub zerocopy_sends: u64,
    /// 1 for a failed call.
    pub error: u64,
    /// The source fd's kind, parked while the destination's is resolved.
    pub source_kind: u64,
}

/// This CPU's slot. A program run uses it from start to end with nothing else in between on
/// this CPU (tracing programs do not nest on a CPU).
#[inline(always)]
pub fn slot() -> Option<*mut Staged> {
    STAGE.get_ptr_mut(0)
}

/// Parks `value`; `read` gives it back, opaque to the verifier.
///
/// # Safety
/// `slot` must come from `slot()`.
#[inline(always)]
pub unsafe fn park(slot: *mut Staged, value: Staged) {
    write_volatile(slot, value);
}

/// # Safety
/// `slot` must come from `slot()`.
#[inline(always)]
pub unsafe fn read(slot: *mut Staged) -> Staged {
    read_volatile(slot)
}

/// Parks the source fd's kind while the destination's is resolved.
///
/// # Safety
/// `slot` must come from `slot()`.
#[inline(always)]
pub unsafe fn park_kind(slot: *mut Staged, kind: u8) {
    write_volatile(&raw mut (*slot).source_kind, kind as u64);
}

/// The kind `park_kind` parked.
///
/// # Safety
/// `slot` must come from `slot()`.
#[inline(always)]
pub unsafe fn parked_kind(slot: *mut Staged) -> u8 {
    read_volatile(&raw const (*slot).source_kind) as u8
}
