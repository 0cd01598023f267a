//! One trace from attach to report: the event loop that keeps the exit ring buffer drained,
//! watches for the end (duration, signals, the command or the targets exiting), then detaches
//! and takes the final snapshot.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::{
    attach::{self, Limits, Maps, Occupancy, Tracer},
    cgroup,
    collect::{Collector, Snapshot},
    kernel_offsets,
    launch::RunningChild,
    plan::{self, Hook, Plan, Scope},
    privileges, procfs, tracefs,
};

/// How often exit records are drained and process names refreshed.
pub const TICK: Duration = Duration::from_millis(100);
/// Set in the environment to N, the N-th tick panics (a test hook; see tests/cleanup.rs).
pub const PANIC_TEST_HOOK: &str = "ZEROCOPY_TRACE_TEST_PANIC";
/// Process names are learned every this many ticks (1 s).
const NAME_REFRESH_TICKS: u64 = 10;

/// Which processes to count.
#[derive(Clone, Debug, Default)]
pub struct Targets {
    pub pids: Vec<u32>,
    pub comms: Vec<String>,
    /// A cgroup v2 directory: every process in it or below it.
    pub cgroup: Option<std::path::PathBuf>,
    pub follow_children: bool,
}

impl Targets {
    fn filtered(&self) -> bool {
        !self.pids.is_empty() || !self.comms.is_empty() || self.cgroup.is_some()
    }
}

/// How the kernel side is set up.
#[derive(Clone, Copy, Debug)]
pub struct TraceOptions {
    /// `None`: the default for this machine's CPU count.
    pub max_processes: Option<u32>,
    pub hook: Hook,
}

/// Why the trace ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum End {
    Duration,
    Signal(&'static str),
    /// The command of `run` exited with this status.
    CommandExited(u8),
    /// Every process named by --pid is gone.
    TargetsGone,
}

/// The finished trace.
pub struct Outcome {
    pub snapshot: Snapshot,
    pub elapsed: Duration,
    pub end: End,
    pub not_covered: Vec<&'static str>,
    /// Entries left in the kernel maps when the trace ended.
    pub occupancy: Occupancy,
}

/// The signals that end a trace. Installed before attaching, so a Ctrl-C that arrives while
/// the programs load is kept for the loop instead of killing the agent without a report.
pub struct Signals {
    interrupt: Signal,
    terminate: Signal,
    hangup: Signal,
}

impl Signals {
    /// Must be called inside the runtime.
    pub fn install() -> Result<Signals> {
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            terminate: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            hangup: signal(SignalKind::hangup()).context("installing the SIGHUP handler")?,
        })
    }

    /// Waits for the next of them and names it (for loops other than `run`: the dashboard).
    pub async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
            _ = self.hangup.recv() => "SIGHUP",
        }
    }
}

/// An attached trace, not yet running its loop.
pub struct Session {
    tracer: Tracer,
    maps: Maps,
    plan: Plan,
    targets: Targets,
    collector: Collector,
    ticks: u64,
    /// Read every counter at this interval, as the dashboard does (the bench measures it).
    refresh: Option<Duration>,
}

fn possible_cpus() -> Result<u32> {
    let n = aya::util::nr_cpus().map_err(|(what, e)| anyhow::Error::new(e).context(what))?;
    Ok(n as u32)
}

/// Checks privileges and tracefs, plans, loads and attaches, and registers the targets.
/// `extra_pid` is the stopped child of `run`, registered before it may run.
pub fn start(targets: Targets, extra_pid: Option<u32>, options: &TraceOptions) -> Result<Session> {
    privileges::check()?;
    let tracefs = tracefs::locate_or_mount()?;
    let mut pids = resolve_pids(&targets.pids)?;
    for name in &targets.comms {
        let matching: Vec<u32> = procfs::all_processes()
            .into_iter()
            .filter(|(pid, info)| info.comm == *name && info.tgid == *pid)
            .map(|(pid, _)| pid)
            .collect();
        if matching.is_empty() {
            log::info!("no process named {name:?} yet: it is traced from its exec on");
        }
        pids.extend(matching);
    }
    pids.extend(extra_pid);
    let mut collector = Collector::default();
    if let Some(pid) = extra_pid {
        // Forked by us before attach: the kernel never saw that fork.
        collector.remember_parent(pid, std::process::id());
    }
    let scope = Scope {
        filtered: targets.filtered() || extra_pid.is_some(),
        follow_children: targets.follow_children,
        comms: targets.comms.clone(),
        cgroup: targets.cgroup.as_deref().map(cgroup::resolve).transpose()?,
        hook: options.hook,
    };
    let cpus = possible_cpus()?;
    let plan = plan_here(&tracefs, &scope, cpus)?;
    let max_processes = options
        .max_processes
        .unwrap_or_else(|| attach::default_max_processes(cpus));
    let (tracer, mut maps) = attach::attach(&plan, Limits::for_processes(max_processes))?;
    for pid in pids {
        maps.traced.insert(pid, 1, 0).with_context(|| {
            format!("registering pid {pid} (more targets than --max-processes?)")
        })?;
    }
    // Attached and registered: from here on the agent only reads and updates maps.
    privileges::keep_only_bpf()?;
    // Parsing the kernel's BTF (aya's and ours) took some megabytes that are free now; hand
    // them back so a long trace's memory starts from what it really uses.
    // SAFETY: malloc_trim only releases free heap memory.
    unsafe { libc::malloc_trim(0) };
    log::info!(
        "attached {} syscalls; BPF program ids {:?}",
        plan.covered.len(),
        tracer.program_ids
    );
    Ok(Session {
        tracer,
        maps,
        plan,
        targets,
        collector,
        ticks: 0,
        refresh: None,
    })
}

/// Plans a trace of `scope` on this kernel: its tracepoint formats, its BTF, its CPUs.
fn plan_here(tracefs: &std::path::Path, scope: &Scope, cpus: u32) -> Result<Plan> {
    let plan = plan::plan(
        |category, name| tracefs::read_format(tracefs, category, name),
        scope,
        &kernel_offsets::of_running_kernel(),
        cpus,
    )?;
    if !plan.not_covered.is_empty() {
        log::warn!(
            "this kernel has no tracepoints for {}: those syscalls are not counted",
            plan.not_covered.join(", ")
        );
    }
    Ok(plan)
}

/// Each --pid as its thread group id; an unknown pid is an error.
fn resolve_pids(pids: &[u32]) -> Result<Vec<u32>> {
    pids.iter()
        .map(|&pid| {
            procfs::process_info(pid)
                .map(|info| info.tgid)
                .with_context(|| format!("no such process: {pid}"))
        })
        .collect()
}

impl Session {
    /// Runs until the duration passes, a signal arrives, the command exits, or the targets are
    /// gone; then detaches and returns the final snapshot.
    pub async fn run(
        mut self,
        signals: Signals,
        duration: Option<Duration>,
        command: Option<RunningChild>,
    ) -> Result<Outcome> {
        let started = Instant::now();
        let Signals {
            mut interrupt,
            mut terminate,
            mut hangup,
        } = signals;
        let deadline = async {
            match duration {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(deadline);
        let command_exit = async {
            match command {
                Some(child) => tokio::task::spawn_blocking(move || child.wait()).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(command_exit);
        let mut tick = tokio::time::interval(TICK);
        let watch_pids = self.targets.pids.clone();

        let mut last_refresh = Instant::now();
        let end = loop {
            tokio::select! {
                _ = interrupt.recv() => break End::Signal("SIGINT"),
                _ = terminate.recv() => break End::Signal("SIGTERM"),
                _ = hangup.recv() => break End::Signal("SIGHUP"),
                _ = &mut deadline => break End::Duration,
                status = &mut command_exit => {
                    let status = status.context("waiting for the command")??;
                    break End::CommandExited(status);
                }
                _ = tick.tick() => {
                    self.tick()?;
                    if !watch_pids.is_empty() && !watch_pids.iter().any(|&p| procfs::exists(p)) {
                        break End::TargetsGone;
                    }
                    if let Some(interval) = self.refresh {
                        if last_refresh.elapsed() >= interval {
                            last_refresh = Instant::now();
                            self.snapshot()?;
                        }
                    }
                }
            }
        };
        let elapsed = started.elapsed();
        // Detach first: after this no exit record can be in flight, so draining the ring
        // buffer and then reading the live map counts every process exactly once.
        self.tracer.detach();
        let snapshot = self.collector.snapshot(&mut self.maps)?;
        Ok(Outcome {
            snapshot,
            elapsed,
            end,
            not_covered: self.plan.not_covered.clone(),
            occupancy: self.maps.occupancy(),
        })
    }

    /// The housekeeping of every `TICK`: keeps the exit ring buffer drained and learns the
    /// names of live processes. Loops other than `run` (the dashboard) call it on the same
    /// cadence.
    pub fn tick(&mut self) -> Result<()> {
        self.collector.drain_exits(&mut self.maps.exits);
        self.tracer.flush_kernel_log();
        // Learn names while processes are alive (a process that dies after detach is still
        // reported under its name), but only once a second: walking the map costs a syscall
        // per entry, while draining the ring buffer costs none.
        self.ticks = self.ticks.wrapping_add(1);
        // For the tests that prove a panic leaves nothing attached and the terminal restored:
        // panic at the tick the variable names.
        if let Some(at) = std::env::var(PANIC_TEST_HOOK)
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
        {
            if self.ticks >= at {
                panic!("{PANIC_TEST_HOOK} is set: panicking on purpose while attached");
            }
        }
        if self.ticks % NAME_REFRESH_TICKS == 1 {
            self.collector.learn_names(&self.maps);
        }
        Ok(())
    }

    /// Reads every counter each `interval` while running, like the dashboard.
    pub fn refresh_every(&mut self, interval: Option<Duration>) {
        self.refresh = interval;
    }

    /// Everything counted so far, while staying attached.
    pub fn snapshot(&mut self) -> Result<Snapshot> {
        self.collector.snapshot(&mut self.maps)
    }

    /// Detaches and unloads every program now (dropping the session would too, later).
    pub fn detach(&mut self) {
        self.tracer.detach();
    }
}

/// Empty programs on the hooks `hook` uses, until SIGINT or SIGTERM: what no program doing
/// work on those hooks can cost less than (the benchmark's floor).
pub async fn floor(hook: Hook, mut signals: Signals) -> Result<()> {
    privileges::check()?;
    let tracefs = tracefs::locate_or_mount()?;
    let scope = Scope {
        hook,
        ..Scope::default()
    };
    let plan = plan_here(&tracefs, &scope, possible_cpus()?)?;
    let mut tracer = attach::attach_floor(&plan)?;
    log::info!(
        "attached empty programs ({:?} hook); BPF program ids {:?}",
        plan.hook,
        tracer.program_ids
    );
    tokio::select! {
        _ = signals.interrupt.recv() => {}
        _ = signals.terminate.recv() => {}
    }
    tracer.detach();
    Ok(())
}
