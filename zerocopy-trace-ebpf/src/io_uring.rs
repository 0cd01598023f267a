//! The programs that count io_uring operations, which move data without a syscall of their
//! own. `io_uring_submit_req` runs in the submitting thread (the process's own, its SQPOLL
//! thread or an io-wq worker: all threads of the submitting process) and remembers, by request
//! address, who submitted what; `io_uring_complete` counts each completion for that process,
//! through the same counters as the syscalls (ids after theirs). A multishot request keeps
//! its entry while `IORING_CQE_F_MORE` says it will complete again. A zero-copy send's
//! notification is a request of its own: its address is remembered at submit too, and its
//! completion is counted as a notice, not an operation.

use aya_ebpf::{
    helpers::bpf_get_current_pid_tgid, macros::tracepoint, programs::TracePointContext,
};
use zerocopy_trace_common::{
    fd_kind, inflight,
    io_uring::{IORING_CQE_F_MORE, IORING_CQE_F_NOTIF, SPLICE_F_FD_IN_FIXED},
    io_uring_op_flags,
    notices::io_uring_notice,
    InflightOp, IoUringConfig, ProcKey, SYSCALL_COUNT,
};

use crate::{
    config,
    counters::{record, record_notice, Call},
    fd_kind::{of_fd, of_file, read},
    maps::IO_URING_INFLIGHT,
    syscall::is_traced,
    words::Words,
};

/// The index of `SEND_ZC` in `IO_URING_OPS`: where notifications whose send was not seen are
/// filed.
const SEND_ZC: u8 = 13;
const _: () = assert!(zerocopy_trace_common::IO_URING_OPS[SEND_ZC as usize].opcode == 47);

#[inline(always)]
fn current_tgid() -> u32 {
    (bpf_get_current_pid_tgid() >> 32) as u32
}

#[tracepoint]
pub fn io_uring_submit(ctx: TracePointContext) -> u32 {
    let _ = on_submit(&ctx);
    0
}

#[inline(always)]
fn on_submit(ctx: &TracePointContext) -> Option<()> {
    let cfg = config::io_uring();
    let slots = Words::<8>::read(ctx)?;
    let opcode = slots.u8_at(cfg.submit_opcode_offset as usize)?;
    let op = config::io_uring_op_of(opcode)?;
    let tgid = current_tgid();
    if !is_traced(tgid) {
        return None;
    }
    let req = slots.at(cfg.submit_req_offset as usize)?;
    let flags = config::io_uring_op_flags(op);
    let source_kind = if flags & io_uring_op_flags::INPUT_FD != 0 {
        input_fd_kind(cfg, req)
    } else {
        fd_kind::NO_FD
    };
    let entry = InflightOp {
        tgid,
        op,
        kind: inflight::REQUEST,
        source_kind,
        _reserved: 0,
    };
    let _ = IO_URING_INFLIGHT.insert(req, entry, 0);
    if flags & io_uring_op_flags::ZEROCOPY_SEND != 0 && cfg.structs != 0 {
        // Prepared before this tracepoint: the notification request the send will complete.
        let notif: u64 = read(req + cfg.send_zc_notif as u64)?;
        let notice = InflightOp {
            kind: inflight::NOTIFICATION,
            ..entry
        };
        let _ = IO_URING_INFLIGHT.insert(notif, notice, 0);
    }
    Some(())
}

/// The kind of SPLICE's or TEE's input fd, resolved in the submitter's fd table (a registered
/// file's index is not an fd: `unknown`).
#[inline(always)]
fn input_fd_kind(cfg: &IoUringConfig, req: u64) -> u8 {
    if cfg.structs == 0 {
        return fd_kind::UNKNOWN;
    }
    let flags: u32 = read(req + cfg.splice_flags as u64).unwrap_or(SPLICE_F_FD_IN_FIXED);
    if flags & SPLICE_F_FD_IN_FIXED != 0 {
        return fd_kind::UNKNOWN;
    }
    match read::<i32>(req + cfg.splice_fd_in as u64) {
        Some(fd) => of_fd(fd),
        None => fd_kind::UNKNOWN,
    }
}

#[tracepoint]
pub fn io_uring_complete(ctx: TracePointContext) -> u32 {
    let _ = on_complete(&ctx);
    0
}

#[inline(always)]
fn on_complete(ctx: &TracePointContext) -> Option<()> {
    let cfg = config::io_uring();
    let slots = Words::<8>::read(ctx)?;
    let req = slots.at(cfg.complete_req_offset as usize)?;
    let res = slots.u32_at(cfg.complete_res_offset as usize)? as i32;
    let cflags = slots.u32_at(cfg.complete_cflags_offset as usize)?;
    // SAFETY: the value is copied out before anything else can change the entry.
    let entry = unsafe { IO_URING_INFLIGHT.get(req) }.copied();
    match entry {
        Some(e) if e.kind == inflight::NOTIFICATION => {
            let _ = IO_URING_INFLIGHT.remove(req);
            notice(cfg, e.tgid, e.op, req, res);
        }
        Some(e) => {
            let zerocopy_send =
                config::io_uring_op_flags(e.op) & io_uring_op_flags::ZEROCOPY_SEND != 0;
            // A zero-copy send's F_MORE announces its notification, a request of its own.
            if cflags & IORING_CQE_F_MORE == 0 || zerocopy_send {
                let _ = IO_URING_INFLIGHT.remove(req);
            }
            operation(cfg, e.tgid, e.op, req, res, e.source_kind);
        }
        None => {
            // Submitted before attach, pushed out of the map, or failed before submission
            // was traced: the completing thread is then the submitter's (task work, io-wq).
            let tgid = current_tgid();
            if !is_traced(tgid) {
                return None;
            }
            if cflags & IORING_CQE_F_NOTIF != 0 {
                notice(cfg, tgid, SEND_ZC, req, res);
            } else if cfg.structs != 0 {
                let op = config::io_uring_op_of(read(req + cfg.req_opcode as u64)?)?;
                let flags = config::io_uring_op_flags(op);
                let source = if flags & io_uring_op_flags::INPUT_FD != 0 {
                    fd_kind::UNKNOWN
                } else {
                    fd_kind::NO_FD
                };
                operation(cfg, tgid, op, req, res, source);
            }
        }
    }
    Some(())
}

/// One completion of operation `op` for process `tgid`.
#[inline(always)]
fn operation(cfg: &IoUringConfig, tgid: u32, op: u8, req: u64, res: i32, input_kind: u8) {
    let flags = config::io_uring_op_flags(op);
    let bytes = if res > 0 { res as u64 } else { 0 };
    // The request's file is still held at completion. Kinds only weigh bytes: a completion
    // that moved none skips the walk, as a syscall does (`syscall::count`).
    let file_kind = if bytes == 0 {
        fd_kind::NO_FD
    } else if cfg.structs != 0 {
        match read::<u64>(req + cfg.req_file as u64) {
            Some(file) => of_file(file),
            None => fd_kind::UNKNOWN,
        }
    } else {
        fd_kind::UNKNOWN
    };
    let (source_kind, destination_kind) = if flags & io_uring_op_flags::FILE_IS_SOURCE != 0 {
        (file_kind, fd_kind::NO_FD)
    } else {
        (input_kind, file_kind)
    };
    let zerocopy_sends = (flags & io_uring_op_flags::ZEROCOPY_SEND != 0 && res > 0) as u64;
    record(
        &ProcKey {
            tgid,
            syscall: SYSCALL_COUNT as u32 + op as u32,
        },
        &Call {
            bytes,
            error: res < 0,
            zerocopy_sends,
            source_kind,
            destination_kind,
            notice: None,
        },
    );
}

/// A zero-copy send's notification for process `tgid`: a notice when the application asked
/// for usage reports (else it says nothing about copying, and the send stays unconfirmed).
#[inline(always)]
fn notice(cfg: &IoUringConfig, tgid: u32, op: u8, req: u64, res: i32) {
    let reported =
        cfg.structs != 0 && read::<u8>(req + cfg.notif_zc_report as u64).is_some_and(|r| r != 0);
    if let Some(notice) = io_uring_notice(res, reported) {
        record_notice(
            &ProcKey {
                tgid,
                syscall: SYSCALL_COUNT as u32 + op as u32,
            },
            notice,
        );
    }
}
