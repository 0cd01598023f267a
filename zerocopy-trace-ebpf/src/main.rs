//! zerocopy-trace's kernel side: counts, per process and per syscall, the calls, bytes and
//! errors of every data-path syscall, and hands over a process's final counts when it exits.
//!
//! Data flow: `sys_enter_*` stores what the exit needs per thread (`syscall`), `sys_exit_*`
//! adds the result to per-CPU counters (`syscall`), `sched_process_fork` follows children and
//! parents (`process`), `sched_process_exit` frees per-thread state and ships a process's final
//! counts through a ring buffer before freeing them (`process`). io_uring operations, which
//! need no syscall, are counted from the io_uring tracepoints into the same counters
//! (`io_uring`).
#![no_std]
// For one atomic exchange (`hot_slot`): the BPF target has no `AtomicU64::swap`. xtask builds
// with RUSTC_BOOTSTRAP for build-std already.
#![feature(core_intrinsics)]
#![allow(internal_features)]
#![no_main]

mod config;
mod counters;
mod current;
mod empty;
mod fd_kind;
mod hot_slot;
mod io_uring;
mod maps;
mod process;
mod stage;
mod syscall;
mod words;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier rejects any program that could reach this: there is no unwinding in BPF.
    loop {}
}
