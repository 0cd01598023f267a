//! zerocopy-trace-bench, run by `cargo xtask bench` (which builds the agent first): what an
//! operator pays for zerocopy-trace, side by side with the tools they would use instead, on a
//! syscall storm, bulk transfers, process churn and a real server.
//!
//! Rounds alternate the tracers (untraced, zerocopy-trace, its empty programs on the same
//! hooks, bpftrace as its users write these counters, perf trace), in reverse order every other
//! round; in each round a tracer is attached once and every workload runs under it, so drift
//! over the bench cancels out of the per-round ratios. nginx runs for the whole bench and wrk
//! loads it in each block. A pass with `kernel.bpf_stats_enabled=1` (off during the timed
//! rounds: the stats cost time of their own) measures each BPF program's run time over one
//! storm and one nginx run; a last session counts the agent's memory while many short-lived
//! processes exit.
//!
//! Layout: `passes` (the rounds, the stats pass, the churn session), `workloads` (what runs,
//! with `data_file`), `nginx` and `wrk` (the real server and its client), `churn` (the memory
//! session), `tracers` and `bpftrace` (start, attached, stop), `procfs` and `process` (what the
//! kernel says about a process; signals and wait4), `stats` (medians), `report` (records and
//! summary), `goals`, `render` (the tables).

mod bpftrace;
mod churn;
mod data_file;
mod goals;
mod nginx;
mod passes;
mod process;
mod procfs;
mod render;
mod report;
mod stats;
mod tracers;
mod workloads;
mod wrk;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Measures zerocopy-trace's overhead against no tracer, empty programs on the same hooks,
/// bpftrace and perf trace (needs root; `cargo xtask bench` builds the agent and runs this).
#[derive(Parser)]
#[command(name = "zerocopy-trace-bench")]
struct Args {
    /// The agent to measure, built with its `bench` feature (the empty programs and
    /// `report --refresh`).
    #[arg(long, value_name = "PATH")]
    agent: PathBuf,
    /// Where the JSON results go.
    #[arg(long, value_name = "DIR")]
    results: PathBuf,
    /// Runs of each tracer (alternating rounds); default 7, or 1 with --quick.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=100))]
    runs: Option<u64>,
    /// Tiny workloads: a smoke test of the whole bench.
    #[arg(long)]
    quick: bool,
    /// Short-lived processes of the churn session; default 1000000, or 10000 with --quick.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    churn_processes: Option<u64>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let options = passes::Options {
        runs: args.runs.and_then(|n| usize::try_from(n).ok()),
        quick: args.quick,
        churn: args.churn_processes,
    };
    match passes::bench(args.agent, &args.results, options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("bench: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
