//! zerocopy-trace: does this server really move its data without copying it?
//!
//! The layers, each a folder, from the top down; a layer imports only from those below it
//! (`cargo xtask lint` checks):
//! - `cli` (the command line) and `commands` (what each command does);
//! - `session`: one trace from start to end, the same for every command (the targets, the
//!   attached trace, the loop that feeds an output);
//! - `output`: the report (table, JSON), the live dashboard and the Prometheus exporter;
//! - `analysis`: everything the outputs show of a process, computed once per snapshot;
//! - `correlate`: flows and findings; `model`: copies, transitions, verdicts, rates;
//! - `collect`: the kernel's maps and exit records into `Snapshot`s;
//! - `kernel`: the only code that touches BPF (plan, attach, maps); `system`: /proc, cgroups,
//!   capabilities, the command `run` starts;
//! - `snapshot`: the plain values all of the above pass on.
//!
//! See ARCHITECTURE.md.

mod analysis;
mod cli;
mod collect;
mod commands;
mod correlate;
mod kernel;
mod model;
mod output;
mod session;
mod snapshot;
mod system;
#[cfg(feature = "test-hooks")]
mod test_hooks;
#[cfg(test)]
mod text_mutations;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Warnings, and the line that says the trace is attached (scripts wait for it).
    let default_filter = format!("warn,{}=info", session::trace::ATTACHED_LOG_TARGET);
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default_filter))
        .format_timestamp(None)
        .format_target(false)
        .init();
    match commands::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("zerocopy-trace: error: {e:#}");
            ExitCode::from(1)
        }
    }
}
