//! The load-time configuration written by the agent into the read-only `CONFIG` global.
//! Fields are read one at a time with volatile loads: the compiler must not fold the
//! placeholder values, and the whole struct is too large for the 512-byte BPF stack.

use core::ptr::{addr_of, read_volatile};

use zerocopy_trace_common::{
    hot::MAX_HOT_SLOT_BITS, io_uring::MAX_IO_URING_OPCODE, Config, IoUringConfig, KernelOffsets,
    SyscallConfig, TypedCasts, COMM_LEN, IO_URING_OP_COUNT, MAX_COMMS, MAX_SYSCALL_NR, NOT_TRACED,
    SYSCALL_COUNT,
};

#[no_mangle]
static CONFIG: Config = Config::empty();

macro_rules! field {
    ($($path:tt)+) => {
        // SAFETY: CONFIG is a valid, initialised static; the read is volatile so the value the
        // loader patched in is the one read.
        unsafe { read_volatile(addr_of!(CONFIG.$($path)+)) }
    };
}

/// The syscall id traced under syscall number `nr`, if any.
#[inline(always)]
pub fn syscall_of_nr(nr: i32) -> Option<u32> {
    let nr = usize::try_from(nr).ok()?;
    if nr >= MAX_SYSCALL_NR {
        return None;
    }
    let id = field!(syscall_of_nr[nr]);
    (id != NOT_TRACED && (id as usize) < SYSCALL_COUNT).then_some(id as u32)
}

/// What syscall `id` needs read, by reference like `offsets`: each use loads only the members
/// it reads (a copy would load all eight, at every use).
#[inline(always)]
pub fn syscall(id: u32) -> &'static SyscallConfig {
    // A plain comparison the verifier can follow (a modulo loses the bound on the way).
    let id = id as usize;
    if id >= SYSCALL_COUNT {
        return &UNKNOWN_SYSCALL;
    }
    &opaque().syscalls[id]
}

/// The configuration of an id out of range: nothing to read, nothing counted.
static UNKNOWN_SYSCALL: SyscallConfig = SyscallConfig::UNUSED;

#[inline(always)]
pub fn nr_offset() -> usize {
    field!(nr_offset) as usize
}

#[inline(always)]
pub fn ret_offset() -> usize {
    field!(ret_offset) as usize
}

#[inline(always)]
pub fn exit_group_dead_offset() -> usize {
    field!(exit_group_dead_offset) as usize
}

/// Offset of `task_struct.pid` (0: unknown; the raw lifecycle programs are then not used).
#[inline(always)]
pub fn task_pid() -> u32 {
    field!(task_pid)
}

/// Offsets of `task_struct.signal` and `signal_struct.live`, (0, 0) when unknown.
#[inline(always)]
pub fn live_thread_offsets() -> (u32, u32) {
    (field!(task_signal), field!(signal_live))
}

/// Offsets of `task_struct.group_leader` and `task_struct.comm`, (0, 0) when unknown.
#[inline(always)]
pub fn leader_comm_offsets() -> (u32, u32) {
    (field!(task_group_leader), field!(task_comm))
}

#[inline(always)]
pub fn fork_child_pid_offset() -> usize {
    field!(fork_child_pid_offset) as usize
}

#[inline(always)]
pub fn filter_enabled() -> bool {
    field!(filter_enabled) != 0
}

#[inline(always)]
pub fn follow_children() -> bool {
    field!(follow_children) != 0
}

/// Bits of a hot slot's index: 1 to `MAX_HOT_SLOT_BITS`, whatever the loader wrote.
#[inline(always)]
pub fn hot_slot_bits() -> u32 {
    field!(hot_slot_bits).clamp(1, MAX_HOT_SLOT_BITS)
}

#[inline(always)]
pub fn agent_tgid() -> u32 {
    field!(agent_tgid)
}

/// `CONFIG` behind a pointer the compiler cannot see through, for the structs read a member
/// here and there: a volatile read of a whole struct copies every member on each call, while
/// through this only the members used are loaded, and still never folded.
#[inline(always)]
fn opaque() -> &'static Config {
    // SAFETY: reading a local that holds CONFIG's address.
    unsafe { &*read_volatile(&addr_of!(CONFIG)) }
}

#[inline(always)]
pub fn offsets() -> &'static KernelOffsets {
    &opaque().offsets
}

#[inline(always)]
pub fn cgroup_filter() -> (u64, u32) {
    (field!(cgroup_id), field!(cgroup_level))
}

/// The `i`-th `--comm` name, if there are that many.
#[inline(always)]
pub fn comm(i: usize) -> Option<[u8; COMM_LEN]> {
    if i >= MAX_COMMS || i >= field!(comm_count) as usize {
        return None;
    }
    Some(field!(comms[i]))
}

/// Offset in `pt_regs` of the first register slot the raw hook copies.
#[inline(always)]
pub fn raw_window_start() -> u16 {
    field!(raw.window_start)
}

/// Offset in `pt_regs` of the syscall number at exit.
#[inline(always)]
pub fn raw_nr_register() -> u16 {
    field!(raw.nr_register)
}

/// Offset in `pt_regs` of argument register `INDEX` (0 to 5), for the typed hook's loads:
/// a constant index, so a single load the verifier reads from the frozen map as a constant.
#[inline(always)]
pub fn raw_arg_register_at<const INDEX: usize>() -> u16 {
    const { assert!(INDEX < 6) };
    field!(raw.arg_registers[INDEX])
}

/// Offset in `pt_regs` of argument register `index` (0 to 5).
#[inline(always)]
pub fn raw_arg_register(index: usize) -> Option<u16> {
    // Through a volatile local: the compiler would otherwise index with an expression it
    // derived before the check, whose bound the verifier cannot see.
    // SAFETY: reading a local.
    let index = unsafe { read_volatile(&index) };
    if index >= 6 {
        return None;
    }
    Some(field!(raw.arg_registers[index]))
}

/// This architecture's `O_DIRECT` (0: unknown, never matched).
#[inline(always)]
pub fn o_direct() -> u32 {
    field!(o_direct)
}

/// For the typed hook: offset of `task_struct.tgid`.
#[inline(always)]
pub fn typed_task_tgid() -> u32 {
    field!(typed_task_tgid)
}

/// For the typed hook: offset of `task_struct.stack`.
#[inline(always)]
pub fn typed_task_stack() -> u32 {
    field!(typed_task_stack)
}

/// The BTF type ids the typed hook casts to.
#[inline(always)]
pub fn typed_casts() -> TypedCasts {
    field!(typed_casts)
}

/// Where the io_uring tracepoints and requests keep their fields.
#[inline(always)]
pub fn io_uring() -> &'static IoUringConfig {
    &opaque().io_uring
}

/// The index in `IO_URING_OPS` of the operation with this opcode, if it is followed.
#[inline(always)]
pub fn io_uring_op_of(opcode: u8) -> Option<u8> {
    let opcode = opcode as usize;
    if opcode >= MAX_IO_URING_OPCODE {
        return None;
    }
    let op = field!(io_uring.op_of_opcode[opcode]);
    ((op as usize) < IO_URING_OP_COUNT).then_some(op)
}

/// `io_uring_op_flags` of operation `op`.
#[inline(always)]
pub fn io_uring_op_flags(op: u8) -> u8 {
    // As in `raw_arg_register`: an index the verifier can see bounded.
    // SAFETY: reading a local.
    let op = unsafe { read_volatile(&(op as usize)) };
    if op >= IO_URING_OP_COUNT {
        return 0;
    }
    field!(io_uring.op_flags[op])
}
