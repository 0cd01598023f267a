//! One process, several threads, and a thread-group leader that exits first: all the measured
//! calls come from threads whose leader is already gone, and the process ends with its last
//! thread. A tracer must still put them under the process (the tgid) that made them.
//!
//! The leader leaves with the thread-only `exit` syscall, the call `pthread_exit` ends with.
//! `libc::pthread_exit` itself cannot be used from Rust's main thread: it unwinds the stack
//! with a forced unwind, which meets the `catch_unwind` of Rust's runtime (below `main`) and
//! aborts the process ("FATAL: exception not rethrown", a `write` to stderr, then SIGABRT).

use std::os::fd::{AsRawFd, RawFd};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use libc::c_long;

use super::{dev_null, write_whole, Mode, Params};
use crate::child::{sleep, ChildResult, Children};
use crate::gate::{futex_wait, futex_wake_all};
use crate::ground_truth::{Failure, OrFail, Recorder, SharedSlots};
use crate::pattern::pattern;
use crate::report::ProcessReport;

/// How long the threads wait, after the kernel says the leader has exited, before their
/// first write: time for the rest of the leader's exit to finish (and a tracer to see it).
const AFTER_LEADER: Duration = Duration::from_millis(5);

/// How long a thread's futex sleep lasts before it looks at the leader's word again: only a
/// backstop, since no wake-up is lost (the kernel's at the leader's exit reaches one waiter,
/// which wakes the rest). Long, because thousands of threads may wait while the leader is
/// still starting the others.
const RECHECK: Duration = Duration::from_secs(1);

/// What every thread needs; `Copy` so each thread's closure owns its own.
#[derive(Clone, Copy)]
struct Plan<'a> {
    null: RawFd,
    data: &'a [u8],
    threads: usize,
    writes: u64,
    hold: Duration,
}

/// What the threads share with each other and the leader. Leaked: it must outlive the
/// leader's stack frames, which end without unwinding.
struct Shared {
    /// The leader's tid until the kernel clears it as the leader exits (`set_tid_address`).
    leader: AtomicU32,
    /// Threads that have not finished their writes.
    running: AtomicUsize,
}

/// threaded: its leader starts `--threads` threads and exits (thread only); once the leader
/// is gone, each thread makes `--repeat` `write`s of `--chunk` bytes to /dev/null and exits.
/// The last thread to finish marks success and keeps the process alive for `--hold-ms`.
/// Ground truth: `write` threads x repeat calls, all in the one process.
pub fn threads(params: &Params) -> Result<Vec<ProcessReport>> {
    let null = dev_null()?;
    let data = pattern(params.sizes.chunk as u64);
    let plan = Plan {
        null: null.as_raw_fd(),
        data: &data,
        threads: params.threads,
        writes: params.sizes.rounds,
        hold: params.hold,
    };
    let slots = SharedSlots::new(1)?;
    let mut children = Children::new(Mode::Threads.name(), &slots, params.hold);
    children.spawn("threaded", &[plan.null], move |rec| leader(rec, plan))?;
    children.wait()
}

/// The leader thread: returns only on failure (the process then ends in `child_main`).
fn leader(rec: &Recorder, plan: Plan) -> ChildResult {
    // glibc's malloc gives threads arenas of their own, and when it is about to make the
    // ninth it reads /sys/devices/system/cpu/online to size the limit: a `read` in this
    // process (seen with 64 threads). One arena, the main one, for every thread: none made,
    // nothing read.
    #[cfg(target_env = "gnu")]
    // SAFETY: plain integer arguments; no other thread exists yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1)
    };
    // SAFETY: no arguments; cannot fail.
    let tid = unsafe { libc::syscall(libc::SYS_gettid) };
    let shared: &'static Shared = Box::leak(Box::new(Shared {
        leader: AtomicU32::new(tid as u32),
        running: AtomicUsize::new(plan.threads),
    }));
    for _ in 0..plan.threads {
        let thread = move || worker(rec, plan, shared);
        // SAFETY: the closure borrows `rec` (in `child_main`'s frame), `plan.data` (in
        // `threads`' frame, a copy of the parent's memory) and the leaked `shared`. Those
        // frames outlive every thread: this thread never returns past them. It either leaves
        // with the thread-only `exit` syscall below, without unwinding, and the main thread's
        // stack stays mapped until the process ends; or it returns a failure, after which
        // `child_main` ends the whole process with `_exit` before returning anywhere.
        let started = unsafe { std::thread::Builder::new().spawn_unchecked(thread) };
        if let Err(e) = started {
            return Err(Failure {
                what: "start a thread",
                errno: e.raw_os_error().unwrap_or(0),
            });
        }
    }
    exit_leader(&shared.leader)
}

/// Ends the leader thread alone. The kernel then zeroes `word` and wakes a futex waiter on
/// it (`set_tid_address`), which is how the threads learn the leader is gone.
fn exit_leader(word: &'static AtomicU32) -> ! {
    // SAFETY: `word` is leaked, so valid for the rest of the process; the kernel writes a
    // 0 (an int, the size of `AtomicU32`) there when this thread exits.
    unsafe { libc::syscall(libc::SYS_set_tid_address, word.as_ptr()) };
    // SAFETY: the `exit` syscall (not `exit_group`) ends this thread only, without running
    // anything of this thread's: no destructors, no unwinding.
    unsafe { libc::syscall(libc::SYS_exit, 0 as c_long) };
    // SAFETY: not reached (exit does not return); were it, this ends the process.
    unsafe { libc::_exit(1) }
}

fn worker(rec: &Recorder, plan: Plan, shared: &Shared) {
    let result = panic::catch_unwind(AssertUnwindSafe(|| {
        wait_for_leader_exit(&shared.leader);
        sleep(AFTER_LEADER);
        (0..plan.writes).try_for_each(|_| write_whole(rec, plan.null, plan.data))
    }))
    .unwrap_or(Err(Failure::new("a thread panicked")));
    if let Err(failure) = result {
        rec.fail(failure);
        // SAFETY: ends the whole process (exit_group) at once, as `child_main` does.
        unsafe { libc::_exit(1) };
    }
    if shared.running.fetch_sub(1, Ordering::AcqRel) == 1 {
        rec.succeed();
        if !plan.hold.is_zero() {
            sleep(plan.hold);
        }
    }
    // Returning ends this thread; the last one to end ends the process, with the leader's
    // exit status (0).
}

fn wait_for_leader_exit(word: &AtomicU32) {
    loop {
        let tid = word.load(Ordering::Acquire);
        if tid == 0 {
            break;
        }
        futex_wait(word, tid, RECHECK);
    }
    futex_wake_all(word);
}

/// What every thread of an exit-together process needs; `Copy` so each closure owns its own.
#[derive(Clone, Copy)]
struct Together<'a> {
    null: RawFd,
    zero: RawFd,
    data: &'a [u8],
    threads: usize,
    writes: u64,
}

/// exit-together: `--processes` processes, each of `--threads` threads making `--repeat`
/// writes of `--chunk` bytes to /dev/null; once they all have, the leader reads `--chunk`
/// bytes of /dev/zero and ends the process with every thread still alive. All its threads
/// then exit at once: before 6.16 several of them can see the group's live count at 0 at
/// the exit tracepoint, and the process must still be delivered once, whole.
/// Ground truth: per process, `write` threads x repeat calls and one `read`.
pub fn exit_together(params: &Params) -> Result<Vec<ProcessReport>> {
    let null = dev_null()?;
    let zero = std::fs::File::open("/dev/zero").context("open /dev/zero")?;
    let data = pattern(params.sizes.chunk as u64);
    let plan = Together {
        null: null.as_raw_fd(),
        zero: zero.as_raw_fd(),
        data: &data,
        threads: params.threads,
        writes: params.sizes.rounds,
    };
    let slots = SharedSlots::new(params.processes)?;
    let mut children = Children::new(Mode::ExitTogether.name(), &slots, Duration::ZERO);
    for _ in 0..params.processes {
        children.spawn("together", &[plan.null, plan.zero], move |rec| {
            together(rec, plan)
        })?;
    }
    children.wait()
}

/// The leader of an exit-together process: starts the threads, waits for their writes, reads
/// once and returns, after which `child_main` ends the process (`_exit`: exit_group).
fn together(rec: &Recorder, plan: Together) -> ChildResult {
    #[cfg(target_env = "gnu")]
    // SAFETY: plain integer arguments; no other thread exists yet (see `leader`).
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1)
    };
    let running: &'static AtomicUsize = Box::leak(Box::new(AtomicUsize::new(plan.threads)));
    for _ in 0..plan.threads {
        let thread = move || {
            let result = (0..plan.writes).try_for_each(|_| write_whole(rec, plan.null, plan.data));
            if let Err(failure) = result {
                rec.fail(failure);
                // SAFETY: ends the whole process at once, as `child_main` does.
                unsafe { libc::_exit(1) };
            }
            running.fetch_sub(1, Ordering::AcqRel);
            // Alive until the leader ends the process: nanosleep is no data-path call.
            loop {
                sleep(RECHECK);
            }
        };
        // SAFETY: the closure borrows `rec` (in `child_main`'s frame) and `plan.data` (in
        // `exit_together`'s frame, a copy of the parent's memory). The threads never end on
        // their own: the process ends with `_exit` in `child_main`, whose frame, below this
        // one, is still there, and no frame unwinds before that.
        let started = unsafe { std::thread::Builder::new().spawn_unchecked(thread) };
        if let Err(e) = started {
            return Err(Failure {
                what: "start a thread",
                errno: e.raw_os_error().unwrap_or(0),
            });
        }
    }
    while running.load(Ordering::Acquire) > 0 {
        sleep(Duration::from_millis(1));
    }
    let mut buf = vec![0u8; plan.data.len()];
    let n = crate::sys::read(rec, plan.zero, &mut buf).or_fail("read /dev/zero")?;
    if n != buf.len() {
        return Err(Failure::new("short read of /dev/zero"));
    }
    Ok(())
}

/// A test of the mechanism itself: the leader's word clears when it exits.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleared_tid_wakes_the_waiter() {
        let word: &'static AtomicU32 = Box::leak(Box::new(AtomicU32::new(1)));
        let waiter = std::thread::spawn(move || wait_for_leader_exit(word));
        // A thread standing in for the leader: registers the word and exits.
        std::thread::spawn(move || exit_leader(word));
        waiter.join().expect("the waiter saw the word cleared");
        assert_eq!(word.load(Ordering::Acquire), 0);
    }
}
