//! Builds the eBPF object the agent embeds, every time its sources change, so `cargo build`,
//! `cargo test` and `cargo clippy` never embed a stale one. The compiler it needs (a rustc with
//! the core library's source, and bpf-linker) is provisioned by `cargo xtask build`, which
//! records it in `target/ebpf/toolchain`. It also records the git revision `--version` prints.

use std::{
    env,
    path::{Path, PathBuf},
    process::{exit, Command},
};

// The build command is shared with xtask, which lints the same crate the same way.
use dev_support::{
    ebpf_build::{self, EbpfToolchain},
    revision,
};

fn main() {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let workspace = manifest.parent().unwrap_or(&manifest).to_path_buf();
    for watched in [
        "zerocopy-trace-ebpf/src",
        "zerocopy-trace-ebpf/Cargo.toml",
        "zerocopy-trace-common/src",
        "zerocopy-trace-common/Cargo.toml",
    ] {
        println!(
            "cargo:rerun-if-changed={}",
            workspace.join(watched).display()
        );
    }
    record_revision(&workspace);

    let file = ebpf_build::toolchain_file(&workspace);
    println!("cargo:rerun-if-changed={}", file.display());

    let recorded = std::fs::read_to_string(&file).ok();
    let toolchain = recorded
        .as_deref()
        .and_then(EbpfToolchain::from_text)
        .unwrap_or_else(|| {
            fail(&format!(
                "no eBPF toolchain recorded at {}.\n\
             Build zerocopy-trace with `cargo xtask build` once: it installs what the kernel \
             programs need and records it there; after that, plain `cargo build`, `cargo test` \
             and `cargo clippy` work too.",
                file.display()
            ))
        });
    let object = build(&workspace, &toolchain);
    println!(
        "cargo:rustc-env=ZEROCOPY_TRACE_EBPF_OBJECT_PATH={}",
        object.display()
    );
}

/// `ZEROCOPY_TRACE_REVISION` for `--version`: the commit built, or "unknown" from a tarball;
/// `ZEROCOPY_TRACE_REVISION_DATE`, its date for the man pages (empty when unknown).
fn record_revision(workspace: &Path) {
    let revision = revision::of_workspace(workspace);
    for path in &revision.watch {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    println!("cargo:rustc-env=ZEROCOPY_TRACE_REVISION={}", revision.id);
    println!(
        "cargo:rustc-env=ZEROCOPY_TRACE_REVISION_DATE={}",
        revision.date.unwrap_or_default()
    );
}

/// Runs the eBPF build (a no-op within a second when nothing changed) and returns the object.
fn build(workspace: &Path, toolchain: &EbpfToolchain) -> PathBuf {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.arg("build");
    ebpf_build::configure(&mut command, workspace, toolchain);
    // The outer build's settings are for the host; the profile and target come from above.
    for (name, _) in env::vars_os() {
        if name
            .to_str()
            .is_some_and(|n| n.starts_with("CARGO_PROFILE_"))
        {
            command.env_remove(name);
        }
    }
    match command.status() {
        Ok(status) if status.success() => {}
        Ok(status) => fail(&format!(
            "building the eBPF programs failed ({status}); the compiler's messages are above"
        )),
        Err(e) => fail(&format!("could not run cargo for the eBPF programs: {e}")),
    }
    let object = ebpf_build::object_path(workspace);
    if !object.is_file() {
        fail(&format!(
            "the eBPF build succeeded but left no object at {}",
            object.display()
        ));
    }
    object
}

fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    exit(1)
}
