//! The live counters: what is counted of one syscall (or io_uring operation) of one process,
//! and the key they are kept under.

/// Totals of one syscall (or io_uring operation) for one process.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Completed calls (operations: completions), failed ones included.
    pub calls: u64,
    /// Bytes moved, as the kernel reported them (failed calls add none).
    pub bytes: u64,
    /// Calls that returned an error.
    pub errors: u64,
    /// Of `bytes`, those of sends that asked for zero copy (`MSG_ZEROCOPY`, `SEND_ZC`): the
    /// kernel's completion notices say whether it copied them anyway.
    pub msg_zerocopy_bytes: u64,
    /// Those sends: each has its own number in the socket's sequence of completion notices.
    pub zerocopy_sends: u64,
    /// Sends covered by completion notices the process read (recvmsg with `MSG_ERRQUEUE`) or
    /// received (io_uring notifications with usage reports).
    pub zerocopy_notified: u64,
    /// Of `zerocopy_notified`, the sends the notices say the kernel copied.
    pub zerocopy_copied: u64,
    /// Of `bytes`, those between user memory and a file or block device opened `O_DIRECT`:
    /// moved by DMA, not by the CPU.
    pub direct_bytes: u64,
    /// `bytes` by the kind (`fd_kind`) of the fd they came out of; all zero for syscalls whose
    /// source is user memory (the write and send families, vmsplice).
    pub source_kind_bytes: [u64; fd_kind::COUNT],
    /// `bytes` by the kind of the fd they went into; all zero for the read and recv families.
    pub destination_kind_bytes: [u64; fd_kind::COUNT],
}

impl Counters {
    /// All zero, as a constant the kernel side can keep in read-only data (zeroing 224 bytes
    /// on the stack costs the verifier a byte loop on every path).
    pub const ZERO: Counters = Counters {
        calls: 0,
        bytes: 0,
        errors: 0,
        msg_zerocopy_bytes: 0,
        zerocopy_sends: 0,
        zerocopy_notified: 0,
        zerocopy_copied: 0,
        direct_bytes: 0,
        source_kind_bytes: [0; fd_kind::COUNT],
        destination_kind_bytes: [0; fd_kind::COUNT],
    };

    pub fn add(&mut self, other: &Counters) {
        self.calls = self.calls.wrapping_add(other.calls);
        self.bytes = self.bytes.wrapping_add(other.bytes);
        self.errors = self.errors.wrapping_add(other.errors);
        self.msg_zerocopy_bytes = self
            .msg_zerocopy_bytes
            .wrapping_add(other.msg_zerocopy_bytes);
        self.zerocopy_sends = self.zerocopy_sends.wrapping_add(other.zerocopy_sends);
        self.zerocopy_notified = self.zerocopy_notified.wrapping_add(other.zerocopy_notified);
        self.zerocopy_copied = self.zerocopy_copied.wrapping_add(other.zerocopy_copied);
        self.direct_bytes = self.direct_bytes.wrapping_add(other.direct_bytes);
        for i in 0..fd_kind::COUNT {
            self.source_kind_bytes[i] =
                self.source_kind_bytes[i].wrapping_add(other.source_kind_bytes[i]);
            self.destination_kind_bytes[i] =
                self.destination_kind_bytes[i].wrapping_add(other.destination_kind_bytes[i]);
        }
    }

    pub fn is_zero(&self) -> bool {
        *self == Counters::default()
    }
}

/// What an fd refers to, resolved in the kernel from its `struct file` when the call starts.
pub mod fd_kind {
    /// The fd could not be resolved (closed, or the kernel offsets are unknown).
    pub const UNKNOWN: u8 = 0;
    /// A regular file.
    pub const FILE: u8 = 1;
    pub const BLOCK: u8 = 2;
    pub const TCP: u8 = 3;
    pub const UDP: u8 = 4;
    pub const UNIX: u8 = 5;
    /// A pipe or FIFO.
    pub const PIPE: u8 = 6;
    /// A character device: a tty, /dev/null, ...
    pub const CHAR: u8 = 7;
    /// A socket of another family or protocol (netlink, raw, ...).
    pub const SOCKET: u8 = 8;
    /// Anything else: eventfd, directories, anonymous inodes, ...
    pub const OTHER: u8 = 9;
    pub const COUNT: usize = 10;
    /// In `PendingCall`: the syscall has no fd on this side (data comes from or goes to user
    /// memory).
    pub const NO_FD: u8 = u8::MAX;
    /// Or'ed into a resolved kind (never into `NO_FD`): the file or block device was opened
    /// `O_DIRECT`.
    pub const DIRECT: u8 = 0x40;

    /// The kind without the `DIRECT` bit, and whether it was set.
    #[inline(always)]
    pub const fn split(kind: u8) -> (u8, bool) {
        if kind == NO_FD {
            (NO_FD, false)
        } else {
            (kind & !DIRECT, kind & DIRECT != 0)
        }
    }
    /// Names as shown in reports and JSON, by kind.
    pub const NAMES: [&str; COUNT] = [
        "unknown", "file", "block", "tcp", "udp", "unix", "pipe", "char", "socket", "other",
    ];
}

/// Key of the live counters: one process (thread group) and one id (a syscall's, or an
/// io_uring operation's: see `ID_COUNT`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ProcKey {
    pub tgid: u32,
    pub syscall: u32,
}

// Padding-free layouts: a size mismatch here means a hidden hole the kernel would not fill.
const _: () = assert!(core::mem::size_of::<Counters>() == 64 + 2 * 8 * fd_kind::COUNT);
const _: () = assert!(core::mem::size_of::<ProcKey>() == 8);

// SAFETY: #[repr(C)], only integers and integer arrays, no padding (the size checks above), so
// every bit pattern is a valid value.
#[cfg(feature = "user")]
mod pod {
    use super::*;
    unsafe impl aya::Pod for Counters {}
    unsafe impl aya::Pod for ProcKey {}
}
