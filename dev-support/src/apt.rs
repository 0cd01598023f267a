//! Installing Debian packages, the one way a fresh machine of this project gets a rustc with the
//! `core` source and a matching LLVM. Only as root and only where `apt-get` exists; anywhere else
//! the error lists the exact commands for a person to run.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Result};

use crate::cmd;

const APT_GET: &str = "apt-get";

/// `apt-get update` runs at most once per xtask run: a fresh machine's package lists can be stale
/// (or empty), but refreshing them for every package would only cost time.
#[derive(Default)]
pub struct Apt {
    updated: bool,
}

impl Apt {
    /// Installs `packages` (needed for `why`), refreshing the package lists first if this run has
    /// not yet done so.
    pub fn install(&mut self, packages: &[&str], why: &str) -> Result<()> {
        self.install_with(packages, why, Recommends::Yes)
    }

    /// `install` without the packages' recommendations: Prometheus recommends exporters and a
    /// web UI the tests do not want running.
    pub fn install_without_recommends(&mut self, packages: &[&str], why: &str) -> Result<()> {
        self.install_with(packages, why, Recommends::No)
    }

    fn install_with(&mut self, packages: &[&str], why: &str, recommends: Recommends) -> Result<()> {
        if let Err(reason) = can_install() {
            bail!(
                "{why} needs the Debian packages {}, and xtask cannot install them ({reason}). \
                 Run as root:\n{}",
                packages.join(" "),
                manual_commands(packages)
            );
        }
        eprintln!(
            "xtask: installing {} (apt-get) for {why}",
            packages.join(" ")
        );
        for args in plan(packages, !self.updated, recommends) {
            let mut command = Command::new(APT_GET);
            command
                .args(&args)
                .env("DEBIAN_FRONTEND", "noninteractive")
                // CI has no stdin, and a prompt must never wait for one.
                .stdin(Stdio::null());
            cmd::run(&mut command)?;
            if args.first().is_some_and(|a| a == "update") {
                self.updated = true;
            }
        }
        Ok(())
    }
}

/// Whether apt also installs the packages' recommendations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recommends {
    Yes,
    No,
}

/// The `apt-get` argument lists to run, in order. Kept pure so the install path can be checked
/// without installing anything.
pub fn plan(packages: &[&str], update_first: bool, recommends: Recommends) -> Vec<Vec<String>> {
    // Another apt (unattended upgrades, a colleague's install) may hold the dpkg lock for a while;
    // wait for it instead of failing at once.
    let lock_wait = ["-o", "DPkg::Lock::Timeout=300"];
    let mut steps = Vec::new();
    if update_first {
        steps.push(
            lock_wait
                .iter()
                .chain(&["update"])
                .map(|s| s.to_string())
                .collect(),
        );
    }
    let without: &[&str] = match recommends {
        Recommends::Yes => &[],
        Recommends::No => &["--no-install-recommends"],
    };
    steps.push(
        lock_wait
            .iter()
            .chain(&["install", "-y"])
            .chain(without)
            .chain(packages)
            .map(|s| s.to_string())
            .collect(),
    );
    steps
}

/// What a person should run where xtask cannot install for them.
pub fn manual_commands(packages: &[&str]) -> String {
    format!(
        "  apt-get update\n  DEBIAN_FRONTEND=noninteractive apt-get install -y {}",
        packages.join(" ")
    )
}

/// `Ok` if this process may run `apt-get install`, else why not.
pub fn can_install() -> Result<(), &'static str> {
    if !on_path(APT_GET) {
        return Err("no apt-get on PATH: not a Debian-family machine");
    }
    // /proc/self belongs to this process's effective user: no libc call needed for the uid.
    match std::fs::metadata("/proc/self") {
        Ok(meta) if meta.uid() == 0 => Ok(()),
        Ok(_) => Err("not running as root"),
        Err(_) => Err("cannot tell whether this is root (no /proc/self)"),
    }
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| Path::new(&dir).join(program).is_file())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_updates_once_then_installs_non_interactively() {
        let steps = plan(
            &["rustc-web", "rust-web-src", "llvm-22-dev"],
            true,
            Recommends::Yes,
        );
        let lines: Vec<String> = steps.iter().map(|s| s.join(" ")).collect();
        assert_eq!(
            lines,
            [
                "-o DPkg::Lock::Timeout=300 update",
                "-o DPkg::Lock::Timeout=300 install -y rustc-web rust-web-src llvm-22-dev",
            ]
        );
    }

    #[test]
    fn plan_skips_update_when_already_done() {
        let steps = plan(&["llvm-22-dev"], false, Recommends::Yes);
        assert_eq!(steps.len(), 1);
        assert_eq!(steps[0].last().map(String::as_str), Some("llvm-22-dev"));
        assert!(!steps[0].iter().any(|a| a == "update"));
    }

    #[test]
    fn plan_can_leave_recommendations_out() {
        let steps = plan(&["prometheus"], false, Recommends::No);
        assert_eq!(
            steps[0].join(" "),
            "-o DPkg::Lock::Timeout=300 install -y --no-install-recommends prometheus"
        );
    }

    #[test]
    fn manual_commands_name_every_package() {
        let text = manual_commands(&["rustc-web", "rust-web-src"]);
        assert!(text.contains("apt-get update"));
        assert!(text.contains("apt-get install -y rustc-web rust-web-src"));
    }
}
