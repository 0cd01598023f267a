//! What a process's last thread leaves the agent: its final counts, one record per id.

use super::{counters::Counters, limits::COMM_LEN};

/// Final counts of one syscall (or io_uring operation) of a process whose last thread exited,
/// sent through the `EXITS` ring buffer before the kernel frees the process's entries: one
/// record per id the process used (most use a few), all with the same `exit_ns`, which tells
/// two processes that had the same pid apart.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ExitRecord {
    pub tgid: u32,
    /// Parent's tgid when the fork was seen, else 0.
    pub ppid: u32,
    /// Id of `counters` (a syscall's or an io_uring operation's).
    pub syscall: u32,
    pub _reserved: u32,
    /// When the process exited (`bpf_ktime_get_ns`, CLOCK_MONOTONIC): the same for all its
    /// records.
    pub exit_ns: u64,
    /// The process's cgroup (v2) id when it exited: the inode number of its cgroup directory,
    /// from which the agent learns the systemd unit its counts are grouped under.
    pub cgroup_id: u64,
    /// The thread group leader's name (not the exiting thread's: threads rename themselves,
    /// and any of them may be the last to exit), the program's name after its last exec.
    pub comm: [u8; COMM_LEN],
    pub counters: Counters,
}

// Padding-free: a size mismatch here means a hidden hole the kernel would not fill.
const _: () =
    assert!(core::mem::size_of::<ExitRecord>() == 32 + COMM_LEN + core::mem::size_of::<Counters>());

// SAFETY: #[repr(C)], only integers and integer arrays, no padding (the size checks above), so
// every bit pattern is a valid value.
#[cfg(feature = "user")]
mod pod {
    use super::*;
    unsafe impl aya::Pod for ExitRecord {}
}
