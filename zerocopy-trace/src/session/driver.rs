//! The one loop every command runs while attached: it keeps the exit ring buffer drained,
//! feeds snapshots to an `Output` (the report, the dashboard, the exporter) at the cadence the
//! output asks for, lets the output react to its own input (keys, scrapes), and watches for the
//! end: a duration, a signal, the command of `run` exiting, the `--pid` targets exiting, or the
//! output itself asking to stop.

use std::{
    os::fd::OwnedFd,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use tokio::{
    io::{unix::AsyncFd, Interest},
    signal::unix::{signal, Signal, SignalKind},
    time::{interval, interval_at, MissedTickBehavior},
};

use super::trace::Trace;
use crate::{
    output::{Control, Output},
    system::{
        launch::{self, Received, RunningChild},
        procfs,
    },
};

/// How often exit records are drained and process names refreshed.
pub const TICK: Duration = Duration::from_millis(100);

/// Why the trace ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum End {
    Duration,
    Signal(&'static str),
    /// The command of `run` exited with this status.
    CommandExited(u8),
    /// Every process named by --pid is gone.
    TargetsGone,
    /// The output asked to stop (q in the dashboard).
    Quit,
}

impl End {
    /// Why, in words, when it was not the duration or the user's own quit.
    pub fn reason(&self) -> Option<String> {
        match self {
            End::Duration | End::Quit => None,
            End::Signal(name) => Some(format!("interrupted by {name}")),
            End::CommandExited(status) => Some(format!("command exited with status {status}")),
            End::TargetsGone => Some("every traced --pid exited".to_string()),
        }
    }
}

/// The ends besides signals and the output: all optional.
#[derive(Default)]
pub struct Stops {
    pub duration: Option<Duration>,
    /// The command of `run`.
    pub command: Option<RunningChild>,
    /// End when every one of these pids is gone.
    pub watch_pids: Vec<u32>,
}

/// The signals that end a trace, or, with a command (`run`), those passed on to it. Installed
/// before attaching, so a Ctrl-C that arrives while the programs load is kept for the loop
/// instead of killing the agent without a report.
pub enum Signals {
    Ending {
        interrupt: Signal,
        terminate: Signal,
        hangup: Signal,
    },
    /// Read from the signalfd of `launch::forwarded_signals`.
    Forwarding(AsyncFd<OwnedFd>),
}

/// What a signal asks for.
pub enum Arrived {
    /// End the trace.
    End(&'static str),
    /// Pass it on to the command.
    Forward(Received),
}

impl Signals {
    /// Must be called inside the runtime.
    pub fn install() -> Result<Signals> {
        Ok(Signals::Ending {
            interrupt: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            terminate: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            hangup: signal(SignalKind::hangup()).context("installing the SIGHUP handler")?,
        })
    }

    /// Signals read from `fd` (see `launch::forwarded_signals`). Must be called inside the
    /// runtime.
    pub fn forwarding(fd: OwnedFd) -> Result<Signals> {
        // SAFETY: the signalfd is owned by the AsyncFd, so it stays open and the same until
        // the AsyncFd is dropped.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
            .map_err(|e| anyhow::anyhow!("registering the signalfd: {e}"))?;
        Ok(Signals::Forwarding(fd))
    }

    /// Waits for the next of them.
    pub async fn next(&mut self) -> Arrived {
        match self {
            Signals::Ending {
                interrupt,
                terminate,
                hangup,
            } => Arrived::End(tokio::select! {
                _ = interrupt.recv() => "SIGINT",
                _ = terminate.recv() => "SIGTERM",
                _ = hangup.recv() => "SIGHUP",
            }),
            Signals::Forwarding(fd) => loop {
                let Ok(mut ready) = fd.readable().await else {
                    return std::future::pending().await;
                };
                match launch::read_signal(ready.get_inner()) {
                    Ok(Some(received)) => return Arrived::Forward(received),
                    Ok(None) => ready.clear_ready(),
                    Err(e) => {
                        log::warn!("reading the signalfd: {e}");
                        ready.clear_ready();
                    }
                }
            },
        }
    }
}

/// Passes `received` on to the command, unless the terminal sent it to the command too.
fn forward(received: Received, command: Option<RunningChild>) {
    let name = received.name();
    let Some(command) = command else {
        return;
    };
    if !received.sent {
        log::info!("{name} from the terminal: the command got it too");
        return;
    }
    match command.signal(received.signal) {
        Ok(()) => log::info!(
            "{name} from pid {}: passed on to the command (pid {})",
            received.sender,
            command.pid()
        ),
        Err(e) => log::warn!("passing {name} on to the command: {e}"),
    }
}

/// Runs `trace` until one of the ends; returns why it ended and how long it ran. The trace
/// stays attached: the caller finishes it (detach, final snapshot) when its output is done.
pub async fn drive(
    trace: &mut Trace,
    signals: &mut Signals,
    stops: Stops,
    output: &mut impl Output,
) -> Result<(End, Duration)> {
    let started = Instant::now();
    let deadline = async {
        match stops.duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);
    let command = stops.command;
    let command_exit = async {
        match command {
            Some(child) => tokio::task::spawn_blocking(move || child.wait()).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(command_exit);
    let mut tick = interval(TICK);
    // After a stall (a suspended terminal), carry on from now instead of catching up in a burst.
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // Without a refresh, a timer that never fires in practice keeps the select uniform.
    let every = output.refresh().unwrap_or(Duration::from_secs(86400 * 365));
    let mut refresh = interval_at((started + every).into(), every);
    refresh.set_missed_tick_behavior(MissedTickBehavior::Delay);

    let end = loop {
        let control = tokio::select! {
            arrived = signals.next() => match arrived {
                Arrived::End(name) => break End::Signal(name),
                Arrived::Forward(received) => {
                    forward(received, command);
                    Control::Continue
                }
            },
            _ = &mut deadline => break End::Duration,
            status = &mut command_exit => {
                let status = status.context("waiting for the command")??;
                break End::CommandExited(status);
            }
            _ = tick.tick() => {
                trace.tick()?;
                #[cfg(feature = "test-hooks")]
                {
                    crate::test_hooks::on_tick(trace.ticks());
                    crate::test_hooks::try_forbidden(trace.ticks());
                }
                if !stops.watch_pids.is_empty()
                    && !stops.watch_pids.iter().any(|&p| procfs::exists(p))
                {
                    break End::TargetsGone;
                }
                Control::Continue
            }
            _ = refresh.tick() => {
                if output.wants_snapshot() {
                    output.snapshot(trace.snapshot()?, started.elapsed())?
                } else {
                    Control::Continue
                }
            }
            control = output.input() => control?,
        };
        let control = match control {
            Control::Snapshot => output.snapshot(trace.snapshot()?, started.elapsed())?,
            other => other,
        };
        if control == Control::Stop {
            break End::Quit;
        }
    };
    Ok((end, started.elapsed()))
}
