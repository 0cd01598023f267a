//! Everything the kernel programs and the agent must agree on, in one place: the table of
//! traced syscalls, the names of maps and programs, and the `#[repr(C)]` records that cross the
//! kernel/user boundary. `no_std` so the eBPF crate can use it; the `user` feature adds `aya::Pod`.
#![no_std]

pub mod abi;
pub mod names;
pub mod syscalls;

pub use abi::*;
pub use syscalls::{Arch, Counting, Method, SyscallDesc, SYSCALLS, SYSCALL_COUNT};
