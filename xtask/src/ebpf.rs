//! The eBPF crate, as xtask handles it: the agent's `build.rs` builds it (see
//! `dev_support::ebpf_build`), xtask records the toolchain for it and lints it. It only builds for
//! `bpfel-unknown-none`, always optimised (the verifier rejects what debug builds emit), with
//! the toolchain from [`crate::toolchain`] rather than the workspace's own.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};

use dev_support::cmd;
use dev_support::ebpf_build::{self, EbpfToolchain};

use crate::toolchain::Toolchain;

pub use dev_support::ebpf_build::object_path;

fn ebpf_toolchain(toolchain: &Toolchain) -> EbpfToolchain {
    EbpfToolchain {
        rustc: toolchain.rustc.clone(),
        tools_bin: toolchain.tools_bin.clone(),
    }
}

/// Records `toolchain` where the agent's `build.rs` looks for it (rewritten only when it
/// changed, so cargo does not rebuild for nothing).
pub fn record_toolchain(workspace: &Path, toolchain: &Toolchain) -> Result<()> {
    let file = ebpf_build::toolchain_file(workspace);
    let text = ebpf_toolchain(toolchain).to_text();
    if std::fs::read_to_string(&file).ok().as_deref() == Some(text.as_str()) {
        return Ok(());
    }
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&file, text).with_context(|| format!("writing {}", file.display()))
}

/// Runs clippy on the eBPF crate with its own target, `build-std` and compiler; `cargo_clippy` is
/// the one that belongs to that compiler (see [`crate::toolchain::ensure_clippy`]).
pub fn clippy(workspace: &Path, toolchain: &Toolchain, cargo_clippy: &Path) -> Result<()> {
    let mut command = Command::new(cargo_clippy);
    // cargo-clippy runs `$CARGO check` with its own clippy-driver as the workspace wrapper; point
    // it at the cargo running this xtask.
    command.env("CARGO", cmd::cargo_program()).arg("clippy");
    ebpf_build::configure(&mut command, workspace, &ebpf_toolchain(toolchain));
    command.args(["--", "-D", "warnings"]);
    cmd::run(&mut command)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use dev_support::ebpf_build::SCRUBBED_ENV;

    fn toolchain() -> EbpfToolchain {
        EbpfToolchain {
            rustc: PathBuf::from("/usr/bin/rustc"),
            tools_bin: PathBuf::from("/ws/target/tools/bin"),
        }
    }

    #[test]
    fn object_is_the_release_binary_under_the_ebpf_target_dir() {
        assert_eq!(
            object_path(Path::new("/ws")),
            Path::new("/ws/target/ebpf/bpfel-unknown-none/release/zerocopy-trace-ebpf")
        );
    }

    #[test]
    fn the_recorded_toolchain_reads_back() {
        let text = toolchain().to_text();
        assert_eq!(
            text,
            "rustc /usr/bin/rustc\ntools_bin /ws/target/tools/bin\n"
        );
        assert_eq!(EbpfToolchain::from_text(&text), Some(toolchain()));
        assert_eq!(EbpfToolchain::from_text("rustc /usr/bin/rustc\n"), None);
        assert_eq!(EbpfToolchain::from_text(""), None);
    }

    #[test]
    fn build_command_uses_the_ebpf_toolchain_and_a_clean_env() {
        let mut command = Command::new("cargo");
        ebpf_build::configure(&mut command, Path::new("/ws"), &toolchain());
        let args: Vec<_> = command.get_args().map(|a| a.to_string_lossy()).collect();
        assert_eq!(
            args.join(" "),
            "--package zerocopy-trace-ebpf --release --target bpfel-unknown-none \
             -Z build-std=core --target-dir /ws/target/ebpf"
        );
        let env = |name: &str| {
            command
                .get_envs()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.map(|v| v.to_string_lossy().into_owned()))
        };
        assert_eq!(env("RUSTC"), Some(Some("/usr/bin/rustc".to_owned())));
        assert_eq!(env("RUSTC_BOOTSTRAP"), Some(Some("1".to_owned())));
        for name in SCRUBBED_ENV {
            assert_eq!(env(name), Some(None), "{name} must be removed");
        }
        let path = env("PATH").flatten().unwrap();
        assert!(path.starts_with("/ws/target/tools/bin"), "{path}");
    }
}
