//! The churn session (issue 11): the agent's memory while a great many short-lived processes
//! exit, as on a build server. The agent runs as the dashboard would (`report --refresh 1s`:
//! `top` needs a terminal); a driver forked from the bench forks children that each make one
//! `write` to /dev/null and exit, a few alive at once, and counts them in shared memory.
//!
//! The agent's memory grows with churn today, so the session stops the driver early rather
//! than let the agent exhaust a shared machine, and says so.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::process;
use crate::procfs;

/// Children alive at once: enough to keep both cores forking.
const PARALLEL: u32 = 4;
/// How often the agent's memory is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);
/// The churn stops after this long whatever its count, and says so: an agent that slows the
/// machine's forks would otherwise hold the machine-wide lock for most of an hour.
const TIME_BUDGET: Duration = Duration::from_secs(600);
/// After the last exit, two refreshes of the agent before its final RSS is read.
const SETTLE: Duration = Duration::from_millis(2500);
/// The agent may use at most this much of the machine's available memory before the churn
/// is stopped, and never more than 2 GiB (fifty times the goal: the point is made by then).
const RSS_CAP_SHARE: u64 = 4;
const RSS_CAP_MAX_KIB: u64 = 2 << 20;

/// What the driver and the bench share: written by the driver, read by the bench.
#[repr(C)]
struct Counters {
    exited: AtomicU64,
    failed: AtomicU64,
    /// Set by the bench: fork no more.
    stop: AtomicU32,
}

/// [`Counters`] in an anonymous shared mapping, so a forked driver updates the bench's view.
struct Shared {
    counters: NonNull<Counters>,
}

impl Shared {
    fn new() -> Result<Self> {
        // SAFETY: a fresh anonymous mapping, no address hint; the result is checked below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                std::mem::size_of::<Counters>(),
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error()).context("mapping the churn counters");
        }
        let counters = NonNull::new(ptr.cast::<Counters>()).context("mmap returned null")?;
        Ok(Self { counters })
    }

    fn get(&self) -> &Counters {
        // SAFETY: the mapping is page-aligned, lives as long as `self`, and all-zero bytes
        // (what an anonymous mapping starts as) are valid atomics.
        unsafe { self.counters.as_ref() }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`; no reference outlives `self`.
        unsafe {
            libc::munmap(
                self.counters.as_ptr().cast(),
                std::mem::size_of::<Counters>(),
            )
        };
    }
}

/// A running churn driver; stopped and reaped on drop if the bench did not reap it.
pub struct Churner {
    pid: u32,
    shared: Shared,
    reaped: bool,
}

/// Forks the driver: `total` children, [`PARALLEL`] alive at once, each writing one byte to
/// /dev/null and exiting.
pub fn spawn(total: u64) -> Result<Churner> {
    let null = File::options()
        .write(true)
        .open("/dev/null")
        .context("opening /dev/null")?;
    let shared = Shared::new()?;
    // SAFETY: fork; the child runs only `drive`, which makes no allocation and takes no lock
    // (async-signal-safe calls and atomics), so it is sound even if this process had threads.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(std::io::Error::last_os_error()).context("forking the churn driver");
    }
    if pid == 0 {
        drive(shared.get(), null.as_raw_fd(), total);
    }
    Ok(Churner {
        pid: u32::try_from(pid).context("fork returned a negative pid")?,
        shared,
        reaped: false,
    })
}

/// The driver's loop; never returns.
fn drive(counters: &Counters, fd: libc::c_int, total: u64) -> ! {
    // SAFETY: prctl with a static NUL-terminated name; children inherit it, so the agent's
    // report names them apart from everything else.
    unsafe { libc::prctl(libc::PR_SET_NAME, c"zct-churn".as_ptr()) };
    let mut started = 0u64;
    let mut live = 0u32;
    loop {
        while live < PARALLEL && started < total && counters.stop.load(Ordering::Relaxed) == 0 {
            // SAFETY: the child only writes and exits.
            match unsafe { libc::fork() } {
                0 => {
                    let byte = b"x";
                    // SAFETY: one byte from a static buffer to an open fd.
                    let wrote = unsafe { libc::write(fd, byte.as_ptr().cast(), 1) };
                    // SAFETY: _exit ends the child without running the parent's destructors.
                    unsafe { libc::_exit(if wrote == 1 { 0 } else { 1 }) }
                }
                // Out of processes for now: reap one first.
                -1 if live > 0 => break,
                // SAFETY: as above.
                -1 => unsafe { libc::_exit(2) },
                _ => {
                    started += 1;
                    live += 1;
                }
            }
        }
        if live == 0 {
            // SAFETY: as above.
            unsafe { libc::_exit(0) }
        }
        let mut status = 0;
        // SAFETY: status is a live local.
        let reaped = unsafe { libc::waitpid(-1, &mut status, 0) };
        if reaped > 0 {
            live -= 1;
            counters.exited.fetch_add(1, Ordering::Relaxed);
            if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
                counters.failed.fetch_add(1, Ordering::Relaxed);
            }
        } else if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            // SAFETY: as above.
            unsafe { libc::_exit(3) }
        }
    }
}

impl Churner {
    pub fn exited(&self) -> u64 {
        self.shared.get().exited.load(Ordering::Relaxed)
    }

    pub fn failed(&self) -> u64 {
        self.shared.get().failed.load(Ordering::Relaxed)
    }

    /// Asks the driver to fork no more; it exits once its live children are reaped.
    pub fn stop(&self) {
        self.shared.get().stop.store(1, Ordering::Relaxed);
    }

    /// The driver's end, once it has exited.
    pub fn reaped(&mut self) -> Result<Option<process::Reaped>> {
        let reaped = process::reap(self.pid, false)?;
        self.reaped |= reaped.is_some();
        Ok(reaped)
    }

    /// Waits for the driver to end (it has been asked to stop, or has little left to do).
    fn wait(&mut self, patience: Duration) -> Result<process::Reaped> {
        let reaped = process::reap_within(self.pid, patience);
        self.reaped = true;
        reaped
    }
}

impl Drop for Churner {
    fn drop(&mut self) {
        if !self.reaped {
            self.stop();
            if let Err(err) = self.wait(Duration::from_secs(60)) {
                eprintln!("bench: warning: the churn driver: {err:#}");
            }
        }
    }
}

/// Processes of the untraced churn that gives the machine's own pace.
const BASELINE_PROCESSES: u64 = 20_000;

/// Exits a second here with no tracer, over at most [`BASELINE_PROCESSES`] of `total`.
pub fn baseline(total: u64) -> Result<f64> {
    let count = total.min(BASELINE_PROCESSES);
    let started = Instant::now();
    let mut churner = spawn(count)?;
    let reaped = churner.wait(TIME_BUDGET)?;
    if !reaped.success() || churner.failed() > 0 {
        bail!(
            "the untraced churn failed: {} ({} children failed)",
            reaped.describe(),
            churner.failed()
        );
    }
    Ok(churner.exited() as f64 / started.elapsed().as_secs_f64().max(1e-9))
}

/// The agent's memory over the churn.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Churn {
    pub processes_asked: u64,
    pub processes_exited: u64,
    pub wall_s: f64,
    pub exits_per_s: f64,
    /// The same driver's pace with no tracer (over its first processes only).
    pub untraced_exits_per_s: Option<f64>,
    /// The agent's RSS after attaching, before the first exit.
    pub rss_before_kib: u64,
    /// Its peak (`VmHWM`) over the whole session.
    pub peak_rss_kib: u64,
    /// Its RSS two refreshes after the last exit.
    pub final_rss_kib: u64,
    /// (exits so far, agent RSS in KiB), about once a second.
    pub samples: Vec<(u64, u64)>,
    /// Why the churn stopped before `processes_asked`, if it did.
    pub stopped_early: Option<String>,
}

impl Churn {
    /// RSS kept per 1000 exited processes: (final - before) / exits.
    pub fn kib_per_1000_exits(&self) -> Option<f64> {
        if self.processes_exited == 0 {
            return None;
        }
        let grown = self.final_rss_kib as f64 - self.rss_before_kib as f64;
        Some(grown * 1000.0 / self.processes_exited as f64)
    }
}

/// The RSS the agent may reach before the churn is stopped, from the memory available now.
pub fn rss_cap_kib(available_kib: Option<u64>) -> u64 {
    available_kib
        .map_or(RSS_CAP_MAX_KIB, |kib| kib / RSS_CAP_SHARE)
        .min(RSS_CAP_MAX_KIB)
}

/// Runs `total` short-lived processes while the agent `agent` (attached) watches, sampling its
/// memory; stops early if the agent passes the cap or exits.
pub fn measure(agent: u32, total: u64, untraced_exits_per_s: Option<f64>) -> Result<Churn> {
    let cap_kib = rss_cap_kib(procfs::mem_available_kib());
    // One refresh of the agent first: its steady memory before any exit.
    std::thread::sleep(SETTLE);
    let rss_before_kib = procfs::vm_rss_kib(agent).context("the agent is gone")?;
    let mut churn = Churn {
        processes_asked: total,
        untraced_exits_per_s,
        rss_before_kib,
        ..Churn::default()
    };
    let mut churner = spawn(total)?;
    let started = Instant::now();
    let mut last_sample = Instant::now() - Duration::from_secs(1);
    let mut last_progress = Instant::now();
    let driver = loop {
        if let Some(reaped) = churner.reaped()? {
            break reaped;
        }
        std::thread::sleep(SAMPLE_EVERY);
        let exited = churner.exited();
        let Some(rss) = procfs::vm_rss_kib(agent) else {
            churner.stop();
            churn.stopped_early = Some(format!("the agent exited after {exited} exits"));
            continue;
        };
        if last_sample.elapsed() >= Duration::from_secs(1) {
            churn.samples.push((exited, rss));
            last_sample = Instant::now();
        }
        if rss > cap_kib && churn.stopped_early.is_none() {
            churner.stop();
            churn.stopped_early = Some(format!(
                "stopped after {exited} exits: the agent's RSS ({} MiB) passed the bench's cap \
                 ({} MiB)",
                rss >> 10,
                cap_kib >> 10
            ));
            eprintln!(
                "bench: churn: {}",
                churn.stopped_early.as_deref().unwrap_or("")
            );
        }
        if started.elapsed() > TIME_BUDGET && churn.stopped_early.is_none() {
            churner.stop();
            churn.stopped_early = Some(format!(
                "stopped after {exited} exits: the bench's time budget ({} s) ran out",
                TIME_BUDGET.as_secs()
            ));
            eprintln!(
                "bench: churn: {}",
                churn.stopped_early.as_deref().unwrap_or("")
            );
        }
        if last_progress.elapsed() >= Duration::from_secs(10) {
            eprintln!(
                "bench: churn: {exited} of {total} exits, agent RSS {:.1} MiB",
                rss as f64 / 1024.0
            );
            last_progress = Instant::now();
        }
    };
    churn.wall_s = started.elapsed().as_secs_f64();
    churn.processes_exited = churner.exited();
    churn.exits_per_s = churn.processes_exited as f64 / churn.wall_s.max(1e-9);
    if !driver.success() {
        bail!("the churn driver failed: {}", driver.describe());
    }
    if churner.failed() > 0 {
        bail!("{} churn children failed their write", churner.failed());
    }
    std::thread::sleep(SETTLE);
    churn.final_rss_kib = procfs::vm_rss_kib(agent).context("the agent is gone")?;
    churn.peak_rss_kib = procfs::vm_hwm_kib(agent).context("the agent is gone")?;
    churn
        .samples
        .push((churn.processes_exited, churn.final_rss_kib));
    Ok(churn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_driver_runs_exactly_the_processes_asked() {
        let mut churner = spawn(200).unwrap();
        let reaped = churner.wait(Duration::from_secs(60)).unwrap();
        assert!(reaped.success(), "{}", reaped.describe());
        assert_eq!(churner.exited(), 200);
        assert_eq!(churner.failed(), 0);
    }

    #[test]
    fn a_stopped_driver_forks_no_more() {
        let mut churner = spawn(u64::MAX).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while churner.exited() < 10 {
            assert!(Instant::now() < deadline, "the driver made no progress");
            std::thread::sleep(Duration::from_millis(5));
        }
        churner.stop();
        let reaped = churner.wait(Duration::from_secs(60)).unwrap();
        assert!(reaped.success(), "{}", reaped.describe());
        let exited = churner.exited();
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(churner.exited(), exited);
    }

    #[test]
    fn growth_per_thousand_exits() {
        let churn = Churn {
            processes_exited: 2000,
            rss_before_kib: 10_000,
            final_rss_kib: 11_800,
            ..Churn::default()
        };
        assert_eq!(churn.kib_per_1000_exits(), Some(900.0));
        assert_eq!(Churn::default().kib_per_1000_exits(), None);
    }

    #[test]
    fn the_cap_is_a_quarter_of_available_memory_at_most_2_gib() {
        assert_eq!(rss_cap_kib(Some(4 << 20)), 1 << 20);
        assert_eq!(rss_cap_kib(Some(64 << 20)), 2 << 20);
        assert_eq!(rss_cap_kib(None), 2 << 20);
    }
}
