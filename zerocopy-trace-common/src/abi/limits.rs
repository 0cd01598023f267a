//! The numbers both sides size and bound things by: ids, syscall numbers, CPUs, names, and
//! the few constants of the kernel's ABI the programs need.

use crate::{io_uring::IO_URING_OP_COUNT, syscalls::SYSCALL_COUNT};

/// Ids in the kernel's per-process counters: the syscalls, then the io_uring operations.
pub const ID_COUNT: usize = SYSCALL_COUNT + IO_URING_OP_COUNT;

/// `MSG_ZEROCOPY` from `<linux/socket.h>`: a send that pins user pages instead of copying them.
pub const MSG_ZEROCOPY: u64 = 0x400_0000;
/// `UIO_MAXIOV`: the kernel caps `vlen` of sendmmsg/recvmmsg at this, so summing this many
/// `msg_len`s never truncates.
pub const MAX_MMSG: u32 = 1024;
/// `sizeof(struct mmsghdr)` on 64-bit Linux: a `struct msghdr` (56) then `unsigned msg_len`.
pub const MMSGHDR_SIZE: u64 = 64;
/// Offset of `msg_len` inside `struct mmsghdr` on 64-bit Linux.
pub const MMSGHDR_LEN_OFFSET: u64 = 56;
/// Syscall numbers below this are looked up in `Config::syscall_of_nr`.
pub const MAX_SYSCALL_NR: usize = 512;
/// `Config::syscall_of_nr` value of a syscall that is not traced.
pub const NOT_TRACED: u8 = u8::MAX;
/// Upper bound on CPUs the exit program sums per-CPU counters over.
pub const MAX_CPUS: u32 = 1024;
/// Length of a task's `comm`, as in the kernel.
pub const COMM_LEN: usize = 16;
/// Most `--comm` names the kernel filter matches.
pub const MAX_COMMS: usize = 8;
