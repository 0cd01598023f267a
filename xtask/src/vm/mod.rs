//! `cargo xtask test --kernel SERIES`: the privileged suites inside a QEMU guest of one of
//! Debian's kernels, over the host's root filesystem, with as many possible CPUs as asked.
//!
//! In order: the host's tools (`virtme`), the kernel package (`kernels`), the test binaries
//! built on the host (`suites`), the guest's script (`guest`), one boot, then what the guest
//! left (`results`), printed as the host run prints its suites. Everything lives under
//! `target/vm/`; a run's files under `target/vm/runs/<series>-<N>cpus/`.

mod guest;
mod kernels;
mod results;
mod suites;
mod virtme;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use dev_support::apt::Apt;

use crate::build::{prepare, AGENT};
use crate::test_programs;

pub use kernels::Series;
use results::Report;
use suites::Forwarded;

/// What `--kernel` and its options asked for.
#[derive(Debug)]
pub struct Options {
    pub series: Series,
    pub possible_cpus: u16,
    pub memory: String,
    pub timeout_minutes: u64,
    /// `--suites`, empty when not given.
    pub suites: Vec<String>,
}

/// The guest's memory unless `--memory` says otherwise.
pub const DEFAULT_MEMORY: &str = "4G";

/// Past this the VM is stopped and the run fails. The three default suites take about 11
/// minutes under TCG with `--release` and about 25 in a debug build (see the README); this
/// leaves room for a slower machine or many possible CPUs. CI passes its own.
pub const DEFAULT_TIMEOUT_MINUTES: u64 = 45;

/// Checks a `--memory` value as QEMU's `-m` takes it: a whole number of MiB or GiB.
pub fn parse_memory(text: &str) -> Result<String, String> {
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let valid = matches!(unit, "M" | "G")
        && !number.is_empty()
        && number.bytes().all(|b| b.is_ascii_digit())
        && number.parse::<u64>().is_ok_and(|n| n > 0);
    if valid {
        Ok(text.to_owned())
    } else {
        Err(format!("`{text}` is not a size such as 4G or 3072M"))
    }
}

/// A run's directory: `target/vm/runs/<series>-<N>cpus`.
fn run_dir(workspace: &Path, series: &Series, possible_cpus: u16) -> PathBuf {
    kernels::vm_dir(workspace)
        .join("runs")
        .join(format!("{}-{possible_cpus}cpus", series.name))
}

/// The whole run; an error if any suite failed, did not finish, or the guest never got to the
/// suites.
pub fn test(workspace: &Path, options: &Options, extra: &[String]) -> Result<()> {
    let forwarded = Forwarded::split(extra);
    let names = suites::choose(&options.suites, &forwarded.tests)?;
    let dir = run_dir(workspace, &options.series, options.possible_cpus);
    guest::check_visible([workspace, dir.as_path()]).map_err(anyhow::Error::msg)?;
    let mut apt = Apt::default();
    prepare(workspace, &mut apt)?;
    // The programs the suites drive, on the host's filesystem the guest boots from.
    test_programs::ensure(&mut apt)?;
    let venv_bin = virtme::ensure(workspace, &mut apt)?;
    let kernel = kernels::fetch(workspace, &options.series)?;
    let binaries = suites::build(workspace, &names, &forwarded)?;

    guest::check_visible(binaries.iter().map(|s| s.binary.as_path()))
        .map_err(anyhow::Error::msg)?;
    if dir.exists() {
        fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let results_dir = dir.join("results");
    // Outside the results, which each boot starts without; the guest reads it from the host's
    // filesystem like everything else.
    let script = dir.join("guest.sh");
    let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    let binary_args = forwarded.binary_args();
    // target/<profile>/deps/<suite>-<hash> -> target/<profile>/zerocopy-trace
    let agent = binaries
        .first()
        .and_then(|suite| suite.binary.parent()?.parent())
        .map(|profile| profile.join(AGENT))
        .context("no test binary built")?;
    fs::write(
        &script,
        guest::script(&guest::Plan {
            results: &results_dir,
            workdir: &workspace.join(AGENT),
            path: &path,
            suites: &binaries,
            agent: &agent,
            args: &binary_args,
        }),
    )
    .with_context(|| format!("writing {}", script.display()))?;

    let console = dir.join("console.log");
    eprintln!(
        "xtask: booting {} with {} possible CPUs ({} online) under TCG to run {}; the guest's \
         console goes to {}, each suite's output to {}/<suite>.out",
        kernel.release,
        options.possible_cpus,
        virtme::ONLINE_CPUS,
        names.join(", "),
        console.display(),
        results_dir.display()
    );
    let started = Instant::now();
    let mut boot = 1;
    let (ended, report) = loop {
        if results_dir.exists() {
            fs::remove_dir_all(&results_dir)
                .with_context(|| format!("removing {}", results_dir.display()))?;
        }
        fs::create_dir_all(&results_dir)
            .with_context(|| format!("creating {}", results_dir.display()))?;
        let scratch = dir.join("scratch.img");
        virtme::scratch_disk(&scratch)?;
        let ended = virtme::run(
            &venv_bin,
            &virtme::Boot {
                vmlinuz: &kernel.vmlinuz,
                memory: &options.memory,
                possible_cpus: options.possible_cpus,
                rwdir: &results_dir,
                scratch: &scratch,
                script: &script,
            },
            options.timeout_minutes,
            &console,
        )?;
        // Up to 8 GiB of what the tests wrote: nothing reads it again.
        let _ = fs::remove_file(&scratch);
        let report = results::read(&results_dir, &names);
        let never_started = ended == virtme::Ended::Exited && report.never_started();
        let patching_race = fs::read_to_string(&console)
            .map(|text| tcg_patching_race(&text))
            .unwrap_or(false);
        if !((never_started || patching_race) && boot < BOOTS) {
            break (ended, report);
        }
        // QEMU's software CPU racing the kernel's live code patching, not the tracer: with
        // several vCPUs, one may still run the int3 that text_poke_bp() put in a static branch
        // after the patch is done, and the kernel takes it for a real breakpoint and oopses.
        // Seen while booting 6.18 (in sched_clock_cpu) and once while the agent attached its
        // tracepoints (in syscall_trace_enter, whose static branch attaching flips). Boot
        // again; the suites run from the start.
        let kept = dir.join(format!("console-boot{boot}.log"));
        let _ = fs::rename(&console, &kept);
        print_console_tail(&kept, 12);
        eprintln!(
            "xtask: boot {boot} of {BOOTS} {} (console in {}); booting again",
            if patching_race {
                "hit TCG's race with the kernel's code patching (an int3 Oops)"
            } else {
                "ended before the guest's script began"
            },
            kept.display()
        );
        boot += 1;
    };
    let wall = started.elapsed().as_secs();

    print_outputs(&report);
    if let Ok(words) = fs::read_to_string(results_dir.join(guest::files::AGENT)) {
        for line in words.lines() {
            eprintln!("xtask: the agent in the guest: {line}");
        }
    }
    let verdict = judge(&report, &ended, options, &kernel.release);
    eprintln!(
        "xtask: the {} guest ran {wall} s in all (boot, suites, shutdown; {boot} boot(s)); files \
         in {}",
        kernel.release,
        dir.display()
    );
    if verdict.is_err() && !report.done {
        print_console_tail(&console, 40);
    }
    verdict
}

/// Boots before giving up on a guest that dies before its script begins, or by TCG's race
/// with the kernel's code patching.
const BOOTS: u32 = 3;

/// The guest's console shows the kernel oopsing on an int3 trap: under TCG, a vCPU running a
/// breakpoint that the kernel's live code patching had already taken out again (a real
/// breakpoint is never set in a guest here: no kprobes, no debugger).
fn tcg_patching_race(console: &str) -> bool {
    console.contains("Oops: int3")
}

/// Each suite's output, as `cargo test` would have shown it on the host.
fn print_outputs(report: &Report) {
    for suite in &report.suites {
        if let Some(output) = &suite.output {
            println!("\n===== {} (in the guest) =====\n{output}", suite.name);
        }
    }
}

/// The summary, then `Err` unless every suite passed in a guest that was what was asked for.
fn judge(report: &Report, ended: &virtme::Ended, options: &Options, release: &str) -> Result<()> {
    let mut problems = Vec::new();
    match &report.guest {
        Some(info) => {
            eprintln!(
                "xtask: guest: kernel {}, {} online CPUs, possible {} ({} CPUs), /tmp {}",
                info.kernel,
                info.online,
                info.possible,
                info.possible_count()
                    .map_or("?".to_owned(), |n| n.to_string()),
                info.tmp
            );
            if info.kernel != release {
                problems.push(format!(
                    "the guest ran kernel {}, not {release}",
                    info.kernel
                ));
            }
            if info.possible_count() != Some(u32::from(options.possible_cpus)) {
                problems.push(format!(
                    "the guest has possible CPUs {}, not {}",
                    info.possible, options.possible_cpus
                ));
            }
        }
        None => problems.push("the guest never described itself (did it boot?)".to_owned()),
    }
    if let Some(why) = &report.setup_failed {
        problems.push(format!("readying the guest failed: {why}"));
    }
    if *ended == virtme::Ended::TimedOut {
        problems.push(format!(
            "the guest ran past --vm-timeout {} min and was stopped",
            options.timeout_minutes
        ));
    } else if !report.done && report.setup_failed.is_none() {
        problems.push("the guest ended before its script did".to_owned());
    }
    let mut failed = Vec::new();
    for suite in &report.suites {
        eprintln!(
            "xtask: {release}: {}: {}",
            suite.name,
            suite.outcome.describe()
        );
        if !suite.outcome.passed() {
            failed.push(suite.name.as_str());
        }
    }
    if !failed.is_empty() {
        problems.push(format!("suites failed: {}", failed.join(", ")));
    }
    if problems.is_empty() {
        eprintln!(
            "xtask: {release} with {} possible CPUs: every suite passed",
            options.possible_cpus
        );
        Ok(())
    } else {
        bail!(
            "kernel {release} with {} possible CPUs: {}",
            options.possible_cpus,
            problems.join("; ")
        )
    }
}

/// The end of the guest's console, where a panic or a hung boot shows.
fn print_console_tail(console: &Path, count: usize) {
    if let Ok(text) = fs::read_to_string(console) {
        let lines: Vec<&str> = text.lines().collect();
        let tail = &lines[lines.len().saturating_sub(count)..];
        eprintln!(
            "xtask: the last lines of {}:\n{}",
            console.display(),
            tail.join("\n")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_int3_oops_is_tcg_s_patching_race_and_other_panics_are_not() {
        let race = "[  140.611117] Oops: int3: 0000 [#1] SMP NOPTI\n\
                    [  140.612017] RIP: 0010:syscall_trace_enter+0xd4/0x1a0\n";
        assert!(tcg_patching_race(race));
        let bug = "[   12.0] BUG: kernel NULL pointer dereference, address: 0000000000000008\n\
                   [   12.1] Oops: Oops: 0000 [#1] SMP NOPTI\n";
        assert!(!tcg_patching_race(bug));
        assert!(!tcg_patching_race(""));
    }

    #[test]
    fn memory_is_a_whole_number_of_mib_or_gib() {
        assert_eq!(parse_memory("4G").unwrap(), "4G");
        assert_eq!(parse_memory("3072M").unwrap(), "3072M");
        for bad in ["", "G", "4", "4g", "0G", "-1G", "1.5G", "4GB"] {
            assert!(parse_memory(bad).is_err(), "{bad}");
        }
    }

    fn report(possible: &str, done: bool, status: Option<i32>) -> Report {
        Report {
            guest: Some(results::GuestInfo {
                kernel: "6.18.15+deb13-amd64".to_owned(),
                online: "2".to_owned(),
                possible: possible.to_owned(),
                tmp: "ext4".to_owned(),
            }),
            setup_failed: None,
            done,
            suites: vec![results::SuiteResult {
                name: "exact_bytes".to_owned(),
                outcome: match status {
                    Some(status) => results::Outcome::Ended {
                        status,
                        seconds: Some(1),
                        counts: None,
                    },
                    None => results::Outcome::Unfinished,
                },
                output: None,
            }],
        }
    }

    fn options(possible_cpus: u16) -> Options {
        Options {
            series: "6.18".parse().unwrap(),
            possible_cpus,
            memory: DEFAULT_MEMORY.to_owned(),
            timeout_minutes: 5,
            suites: Vec::new(),
        }
    }

    fn verdict(report: &Report, ended: virtme::Ended, possible_cpus: u16) -> Result<()> {
        judge(
            report,
            &ended,
            &options(possible_cpus),
            "6.18.15+deb13-amd64",
        )
    }

    #[test]
    fn a_run_passes_only_when_every_suite_passed_in_the_guest_asked_for() {
        let exited = || virtme::Ended::Exited;
        assert!(verdict(&report("0-15", true, Some(0)), exited(), 16).is_ok());

        let failed = verdict(&report("0-15", true, Some(101)), exited(), 16).unwrap_err();
        assert!(
            failed.to_string().contains("suites failed: exact_bytes"),
            "{failed}"
        );

        let wrong_cpus = verdict(&report("0-1", true, Some(0)), exited(), 16).unwrap_err();
        assert!(
            wrong_cpus.to_string().contains("possible CPUs 0-1, not 16"),
            "{wrong_cpus}"
        );

        let timed_out =
            verdict(&report("0-15", false, None), virtme::Ended::TimedOut, 16).unwrap_err();
        let text = timed_out.to_string();
        assert!(text.contains("--vm-timeout 5 min"), "{text}");
        assert!(text.contains("suites failed: exact_bytes"), "{text}");

        let crashed = verdict(&report("0-15", false, Some(0)), exited(), 16).unwrap_err();
        assert!(
            crashed.to_string().contains("ended before its script did"),
            "{crashed}"
        );

        let mut no_guest = report("0-15", true, Some(0));
        no_guest.guest = None;
        no_guest.setup_failed = Some("mounting /dev/vda (ext4) on /tmp".to_owned());
        let text = verdict(&no_guest, exited(), 16).unwrap_err().to_string();
        assert!(text.contains("never described itself"), "{text}");
        assert!(
            text.contains("readying the guest failed: mounting /dev/vda"),
            "{text}"
        );
    }

    #[test]
    fn each_kernel_and_cpu_count_has_its_own_run_directory() {
        let series: Series = "6.18".parse().unwrap();
        assert_eq!(
            run_dir(Path::new("/ws"), &series, 255),
            Path::new("/ws/target/vm/runs/6.18-255cpus")
        );
    }
}
