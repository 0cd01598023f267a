//! What could not be attributed to a process, by reason.

/// Why a count could not be attributed. Index into the `DROPPED` per-CPU array.
pub mod drop_reason {
    /// A syscall exit without its enter record: the call began before attach, or its record
    /// could not be stored (`PENDING_FULL`). Calls and bytes are counted.
    pub const MISSING_ENTER: u32 = 0;
    /// The per-thread pending map was full at enter (calls; these also show as `MISSING_ENTER`).
    pub const PENDING_FULL: u32 = 1;
    /// The per-process counters map was full: calls and bytes not attributed to any process.
    pub const COUNTERS_FULL: u32 = 2;
    /// The exit ring buffer was full: final calls and bytes of exited processes were lost.
    pub const EXIT_LOST: u32 = 3;
    /// sendmmsg/recvmmsg whose `msg_len`s could not be read: calls counted, bytes unknown.
    pub const MMSG_UNREADABLE: u32 = 4;
    /// Children of traced processes that could not be followed (the traced-process map was
    /// full): `calls` counts such children; their syscalls are not seen at all.
    pub const UNFOLLOWED_CHILDREN: u32 = 5;
    /// Runs of our programs the kernel skipped because another BPF program was running on the
    /// same CPU (its `recursion_misses`): each a syscall, completion, fork or exit not seen.
    /// Counted by the agent from the programs' info, not in the kernel; calls only.
    pub const MISSED_RUNS: u32 = 6;
    pub const COUNT: u32 = 7;
    /// Names as shown in reports and JSON, by index.
    pub const NAMES: [&str; COUNT as usize] = [
        "missing_enter",
        "pending_full",
        "counters_full",
        "exit_lost",
        "mmsg_unreadable",
        "unfollowed_children",
        "missed_runs",
    ];
}

/// What was dropped for one reason.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DropCounters {
    pub calls: u64,
    pub bytes: u64,
}

// Padding-free: a size mismatch here means a hidden hole the kernel would not fill.
const _: () = assert!(core::mem::size_of::<DropCounters>() == 16);

// SAFETY: #[repr(C)], only integers and integer arrays, no padding (the size checks above), so
// every bit pattern is a valid value.
#[cfg(feature = "user")]
mod pod {
    use super::*;
    unsafe impl aya::Pod for DropCounters {}
}
