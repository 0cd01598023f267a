//! `cargo xtask bench`: what an operator pays for zerocopy-trace, side by side with the tools
//! they would use instead.
//!
//! Rounds alternate the tracers (untraced, zerocopy-trace, empty programs on the same hooks,
//! bpftrace keeping the same counters, perf trace); in each round a tracer is attached once and
//! every workload runs under it, so drift over the bench cancels out of the per-round ratios.
//! A last pass with `kernel.bpf_stats_enabled=1` (off during the timed rounds: the stats cost
//! time of their own) measures each BPF program's run time over one storm run.
//!
//! Layout: `workloads` (what runs), `tracers` (start, attached, stop), `procfs` (CPU, hooks,
//! BPF stats, wait4), `stats` (medians), `report` (summary, goals, table).

mod procfs;
mod report;
mod stats;
mod tracers;
mod workloads;

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::apt::Apt;
use crate::tasks;
use report::{Prog, Run, Session};
use tracers::{Tools, Tracer};
use workloads::{Env, Sizes, Workload};

/// Runs of each tracer in a full bench.
const DEFAULT_RUNS: usize = 5;

pub struct Options {
    /// Rounds (runs of each tracer); default 5, or 1 with `quick`.
    pub runs: Option<usize>,
    /// Tiny sizes, for a smoke test.
    pub quick: bool,
}

/// Everything written to `target/bench/`.
#[derive(Serialize)]
struct Document<'a> {
    unix_time: u64,
    quick: bool,
    rounds: usize,
    kernel: String,
    cpus: usize,
    sizes: Sizes,
    perf_storm_shrink: u64,
    notes: &'a [String],
    summary: Vec<report::Row>,
    goals: Vec<report::Goal>,
    programs: &'a [Prog],
    sessions: &'a [Session],
    runs: &'a [Run],
}

pub fn bench(workspace: &Path, options: Options) -> Result<()> {
    if !is_root() {
        bail!("the bench attaches BPF programs: run `cargo xtask bench` as root");
    }
    let rounds = options
        .runs
        .unwrap_or(if options.quick { 1 } else { DEFAULT_RUNS });
    let sizes = if options.quick {
        Sizes::quick()
    } else {
        Sizes::full()
    };
    let agent = tasks::build(workspace, true)?;
    let out_dir = results_dir(workspace);
    let scratch = out_dir.join("tmp");
    std::fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;

    let mut notes = vec![
        "zerocopy-trace rows are `report` mode (exit records drained every 100 ms, names learned \
         every 1 s); `1s refresh` also reads every counter each second, as the dashboard does"
            .to_owned(),
        format!(
            "perf trace runs the storm only, at 1/{} size, compared per syscall",
            tracers::PERF_STORM_SHRINK
        ),
    ];
    let tools = Tools::find(agent, &mut Apt::default(), &mut notes);
    let env = workloads::prepare(&scratch, sizes)?;
    let tracers: Vec<Tracer> = Tracer::ALL
        .into_iter()
        .filter(|&t| tools.available(t))
        .collect();

    eprintln!("xtask: bench warm-up (untimed)");
    for workload in Workload::ALL {
        if workload != Workload::Many {
            run_workload(&env, workload, Tracer::None, None, 0)?;
        }
    }

    let started = Instant::now();
    let mut runs = Vec::new();
    let mut sessions = Vec::new();
    for round in 0..rounds {
        for &tracer in &tracers {
            eprintln!(
                "xtask: bench round {}/{rounds}: {} ({:.0} s so far)",
                round + 1,
                tracer.label(),
                started.elapsed().as_secs_f64()
            );
            warn_other_tracers(&mut notes);
            let (mut block, session) =
                run_block(&env, &tools, &scratch, tracer, round, &mut notes)?;
            runs.append(&mut block);
            sessions.extend(session);
        }
    }
    let programs = stats_pass(&env, &tools, &scratch, &tracers, &mut sessions)?;

    let summary = report::rows(&runs);
    let goals = report::goals(&runs, &sessions);
    println!("{}", report::render(&summary, &sessions, &programs, &goals));
    for note in &notes {
        println!("note: {note}");
    }

    let unix_time = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let doc = Document {
        unix_time,
        quick: options.quick,
        rounds,
        kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_owned(),
        cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
        sizes,
        perf_storm_shrink: tracers::PERF_STORM_SHRINK,
        notes: &notes,
        summary,
        goals,
        programs: &programs,
        sessions: &sessions,
        runs: &runs,
    };
    let json = serde_json::to_string_pretty(&doc).context("serialising the bench results")?;
    let kind = if options.quick { "quick" } else { "bench" };
    let stamped = out_dir.join(format!("{kind}-{unix_time}.json"));
    for path in [stamped.clone(), out_dir.join("latest.json")] {
        std::fs::write(&path, &json).with_context(|| format!("writing {}", path.display()))?;
    }
    eprintln!(
        "xtask: bench took {:.0} s; results in {}",
        started.elapsed().as_secs_f64(),
        stamped.display()
    );
    Ok(())
}

/// One tracer's turn in a round: attach, every workload it runs, detach.
fn run_block(
    env: &Env,
    tools: &Tools,
    scratch: &Path,
    tracer: Tracer,
    round: usize,
    notes: &mut Vec<String>,
) -> Result<(Vec<Run>, Option<Session>)> {
    let workloads = Workload::ALL.into_iter().filter(|&w| tracer.runs(w));
    if tracer == Tracer::None {
        let runs = workloads
            .map(|w| run_workload(env, w, tracer, None, round))
            .collect::<Result<_>>()?;
        return Ok((runs, None));
    }
    let running = tracers::start(tracer, tools, scratch)?;
    let mut runs = Vec::new();
    for workload in workloads {
        match run_workload(env, workload, tracer, Some(running.pid), round) {
            Ok(run) => runs.push(run),
            Err(err) => {
                // Detach before failing: a tracer left attached would slow everything after.
                let _ = running.stop();
                return Err(err);
            }
        }
    }
    // The runs are measured; a tracer that cannot stop in time only loses its own totals.
    match running.stop() {
        Ok(stopped) => Ok((
            runs,
            Some(Session {
                round: Some(round),
                tracer,
                stopped,
            }),
        )),
        Err(err) => {
            let note = format!("round {}: {}: {err:#}", round + 1, tracer.label());
            eprintln!("xtask: warning: {note}");
            notes.push(note);
            Ok((runs, None))
        }
    }
}

/// Hooks held by anyone but the bench: at least this many make a process another tracer.
const OTHER_TRACER_HOOKS: usize = 4;

/// Notes (once each) every other process holding tracing hooks: its programs run in every
/// run, traced or not, and shrink the differences the bench measures.
fn warn_other_tracers(notes: &mut Vec<String>) {
    for (pid, cmdline) in procfs::other_tracers(&[], OTHER_TRACER_HOOKS) {
        // Program and first argument: a test suite's many runs make one note.
        let what: Vec<&str> = cmdline.split_whitespace().take(2).collect();
        let what = what.join(" ");
        let prefix = format!("another tracer was attached during the bench: `{what}`");
        if !notes.iter().any(|n| n.starts_with(&prefix)) {
            eprintln!("xtask: warning: {prefix} (pid {pid})");
            notes.push(format!("{prefix} (pid {pid} and maybe others)"));
        }
    }
}

/// Runs `workload` to the end; `tracer_pid` is the attached tracer, whose CPU is read around it.
fn run_workload(
    env: &Env,
    workload: Workload,
    tracer: Tracer,
    tracer_pid: Option<u32>,
    round: usize,
) -> Result<Run> {
    let shrink = tracer.storm_shrink();
    let mut command = env.command(workload, shrink);
    let tracer_before = tracer_pid.and_then(procfs::cpu_seconds);
    let started = Instant::now();
    let child = command
        .spawn()
        .with_context(|| format!("starting the {} workload", workload.label()))?;
    let pid = child.id();
    // Reaped by pid with wait4, which also gives the whole tree's CPU.
    drop(child);
    let reaped = procfs::reap(pid, true)?.context("wait4 returned without a child")?;
    let wall_s = started.elapsed().as_secs_f64();
    workloads::check(workload, &reaped)?;
    let tracer_after = tracer_pid.and_then(procfs::cpu_seconds);
    Ok(Run {
        round,
        tracer,
        workload,
        wall_s,
        cpu_s: reaped.cpu_s,
        syscalls: env.syscalls(workload, shrink),
        tracer_cpu_s: tracer_before
            .zip(tracer_after)
            .map(|(before, after)| (after - before).max(0.0)),
    })
}

/// One storm run under each BPF tracer with the kernel's BPF stats on: each program's runs and
/// run time over it.
fn stats_pass(
    env: &Env,
    tools: &Tools,
    scratch: &Path,
    tracers: &[Tracer],
    sessions: &mut Vec<Session>,
) -> Result<Vec<Prog>> {
    let _stats = procfs::BpfStats::enable()?;
    let mut progs = Vec::new();
    for &tracer in tracers.iter().filter(|t| t.has_bpf_programs()) {
        eprintln!("xtask: bench BPF stats pass: {}", tracer.label());
        let running = tracers::start(tracer, tools, scratch)?;
        let before = procfs::prog_stats(running.pid);
        let run = run_workload(env, Workload::Storm, tracer, Some(running.pid), 0);
        let after = procfs::prog_stats(running.pid);
        // Names while the programs are still loaded.
        let named: Vec<_> = procfs::prog_delta(&before, &after)
            .into_iter()
            .map(|(id, delta)| (id, tools.prog_name(id), delta))
            .collect();
        let stopped = running.stop()?;
        let syscalls = run?.syscalls.unwrap_or(0);
        for (id, name, delta) in named {
            progs.push(Prog {
                tracer,
                id,
                name,
                run_cnt: delta.run_cnt,
                run_time_ns: delta.run_time_ns,
                syscalls,
            });
        }
        sessions.push(Session {
            round: None,
            tracer,
            stopped,
        });
    }
    Ok(progs)
}

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail and touches no memory.
    unsafe { libc::geteuid() == 0 }
}

/// Where the results go: `target/bench/` (never into the repository).
fn results_dir(workspace: &Path) -> PathBuf {
    workspace.join("target").join("bench")
}
