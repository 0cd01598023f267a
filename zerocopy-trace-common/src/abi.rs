//! `#[repr(C)]` records shared with the kernel. Every one is padding-free (checked below), holds
//! only integers, and gets `aya::Pod` on the agent side.

use crate::syscalls::SYSCALL_COUNT;

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

/// Totals of one syscall for one process.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Completed calls, failed ones included.
    pub calls: u64,
    /// Bytes moved, as the kernel reported them (failed calls add none).
    pub bytes: u64,
    /// Calls that returned an error.
    pub errors: u64,
    /// Of `bytes`, those sent with `MSG_ZEROCOPY` (pinned, not copied).
    pub msg_zerocopy_bytes: u64,
    /// `bytes` by the kind (`fd_kind`) of the fd they came out of; all zero for syscalls whose
    /// source is user memory (the write and send families, vmsplice).
    pub source_kind_bytes: [u64; fd_kind::COUNT],
    /// `bytes` by the kind of the fd they went into; all zero for the read and recv families.
    pub destination_kind_bytes: [u64; fd_kind::COUNT],
}

impl Counters {
    pub fn add(&mut self, other: &Counters) {
        self.calls = self.calls.wrapping_add(other.calls);
        self.bytes = self.bytes.wrapping_add(other.bytes);
        self.errors = self.errors.wrapping_add(other.errors);
        self.msg_zerocopy_bytes = self
            .msg_zerocopy_bytes
            .wrapping_add(other.msg_zerocopy_bytes);
        for i in 0..fd_kind::COUNT {
            self.source_kind_bytes[i] =
                self.source_kind_bytes[i].wrapping_add(other.source_kind_bytes[i]);
            self.destination_kind_bytes[i] =
                self.destination_kind_bytes[i].wrapping_add(other.destination_kind_bytes[i]);
        }
    }

    pub fn is_zero(&self) -> bool {
        *self == Counters::default()
    }
}

/// What an fd refers to, resolved in the kernel from its `struct file` when the call starts.
pub mod fd_kind {
    /// The fd could not be resolved (closed, or the kernel offsets are unknown).
    pub const UNKNOWN: u8 = 0;
    /// A regular file.
    pub const FILE: u8 = 1;
    pub const BLOCK: u8 = 2;
    pub const TCP: u8 = 3;
    pub const UDP: u8 = 4;
    pub const UNIX: u8 = 5;
    /// A pipe or FIFO.
    pub const PIPE: u8 = 6;
    /// A character device: a tty, /dev/null, ...
    pub const CHAR: u8 = 7;
    /// A socket of another family or protocol (netlink, raw, ...).
    pub const SOCKET: u8 = 8;
    /// Anything else: eventfd, directories, anonymous inodes, ...
    pub const OTHER: u8 = 9;
    pub const COUNT: usize = 10;
    /// In `PendingCall`: the syscall has no fd on this side (data comes from or goes to user
    /// memory).
    pub const NO_FD: u8 = u8::MAX;
    /// Names as shown in reports and JSON, by kind.
    pub const NAMES: [&str; COUNT] = [
        "unknown", "file", "block", "tcp", "udp", "unix", "pipe", "char", "socket", "other",
    ];
}

/// Key of the live counters: one process (thread group) and one syscall id.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ProcKey {
    pub tgid: u32,
    pub syscall: u32,
}

/// What a thread's exit tracepoint needs from its enter tracepoint.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct PendingCall {
    /// Syscall id of the call in flight.
    pub syscall: u32,
    /// 1 between enter and exit; 0 once the exit consumed it.
    pub in_flight: u16,
    /// `fd_kind` of the fd data comes out of (`UNKNOWN` when the syscall has none).
    pub source_kind: u8,
    /// `fd_kind` of the fd data goes into.
    pub destination_kind: u8,
    pub msg_flags: u64,
    /// User address of the `struct mmsghdr` array (sendmmsg/recvmmsg).
    pub mmsg_vector: u64,
}

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
    pub _reserved: u32,
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
    /// Set only for `Counting::MmsgLengths`.
    pub mmsg_vector_offset: u16,
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
    /// Offsets of `pid` and `group_dead` in `sched_process_exit`.
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
}

/// For the raw `sys_enter`/`sys_exit` hook: where a syscall's arguments are in `struct
/// pt_regs`. Offsets come from the kernel's BTF; the format files still say which argument is
/// which (argument `i` is the `i`-th 8-byte slot from `args_base`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RawSyscallConfig {
    /// 1: the raw hook is in use and these offsets are valid.
    pub enabled: u16,
    /// Offset of the first argument in the `sys_enter_*` format files.
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
            syscalls: [SyscallConfig {
                source_fd_offset: 0,
                destination_fd_offset: 0,
                msg_flags_offset: 0,
                mmsg_vector_offset: 0,
            }; SYSCALL_COUNT],
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
                _reserved: 0,
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
        }
    }
}

/// Final counts of one syscall of a process whose last thread exited, sent through the `EXITS`
/// ring buffer before the kernel frees the process's entries: one record per syscall the
/// process used (most use a few of the 21), all with the same `exit_ns`, which tells two
/// processes that had the same pid apart.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ExitRecord {
    pub tgid: u32,
    /// Parent's tgid when the fork was seen, else 0.
    pub ppid: u32,
    /// Syscall id of `counters`.
    pub syscall: u32,
    pub _reserved: u32,
    /// When the process exited (`bpf_ktime_get_ns`, CLOCK_MONOTONIC): the same for all its
    /// records.
    pub exit_ns: u64,
    /// The process's cgroup (v2) id when it exited: the inode number of its cgroup directory,
    /// from which the agent learns the systemd unit its counts are grouped under.
    pub cgroup_id: u64,
    pub comm: [u8; COMM_LEN],
    pub counters: Counters,
}

/// Why a count could not be attributed. Index into the `DROPPED` per-CPU array.
pub mod drop_reason {
    /// A syscall exit without its enter record: the call began before attach, or its record
    /// could not be stored (`PENDING_FULL`). Calls and bytes are counted.
    pub const MISSING_ENTER: u32 = 0;
    /// The per-thread pending map was full at enter (calls; these also show as `MISSING_ENTER`).
    pub const PENDING_FULL: u32 = 1;
    /// The per-process counters map was full: calls and bytes not attributed to any process.
    pub const COUNTERS_FULL: u32 = 2;
    /// The exit ring buffer was full: final calls and bytes of exited processes were lost.
    pub const EXIT_LOST: u32 = 3;
    /// sendmmsg/recvmmsg whose `msg_len`s could not be read: calls counted, bytes unknown.
    pub const MMSG_UNREADABLE: u32 = 4;
    /// Children of traced processes that could not be followed (the traced-process map was
    /// full): `calls` counts such children; their syscalls are not seen at all.
    pub const UNFOLLOWED_CHILDREN: u32 = 5;
    pub const COUNT: u32 = 6;
    /// Names as shown in reports and JSON, by index.
    pub const NAMES: [&str; COUNT as usize] = [
        "missing_enter",
        "pending_full",
        "counters_full",
        "exit_lost",
        "mmsg_unreadable",
        "unfollowed_children",
    ];
}

/// What was dropped for one reason.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DropCounters {
    pub calls: u64,
    pub bytes: u64,
}

// Padding-free layouts: a size mismatch here means a hidden hole the kernel would not fill.
const _: () = assert!(core::mem::size_of::<Counters>() == 32 + 2 * 8 * fd_kind::COUNT);
const _: () = assert!(core::mem::size_of::<ProcKey>() == 8);
const _: () = assert!(core::mem::size_of::<PendingCall>() == 24);
const _: () = assert!(core::mem::size_of::<KernelOffsets>() == 48);
const _: () = assert!(core::mem::size_of::<RawSyscallConfig>() == 24);
const _: () = assert!(core::mem::size_of::<SyscallConfig>() == 8);
const _: () = assert!(
    core::mem::size_of::<Config>()
        == MAX_SYSCALL_NR + 8 * SYSCALL_COUNT + 16 + 8 + 48 + 16 + COMM_LEN * MAX_COMMS + 24
);
const _: () =
    assert!(core::mem::size_of::<ExitRecord>() == 32 + COMM_LEN + core::mem::size_of::<Counters>());
const _: () = assert!(core::mem::size_of::<DropCounters>() == 16);

#[cfg(feature = "user")]
mod pod {
    use super::*;
    // SAFETY: each type is #[repr(C)], made only of integers and integer arrays, with no padding
    // (the size asserts above), so every bit pattern is a valid value.
    unsafe impl aya::Pod for Counters {}
    unsafe impl aya::Pod for ProcKey {}
    unsafe impl aya::Pod for PendingCall {}
    unsafe impl aya::Pod for SyscallConfig {}
    unsafe impl aya::Pod for KernelOffsets {}
    unsafe impl aya::Pod for RawSyscallConfig {}
    unsafe impl aya::Pod for Config {}
    unsafe impl aya::Pod for ExitRecord {}
    unsafe impl aya::Pod for DropCounters {}
}
