//! What each command does, from its parsed arguments to its exit code: the tracing commands
//! (`top`, `report`, `run`, `exporter`) each pick an output and run one session with it; the
//! man pages and completions for packagers (`assets`); and, for the bench, empty programs on
//! the same hooks (`empty_programs`).

pub mod assets;
#[cfg(feature = "bench")]
mod empty_programs;
mod exporter;
mod report;
mod run;
mod top;

use std::process::ExitCode;

use anyhow::Result;

use crate::cli::{Cli, Command};

/// Runs the command `cli` names (the dashboard when it names none).
pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        None => top::run(cli.top),
        Some(Command::Top(args)) => top::run(args),
        Some(Command::Report(args)) => report::run(args),
        Some(Command::Run(args)) => run::run(args),
        Some(Command::Exporter(args)) => exporter::run(args),
        Some(Command::Assets(args)) => {
            let written = assets::write(&args.dir)?;
            eprintln!(
                "zerocopy-trace: wrote {} files under {}",
                written.len(),
                args.dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        #[cfg(feature = "bench")]
        Some(Command::EmptyPrograms(args)) => {
            empty_programs::run(args.hook)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
