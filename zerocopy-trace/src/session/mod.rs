//! A trace from start to end, the same for every command: the targets resolved (`targets`),
//! the programs attached and their maps read (`trace`), and the one loop that feeds snapshots
//! to an output until a duration, a signal or the command of `run` ends it (`driver`). `run`
//! strings them together once, for every command.

pub mod driver;
pub mod targets;
pub mod trace;

use std::time::Duration;

use anyhow::{Context, Result};

use std::os::fd::OwnedFd;

use self::{
    driver::{drive, End, Signals, Stops},
    targets::Targets,
    trace::{Finished, Trace, TraceOptions},
};
use crate::{
    output::Output,
    system::{launch::StoppedChild, seccomp},
};

/// The command of `run`: stopped before exec, and the signals the agent forwards to it (read
/// from a signalfd; see `system::launch`).
pub struct Command {
    pub child: StoppedChild,
    pub signals: OwnedFd,
}

/// Everything about the trace that can be checked before anything is attached or started;
/// every command calls it first (`run` before it forks its command).
pub fn check(options: &TraceOptions) -> Result<()> {
    Trace::check(options)
}

/// How a trace ended, with what it counted.
pub struct Outcome {
    pub finished: Finished,
    pub elapsed: Duration,
    pub end: End,
}

/// Attaches for `targets` (and `command`, the stopped child of `run`, which is then let run),
/// feeds `output` until one of `stops` or a signal, then detaches and returns what was counted.
pub fn run(
    targets: &Targets,
    command: Option<Command>,
    options: &TraceOptions,
    mut stops: Stops,
    output: &mut impl Output,
) -> Result<Outcome> {
    runtime()?.block_on(async {
        // Before attaching, so a Ctrl-C that arrives while the programs load is kept for the
        // loop instead of killing the agent without a report.
        // With a command, the signals are read from its signalfd and passed on to it.
        let (child, mut signals) = match command {
            Some(command) => (Some(command.child), Signals::forwarding(command.signals)?),
            None => (None, Signals::install()?),
        };
        let extra_pid = child.as_ref().map(StoppedChild::pid);
        let mut trace = Trace::start(targets, extra_pid, options, output.retention())?;
        output.attached()?;
        if options.seccomp {
            seccomp::install()?;
        }
        if let Some(child) = child {
            stops.command = Some(child.resume()?);
        }
        let driven = drive(&mut trace, &mut signals, stops, output).await;
        output.detaching();
        let finished = trace.finish()?;
        let (end, elapsed) = driven?;
        Ok(Outcome {
            finished,
            elapsed,
            end,
        })
    })
}

/// The runtime every command runs in. One thread: capabilities are per thread, and the agent
/// drops all but CAP_BPF after attaching; threads started later (blocking waits) inherit the
/// reduced sets.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}
