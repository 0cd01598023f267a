//! How each call's bytes crossed between an fd and user memory: copied by the CPU, by DMA
//! (`O_DIRECT`), pinned (zero-copy sends the kernel's notices confirmed), or moved in the
//! kernel. The cost and the flows both start from it.

use zerocopy_trace_common::{Counters, Method};

use crate::snapshot::{Path, ProcessCounters};

/// The sends of a process that asked for zero copy (`MSG_ZEROCOPY`, io_uring's `SEND_ZC`),
/// and what the kernel's completion notices said of them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ZeroCopySends {
    /// Sends that asked for zero copy and took bytes.
    pub sends: u64,
    pub bytes: u64,
    /// Sends covered by a notice the process read (with io_uring: a notification with a
    /// usage report).
    pub notified: u64,
    /// Of those, the sends the kernel copied anyway.
    pub copied: u64,
    /// Some of the sends were `MSG_ZEROCOPY` syscalls; some were io_uring operations.
    pub by_syscall: bool,
    pub by_io_uring: bool,
}

impl ZeroCopySends {
    pub fn of(counters: &ProcessCounters) -> ZeroCopySends {
        let mut z = ZeroCopySends::default();
        for (_, path, c) in counters.rows() {
            z.sends = z.sends.saturating_add(c.zerocopy_sends);
            z.bytes = z.bytes.saturating_add(c.msg_zerocopy_bytes.min(c.bytes));
            z.notified = z.notified.saturating_add(c.zerocopy_notified);
            z.copied = z.copied.saturating_add(c.zerocopy_copied);
            if c.zerocopy_sends > 0 {
                if path.io_uring {
                    z.by_io_uring = true;
                } else {
                    z.by_syscall = true;
                }
            }
        }
        z
    }

    /// Notices cover at most the sends made (notices of sends made before the trace began
    /// confirm nothing counted here), and copied ones at most those notified.
    fn clamped(&self) -> (u64, u64) {
        let notified = self.notified.min(self.sends);
        (notified, self.copied.min(notified))
    }

    /// Sends the kernel said it copied.
    pub fn kernel_copied(&self) -> u64 {
        self.clamped().1
    }

    /// Sends no notice confirmed either way: not taken as zero copy.
    pub fn unconfirmed(&self) -> u64 {
        self.sends.saturating_sub(self.clamped().0)
    }

    /// Sends the kernel confirmed it did not copy.
    pub fn confirmed(&self) -> u64 {
        let (notified, copied) = self.clamped();
        notified - copied
    }

    /// The confirmed share of `bytes` asked for zero copy. Notices count sends, not bytes:
    /// when only some sends are confirmed, their bytes are taken as that share of the bytes.
    pub fn confirmed_share(&self, bytes: u64) -> u64 {
        if self.sends == 0 {
            return 0;
        }
        let share = u128::from(bytes) * u128::from(self.confirmed()) / u128::from(self.sends);
        u64::try_from(share).unwrap_or(u64::MAX).min(bytes)
    }
}

/// How one syscall's (or operation's) bytes split between the two paths.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MethodBytes {
    /// Copied by a CPU across the user/kernel boundary.
    pub copied: u64,
    /// Moved in the kernel (sendfile, splice, ...), by DMA (`O_DIRECT`), or by zero-copy
    /// sends the kernel confirmed.
    pub zero_copy: u64,
    /// Of `zero_copy`: by DMA to or from an `O_DIRECT` file.
    pub direct: u64,
    /// Of `zero_copy`: sends the kernel confirmed it did not copy.
    pub pinned: u64,
}

impl MethodBytes {
    /// How `c`'s bytes, counted for `path`, split between the two paths, given what the
    /// process's zero-copy notices said (`sends`).
    pub fn of(path: &Path, c: &Counters, sends: &ZeroCopySends) -> MethodBytes {
        match path.method {
            Method::UserCopy | Method::ZeroCopySend => {
                // DMA to or from an O_DIRECT file, then sends that asked for zero copy (as far
                // as the notices confirm them), then the rest: copied.
                let direct = c.direct_bytes.min(c.bytes);
                let asked = c.msg_zerocopy_bytes.min(c.bytes - direct);
                let pinned = sends.confirmed_share(asked);
                MethodBytes {
                    copied: c.bytes - direct - pinned,
                    zero_copy: direct + pinned,
                    direct,
                    pinned,
                }
            }
            Method::Sendfile | Method::CopyFileRange | Method::PipeMover | Method::DirectIo => {
                MethodBytes {
                    zero_copy: c.bytes,
                    ..MethodBytes::default()
                }
            }
            Method::RingSubmit => MethodBytes::default(),
        }
    }
}
