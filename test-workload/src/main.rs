//! zerocopy-trace-workload: moves exactly known bytes through one data path (or all of them)
//! and writes down, per measured process, what it did, for the integration tests to compare
//! with what the tracer saw.
//!
//! The parent parses arguments, prepares files and sockets, and forks the measured children.
//! Each child issues only its mode's data-path syscalls, by number, and records every call in
//! shared memory; the parent reaps them and writes one JSON document:
//!
//! ```json
//! {"mode": "sendfile", "processes": [
//!   {"pid": 1234, "mode": "sendfile", "role": "sender",
//!    "syscalls": {"sendfile64": {"calls": 16, "bytes": 1048576, "errors": 0}}}]}
//! ```
//!
//! The parent's own syscalls (writing input files, this JSON) are not listed: only children.

mod child;
mod gate;
mod ground_truth;
mod modes;
mod net;
mod pattern;
mod report;
mod setup;
mod sys;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;

use modes::{Mode, Params, Sizes};
use report::Report;
use setup::WorkDir;

/// Moves known bytes through Linux data-path syscalls in forked children and writes their
/// exact per-syscall counts (calls, bytes, errors) as JSON.
#[derive(Debug, Parser)]
#[command(name = "zerocopy-trace-workload")]
struct Args {
    /// The data path to exercise.
    #[arg(value_enum)]
    mode: Mode,

    /// Where to write the JSON ground truth.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,

    /// Directory for the modes' files (created if missing, kept). Default: a fresh directory
    /// under the system temp dir, removed at the end.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,

    /// Bytes moved per round.
    #[arg(long, value_name = "N", default_value_t = 1 << 20)]
    bytes: u64,

    /// Most bytes asked of one call (mmsg caps datagrams at 8192, churn its write at 65536).
    #[arg(long, value_name = "N", default_value_t = 65536,
          value_parser = clap::value_parser!(u64).range(1..=1 << 30))]
    chunk: u64,

    /// Rounds of the transfer, all in the same children (threads: writes per thread).
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(1..))]
    repeat: u64,

    /// Milliseconds each child sleeps before exiting, to stay visible to a tracer.
    #[arg(long, value_name = "N", default_value_t = 0)]
    hold_ms: u64,

    /// hold: a file created once every holder has written (the tracer can stop then).
    #[arg(long, value_name = "FILE")]
    ready: Option<std::path::PathBuf>,

    /// Children of churn and hold (hold keeps them all alive at once).
    #[arg(long, value_name = "N", default_value_t = 1000,
          value_parser = clap::value_parser!(u32).range(1..))]
    processes: u32,

    /// Most churn children alive at once.
    #[arg(long, value_name = "N", default_value_t = 8,
          value_parser = clap::value_parser!(u32).range(1..))]
    parallel: u32,

    /// Name (comm) every measured child takes as soon as it is forked, so that a tracer can
    /// sum its counts by name apart from the parent's (at most 15 bytes are kept).
    #[arg(long, value_name = "NAME")]
    child_comm: Option<String>,

    /// Threads of the threads mode's child (besides its leader, which exits first).
    #[arg(long, value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    threads: u32,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line with the whole cause chain, whatever RUST_BACKTRACE says.
            eprintln!("zerocopy-trace-workload: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<()> {
    if zerocopy_trace_common::Arch::HOST.is_none() {
        anyhow::bail!(
            "the syscall table has no numbers for this architecture (x86-64 and aarch64 only)"
        );
    }
    if let Some(name) = &args.child_comm {
        child::name_children(name)?;
    }
    let params = Params {
        sizes: Sizes {
            bytes: args.bytes,
            chunk: usize::try_from(args.chunk).context("--chunk does not fit in memory")?,
            rounds: args.repeat,
        },
        hold: Duration::from_millis(args.hold_ms),
        dir: WorkDir::new(args.dir)?,
        processes: args.processes as usize,
        ready: args.ready,
        parallel: args.parallel as usize,
        threads: args.threads as usize,
    };
    let processes =
        modes::run(args.mode, &params).with_context(|| format!("mode {}", args.mode.name()))?;
    let report = Report {
        mode: args.mode.name(),
        processes,
    };
    let mut json = serde_json::to_vec_pretty(&report).context("serialize the report")?;
    json.push(b'\n');
    std::fs::write(&args.out, json).with_context(|| format!("write {}", args.out.display()))?;
    Ok(())
}
