//! What the tracepoint hook keeps per thread between a syscall's enter and its exit.

/// What a thread's exit tracepoint needs from its enter tracepoint.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct PendingCall {
    /// Syscall id of the call in flight.
    pub syscall: u32,
    /// 1 between enter and exit; 0 once the exit consumed it.
    pub in_flight: u16,
    /// `fd_kind` of the fd data comes out of (`UNKNOWN` when the syscall has none).
    pub source_kind: u8,
    /// `fd_kind` of the fd data goes into.
    pub destination_kind: u8,
    /// The `flags` argument of the send and recvmsg families.
    pub msg_flags: u64,
    /// User address of the `struct mmsghdr` array (sendmmsg/recvmmsg), or of the `struct
    /// user_msghdr` of a recvmsg (where error-queue notices arrive).
    pub vector: u64,
}

// Padding-free: a size mismatch here means a hidden hole the kernel would not fill.
const _: () = assert!(core::mem::size_of::<PendingCall>() == 24);

// SAFETY: #[repr(C)], only integers and integer arrays, no padding (the size checks above), so
// every bit pattern is a valid value.
#[cfg(feature = "user")]
mod pod {
    use super::*;
    unsafe impl aya::Pod for PendingCall {}
}
