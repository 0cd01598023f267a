//! Where the kernel keeps what resolving an fd's kind needs, from its BTF. Without BTF (or with
//! a layout we do not recognise) fd kinds are reported as `unknown`: every count stays exact,
//! only the attribution to files, sockets and pipes is lost, and a warning says so.

use anyhow::{ensure, Context, Result};
use zerocopy_trace_common::{KernelOffsets, TypedCasts};

use crate::kernel::btf::Btf;

/// The byte offset of `structure.path` (members of nested structs, in order) in this kernel.
fn offset_of(btf: &Btf, structure: &str, path: &[&str]) -> Result<u32> {
    btf.member_offset(structure, path)
        .with_context(|| format!("locating {structure}.{}", path.join(".")))
}

/// The size in bytes of `structure.path` in this kernel.
fn size_of(btf: &Btf, structure: &str, path: &[&str]) -> Result<u32> {
    btf.member_size(structure, path)
        .with_context(|| format!("sizing {structure}.{}", path.join(".")))
}

/// The offset of a member the kernel programs load with a fixed width of `bytes`; a layout
/// where it has another size is refused.
fn fixed_width_offset(btf: &Btf, structure: &str, path: &[&str], bytes: u32) -> Result<u32> {
    let size = size_of(btf, structure, path)?;
    ensure!(
        size == bytes,
        "{structure}.{} is {size} bytes, not {bytes}",
        path.join(".")
    );
    offset_of(btf, structure, path)
}

/// Offsets for `fd_kind` resolution, read from the kernel's BTF.
pub fn from_btf(btf: &Btf) -> Result<KernelOffsets> {
    // The kernel program loads some members with a fixed width: a layout where one has
    // another size is refused (`fixed_width_offset`).
    Ok(KernelOffsets {
        resolve: 1,
        task_files: offset_of(btf, "task_struct", &["files"])?,
        files_fdt: offset_of(btf, "files_struct", &["fdt"])?,
        fdtable_max_fds: fixed_width_offset(btf, "fdtable", &["max_fds"], 4)?,
        fdtable_fd: offset_of(btf, "fdtable", &["fd"])?,
        file_inode: offset_of(btf, "file", &["f_inode"])?,
        file_private_data: offset_of(btf, "file", &["private_data"])?,
        inode_mode: fixed_width_offset(btf, "inode", &["i_mode"], 2)?,
        socket_sk: offset_of(btf, "socket", &["sk"])?,
        sock_family: fixed_width_offset(btf, "sock", &["__sk_common", "skc_family"], 2)?,
        sock_protocol: fixed_width_offset(btf, "sock", &["sk_protocol"], 2)?,
        file_flags: fixed_width_offset(btf, "file", &["f_flags"], 4)?,
    })
}

/// Where an io_uring request (`struct io_kiocb`) keeps what the io_uring programs read, as
/// byte offsets from the request's address.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IoUringStructs {
    /// `io_kiocb.file`: the request's file, still held at completion.
    pub file: u16,
    /// `io_kiocb.opcode`.
    pub opcode: u16,
    /// SPLICE and TEE: `io_splice.splice_fd_in` and `io_splice.flags` in the command area.
    pub splice_fd_in: u16,
    pub splice_flags: u16,
    /// SEND_ZC: `io_sr_msg.notif`, the notification request, in the command area.
    pub send_zc_notif: u16,
    /// A notification's `io_notif_data.zc_report` (usage reports asked for).
    pub notif_zc_report: u16,
}

/// The io_uring request offsets, from BTF. These are the kernel's private structures
/// (`io_uring/*.h`); where they differ, fd kinds of operations are `unknown` and zero-copy
/// notifications stay unconfirmed, and every count stays exact.
pub fn io_uring_from_btf(btf: &Btf) -> Result<IoUringStructs> {
    let at = |structure: &str, member: &str| -> Result<u16> {
        let offset = btf
            .member_offset(structure, &[member])
            .with_context(|| format!("locating {structure}.{member}"))?;
        Ok(u16::try_from(offset)?)
    };
    let size = |structure: &str, member: &str| -> Result<u32> {
        btf.member_size(structure, &[member])
            .with_context(|| format!("sizing {structure}.{member}"))
    };
    ensure!(
        size("io_kiocb", "opcode")? == 1,
        "io_kiocb.opcode is not a u8"
    );
    ensure!(
        size("io_splice", "splice_fd_in")? == 4 && size("io_splice", "flags")? == 4,
        "io_splice.splice_fd_in or flags is not 32 bits"
    );
    ensure!(
        size("io_notif_data", "zc_report")? == 1,
        "io_notif_data.zc_report is not a bool"
    );
    // Each operation's own struct sits in the request's command area (`io_kiocb_to_cmd`).
    let cmd = at("io_kiocb", "cmd")?;
    Ok(IoUringStructs {
        file: at("io_kiocb", "file")?,
        opcode: at("io_kiocb", "opcode")?,
        splice_fd_in: cmd + at("io_splice", "splice_fd_in")?,
        splice_flags: cmd + at("io_splice", "flags")?,
        send_zc_notif: cmd + at("io_sr_msg", "notif")?,
        notif_zc_report: cmd + at("io_notif_data", "zc_report")?,
    })
}

/// Where the syscall argument registers are in `struct pt_regs`, for the raw hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Registers {
    /// Arguments 0 to 5.
    pub args: [u16; 6],
    /// The syscall number as it was at entry (`orig_ax`), still there at exit.
    pub nr: u16,
}

/// The x86-64 syscall calling convention: arguments in rdi, rsi, rdx, r10, r8, r9.
#[cfg(target_arch = "x86_64")]
const ARG_REGISTERS: [&str; 6] = ["di", "si", "dx", "r10", "r8", "r9"];
#[cfg(target_arch = "x86_64")]
const NR_REGISTER: &str = "orig_ax";

/// The argument registers' offsets, from BTF.
pub fn registers_from_btf(btf: &Btf) -> Result<Registers> {
    #[cfg(target_arch = "x86_64")]
    {
        let at = |name: &str| -> Result<u16> {
            let offset = btf
                .member_offset("pt_regs", &[name])
                .with_context(|| format!("locating pt_regs.{name}"))?;
            Ok(u16::try_from(offset)?)
        };
        let mut args = [0u16; 6];
        for (slot, name) in args.iter_mut().zip(ARG_REGISTERS) {
            *slot = at(name)?;
        }
        Ok(Registers {
            args,
            nr: at(NR_REGISTER)?,
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = btf;
        anyhow::bail!("the raw hook knows the syscall registers of x86-64 only")
    }
}

/// The typedef that names the `sys_exit` tracepoint to a tp_btf program.
pub const SYS_EXIT_TYPEDEF: &str = "btf_trace_sys_exit";

/// The kfunc that types a pointer for the typed hook's plain loads (Linux 6.2 and later).
pub const RDONLY_CAST: &str = "bpf_rdonly_cast";

/// What the typed hook needs of this kernel's BTF, besides the offsets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TypedHook {
    /// The id of `SYS_EXIT_TYPEDEF`, which names the tracepoint.
    pub sys_exit_typedef: u32,
    /// The id of the `RDONLY_CAST` function, which its call instructions name.
    pub rdonly_cast: u32,
    /// The struct ids it casts to.
    pub casts: TypedCasts,
    /// `task_struct.tgid`, loaded instead of calling `bpf_get_current_pid_tgid`.
    pub task_tgid: u32,
    /// `task_struct.stack`, which tells whether a remembered task is still the running one.
    pub task_stack: u32,
}

/// The typed hook's ids, or why this kernel cannot have it.
pub fn typed_hook_from_btf(btf: &Btf) -> Result<TypedHook> {
    Ok(TypedHook {
        sys_exit_typedef: btf.typedef_id(SYS_EXIT_TYPEDEF)?,
        rdonly_cast: btf.func_id(RDONLY_CAST)?,
        casts: TypedCasts {
            file: btf.struct_id("file")?,
            socket: btf.struct_id("socket")?,
            task: btf.struct_id("task_struct")?,
            _reserved: 0,
        },
        task_tgid: fixed_width_offset(btf, "task_struct", &["tgid"], 4)?,
        task_stack: fixed_width_offset(btf, "task_struct", &["stack"], 8)?,
    })
}

/// Where a task's thread group keeps its count of live threads: how the exit program tells a
/// process's end on kernels whose `sched_process_exit` has no `group_dead` (before 6.16).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LiveThreads {
    /// `task_struct.signal`
    pub task_signal: u32,
    /// `signal_struct.live`, an `atomic_t`
    pub signal_live: u32,
}

/// The live-thread count's offsets, from BTF.
pub fn live_threads_from_btf(btf: &Btf) -> Result<LiveThreads> {
    Ok(LiveThreads {
        task_signal: fixed_width_offset(btf, "task_struct", &["signal"], 8)?,
        signal_live: fixed_width_offset(btf, "signal_struct", &["live"], 4)?,
    })
}

/// Where a task finds its thread group leader's name: how the exit program names a process
/// by its program rather than by the thread that happened to exit last.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LeaderComm {
    /// `task_struct.group_leader`, a pointer
    pub task_group_leader: u32,
    /// `task_struct.comm`, `TASK_COMM_LEN` (16) bytes
    pub task_comm: u32,
}

/// The leader name's offsets, from BTF.
pub fn leader_comm_from_btf(btf: &Btf) -> Result<LeaderComm> {
    Ok(LeaderComm {
        task_group_leader: fixed_width_offset(btf, "task_struct", &["group_leader"], 8)?,
        task_comm: fixed_width_offset(
            btf,
            "task_struct",
            &["comm"],
            zerocopy_trace_common::COMM_LEN as u32,
        )?,
    })
}

/// What the kernel programs need to know of this kernel's structures.
#[derive(Clone, Copy, Debug, Default)]
pub struct KernelLayout {
    /// For telling a process's end without `group_dead`; `None` when unknown.
    pub live_threads: Option<LiveThreads>,
    /// `task_struct.pid`, for the fork program's raw tracepoint; `None` when unknown.
    pub task_pid: Option<u32>,
    /// For naming an exited process by its leader; `None` when unknown.
    pub leader_comm: Option<LeaderComm>,
    /// For fd kinds; `resolve == 0` when unknown.
    pub offsets: KernelOffsets,
    /// For the exit-only hooks (typed and raw); `None` when unknown.
    pub registers: Option<Registers>,
    /// For the typed hook; `None` when this kernel cannot have it.
    pub typed: Option<TypedHook>,
    /// For fd kinds and notices of io_uring operations; `None` when unknown.
    pub io_uring: Option<IoUringStructs>,
}

/// The layout of the running kernel, from its BTF; what cannot be known is left out with a
/// warning (fd kinds become `unknown`; the raw hook falls back to the tracepoints).
pub fn of_running_kernel() -> KernelLayout {
    let btf = match Btf::from_sys_fs() {
        Ok(btf) => btf,
        Err(e) => {
            log::warn!(
                "no kernel BTF ({e}): fd kinds will be `unknown` and the raw hook unavailable"
            );
            return KernelLayout::default();
        }
    };
    let offsets = from_btf(&btf).unwrap_or_else(|e| {
        log::warn!("fd kinds unavailable, bytes will be attributed to `unknown`: {e:#}");
        KernelOffsets::default()
    });
    let registers = registers_from_btf(&btf)
        .map_err(|e| log::info!("the exit-only hooks are unavailable: {e:#}"))
        .ok();
    let typed = typed_hook_from_btf(&btf)
        .map_err(|e| log::info!("the typed hook is unavailable: {e:#}"))
        .ok();
    let io_uring = io_uring_from_btf(&btf)
        .map_err(|e| log::warn!("io_uring operations' fd kinds and notices unavailable: {e:#}"))
        .ok();
    let live_threads = live_threads_from_btf(&btf)
        .map_err(|e| log::info!("the live-thread count is unavailable: {e:#}"))
        .ok();
    let task_pid = fixed_width_offset(&btf, "task_struct", &["pid"], 4)
        .map_err(|e| log::info!("task_struct.pid is unavailable: {e:#}"))
        .ok();
    let leader_comm = leader_comm_from_btf(&btf)
        .map_err(|e| {
            log::info!(
                "exited processes are named by their last thread: the leader's name is \
                 unavailable: {e:#}"
            )
        })
        .ok();
    KernelLayout {
        live_threads,
        task_pid,
        leader_comm,
        offsets,
        registers,
        typed,
        io_uring,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_kernel_has_every_offset() {
        let Ok(btf) = Btf::from_sys_fs() else {
            eprintln!("SKIPPED: no /sys/kernel/btf/vmlinux on this machine");
            return;
        };
        let o = from_btf(&btf).unwrap();
        assert_eq!(o.resolve, 1);
        // fdtable is { unsigned max_fds; struct file **fd; ... }: fd follows max_fds.
        assert_eq!((o.fdtable_max_fds, o.fdtable_fd), (0, 8));
        assert!(o.task_files > 0 && o.file_inode > 0 && o.socket_sk > 0);
        assert_ne!(o.sock_family, o.sock_protocol);
        assert_ne!(o.file_flags, o.file_inode);
        let uring = io_uring_from_btf(&btf).unwrap();
        // The file pointer comes first in io_kiocb (a union with the command area), so every
        // command struct's first member is the file too.
        assert_eq!(uring.file, 0);
        assert!(uring.splice_fd_in > 0 && uring.send_zc_notif > 0 && uring.notif_zc_report > 0);
        assert_eq!(uring.splice_flags, uring.splice_fd_in + 4);
        let r = registers_from_btf(&btf).unwrap();
        // Six distinct argument registers, none of them the syscall number's.
        let mut all = r.args.to_vec();
        all.push(r.nr);
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 7, "{r:?}");
        assert!(btf.typedef_id(SYS_EXIT_TYPEDEF).unwrap() > 0);
        assert!(btf.typedef_id("no_such_typedef_here").is_err());
        let typed = typed_hook_from_btf(&btf).unwrap();
        let ids = [
            typed.sys_exit_typedef,
            typed.rdonly_cast,
            typed.casts.file,
            typed.casts.socket,
            typed.casts.task,
            typed.task_stack,
        ];
        assert!(ids.iter().all(|&id| id > 0), "{typed:?}");
        // tgid follows pid in task_struct, far from its start.
        assert_eq!(
            typed.task_tgid,
            btf.member_offset("task_struct", &["pid"]).unwrap() + 4
        );
        assert!(btf.func_id("no_such_function_here").is_err());
        let live = live_threads_from_btf(&btf).unwrap();
        assert!(live.task_signal > 0, "{live:?}");
        let leader = leader_comm_from_btf(&btf).unwrap();
        assert!(
            leader.task_group_leader > 0 && leader.task_comm > 0,
            "{leader:?}"
        );
        assert_ne!(leader.task_group_leader, leader.task_comm);
        assert!(btf.func_id("no_such_function_here").is_err());
        // `sock` is defined once in vmlinux; a name defined nowhere is an error.
        assert!(btf.struct_id("no_such_struct_here").is_err());
    }
}
