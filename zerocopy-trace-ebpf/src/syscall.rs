//! The programs that count data-path syscalls. Three hooks do the same work:
//! - the BTF-typed `sys_exit` tracepoint (tp_btf, the default): one program for every syscall,
//!   filtered by number first, reading the saved registers and walking to the fds' kinds with
//!   plain loads the verifier checks against the kernel's BTF (Linux 6.2 and later: the walk
//!   casts two untyped pointers with `bpf_rdonly_cast`);
//! - the raw `sys_exit` tracepoint: the same program with a checked probe read per step, for
//!   kernels that refuse tp_btf or lack that kfunc;
//! - the classic `syscalls/sys_{enter,exit}_*` tracepoints: an enter program stores what the
//!   exit needs per thread (`on_enter`, `on_exit`).
//!
//! All three count through `count`.

use aya_ebpf::{
    helpers::{
        bpf_get_current_ancestor_cgroup_id, bpf_get_current_pid_tgid, bpf_probe_read_kernel,
        bpf_probe_read_user, bpf_probe_read_user_buf,
    },
    macros::{btf_tracepoint, raw_tracepoint, tracepoint},
    programs::{BtfTracePointContext, RawTracePointContext, TracePointContext},
};
use zerocopy_trace_common::{
    argument, drop_reason,
    fd_kind::NO_FD,
    notices::{
        zerocopy_notice, CmsgHeader, Notice, CMSG_HEADER_SIZE, EXTENDED_ERR_SIZE,
        MSGHDR_CONTROL_OFFSET, MSG_ERRQUEUE,
    },
    syscall_flags, PendingCall, ProcKey, SyscallConfig, MAX_MMSG, MMSGHDR_LEN_OFFSET, MMSGHDR_SIZE,
    MSG_ZEROCOPY,
};

use crate::{
    config,
    counters::{dropped, record, Call},
    current, fd_kind,
    maps::{MMSG_BATCH, MMSG_SCRATCH, PENDING, TRACED},
    stage::{self, Staged},
    words::Words,
};

/// Words of an enter record: `__syscall_nr` and up to six arguments.
type EnterWords = Words<8>;
/// Words of an exit record: `__syscall_nr` and `ret` (and one spare: a power of two).
type ExitWords = Words<4>;

/// A syscall's arguments, whichever hook delivered them: `role` is one of `argument`'s, and
/// `syscall` says where that argument is, if the syscall has it.
trait Arguments {
    fn get(&self, syscall: &SyscallConfig, role: u32) -> Option<u64>;
}

/// The classic tracepoint: the record itself is laid out as its format file says.
impl Arguments for EnterWords {
    #[inline(always)]
    fn get(&self, syscall: &SyscallConfig, role: u32) -> Option<u64> {
        let offset = match role {
            argument::SOURCE_FD => syscall.source_fd_offset,
            argument::DESTINATION_FD => syscall.destination_fd_offset,
            argument::MSG_FLAGS => syscall.msg_flags_offset,
            _ => syscall.vector_offset,
        };
        if offset == 0 {
            return None;
        }
        self.at(offset as usize)
    }
}

/// The raw hook: argument `i` is in the `i`-th argument register.
struct Registers(Words<8>);

impl Arguments for Registers {
    #[inline(always)]
    fn get(&self, syscall: &SyscallConfig, role: u32) -> Option<u64> {
        let number = argument::number(syscall.argument_numbers, role)?;
        let register = config::raw_arg_register(number)?;
        self.0
            .at(register.checked_sub(config::raw_window_start())? as usize)
    }
}

/// The typed hook: argument `i` is the `i`-th argument register, loaded directly from the
/// BTF-typed `pt_regs` when asked for: a call reads one to three of its six arguments, and each
/// typed load is checked at run time. The verifier needs a constant offset for each load, so
/// the argument's number picks one of six loads.
struct TypedRegisters(*const u8);

impl Arguments for TypedRegisters {
    #[inline(always)]
    fn get(&self, syscall: &SyscallConfig, role: u32) -> Option<u64> {
        let regs = self.0;
        // SAFETY: `regs` is the typed pt_regs of a tp_btf program's context (see
        // `btf_syscall_exit`), and each offset is an 8-byte member of it.
        let at = |offset: u16| unsafe { *(regs.add(offset as usize) as *const u64) };
        Some(match argument::number(syscall.argument_numbers, role)? {
            0 => at(config::raw_arg_register_at::<0>()),
            1 => at(config::raw_arg_register_at::<1>()),
            2 => at(config::raw_arg_register_at::<2>()),
            3 => at(config::raw_arg_register_at::<3>()),
            4 => at(config::raw_arg_register_at::<4>()),
            _ => at(config::raw_arg_register_at::<5>()),
        })
    }
}

/// The `fd_kind` of the fd argument `role` (by `kind_of`), or `NO_FD` when the syscall has
/// none.
#[inline(always)]
fn fd_kind_arg(
    args: &impl Arguments,
    syscall: &SyscallConfig,
    role: u32,
    kind_of: &impl Fn(i32) -> u8,
) -> u8 {
    match args.get(syscall, role) {
        Some(fd) => kind_of(fd as i32),
        None => NO_FD,
    }
}

/// Whether the current process is to be counted.
#[inline(always)]
pub fn is_traced(tgid: u32) -> bool {
    if tgid == config::agent_tgid() {
        return false;
    }
    if !config::filter_enabled() {
        return true;
    }
    // SAFETY: only tested for presence, the value is not read.
    if unsafe { TRACED.get(tgid) }.is_some() {
        return true;
    }
    let (cgroup, level) = config::cgroup_filter();
    // SAFETY: the helper only reads the current task's cgroup.
    cgroup != 0 && unsafe { bpf_get_current_ancestor_cgroup_id(level as i32) } == cgroup
}

/// The syscall id of the tracepoint being run, from `__syscall_nr` (an int: the low half of
/// its slot).
#[inline(always)]
fn current_syscall<const N: usize>(slots: &Words<N>) -> Option<u32> {
    let nr = slots.at(config::nr_offset())? as i32;
    config::syscall_of_nr(nr)
}

#[tracepoint]
pub fn syscall_enter(ctx: TracePointContext) -> u32 {
    if let Some(slots) = EnterWords::read(&ctx) {
        if let Some(id) = current_syscall(&slots) {
            on_enter(id, &slots);
        }
    }
    0
}

/// What the exit needs to know of a call, from its arguments: its flags and its `struct
/// mmsghdr` array or `struct user_msghdr`. The fd kinds are left `NO_FD` for `fd_kinds` to
/// fill in.
#[inline(always)]
fn describe_without_kinds(id: u32, args: &impl Arguments) -> PendingCall {
    let syscall = config::syscall(id);
    PendingCall {
        syscall: id,
        in_flight: 1,
        source_kind: NO_FD,
        destination_kind: NO_FD,
        msg_flags: args.get(syscall, argument::MSG_FLAGS).unwrap_or(0),
        vector: args.get(syscall, argument::VECTOR).unwrap_or(0),
    }
}

/// The kinds of the call's source and destination fds (`NO_FD` where it has none). The
/// source's kind is parked in the call's staging slot while the destination's is resolved
/// (see `stage`).
///
/// # Safety
/// `slot` must come from `stage::slot`.
#[inline(always)]
unsafe fn fd_kinds(
    slot: *mut Staged,
    id: u32,
    args: &impl Arguments,
    kind_of: &impl Fn(i32) -> u8,
) -> (u8, u8) {
    let syscall = config::syscall(id);
    let source = fd_kind_arg(args, syscall, argument::SOURCE_FD, kind_of);
    // SAFETY: the slot comes from `stage::slot`.
    unsafe { stage::park_kind(slot, source) };
    let destination = fd_kind_arg(args, syscall, argument::DESTINATION_FD, kind_of);
    // SAFETY: as above.
    (unsafe { stage::parked_kind(slot) }, destination)
}

/// The kinds of the call's fds, by probe reads, for the tracepoint hook's enter (no staging:
/// it is a program of its own, with one path to count).
#[inline(always)]
fn fd_kinds_unstaged(id: u32, args: &impl Arguments) -> (u8, u8) {
    let syscall = config::syscall(id);
    (
        fd_kind_arg(args, syscall, argument::SOURCE_FD, &fd_kind::of_fd),
        fd_kind_arg(args, syscall, argument::DESTINATION_FD, &fd_kind::of_fd),
    )
}

/// Everything the exit needs to know of a call.
#[inline(always)]
fn describe(id: u32, args: &impl Arguments) -> PendingCall {
    let mut call = describe_without_kinds(id, args);
    (call.source_kind, call.destination_kind) = fd_kinds_unstaged(id, args);
    call
}

#[inline(always)]
fn on_enter(id: u32, args: &impl Arguments) {
    let pid_tgid = bpf_get_current_pid_tgid();
    let (tgid, tid) = ((pid_tgid >> 32) as u32, pid_tgid as u32);
    if !is_traced(tgid) {
        return;
    }
    let call = describe(id, args);
    // Overwriting the thread's existing slot avoids the bucket lock and free-list work of an
    // update; only a thread's first traced call inserts.
    match PENDING.get_ptr_mut(tid) {
        // SAFETY: the pointer is to this thread's own entry; only this thread writes it.
        Some(slot) => unsafe { *slot = call },
        None => {
            if PENDING.insert(tid, call, 0).is_err() {
                dropped(drop_reason::PENDING_FULL, 0);
            }
        }
    }
}

#[tracepoint]
pub fn syscall_exit(ctx: TracePointContext) -> u32 {
    if let Some(slots) = ExitWords::read(&ctx) {
        if let Some(id) = current_syscall(&slots) {
            on_exit(id, slots.at(config::ret_offset()).map_or(-1, |v| v as i64));
        }
    }
    0
}

/// The raw hook needs no enter program: at `sys_exit` the saved registers still hold the
/// syscall number (`orig_ax`) and its arguments, which the data-path syscalls never change.
/// One program per syscall instead of two, and no per-thread state.
#[raw_tracepoint(tracepoint = "sys_exit")]
pub fn raw_syscall_exit(ctx: RawTracePointContext) -> i32 {
    let regs: u64 = ctx.arg(0);
    // SAFETY: a checked read of the saved registers of the current task.
    let nr =
        unsafe { bpf_probe_read_kernel((regs + config::raw_nr_register() as u64) as *const i64) };
    let Some(id) = nr.ok().and_then(|nr| config::syscall_of_nr(nr as i32)) else {
        return 0;
    };
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if !is_traced(tgid) {
        return 0;
    }
    if let Some(window) = Words::<8>::read_kernel(regs + config::raw_window_start() as u64) {
        let ret: i64 = ctx.arg(1);
        count_from_registers(tgid, id, ret, &Registers(window), &fd_kind::of_fd);
    }
    0
}

/// The typed hook: like `raw_syscall_exit`, with the saved registers and the walk to the fds'
/// files loaded directly, checked by the verifier against the kernel's BTF, instead of one
/// helper call per read; and the running task, which gives the process id and starts the
/// walks, from `current`, without a helper call while the CPU runs the thread it last saw.
#[btf_tracepoint(function = "sys_exit")]
pub fn btf_syscall_exit(ctx: BtfTracePointContext) -> i32 {
    typed_exit::<false>(&ctx)
}

/// The typed hook for kernels whose verifier refuses the direct load of an fd array slot
/// (6.12): the same, with that one read by a helper call (see `fd_kind::of_fd_typed`).
#[btf_tracepoint(function = "sys_exit")]
pub fn btf_syscall_exit_slot_read(ctx: BtfTracePointContext) -> i32 {
    typed_exit::<true>(&ctx)
}

#[inline(always)]
fn typed_exit<const SLOT_BY_HELPER: bool>(ctx: &BtfTracePointContext) -> i32 {
    let regs: *const u8 = ctx.arg(0);
    // SAFETY: the first argument of sys_exit is the BTF-typed pt_regs of the exiting syscall;
    // `nr_register` is an 8-byte member of it.
    let nr: i64 = unsafe { *(regs.add(config::raw_nr_register() as usize) as *const i64) };
    let Some(id) = config::syscall_of_nr(nr as i32) else {
        return 0;
    };
    let task = current::task_typed(regs);
    // SAFETY: the task comes from `task_typed`.
    let tgid = unsafe { current::tgid(task) };
    if !is_traced(tgid) {
        return 0;
    }
    count_from_registers(tgid, id, ctx.arg(1), &TypedRegisters(regs), &|fd| {
        // SAFETY: as above.
        unsafe { fd_kind::of_fd_typed::<SLOT_BY_HELPER>(task, fd) }
    });
    0
}

/// The exit-only hooks: everything about the call is in its saved registers.
#[inline(always)]
fn count_from_registers(
    tgid: u32,
    id: u32,
    ret: i64,
    args: &impl Arguments,
    kind_of: &impl Fn(i32) -> u8,
) {
    // Kinds resolved after the bytes are counted (see `count`).
    count(tgid, id, ret, &describe_without_kinds(id, args), |slot| {
        // SAFETY: `count` passes its staging slot.
        unsafe { fd_kinds(slot, id, args, kind_of) }
    });
}

/// The classic exit: the call's description was stored by its enter.
#[inline(always)]
fn on_exit(id: u32, ret: i64) {
    let pid_tgid = bpf_get_current_pid_tgid();
    let (tgid, tid) = ((pid_tgid >> 32) as u32, pid_tgid as u32);
    if !is_traced(tgid) {
        return;
    }

    let pending = match PENDING.get_ptr_mut(tid) {
        // SAFETY: this thread's own entry; reading then clearing `in_flight` cannot race.
        Some(slot) => unsafe {
            let call = *slot;
            (*slot).in_flight = 0;
            call
        },
        None => PendingCall::default(),
    };
    if pending.in_flight == 0 || pending.syscall != id {
        // Began before attach, or its enter record could not be stored. The return value is
        // a byte count except for the mmsg pair (messages) and io_uring_enter (entries).
        let not_bytes = syscall_flags::MMSG | syscall_flags::CALLS_ONLY;
        let bytes = if ret > 0 && config::syscall(id).flags & not_bytes == 0 {
            ret as u64
        } else {
            0
        };
        dropped(drop_reason::MISSING_ENTER, bytes);
        return;
    }
    count(tgid, id, ret, &pending, |_| {
        (pending.source_kind, pending.destination_kind)
    });
}

/// Adds one completed call to its process's counters. `kinds` resolves the fds' kinds, given
/// the staging slot the call is parked in; it runs after the bytes are known, so the verifier
/// walks the `msg_len` loop once rather than once per kind, and only when there are bytes to
/// attribute to a kind: a failed or empty call (EAGAIN on a non-blocking socket, say) skips
/// the walk.
#[inline(always)]
fn count(
    tgid: u32,
    id: u32,
    ret: i64,
    pending: &PendingCall,
    kinds: impl FnOnce(*mut Staged) -> (u8, u8),
) {
    let flags = config::syscall(id).flags;
    let key = ProcKey { tgid, syscall: id };
    // An error-queue read (recvmsg with MSG_ERRQUEUE) may carry a zero-copy completion
    // notice. It takes a path of its own, so the verifier walks the notice parse beside the
    // other paths rather than on each of them; the common receive pays one flag test. Its
    // bytes (none for a notice; a timestamped packet's copy otherwise) are not data coming out
    // of the socket, so they are left out of the fd kinds.
    if flags & syscall_flags::ERRQUEUE != 0 && pending.msg_flags & MSG_ERRQUEUE != 0 {
        let bytes = if ret > 0 { ret as u64 } else { 0 };
        let notice = if ret >= 0 {
            errqueue_notice(pending.vector)
        } else {
            None
        };
        record(
            &key,
            &Call {
                bytes,
                error: ret < 0,
                zerocopy_sends: 0,
                source_kind: NO_FD,
                destination_kind: NO_FD,
                notice,
            },
        );
        return;
    }
    let mmsg = flags & syscall_flags::MMSG != 0;
    let bytes = if ret < 0 || flags & syscall_flags::CALLS_ONLY != 0 {
        0
    } else if mmsg {
        match mmsg_bytes(pending.vector, ret as u64) {
            Some(bytes) => bytes,
            None => {
                dropped(drop_reason::MMSG_UNREADABLE, 0);
                return;
            }
        }
    } else {
        ret as u64
    };
    // Each send that asked for zero copy and took bytes gets a number in the socket's
    // sequence of completion notices (sendmmsg: one per message). Arithmetic rather than
    // branches: fewer paths for the verifier.
    let asked =
        (flags & syscall_flags::SEND != 0) & (pending.msg_flags & MSG_ZEROCOPY != 0) & (ret > 0);
    let messages = (mmsg as u64).wrapping_mul(ret as u64) + (!mmsg as u64);
    let zerocopy_sends = (asked as u64).wrapping_mul(messages);
    // Parked while the kinds are resolved, so the verifier's paths merge (see `stage`).
    // The slot of a one-entry per-CPU array is always there. Were it not, the call could not
    // be counted, and is counted as dropped like one that found no counter slot: recording
    // it here instead, with unknown kinds, would double what the verifier walks.
    let Some(slot) = stage::slot() else {
        dropped(drop_reason::COUNTERS_FULL, bytes);
        return;
    };
    let staged = Staged {
        key: ((tgid as u64) << 32) | id as u64,
        bytes,
        zerocopy_sends,
        error: (ret < 0) as u64,
        source_kind: 0,
    };
    // SAFETY: the slot comes from `stage::slot`.
    unsafe { stage::park(slot, staged) };
    let (source_kind, destination_kind) = if bytes == 0 {
        (NO_FD, NO_FD)
    } else {
        kinds(slot)
    };
    // SAFETY: as above.
    let staged = unsafe { stage::read(slot) };
    // Built from plain values read back, not borrowed from `staged`: the verifier keeps a
    // borrowed stack copy apart per path (95 000 instructions to verify instead of 35 000).
    let key = ProcKey {
        tgid: (staged.key >> 32) as u32,
        syscall: staged.key as u32,
    };
    let call = Call {
        bytes: staged.bytes,
        error: staged.error != 0,
        zerocopy_sends: staged.zerocopy_sends,
        source_kind,
        destination_kind,
        notice: None,
    };
    record(&key, &call);
}

/// The zero-copy completion notice a recvmsg with `MSG_ERRQUEUE` wrote into the control
/// buffer of its `struct user_msghdr` (whose `msg_controllen` it set to the length written),
/// looking at up to two control messages (a timestamp may come first).
#[inline(always)]
fn errqueue_notice(msghdr: u64) -> Option<Notice> {
    // SAFETY: a checked read of user memory; a fault returns an error, never crashes.
    let [control, len] =
        unsafe { bpf_probe_read_user((msghdr + MSGHDR_CONTROL_OFFSET) as *const [u64; 2]) }.ok()?;
    if control == 0 {
        return None;
    }
    const NEEDED: u64 = (CMSG_HEADER_SIZE + EXTENDED_ERR_SIZE) as u64;
    let mut at = 0u64;
    for _ in 0..2 {
        if at.checked_add(NEEDED)? > len {
            return None;
        }
        // SAFETY: as above.
        let bytes = unsafe {
            bpf_probe_read_user((control + at) as *const [u8; CMSG_HEADER_SIZE + EXTENDED_ERR_SIZE])
        }
        .ok()?;
        let mut head = [0u8; CMSG_HEADER_SIZE];
        head.copy_from_slice(&bytes[..CMSG_HEADER_SIZE]);
        let header = CmsgHeader::parse(&head);
        if header.len > len - at {
            return None;
        }
        if header.is_extended_err() {
            let mut ee = [0u8; EXTENDED_ERR_SIZE];
            ee.copy_from_slice(&bytes[CMSG_HEADER_SIZE..]);
            return zerocopy_notice(&ee);
        }
        at += header.next_offset()?;
    }
    None
}

/// Sum of `msg_len` over the first `count` entries of a `struct mmsghdr` array in user memory.
/// Whole batches of `MMSG_BATCH` headers are copied at once into a per-CPU scratch buffer (one
/// helper call per batch, and a loop the verifier walks in 64 steps rather than 1 024); the
/// last few headers are read one by one. No branch depends on the data, so the verifier's
/// states do not multiply.
#[inline(always)]
fn mmsg_bytes(vector: u64, count: u64) -> Option<u64> {
    const HEADER: u64 = MMSGHDR_SIZE;
    let scratch = MMSG_SCRATCH.get_ptr_mut(0)?;
    let batches = (count / MMSG_BATCH as u64).min((MAX_MMSG as usize / MMSG_BATCH) as u64);
    let mut total = 0u64;
    let mut batch = 0u64;
    while batch < (MAX_MMSG as usize / MMSG_BATCH) as u64 {
        if batch >= batches {
            break;
        }
        let src = (vector + batch * MMSG_BATCH as u64 * HEADER) as *const u8;
        // SAFETY: `scratch` is this CPU's slot of a per-CPU array, used only here and only by
        // this program run; the read is checked and exactly the slot's size.
        unsafe { bpf_probe_read_user_buf(src, &mut *scratch) }.ok()?;
        let mut i = 0;
        while i < MMSG_BATCH {
            let at = i * HEADER as usize + MMSGHDR_LEN_OFFSET as usize;
            // SAFETY: `at + 4` is within the slot (i < MMSG_BATCH).
            total += unsafe { (*scratch).as_ptr().add(at).cast::<u32>().read_unaligned() } as u64;
            i += 1;
        }
        batch += 1;
    }
    let mut i = batches * MMSG_BATCH as u64;
    let mut left = 0;
    while left < MMSG_BATCH {
        if i >= count {
            break;
        }
        let at = vector + i * HEADER + MMSGHDR_LEN_OFFSET;
        // SAFETY: a checked read of user memory; a fault returns an error, never crashes.
        let len = unsafe { bpf_probe_read_user(at as *const u32) }.ok()?;
        total += len as u64;
        i += 1;
        left += 1;
    }
    Some(total)
}
