//! The first 8-byte words of a tracepoint record (or of the saved registers), copied to the
//! stack with one checked read, for reading fields at offsets known only at load time. The
//! verifier only lets a tracepoint program load from its context at offsets fixed in the
//! instruction, and ours come from the `format` files; so the words are copied once and fields
//! are picked from the copy. One helper call instead of one per field.

use core::ptr::read_volatile;

use aya_ebpf::{helpers::bpf_probe_read_kernel, programs::TracePointContext};

/// The first `N` 8-byte words of a tracepoint record. Syscall tracepoints lay out
/// `__syscall_nr` in word 1 and each argument (or `ret`) in a word of its own after it.
pub struct Words<const N: usize>([u64; N]);

impl<const N: usize> Words<N> {
    /// Copies the words out of the record; `None` if the read fails.
    #[inline(always)]
    pub fn read(ctx: &TracePointContext) -> Option<Self> {
        // SAFETY: a checked read of the record the context points to; the perf buffer holding
        // it is larger than the 8 * N bytes read, so a shorter record yields padding, never a
        // fault, and only offsets from its own `format` file are looked at.
        unsafe { ctx.read_at::<[u64; N]>(0) }.ok().map(Words)
    }

    /// Copies `N` words of kernel memory from `address` (a `pt_regs` window, for the raw hook).
    #[inline(always)]
    pub fn read_kernel(address: u64) -> Option<Self> {
        // SAFETY: a checked read; a bad address returns an error, never faults.
        unsafe { bpf_probe_read_kernel(address as *const [u64; N]) }
            .ok()
            .map(Words)
    }

    /// The word at byte `offset` (8-aligned), if the copy covers it.
    #[inline(always)]
    pub fn at(&self, offset: usize) -> Option<u64> {
        const { assert!(N.is_power_of_two()) };
        if !offset.is_multiple_of(8) {
            return None;
        }
        // The verifier requires a variable-offset stack read to be provably 8-aligned. The
        // compiler knows `offset` is a multiple of 8 and would index with it directly, which
        // the verifier cannot prove aligned; a word index it cannot see through is masked
        // and shifted instead.
        // SAFETY: reading a local.
        let index = unsafe { read_volatile(&(offset / 8)) };
        if index >= N {
            return None;
        }
        Some(self.0[index & (N - 1)])
    }

    /// The `u32` field at byte `offset`, which must not straddle two words (the io_uring
    /// tracepoints pack `res` and `cflags` into one).
    #[inline(always)]
    pub fn u32_at(&self, offset: usize) -> Option<u32> {
        if offset % 8 > 4 {
            return None;
        }
        let word = self.at(offset & !7)?;
        Some((word >> ((offset % 8) * 8)) as u32)
    }

    /// The `u8` field at byte `offset`.
    #[inline(always)]
    pub fn u8_at(&self, offset: usize) -> Option<u8> {
        let word = self.at(offset & !7)?;
        Some((word >> ((offset % 8) * 8)) as u8)
    }
}
