//! The configuration the loader gives the programs: a read-only global of the eBPF object,
//! filled in from the tracepoints' format files and the kernel's BTF.

use super::{
    hot::MAX_HOT_SLOT_BITS,
    limits::{COMM_LEN, MAX_COMMS, MAX_SYSCALL_NR, NOT_TRACED},
};
use crate::{
    io_uring::{IO_URING_OP_COUNT, MAX_IO_URING_OPCODE},
    syscalls::SYSCALL_COUNT,
};

/// Where kernel structures keep what resolving an fd's kind needs, as byte offsets found in the
/// kernel's BTF at start-up. `resolve` is 0 when they could not all be found: kinds are then
/// `UNKNOWN` and every count stays exact.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelOffsets {
    pub resolve: u32,
    /// `task_struct.files`
    pub task_files: u32,
    /// `files_struct.fdt`
    pub files_fdt: u32,
    /// `fdtable.max_fds`
    pub fdtable_max_fds: u32,
    /// `fdtable.fd`
    pub fdtable_fd: u32,
    /// `file.f_inode`
    pub file_inode: u32,
    /// `file.private_data` (the `struct socket *` of a socket file)
    pub file_private_data: u32,
    /// `inode.i_mode`
    pub inode_mode: u32,
    /// `socket.sk`
    pub socket_sk: u32,
    /// `sock.__sk_common.skc_family`
    pub sock_family: u32,
    /// `sock.sk_protocol` (a u16 on the kernels that have it as a plain member)
    pub sock_protocol: u32,
    /// `file.f_flags` (where `O_DIRECT` is)
    pub file_flags: u32,
}

/// Where the kernel finds one syscall's arguments in its enter tracepoint record. Offsets come
/// from the tracepoint's `format` file; 0 means "not used" (offset 0 is `common_type`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyscallConfig {
    pub source_fd_offset: u16,
    pub destination_fd_offset: u16,
    /// Set only where `MSG_ZEROCOPY` matters (the send family).
    pub msg_flags_offset: u16,
    /// Set for `Counting::MmsgLengths` (the `struct mmsghdr *`) and for receives that may
    /// read the error queue (the `struct user_msghdr *`).
    pub vector_offset: u16,
    /// `syscall_flags` bits.
    pub flags: u16,
    /// The same four arguments as argument numbers (0 to 5), for the exit-only hooks, which
    /// find argument `i` in the `i`-th argument register: `argument::pack`ed, computed once by
    /// the loader rather than from the offsets at every call.
    pub argument_numbers: u16,
    pub _reserved: [u16; 2],
}

impl SyscallConfig {
    /// A syscall not traced: no arguments located, no flags.
    pub const UNUSED: SyscallConfig = SyscallConfig {
        source_fd_offset: 0,
        destination_fd_offset: 0,
        msg_flags_offset: 0,
        vector_offset: 0,
        flags: 0,
        argument_numbers: argument::UNUSED,
        _reserved: [0; 2],
    };
}

/// The arguments a syscall's `SyscallConfig` locates, and their numbers packed in
/// `SyscallConfig::argument_numbers`: four bits each, `NONE` where the syscall has no such
/// argument.
pub mod argument {
    pub const SOURCE_FD: u32 = 0;
    pub const DESTINATION_FD: u32 = 1;
    pub const MSG_FLAGS: u32 = 2;
    pub const VECTOR: u32 = 3;
    /// No such argument (any number past 5 reads as none).
    pub const NONE: u16 = 0xf;
    /// Packs the numbers of `SOURCE_FD`, `DESTINATION_FD`, `MSG_FLAGS` and `VECTOR`, in order.
    pub const fn pack(numbers: [Option<u8>; 4]) -> u16 {
        let mut packed = 0;
        let mut role = 0;
        while role < 4 {
            let number = match numbers[role] {
                Some(n) if n < 6 => n as u16,
                _ => NONE,
            };
            packed |= number << (4 * role);
            role += 1;
        }
        packed
    }
    /// The number of argument `role` in `packed`, `None` where there is none.
    #[inline(always)]
    pub fn number(packed: u16, role: u32) -> Option<usize> {
        let number = ((packed >> (4 * (role & 3))) & NONE) as usize;
        (number < 6).then_some(number)
    }
    /// Nothing located.
    pub const UNUSED: u16 = pack([None; 4]);
}

/// Bits of `SyscallConfig::flags`.
pub mod syscall_flags {
    /// `Counting::MmsgLengths`: `vector` is a `struct mmsghdr` array.
    pub const MMSG: u16 = 1;
    /// `vector` is a `struct user_msghdr` whose control buffer holds error-queue notices when
    /// the call's flags have `MSG_ERRQUEUE`.
    pub const ERRQUEUE: u16 = 2;
    /// `Counting::CallsOnly`: the return value is not a byte count.
    pub const CALLS_ONLY: u16 = 4;
    /// A send: `MSG_ZEROCOPY` in its flags asks for zero copy.
    pub const SEND: u16 = 8;
}

/// Where the io_uring tracepoints keep their fields (format files) and the kernel its request
/// fields (BTF), and which operations are followed.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoUringConfig {
    /// Opcode -> index in `IO_URING_OPS`, `NOT_TRACED` for operations not followed.
    pub op_of_opcode: [u8; MAX_IO_URING_OPCODE],
    /// Per operation, `io_uring_op_flags` bits.
    pub op_flags: [u8; IO_URING_OP_COUNT],
    pub _pad: [u8; 24 - IO_URING_OP_COUNT],
    /// 1: the tracepoints and their fields exist and the programs are attached.
    pub enabled: u16,
    /// `io_uring_submit_req`: `req`, `opcode`.
    pub submit_req_offset: u16,
    pub submit_opcode_offset: u16,
    /// `io_uring_complete`: `req`, `res`, `cflags`.
    pub complete_req_offset: u16,
    pub complete_res_offset: u16,
    pub complete_cflags_offset: u16,
    /// 1: the request offsets below were found in BTF (else fd kinds of operations are
    /// `unknown` and notifications are attributed to the process that completes them).
    pub structs: u16,
    /// In `struct io_kiocb`: its `file`, its `opcode`.
    pub req_file: u16,
    pub req_opcode: u16,
    /// In the request's command area: `io_splice.splice_fd_in` and `io_splice.flags`,
    /// `io_sr_msg.notif`, and in a notification's `io_notif_data.zc_report`.
    pub splice_fd_in: u16,
    pub splice_flags: u16,
    pub send_zc_notif: u16,
    pub notif_zc_report: u16,
    pub _reserved: [u16; 3],
}

/// Bits of `IoUringConfig::op_flags`.
pub mod io_uring_op_flags {
    /// The request's file is where data comes from (else where it goes).
    pub const FILE_IS_SOURCE: u8 = 1;
    /// SPLICE, TEE: `io_splice.splice_fd_in` is the source.
    pub const INPUT_FD: u8 = 2;
    /// SEND_ZC, SENDMSG_ZC: a notification follows.
    pub const ZEROCOPY_SEND: u8 = 4;
}

impl IoUringConfig {
    pub const fn empty() -> Self {
        IoUringConfig {
            op_of_opcode: [NOT_TRACED; MAX_IO_URING_OPCODE],
            op_flags: [0; IO_URING_OP_COUNT],
            _pad: [0; 24 - IO_URING_OP_COUNT],
            enabled: 0,
            submit_req_offset: 0,
            submit_opcode_offset: 0,
            complete_req_offset: 0,
            complete_res_offset: 0,
            complete_cflags_offset: 0,
            structs: 0,
            req_file: 0,
            req_opcode: 0,
            splice_fd_in: 0,
            splice_flags: 0,
            send_zc_notif: 0,
            notif_zc_report: 0,
            _reserved: [0; 3],
        }
    }
}

/// Load-time configuration, a read-only global of the eBPF object filled in by the loader.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// Syscall number -> syscall id, `NOT_TRACED` for the rest.
    pub syscall_of_nr: [u8; MAX_SYSCALL_NR],
    pub syscalls: [SyscallConfig; SYSCALL_COUNT],
    /// Offset of `__syscall_nr` in the syscall tracepoints.
    pub nr_offset: u16,
    /// Offset of `ret` in the `sys_exit_*` tracepoints.
    pub ret_offset: u16,
    /// Offsets of `pid` and `group_dead` in `sched_process_exit`; `group_dead` 0 where the
    /// kernel's tracepoint has no such field (before 6.16): the process's end is then told
    /// by its live-thread count (`task_signal`, `signal_live`).
    pub exit_pid_offset: u16,
    pub exit_group_dead_offset: u16,
    /// Offset of `child_pid` in `sched_process_fork`.
    pub fork_child_pid_offset: u16,
    /// 1: count only processes in the `TRACED` map.
    pub filter_enabled: u16,
    /// 1: children forked by a traced process are traced too.
    pub follow_children: u16,
    pub _reserved: u16,
    /// Number of possible CPUs (per-CPU map slots), at most `MAX_CPUS`.
    pub nr_cpus: u32,
    /// The agent's own tgid: never counted, its reading of /proc is not the workload's.
    pub agent_tgid: u32,
    pub offsets: KernelOffsets,
    /// With `cgroup_id != 0`: processes whose cgroup is `cgroup_id` or below it (at depth
    /// `cgroup_level` of the v2 hierarchy) are traced.
    pub cgroup_level: u32,
    /// Number of names in `comms`.
    pub comm_count: u32,
    pub cgroup_id: u64,
    /// Processes that exec under one of these names join the traced set.
    pub comms: [[u8; COMM_LEN]; MAX_COMMS],
    pub raw: RawSyscallConfig,
    pub io_uring: IoUringConfig,
    /// This architecture's `O_DIRECT` (it differs between x86-64 and aarch64).
    pub o_direct: u32,
    /// For the typed hook: what `typed_cast` makes of a `struct file *` and a `struct socket *`.
    pub typed_casts: TypedCasts,
    /// The hot slots are `1 << hot_slot_bits` (see `hot`).
    pub hot_slot_bits: u32,
    /// For the typed hook: offsets of `task_struct.tgid`, which it loads from the running task
    /// rather than calling a helper for it, and of `task_struct.stack`, by which it knows the
    /// task it remembers on a CPU is still the one running (a helper call costs more than the
    /// rest of a short call's work where returns are mitigated).
    pub typed_task_tgid: u32,
    pub typed_task_stack: u32,
    /// Offsets of `task_struct.signal` and `signal_struct.live` (an `atomic_t`): where the
    /// exit tracepoint has no `group_dead`, the exiting thread is the group's last when the
    /// live count it already decremented is 0 (0 and 0: unknown).
    pub task_signal: u32,
    pub signal_live: u32,
    /// Offset of `task_struct.pid`: the raw fork program reads the child's pid from its task.
    pub task_pid: u32,
    /// Offsets of `task_struct.group_leader` and `task_struct.comm`: the exit program names a
    /// process by its leader's name, not by its last exiting thread's (0 and 0: unknown, the
    /// exiting thread's name is used).
    pub task_group_leader: u32,
    pub task_comm: u32,
    pub _reserved_end: u32,
}

/// The BTF type ids the typed hook casts untyped kernel pointers to (with the kernel's
/// `bpf_rdonly_cast`), so that it reads their members with plain loads instead of a helper
/// call each. 0: unknown (the typed hook is then not used).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TypedCasts {
    /// `struct file` (an fd array slot holds an untyped pointer to one).
    pub file: u32,
    /// `struct socket` (a socket file's `private_data`, a `void *`).
    pub socket: u32,
    /// `struct task_struct` (the task a CPU remembers as running, see `typed_task_stack`).
    pub task: u32,
    pub _reserved: u32,
}

/// The helper number the eBPF object calls in place of the `bpf_rdonly_cast` kfunc, whose
/// call instruction needs the function's BTF id in this kernel: the agent rewrites each such
/// call before loading (`kfunc_calls`). Not a helper any kernel has.
pub const RDONLY_CAST_PLACEHOLDER: u32 = 0x7a63_0001;

/// For the exit-only hooks (raw and typed): where a syscall's arguments are in `struct
/// pt_regs`. Offsets come from the kernel's BTF; the format files still say which argument is
/// which (argument `i` is the `i`-th 8-byte slot from `args_base`), and the loader records it
/// per syscall in `SyscallConfig::argument_numbers`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawSyscallConfig {
    /// 1: the raw hook is in use and these offsets are valid.
    pub enabled: u16,
    /// Offset of the first argument in the `sys_enter_*` format files (the programs use the
    /// argument numbers counted from it, not the offset).
    pub args_base: u16,
    /// Offset in `pt_regs` of the first of the 8 slots copied (the lowest argument register).
    pub window_start: u16,
    /// Offset in `pt_regs` of the register holding the syscall number at exit (`orig_ax`).
    pub nr_register: u16,
    /// Offsets in `pt_regs` of the registers holding arguments 0 to 5.
    pub arg_registers: [u16; 6],
    pub _reserved: [u16; 2],
}

impl Config {
    pub const fn empty() -> Self {
        Config {
            syscall_of_nr: [NOT_TRACED; MAX_SYSCALL_NR],
            syscalls: [SyscallConfig::UNUSED; SYSCALL_COUNT],
            nr_offset: 0,
            ret_offset: 0,
            exit_pid_offset: 0,
            exit_group_dead_offset: 0,
            fork_child_pid_offset: 0,
            filter_enabled: 0,
            follow_children: 0,
            _reserved: 0,
            nr_cpus: 0,
            agent_tgid: 0,
            offsets: KernelOffsets {
                resolve: 0,
                task_files: 0,
                files_fdt: 0,
                fdtable_max_fds: 0,
                fdtable_fd: 0,
                file_inode: 0,
                file_private_data: 0,
                inode_mode: 0,
                socket_sk: 0,
                sock_family: 0,
                sock_protocol: 0,
                file_flags: 0,
            },
            cgroup_level: 0,
            comm_count: 0,
            cgroup_id: 0,
            comms: [[0; COMM_LEN]; MAX_COMMS],
            raw: RawSyscallConfig {
                enabled: 0,
                args_base: 0,
                window_start: 0,
                nr_register: 0,
                arg_registers: [0; 6],
                _reserved: [0; 2],
            },
            io_uring: IoUringConfig::empty(),
            o_direct: 0,
            typed_casts: TypedCasts {
                file: 0,
                socket: 0,
                task: 0,
                _reserved: 0,
            },
            hot_slot_bits: MAX_HOT_SLOT_BITS,
            typed_task_tgid: 0,
            typed_task_stack: 0,
            task_signal: 0,
            signal_live: 0,
            task_pid: 0,
            task_group_leader: 0,
            task_comm: 0,
            _reserved_end: 0,
        }
    }
}

// Padding-free layouts: a size mismatch here means a hidden hole the kernel would not fill.
const _: () = assert!(core::mem::size_of::<KernelOffsets>() == 48);
const _: () = assert!(core::mem::size_of::<RawSyscallConfig>() == 24);
const _: () = assert!(core::mem::size_of::<SyscallConfig>() == 16);
const _: () = assert!(IO_URING_OP_COUNT <= 24);
const _: () = assert!(core::mem::size_of::<IoUringConfig>() == MAX_IO_URING_OPCODE + 24 + 32);
const _: () = assert!(
    core::mem::size_of::<Config>()
        == MAX_SYSCALL_NR
            + 16 * SYSCALL_COUNT
            + 16
            + 8
            + 48
            + 16
            + COMM_LEN * MAX_COMMS
            + 24
            + core::mem::size_of::<IoUringConfig>()
            + 56
);

// SAFETY: #[repr(C)], only integers and integer arrays, no padding (the size checks above), so
// every bit pattern is a valid value.
#[cfg(feature = "user")]
mod pod {
    use super::*;
    unsafe impl aya::Pod for SyscallConfig {}
    unsafe impl aya::Pod for KernelOffsets {}
    unsafe impl aya::Pod for RawSyscallConfig {}
    unsafe impl aya::Pod for IoUringConfig {}
    unsafe impl aya::Pod for Config {}
}

#[cfg(test)]
mod tests {
    use super::argument;

    #[test]
    fn argument_numbers_round_trip_and_none_stays_none() {
        let packed = argument::pack([Some(1), Some(0), None, Some(5)]);
        assert_eq!(argument::number(packed, argument::SOURCE_FD), Some(1));
        assert_eq!(argument::number(packed, argument::DESTINATION_FD), Some(0));
        assert_eq!(argument::number(packed, argument::MSG_FLAGS), None);
        assert_eq!(argument::number(packed, argument::VECTOR), Some(5));
        // A number past the six argument registers is no argument, not a wrong one.
        let past = argument::pack([Some(6), Some(200), None, None]);
        assert_eq!(argument::number(past, argument::SOURCE_FD), None);
        assert_eq!(argument::number(past, argument::DESTINATION_FD), None);
        for role in 0..4 {
            assert_eq!(argument::number(argument::UNUSED, role), None);
        }
    }
}
