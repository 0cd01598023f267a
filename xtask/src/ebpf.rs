//! The eBPF crate: where its object lands, how it is built, how it is linted. It only builds for
//! `bpfel-unknown-none`, always optimised (the verifier rejects what debug builds emit), with the
//! toolchain from [`crate::toolchain`] rather than the workspace's own.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{ensure, Result};

use crate::cmd;
use crate::toolchain::Toolchain;

pub const PACKAGE: &str = "zerocopy-trace-ebpf";
pub const TARGET: &str = "bpfel-unknown-none";

/// The variable through which the agent's build finds the object to embed.
pub const OBJECT_ENV: &str = "ZEROCOPY_TRACE_EBPF_OBJECT";

/// Variables that would feed host-build settings (or another compiler's wrapper, such as the
/// workspace clippy's) into the eBPF build; `LD_LIBRARY_PATH` is set by `cargo run` to the host
/// toolchain's libraries, which the eBPF rustc must not pick up.
const SCRUBBED_ENV: [&str; 6] = [
    "RUSTC_WORKSPACE_WRAPPER",
    "RUSTC_WRAPPER",
    "RUSTFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_BUILD_RUSTFLAGS",
    "LD_LIBRARY_PATH",
];

/// A target directory of its own, so the host builds and the `build-std` eBPF build never share
/// (and invalidate) each other's artifacts.
pub fn target_dir(workspace: &Path) -> PathBuf {
    workspace.join("target").join("ebpf")
}

/// The absolute path of the built eBPF object (the crate's binary, an ELF relocatable for BPF).
pub fn object_path(workspace: &Path) -> PathBuf {
    target_dir(workspace)
        .join(TARGET)
        .join("release")
        .join(PACKAGE)
}

/// Builds the eBPF object and returns its path.
pub fn build(workspace: &Path, toolchain: &Toolchain) -> Result<PathBuf> {
    let mut command = cmd::cargo();
    command.arg("build");
    configure(&mut command, workspace, toolchain)?;
    cmd::run(&mut command)?;
    let object = object_path(workspace);
    ensure!(
        object.is_file(),
        "the eBPF build succeeded but left no object at {}",
        object.display()
    );
    Ok(object)
}

/// Runs clippy on the eBPF crate with its own target, `build-std` and compiler; `cargo_clippy` is
/// the one that belongs to that compiler (see [`crate::toolchain::ensure_clippy`]).
pub fn clippy(workspace: &Path, toolchain: &Toolchain, cargo_clippy: &Path) -> Result<()> {
    let mut command = Command::new(cargo_clippy);
    // cargo-clippy runs `$CARGO check` with its own clippy-driver as the workspace wrapper; point
    // it at the cargo running this xtask.
    command.env("CARGO", cmd::cargo_program()).arg("clippy");
    configure(&mut command, workspace, toolchain)?;
    command.args(["--", "-D", "warnings"]);
    cmd::run(&mut command)
}

/// The arguments and environment shared by every cargo command on the eBPF crate.
fn configure(command: &mut Command, workspace: &Path, toolchain: &Toolchain) -> Result<()> {
    for name in SCRUBBED_ENV {
        command.env_remove(name);
    }
    command
        .current_dir(workspace)
        .env("RUSTC", &toolchain.rustc)
        // `-Z build-std` is unstable; this lets a stable cargo and a stable-channel rustc (Debian's)
        // accept it.
        .env("RUSTC_BOOTSTRAP", "1")
        // The BPF target's linker is `bpf-linker`, looked up on PATH.
        .env("PATH", path_with(&toolchain.tools_bin)?)
        .args(["--package", PACKAGE, "--release", "--target", TARGET])
        .args(["-Z", "build-std=core", "--target-dir"])
        .arg(target_dir(workspace));
    Ok(())
}

/// `PATH` with `dir` in front.
fn path_with(dir: &Path) -> Result<std::ffi::OsString> {
    let rest = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::iter::once(dir.to_path_buf()).chain(std::env::split_paths(&rest));
    Ok(std::env::join_paths(dirs)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::toolchain::Origin;

    fn toolchain() -> Toolchain {
        Toolchain {
            rustc: PathBuf::from("/usr/bin/rustc"),
            origin: Origin::System,
            release: "1.96.0".to_owned(),
            llvm_major: 22,
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
    fn build_command_uses_the_ebpf_toolchain_and_a_clean_env() {
        let mut command = Command::new("cargo");
        configure(&mut command, Path::new("/ws"), &toolchain()).unwrap();
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
