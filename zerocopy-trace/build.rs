//! Embeds the eBPF object built by `cargo xtask build`. The object needs a BPF toolchain that a
//! plain `cargo build` cannot provide, so this script only locates it and says how to make it.

use std::{env, path::PathBuf};

const OBJECT_ENV: &str = "ZEROCOPY_TRACE_EBPF_OBJECT";

fn main() {
    println!("cargo:rerun-if-env-changed={OBJECT_ENV}");
    let object = match env::var_os(OBJECT_ENV) {
        Some(path) => PathBuf::from(path),
        // Where `cargo xtask build` puts it, so that `cargo clippy`/`cargo test` work after one
        // xtask build without the variable.
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../target/ebpf/bpfel-unknown-none/release/zerocopy-trace-ebpf"),
    };
    println!("cargo:rerun-if-changed={}", object.display());
    if !object.is_file() {
        eprintln!(
            "error: the eBPF object is missing ({}).\n\
             Build zerocopy-trace with `cargo xtask build` (it builds the kernel programs first; \
             `cargo xtask run -- ARGS` and `cargo xtask test` do too).",
            object.display()
        );
        std::process::exit(1);
    }
    let object = object.canonicalize().unwrap_or(object);
    println!(
        "cargo:rustc-env=ZEROCOPY_TRACE_EBPF_OBJECT_PATH={}",
        object.display()
    );
}
