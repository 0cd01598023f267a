//! The running task, for the typed hook, without a helper call on most calls.
//!
//! Where the kernel mitigates returns (AMD's Safe RET, retpolines), `bpf_get_current_task_btf`
//! costs some 20 ns, more than the rest of a short call's counting. The hook has, for free, the
//! address of the saved registers of the thread returning from its syscall: they sit at the
//! top of that thread's kernel stack, so the address tells threads apart. Each CPU remembers
//! the last thread it asked the kernel about: that address, its task and the task's stack.
//!
//! The remembered task is the running one when the address matches and the remembered task
//! still has the remembered stack. A matching address means the running thread has that stack
//! now. A task's stack is one live task's at a time, and the kernel sets a dead task's `stack`
//! to NULL when it frees the stack, before anyone can be given it again. So a thread that
//! exited, whose stack went to a new thread, fails the check; so does a task_struct reused for
//! a task with another stack. Anything else asks the kernel and remembers the answer.
//!
//! Only programs on a CPU read or write its entry, and they do not interleave there.

use core::ptr::{read_volatile, write_volatile};

use aya_ebpf::{helpers::bpf_get_current_task_btf, macros::map, maps::PerCpuArray};

use crate::{config, fd_kind};

/// The thread each CPU last asked the kernel about.
#[map]
static CURRENT_THREAD: PerCpuArray<Remembered> = PerCpuArray::with_max_entries(1, 0);

/// The thread a CPU last asked the kernel about.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Remembered {
    /// Address of its saved registers (0: nothing remembered yet).
    regs: u64,
    task: u64,
    /// Its task's `stack` then.
    stack: u64,
}

/// The running task, BTF-typed (untrusted: its members read as 0 where not there), given the
/// address of the saved registers the sys_exit tracepoint passed.
#[inline(always)]
pub fn task_typed(regs: *const u8) -> *const u8 {
    let casts = config::typed_casts();
    let Some(entry) = CURRENT_THREAD.get_ptr_mut(0) else {
        // A one-entry per-CPU array always has this CPU's entry; were it missing, ask. Cast
        // like the remembered task, so the verifier follows one kind of pointer.
        // SAFETY: the helper has no preconditions; the cast is to `struct task_struct`.
        return unsafe { fd_kind::typed_cast(bpf_get_current_task_btf() as *const u8, casts.task) };
    };
    let stack_offset = config::typed_task_stack();
    // SAFETY: `entry` is this CPU's element (see the module doc). The remembered task is only
    // read through `typed_cast`, whose loads read 0 where the memory is gone; `stack_offset` is
    // the loader's offset of the 8-byte `task_struct.stack`.
    unsafe {
        let remembered = read_volatile(entry);
        let task = fd_kind::typed_cast(remembered.task as *const u8, casts.task);
        let still_running = remembered.regs == regs as u64
            && fd_kind::member::<u64>(task, stack_offset) == remembered.stack;
        if !still_running {
            let current = bpf_get_current_task_btf() as *const u8;
            write_volatile(
                entry,
                Remembered {
                    regs: regs as u64,
                    task: current as u64,
                    stack: fd_kind::member::<u64>(current, stack_offset),
                },
            );
        }
        // Read back either way: one typed pointer for the verifier to follow, not two.
        fd_kind::typed_cast(
            read_volatile(&raw const (*entry).task) as *const u8,
            casts.task,
        )
    }
}

/// The process (thread group) id of `task`.
///
/// # Safety
/// `task` must come from `task_typed`.
#[inline(always)]
pub unsafe fn tgid(task: *const u8) -> u32 {
    // SAFETY: `typed_task_tgid` is the offset of the u32 `task_struct.tgid` (the loader checks
    // its size).
    unsafe { fd_kind::member(task, config::typed_task_tgid()) }
}
