//! What an exec of a traced process leaves the agent: the name the process now has.

use super::limits::COMM_LEN;

/// A traced process exec'd: sent through the `EXECS` ring buffer by the exec program, so the
/// agent names a live process after the program it runs now, without reading /proc again.
/// The execing thread has become the thread group's leader by then, so `comm` is the
/// leader's, the name exec gave it.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ExecRecord {
    pub tgid: u32,
    pub _reserved: u32,
    /// When the exec completed (`bpf_ktime_get_ns`, CLOCK_MONOTONIC): a name the agent read
    /// from /proc after this is newer already.
    pub exec_ns: u64,
    pub comm: [u8; COMM_LEN],
}

// Padding-free: a size mismatch here means a hidden hole the kernel would not fill.
const _: () = assert!(core::mem::size_of::<ExecRecord>() == 16 + COMM_LEN);

// SAFETY: #[repr(C)], only integers and integer arrays, no padding (the size check above), so
// every bit pattern is a valid value.
#[cfg(feature = "user")]
mod pod {
    use super::*;
    unsafe impl aya::Pod for ExecRecord {}
}
