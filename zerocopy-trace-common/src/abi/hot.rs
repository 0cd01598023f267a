//! Hot slots: a per-CPU array in front of the per-CPU hash of live counters.
//!
//! Each (process, id) has one slot index, from a hash of its key. On each CPU, the first key to
//! count there while that CPU's slot is free claims it, and its calls on that CPU are counted
//! in the slot from then on: an array lookup, inlined by the kernel, instead of a hash lookup.
//! A key whose slot is taken counts in the hash map as before. A key's counts are the sum of
//! its hash entry and of every CPU's slot it owns; the process-exit program adds both into the
//! exit record and frees the slots.

use super::counters::{Counters, ProcKey};

/// Most slots per CPU, as a power of two. A busy server has a few hot keys (its worker
/// processes' data-path syscalls); more slots would cost kernel memory and the agent's reads
/// at each refresh (each slot is a `HotCounters` on every CPU).
pub const MAX_HOT_SLOT_BITS: u32 = 8;
/// Kernel memory the slots stay within, on any number of CPUs.
pub const HOT_BUDGET_BYTES: u64 = 4 << 20;

/// Set in every owner, so an owner is never 0, the value of a free slot.
const CLAIMED: u64 = 1 << 31;

/// One CPU's slot: the counters of the key that owns it, if any.
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

/// Slots per CPU, as a power of two: up to `MAX_HOT_SLOT_BITS`, fewer where so many CPUs
/// would take the slots past `HOT_BUDGET_BYTES`; at least 2 slots.
pub fn slot_bits(cpus: u32) -> u32 {
    let per_slot = core::mem::size_of::<HotCounters>() as u64 * u64::from(cpus.max(1));
    let slots = (HOT_BUDGET_BYTES / per_slot).max(2);
    (u64::BITS - 1 - slots.leading_zeros()).min(MAX_HOT_SLOT_BITS)
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
    fn slots_shrink_with_many_cpus_and_stay_in_budget() {
        assert_eq!(slot_bits(1), MAX_HOT_SLOT_BITS);
        assert_eq!(slot_bits(2), MAX_HOT_SLOT_BITS);
        // 232 bytes a slot: 128 CPUs fit 141 slots in 4 MiB, so 128.
        assert_eq!(slot_bits(128), 7);
        assert_eq!(slot_bits(1024), 4);
        assert_eq!(slot_bits(1 << 20), 1);
        for cpus in [1, 3, 64, 100, 512, 4096] {
            let bytes = (1u64 << slot_bits(cpus)) * 232 * cpus as u64;
            assert!(
                bytes <= HOT_BUDGET_BYTES || slot_bits(cpus) == 1,
                "{cpus} CPUs"
            );
        }
        for bits in 1..=MAX_HOT_SLOT_BITS {
            assert!(
                index(
                    &ProcKey {
                        tgid: u32::MAX,
                        syscall: 40
                    },
                    bits
                ) < 1 << bits
            );
        }
    }
}
