//! `cargo xtask`: the one entry point that provisions the eBPF toolchain and drives the builds,
//! tests and lints of this workspace.
//!
//! Layout, from the top down: `tasks` strings the steps of each subcommand together; `dist`
//! builds the Debian package, `test_programs`, `kafka` and `containers` bring the programs
//! (and the root filesystem, helm and the manifest validator) the integration tests drive; `build` prepares the toolchain and builds the agent; `toolchain` finds or
//! installs the eBPF compiler and bpf-linker, `ebpf` records and lints the kernel crate's
//! build. Running commands and apt come from `dev_support`, which build.rs and the bench share.

mod build;
mod containers;
mod dist;
mod ebpf;
mod image;
mod kafka;
mod layers;
mod tasks;
mod test_programs;
mod toolchain;
mod vm;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use dev_support::cmd;

#[derive(Parser)]
#[command(
    bin_name = "cargo xtask",
    about = "Build, run, test and lint zerocopy-trace"
)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Build the eBPF object (always optimised), then the agent that embeds it.
    Build {
        /// Build the agent in release mode.
        #[arg(long)]
        release: bool,
    },
    /// Build, then run the agent with ARGS (it needs root: run xtask as root yourself).
    Run {
        /// Build and run the agent in release mode.
        #[arg(long)]
        release: bool,
        /// Arguments for the agent, after `--`.
        #[arg(last = true)]
        args: Vec<OsString>,
    },
    /// Build the eBPF object, fetch Apache Kafka (for its test), then run the workspace tests one
    /// at a time. With --kernel, boot one of Debian's kernels in QEMU (TCG) over this machine's
    /// root filesystem and run the privileged suites inside it instead.
    Test {
        /// Run the suites in a VM of this Debian kernel series: 6.1 (bookworm), 6.12
        /// (bookworm-security), 6.18 (trixie-backports) or 5.10 (bullseye); fetched with apt
        /// into target/vm, nothing installed.
        #[arg(long, value_name = "SERIES")]
        kernel: Option<vm::Series>,
        /// Possible CPUs of the guest (2 online, the rest hot-pluggable).
        #[arg(
            long,
            requires = "kernel",
            value_name = "N",
            value_parser = clap::value_parser!(u16).range(2..=255)
        )]
        possible_cpus: Option<u16>,
        /// The guest's memory [default: 4G].
        #[arg(long, requires = "kernel", value_name = "SIZE", value_parser = vm::parse_memory)]
        memory: Option<String>,
        /// Stop the guest (and fail) after this many minutes [default: 45].
        #[arg(
            long,
            requires = "kernel",
            value_name = "MIN",
            value_parser = clap::value_parser!(u64).range(1..)
        )]
        vm_timeout: Option<u64>,
        /// The agent's integration suites to run in the guest, comma-separated (or name them
        /// with `-- --test NAME`) [default: exact_bytes,reliability,cleanup].
        #[arg(long, requires = "kernel", value_name = "A,B", value_delimiter = ',')]
        suites: Vec<String>,
        /// Extra `cargo test` arguments after `--`; a second `--` starts the test binaries' own.
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Build the release agent, then its Debian package (target/debian/*.deb): the binary, man
    /// pages, bash/zsh/fish completions, the exporter's systemd unit (disabled) and the fleet
    /// files.
    Dist,
    /// Build the Debian package, then the agent's OCI image from it with Podman (a Debian root
    /// filesystem made with debootstrap; no registry): localhost/zerocopy-trace:<version>,
    /// saved as target/image/zerocopy-trace_<version>.oci.tar (needs root).
    Image,
    /// Check formatting, then clippy (with -D warnings) on the host crates and the eBPF crate.
    Lint,
    /// Find or install the eBPF toolchain (rustc with core source, bpf-linker) and show it.
    Toolchain,
    /// Measure the agent's overhead against no tracer, empty programs on the same hooks,
    /// bpftrace and perf trace, on a syscall storm, bulk transfers, churn and nginx under wrk;
    /// and its memory while many processes exit. Prints tables and writes JSON under
    /// target/bench/ (needs root). ARGS go to the bench (`cargo xtask bench -- --help` lists
    /// them: --runs N, --quick, --churn-processes N).
    Bench {
        /// The bench's own options.
        #[arg(
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "ARGS"
        )]
        args: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.task) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            // A failed child passes on its own exit code (cargo test's 101, say).
            let code = err
                .downcast_ref::<cmd::Failed>()
                .map_or(1, cmd::Failed::code);
            ExitCode::from(u8::try_from(code).unwrap_or(1))
        }
    }
}

fn run(task: Task) -> Result<()> {
    let workspace = workspace_root()?;
    match task {
        Task::Build { release } => {
            let agent = tasks::build(&workspace, release)?;
            eprintln!("xtask: built {}", agent.display());
            Ok(())
        }
        Task::Run { release, args } => tasks::run(&workspace, release, &args),
        Task::Test {
            kernel: None, args, ..
        } => tasks::test(&workspace, &args),
        Task::Test {
            kernel: Some(series),
            possible_cpus,
            memory,
            vm_timeout,
            suites,
            args,
        } => vm::test(
            &workspace,
            &vm::Options {
                series,
                possible_cpus: possible_cpus.unwrap_or(2),
                memory: memory.unwrap_or_else(|| vm::DEFAULT_MEMORY.to_owned()),
                timeout_minutes: vm_timeout.unwrap_or(vm::DEFAULT_TIMEOUT_MINUTES),
                suites,
            },
            &args,
        ),
        Task::Dist => {
            let deb = tasks::dist(&workspace)?;
            println!("{}", deb.display());
            Ok(())
        }
        Task::Image => {
            let archive = tasks::image(&workspace)?;
            println!("{}", archive.display());
            Ok(())
        }
        Task::Lint => tasks::lint(&workspace),
        Task::Toolchain => tasks::toolchain(&workspace),
        Task::Bench { args } => tasks::bench(&workspace, &args),
    }
}

/// The workspace root: xtask's own manifest sits one level below it. Fixed at compile time, so
/// xtask works from any directory.
fn workspace_root() -> Result<PathBuf> {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .context("xtask's manifest directory has no parent")
}
