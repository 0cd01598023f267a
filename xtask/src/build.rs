//! The steps every task builds on: the eBPF toolchain made ready (found or installed, and
//! recorded for the agent's `build.rs`), then cargo builds of the workspace's binaries.

use std::path::{Path, PathBuf};

use anyhow::Result;
use dev_support::{apt::Apt, cmd};

use crate::ebpf;
use crate::toolchain::{self, Toolchain};

/// The agent's package and binary name.
pub const AGENT: &str = "zerocopy-trace";

/// The workload helper's package and binary name: the integration tests' ground truth.
pub const WORKLOAD: &str = "zerocopy-trace-workload";

/// The agent's hooks for its integration tests (a panic on purpose), never in the product.
pub const TEST_HOOKS: &str = "zerocopy-trace/test-hooks";

/// The bench's package and binary name.
pub const BENCH: &str = "zerocopy-trace-bench";

/// The ensure step every task starts with: finds or installs the eBPF toolchain, records it for
/// the agent's `build.rs`, and logs what the eBPF build will use.
pub fn prepare(workspace: &Path, apt: &mut Apt) -> Result<Toolchain> {
    let tc = toolchain::ensure(workspace, apt)?;
    ebpf::record_toolchain(workspace, &tc)?;
    eprintln!("xtask: {}", tc.summary());
    Ok(tc)
}

/// Builds `package`'s binary of the same name (with `features`) for a task that has run
/// `prepare` already, and returns where it is.
pub fn binary(
    workspace: &Path,
    package: &str,
    release: bool,
    features: &[&str],
) -> Result<PathBuf> {
    let mut command = cmd::cargo();
    command
        .current_dir(workspace)
        .args(["build", "--package", package]);
    if release {
        command.arg("--release");
    }
    if !features.is_empty() {
        command.args(["--features", &features.join(",")]);
    }
    cmd::run(&mut command)?;
    Ok(binary_path(workspace, package, release))
}

/// The agent alone, without features, for a task that has run `prepare` already.
pub fn agent(workspace: &Path, release: bool) -> Result<PathBuf> {
    binary(workspace, AGENT, release, &[])
}

/// Where `cargo build` leaves binary `name`: the host target directory, which
/// `CARGO_TARGET_DIR` can move (relative to the workspace, where we run cargo).
fn binary_path(workspace: &Path, name: &str, release: bool) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(|dir| workspace.join(dir))
        .unwrap_or_else(|| workspace.join("target"));
    let profile = if release { "release" } else { "debug" };
    target.join(profile).join(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_binary_follows_the_profile() {
        // Only meaningful where the caller has not moved the target directory.
        if std::env::var_os("CARGO_TARGET_DIR").is_none() {
            assert_eq!(
                binary_path(Path::new("/ws"), AGENT, true),
                Path::new("/ws/target/release/zerocopy-trace")
            );
            assert_eq!(
                binary_path(Path::new("/ws"), AGENT, false),
                Path::new("/ws/target/debug/zerocopy-trace")
            );
        }
    }
}
