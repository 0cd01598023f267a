//! Everything the kernel programs and the agent must agree on, in one place: the tables of
//! traced syscalls and io_uring operations, the names of maps and programs, and the
//! `#[repr(C)]` records that cross the kernel/user boundary (`abi`, one file per record).
//! `no_std` so the eBPF crate can use it; the `user` feature adds `aya::Pod`.
#![no_std]

pub mod abi;
pub mod io_uring;
pub mod names;
pub mod notices;
pub mod syscalls;

pub use abi::hot::HotCounters;
pub use abi::*;
pub use io_uring::{FileRole, IoUringOpDesc, IO_URING_OPS, IO_URING_OP_COUNT};
pub use syscalls::{Arch, Counting, Method, SyscallDesc, SYSCALLS, SYSCALL_COUNT};
