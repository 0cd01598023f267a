//! zerocopy-trace: does this server really move its data without copying it?
//!
//! Data flows one way: kernel maps -> `collect` (snapshot) -> `model` (copies, transitions,
//! verdicts) -> `report` (table, JSON) or `dashboard` (live). `plan` prepares without touching
//! the kernel; `attach` is the one place that loads, attaches and detaches; `session` runs a
//! trace end to end.

mod attach;
mod btf;
mod cgroup;
mod cli;
mod collect;
mod correlate;
mod dashboard;
mod describe;
#[cfg(test)]
mod fuzz;
mod kernel_offsets;
mod launch;
mod model;
mod plan;
mod privileges;
mod procfs;
mod report;
mod session;
mod tracefs;
mod units;

use std::{
    fs::OpenOptions,
    io::{self, IsTerminal, Write},
    os::unix::fs::OpenOptionsExt,
    path::Path,
    process::ExitCode,
    time::Duration,
};

use anyhow::{Context, Result};
use clap::Parser;

use crate::{
    cli::{Cli, Command, TopArgs},
    model::Analysed,
    report::Report,
    session::{End, Outcome, Signals, Targets},
};

fn main() -> ExitCode {
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format_timestamp(None)
        .format_target(false)
        .init();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("zerocopy-trace: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    // One thread: capabilities are per thread, and the agent drops all but CAP_BPF after
    // attaching; threads started later (blocking waits) inherit the reduced sets.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        None => top(cli.top),
        Some(Command::Top(args)) => top(args),
        Some(Command::Report(args)) => {
            let targets = args.filter.targets();
            let outcome = runtime()?.block_on(async {
                let signals = Signals::install()?;
                let mut session = session::start(targets, None, &args.output.trace.options())?;
                session.refresh_every(args.refresh);
                if args.duration.is_none() {
                    eprintln!("zerocopy-trace: tracing; press Ctrl-C to stop and print the report");
                }
                session.run(signals, args.duration, None).await
            })?;
            emit(&outcome, args.output.json, args.output.output.as_deref())?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Floor(args)) => {
            runtime()?.block_on(async { session::floor(args.hook, Signals::install()?).await })?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Run(args)) => {
            // Fork before any thread exists (the runtime, aya): the child stops itself and is
            // registered with the kernel filter before it execs, so none of its syscalls escape.
            let child = launch::spawn_stopped(&args.command)?;
            let targets = Targets {
                follow_children: true,
                ..Targets::default()
            };
            let outcome = runtime()?.block_on(async {
                let signals = Signals::install()?;
                let session =
                    session::start(targets, Some(child.pid()), &args.output.trace.options())?;
                let running = child.resume()?;
                session.run(signals, None, Some(running)).await
            })?;
            emit(&outcome, args.output.json, args.output.output.as_deref())?;
            Ok(match outcome.end {
                End::CommandExited(status) => ExitCode::from(status),
                // Interrupted before the command ended: the command got the signal too.
                _ => ExitCode::from(130),
            })
        }
    }
}

/// The live dashboard; the report (until Ctrl-C) when stdout is not a terminal to draw on.
fn top(args: TopArgs) -> Result<ExitCode> {
    let targets = args.filter.targets();
    if !io::stdout().is_terminal() {
        eprintln!(
            "zerocopy-trace: stdout is not a terminal, so no dashboard: tracing until Ctrl-C, then printing the report"
        );
        let outcome = runtime()?.block_on(async {
            let signals = Signals::install()?;
            let session = session::start(targets, None, &args.trace.options())?;
            session.run(signals, None, None).await
        })?;
        emit(&outcome, false, None)?;
        return Ok(ExitCode::SUCCESS);
    }
    runtime()?.block_on(async {
        let signals = Signals::install()?;
        let session = session::start(targets, None, &args.trace.options())?;
        dashboard::run(session, signals, args.interval).await
    })?;
    Ok(ExitCode::SUCCESS)
}

fn describe(end: &End) -> Option<String> {
    match end {
        End::Duration => None,
        End::Signal(name) => Some(format!("interrupted by {name}")),
        End::CommandExited(status) => Some(format!("command exited with status {status}")),
        End::TargetsGone => Some("every traced --pid exited".to_string()),
    }
}

/// Prints (or writes) the report. A closed stdout (`| head`) is not an error worth a message.
fn emit(outcome: &Outcome, json: bool, output: Option<&Path>) -> Result<()> {
    let analysed = Analysed::of(outcome.snapshot.clone());
    let report = Report {
        duration: round_to_ms(outcome.elapsed),
        analysed: &analysed,
        not_covered: &outcome.not_covered,
        ended_because: describe(&outcome.end),
        occupancy: Some(outcome.occupancy),
    };
    let mut text = if json {
        report::to_json(&report)
    } else {
        report::to_table(&report)
    };
    if !text.ends_with('\n') {
        text.push('\n');
    }
    match output {
        Some(path) => write_private(path, &text),
        None => match io::stdout().lock().write_all(text.as_bytes()) {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
            other => other.context("writing the report"),
        },
    }
}

fn round_to_ms(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}

/// Writes a file readable by its owner only: reports can name every process on the machine.
fn write_private(path: &Path, text: &str) -> Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}
