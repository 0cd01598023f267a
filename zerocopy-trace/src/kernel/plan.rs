//! Preparing a trace without touching the kernel: which tracepoints to attach and the `Config`
//! the programs run with, all derived from the syscall table and the tracepoint `format` files.

use anyhow::{bail, Context, Result};
use zerocopy_trace_common::{
    argument, hot, io_uring_op_flags, syscall_flags, Arch, Config, Counting, IoUringConfig, Method,
    RawSyscallConfig, SyscallConfig, COMM_LEN, IO_URING_OPS, MAX_COMMS, MAX_CPUS, MAX_SYSCALL_NR,
    SYSCALLS,
};

use super::{
    btf::offsets::{IoUringStructs, KernelLayout, TypedHook},
    tracefs::Format,
};
use crate::system::cgroup::Cgroup;

/// What `not_covered` calls the io_uring tracepoints when the kernel lacks them.
pub const IO_URING: &str = "io_uring";
/// The io_uring submission tracepoint, and its name before 6.4 (same fields for what the
/// programs read: `req`, `opcode`).
const IO_URING_SUBMIT: &str = "io_uring_submit_req";
const IO_URING_SUBMIT_BEFORE_6_4: &str = "io_uring_submit_sqe";

/// What to attach and with which configuration.
#[derive(Clone, Debug)]
pub struct Plan {
    pub config: Config,
    /// Syscall names whose enter and exit tracepoints both exist: these get attached.
    pub covered: Vec<&'static str>,
    /// Syscalls this kernel has no tracepoints for (and `io_uring` when its tracepoints are
    /// missing): not counted, and said so.
    pub not_covered: Vec<&'static str>,
    /// The io_uring tracepoints exist: their programs get attached.
    pub io_uring: bool,
    /// The io_uring tracepoint a request's submission is seen on: `io_uring_submit_req`
    /// (6.4 and later) or, before, the same tracepoint under its old name
    /// `io_uring_submit_sqe`.
    pub io_uring_submit: &'static str,
    /// The lifecycle programs attach to the raw `sched_process_*` tracepoints (BTF gave
    /// `task_struct.pid`), else to the classic ones (see the eBPF crate's `process`).
    pub raw_lifecycle: bool,
    /// The hook to attach, after falling back from one this kernel's BTF cannot support.
    pub hook: Hook,
    /// What the typed hook needs of the kernel's BTF (the tracepoint's typedef, the cast
    /// kfunc): set exactly when `hook` is `Hook::Typed`.
    pub typed: Option<TypedHook>,
    /// How the exit program tells that a process has ended.
    pub process_end: ProcessEnd,
}

/// How the exit program tells that the exiting thread was its process's last.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcessEnd {
    /// The tracepoint's `group_dead` field (6.16 and later).
    GroupDead,
    /// The thread group's live count (`task->signal->live`) read through BTF, 0 once the
    /// last thread is exiting (before 6.16).
    LiveThreads,
}

impl ProcessEnd {
    /// How it reads in the log and the JSON report.
    pub fn describe(self) -> &'static str {
        match self {
            ProcessEnd::GroupDead => "sched_process_exit's group_dead",
            ProcessEnd::LiveThreads => "the thread group's live count (task->signal->live)",
        }
    }
}

/// Filters chosen on the command line.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    /// Count only processes in the traced set (else: every process).
    pub filtered: bool,
    /// Children of traced processes join the set when they are forked.
    pub follow_children: bool,
    /// Processes that exec under these names join the traced set.
    pub comms: Vec<String>,
    /// Processes in this cgroup (v2) or below it are traced.
    pub cgroup: Option<Cgroup>,
    /// Which hook the programs attach to.
    pub hook: Hook,
}

/// Where the counting programs hook into the kernel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Hook {
    /// The BTF-typed `sys_exit` tracepoint (tp_btf): one program runs for every syscall and
    /// filters by number; the saved registers and the walk to the fds' kinds are plain loads
    /// the verifier checks against the kernel's BTF. Falls back to `raw` where the kernel
    /// refuses it or lacks `bpf_rdonly_cast` (before 6.2).
    #[default]
    #[value(name = "btf")]
    Typed,
    /// The raw `sys_exit` tracepoint: the same program, with a checked probe read per step.
    Raw,
    /// The 22 syscalls' own `syscalls/sys_{enter,exit}_*` tracepoints.
    Tracepoints,
}

impl Hook {
    /// The name `--hook` takes.
    pub fn name(self) -> &'static str {
        match self {
            Hook::Typed => "btf",
            Hook::Raw => "raw",
            Hook::Tracepoints => "tracepoints",
        }
    }
}

/// A `--comm` name as the kernel stores it: at most 15 bytes, NUL-padded.
pub fn comm_bytes(name: &str) -> Result<[u8; COMM_LEN]> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= COMM_LEN || bytes.contains(&0) {
        bail!("--comm {name:?}: process names are 1 to 15 bytes (the kernel truncates longer ones; use the first 15)");
    }
    let mut out = [0u8; COMM_LEN];
    out[..bytes.len()].copy_from_slice(bytes);
    Ok(out)
}

/// The number of the argument at format offset `offset` (0: none), given the first
/// argument's offset: each argument takes an 8-byte slot.
fn argument_number(offset: u16, first_arg: u16) -> Option<u8> {
    if offset == 0 || offset < first_arg || !(offset - first_arg).is_multiple_of(8) {
        return None;
    }
    u8::try_from((offset - first_arg) / 8).ok()
}

/// Builds the plan. `format(category, name)` returns a tracepoint's parsed format, or `None`
/// when the kernel does not have it.
pub fn plan(
    mut format: impl FnMut(&str, &str) -> Result<Option<Format>>,
    scope: &Scope,
    layout: &KernelLayout,
    nr_cpus: u32,
) -> Result<Plan> {
    let arch = Arch::HOST.context(
        "zerocopy-trace knows the syscall numbers of x86-64 and aarch64 only, not of this architecture",
    )?;
    let mut config = Config::empty();
    let (mut covered, mut not_covered) = (Vec::new(), Vec::new());
    let (mut nr_offset, mut ret_offset, mut args_base) = (None, None, None);

    for (id, desc) in SYSCALLS.iter().enumerate() {
        let enter = format("syscalls", &format!("sys_enter_{}", desc.name))?;
        let exit = format("syscalls", &format!("sys_exit_{}", desc.name))?;
        let (Some(enter), Some(exit)) = (enter, exit) else {
            not_covered.push(desc.name);
            continue;
        };
        let nr = usize::from(desc.number(arch));
        if nr >= MAX_SYSCALL_NR {
            bail!(
                "syscall number {nr} of {} is past the kernel table ({MAX_SYSCALL_NR})",
                desc.name
            );
        }
        config.syscall_of_nr[nr] = id as u8;

        // Every syscall tracepoint shares these; insist they agree rather than pick one.
        same_offset(
            &mut nr_offset,
            enter.offset("__syscall_nr")?,
            "__syscall_nr",
        )?;
        same_offset(&mut nr_offset, exit.offset("__syscall_nr")?, "__syscall_nr")?;
        same_offset(&mut ret_offset, exit.offset("ret")?, "ret")?;
        let first_arg = enter
            .fields
            .iter()
            .filter(|f| !f.name.starts_with("common_") && f.name != "__syscall_nr")
            .map(|f| f.offset)
            .min()
            .with_context(|| format!("{} has no arguments", enter.name))?;
        same_offset(&mut args_base, first_arg, "the first argument")?;

        let optional =
            |field: Option<&str>| -> Result<u16> { field.map_or(Ok(0), |name| enter.offset(name)) };
        let mut flags = 0;
        if desc.counting == Counting::MmsgLengths {
            flags |= syscall_flags::MMSG;
        }
        if desc.counting == Counting::CallsOnly {
            flags |= syscall_flags::CALLS_ONLY;
        }
        if desc.errqueue_msghdr.is_some() {
            flags |= syscall_flags::ERRQUEUE;
        }
        if desc.is_send() {
            flags |= syscall_flags::SEND;
        }
        let offsets = [
            optional(desc.source_fd)?,
            optional(desc.destination_fd)?,
            optional(desc.msg_flags)?,
            optional(desc.mmsg_vector.or(desc.errqueue_msghdr))?,
        ];
        config.syscalls[id] = SyscallConfig {
            source_fd_offset: offsets[0],
            destination_fd_offset: offsets[1],
            msg_flags_offset: offsets[2],
            vector_offset: offsets[3],
            flags,
            argument_numbers: argument::pack(
                offsets.map(|offset| argument_number(offset, first_arg)),
            ),
            _reserved: [0; 2],
        };
        covered.push(desc.name);
    }
    if covered.is_empty() {
        bail!("this kernel has none of the data-path syscall tracepoints (syscalls/sys_enter_read, ...); is CONFIG_FTRACE_SYSCALLS set?");
    }
    config.nr_offset = nr_offset.unwrap_or_default();
    config.ret_offset = ret_offset.unwrap_or_default();
    let hook = match (scope.hook, layout.registers) {
        (Hook::Typed | Hook::Raw, Some(registers)) => {
            let window_start = registers.args.iter().copied().min().unwrap_or_default();
            // The programs copy 8 slots from the lowest argument register on.
            if registers
                .args
                .iter()
                .any(|&r| r < window_start || r - window_start >= 64 || r % 8 != 0)
            {
                bail!("pt_regs argument registers are not within one 64-byte window: use --hook tracepoints");
            }
            config.raw = RawSyscallConfig {
                enabled: 1,
                args_base: args_base.unwrap_or_default(),
                window_start,
                nr_register: registers.nr,
                arg_registers: registers.args,
                _reserved: [0; 2],
            };
            match (scope.hook, layout.typed) {
                (Hook::Typed, None) => {
                    log::warn!(
                        "the btf hook needs btf_trace_sys_exit and the bpf_rdonly_cast kfunc \
                         (Linux 6.2 and later) in the kernel's BTF: using --hook raw"
                    );
                    Hook::Raw
                }
                (Hook::Typed, Some(typed)) => {
                    config.typed_casts = typed.casts;
                    config.typed_task_tgid = typed.task_tgid;
                    config.typed_task_stack = typed.task_stack;
                    Hook::Typed
                }
                (hook, _) => hook,
            }
        }
        (Hook::Typed | Hook::Raw, None) => {
            log::warn!(
                "the exit-only hooks need pt_regs offsets from BTF: using --hook tracepoints"
            );
            Hook::Tracepoints
        }
        (Hook::Tracepoints, _) => Hook::Tracepoints,
    };

    let exit = format("sched", "sched_process_exit")?
        .context("tracepoint sched/sched_process_exit is missing")?;
    config.exit_pid_offset = exit.offset("pid")?;
    let process_end = match (exit.offset("group_dead"), layout.live_threads) {
        (Ok(offset), _) => {
            config.exit_group_dead_offset = offset;
            ProcessEnd::GroupDead
        }
        (Err(_), Some(live)) => {
            config.task_signal = live.task_signal;
            config.signal_live = live.signal_live;
            ProcessEnd::LiveThreads
        }
        (Err(_), None) => bail!(
            "this kernel's sched_process_exit has no group_dead field (before 6.16) and its BTF \
             gives no task_struct.signal->live: cannot tell when a process ends"
        ),
    };
    config.task_pid = layout.task_pid.unwrap_or_default();
    if let Some(leader) = layout.leader_comm {
        config.task_group_leader = leader.task_group_leader;
        config.task_comm = leader.task_comm;
    }
    let fork = format("sched", "sched_process_fork")?
        .context("tracepoint sched/sched_process_fork is missing")?;
    config.fork_child_pid_offset = fork.offset("child_pid")?;

    let mut io_uring_submit = IO_URING_SUBMIT;
    let mut submit = format("io_uring", IO_URING_SUBMIT)?;
    if submit.is_none() {
        io_uring_submit = IO_URING_SUBMIT_BEFORE_6_4;
        submit = format("io_uring", IO_URING_SUBMIT_BEFORE_6_4)?;
    }
    let complete = format("io_uring", "io_uring_complete")?;
    let io_uring = match (submit, complete) {
        (Some(submit), Some(complete)) => {
            config.io_uring = io_uring_config(&submit, &complete, layout.io_uring.as_ref())?;
            true
        }
        _ => {
            not_covered.push(IO_URING);
            false
        }
    };
    config.o_direct = libc::O_DIRECT as u32;

    config.filter_enabled = scope.filtered as u16;
    config.follow_children = scope.follow_children as u16;
    config.offsets = layout.offsets;
    if scope.comms.len() > MAX_COMMS {
        bail!("at most {MAX_COMMS} --comm names");
    }
    for (slot, name) in config.comms.iter_mut().zip(&scope.comms) {
        *slot = comm_bytes(name)?;
    }
    config.comm_count = scope.comms.len() as u32;
    if let Some(cgroup) = scope.cgroup {
        config.cgroup_id = cgroup.id;
        config.cgroup_level = cgroup.level;
    }
    config.nr_cpus = nr_cpus.min(MAX_CPUS);
    config.hot_slot_bits = hot::MAX_HOT_SLOT_BITS;
    config.agent_tgid = std::process::id();
    Ok(Plan {
        config,
        covered,
        not_covered,
        io_uring,
        io_uring_submit,
        raw_lifecycle: layout.task_pid.is_some(),
        hook,
        typed: layout.typed.filter(|_| hook == Hook::Typed),
        process_end,
    })
}

/// The io_uring programs' configuration: the operation table, the tracepoints' field offsets
/// and, when BTF gave them, the request's.
fn io_uring_config(
    submit: &Format,
    complete: &Format,
    structs: Option<&IoUringStructs>,
) -> Result<IoUringConfig> {
    let mut c = IoUringConfig::empty();
    for (index, op) in IO_URING_OPS.iter().enumerate() {
        c.op_of_opcode[usize::from(op.opcode)] = index as u8;
        let mut flags = 0;
        if op.file_is_source() {
            flags |= io_uring_op_flags::FILE_IS_SOURCE;
        }
        if op.input_fd {
            flags |= io_uring_op_flags::INPUT_FD;
        }
        if op.method == Method::ZeroCopySend {
            flags |= io_uring_op_flags::ZEROCOPY_SEND;
        }
        c.op_flags[index] = flags;
    }
    c.enabled = 1;
    c.submit_req_offset = submit.offset("req")?;
    c.submit_opcode_offset = submit.offset("opcode")?;
    c.complete_req_offset = complete.offset("req")?;
    c.complete_res_offset = complete.offset("res")?;
    c.complete_cflags_offset = complete.offset("cflags")?;
    // The programs read `req` as a whole 8-byte slot and `res`/`cflags` within one.
    let within_slot = |offset: u16| offset % 8 <= 4;
    if !c.submit_req_offset.is_multiple_of(8)
        || !c.complete_req_offset.is_multiple_of(8)
        || !within_slot(c.complete_res_offset)
        || !within_slot(c.complete_cflags_offset)
        || c.complete_cflags_offset >= 64
        || c.submit_opcode_offset >= 64
    {
        bail!("the io_uring tracepoints' fields are laid out in a way the programs cannot read");
    }
    if let Some(s) = structs {
        c.structs = 1;
        c.req_file = s.file;
        c.req_opcode = s.opcode;
        c.splice_fd_in = s.splice_fd_in;
        c.splice_flags = s.splice_flags;
        c.send_zc_notif = s.send_zc_notif;
        c.notif_zc_report = s.notif_zc_report;
    }
    Ok(c)
}

/// Plans a trace of `scope` on the running kernel: its tracepoint formats, its BTF, its CPUs.
/// Syscalls it has no tracepoints for are left out, with a warning.
pub fn for_this_kernel(tracefs: &std::path::Path, scope: &Scope, cpus: u32) -> Result<Plan> {
    let plan = plan(
        |category, name| crate::kernel::tracefs::read_format(tracefs, category, name),
        scope,
        &crate::kernel::btf::offsets::of_running_kernel(),
        cpus,
    )?;
    if !plan.not_covered.is_empty() {
        log::warn!(
            "this kernel has no tracepoints for {}: those syscalls are not counted",
            plan.not_covered.join(", ")
        );
    }
    Ok(plan)
}

fn same_offset(slot: &mut Option<u16>, offset: u16, field: &str) -> Result<()> {
    match *slot {
        Some(existing) if existing != offset => {
            bail!("field {field} is at offset {existing} in one syscall tracepoint and {offset} in another")
        }
        _ => *slot = Some(offset),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::btf::offsets::{LeaderComm, LiveThreads, Registers};
    use crate::kernel::tracefs::parse_format;
    use zerocopy_trace_common::{syscalls::syscall_id, KernelOffsets, TypedCasts, NOT_TRACED};

    /// A format as the kernel writes it: common fields, `__syscall_nr`, then 8-byte slots.
    fn syscall_format(name: &str, args: &[&str]) -> Format {
        let mut text = format!(
            "name: {name}\nID: 1\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;\n"
        );
        for (i, arg) in args.iter().enumerate() {
            text += &format!(
                "\tfield:long {arg};\toffset:{};\tsize:8;\tsigned:0;\n",
                16 + 8 * i
            );
        }
        parse_format(&text).unwrap()
    }

    fn fake_kernel(
        missing: &'static [&'static str],
    ) -> impl FnMut(&str, &str) -> Result<Option<Format>> {
        move |category, name| {
            Ok(match (category, name) {
                ("sched", "sched_process_exit") => Some(
                    parse_format("name: sched_process_exit\n\tfield:char comm[16];\toffset:8;\tsize:16;\tsigned:0;\n\tfield:pid_t pid;\toffset:24;\tsize:4;\tsigned:1;\n\tfield:bool group_dead;\toffset:32;\tsize:1;\tsigned:0;\n").unwrap(),
                ),
                ("sched", "sched_process_fork") => Some(
                    parse_format("name: sched_process_fork\n\tfield:pid_t child_pid;\toffset:20;\tsize:4;\tsigned:1;\n").unwrap(),
                ),
                ("io_uring", _) if missing.contains(&"io_uring") => None,
                ("io_uring", "io_uring_submit_req") => Some(
                    parse_format("name: io_uring_submit_req\n\tfield:void * ctx;\toffset:8;\tsize:8;\tsigned:0;\n\tfield:void * req;\toffset:16;\tsize:8;\tsigned:0;\n\tfield:u8 opcode;\toffset:32;\tsize:1;\tsigned:0;\n").unwrap(),
                ),
                ("io_uring", "io_uring_complete") => Some(
                    parse_format("name: io_uring_complete\n\tfield:void * req;\toffset:16;\tsize:8;\tsigned:0;\n\tfield:int res;\toffset:32;\tsize:4;\tsigned:1;\n\tfield:unsigned cflags;\toffset:36;\tsize:4;\tsigned:0;\n").unwrap(),
                ),
                (_, n) if missing.iter().any(|m| n.ends_with(m)) => None,
                (_, n) if n.starts_with("sys_exit_") => Some(syscall_format(n, &["ret"])),
                (_, "sys_enter_splice") => Some(syscall_format("sys_enter_splice", &["fd_in", "off_in", "fd_out", "off_out", "len", "flags"])),
                (_, "sys_enter_sendfile64") => Some(syscall_format("sys_enter_sendfile64", &["out_fd", "in_fd", "offset", "count"])),
                (_, "sys_enter_sendmmsg") => Some(syscall_format("sys_enter_sendmmsg", &["fd", "mmsg", "vlen", "flags"])),
                (_, "sys_enter_recvmmsg") => Some(syscall_format("sys_enter_recvmmsg", &["fd", "mmsg", "vlen", "flags", "timeout"])),
                (_, "sys_enter_sendto") => Some(syscall_format("sys_enter_sendto", &["fd", "buff", "len", "flags"])),
                (_, "sys_enter_sendmsg") => Some(syscall_format("sys_enter_sendmsg", &["fd", "msg", "flags"])),
                (_, "sys_enter_recvfrom") => Some(syscall_format("sys_enter_recvfrom", &["fd", "ubuf", "size", "flags"])),
                (_, "sys_enter_recvmsg") => Some(syscall_format("sys_enter_recvmsg", &["fd", "msg", "flags"])),
                (_, "sys_enter_io_uring_enter") => Some(syscall_format("sys_enter_io_uring_enter", &["fd", "to_submit", "min_complete", "flags", "argp", "argsz"])),
                (_, "sys_enter_tee") => Some(syscall_format("sys_enter_tee", &["fdin", "fdout", "len", "flags"])),
                (_, "sys_enter_copy_file_range") => Some(syscall_format("sys_enter_copy_file_range", &["fd_in", "off_in", "fd_out", "off_out", "len", "flags"])),
                (_, n) => Some(syscall_format(n, &["fd", "buf", "count"])),
            })
        }
    }

    #[test]
    fn offsets_come_from_the_formats() {
        let plan = plan(
            fake_kernel(&[]),
            &Scope::default(),
            &KernelLayout::default(),
            4,
        )
        .unwrap();
        assert_eq!(plan.covered.len(), SYSCALLS.len());
        // No register offsets known: the raw hook falls back to the tracepoints.
        assert_eq!(plan.hook, Hook::Tracepoints);
        assert_eq!(plan.config.raw.enabled, 0);
        assert!(plan.not_covered.is_empty());
        let c = &plan.config;
        assert_eq!((c.nr_offset, c.ret_offset), (8, 16));
        assert_eq!(
            (
                c.exit_pid_offset,
                c.exit_group_dead_offset,
                c.fork_child_pid_offset
            ),
            (24, 32, 20)
        );
        let splice = c.syscalls[syscall_id("splice").unwrap()];
        assert_eq!(
            (splice.source_fd_offset, splice.destination_fd_offset),
            (16, 32)
        );
        let sendfile = c.syscalls[syscall_id("sendfile64").unwrap()];
        assert_eq!(
            (sendfile.source_fd_offset, sendfile.destination_fd_offset),
            (24, 16)
        );
        // The exit-only hooks' argument numbers: sendfile(out_fd, in_fd, ...).
        let number = |config: &SyscallConfig, role| argument::number(config.argument_numbers, role);
        assert_eq!(number(&sendfile, argument::SOURCE_FD), Some(1));
        assert_eq!(number(&sendfile, argument::DESTINATION_FD), Some(0));
        assert_eq!(number(&sendfile, argument::MSG_FLAGS), None);
        assert_eq!(number(&sendfile, argument::VECTOR), None);
        let sendmmsg = c.syscalls[syscall_id("sendmmsg").unwrap()];
        assert_eq!(
            (sendmmsg.vector_offset, sendmmsg.msg_flags_offset),
            (24, 40)
        );
        assert_eq!(sendmmsg.flags, syscall_flags::MMSG | syscall_flags::SEND);
        // Receives keep no flags, but recvmsg, which may read zero-copy notices.
        assert_eq!(
            c.syscalls[syscall_id("recvfrom").unwrap()].msg_flags_offset,
            0
        );
        let recvmsg = c.syscalls[syscall_id("recvmsg").unwrap()];
        assert_eq!(
            (
                recvmsg.vector_offset,
                recvmsg.msg_flags_offset,
                recvmsg.flags
            ),
            (24, 32, syscall_flags::ERRQUEUE)
        );
        // recvmsg(fd, msg, flags): the fd is the source, nothing is the destination.
        assert_eq!(
            [
                argument::SOURCE_FD,
                argument::DESTINATION_FD,
                argument::MSG_FLAGS,
                argument::VECTOR
            ]
            .map(|role| number(&recvmsg, role)),
            [Some(0), None, Some(2), Some(1)]
        );
        assert_eq!(
            c.syscalls[syscall_id("io_uring_enter").unwrap()].flags,
            syscall_flags::CALLS_ONLY
        );
        // io_uring: offsets from its formats, every operation's opcode mapped.
        assert!(plan.io_uring);
        let u = &c.io_uring;
        assert_eq!(
            (
                u.submit_req_offset,
                u.submit_opcode_offset,
                u.complete_res_offset,
                u.complete_cflags_offset
            ),
            (16, 32, 32, 36)
        );
        assert_eq!(u.op_of_opcode[22], 0, "READ is operation 0");
        assert_eq!(u.op_of_opcode[0], NOT_TRACED, "NOP moves no data");
        assert_eq!(u.op_flags[0], io_uring_op_flags::FILE_IS_SOURCE);
        assert_eq!(u.structs, 0, "no BTF given: kinds unknown");
        assert_eq!(c.o_direct, libc::O_DIRECT as u32);
        assert_eq!(c.nr_cpus, 4);
        let read_nr = libc::SYS_read as usize;
        assert_eq!(c.syscall_of_nr[read_nr], 0);
        assert_eq!(c.syscall_of_nr[libc::SYS_openat as usize], NOT_TRACED);
    }

    /// Debian 12's 6.1 as the plan sees it: no `group_dead` in sched_process_exit, the
    /// io_uring submission tracepoint under its old name.
    fn kernel_6_1() -> impl FnMut(&str, &str) -> Result<Option<Format>> {
        let mut newer = fake_kernel(&[]);
        move |category, name| {
            match (category, name) {
            ("sched", "sched_process_exit") => Ok(Some(
                parse_format("name: sched_process_exit\n\tfield:char comm[16];\toffset:8;\tsize:16;\tsigned:0;\n\tfield:pid_t pid;\toffset:24;\tsize:4;\tsigned:1;\n\tfield:int prio;\toffset:28;\tsize:4;\tsigned:1;\n").unwrap(),
            )),
            ("io_uring", "io_uring_submit_req") => Ok(None),
            ("io_uring", "io_uring_submit_sqe") => newer("io_uring", "io_uring_submit_req"),
            _ => newer(category, name),
        }
        }
    }

    #[test]
    fn without_group_dead_a_process_ends_with_its_live_threads() {
        let live = LiveThreads {
            task_signal: 2104,
            signal_live: 20,
        };
        let layout = KernelLayout {
            live_threads: Some(live),
            task_pid: Some(1496),
            leader_comm: Some(LeaderComm {
                task_group_leader: 1688,
                task_comm: 2928,
            }),
            ..KernelLayout::default()
        };
        let old = plan(kernel_6_1(), &Scope::default(), &layout, 2).unwrap();
        assert_eq!(old.process_end, ProcessEnd::LiveThreads);
        assert_eq!(old.config.exit_group_dead_offset, 0);
        assert_eq!((old.config.task_signal, old.config.signal_live), (2104, 20));
        assert_eq!(old.config.task_pid, 1496);
        assert_eq!(
            (old.config.task_group_leader, old.config.task_comm),
            (1688, 2928)
        );
        assert!(old.raw_lifecycle);
        // io_uring is still covered, through the tracepoint's old name.
        assert!(old.io_uring);
        assert_eq!(old.io_uring_submit, "io_uring_submit_sqe");
        assert!(old.not_covered.is_empty(), "{:?}", old.not_covered);

        // With group_dead, it is used, and the live count is not needed.
        let new = plan(fake_kernel(&[]), &Scope::default(), &layout, 2).unwrap();
        assert_eq!(new.process_end, ProcessEnd::GroupDead);
        assert_eq!(new.config.exit_group_dead_offset, 32);
        assert_eq!(new.config.task_signal, 0);
        assert_eq!(new.io_uring_submit, "io_uring_submit_req");

        // Neither: refused, saying why, rather than counting processes that never end.
        let error = plan(kernel_6_1(), &Scope::default(), &KernelLayout::default(), 2)
            .unwrap_err()
            .to_string();
        assert!(error.contains("no group_dead field"), "{error}");
        assert!(error.contains("task_struct.signal->live"), "{error}");
        // Without BTF's task_struct.pid the lifecycle programs stay on the classic hooks.
        assert!(
            !plan(
                fake_kernel(&[]),
                &Scope::default(),
                &KernelLayout::default(),
                2
            )
            .unwrap()
            .raw_lifecycle
        );
    }

    #[test]
    fn missing_tracepoints_are_skipped_and_listed() {
        let plan = plan(
            fake_kernel(&["_tee"]),
            &Scope::default(),
            &KernelLayout::default(),
            1,
        )
        .unwrap();
        assert_eq!(plan.not_covered, vec!["tee"]);
        let without_uring = super::plan(
            fake_kernel(&["io_uring"]),
            &Scope::default(),
            &KernelLayout::default(),
            1,
        )
        .unwrap();
        assert_eq!(without_uring.not_covered, vec![IO_URING]);
        assert!(!without_uring.io_uring);
        assert_eq!(without_uring.config.io_uring.enabled, 0);
        assert_eq!(
            plan.config.syscall_of_nr[libc::SYS_tee as usize],
            NOT_TRACED
        );
    }

    #[test]
    fn scope_reaches_the_kernel_config() {
        let scope = Scope {
            filtered: true,
            follow_children: true,
            comms: vec!["nginx".into(), "python3".into()],
            cgroup: Some(Cgroup { id: 4242, level: 2 }),
            hook: Hook::Raw,
        };
        let offsets = KernelOffsets {
            resolve: 1,
            task_files: 3000,
            ..KernelOffsets::default()
        };
        // x86-64's pt_regs: r10 56, r9 64, r8 72, dx 96, si 104, di 112, orig_ax 120.
        let registers = Registers {
            args: [112, 104, 96, 56, 72, 64],
            nr: 120,
        };
        let layout = KernelLayout {
            live_threads: None,
            task_pid: None,
            leader_comm: None,
            offsets,
            registers: Some(registers),
            typed: None,
            io_uring: Some(IoUringStructs {
                file: 0,
                opcode: 64,
                splice_fd_in: 32,
                splice_flags: 36,
                send_zc_notif: 56,
                notif_zc_report: 44,
            }),
        };
        let plan = plan(fake_kernel(&[]), &scope, &layout, 100_000).unwrap();
        assert_eq!(plan.hook, Hook::Raw);
        assert_eq!(
            plan.config.raw,
            RawSyscallConfig {
                enabled: 1,
                args_base: 16,
                window_start: 56,
                nr_register: 120,
                arg_registers: [112, 104, 96, 56, 72, 64],
                _reserved: [0; 2],
            }
        );
        assert_eq!(
            (plan.config.filter_enabled, plan.config.follow_children),
            (1, 1)
        );
        assert_eq!(plan.config.nr_cpus, MAX_CPUS);
        assert_eq!(plan.config.offsets, offsets);
        assert_eq!(plan.config.comm_count, 2);
        assert_eq!(&plan.config.comms[0][..6], b"nginx\0");
        assert_eq!(plan.config.comms[2], [0; COMM_LEN]);
        assert_eq!((plan.config.cgroup_id, plan.config.cgroup_level), (4242, 2));
        let u = &plan.config.io_uring;
        assert_eq!(
            (u.structs, u.req_opcode, u.splice_fd_in, u.send_zc_notif),
            (1, 64, 32, 56)
        );
    }

    /// The table's numbers are the ones libc knows for the architecture we run on.
    #[test]
    fn the_table_numbers_are_this_architectures() {
        let arch = Arch::HOST.expect("a supported architecture");
        let libc_numbers = [
            libc::SYS_read,
            libc::SYS_write,
            libc::SYS_readv,
            libc::SYS_writev,
            libc::SYS_pread64,
            libc::SYS_pwrite64,
            libc::SYS_preadv,
            libc::SYS_pwritev,
            libc::SYS_preadv2,
            libc::SYS_pwritev2,
            libc::SYS_recvfrom,
            libc::SYS_recvmsg,
            libc::SYS_recvmmsg,
            libc::SYS_sendto,
            libc::SYS_sendmsg,
            libc::SYS_sendmmsg,
            libc::SYS_sendfile,
            libc::SYS_splice,
            libc::SYS_tee,
            libc::SYS_vmsplice,
            libc::SYS_copy_file_range,
            libc::SYS_io_uring_enter,
        ];
        for (desc, nr) in SYSCALLS.iter().zip(libc_numbers) {
            assert_eq!(i64::from(desc.number(arch)), nr, "{}", desc.name);
        }
    }

    #[test]
    fn the_typed_hook_needs_its_btf_ids_and_falls_back_to_raw() {
        let registers = Registers {
            args: [112, 104, 96, 56, 72, 64],
            nr: 120,
        };
        let typed = Scope {
            hook: Hook::Typed,
            ..Scope::default()
        };
        let with = |typed| KernelLayout {
            offsets: KernelOffsets::default(),
            registers: Some(registers),
            typed,
            ..KernelLayout::default()
        };
        let plan_with = |ids| plan(fake_kernel(&[]), &typed, &with(ids), 1).unwrap();
        let ids = TypedHook {
            sys_exit_typedef: 11328,
            rdonly_cast: 70000,
            casts: TypedCasts {
                file: 1200,
                socket: 1300,
                task: 1400,
                _reserved: 0,
            },
            task_tgid: 2476,
            task_stack: 24,
        };
        let full = plan_with(Some(ids));
        assert_eq!((full.hook, full.typed), (Hook::Typed, Some(ids)));
        assert_eq!(full.config.raw.enabled, 1);
        assert_eq!(full.config.typed_casts, ids.casts);
        assert_eq!(
            (full.config.typed_task_tgid, full.config.typed_task_stack),
            (2476, 24)
        );
        let raw = Scope {
            hook: Hook::Raw,
            ..Scope::default()
        };
        let raw_plan = plan(fake_kernel(&[]), &raw, &with(Some(ids)), 1).unwrap();
        assert_eq!((raw_plan.hook, raw_plan.typed), (Hook::Raw, None));
        assert_eq!(plan_with(None).hook, Hook::Raw);
        let no_registers = plan(fake_kernel(&[]), &typed, &KernelLayout::default(), 1).unwrap();
        assert_eq!(no_registers.hook, Hook::Tracepoints);
    }

    #[test]
    fn comm_names_must_fit_the_kernel() {
        assert!(comm_bytes("nginx").is_ok());
        assert!(comm_bytes("exactly15chars!").is_ok());
        assert!(comm_bytes("sixteen-chars-xx").is_err());
        assert!(comm_bytes("").is_err());
        assert!(comm_bytes("a\0b").is_err());
        let too_many = Scope {
            comms: vec!["x".into(); MAX_COMMS + 1],
            ..Scope::default()
        };
        assert!(plan(fake_kernel(&[]), &too_many, &KernelLayout::default(), 1).is_err());
    }
}
