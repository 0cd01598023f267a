//! `zerocopy-trace run -- CMD`: start a command, trace it and all its descendants until it
//! exits, report, and exit with its status.

use std::process::ExitCode;

use anyhow::Result;

use super::report::emit;
use crate::{
    cli::{ReportFormat, RunArgs},
    output::{report::AtEnd, Output},
    session::{self, driver::End, driver::Stops, targets::Targets},
    system::launch::{self, CommandStdout},
};

pub fn run(args: RunArgs) -> Result<ExitCode> {
    // Fork before any thread exists (the runtime, aya): the child stops itself and is
    // registered with the kernel filter before it execs, so none of its syscalls escape.
    // With --json (or --format prom) on stdout, the command's own output goes to stderr:
    // stdout is then one document whatever the command prints.
    let machine_readable = args.output.format() != ReportFormat::Table;
    let stdout = if machine_readable && args.output.output.is_none() {
        CommandStdout::ToStderr
    } else {
        CommandStdout::Inherit
    };
    let child = launch::spawn_stopped(&args.command, stdout)?;
    let targets = Targets {
        follow_children: true,
        ..Targets::default()
    };
    let mut output = AtEnd::new(args.output.max_rows as usize);
    let outcome = session::run(
        &targets,
        Some(child),
        &args.output.trace.options(),
        Stops::default(),
        &mut output,
    )?;
    emit(&outcome, &args.output, output.retention().keep_exited)?;
    Ok(match outcome.end {
        End::CommandExited(status) => ExitCode::from(status),
        // Interrupted before the command ended: the command got the signal too.
        _ => ExitCode::from(130),
    })
}
