//! How the eBPF crate is built, in one place for the two builders: xtask (its lint, and the
//! toolchain it records) and the agent's `build.rs` (which builds the object it embeds, so a
//! plain `cargo build` never embeds a stale one).

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
    process::Command,
};

pub const PACKAGE: &str = "zerocopy-trace-ebpf";
pub const TARGET: &str = "bpfel-unknown-none";

/// Variables that would feed host-build settings (or another compiler's wrapper, such as the
/// workspace clippy's) into the eBPF build; `LD_LIBRARY_PATH` is set by `cargo run` to the host
/// toolchain's libraries, which the eBPF rustc must not pick up.
pub const SCRUBBED_ENV: [&str; 6] = [
    "RUSTC_WORKSPACE_WRAPPER",
    "RUSTC_WRAPPER",
    "RUSTFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_BUILD_RUSTFLAGS",
    "LD_LIBRARY_PATH",
];

/// The compiler and linker the eBPF crate builds with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EbpfToolchain {
    /// A rustc whose sysroot has the core library's source (for `-Z build-std=core`).
    pub rustc: PathBuf,
    /// The directory holding a `bpf-linker` built for that rustc's LLVM.
    pub tools_bin: PathBuf,
}

/// A target directory of its own, so the host builds and the `build-std` eBPF build never share
/// (and invalidate) each other's artifacts, and the two cargo processes never wait on one lock.
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

/// Where xtask records the toolchain it provisioned, for `build.rs` to find.
pub fn toolchain_file(workspace: &Path) -> PathBuf {
    target_dir(workspace).join("toolchain")
}

impl EbpfToolchain {
    /// `rustc <path>` and `tools_bin <path>`, a line each.
    pub fn to_text(&self) -> String {
        format!(
            "rustc {}\ntools_bin {}\n",
            self.rustc.display(),
            self.tools_bin.display()
        )
    }

    /// The toolchain recorded by `to_text`; `None` if a line is missing.
    pub fn from_text(text: &str) -> Option<EbpfToolchain> {
        let value = |key: &str| {
            text.lines()
                .find_map(|line| line.strip_prefix(key)?.strip_prefix(' '))
                .map(PathBuf::from)
        };
        Some(EbpfToolchain {
            rustc: value("rustc")?,
            tools_bin: value("tools_bin")?,
        })
    }
}

/// The arguments and environment shared by every cargo command on the eBPF crate.
pub fn configure(command: &mut Command, workspace: &Path, toolchain: &EbpfToolchain) {
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
        .env("PATH", path_with(&toolchain.tools_bin))
        .args(["--package", PACKAGE, "--release", "--target", TARGET])
        .args(["-Z", "build-std=core", "--target-dir"])
        .arg(target_dir(workspace));
}

/// `PATH` with `dir` in front.
fn path_with(dir: &Path) -> OsString {
    let rest = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::iter::once(dir.to_path_buf()).chain(std::env::split_paths(&rest));
    // A directory with a `:` in its name cannot be on PATH at all; keep the old PATH then.
    std::env::join_paths(dirs).unwrap_or(rest)
}
