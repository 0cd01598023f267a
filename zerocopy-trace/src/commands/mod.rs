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

use anyhow::{bail, Result};

use crate::{
    cli::{Cli, Command, TraceArgs},
    session::{self, trace::TraceOptions},
    system::{
        containers,
        privileges::{self, User},
    },
};

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
        Some(Command::NamesHelper(args)) => {
            containers::helper::serve::serve(args.parent, &args.names_from)?;
            Ok(ExitCode::SUCCESS)
        }
        #[cfg(feature = "bench")]
        Some(Command::EmptyPrograms(args)) => {
            empty_programs::run(args.hook)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The trace options of `args`, checked before anything starts: the user a root-started agent
/// becomes once attached (`--user`, default nobody), looked up now, and the trace's own checks
/// (privileges, tracefs).
fn checked_options(args: &TraceArgs) -> Result<TraceOptions> {
    let mut options = args.options();
    options.account = account(args.user.as_deref())?.map(|user| user.account());
    session::check(&options)?;
    Ok(options)
}

/// Who the agent becomes: `--user` (default nobody) when started as root; an agent started as
/// another user stays that user, and only accepts its own name.
fn account(user: Option<&str>) -> Result<Option<User>> {
    if privileges::is_root() {
        return User::named(user.unwrap_or(privileges::DEFAULT_USER)).map(Some);
    }
    if let Some(name) = user {
        let wanted = User::named(name)?;
        // SAFETY: getuid has no preconditions.
        if wanted.uid != unsafe { libc::getuid() } {
            bail!("--user {name}: only an agent started as root can become another user");
        }
    }
    Ok(None)
}
