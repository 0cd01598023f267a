//! The one description of every traced syscall. Everything that varies by syscall is a field of
//! its row: its number on each architecture, which arguments are fds, how its bytes are
//! counted, how it moves them (its `Method`), and the name people know it by. The loader
//! derives its attach list and the kernel configuration from this table; the model, the
//! correlation and the workload helper's ground truth derive from it too. Adding a syscall is
//! one row here (plus its tracepoints existing in the kernel).

/// How a data path moves its bytes. This is what decides whether the CPU copied them across
/// the user/kernel boundary, how flows are paired, and what a finding may recommend. A second
/// table of data paths (io_uring operations) shares it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    /// Between an fd and user memory, one CPU copy per byte: the read and recv families bring
    /// data in (the fd is the source), the write and send families take it out (the fd is the
    /// destination).
    UserCopy,
    /// `sendfile`: file pages handed to another fd inside the kernel.
    Sendfile,
    /// `copy_file_range`: file to file inside the kernel (or the filesystem).
    CopyFileRange,
    /// `splice`, `tee`, `vmsplice`: page references moved through pipes.
    PipeMover,
    /// A send that asks the kernel to pin the user pages instead of copying them (io_uring's
    /// `SEND_ZC`, `SENDMSG_ZC`; `MSG_ZEROCOPY` sends are `UserCopy` calls with a flag). The
    /// kernel may copy anyway and says so in completion notices: zero copy only where they
    /// confirm it.
    ZeroCopySend,
    /// Between a file opened with `O_DIRECT` and user memory: DMA, no CPU copy. No table row
    /// has it: the bytes of user-copy calls on such a file are counted apart and moved here.
    DirectIo,
    /// `io_uring_enter`: submits and reaps io_uring operations, moves no bytes itself (its
    /// operations are counted on their own rows). Only its transitions count.
    RingSubmit,
}

impl Method {
    /// Bytes moved this way stay in the kernel (or go by DMA): zero copy by construction.
    pub const fn in_kernel(self) -> bool {
        matches!(
            self,
            Method::Sendfile | Method::CopyFileRange | Method::PipeMover | Method::DirectIo
        )
    }
}

/// How the exit's return value turns into bytes moved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counting {
    /// The return value is the byte count.
    ReturnValue,
    /// The return value is a message count; bytes are the sum of `msg_len` of the first
    /// `ret` entries of the `struct mmsghdr` array passed at enter.
    MmsgLengths,
    /// The return value is not a byte count (`io_uring_enter` returns the entries it
    /// consumed): calls and errors only.
    CallsOnly,
}

/// The architectures whose syscall numbers the table carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    X86_64,
    Aarch64,
}

impl Arch {
    /// The architecture this code was compiled for, if the table knows it.
    pub const HOST: Option<Arch> = if cfg!(target_arch = "x86_64") {
        Some(Arch::X86_64)
    } else if cfg!(target_arch = "aarch64") {
        Some(Arch::Aarch64)
    } else {
        None
    };
}

/// A syscall's number on each architecture (64-bit ABIs; 32-bit compat calls are not traced).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Numbers {
    pub x86_64: u16,
    pub aarch64: u16,
}

/// One traced syscall. Field names are those of the tracepoint's `format` file; the loader
/// looks their offsets up there instead of trusting constants.
#[derive(Clone, Copy, Debug)]
pub struct SyscallDesc {
    /// Name as in `sys_enter_<name>` / `sys_exit_<name>` and in the JSON output.
    pub name: &'static str,
    /// Name as people know it (`sendfile`, not the tracepoint's `sendfile64`): flows and
    /// findings use it.
    pub display: &'static str,
    pub numbers: Numbers,
    pub method: Method,
    pub counting: Counting,
    /// `format` field of the fd data comes from, if the syscall has one.
    pub source_fd: Option<&'static str>,
    /// `format` field of the fd data goes to, if the syscall has one.
    pub destination_fd: Option<&'static str>,
    /// `format` field holding `MSG_*` flags where `MSG_ZEROCOPY` matters (the send family).
    pub msg_flags: Option<&'static str>,
    /// `format` field holding the `struct mmsghdr *` for `Counting::MmsgLengths`.
    pub mmsg_vector: Option<&'static str>,
    /// `format` field holding the `struct user_msghdr *` of a receive that may read the
    /// socket's error queue (`MSG_ERRQUEUE` in `msg_flags`): where `MSG_ZEROCOPY` completion
    /// notices arrive.
    pub errqueue_msghdr: Option<&'static str>,
}

impl SyscallDesc {
    /// The syscall's number on `arch`.
    pub const fn number(&self, arch: Arch) -> u16 {
        match arch {
            Arch::X86_64 => self.numbers.x86_64,
            Arch::Aarch64 => self.numbers.aarch64,
        }
    }

    /// A send whose flags may ask for `MSG_ZEROCOPY` (as opposed to a receive whose flags may
    /// ask for the error queue).
    pub const fn is_send(&self) -> bool {
        self.msg_flags.is_some() && self.destination_fd.is_some()
    }
}

const fn desc(name: &'static str, x86_64: u16, aarch64: u16, method: Method) -> SyscallDesc {
    SyscallDesc {
        name,
        display: name,
        numbers: Numbers { x86_64, aarch64 },
        method,
        counting: Counting::ReturnValue,
        source_fd: None,
        destination_fd: None,
        msg_flags: None,
        mmsg_vector: None,
        errqueue_msghdr: None,
    }
}

/// A syscall that reads from `fd` into user memory.
const fn reads(name: &'static str, x86_64: u16, aarch64: u16) -> SyscallDesc {
    SyscallDesc {
        source_fd: Some("fd"),
        ..desc(name, x86_64, aarch64, Method::UserCopy)
    }
}

/// A syscall that writes user memory into `fd`.
const fn writes(name: &'static str, x86_64: u16, aarch64: u16) -> SyscallDesc {
    SyscallDesc {
        destination_fd: Some("fd"),
        ..desc(name, x86_64, aarch64, Method::UserCopy)
    }
}

/// A send: a write whose `flags` may ask for `MSG_ZEROCOPY`.
const fn sends(name: &'static str, x86_64: u16, aarch64: u16) -> SyscallDesc {
    SyscallDesc {
        msg_flags: Some("flags"),
        ..writes(name, x86_64, aarch64)
    }
}

/// A syscall the kernel serves from `source` into `destination` without user memory.
const fn moves(
    name: &'static str,
    x86_64: u16,
    aarch64: u16,
    method: Method,
    source: &'static str,
    destination: &'static str,
) -> SyscallDesc {
    SyscallDesc {
        source_fd: Some(source),
        destination_fd: Some(destination),
        ..desc(name, x86_64, aarch64, method)
    }
}

/// A receive whose flags and `struct user_msghdr` are kept: with `MSG_ERRQUEUE` it reads
/// zero-copy completion notices.
const fn reads_errqueue(name: &'static str, x86_64: u16, aarch64: u16) -> SyscallDesc {
    SyscallDesc {
        msg_flags: Some("flags"),
        errqueue_msghdr: Some("msg"),
        ..reads(name, x86_64, aarch64)
    }
}

const fn counting_mmsg(d: SyscallDesc) -> SyscallDesc {
    SyscallDesc {
        counting: Counting::MmsgLengths,
        mmsg_vector: Some("mmsg"),
        ..d
    }
}

/// Number of traced syscalls; the index of a syscall in `SYSCALLS` is its id in the kernel maps.
pub const SYSCALL_COUNT: usize = 22;

/// Every data-path syscall zerocopy-trace follows, in the order of their ids. Numbers from the
/// kernel's `arch/x86/entry/syscalls/syscall_64.tbl` and `include/uapi/asm-generic/unistd.h`.
pub const SYSCALLS: [SyscallDesc; SYSCALL_COUNT] = [
    reads("read", 0, 63),
    writes("write", 1, 64),
    reads("readv", 19, 65),
    writes("writev", 20, 66),
    reads("pread64", 17, 67),
    writes("pwrite64", 18, 68),
    reads("preadv", 295, 69),
    writes("pwritev", 296, 70),
    reads("preadv2", 327, 286),
    writes("pwritev2", 328, 287),
    reads("recvfrom", 45, 207),
    reads_errqueue("recvmsg", 47, 212),
    counting_mmsg(reads("recvmmsg", 299, 243)),
    sends("sendto", 44, 206),
    sends("sendmsg", 46, 211),
    counting_mmsg(sends("sendmmsg", 307, 269)),
    // 64-bit kernels have one sendfile syscall; its tracepoint is named `sendfile64`.
    SyscallDesc {
        display: "sendfile",
        ..moves("sendfile64", 40, 71, Method::Sendfile, "in_fd", "out_fd")
    },
    moves("splice", 275, 76, Method::PipeMover, "fd_in", "fd_out"),
    moves("tee", 276, 77, Method::PipeMover, "fdin", "fdout"),
    // vmsplice maps user pages into (or out of) the pipe `fd`; the pipe is where data goes.
    SyscallDesc {
        destination_fd: Some("fd"),
        ..desc("vmsplice", 278, 75, Method::PipeMover)
    },
    moves(
        "copy_file_range",
        326,
        285,
        Method::CopyFileRange,
        "fd_in",
        "fd_out",
    ),
    // The io_uring operations it submits are counted on their own (`io_uring.rs`); the call
    // itself is what an io_uring process still pays in transitions.
    SyscallDesc {
        counting: Counting::CallsOnly,
        ..desc("io_uring_enter", 426, 426, Method::RingSubmit)
    },
];

/// The id of the syscall called `name`, if it is traced.
pub fn syscall_id(name: &str) -> Option<usize> {
    SYSCALLS.iter().position(|s| s.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_are_unique() {
        for (i, a) in SYSCALLS.iter().enumerate() {
            for b in &SYSCALLS[i + 1..] {
                assert_ne!(a.name, b.name);
                assert_ne!(a.display, b.display);
                for arch in [Arch::X86_64, Arch::Aarch64] {
                    assert_ne!(a.number(arch), b.number(arch), "{} {}", a.name, b.name);
                }
            }
        }
    }

    #[test]
    fn only_the_mmsg_pair_counts_message_lengths() {
        let mmsg: [&str; 2] = ["recvmmsg", "sendmmsg"];
        for s in &SYSCALLS {
            assert_eq!(
                s.counting == Counting::MmsgLengths,
                mmsg.contains(&s.name),
                "{}",
                s.name
            );
            assert_eq!(
                s.mmsg_vector.is_some(),
                mmsg.contains(&s.name),
                "{}",
                s.name
            );
        }
    }

    #[test]
    fn in_kernel_movers_are_the_zero_copy_set() {
        let movers: [&str; 5] = ["sendfile64", "splice", "tee", "vmsplice", "copy_file_range"];
        for s in &SYSCALLS {
            assert_eq!(s.method.in_kernel(), movers.contains(&s.name), "{}", s.name);
        }
        assert_eq!(
            SYSCALLS[syscall_id("io_uring_enter").unwrap()].counting,
            Counting::CallsOnly
        );
    }

    #[test]
    fn every_copy_has_exactly_one_fd_and_only_sends_and_recvmsg_carry_flags() {
        for s in &SYSCALLS {
            assert_eq!(
                s.source_fd.is_some() || s.destination_fd.is_some(),
                s.method != Method::RingSubmit,
                "{}",
                s.name
            );
            // A user-space copy has one fd end: data comes in (read) or goes out (write).
            if s.method == Method::UserCopy {
                assert!(
                    s.source_fd.is_some() != s.destination_fd.is_some(),
                    "{}",
                    s.name
                );
            }
            assert_eq!(
                s.is_send(),
                ["sendto", "sendmsg", "sendmmsg"].contains(&s.name),
                "{}",
                s.name
            );
            assert_eq!(
                s.msg_flags.is_some(),
                ["sendto", "sendmsg", "sendmmsg", "recvmsg"].contains(&s.name),
                "{}",
                s.name
            );
            assert_eq!(s.errqueue_msghdr.is_some(), s.name == "recvmsg");
        }
        assert_eq!(syscall_id("sendfile64"), Some(16));
        assert_eq!(SYSCALLS[16].display, "sendfile");
        assert_eq!(syscall_id("sendfile"), None);
    }
}
