//! Measured children: `fork()`, run a body that issues only the mode's measured syscalls, and
//! `_exit()`. The parent keeps the pids, reaps them, and turns their slots into reports.
//!
//! Between `fork()` and `_exit()` a child makes no syscall of the traced data path besides its
//! body's: no printing (panics are silenced), no buffered I/O flushed at exit, no files opened.
//! Everything it needs (fds, buffers) is made by the parent before the fork.

use std::collections::HashMap;
use std::os::fd::RawFd;
use std::panic::{self, AssertUnwindSafe};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use libc::{c_long, pid_t};

use crate::ground_truth::{Failure, Outcome, Recorder, SharedSlots, Slot};
use crate::report::ProcessReport;

/// What a child's body returns: `Err` is recorded in its slot and makes it exit 1.
pub type ChildResult = Result<(), Failure>;

struct Spawned {
    pid: pid_t,
    role: &'static str,
    slot: usize,
    /// Filled in when the child is reaped (its slot may then go to a later child).
    report: Option<ProcessReport>,
    /// False for a child the mode took back from the report (it made no measured call).
    listed: bool,
}

/// The children of one mode run, each with a slot in `slots` while it lives.
///
/// A slot is free again once its child is reaped: the child's counts are copied into its
/// report first. So a mode that reaps as it goes (`reap_one`) needs only as many slots as it
/// keeps children alive at once, however many it forks in all.
pub struct Children<'a> {
    mode: &'static str,
    slots: &'a SharedSlots,
    hold: Duration,
    spawned: Vec<Spawned>,
    /// Children not yet reaped: pid -> index in `spawned`. A pid is unique among live
    /// children; among all of `spawned` it need not be (the pid-reuse mode).
    live: HashMap<pid_t, usize>,
    /// Slots whose child has been reaped.
    free_slots: Vec<usize>,
    /// Slots never used yet start here.
    next_slot: usize,
}

impl<'a> Children<'a> {
    pub fn new(mode: &'static str, slots: &'a SharedSlots, hold: Duration) -> Self {
        Children {
            mode,
            slots,
            hold,
            spawned: Vec::new(),
            live: HashMap::new(),
            free_slots: Vec::new(),
            next_slot: 0,
        }
    }

    /// Forks a child that keeps only the fds in `keep` (plus 0-2), runs `body` and exits. The
    /// child gets a free slot: one given back by a reaped child (emptied) or the next unused.
    pub fn spawn<F>(&mut self, role: &'static str, keep: &[RawFd], body: F) -> Result<pid_t>
    where
        F: FnOnce(&Recorder) -> ChildResult,
    {
        let index = match self.free_slots.pop() {
            Some(index) => {
                self.slots.slot(index).reset();
                index
            }
            None => {
                let index = self.next_slot;
                if index >= self.slots.len() {
                    bail!(
                        "{} {role}: all {} ground-truth slots are in use",
                        self.mode,
                        self.slots.len()
                    );
                }
                self.next_slot += 1;
                index
            }
        };
        let slot = self.slots.slot(index);
        // Sorted here, in the parent, so the child does not allocate to sort them.
        let mut keep = keep.to_vec();
        keep.sort_unstable();
        keep.dedup();
        // Room for this child's entries now, so recording it after the fork cannot fail.
        self.spawned.reserve(1);
        self.live.reserve(1);

        // SAFETY: this process is single-threaded (the workload parent never starts threads;
        // only the threads mode's child does), so the child gets a consistent copy of memory
        // with no lock held by a vanished thread. The child only runs `child_main`, which
        // never returns.
        let pid = unsafe { libc::fork() };
        match pid {
            -1 => {
                self.free_slots.push(index);
                Err(std::io::Error::last_os_error())
                    .with_context(|| format!("fork the {} {role}", self.mode))
            }
            0 => child_main(slot, &keep, self.hold, body),
            pid => {
                self.live.insert(pid, self.spawned.len());
                self.spawned.push(Spawned {
                    pid,
                    role,
                    slot: index,
                    report: None,
                    listed: true,
                });
                Ok(pid)
            }
        }
    }

    /// How many children are not reaped yet.
    pub fn live(&self) -> usize {
        self.live.len()
    }

    /// Reaps one child, whichever ends first, checks that it succeeded, copies its counts
    /// into its report and frees its slot. Returns its pid. On a failure the other children
    /// are killed (a peer that died would otherwise leave them blocked until their socket
    /// timeouts) and reaped when `self` is dropped.
    pub fn reap_one(&mut self) -> Result<pid_t> {
        if self.live.is_empty() {
            bail!("{}: no child left to reap", self.mode);
        }
        loop {
            let (pid, status) = wait_any().context("waitpid for the measured children")?;
            let Some(index) = self.live.remove(&pid) else {
                continue;
            };
            let child = &mut self.spawned[index];
            let slot = self.slots.slot(child.slot);
            if let Err(e) = check_child(self.mode, child, status, slot) {
                self.kill_remaining();
                return Err(e);
            }
            child.report = Some(ProcessReport::new(pid, self.mode, child.role, slot));
            self.free_slots.push(child.slot);
            return Ok(pid);
        }
    }

    /// Gives the latest child with `pid` another role in the report.
    pub fn relabel(&mut self, pid: pid_t, role: &'static str) {
        if let Some(child) = self.latest_mut(pid) {
            child.role = role;
            if let Some(report) = &mut child.report {
                report.role = role;
            }
        }
    }

    /// Leaves the latest child with `pid` out of the report (it made no measured call).
    pub fn unlist(&mut self, pid: pid_t) {
        if let Some(child) = self.latest_mut(pid) {
            child.listed = false;
        }
    }

    fn latest_mut(&mut self, pid: pid_t) -> Option<&mut Spawned> {
        self.spawned.iter_mut().rev().find(|c| c.pid == pid)
    }

    /// Reaps every child left. On the first failure the others are killed and the failure is
    /// returned. On success, returns one report per listed child, in spawn order.
    pub fn wait(mut self) -> Result<Vec<ProcessReport>> {
        while !self.live.is_empty() {
            self.reap_one()?;
        }
        Ok(std::mem::take(&mut self.spawned)
            .into_iter()
            .filter(|c| c.listed)
            .filter_map(|c| c.report)
            .collect())
    }

    fn kill_remaining(&self) {
        for &pid in self.live.keys() {
            // SAFETY: `pid` is our own child and not yet reaped, so the pid is not reused.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

impl Drop for Children<'_> {
    /// A run abandoned halfway (a later fork or setup failed, a child failed) must not leave
    /// children behind.
    fn drop(&mut self) {
        self.kill_remaining();
        for (pid, _) in self.live.drain() {
            let mut status = 0;
            // SAFETY: reaps our own child; `status` is a valid out-pointer.
            unsafe { libc::waitpid(pid, &mut status, 0) };
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

fn check_child(mode: &str, child: &Spawned, status: i32, slot: &Slot) -> Result<()> {
    let who = format!("{mode} {} (pid {})", child.role, child.pid);
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
/// The name children take (`--child-comm`), NUL-terminated, set once by `main`.
static CHILD_COMM: std::sync::OnceLock<std::ffi::CString> = std::sync::OnceLock::new();

/// Makes every measured child rename itself (its `comm`) to `name` as soon as it is forked,
/// so a tracer can tell its counts from the parent's. Names longer than 15 bytes are cut by
/// the kernel.
pub fn name_children(name: &str) -> Result<()> {
    let name = std::ffi::CString::new(name).context("--child-comm must not contain NUL")?;
    let _ = CHILD_COMM.set(name);
    Ok(())
}

fn child_main<F>(slot: &Slot, keep: &[RawFd], hold: Duration, body: F) -> !
where
    F: FnOnce(&Recorder) -> ChildResult,
{
    if let Some(name) = CHILD_COMM.get() {
        // SAFETY: PR_SET_NAME reads a NUL-terminated string that outlives the call. It is not
        // a data-path syscall: the child's measured calls are unchanged.
        unsafe { libc::prctl(libc::PR_SET_NAME, name.as_ptr()) };
    }
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
pub fn sleep(duration: Duration) {
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
