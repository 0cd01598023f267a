//! Claiming and freeing a hot slot (see `zerocopy_trace_common::hot`), which programs on every
//! CPU and the agent look at at once.
//!
//! - A claim is a compare-and-exchange of the owner from 0: of two keys claiming one slot at
//!   once, one wins, and the other counts in the hash as before.
//! - A free slot's counters are zero: the exit program that frees it has read them into the
//!   process's exit record, zeroes them, and only then publishes the owner 0 by an atomic
//!   exchange (a full barrier): a claim never sees the last owner's counts, so it need not
//!   zero them, and the agent never adds them to the new owner's.
//! - Only the exit program of the owner's process frees a slot, once no thread of it is left
//!   to count there.

use core::{
    intrinsics::{atomic_cxchg, atomic_xchg, AtomicOrdering},
    mem::size_of,
    ptr::write_volatile,
};

use zerocopy_trace_common::{Counters, HotCounters};

/// Makes free `slot` `owner`'s; false if another key took it first.
///
/// # Safety
/// `slot` is an element of the hot-slot array.
#[inline(always)]
pub unsafe fn claim(slot: *mut HotCounters, owner: u64) -> bool {
    // The BPF target has no `AtomicU64::compare_exchange` (its spec lacks compare-and-swap);
    // the intrinsic compiles to the `cmpxchg_64` instruction (kernel 5.12 and later).
    atomic_cxchg::<u64, { AtomicOrdering::SeqCst }, { AtomicOrdering::SeqCst }>(
        &raw mut (*slot).owner,
        0,
        owner,
    )
    .1
}

/// Frees `slot` once its counts were read: zeroes them, then publishes it free.
///
/// # Safety
/// `slot` is an element of the hot-slot array whose owner has no thread left.
#[inline(always)]
pub unsafe fn free(slot: *mut HotCounters) {
    // Word by word and volatile: the compiler would turn a plain zeroing into a memset call,
    // which BPF does not have.
    let words = (&raw mut (*slot).counters).cast::<u64>();
    let mut i = 0;
    while i < size_of::<Counters>() / 8 {
        write_volatile(words.add(i), 0);
        i += 1;
    }
    // The intrinsic compiles to the `xchg_64` instruction (kernel 5.12 and later).
    atomic_xchg::<u64, { AtomicOrdering::SeqCst }>(&raw mut (*slot).owner, 0);
}
