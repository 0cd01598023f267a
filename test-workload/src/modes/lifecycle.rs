//! Process lifecycles rather than data paths: many short-lived children (churn), a pid given
//! to a second process after the first has exited (pid-reuse), many children alive at once
//! (hold). Every measured call is a `write` to /dev/null, so the counts are trivial and what
//! a tracer must get right is which process they belong to.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;

use anyhow::{bail, Context, Result};

use super::{dev_null, write_whole, Mode, Params};
use crate::child::Children;
use crate::gate::{Gate, Signal};
use crate::ground_truth::SharedSlots;
use crate::pattern::pattern;
use crate::report::ProcessReport;

/// The churners' write is at most this long, whatever `--chunk` says.
pub const CHURN_MAX_CHUNK: usize = 65536;

/// Writes of the pid-reuse children.
const FIRST_WRITES: usize = 3;
const SECOND_WRITES: usize = 5;

/// Times pid-reuse tries to have the second child get the first's pid.
const PID_REUSE_ATTEMPTS: usize = 20;

const NS_LAST_PID: &str = "/proc/sys/kernel/ns_last_pid";
const NEEDS: &str =
    "pid-reuse needs root: CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE over the pid namespace";

/// `--processes` churners, at most `--parallel` alive at once: each makes one `write` of
/// min(`--chunk`, 64 KiB) bytes to /dev/null and exits. A new child is forked as soon as one
/// is reaped. Ground-truth slots are reused once their child is reaped, so a run of any size
/// needs only `--parallel` of them.
pub fn churn(params: &Params) -> Result<Vec<ProcessReport>> {
    let null = dev_null()?;
    let fd = null.as_raw_fd();
    let data = pattern(params.sizes.chunk.min(CHURN_MAX_CHUNK) as u64);
    let data = &data[..];
    let parallel = params.parallel.min(params.processes);
    let slots = SharedSlots::new(parallel)?;
    let mut children = Children::new(Mode::Churn.name(), &slots, params.hold);
    for _ in 0..params.processes {
        if children.live() >= parallel {
            children.reap_one()?;
        }
        children.spawn("churner", &[fd], move |rec| write_whole(rec, fd, data))?;
    }
    children.wait()
}

/// `--processes` holders, all alive at once: each makes `--repeat` `write`s of `--chunk` bytes
/// to /dev/null, then waits until the parent has forked them all, then sleeps `--hold-ms` and
/// exits. So for `--hold-ms` at least, every holder is alive (and has written). With
/// `--ready FILE`, the parent creates FILE once every holder has written.
pub fn hold(params: &Params) -> Result<Vec<ProcessReport>> {
    let null = dev_null()?;
    let fd = null.as_raw_fd();
    let data = pattern(params.sizes.chunk as u64);
    let data = &data[..];
    let all_forked = Gate::new()?;
    let gate = &all_forked;
    let rounds = params.sizes.rounds;
    let slots = SharedSlots::new(params.processes)?;
    let mut children = Children::new(Mode::Hold.name(), &slots, params.hold);
    for _ in 0..params.processes {
        children.spawn("holder", &[fd], move |rec| {
            for _ in 0..rounds {
                write_whole(rec, fd, data)?;
            }
            gate.arrive();
            // Abandon: the parent died before forking every holder; exit anyway.
            let _ = gate.wait();
            Ok(())
        })?;
    }
    all_forked.open(Signal::Go);
    if let Some(ready) = &params.ready {
        all_forked.wait_arrivals(params.processes as u32);
        std::fs::write(ready, b"").with_context(|| format!("creating {}", ready.display()))?;
    }
    children.wait()
}

/// first: 3 `write`s of `--chunk` bytes to /dev/null, then exit. The parent reaps it, sets
/// the pid namespace's `ns_last_pid` to its pid minus one and at once forks second, which so
/// gets the same pid: 5 `write`s. Second waits on a gate until the parent has checked its pid;
/// if another process took the pid first, second is told to exit without writing (and is left
/// out of the report), first stays in the report as "first-unpaired" (it did write, under its
/// own pid), and the whole dance is tried again, up to 20 times.
pub fn pid_reuse(params: &Params) -> Result<Vec<ProcessReport>> {
    let ns_last_pid = open_ns_last_pid()?;
    let null = dev_null()?;
    let fd = null.as_raw_fd();
    let data = pattern(params.sizes.chunk as u64);
    let data = &data[..];
    let checked = Gate::new()?;
    let gate = &checked;
    // One slot suffices: first is reaped (its counts copied) before second reuses the slot.
    let slots = SharedSlots::new(1)?;
    let mut children = Children::new(Mode::PidReuse.name(), &slots, params.hold);
    let mut misses = Vec::new();
    for _ in 0..PID_REUSE_ATTEMPTS {
        let first = children.spawn("first", &[fd], move |rec| {
            (0..FIRST_WRITES).try_for_each(|_| write_whole(rec, fd, data))
        })?;
        let reaped = children.reap_one()?;
        if reaped != first {
            bail!("reaped pid {reaped}, expected the first child {first}");
        }
        checked.close();
        // Formatted before the write, so nothing but the write separates it from fork().
        let previous = (first - 1).to_string();
        ns_last_pid
            .write_all_at(previous.as_bytes(), 0)
            .with_context(|| format!("write {previous} to {NS_LAST_PID} ({NEEDS})"))?;
        let second = children.spawn("second", &[fd], move |rec| match gate.wait() {
            Signal::Go => (0..SECOND_WRITES).try_for_each(|_| write_whole(rec, fd, data)),
            Signal::Abandon => Ok(()),
        })?;
        if second == first {
            checked.open(Signal::Go);
            return children.wait();
        }
        checked.open(Signal::Abandon);
        children.reap_one()?;
        children.unlist(second);
        children.relabel(first, "first-unpaired");
        misses.push(format!("{first} -> {second}"));
    }
    bail!(
        "the second child never got the first child's pid in {PID_REUSE_ATTEMPTS} attempts \
         (first -> second: {}); another process keeps taking the freed pid",
        misses.join(", ")
    )
}

fn open_ns_last_pid() -> Result<File> {
    OpenOptions::new()
        .write(true)
        .open(NS_LAST_PID)
        .with_context(|| format!("open {NS_LAST_PID} for writing ({NEEDS})"))
}
