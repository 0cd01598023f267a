//! Waiting without data-path syscalls: a word of memory and `futex(2)`.
//!
//! A `Gate` is a word in its own `MAP_SHARED` page, made by the parent before `fork()`:
//! children sleep on it until the parent opens it. The futex calls here are the shared kind
//! (no `FUTEX_PRIVATE_FLAG`): that is what works across processes, and what the kernel's own
//! wake-up at a thread's exit (`set_tid_address`) uses.

use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use libc::{c_long, pid_t};

/// How long one futex sleep lasts before the waiter looks again. Wake-ups are not lost (the
/// kernel compares the word under its lock), so this is only a backstop; it is long because
/// thousands of children may wait at once (hold), and each look costs them all CPU time.
const RECHECK: Duration = Duration::from_secs(1);

/// What an opened gate tells its waiters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// Go on with the measured calls.
    Go,
    /// Make no measured call and exit (also the answer when the parent is gone).
    Abandon,
}

const CLOSED: u32 = 0;
const GO: u32 = 1;
const ABANDON: u32 = 2;

pub struct Gate {
    word: NonNull<AtomicU32>,
    /// The process that opens the gate: its children's parent.
    opener: pid_t,
}

impl Gate {
    /// A closed gate.
    pub fn new() -> Result<Self> {
        // SAFETY: a fresh anonymous mapping of one page; no existing memory is touched.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error()).context("mmap the shared gate");
        }
        let word = NonNull::new(addr.cast::<AtomicU32>()).context("mmap returned null")?;
        Ok(Gate {
            word,
            // SAFETY: no arguments, cannot fail.
            opener: unsafe { libc::getpid() },
        })
    }

    fn word(&self) -> &AtomicU32 {
        // SAFETY: the page is mapped for as long as `self`, page-aligned, and starts zeroed,
        // a valid `AtomicU32`; only shared references are made to it.
        unsafe { self.word.as_ref() }
    }

    /// Closes the gate again for the next child (parent, before the fork).
    pub fn close(&self) {
        self.word().store(CLOSED, Ordering::Release);
    }

    /// Opens the gate and wakes every waiter.
    pub fn open(&self, signal: Signal) {
        let value = match signal {
            Signal::Go => GO,
            Signal::Abandon => ABANDON,
        };
        self.word().store(value, Ordering::Release);
        futex_wake_all(self.word());
    }

    /// The gate's second word: how many children said they are ready (`arrive`).
    fn arrivals(&self) -> &AtomicU32 {
        // SAFETY: the mapping is a page; the second u32 of it is as aligned as the first and
        // only ever used as an AtomicU32.
        unsafe { &*self.word.as_ptr().add(1) }
    }

    /// Counts one child as ready (no syscall: the tracer sees nothing of it).
    pub fn arrive(&self) {
        self.arrivals().fetch_add(1, Ordering::AcqRel);
    }

    /// Waits until `count` children have arrived (parent), looking every 10 ms.
    pub fn wait_arrivals(&self, count: u32) {
        while self.arrivals().load(Ordering::Acquire) < count {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sleeps until the gate opens (child). A child whose parent died gets `Abandon`, or is
    /// killed: from here on the parent's death kills it, so no waiter outlives the opener.
    pub fn wait(&self) -> Signal {
        // SAFETY: plain integer arguments. Not a data-path syscall. Failure only leaves the
        // `getppid` check below.
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) };
        loop {
            match self.word().load(Ordering::Acquire) {
                GO => return Signal::Go,
                CLOSED => {}
                _ => return Signal::Abandon,
            }
            // SAFETY: no arguments, cannot fail.
            if unsafe { libc::getppid() } != self.opener {
                return Signal::Abandon;
            }
            futex_wait(self.word(), CLOSED, RECHECK);
        }
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the page mapped in `new`; no reference outlives `self`.
        unsafe { libc::munmap(self.word.as_ptr().cast(), PAGE) };
    }
}

const PAGE: usize = 4096;

/// Sleeps while `word` holds `expected`, for at most `timeout`. It may return early (a wake-up,
/// a signal, the word already changed): callers look at the word again.
pub fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    let timeout = libc::timespec {
        tv_sec: timeout.as_secs().try_into().unwrap_or(libc::time_t::MAX),
        tv_nsec: timeout.subsec_nanos().into(),
    };
    // SAFETY: `word` is a valid, aligned u32 for the call; the timeout is a valid timespec.
    // Every outcome (woken, EAGAIN, EINTR, ETIMEDOUT) is handled by the caller's loop.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            c_long::from(libc::FUTEX_WAIT),
            c_long::from(expected),
            &timeout as *const libc::timespec,
        );
    }
}

/// Wakes every process or thread sleeping on `word`.
pub fn futex_wake_all(word: &AtomicU32) {
    // SAFETY: `word` is a valid, aligned u32 for the call.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            c_long::from(libc::FUTEX_WAKE),
            c_long::from(i32::MAX),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_open_gate_does_not_block() {
        let gate = Gate::new().expect("mmap");
        gate.open(Signal::Go);
        assert_eq!(gate.wait(), Signal::Go);
        gate.close();
        gate.open(Signal::Abandon);
        assert_eq!(gate.wait(), Signal::Abandon);
    }
}
