//! Running child processes: every command is printed before it runs, and a failing one becomes a
//! [`Failed`] error that carries its exit code back to `main`.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};

use anyhow::{Context, Result};

/// A child process that ran and failed. `main` exits with its code, so `cargo xtask test` fails the
/// way `cargo test` did.
#[derive(Debug)]
pub struct Failed {
    pub command: String,
    pub status: ExitStatus,
}

impl Failed {
    /// The exit code to pass on; 1 when the child was killed by a signal.
    pub fn code(&self) -> i32 {
        self.status.code().filter(|&c| c != 0).unwrap_or(1)
    }
}

impl fmt::Display for Failed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` failed ({})", self.command, self.status)
    }
}

impl std::error::Error for Failed {}

/// The cargo that runs this xtask (cargo sets `CARGO` for `cargo run`), so nested builds use the
/// same rustup toolchain rather than whatever `cargo` is first on `PATH`.
pub fn cargo() -> Command {
    Command::new(cargo_program())
}

/// The program [`cargo`] runs, for tools that take it in `CARGO` themselves.
pub fn cargo_program() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// Runs `cmd` with inherited stdio, printing it first; a non-zero exit is a [`Failed`] error.
pub fn run(cmd: &mut Command) -> Result<()> {
    let shown = describe(cmd);
    eprintln!("xtask: {shown}");
    let status = cmd
        .status()
        .with_context(|| format!("could not start `{shown}`"))?;
    if status.success() {
        Ok(())
    } else {
        Err(Failed {
            command: shown,
            status,
        }
        .into())
    }
}

/// Runs `cmd` as [`run`] does, but returns its stdout (trimmed) instead of passing it on; its
/// stderr still shows.
pub fn stdout(cmd: &mut Command) -> Result<String> {
    let shown = describe(cmd);
    eprintln!("xtask: {shown}");
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("could not start `{shown}`"))?;
    if !out.status.success() {
        return Err(Failed {
            command: shown,
            status: out.status,
        }
        .into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Runs `cmd` quietly and returns its trimmed stdout, or `None` if it could not start or failed.
/// For probes whose failure just means "not this one" (is there a rustup nightly? ...).
pub fn probe(cmd: &mut Command) -> Option<String> {
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The command line as a person would type it: the environment this xtask sets (not `PATH`, which
/// is long and only ever prefixed with the tools directory), the program's file name, its args.
pub fn describe(cmd: &Command) -> String {
    let mut words = Vec::new();
    for (key, value) in cmd.get_envs() {
        if let Some(value) = value {
            if key != "PATH" {
                words.push(format!(
                    "{}={}",
                    key.to_string_lossy(),
                    value.to_string_lossy()
                ));
            }
        }
    }
    let program = Path::new(cmd.get_program())
        .file_name()
        .unwrap_or_else(|| OsStr::new("?"));
    words.push(program.to_string_lossy().into_owned());
    words.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    words.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_shows_set_env_and_short_program() {
        let mut cmd = Command::new("/usr/bin/apt-get");
        cmd.args(["install", "-y", "x"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .env("PATH", "/very/long")
            .env_remove("RUSTFLAGS");
        assert_eq!(
            describe(&cmd),
            "DEBIAN_FRONTEND=noninteractive apt-get install -y x"
        );
    }

    #[test]
    fn stdout_is_returned_and_failure_is_an_error() {
        assert_eq!(
            stdout(Command::new("echo").arg(" out ")).unwrap(),
            "out".to_owned()
        );
        let err = stdout(&mut Command::new("false")).unwrap_err();
        assert_eq!(err.downcast_ref::<Failed>().map(Failed::code), Some(1));
    }

    #[test]
    fn probe_treats_failure_as_none() {
        assert_eq!(probe(&mut Command::new("false")), None);
        assert_eq!(
            probe(Command::new("echo").arg(" hi ")),
            Some("hi".to_owned())
        );
        assert_eq!(probe(&mut Command::new("/nonexistent/xtask-probe")), None);
    }
}
