//! The bench's passes: the timed rounds, the BPF stats pass and the churn session, and the
//! document they make.

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use dev_support::apt::Apt;

use crate::churn::{self, Churn};
use crate::report::{self, Pass, Prog, Run, Session};
use crate::tracers::{self, ReportTo, Running, Tools, Tracer};
use crate::workloads::{self, Env, Sizes, Workload};
use crate::{bpftrace, goals, process, procfs, render, wrk};

/// Runs of each tracer in a full bench. Seven, not five: a server's throughput moves by
/// several points from round to round on a small VM, and with five rounds the empty floor's
/// median nginx loss ranged from -2.9 % to +6.5 % between two runs of the same code.
const DEFAULT_RUNS: usize = 7;

pub struct Options {
    /// Rounds (runs of each tracer); default 5, or 1 with `quick`.
    pub runs: Option<usize>,
    /// Tiny sizes, for a smoke test.
    pub quick: bool,
    /// Short-lived processes of the churn session; default 1 000 000, or 10 000 with `quick`.
    pub churn: Option<u64>,
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
    bpftrace_exit_only: String,
    bpftrace_enter_exit: String,
    notes: &'a [String],
    summary: Vec<report::Row>,
    goals: &'a [goals::Goal],
    programs: &'a [Prog],
    churn: Option<&'a Churn>,
    sessions: &'a [Session],
    runs: &'a [Run],
}

/// Runs the whole bench with `agent` (built with the `bench` feature) and writes its results
/// under `results`.
pub fn bench(agent: PathBuf, out_dir: &Path, options: Options) -> Result<()> {
    if !is_root() {
        bail!("the bench attaches BPF programs: run `cargo xtask bench` as root");
    }
    let rounds = options
        .runs
        .unwrap_or(if options.quick { 1 } else { DEFAULT_RUNS });
    let mut sizes = if options.quick {
        Sizes::quick()
    } else {
        Sizes::full()
    };
    if let Some(n) = options.churn {
        sizes.churn_exits = n;
    }
    let scratch = out_dir.join("tmp");
    std::fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;

    let mut notes = vec![
        "zerocopy-trace rows are `report` mode (exit records drained every 100 ms, names learned \
         every 1 s); `1s refresh` also reads every counter each second, as the dashboard does"
            .to_owned(),
        "bpftrace exit-only is the peer (one exit program per syscall, as its users write \
         these counters); bpftrace enter+exit counts a call only when its enter was seen"
            .to_owned(),
        format!(
            "perf trace runs the storm only, at 1/{} size, compared per syscall",
            tracers::PERF_STORM_SHRINK
        ),
        format!(
            "nginx: 1 worker, sendfile on, loopback; wrk -t{} -c{} -d{}s per run",
            wrk::THREADS,
            wrk::CONNECTIONS,
            sizes.wrk_seconds
        ),
    ];
    let tools = Tools::find(agent, &mut Apt::default(), &mut notes);
    let env = workloads::prepare(&scratch, sizes, tools.server())?;
    let tracers: Vec<Tracer> = Tracer::ALL
        .into_iter()
        .filter(|&t| tools.available(t))
        .collect();

    eprintln!("bench: bench warm-up (untimed)");
    for workload in Workload::ALL.into_iter().filter(|&w| env.has(w)) {
        if workload != Workload::Many {
            run_workload(&env, workload, Tracer::None, None, 0)?;
        }
    }

    let started = Instant::now();
    let mut runs = Vec::new();
    let mut sessions = Vec::new();
    for round in 0..rounds {
        for tracer in round_order(&tracers, round) {
            eprintln!(
                "bench: bench round {}/{rounds}: {} ({:.0} s so far)",
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
    let programs = stats_pass(&env, &tools, &scratch, &tracers, &mut sessions, &mut notes)?;
    let churn = churn_pass(
        &tools,
        &scratch,
        sizes.churn_exits,
        &mut sessions,
        &mut notes,
    )?;

    let summary = report::rows(&runs);
    let goals = goals::goals(&runs, &sessions, Some(&churn));
    println!(
        "{}",
        render::render(&render::Tables {
            rows: &summary,
            sessions: &sessions,
            progs: &programs,
            churn: Some(&churn),
            goals: &goals,
        })
    );
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
        bpftrace_exit_only: bpftrace::exit_only(),
        bpftrace_enter_exit: bpftrace::enter_exit(),
        notes: &notes,
        summary,
        goals: &goals,
        programs: &programs,
        churn: Some(&churn),
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
        "bench: bench took {:.0} s; results in {}",
        started.elapsed().as_secs_f64(),
        stamped.display()
    );
    Ok(())
}

/// The tracers in `round`'s order: as given in even rounds, reversed in odd ones, so a drift
/// over the bench (a machine warming up, a neighbour's build) weighs on every tracer alike.
fn round_order(tracers: &[Tracer], round: usize) -> Vec<Tracer> {
    let mut order = tracers.to_vec();
    if round % 2 == 1 {
        order.reverse();
    }
    order
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
    let workloads = Workload::ALL
        .into_iter()
        .filter(|&w| tracer.runs(w) && env.has(w));
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
                running.abandon();
                return Err(err);
            }
        }
    }
    Ok((runs, stop(running, Pass::Round(round), notes)))
}

/// Stops a tracer; one that cannot stop in time only loses its own totals (a note says so).
fn stop(running: Running, pass: Pass, notes: &mut Vec<String>) -> Option<Session> {
    let tracer = running.tracer;
    match running.stop() {
        Ok(stopped) => Some(Session {
            pass,
            tracer,
            stopped,
        }),
        Err(err) => {
            let note = format!("{pass:?}: {}: {err:#}", tracer.label());
            eprintln!("bench: warning: {note}");
            notes.push(note);
            None
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
            eprintln!("bench: warning: {prefix} (pid {pid})");
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
    let mut command = env.command(workload, shrink)?;
    let tracer_before = tracer_pid.and_then(procfs::cpu_seconds);
    let started = Instant::now();
    let child = command
        .spawn()
        .with_context(|| format!("starting the {} workload", workload.label()))?;
    let pid = child.id();
    // Reaped by pid with wait4, which also gives the whole tree's CPU.
    drop(child);
    let reaped = process::reap(pid, true)?.context("wait4 returned without a child")?;
    let wall_s = started.elapsed().as_secs_f64();
    workloads::check(workload, &reaped)?;
    let tracer_after = tracer_pid.and_then(procfs::cpu_seconds);
    let served = env.served(workload)?;
    Ok(Run {
        round,
        tracer,
        workload,
        wall_s,
        cpu_s: reaped.cpu_s,
        syscalls: env.syscalls(workload, shrink),
        requests: served.map(|s| s.requests),
        requests_per_s: served.map(|s| s.requests_per_s),
        tracer_cpu_s: tracer_before
            .zip(tracer_after)
            .map(|(before, after)| (after - before).max(0.0)),
    })
}

/// Workloads of the stats pass: the worst case, and the server that matters.
const STATS_WORKLOADS: [Workload; 2] = [Workload::Storm, Workload::Nginx4k];

/// One storm run and one nginx 4 KiB run under each BPF tracer with the kernel's BPF stats on:
/// each program's runs and run time over each.
fn stats_pass(
    env: &Env,
    tools: &Tools,
    scratch: &Path,
    tracers: &[Tracer],
    sessions: &mut Vec<Session>,
    notes: &mut Vec<String>,
) -> Result<Vec<Prog>> {
    let _stats = procfs::BpfStats::enable()?;
    let mut progs = Vec::new();
    for &tracer in tracers.iter().filter(|t| t.has_bpf_programs()) {
        eprintln!("bench: bench BPF stats pass: {}", tracer.label());
        let running = tracers::start(tracer, tools, scratch)?;
        for workload in STATS_WORKLOADS.into_iter().filter(|&w| env.has(w)) {
            let before = procfs::prog_stats(running.pid);
            let run = match run_workload(env, workload, tracer, Some(running.pid), 0) {
                Ok(run) => run,
                Err(err) => {
                    running.abandon();
                    return Err(err);
                }
            };
            let after = procfs::prog_stats(running.pid);
            let units = run.syscalls.or(run.requests).unwrap_or(0);
            // Names while the programs are still loaded.
            for (id, delta) in procfs::prog_delta(&before, &after) {
                progs.push(Prog {
                    tracer,
                    workload,
                    id,
                    name: tools.prog_name(id),
                    run_cnt: delta.run_cnt,
                    run_time_ns: delta.run_time_ns,
                    units,
                });
            }
        }
        sessions.extend(stop(running, Pass::BpfStats, notes));
    }
    Ok(progs)
}

/// The agent at a 1 s refresh (as the dashboard) while `exits` short-lived processes exit.
fn churn_pass(
    tools: &Tools,
    scratch: &Path,
    exits: u64,
    sessions: &mut Vec<Session>,
    notes: &mut Vec<String>,
) -> Result<Churn> {
    let tracer = Tracer::ZeroCopyTraceRefresh;
    eprintln!(
        "bench: bench churn: {exits} short-lived processes under {}",
        tracer.label()
    );
    let untraced = churn::baseline(exits)?;
    let running = tracers::start_with(tracer, tools, scratch, ReportTo::Discard)?;
    let churn = match churn::measure(running.pid, exits, Some(untraced)) {
        Ok(churn) => churn,
        Err(err) => {
            running.abandon();
            return Err(err);
        }
    };
    sessions.extend(stop(running, Pass::Churn, notes));
    Ok(churn)
}

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail and touches no memory.
    unsafe { libc::geteuid() == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_rounds_run_in_reverse() {
        let tracers = [Tracer::None, Tracer::ZeroCopyTrace, Tracer::BpftraceExit];
        assert_eq!(round_order(&tracers, 0), tracers);
        assert_eq!(
            round_order(&tracers, 1),
            [Tracer::BpftraceExit, Tracer::ZeroCopyTrace, Tracer::None]
        );
        assert_eq!(round_order(&tracers, 2), tracers);
        assert!(round_order(&[], 1).is_empty());
    }
}
