//! The one description of every traced io_uring operation: the second table of data paths,
//! of the same shape as `SYSCALLS`. An operation is submitted (`io_uring:io_uring_submit_req`)
//! and completes (`io_uring:io_uring_complete`) without a syscall of its own, so the syscall
//! table cannot see it. Each row gives the operation's name as the tracepoints' `op_str`
//! prints it, its opcode (`include/uapi/linux/io_uring.h`, stable ABI), how it moves its
//! bytes (`Method`), and which end of the data the request's file is. Operations that move no
//! data (NOP, POLL_ADD, TIMEOUT, OPENAT, ...) are not in the table and are not followed.
//!
//! In the kernel maps an operation's id comes after the syscalls': `SYSCALL_COUNT + index`.

use crate::syscalls::{Method, SYSCALL_COUNT};

/// Which end of the data the request's file (the SQE's `fd`) is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileRole {
    /// Data comes out of it (into user memory): the read and receive families.
    Source,
    /// Data goes into it: the write and send families, and the output of SPLICE and TEE.
    Destination,
}

/// One traced io_uring operation.
#[derive(Clone, Copy, Debug)]
pub struct IoUringOpDesc {
    /// As the tracepoints' `op_str` prints it, and in the JSON output.
    pub name: &'static str,
    /// As flows and findings name it.
    pub display: &'static str,
    pub opcode: u8,
    pub method: Method,
    pub file: FileRole,
    /// The operation also reads from a second fd, given by `io_splice.splice_fd_in` (SPLICE,
    /// TEE): its kind is resolved at submit, when the submitter's fd table is at hand.
    pub input_fd: bool,
}

impl IoUringOpDesc {
    /// Its id in the kernel maps and in `ProcessCounters`.
    pub const fn id(index: usize) -> usize {
        SYSCALL_COUNT + index
    }

    /// The request's file is where data comes from (so the other end is user memory, unless
    /// the operation has an input fd).
    pub const fn file_is_source(&self) -> bool {
        matches!(self.file, FileRole::Source)
    }
}

const fn op(
    name: &'static str,
    display: &'static str,
    opcode: u8,
    method: Method,
    file: FileRole,
) -> IoUringOpDesc {
    IoUringOpDesc {
        name,
        display,
        opcode,
        method,
        file,
        input_fd: false,
    }
}

const fn reads(name: &'static str, display: &'static str, opcode: u8) -> IoUringOpDesc {
    op(name, display, opcode, Method::UserCopy, FileRole::Source)
}

const fn writes(name: &'static str, display: &'static str, opcode: u8) -> IoUringOpDesc {
    op(
        name,
        display,
        opcode,
        Method::UserCopy,
        FileRole::Destination,
    )
}

const fn pipes(name: &'static str, display: &'static str, opcode: u8) -> IoUringOpDesc {
    IoUringOpDesc {
        input_fd: true,
        ..op(
            name,
            display,
            opcode,
            Method::PipeMover,
            FileRole::Destination,
        )
    }
}

/// Number of traced io_uring operations.
pub const IO_URING_OP_COUNT: usize = 17;

/// Opcodes below this are looked up in the kernel's opcode -> operation table.
pub const MAX_IO_URING_OPCODE: usize = 64;

/// Every data-moving io_uring operation, in the order of their ids.
pub const IO_URING_OPS: [IoUringOpDesc; IO_URING_OP_COUNT] = [
    reads("READ", "io_uring READ", 22),
    writes("WRITE", "io_uring WRITE", 23),
    reads("READV", "io_uring READV", 1),
    writes("WRITEV", "io_uring WRITEV", 2),
    reads("READ_FIXED", "io_uring READ_FIXED", 4),
    writes("WRITE_FIXED", "io_uring WRITE_FIXED", 5),
    reads("READV_FIXED", "io_uring READV_FIXED", 60),
    writes("WRITEV_FIXED", "io_uring WRITEV_FIXED", 61),
    reads("READ_MULTISHOT", "io_uring READ_MULTISHOT", 49),
    reads("RECV", "io_uring RECV", 27),
    reads("RECVMSG", "io_uring RECVMSG", 10),
    writes("SEND", "io_uring SEND", 26),
    writes("SENDMSG", "io_uring SENDMSG", 9),
    op(
        "SEND_ZC",
        "io_uring SEND_ZC",
        47,
        Method::ZeroCopySend,
        FileRole::Destination,
    ),
    op(
        "SENDMSG_ZC",
        "io_uring SENDMSG_ZC",
        48,
        Method::ZeroCopySend,
        FileRole::Destination,
    ),
    pipes("SPLICE", "io_uring SPLICE", 30),
    pipes("TEE", "io_uring TEE", 33),
];

/// The index of the operation called `name` (as `op_str` prints it), if it is traced.
pub fn io_uring_op_index(name: &str) -> Option<usize> {
    IO_URING_OPS.iter().position(|o| o.name == name)
}

/// `IORING_CQE_F_MORE`: the request will complete again (multishot, or a zero-copy send whose
/// notification follows).
pub const IORING_CQE_F_MORE: u32 = 1 << 1;
/// `IORING_CQE_F_NOTIF`: a zero-copy send's notification that the kernel released its pages.
pub const IORING_CQE_F_NOTIF: u32 = 1 << 3;
/// `SPLICE_F_FD_IN_FIXED`: `splice_fd_in` is an index into the registered files, not an fd.
pub const SPLICE_F_FD_IN_FIXED: u32 = 1 << 31;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_opcodes_are_unique_and_in_range() {
        for (i, a) in IO_URING_OPS.iter().enumerate() {
            assert!((a.opcode as usize) < MAX_IO_URING_OPCODE, "{}", a.name);
            assert!(a.display.ends_with(a.name));
            for b in &IO_URING_OPS[i + 1..] {
                assert_ne!(a.name, b.name);
                assert_ne!(a.opcode, b.opcode);
            }
        }
        assert_eq!(io_uring_op_index("SEND_ZC"), Some(13));
        assert_eq!(IO_URING_OPS[13].method, Method::ZeroCopySend);
        assert!(IO_URING_OPS
            .iter()
            .all(|o| o.input_fd == (o.method == Method::PipeMover)));
    }
}
