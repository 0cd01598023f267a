//! Claiming and freeing a hot slot (see `zerocopy_trace_common::hot`) when CPUs may look at it
//! at the same time.
//!
//! A slot is counted in only by programs on its own CPU, which do not interleave. Two others
//! look at it from elsewhere: the process-exit program, which reads a dead process's counts
//! and frees the slot from any CPU, and the agent, which reads every slot. So:
//! - a claim zeroes the counters itself, after it saw the slot free: the freeing exit read
//!   them before it published the slot as free, and the claim's stores cannot come before the
//!   load that saw it free (they depend on it);
//! - both publish the owner by an atomic exchange, a full barrier on every architecture: the
//!   exit's reads come before the slot reads free, and the claim's zeroes before the agent can
//!   see the new owner, so it never adds the last owner's counts to the new one's.

use core::{
    intrinsics::{atomic_xchg, AtomicOrdering},
    mem::size_of,
    ptr::write_volatile,
};

use zerocopy_trace_common::{Counters, HotCounters};

/// Makes this CPU's free `slot` `owner`'s, with zero counters.
///
/// # Safety
/// `slot` is this CPU's element of the hot-slot array, and its owner read 0.
#[inline(always)]
pub unsafe fn claim(slot: *mut HotCounters, owner: u64) {
    // Word by word and volatile: the compiler would turn a plain zeroing into a memset call,
    // which BPF does not have.
    let words = (&raw mut (*slot).counters).cast::<u64>();
    let mut i = 0;
    while i < size_of::<Counters>() / 8 {
        write_volatile(words.add(i), 0);
        i += 1;
    }
    publish_owner(slot, owner);
}

/// Frees `slot` once its counts were read.
///
/// # Safety
/// `slot` is an element of the hot-slot array (any CPU's) whose owner has no thread left.
#[inline(always)]
pub unsafe fn free(slot: *mut HotCounters) {
    publish_owner(slot, 0);
}

/// # Safety
/// `slot` is an element of the hot-slot array.
#[inline(always)]
unsafe fn publish_owner(slot: *mut HotCounters, owner: u64) {
    // The BPF target has no `AtomicU64::swap` (it lacks compare-and-swap); the intrinsic
    // compiles to the `xchg_64` instruction (kernel 5.12 and later).
    atomic_xchg::<u64, { AtomicOrdering::SeqCst }>(&raw mut (*slot).owner, owner);
}
