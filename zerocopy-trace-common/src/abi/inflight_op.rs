//! io_uring requests between their submission and their completion.

/// An io_uring request between its submission and its completion, keyed by its address.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InflightOp {
    /// The submitting process (io-wq workers and the SQPOLL thread are its threads).
    pub tgid: u32,
    /// Index in `IO_URING_OPS`.
    pub op: u8,
    /// `inflight::REQUEST`, or `inflight::NOTIFICATION` for a zero-copy send's notification.
    pub kind: u8,
    /// `fd_kind` of SPLICE's and TEE's input fd (`NO_FD` for other operations).
    pub source_kind: u8,
    pub _reserved: u8,
}

/// What an `InflightOp` entry stands for.
pub mod inflight {
    /// The request itself: its completions are the operation's.
    pub const REQUEST: u8 = 0;
    /// The notification request of a zero-copy send: its completion is a notice.
    pub const NOTIFICATION: u8 = 1;
}

// Padding-free: a size mismatch here means a hidden hole the kernel would not fill.
const _: () = assert!(core::mem::size_of::<InflightOp>() == 8);

// SAFETY: #[repr(C)], only integers and integer arrays, no padding (the size checks above), so
// every bit pattern is a valid value.
#[cfg(feature = "user")]
mod pod {
    use super::*;
    unsafe impl aya::Pod for InflightOp {}
}
