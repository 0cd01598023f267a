//! What each subcommand does, step by step. Each starts by making sure the eBPF toolchain is there,
//! so a fresh clone needs nothing but `cargo xtask <task>`.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use dev_support::{apt::Apt, cmd};

use crate::build::{self, prepare, AGENT, BENCH, TEST_HOOKS, WORKLOAD};
use crate::containers;
use crate::dist;
use crate::ebpf;
use crate::image;
use crate::kafka;
use crate::layers;
use crate::test_programs;
use crate::toolchain::{self, BPF_LINKER_VERSION};

/// The agent's commands that only the bench drives (the empty programs, `report --refresh`),
/// never in the product.
const BENCH_HOOKS: &str = "bench";

/// The crate that only builds for the BPF target: every host-side `cargo` run leaves it out.
const EBPF_CRATE: &str = "zerocopy-trace-ebpf";

/// Privileged integration tests attach to the same kernel hooks and count the same syscalls, so
/// they must not run side by side.
const SERIAL_TESTS: &str = "--test-threads=1";

/// `cargo xtask toolchain`: the ensure step alone, then what it found.
pub fn toolchain(workspace: &Path) -> Result<()> {
    let mut apt = Apt::default();
    let tc = prepare(workspace, &mut apt)?;
    println!(
        "eBPF rustc:    {} ({})",
        tc.rustc.display(),
        tc.origin.label()
    );
    println!("  release:     {}", tc.release);
    println!("  LLVM major:  {}", tc.llvm_major);
    println!(
        "bpf-linker:    {} ({BPF_LINKER_VERSION}, LLVM {})",
        tc.bpf_linker().display(),
        tc.llvm_major
    );
    let clippy = tc
        .rustc
        .parent()
        .map(|dir| dir.join("cargo-clippy"))
        .filter(|p| p.is_file());
    match clippy {
        Some(path) => println!("eBPF clippy:   {}", path.display()),
        None => {
            println!("eBPF clippy:   not installed (`cargo xtask lint` installs it where it can)")
        }
    }
    println!("eBPF object:   {}", ebpf::object_path(workspace).display());
    Ok(())
}

/// `cargo xtask build`: the agent, whose `build.rs` builds the eBPF object it embeds with the
/// toolchain recorded here. Returns the agent binary.
pub fn build(workspace: &Path, release: bool) -> Result<PathBuf> {
    prepare(workspace, &mut Apt::default())?;
    build::agent(workspace, release)
}

/// `cargo xtask dist`: the Debian package; returns its path.
pub fn dist(workspace: &Path) -> Result<PathBuf> {
    let mut apt = Apt::default();
    prepare(workspace, &mut apt)?;
    dist::dist_prepared(workspace, &mut apt)
}

/// `cargo xtask image`: the Debian package, then the agent's OCI image; returns its archive.
pub fn image(workspace: &Path) -> Result<PathBuf> {
    let mut apt = Apt::default();
    prepare(workspace, &mut apt)?;
    image::image(workspace, &mut apt)
}

/// `cargo xtask bench ARGS`: the release agent with its bench-only commands, then the
/// bench with `args`, which writes its results under `target/bench/` (never into the
/// repository).
pub fn bench(workspace: &Path, args: &[String]) -> Result<()> {
    prepare(workspace, &mut Apt::default())?;
    let agent = build::binary(workspace, AGENT, true, &[BENCH_HOOKS])?;
    let bench = build::binary(workspace, BENCH, true, &[])?;
    let mut command = Command::new(bench);
    command
        .arg("--agent")
        .arg(agent)
        .arg("--results")
        .arg(workspace.join("target").join("bench"))
        .args(args);
    cmd::run(&mut command)
}

/// `cargo xtask run`: build, then become the agent, so its exit code and signals are the caller's.
pub fn run(workspace: &Path, release: bool, args: &[OsString]) -> Result<()> {
    let binary = build(workspace, release)?;
    let mut command = Command::new(&binary);
    command.args(args);
    eprintln!("xtask: {}", cmd::describe(&command));
    // `exec` only returns on failure.
    let err = command.exec();
    Err(err).with_context(|| format!("could not start {}", binary.display()))
}

/// `cargo xtask test`: the workspace's tests (every crate but the eBPF one, which has no host
/// build), one test at a time, with the workload helper built for the integration tests,
/// Apache Kafka fetched for the Kafka test, the container runtimes, root filesystem, helm and
/// validator brought for the container and Kubernetes tests, and the Debian package built
/// (once) for the package test and the agent's image, when those tests are among the ones run.
pub fn test(workspace: &Path, extra: &[String]) -> Result<()> {
    let mut apt = Apt::default();
    prepare(workspace, &mut apt)?;
    test_programs::ensure(&mut apt)?;
    let kafka = kafka::ensure(workspace, &mut apt)?;
    if tests_the_agent(cargo_args(extra)) {
        // The integration tests find it beside the agent they test, so in the same profile.
        let release = cargo_args(extra).iter().any(|a| a == "--release");
        build::binary(workspace, WORKLOAD, release, &[])?;
    }
    let mut args = test_args(extra);
    if !names_a_package(cargo_args(extra)) {
        // Every host crate (the default members are the product alone), right after `test`.
        args.splice(
            1..1,
            ["--workspace", "--exclude", EBPF_CRATE].map(str::to_owned),
        );
    }
    let mut command = cmd::cargo();
    command
        .current_dir(workspace)
        .env(kafka::DIR_ENV, &kafka)
        .args(args);
    if containers::TESTS
        .iter()
        .any(|name| runs_test(cargo_args(extra), name))
    {
        command.env(
            containers::DIR_ENV,
            containers::ensure(workspace, &mut apt)?,
        );
    }
    // The package test installs it; the Kubernetes test runs the agent's image made from it.
    if [PACKAGE_TEST, IMAGE_TEST]
        .iter()
        .any(|name| runs_test(cargo_args(extra), name))
    {
        let deb = dist::dist_prepared(workspace, &mut apt)?;
        if runs_test(cargo_args(extra), IMAGE_TEST) {
            let name = image::build(workspace, &mut apt, &deb, IMAGE_TAG)?;
            command.env(IMAGE_ENV, name);
        }
        command.env(PACKAGE_ENV, deb);
    }
    cmd::run(&mut command)
}

/// The integration test of the Debian package, and where it finds the package `dist` built.
const PACKAGE_TEST: &str = "package";
/// The test that runs the OCI image made from the package, the image's tag for it, and where
/// it finds the image's name.
const IMAGE_TEST: &str = "kubernetes";
const IMAGE_TAG: &str = "test";
const IMAGE_ENV: &str = "ZEROCOPY_TRACE_IMAGE";
const PACKAGE_ENV: &str = "ZEROCOPY_TRACE_DEB";

/// The `cargo test` part of `cargo xtask test -- EXTRA` (before a second `--`).
fn cargo_args(extra: &[String]) -> &[String] {
    match extra.iter().position(|a| a == "--") {
        Some(i) => &extra[..i],
        None => extra,
    }
}

/// Whether these `cargo test` arguments run the agent's integration test `name`: the agent is
/// tested, and either `--test name` is given, or no target is chosen at all (every test runs), or
/// `--tests`/`--all-targets` asks for all of them.
fn runs_test(cargo_args: &[String], name: &str) -> bool {
    if !tests_the_agent(cargo_args) {
        return false;
    }
    let mut named = Vec::new();
    let mut chose_targets = false;
    let mut all_tests = false;
    let mut args = cargo_args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--test" => named.extend(args.next().map(String::as_str)),
            "--tests" | "--all-targets" => all_tests = true,
            "--lib" | "--bins" | "--bin" | "--doc" | "--examples" | "--example" | "--benches"
            | "--bench" => chose_targets = true,
            other => named.extend(other.strip_prefix("--test=")),
        }
    }
    named.contains(&name) || all_tests || (named.is_empty() && !chose_targets)
}

/// `cargo xtask lint`: formatting everywhere, clippy on the host crates, then clippy on the eBPF
/// crate with its own compiler and target. Every check runs even after one fails, so one CI run
/// shows all that is wrong.
pub fn lint(workspace: &Path) -> Result<()> {
    let mut apt = Apt::default();
    let tc = prepare(workspace, &mut apt)?;
    let mut failed = Vec::new();
    let mut check = |name: &str, result: Result<()>| {
        if let Err(err) = result {
            eprintln!("xtask: {name}: {err:#}");
            failed.push(name.to_owned());
        }
    };

    check("layers", layers::check(workspace));
    // rustfmt parses without compiling, so it covers the eBPF crate too.
    check(
        "rustfmt",
        cmd::run(
            cmd::cargo()
                .current_dir(workspace)
                .args(["fmt", "--all", "--", "--check"]),
        ),
    );
    // The agent's build.rs builds the eBPF object it embeds, so this compiles it too. Once as
    // shipped, once with the agent's test and bench hooks (code the first run does not see).
    let clippy = |extra: &[&str]| {
        let mut command = cmd::cargo();
        command
            .current_dir(workspace)
            .args([
                "clippy",
                "--workspace",
                "--exclude",
                EBPF_CRATE,
                "--all-targets",
            ])
            .args(extra)
            .args(["--", "-D", "warnings"]);
        cmd::run(&mut command)
    };
    check("clippy", clippy(&[]));
    let hooks = format!("{TEST_HOOKS},{AGENT}/{BENCH_HOOKS}");
    check("clippy with hooks", clippy(&["--features", &hooks]));
    // A missing eBPF clippy is the machine's gap, not a lint failure: say so and go on.
    match toolchain::ensure_clippy(&tc, &mut apt) {
        Ok(cargo_clippy) => check("eBPF clippy", ebpf::clippy(workspace, &tc, &cargo_clippy)),
        Err(err) => eprintln!("xtask: note: skipping clippy on the eBPF crate: {err:#}"),
    }

    if failed.is_empty() {
        Ok(())
    } else {
        bail!("lint failed: {}", failed.join(", "))
    }
}

/// `cargo test` arguments for `cargo xtask test -- EXTRA`: EXTRA goes to cargo, and anything after
/// a second `--` to the test binaries, after our `--test-threads=1` (unless EXTRA sets its own:
/// libtest rejects the option twice).
fn test_args(extra: &[String]) -> Vec<String> {
    let (cargo_args, binary_args) = match extra.iter().position(|a| a == "--") {
        Some(i) => (&extra[..i], &extra[i + 1..]),
        None => (extra, &[][..]),
    };
    let mut args = vec!["test".to_owned()];
    if tests_the_agent(cargo_args) {
        args.extend(["--features".to_owned(), TEST_HOOKS.to_owned()]);
    }
    args.extend_from_slice(cargo_args);
    args.push("--".to_owned());
    if !binary_args.iter().any(|a| a.starts_with("--test-threads")) {
        args.push(SERIAL_TESTS.to_owned());
    }
    args.extend_from_slice(binary_args);
    args
}

/// Whether these `cargo test` arguments build the agent: no package named (the whole
/// workspace), or the agent among those named. Cargo refuses a feature of a package it does
/// not build.
fn tests_the_agent(cargo_args: &[String]) -> bool {
    let named = named_packages(cargo_args);
    named.is_empty() || named.contains(&AGENT)
}

/// Whether these `cargo test` arguments choose packages (else the whole workspace is tested).
fn names_a_package(cargo_args: &[String]) -> bool {
    !named_packages(cargo_args).is_empty() || cargo_args.iter().any(|a| a == "--workspace")
}

/// The packages named with `-p`/`--package`.
fn named_packages(cargo_args: &[String]) -> Vec<&str> {
    let mut named = Vec::new();
    let mut args = cargo_args.iter();
    while let Some(arg) = args.next() {
        if arg == "-p" || arg == "--package" {
            named.extend(args.next().map(String::as_str));
        } else if let Some(package) = arg.strip_prefix("--package=") {
            named.push(package);
        }
    }
    named
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn tests_run_serially_by_default() {
        assert_eq!(
            test_args(&[]),
            strings(&["test", "--features", TEST_HOOKS, "--", "--test-threads=1"])
        );
    }

    #[test]
    fn extra_args_go_to_cargo_and_after_a_second_dashdash_to_the_tests() {
        assert_eq!(
            test_args(&strings(&[
                "-p",
                "zerocopy-trace",
                "--",
                "splice",
                "--nocapture"
            ])),
            strings(&[
                "test",
                "--features",
                TEST_HOOKS,
                "-p",
                "zerocopy-trace",
                "--",
                "--test-threads=1",
                "splice",
                "--nocapture"
            ])
        );
    }

    #[test]
    fn the_test_hooks_go_only_where_the_agent_is_built() {
        assert_eq!(
            test_args(&strings(&["-p", "xtask"])),
            strings(&["test", "-p", "xtask", "--", "--test-threads=1"])
        );
        assert!(tests_the_agent(&strings(&["--package=zerocopy-trace"])));
        assert!(tests_the_agent(&strings(&["--test", "exact_bytes"])));
        assert!(!tests_the_agent(&strings(&["-p", "zerocopy-trace-common"])));
    }

    #[test]
    fn the_package_is_built_only_when_its_test_runs() {
        let runs = |words: &[&str]| runs_test(&strings(words), PACKAGE_TEST);
        assert!(runs(&[]));
        assert!(runs(&["--test", "package"]));
        assert!(runs(&["--test=package"]));
        assert!(runs(&["--test", "exact_bytes", "--test", "package"]));
        assert!(runs(&["-p", "zerocopy-trace", "--tests"]));
        assert!(!runs(&["--test", "exact_bytes"]));
        assert!(!runs(&["-p", "zerocopy-trace", "--bins"]));
        assert!(!runs(&["-p", "xtask"]));
        assert_eq!(
            cargo_args(&strings(&["--test", "package", "--", "--nocapture"])),
            strings(&["--test", "package"])
        );
    }

    #[test]
    fn callers_own_thread_count_wins() {
        assert_eq!(
            test_args(&strings(&["--", "--test-threads=4"])),
            strings(&["test", "--features", TEST_HOOKS, "--", "--test-threads=4"])
        );
    }
}
