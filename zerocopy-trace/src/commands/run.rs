//! `zerocopy-trace run -- CMD`: start a command, trace it and all its descendants until it
//! exits, report, and exit with its status.

use std::process::ExitCode;

use anyhow::{bail, Result};

use super::report::{destination, emit};
use crate::{
    cli::{ReportFormat, RunArgs},
    output::{report::AtEnd, Output},
    session::{self, driver::End, driver::Stops, targets::Targets, Command},
    system::{
        launch::{self, CommandStdout, CommandUser},
        privileges::{self, User},
    },
};

pub fn run(args: RunArgs) -> Result<ExitCode> {
    // Everything checked before the command starts: the report's file, the command, its user,
    // the trace.
    let destination = destination(&args.output)?;
    let Some(program) = args.command.first() else {
        bail!("no command given to run");
    };
    launch::resolve(program)?;
    let user = command_user(args.output.trace.user.as_deref())?;
    let mut options = args.output.trace.options();
    // The agent becomes the command's user, so it may still pass signals on to it.
    options.account = match &user {
        CommandUser::User(user) => Some(user.account()),
        CommandUser::RootWithoutCapabilities | CommandUser::Root => {
            Some(privileges::Account { uid: 0, gid: 0 })
        }
        CommandUser::Same => None,
    };
    session::check(&options)?;

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
    let signals = launch::forwarded_signals()?;
    let child = launch::spawn_stopped(&args.command, stdout, user)?;
    let targets = Targets {
        follow_children: true,
        ..Targets::default()
    };
    let mut output = AtEnd::new(args.output.max_rows as usize);
    let outcome = session::run(
        &targets,
        Some(Command { child, signals }),
        &options,
        Stops::default(),
        &mut output,
    )?;
    emit(
        &outcome,
        &args.output,
        destination,
        output.retention().keep_exited,
    )?;
    Ok(match outcome.end {
        End::CommandExited(status) => ExitCode::from(status),
        // Interrupted before the command ended.
        _ => ExitCode::from(130),
    })
}

/// Who the command runs as: `--user` (root only when named: then with root's capabilities,
/// as sudo would run it); else, for a root-started agent, the user sudo was run by, or root
/// without any capability; an agent not started as root runs it as itself.
fn command_user(name: Option<&str>) -> Result<CommandUser> {
    if !privileges::is_root() {
        if let Some(name) = name {
            let wanted = User::named(name)?;
            // SAFETY: getuid has no preconditions.
            if wanted.uid != unsafe { libc::getuid() } {
                bail!("--user {name}: only an agent started as root can run a command as another user");
            }
        }
        return Ok(CommandUser::Same);
    }
    Ok(match name {
        Some(name) => match User::named(name)? {
            user if user.uid == 0 => CommandUser::Root,
            user => CommandUser::User(user),
        },
        None => match User::sudo_caller() {
            Some(user) => CommandUser::User(user),
            None => CommandUser::RootWithoutCapabilities,
        },
    })
}
