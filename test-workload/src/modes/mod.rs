//! The workload modes, one file per family of syscalls. Each mode prepares its fds in the
//! parent, forks its measured children, reaps them and returns their reports.

mod errors;
mod files;
mod in_kernel;
mod lifecycle;
mod mmsg;
mod pipes;
mod read_write;
mod send;
mod tcp;
mod threads;
mod uring;

use std::os::fd::RawFd;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::ValueEnum;

use crate::child::ChildResult;
use crate::ground_truth::{Errno, Failure, OrFail};
use crate::report::ProcessReport;
use crate::setup::WorkDir;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// sender: read file, write socket; receiver: read
    ReadWrite,
    /// sender: sendfile file -> socket; receiver: read
    Sendfile,
    /// sender: splice file -> pipe -> socket; receiver: read
    Splice,
    /// copier: copy_file_range file -> file
    CopyFileRange,
    /// sender: readv file, writev socket; receiver: readv
    ReadvWritev,
    /// sender: sendto and sendmsg in turn; receiver: recvfrom and recvmsg in turn
    SendRecv,
    /// UDP: sender sendmmsg, receiver recvmmsg
    Mmsg,
    /// copier: pread64/pwrite64, preadv/pwritev, preadv2/pwritev2, a third of the file each
    Positional,
    /// splicer: vmsplice into a pipe, tee to a second pipe, splice both to /dev/null
    PipeZeroCopy,
    /// sender: sendto with MSG_ZEROCOPY, then reads the completion notices from its error
    /// queue; receiver: read
    MsgZerocopy,
    /// UDP: sender: sendto with MSG_ZEROCOPY, one datagram at a time, then reads the
    /// completion notices; receiver: recvfrom
    MsgZerocopyUdp,
    /// copier: io_uring READ of a file and WRITE to another
    UringReadWrite,
    /// reader: io_uring READ of a file opened O_DIRECT
    UringDirectRead,
    /// sender: io_uring SEND; receiver: io_uring RECV
    UringSendRecv,
    /// sender: io_uring SPLICE file -> pipe -> socket; receiver: read
    UringSplice,
    /// sender: io_uring SEND_ZC with usage reports; receiver: read
    UringSendZc,
    /// reader: io_uring READ of a file through an SQPOLL ring
    UringSqpoll,
    /// failer: known failing and succeeding read/write/pread64/sendto calls
    Errors,
    /// every mode above, one after another
    All,
    /// --processes churners, --parallel alive at once: one write to /dev/null each (not in all)
    Churn,
    /// first: 3 writes to /dev/null; second, forked with the first's pid: 5 writes (not in all)
    PidReuse,
    /// threaded: --threads threads, --repeat writes to /dev/null each, after the leader
    /// thread has exited (not in all)
    Threads,
    /// --processes processes of --threads threads each: every thread makes --repeat writes to
    /// /dev/null, the leader one read of /dev/zero, then the leader ends the process
    /// (exit_group) with every thread still alive, so they all exit at once (not in all)
    ExitTogether,
    /// --processes holders alive at once: one write to /dev/null, then --hold-ms (not in all)
    Hold,
}

impl Mode {
    /// Every mode `all` runs, in order.
    pub const EACH: [Mode; 18] = [
        Mode::ReadWrite,
        Mode::Sendfile,
        Mode::Splice,
        Mode::CopyFileRange,
        Mode::ReadvWritev,
        Mode::SendRecv,
        Mode::Mmsg,
        Mode::Positional,
        Mode::PipeZeroCopy,
        Mode::MsgZerocopy,
        Mode::MsgZerocopyUdp,
        Mode::Errors,
        Mode::UringReadWrite,
        Mode::UringDirectRead,
        Mode::UringSendRecv,
        Mode::UringSplice,
        Mode::UringSendZc,
        Mode::UringSqpoll,
    ];

    /// The modes `all` leaves out: they test process and thread lifecycles, not data paths.
    #[cfg(test)]
    pub const LIFECYCLE: [Mode; 5] = [
        Mode::Churn,
        Mode::PidReuse,
        Mode::Threads,
        Mode::ExitTogether,
        Mode::Hold,
    ];

    /// The name on the command line and in the JSON.
    pub const fn name(self) -> &'static str {
        match self {
            Mode::ReadWrite => "read-write",
            Mode::Sendfile => "sendfile",
            Mode::Splice => "splice",
            Mode::CopyFileRange => "copy-file-range",
            Mode::ReadvWritev => "readv-writev",
            Mode::SendRecv => "send-recv",
            Mode::Mmsg => "mmsg",
            Mode::Positional => "positional",
            Mode::PipeZeroCopy => "pipe-zero-copy",
            Mode::MsgZerocopy => "msg-zerocopy",
            Mode::MsgZerocopyUdp => "msg-zerocopy-udp",
            Mode::UringReadWrite => "uring-read-write",
            Mode::UringDirectRead => "uring-direct-read",
            Mode::UringSendRecv => "uring-send-recv",
            Mode::UringSplice => "uring-splice",
            Mode::UringSendZc => "uring-send-zc",
            Mode::UringSqpoll => "uring-sqpoll",
            Mode::Errors => "errors",
            Mode::All => "all",
            Mode::Churn => "churn",
            Mode::PidReuse => "pid-reuse",
            Mode::Threads => "threads",
            Mode::ExitTogether => "exit-together",
            Mode::Hold => "hold",
        }
    }
}

/// The amounts a mode moves; `Copy` so each child's closure takes its own.
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    /// Bytes per round.
    pub bytes: u64,
    /// Most bytes asked of one call.
    pub chunk: usize,
    /// Rounds, all in the same children.
    pub rounds: u64,
}

pub struct Params {
    pub sizes: Sizes,
    /// How long children sleep before exiting.
    pub hold: Duration,
    pub dir: WorkDir,
    /// Children of churn and hold.
    pub processes: usize,
    /// hold: created once every holder has written.
    pub ready: Option<std::path::PathBuf>,
    /// Most churn children alive at once.
    pub parallel: usize,
    /// Threads of the threads mode's child.
    pub threads: usize,
}

/// Runs `mode` (every mode, for `all`) and returns the reports of all measured processes.
pub fn run(mode: Mode, params: &Params) -> Result<Vec<ProcessReport>> {
    match mode {
        Mode::All => {
            let mut reports = Vec::new();
            for m in Mode::EACH {
                reports.extend(run(m, params)?);
            }
            Ok(reports)
        }
        Mode::ReadWrite => read_write::read_write(params),
        Mode::ReadvWritev => read_write::readv_writev(params),
        Mode::Sendfile => in_kernel::sendfile(params),
        Mode::Splice => in_kernel::splice(params),
        Mode::SendRecv => send::send_recv(params),
        Mode::MsgZerocopy => send::msg_zerocopy(params),
        Mode::MsgZerocopyUdp => send::msg_zerocopy_udp(params),
        Mode::UringReadWrite => uring::uring_read_write(params),
        Mode::UringDirectRead => uring::uring_direct_read(params),
        Mode::UringSendRecv => uring::uring_send_recv(params),
        Mode::UringSplice => uring::uring_splice(params),
        Mode::UringSendZc => uring::uring_send_zc(params),
        Mode::UringSqpoll => uring::uring_sqpoll(params),
        Mode::CopyFileRange => files::copy_file_range(params),
        Mode::Positional => files::positional(params),
        Mode::Mmsg => mmsg::mmsg(params),
        Mode::PipeZeroCopy => pipes::pipe_zero_copy(params),
        Mode::Errors => errors::errors(params),
        Mode::Churn => lifecycle::churn(params),
        Mode::PidReuse => lifecycle::pid_reuse(params),
        Mode::Hold => lifecycle::hold(params),
        Mode::Threads => threads::threads(params),
        Mode::ExitTogether => threads::exit_together(params),
    }
}

/// Hands all of `data` to `op` (one measured call per invocation), however little each call
/// takes.
fn transfer_all(
    mut data: &[u8],
    what: &'static str,
    mut op: impl FnMut(&[u8]) -> Result<usize, Errno>,
) -> ChildResult {
    while !data.is_empty() {
        let n = op(data).or_fail(what)?;
        if n == 0 {
            return Err(Failure::new("a send or write accepted no bytes"));
        }
        data = &data[n..];
    }
    Ok(())
}

/// Opens /dev/null for writing (in the parent; children inherit the fd).
fn dev_null() -> Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .context("open /dev/null")
}

/// One measured `write` of all of `data` to `fd` (/dev/null, which takes every byte at once).
fn write_whole(rec: &crate::ground_truth::Recorder, fd: RawFd, data: &[u8]) -> ChildResult {
    let n = crate::sys::write(rec, fd, data).or_fail("write to /dev/null")?;
    if n != data.len() {
        return Err(Failure::new("short write to /dev/null"));
    }
    Ok(())
}

/// Moves a file's offset back to its start for the next round. `lseek` is not a data-path
/// syscall.
fn rewind(fd: RawFd) -> ChildResult {
    // SAFETY: plain fd operation, no memory involved.
    if unsafe { libc::lseek(fd, 0, libc::SEEK_SET) } < 0 {
        return Err(last_failure("rewind the input file"));
    }
    Ok(())
}

/// Sends FIN so the receiver sees EOF. `shutdown` is not a data-path syscall.
fn shutdown_write(socket: RawFd) -> ChildResult {
    // SAFETY: plain fd operation, no memory involved.
    if unsafe { libc::shutdown(socket, libc::SHUT_WR) } != 0 {
        return Err(last_failure("shut down the sending side"));
    }
    Ok(())
}

fn last_failure(what: &'static str) -> Failure {
    Failure {
        what,
        errno: std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
    }
}

/// The length of the next piece: at most `chunk`, at most what is left.
fn piece(chunk: usize, left: u64) -> usize {
    usize::try_from(left).map_or(chunk, |left| left.min(chunk))
}

/// An offset as the kernel's `loff_t`.
fn loff(offset: u64) -> Result<i64, Failure> {
    i64::try_from(offset).map_err(|_| Failure::new("file offset out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_the_command_line() {
        for m in Mode::EACH
            .iter()
            .chain(&Mode::LIFECYCLE)
            .chain([&Mode::All])
        {
            let value = m.to_possible_value().expect("every mode is selectable");
            assert_eq!(value.get_name(), m.name());
        }
    }

    #[test]
    fn all_leaves_out_the_lifecycle_modes() {
        for m in Mode::LIFECYCLE {
            assert!(!Mode::EACH.contains(&m), "{}", m.name());
        }
        assert_eq!(
            Mode::EACH.len() + Mode::LIFECYCLE.len() + 1,
            Mode::value_variants().len()
        );
    }

    #[test]
    fn pieces_never_exceed_chunk_or_rest() {
        assert_eq!(piece(10, 25), 10);
        assert_eq!(piece(10, 3), 3);
        assert_eq!(piece(10, u64::MAX), 10);
    }
}
