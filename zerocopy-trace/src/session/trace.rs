//! An attached trace: the programs loaded and attached for the resolved targets, the maps they
//! count into, and the collector that reads them. What can be checked before anything starts
//! is (`Trace::check`); starting one then gives up every privilege but what reading the maps
//! needs (`privileges::drop_after_attach`); finishing one detaches first, then takes the final
//! snapshot.

use std::time::Duration;

use anyhow::{Context, Result};

use super::targets::{self, Targets};
use crate::{
    collect::{Collector, Retention},
    kernel::{
        attach::{self, Limits, Tracer},
        maps::Maps,
        plan::{self, Hook},
        preflight,
    },
    snapshot::{Occupancy, Snapshot},
    system::{
        containers::{names::NameCache, Sources},
        privileges::{self, Account},
        procfs,
    },
};

/// How long the final snapshot waits for the container runtimes to name containers it was
/// the first to see: one relisting and one answer.
const FINAL_NAMES_WAIT: Duration = Duration::from_secs(3);

/// Process names are learned at least every this many ticks (1 s).
const NAME_REFRESH_TICKS: u64 = 10;

/// The log target of the one line that says the trace is attached, and what it covers: shown
/// by default (`main`'s default filter), so scripts can wait for it.
pub const ATTACHED_LOG_TARGET: &str = "zerocopy_trace::attached";

/// Scans of /proc for the descendants of `--pid` processes: each finds the children forked
/// before their parent was registered (the kernel follows those forked after), so the scans
/// end when one finds none new, or after this many.
const DESCENDANT_SCANS: usize = 4;

/// How the kernel side is set up, and where container names come from.
#[derive(Clone, Debug)]
pub struct TraceOptions {
    /// `None`: the default (`attach::DEFAULT_MAX_PROCESSES`).
    pub max_processes: Option<u32>,
    pub hook: Hook,
    /// Who a root-started agent becomes once attached (`None`: an agent not started as root
    /// keeps its user).
    pub account: Option<Account>,
    /// Install the seccomp allow-list once attached.
    pub seccomp: bool,
    /// Where to ask for container names (and for `--container NAME`, `--pod NAME`).
    pub names: Sources,
}

pub struct Trace {
    tracer: Tracer,
    maps: Maps,
    collector: Collector,
    /// Syscalls this kernel has no tracepoints for.
    not_covered: Vec<&'static str>,
    ticks: u64,
    /// The tick of the last walk of the live map (a snapshot, or `learn_names`).
    last_walk: u64,
}

/// A finished trace: everything counted, and the state the kernel maps were left in.
pub struct Finished {
    pub snapshot: Snapshot,
    pub not_covered: Vec<&'static str>,
    /// Entries left in the kernel maps when the trace ended.
    pub occupancy: Occupancy,
}

/// Shows the runs the kernel skipped among what was dropped (calls only: what a skipped run
/// would have counted is unknown).
fn count_missed_runs(snapshot: &mut Snapshot, missed: u64) {
    if let Some(slot) = snapshot
        .dropped
        .get_mut(zerocopy_trace_common::drop_reason::MISSED_RUNS as usize)
    {
        slot.calls = missed;
    }
}

/// Registers the running descendants of `roots` (registered already) with the kernel filter;
/// returns them. The agent and what it started are none of them (`--pid $$` of the shell that
/// started it).
fn register_descendants(maps: &mut Maps, roots: &[u32]) -> Result<Vec<u32>> {
    let agent = std::process::id();
    let mut registered = roots.to_vec();
    let mut added = Vec::new();
    for _ in 0..DESCENDANT_SCANS {
        let mut processes = procfs::parents();
        processes.retain(|&(pid, _)| pid != agent);
        let new = targets::descendants(&registered, &processes);
        if new.is_empty() {
            break;
        }
        for &pid in &new {
            maps.traced.insert(pid, 1, 0).with_context(|| {
                format!("registering pid {pid}, a descendant (more than --max-processes?)")
            })?;
        }
        registered.extend(&new);
        added.extend(new);
    }
    Ok(added)
}

/// The maps' sizes `--max-processes` asks for, if the machine has the memory for them.
fn map_limits(options: &TraceOptions) -> Result<Limits> {
    let processes = options
        .max_processes
        .unwrap_or(attach::DEFAULT_MAX_PROCESSES);
    let limits = Limits::for_processes(processes);
    limits.check_kernel_memory(processes, procfs::mem_available())?;
    Ok(limits)
}

impl Trace {
    /// What can be checked before anything is attached or started (the command of `run`
    /// included): the privileges to trace and tracefs.
    pub fn check(options: &TraceOptions) -> Result<()> {
        preflight::check()?;
        map_limits(options)?;
        Ok(())
    }

    /// Checks privileges and tracefs, plans, loads and attaches, and registers the targets.
    /// `extra_pid` is the stopped child of `run`, registered before it may run.
    pub fn start(
        targets: &Targets,
        extra_pid: Option<u32>,
        options: &TraceOptions,
        retention: Retention,
    ) -> Result<Trace> {
        let ready = preflight::check()?;
        let resolved = targets.resolve(extra_pid, options.hook, &options.names)?;
        let mut collector = Collector::new(retention, NameCache::new(options.names.clone()));
        if let Some(pid) = extra_pid {
            // Forked by us before attach: the kernel never saw that fork.
            collector.remember_parent(pid, std::process::id());
        }
        let plan = plan::for_this_kernel(&ready.tracefs, &resolved.scope, ready.cpus)?;
        let (tracer, mut maps) = attach::attach(&plan, map_limits(options)?)?;
        // Read while /proc/self/fdinfo is still ours to read (a process that changes its user
        // becomes undumpable, and its /proc files root's).
        let map_bytes = procfs::own_bpf_map_bytes();
        for &pid in &resolved.pids {
            maps.traced.insert(pid, 1, 0).with_context(|| {
                format!("registering pid {pid} (more targets than --max-processes?)")
            })?;
        }
        let mut described = resolved.described;
        if !resolved.descendants_of.is_empty() {
            let added = register_descendants(&mut maps, &resolved.descendants_of)?;
            log::info!(
                "--pid: {} running descendant(s) traced too{} (--no-children traces the pids \
                 alone)",
                added.len(),
                if added.is_empty() {
                    String::new()
                } else {
                    format!(": {added:?}")
                }
            );
            described.descendants = added.len();
        }
        // The one process that keeps root's uid, to ask the container runtimes, is started
        // before the agent gives it up.
        collector.start_names_helper();
        // Attached and registered: from here on the agent only reads and updates maps.
        let dropped = privileges::drop_after_attach(options.account)?;
        log::info!(
            "privileges dropped: uid {}, capabilities {}",
            dropped.uid,
            if dropped.kept_bpf {
                "CAP_BPF only (this kernel checks it on every use of a map)"
            } else {
                "none"
            }
        );
        collector.start_container_names();
        // Parsing the kernel's BTF took some megabytes that are free now; hand them back so a
        // long trace's memory starts from what it really uses.
        // SAFETY: malloc_trim only releases free heap memory.
        unsafe { libc::malloc_trim(0) };
        log::info!(
            target: ATTACHED_LOG_TARGET,
            "attached {} syscalls ({} hook; scope: {}; a process's end told by {}; maps {:.1} \
             MiB of kernel memory); BPF program ids {:?}",
            plan.covered.len(),
            tracer.hook.name(),
            described.describe(),
            plan.process_end.describe(),
            map_bytes as f64 / f64::from(1 << 20),
            tracer.program_ids
        );
        Ok(Trace {
            tracer,
            maps,
            collector,
            not_covered: plan.not_covered,
            ticks: 0,
            // The first tick walks the map.
            last_walk: 0u64.wrapping_sub(NAME_REFRESH_TICKS),
        })
    }

    /// The housekeeping of every tick: keeps the exec and exit ring buffers drained and
    /// learns the names of live processes.
    pub fn tick(&mut self) -> Result<()> {
        self.collector.drain_execs(&mut self.maps.execs);
        self.collector.drain_exits(&mut self.maps.exits);
        self.tracer.flush_kernel_log();
        // Learn names while processes are alive (a process that dies after detach is still
        // reported under its name), but only once a second: walking the map costs a syscall
        // per entry, while draining the ring buffer costs none.
        // A snapshot learns the names of every live process too, so a second walk is skipped
        // when one was taken within the second (every refresh of a dashboard or report).
        self.ticks = self.ticks.wrapping_add(1);
        if self.ticks.wrapping_sub(self.last_walk) >= NAME_REFRESH_TICKS {
            self.collector.learn_names(&self.maps);
            self.last_walk = self.ticks;
        }
        Ok(())
    }

    /// Ticks so far.
    #[cfg_attr(not(feature = "test-hooks"), allow(dead_code))]
    pub fn ticks(&self) -> u64 {
        self.ticks
    }

    /// Everything counted so far, while staying attached.
    pub fn snapshot(&mut self) -> Result<Snapshot> {
        self.last_walk = self.ticks;
        let mut snapshot = self.collector.snapshot(&mut self.maps)?;
        count_missed_runs(&mut snapshot, self.tracer.missed_runs());
        Ok(snapshot)
    }

    /// Detaches, then takes the final snapshot: with no program attached no exit record can be
    /// in flight, so draining the ring buffer and then reading the live map counts every
    /// process exactly once.
    pub fn finish(mut self) -> Result<Finished> {
        // Read before detach: the counts go with the programs.
        let missed = self.tracer.missed_runs();
        self.tracer.detach();
        let mut snapshot = self.collector.snapshot(&mut self.maps)?;
        count_missed_runs(&mut snapshot, missed);
        // Containers first seen by this snapshot get their names if a runtime answers soon.
        self.collector
            .name_containers(&mut snapshot, FINAL_NAMES_WAIT);
        Ok(Finished {
            snapshot,
            not_covered: self.not_covered,
            occupancy: self.maps.occupancy(),
        })
    }
}
