//! Measured children: `fork()`, run a body that issues only the mode's measured syscalls, and
//! `_exit()`. The parent keeps the pids, reaps them, and turns their slots into reports.
//!
//! Between `fork()` and `_exit()` a child makes no syscall of the traced data path besides its
//! body's: no printing (panics are silenced), no buffered I/O flushed at exit, no files opened.
//! Everything it needs (fds, buffers) is made by the parent before the fork.

use std::os::fd::RawFd;
use std::panic::{self, AssertUnwindSafe};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use libc::{c_long, pid_t};

use crate::ground_truth::{Failure, Outcome, Recorder, SharedSlots, Slot};
use crate::report::ProcessReport;

/// What a child's body returns: `Err` is recorded in its slot and makes it exit 1.
pub type ChildResult = Result<(), Failure>;

struct Spawned {
    pid: pid_t,
    role: &'static str,
    slot: usize,
    /// Wait status once reaped.
    status: Option<i32>,
}

/// The children of one mode run, each with its slot in `slots`.
pub struct Children<'a> {
    mode: &'static str,
    slots: &'a SharedSlots,
    hold: Duration,
    spawned: Vec<Spawned>,
}

impl<'a> Children<'a> {
    pub fn new(mode: &'static str, slots: &'a SharedSlots, hold: Duration) -> Self {
        Children {
            mode,
            slots,
            hold,
            spawned: Vec::new(),
        }
    }

    /// Forks a child that keeps only the fds in `keep` (plus 0-2), runs `body` and exits. The
    /// child uses the next free slot.
    pub fn spawn<F>(&mut self, role: &'static str, keep: &[RawFd], body: F) -> Result<pid_t>
    where
        F: FnOnce(&Recorder) -> ChildResult,
    {
        let index = self.spawned.len();
        let slot = self.slots.slot(index);
        // Sorted here, in the parent, so the child does not allocate to sort them.
        let mut keep = keep.to_vec();
        keep.sort_unstable();
        keep.dedup();

        // SAFETY: this process is single-threaded (the workload never starts threads), so the
        // child gets a consistent copy of memory with no lock held by a vanished thread. The
        // child only runs `child_main`, which never returns.
        let pid = unsafe { libc::fork() };
        match pid {
            -1 => Err(std::io::Error::last_os_error())
                .with_context(|| format!("fork the {} {role}", self.mode)),
            0 => child_main(slot, &keep, self.hold, body),
            pid => {
                self.spawned.push(Spawned {
                    pid,
                    role,
                    slot: index,
                    status: None,
                });
                Ok(pid)
            }
        }
    }

    /// Reaps every child. On the first failure the others are killed (a peer that died would
    /// otherwise leave them blocked until their socket timeouts) and the failure is returned.
    /// On success, returns one report per child, in spawn order.
    pub fn wait(mut self) -> Result<Vec<ProcessReport>> {
        let mut first_failure: Option<anyhow::Error> = None;
        while self.spawned.iter().any(|c| c.status.is_none()) {
            let (pid, status) = wait_any().context("waitpid for the measured children")?;
            let Some(child) = self.spawned.iter_mut().find(|c| c.pid == pid) else {
                continue;
            };
            child.status = Some(status);
            if first_failure.is_none() {
                if let Err(e) = check_child(self.mode, child, self.slots.slot(child.slot)) {
                    first_failure = Some(e);
                    self.kill_remaining();
                }
            }
        }
        if let Some(e) = first_failure {
            return Err(e);
        }
        Ok(self
            .spawned
            .iter()
            .map(|c| ProcessReport::new(c.pid, self.mode, c.role, self.slots.slot(c.slot)))
            .collect())
    }

    fn kill_remaining(&self) {
        for c in self.spawned.iter().filter(|c| c.status.is_none()) {
            // SAFETY: `c.pid` is our own child and not yet reaped, so the pid is not reused.
            unsafe { libc::kill(c.pid, libc::SIGKILL) };
        }
    }
}

impl Drop for Children<'_> {
    /// A run abandoned halfway (a later fork or setup failed) must not leave children behind.
    fn drop(&mut self) {
        self.kill_remaining();
        for c in self.spawned.iter_mut().filter(|c| c.status.is_none()) {
            let mut status = 0;
            // SAFETY: reaps our own child; `status` is a valid out-pointer.
            unsafe { libc::waitpid(c.pid, &mut status, 0) };
            c.status = Some(status);
        }
    }
}

fn wait_any() -> Result<(pid_t, i32)> {
    loop {
        let mut status = 0;
        // SAFETY: `status` is a valid out-pointer; -1 waits for any of our children.
        let pid = unsafe { libc::waitpid(-1, &mut status, 0) };
        if pid >= 0 {
            return Ok((pid, status));
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err.into());
        }
    }
}

fn check_child(mode: &str, child: &Spawned, slot: &Slot) -> Result<()> {
    let who = format!("{mode} {} (pid {})", child.role, child.pid);
    let status = child
        .status
        .ok_or_else(|| anyhow!("{who} was not reaped"))?;
    match slot.outcome() {
        Outcome::Failed(why) => bail!("{who} failed: {why}"),
        Outcome::NotStarted => bail!("{who} never started"),
        Outcome::Unfinished | Outcome::Succeeded => {}
    }
    if libc::WIFSIGNALED(status) {
        bail!("{who} was killed by signal {}", libc::WTERMSIG(status));
    }
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        bail!("{who} exited with status {}", libc::WEXITSTATUS(status));
    }
    if !matches!(slot.outcome(), Outcome::Succeeded) {
        bail!("{who} exited without reporting success");
    }
    Ok(())
}

/// The child's whole life. Never returns.
fn child_main<F>(slot: &Slot, keep: &[RawFd], hold: Duration, body: F) -> !
where
    F: FnOnce(&Recorder) -> ChildResult,
{
    let rec = Recorder::start(slot);
    // The default panic hook writes to stderr: a `write` the tracer would count. Silence it
    // and report the panic through the slot instead. (A zero-sized closure: no allocation.)
    panic::set_hook(Box::new(|_| {}));
    let result = close_other_fds(keep).and_then(|()| {
        panic::catch_unwind(AssertUnwindSafe(|| body(&rec)))
            .unwrap_or(Err(Failure::new("panicked")))
    });
    let code = match result {
        Ok(()) => {
            rec.succeed();
            0
        }
        Err(failure) => {
            rec.fail(failure);
            1
        }
    };
    if !hold.is_zero() {
        sleep(hold);
    }
    // SAFETY: ends the child at once: no atexit handlers, no flushing of stdio buffers copied
    // from the parent (which would be writes), no unwinding back into the parent's code.
    unsafe { libc::_exit(code) }
}

/// Closes every fd >= 3 not in `keep` (sorted), so the child holds no copy of another
/// process's socket or pipe end: a peer then sees EOF as soon as its real counterpart closes.
fn close_other_fds(keep: &[RawFd]) -> ChildResult {
    let mut first: u32 = 3;
    for &fd in keep {
        let Ok(fd) = u32::try_from(fd) else { continue };
        if fd < first {
            continue;
        }
        if fd > first {
            close_range(first, fd - 1)?;
        }
        first = fd + 1;
    }
    close_range(first, u32::MAX)
}

fn close_range(first: u32, last: u32) -> ChildResult {
    // SAFETY: closes fds only; the child holds no `OwnedFd` it will use in the range (the
    // parent's copies in this address space are never touched by the child).
    let ret = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            c_long::from(first),
            c_long::from(last),
            0 as c_long,
        )
    };
    if ret < 0 {
        return Err(Failure {
            what: "close_range",
            errno: std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
        });
    }
    Ok(())
}

/// `nanosleep` for `duration`, resuming after signals. Not a data-path syscall.
fn sleep(duration: Duration) {
    let mut request = libc::timespec {
        tv_sec: duration.as_secs().try_into().unwrap_or(libc::time_t::MAX),
        tv_nsec: duration.subsec_nanos().into(),
    };
    let mut remaining = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: both pointers are valid for the call.
    while unsafe { libc::nanosleep(&request, &mut remaining) } != 0 {
        request = remaining;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ground_truth::Syscall;

    // One test forks, so no other test's children can be reaped by `waitpid(-1)` here.
    #[test]
    fn children_report_success_failure_and_panics() {
        let slots = SharedSlots::new(1).expect("mmap");
        let mut children = Children::new("test", &slots, Duration::ZERO);
        children
            .spawn("ok", &[], |rec| {
                let _ = rec.call(Syscall::Read, 7);
                Ok(())
            })
            .expect("fork");
        let reports = children.wait().expect("child succeeded");
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].syscalls["read"].bytes, 7);

        let failed = failure_of(|_| {
            Err(Failure {
                what: "write to socket",
                errno: libc::EPIPE,
            })
        });
        assert!(failed.contains("test bad (pid"), "{failed}");
        assert!(failed.contains("write to socket: Broken pipe"), "{failed}");
        let panicked = failure_of(|_| panic!("boom"));
        assert!(panicked.contains("failed: panicked"), "{panicked}");
    }

    fn failure_of(body: fn(&Recorder) -> ChildResult) -> String {
        let slots = SharedSlots::new(1).expect("mmap");
        let mut children = Children::new("test", &slots, Duration::ZERO);
        children.spawn("bad", &[], body).expect("fork");
        let err = children.wait().expect_err("the child failed");
        format!("{err:#}")
    }
}
