//! The one description of every traced syscall. The loader derives its attach list and the
//! kernel configuration from it; the model derives copies, zero-copy bytes and transitions from
//! it. Adding a syscall is one row here (plus its tracepoints existing in the kernel).

/// How a syscall moves data, which decides whether its bytes were copied by the CPU across the
/// user/kernel boundary or moved inside the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// read/readv/pread*: kernel -> user memory, one CPU copy.
    Read,
    /// write/writev/pwrite*: user memory -> kernel, one CPU copy.
    Write,
    /// recv*: socket -> user memory, one CPU copy.
    Recv,
    /// send*: user memory -> socket, one CPU copy (unless `MSG_ZEROCOPY`).
    Send,
    /// sendfile/splice/tee/copy_file_range/vmsplice: the kernel moves page references; no
    /// CPU copy across the user/kernel boundary.
    InKernel,
}

impl Family {
    /// Bytes of this family cross the user/kernel boundary by a CPU copy.
    pub const fn copies_across_boundary(self) -> bool {
        !matches!(self, Family::InKernel)
    }
}

/// How the exit tracepoint's return value turns into bytes moved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counting {
    /// The return value is the byte count.
    ReturnValue,
    /// The return value is a message count; bytes are the sum of `msg_len` of the first
    /// `ret` entries of the `struct mmsghdr` array passed at enter.
    MmsgLengths,
}

/// Which role an fd argument plays in the data flow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FdRole {
    /// Data comes out of this fd.
    Source,
    /// Data goes into this fd.
    Destination,
}

/// One traced syscall. Field names are those of the tracepoint's `format` file; the loader
/// looks their offsets up there instead of trusting constants.
#[derive(Clone, Copy, Debug)]
pub struct SyscallDesc {
    /// Name as in `sys_enter_<name>` / `sys_exit_<name>` and in the JSON output.
    pub name: &'static str,
    pub family: Family,
    pub counting: Counting,
    /// `format` field of the fd data comes from, if the syscall has one.
    pub source_fd: Option<&'static str>,
    /// `format` field of the fd data goes to, if the syscall has one.
    pub destination_fd: Option<&'static str>,
    /// `format` field holding `MSG_*` flags (send family: `MSG_ZEROCOPY` is counted apart).
    pub msg_flags: Option<&'static str>,
    /// `format` field holding the `struct mmsghdr *` for `Counting::MmsgLengths`.
    pub mmsg_vector: Option<&'static str>,
}

const fn desc(name: &'static str, family: Family) -> SyscallDesc {
    SyscallDesc {
        name,
        family,
        counting: Counting::ReturnValue,
        source_fd: None,
        destination_fd: None,
        msg_flags: None,
        mmsg_vector: None,
    }
}

/// A syscall that reads from `fd` into user memory.
const fn reads(name: &'static str, family: Family) -> SyscallDesc {
    SyscallDesc {
        source_fd: Some("fd"),
        ..desc(name, family)
    }
}

/// A syscall that writes user memory into `fd`.
const fn writes(name: &'static str, family: Family) -> SyscallDesc {
    SyscallDesc {
        destination_fd: Some("fd"),
        ..desc(name, family)
    }
}

/// A syscall the kernel serves from `source` into `destination` without user memory.
const fn moves(name: &'static str, source: &'static str, destination: &'static str) -> SyscallDesc {
    SyscallDesc {
        source_fd: Some(source),
        destination_fd: Some(destination),
        ..desc(name, Family::InKernel)
    }
}

const fn with_msg_flags(d: SyscallDesc) -> SyscallDesc {
    SyscallDesc {
        msg_flags: Some("flags"),
        ..d
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
pub const SYSCALL_COUNT: usize = 21;

/// Every data-path syscall zerocopy-trace follows, in the order of their ids.
pub const SYSCALLS: [SyscallDesc; SYSCALL_COUNT] = [
    reads("read", Family::Read),
    writes("write", Family::Write),
    reads("readv", Family::Read),
    writes("writev", Family::Write),
    reads("pread64", Family::Read),
    writes("pwrite64", Family::Write),
    reads("preadv", Family::Read),
    writes("pwritev", Family::Write),
    reads("preadv2", Family::Read),
    writes("pwritev2", Family::Write),
    with_msg_flags(reads("recvfrom", Family::Recv)),
    with_msg_flags(reads("recvmsg", Family::Recv)),
    counting_mmsg(with_msg_flags(reads("recvmmsg", Family::Recv))),
    with_msg_flags(writes("sendto", Family::Send)),
    with_msg_flags(writes("sendmsg", Family::Send)),
    counting_mmsg(with_msg_flags(writes("sendmmsg", Family::Send))),
    moves("sendfile64", "in_fd", "out_fd"),
    moves("splice", "fd_in", "fd_out"),
    moves("tee", "fdin", "fdout"),
    // vmsplice maps user pages into (or out of) the pipe `fd`; the pipe is where data goes.
    SyscallDesc {
        destination_fd: Some("fd"),
        ..desc("vmsplice", Family::InKernel)
    },
    moves("copy_file_range", "fd_in", "fd_out"),
];

/// The id of the syscall called `name`, if it is traced.
pub fn syscall_id(name: &str) -> Option<usize> {
    SYSCALLS.iter().position(|s| s.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique() {
        for (i, a) in SYSCALLS.iter().enumerate() {
            for b in &SYSCALLS[i + 1..] {
                assert_ne!(a.name, b.name);
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
            assert_eq!(
                !s.family.copies_across_boundary(),
                movers.contains(&s.name),
                "{}",
                s.name
            );
        }
    }

    #[test]
    fn every_syscall_names_at_least_one_fd() {
        for s in &SYSCALLS {
            assert!(
                s.source_fd.is_some() || s.destination_fd.is_some(),
                "{}",
                s.name
            );
        }
        assert_eq!(syscall_id("sendfile64"), Some(16));
        assert_eq!(syscall_id("sendfile"), None);
    }
}
