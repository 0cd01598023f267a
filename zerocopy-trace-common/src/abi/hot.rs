//! Hot slots: an array in front of the hash of live counters.
//!
//! Each (process, id) has one slot index, from a hash of its key. A key that has made
//! `HOT_AFTER_CALLS` calls claims its slot if it is free (an atomic compare-and-exchange), and
//! is counted in it from then on: an array lookup, inlined by the kernel, instead of a hash
//! lookup. A key whose slot is taken counts in the hash map as before. A key's counts are the
//! sum of its hash entry and of its slot if it owns it; the process-exit program adds both
//! into the exit record and frees the slot.
//!
//! Both the hash and the slots are shared by all CPUs and counted into with atomic adds: their
//! memory, the exit program's work and the agent's reads do not grow with the CPU count.

use super::counters::{Counters, ProcKey};

/// Most slots, as a power of two. A busy server has a few hot keys (its worker processes'
/// data-path syscalls); 1 024 slots take 232 KiB, read by the agent at each refresh.
pub const MAX_HOT_SLOT_BITS: u32 = 10;
/// Calls a key makes in the hash before it claims a slot: a short-lived process (a shell
/// command, a storm of them) never takes one, so the slots go to the processes that stay busy.
pub const HOT_AFTER_CALLS: u64 = 64;

/// Set in every owner, so an owner is never 0, the value of a free slot.
const CLAIMED: u64 = 1 << 31;

/// A slot: the counters of the key that owns it, if any.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HotCounters {
    /// `owner(key)` of the key counting here, 0 when free.
    pub owner: u64,
    pub counters: Counters,
}

const _: () = assert!(core::mem::size_of::<HotCounters>() == 8 + core::mem::size_of::<Counters>());

// SAFETY: #[repr(C)], only integers, no padding (the size check above), so every bit pattern is
// a valid value.
#[cfg(feature = "user")]
unsafe impl aya::Pod for HotCounters {}

/// The value a slot owned by `key` holds in `HotCounters::owner`.
#[inline(always)]
pub fn owner(key: &ProcKey) -> u64 {
    ((key.tgid as u64) << 32) | key.syscall as u64 | CLAIMED
}

/// The key owning a slot whose `owner` is `owner`, `None` for a free slot.
pub fn owner_key(owner: u64) -> Option<ProcKey> {
    if owner & CLAIMED == 0 {
        return None;
    }
    Some(ProcKey {
        tgid: (owner >> 32) as u32,
        syscall: (owner & (CLAIMED - 1)) as u32,
    })
}

/// `key`'s slot index among `1 << bits` (1 <= bits <= 63): the top bits of a multiplicative
/// hash (Fibonacci hashing), so keys of neighbouring pids and ids spread over the slots.
#[inline(always)]
pub fn index(key: &ProcKey, bits: u32) -> u32 {
    let key_bits = ((key.tgid as u64) << 32) | key.syscall as u64;
    (key_bits.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - bits)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_round_trips_and_is_never_free() {
        for (tgid, syscall) in [(1, 0), (42, 7), (u32::MAX, 44), (4_194_304, 0)] {
            let key = ProcKey { tgid, syscall };
            assert_ne!(owner(&key), 0);
            assert_eq!(owner_key(owner(&key)), Some(key));
        }
        assert_eq!(owner_key(0), None);
    }

    #[test]
    fn index_is_in_range_and_spreads_one_process_ids() {
        let mut used = [false; 1 << MAX_HOT_SLOT_BITS];
        for syscall in 0..crate::ID_COUNT as u32 {
            let i = index(
                &ProcKey {
                    tgid: 1234,
                    syscall,
                },
                MAX_HOT_SLOT_BITS,
            );
            assert!(i < 1 << MAX_HOT_SLOT_BITS);
            used[i as usize] = true;
        }
        // Not a perfect hash, but one process's ids must not pile onto a few slots.
        let distinct = used.iter().filter(|u| **u).count();
        assert!(distinct >= crate::ID_COUNT * 3 / 4, "{distinct} slots");
    }

    #[test]
    fn every_index_is_in_range() {
        for bits in 1..=MAX_HOT_SLOT_BITS {
            for tgid in [0, 1, 4_194_304, u32::MAX] {
                let key = ProcKey { tgid, syscall: 40 };
                assert!(index(&key, bits) < 1 << bits);
            }
        }
    }
}
