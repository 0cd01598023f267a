//! zerocopy-trace: does this server really move its data without copying it?
//!
//! Data flows one way: kernel maps -> `collect` (snapshot) -> `model` (cost, flows, finding:
//! one analysis per process) -> an output: `report` (table, JSON), `dashboard` (live) or
//! `exporter` (Prometheus metrics).
//! `preflight` checks privileges and tracefs, `targets` resolves what to trace, `plan`
//! prepares without touching the kernel, `attach` is the one place that loads, attaches and
//! detaches, `trace` holds an attached trace, and `driver` is the one loop that feeds its
//! snapshots to an output. `assets` writes the man pages and completions for packaging.
//! See ARCHITECTURE.md.

mod assets;
mod attach;
mod btf;
mod btf_stub;
mod cgroup;
mod cli;
mod collect;
mod correlate;
mod dashboard;
mod describe;
mod driver;
mod exporter;
mod floor;
#[cfg(test)]
mod fuzz;
mod kernel_offsets;
mod kfunc_calls;
mod launch;
mod map_batch;
mod model;
mod plan;
mod preflight;
mod privileges;
mod procfs;
mod report;
mod targets;
#[cfg(feature = "test-hooks")]
mod test_hooks;
mod trace;
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
    cli::{Cli, Command, OutputArgs, ReportFormat, TopArgs},
    collect::{groups::Grouping, Retention},
    dashboard::Dashboard,
    driver::{drive, End, FinalOnly, Signals, Stops},
    launch::StoppedChild,
    model::Analysed,
    report::Report,
    targets::Targets,
    trace::{Finished, Trace, TraceOptions},
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

/// How a trace ended, with what it counted.
struct Outcome {
    finished: Finished,
    elapsed: Duration,
    end: End,
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        None => top(cli.top),
        Some(Command::Top(args)) => top(args),
        Some(Command::Report(args)) => {
            let targets = args.filter.targets();
            let stops = Stops {
                duration: args.duration,
                watch_pids: targets.pids.clone(),
                ..Stops::default()
            };
            if args.duration.is_none() {
                eprintln!("zerocopy-trace: tracing; press Ctrl-C to stop and print the report");
            }
            let mut output = FinalOnly {
                refresh: args.refresh,
            };
            let mut options = args.output.options();
            if args.refresh.is_some() {
                // Standing in for the dashboard (which needs a terminal): its memory, too.
                options.retention.keep_exited = dashboard::EXITED_ROWS;
            }
            let outcome = trace_until_end(&targets, None, &options, stops, &mut output)?;
            emit(&outcome, &args.output, options.retention.keep_exited)?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Exporter(args)) => exporter::run(args, runtime()?),
        Some(Command::Assets(args)) => {
            let written = assets::write(&args.dir)?;
            eprintln!(
                "zerocopy-trace: wrote {} files under {}",
                written.len(),
                args.dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Floor(args)) => {
            runtime()?.block_on(async { floor::run(args.hook, Signals::install()?).await })?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Run(args)) => {
            // Fork before any thread exists (the runtime, aya): the child stops itself and is
            // registered with the kernel filter before it execs, so none of its syscalls escape.
            // With --json (or --format prom) on stdout, the command's own output goes to
            // stderr: stdout is then one document whatever the command prints.
            let machine_readable = args.output.format() != ReportFormat::Table;
            let stdout = if machine_readable && args.output.output.is_none() {
                launch::CommandStdout::ToStderr
            } else {
                launch::CommandStdout::Inherit
            };
            let child = launch::spawn_stopped(&args.command, stdout)?;
            let targets = Targets {
                follow_children: true,
                ..Targets::default()
            };
            let mut output = FinalOnly { refresh: None };
            let options = args.output.options();
            let outcome = trace_until_end(
                &targets,
                Some(child),
                &options,
                Stops::default(),
                &mut output,
            )?;
            emit(&outcome, &args.output, options.retention.keep_exited)?;
            Ok(match outcome.end {
                End::CommandExited(status) => ExitCode::from(status),
                // Interrupted before the command ended: the command got the signal too.
                _ => ExitCode::from(130),
            })
        }
    }
}

/// Attaches for `targets` (and `command`, which is then let run), runs the loop with `output`
/// until one of `stops` or a signal, then detaches and returns what was counted.
fn trace_until_end(
    targets: &Targets,
    command: Option<StoppedChild>,
    options: &TraceOptions,
    mut stops: Stops,
    output: &mut impl driver::Output,
) -> Result<Outcome> {
    runtime()?.block_on(async {
        let mut signals = Signals::install()?;
        let mut trace = Trace::start(targets, command.as_ref().map(StoppedChild::pid), options)?;
        if let Some(child) = command {
            stops.command = Some(child.resume()?);
        }
        let (end, elapsed) = drive(&mut trace, &mut signals, stops, output).await?;
        Ok(Outcome {
            finished: trace.finish()?,
            elapsed,
            end,
        })
    })
}

/// The live dashboard; the report (until Ctrl-C) when stdout is not a terminal to draw on.
fn top(args: TopArgs) -> Result<ExitCode> {
    let targets = args.filter.targets();
    let stops = Stops {
        watch_pids: targets.pids.clone(),
        ..Stops::default()
    };
    if !io::stdout().is_terminal() {
        eprintln!(
            "zerocopy-trace: stdout is not a terminal, so no dashboard: tracing until Ctrl-C, then printing the report"
        );
        let mut output = FinalOnly { refresh: None };
        let as_report = OutputArgs {
            json: false,
            format: ReportFormat::Table,
            output: None,
            max_rows: REPORT_ROWS,
            trace: args.trace,
        };
        let options = as_report.options();
        let outcome = trace_until_end(&targets, None, &options, stops, &mut output)?;
        emit(&outcome, &as_report, options.retention.keep_exited)?;
        return Ok(ExitCode::SUCCESS);
    }
    let options = args.trace.options(Retention {
        keep_exited: dashboard::EXITED_ROWS,
        grouping: Grouping::default(),
    });
    runtime()?.block_on(async {
        let mut signals = Signals::install()?;
        let mut trace = Trace::start(&targets, None, &options)?;
        let mut dashboard = Dashboard::open(args.interval)?;
        let ended = drive(&mut trace, &mut signals, stops, &mut dashboard).await;
        // The terminal first: detaching takes a moment, and the user sees their shell back
        // meanwhile.
        drop(dashboard);
        trace.finish()?;
        ended.map(|_| ())
    })?;
    Ok(ExitCode::SUCCESS)
}

fn describe(end: &End) -> Option<String> {
    match end {
        End::Duration => None,
        End::Signal(name) => Some(format!("interrupted by {name}")),
        End::CommandExited(status) => Some(format!("command exited with status {status}")),
        End::TargetsGone => Some("every traced --pid exited".to_string()),
        End::Quit => None,
    }
}

/// Exited processes the report of `top` (without a terminal) lists one by one, as `report`'s
/// default `--max-rows`.
const REPORT_ROWS: u32 = 10_000;

/// Prints (or writes) the report, which lists the last `max_rows` exited processes one by one.
/// A closed stdout (`| head`) is not an error worth a message.
fn emit(outcome: &Outcome, args: &OutputArgs, max_rows: usize) -> Result<()> {
    let output = args.output.as_deref();
    if args.format() == ReportFormat::Prom {
        let text = exporter::metrics::exposition(
            outcome.finished.snapshot.clone(),
            exporter::metrics::Labels::default(),
            exporter::metrics::Format::Prometheus,
        );
        return match output {
            Some(path) => write_for_textfile_collector(path, &text),
            None => print(&text),
        };
    }
    let analysed = Analysed::of(outcome.finished.snapshot.clone());
    let report = Report {
        duration: round_to_ms(outcome.elapsed),
        analysed: &analysed,
        not_covered: &outcome.finished.not_covered,
        ended_because: describe(&outcome.end),
        occupancy: Some(outcome.finished.occupancy),
        max_rows,
    };
    let mut text = if args.format() == ReportFormat::Json {
        report::to_json(&report)
    } else {
        report::to_table(&report)
    };
    if !text.ends_with('\n') {
        text.push('\n');
    }
    match output {
        Some(path) => write_private(path, &text),
        None => print(&text),
    }
}

/// Writes to stdout. A closed stdout (`| head`) is not an error worth a message.
fn print(text: &str) -> Result<()> {
    match io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("writing the report"),
    }
}

/// Writes metrics for node_exporter's textfile collector: under a temporary name in the same
/// directory (which the collector ignores: it reads only `*.prom`), then renamed, so it never
/// reads half a file. Readable by all: the collector runs as its own user.
fn write_for_textfile_collector(path: &Path, text: &str) -> Result<()> {
    let name = path
        .file_name()
        .with_context(|| format!("{} is not a file name", path.display()))?;
    let temporary = path.with_file_name(format!(".{}.tmp", name.to_string_lossy()));
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .open(&temporary)
        .with_context(|| format!("creating {}", temporary.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", temporary.display()))?;
    std::fs::rename(&temporary, path)
        .with_context(|| format!("renaming {} to {}", temporary.display(), path.display()))
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
