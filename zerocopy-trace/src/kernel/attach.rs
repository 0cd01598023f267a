//! The one place that touches the kernel to start and stop tracing: load the object with its
//! configuration, attach the programs, hand out the maps, and detach.

use std::{borrow::Cow, os::fd::AsFd};

use anyhow::{Context, Result};
use aya::{
    programs::{trace_point::TracePointLinkId, BtfTracePoint, RawTracePoint, TracePoint},
    Ebpf, EbpfLoader,
};
use zerocopy_trace_common::{names, Counters, PendingCall, ProcKey, RDONLY_CAST_PLACEHOLDER};

use super::{
    btf::{offsets, stub},
    kfunc_calls, load_error,
    maps::Maps,
    plan::{Hook, Plan},
    program_stats,
};

/// The eBPF object built by `cargo xtask build`, embedded at compile time.
static OBJECT: &[u8] = aya::include_bytes_aligned!(env!("ZEROCOPY_TRACE_EBPF_OBJECT_PATH"));

/// The embedded eBPF object, as built.
#[cfg(test)]
pub fn object() -> &'static [u8] {
    OBJECT
}

/// The object `plan` loads: with the typed hook, its placeholder calls made calls of this
/// kernel's `bpf_rdonly_cast` (see `kfunc_calls`).
fn object_for(plan: &Plan) -> Result<Cow<'static, [u8]>> {
    match plan.typed {
        Some(typed) => {
            let (object, count) =
                kfunc_calls::rewrite(OBJECT, RDONLY_CAST_PLACEHOLDER, typed.rdonly_cast)?;
            log::debug!(
                "{count} bpf_rdonly_cast calls linked to BTF id {}",
                typed.rdonly_cast
            );
            Ok(Cow::Owned(object))
        }
        None => Ok(Cow::Borrowed(OBJECT)),
    }
}

/// Map sizes, from the command line.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Process x syscall counter slots.
    pub counter_entries: u32,
    /// Threads with a syscall in flight.
    pub pending_entries: u32,
    /// Processes in the traced set.
    pub traced_entries: u32,
}

impl Limits {
    /// Room for `processes` processes using up to 4 of the traced syscalls each (a process
    /// using more takes the room of more). Threads and followed processes are cheap entries:
    /// their maps get generous room so the process limit is the one that binds.
    pub fn for_processes(processes: u32) -> Limits {
        let processes = processes.max(1);
        Limits {
            counter_entries: processes.saturating_mul(4),
            pending_entries: processes.saturating_mul(4).max(16384),
            traced_entries: processes.saturating_mul(4).max(16384),
        }
    }
}

/// The default `--max-processes`, on any number of CPUs: the counters are shared by all CPUs
/// (counted into atomically), so their memory does not grow with the CPU count: about 37 MiB
/// of kernel memory for every map (`Limits::kernel_bytes`).
pub const DEFAULT_MAX_PROCESSES: u32 = 16384;

/// What the kernel's hash keeps beside each entry's key and value (its list node and hash),
/// rounded up.
const HASH_ENTRY_OVERHEAD: u64 = 48;
/// The maps whose size does not follow `--max-processes`: the exit ring buffer (4 MiB), the
/// parents (65 536 entries), the io_uring requests in flight, the hot slots and the rest.
const FIXED_MAP_BYTES: u64 = 12 << 20;

impl Limits {
    /// About how much kernel memory maps of these sizes take, all preallocated at load.
    pub fn kernel_bytes(&self) -> u64 {
        let entry = |key: usize, value: usize| (key + value) as u64 + HASH_ENTRY_OVERHEAD;
        u64::from(self.counter_entries) * entry(size_of::<ProcKey>(), size_of::<Counters>())
            + u64::from(self.pending_entries) * entry(4, size_of::<PendingCall>())
            + u64::from(self.traced_entries) * entry(4, 4)
            + FIXED_MAP_BYTES
    }

    /// Refuses sizes whose maps would take more than half of the memory the kernel says is
    /// available (`available`, bytes): a mistyped `--max-processes` must not push the machine
    /// into reclaim or the OOM killer for the workload it is meant to watch.
    pub fn check_kernel_memory(&self, processes: u32, available: Option<u64>) -> Result<()> {
        let Some(available) = available else {
            return Ok(());
        };
        let needed = self.kernel_bytes();
        anyhow::ensure!(
            needed <= available / 2,
            "--max-processes {processes} needs about {} MiB of kernel memory for its maps, more \
             than half of the {} MiB available: choose a smaller one (the default, {}, takes \
             about {} MiB)",
            needed >> 20,
            available >> 20,
            DEFAULT_MAX_PROCESSES,
            Limits::for_processes(DEFAULT_MAX_PROCESSES).kernel_bytes() >> 20,
        );
        Ok(())
    }
}

/// Attached programs. Dropping it (or `detach`) removes every program and link it created;
/// nothing is pinned, so even a SIGKILL leaves nothing behind once the fds are closed.
pub struct Tracer {
    ebpf: Option<Ebpf>,
    // Kept alive: dropping the logger closes the kernel-side log map.
    logger: Option<aya_log::EbpfLogger<&'static dyn log::Log>>,
    /// Attachments per program, detached in parallel (see `detach`).
    links: Vec<(&'static str, Vec<TracePointLinkId>)>,
    /// Kernel program ids, so tests and operators can check they are gone after exit.
    pub program_ids: Vec<u32>,
    /// The hook in use (the plan's, or the raw one where the kernel refused the typed one).
    pub hook: Hook,
}

/// `e` from loading or attaching `what`, in one line (`load_error`).
fn load_error(e: impl std::error::Error + Send + Sync + 'static, what: &str) -> anyhow::Error {
    load_error::describe(anyhow::Error::new(e), what)
}

/// Loads the object configured by `plan`, attaches every covered tracepoint, and returns the
/// tracer and its maps.
pub fn attach(plan: &Plan, limits: Limits) -> Result<(Tracer, Maps)> {
    let mut ebpf = EbpfLoader::new()
        // The programs need no CO-RE relocation (kernel offsets come in CONFIG), so aya need
        // not parse the kernel's BTF a second time: that parse was most of the agent's peak
        // memory.
        .btf(None)
        .override_global(names::GLOBAL_CONFIG, &plan.config, true)
        .map_max_entries(names::MAP_PROC_COUNTERS, limits.counter_entries)
        .map_max_entries(names::MAP_HOT_COUNTERS, 1 << plan.config.hot_slot_bits)
        .map_max_entries(names::MAP_PENDING, limits.pending_entries)
        .map_max_entries(names::MAP_TRACED, limits.traced_entries)
        .load(&object_for(plan)?)
        .map_err(|e| load_error(e, "loading the eBPF object"))?;
    let logger = match aya_log::EbpfLogger::init(&mut ebpf) {
        Ok(logger) => Some(logger),
        Err(e) => {
            log::debug!("kernel-side diagnostics unavailable: {e}");
            None
        }
    };

    let mut program_ids = Vec::new();
    let mut links = Vec::new();
    // Process hooks first: exits and forks are then seen for every counted syscall.
    let lifecycle = [
        (
            names::PROG_PROCESS_EXIT,
            names::PROG_PROCESS_EXIT_RAW,
            "sched_process_exit",
        ),
        (
            names::PROG_PROCESS_FORK,
            names::PROG_PROCESS_FORK_RAW,
            "sched_process_fork",
        ),
        (
            names::PROG_PROCESS_EXEC,
            names::PROG_PROCESS_EXEC_RAW,
            "sched_process_exec",
        ),
    ];
    for (classic, raw, tracepoint) in lifecycle {
        if plan.raw_lifecycle {
            attach_raw(&mut ebpf, raw, tracepoint, &mut program_ids)?;
        } else {
            attach_tracepoints(
                &mut ebpf,
                classic,
                &[("sched", tracepoint.to_string())],
                &mut program_ids,
                &mut links,
            )?;
        }
    }
    // Completions before submissions: every request seen submitted is seen completing.
    if plan.io_uring {
        for (program, tracepoint) in [
            (names::PROG_IO_URING_COMPLETE, "io_uring_complete"),
            (names::PROG_IO_URING_SUBMIT, plan.io_uring_submit),
        ] {
            attach_tracepoints(
                &mut ebpf,
                program,
                &[("io_uring", tracepoint.to_string())],
                &mut program_ids,
                &mut links,
            )?;
        }
    }
    let hook = match plan.hook {
        Hook::Tracepoints => {
            for (program, side) in [
                (names::PROG_SYSCALL_EXIT, "exit"),
                (names::PROG_SYSCALL_ENTER, "enter"),
            ] {
                let targets = syscall_targets(plan, side);
                attach_tracepoints(&mut ebpf, program, &targets, &mut program_ids, &mut links)?;
            }
            Hook::Tracepoints
        }
        Hook::Typed | Hook::Raw => attach_exit_only(
            &mut ebpf,
            plan,
            &[
                names::PROG_TYPED_SYSCALL_EXIT,
                names::PROG_TYPED_SYSCALL_EXIT_SLOT_READ,
            ],
            names::PROG_RAW_SYSCALL_EXIT,
            &mut program_ids,
        )?,
    };

    let maps = Maps::take(&mut ebpf)?;
    Ok((
        Tracer {
            ebpf: Some(ebpf),
            logger,
            links,
            program_ids,
            hook,
        },
        maps,
    ))
}

/// The `syscalls/sys_<side>_<name>` tracepoint of every covered syscall.
fn syscall_targets(plan: &Plan, side: &str) -> Vec<(&'static str, String)> {
    plan.covered
        .iter()
        .map(|name| ("syscalls", format!("sys_{side}_{name}")))
        .collect()
}

/// Loads `program` and attaches it to every tracepoint of `targets`.
fn attach_tracepoints(
    ebpf: &mut Ebpf,
    program: &'static str,
    targets: &[(&str, String)],
    program_ids: &mut Vec<u32>,
    links: &mut Vec<(&'static str, Vec<TracePointLinkId>)>,
) -> Result<()> {
    let tp: &mut TracePoint = ebpf
        .program_mut(program)
        .with_context(|| format!("program {program} missing from the eBPF object"))?
        .try_into()
        .with_context(|| format!("program {program} is not a tracepoint"))?;
    tp.load()
        .map_err(|e| load_error(e, &format!("loading program {program}")))?;
    if let Ok(info) = tp.info() {
        program_ids.push(info.id());
    }
    let mut ids = Vec::with_capacity(targets.len());
    for (category, name) in targets {
        ids.push(tp.attach(category, name).map_err(|e| {
            load_error(e, &format!("attaching {category}/{name}"))
                .context("is tracefs mounted at /sys/kernel/tracing?")
        })?);
    }
    links.push((program, ids));
    Ok(())
}

/// Empty programs on exactly the hooks `plan` would use: the benchmark's floor.
#[cfg(feature = "bench")]
pub fn attach_empty_programs(plan: &Plan) -> Result<Tracer> {
    let mut ebpf = EbpfLoader::new()
        .btf(None)
        .override_global(names::GLOBAL_CONFIG, &plan.config, true)
        .load(&object_for(plan)?)
        .map_err(|e| load_error(e, "loading the eBPF object"))?;
    let (mut program_ids, mut links) = (Vec::new(), Vec::new());
    let mut targets: Vec<(&str, String)> = [
        "sched_process_exit",
        "sched_process_fork",
        "sched_process_exec",
    ]
    .iter()
    .map(|name| ("sched", name.to_string()))
    .collect();
    let hook = match plan.hook {
        Hook::Tracepoints => {
            targets.extend(syscall_targets(plan, "exit"));
            targets.extend(syscall_targets(plan, "enter"));
            Hook::Tracepoints
        }
        Hook::Typed | Hook::Raw => attach_exit_only(
            &mut ebpf,
            plan,
            &[names::PROG_EMPTY_TYPED],
            names::PROG_EMPTY_RAW,
            &mut program_ids,
        )?,
    };
    attach_tracepoints(
        &mut ebpf,
        names::PROG_EMPTY_TRACEPOINT,
        &targets,
        &mut program_ids,
        &mut links,
    )?;
    Ok(Tracer {
        ebpf: Some(ebpf),
        logger: None,
        links,
        program_ids,
        hook,
    })
}

/// Attaches an exit-only program to `sys_exit`: the first of the `typed` variants this kernel
/// accepts on the typed (tp_btf) hook when the plan asks for it, else, or when it refuses them
/// all, `raw` on the raw tracepoint. Returns the hook in use. A variant refused is one line
/// (the verifier's verdict); the next is tried.
fn attach_exit_only(
    ebpf: &mut Ebpf,
    plan: &Plan,
    typed: &[&str],
    raw: &str,
    ids: &mut Vec<u32>,
) -> Result<Hook> {
    if let Some(typed_hook) = plan.typed {
        let mut refusals = Vec::new();
        for (i, variant) in typed.iter().enumerate() {
            match attach_typed(ebpf, variant, typed_hook.sys_exit_typedef, ids) {
                Ok(()) => {
                    if i > 0 {
                        log::info!(
                            "the btf hook runs as {variant} here ({} refused: {})",
                            typed[i - 1],
                            refusals.join("; ")
                        );
                    }
                    return Ok(Hook::Typed);
                }
                Err(e) => refusals.push(format!("{e:#}")),
            }
        }
        log::warn!(
            "the btf hook is unavailable here ({}): using --hook raw",
            refusals.last().map(String::as_str).unwrap_or("no variant")
        );
    }
    attach_raw(ebpf, raw, names::TRACEPOINT_SYS_EXIT, ids)?;
    Ok(Hook::Raw)
}

/// Loads `program` as a tp_btf program on `sys_exit` and attaches it. aya names the tracepoint
/// by its typedef's id in a `Btf`: a stub holding just that typedef (`btf::stub`) spares
/// parsing the kernel's whole BTF a second time.
fn attach_typed(ebpf: &mut Ebpf, program: &str, typedef: u32, ids: &mut Vec<u32>) -> Result<()> {
    let btf = stub::typedef_only(offsets::SYS_EXIT_TYPEDEF, typedef)
        .context("building the BTF stub for tp_btf")?;
    let tp: &mut BtfTracePoint = ebpf
        .program_mut(program)
        .with_context(|| format!("program {program} missing from the eBPF object"))?
        .try_into()
        .with_context(|| format!("program {program} is not a tp_btf program"))?;
    tp.load(names::TRACEPOINT_SYS_EXIT, &btf)
        .map_err(|e| load_error(e, &format!("loading program {program}")))?;
    if let Ok(info) = tp.info() {
        ids.push(info.id());
    }
    tp.attach()
        .map_err(|e| load_error(e, "attaching tp_btf/sys_exit"))?;
    Ok(())
}

/// Loads `program` and attaches it to the raw tracepoint `name`. Its link is dropped with the
/// `Ebpf` (raw tracepoint links are few: no parallel detach needed).
fn attach_raw(ebpf: &mut Ebpf, program: &str, name: &str, ids: &mut Vec<u32>) -> Result<()> {
    let rtp: &mut RawTracePoint = ebpf
        .program_mut(program)
        .with_context(|| format!("program {program} missing from the eBPF object"))?
        .try_into()
        .with_context(|| format!("program {program} is not a raw tracepoint"))?;
    rtp.load()
        .map_err(|e| load_error(e, &format!("loading program {program}")))?;
    if let Ok(info) = rtp.info() {
        ids.push(info.id());
    }
    rtp.attach(name)
        .map_err(|e| load_error(e, &format!("attaching raw tracepoint {name}")))?;
    Ok(())
}

impl Tracer {
    /// Detaches and unloads every program. Idempotent.
    ///
    /// Removing a tracepoint attachment waits for an RCU grace period in the kernel (tens of
    /// milliseconds); one after the other, 44 of them take seconds. Dropped on threads of their
    /// own, the waits overlap.
    /// Runs of our programs the kernel skipped so far (`program_stats`), 0 once detached.
    pub fn missed_runs(&self) -> u64 {
        let Some(ebpf) = &self.ebpf else {
            return 0;
        };
        ebpf.programs()
            .filter_map(|(_, program)| program.fd().ok())
            .filter_map(|fd| program_stats::recursion_misses(&fd.as_fd()).ok())
            .sum()
    }

    pub fn detach(&mut self) {
        if let Some(logger) = self.logger.as_mut() {
            logger.flush();
        }
        self.logger = None;
        let Some(mut ebpf) = self.ebpf.take() else {
            return;
        };
        let mut owned = Vec::new();
        for (program, ids) in self.links.drain(..) {
            let Some(tp) = ebpf
                .program_mut(program)
                .and_then(|p| <&mut TracePoint>::try_from(p).ok())
            else {
                continue;
            };
            owned.extend(ids.into_iter().filter_map(|id| tp.take_link(id).ok()));
        }
        std::thread::scope(|scope| {
            for link in owned {
                scope.spawn(move || drop(link));
            }
        });
        drop(ebpf);
    }

    /// Prints what the kernel side logged (aya-log), off the hot path.
    pub fn flush_kernel_log(&mut self) {
        if let Some(logger) = self.logger.as_mut() {
            logger.flush();
        }
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        self.detach();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_memory_is_estimated_and_bounded() {
        let default = Limits::for_processes(DEFAULT_MAX_PROCESSES);
        // 65 536 counters of 280 bytes, 65 536 pending calls and traced processes, the rest.
        assert_eq!(
            default.kernel_bytes(),
            65536 * 280 + 65536 * 76 + 65536 * 56 + (12 << 20)
        );
        assert!(default.kernel_bytes() < 64 << 20);
        let gib = 1u64 << 30;
        default
            .check_kernel_memory(DEFAULT_MAX_PROCESSES, Some(gib))
            .unwrap();
        // Unknown available memory: nothing to check against.
        Limits::for_processes(u32::MAX)
            .check_kernel_memory(u32::MAX, None)
            .unwrap();
        // A million processes need about 1.5 GiB: refused with 2 GiB available, in one line
        // that names the option and what it would take.
        let million = Limits::for_processes(1_000_000);
        let error = million
            .check_kernel_memory(1_000_000, Some(2 * gib))
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("--max-processes 1000000 needs about 1583 MiB of kernel memory"),
            "{error}"
        );
        assert!(
            error.contains("the default, 16384, takes about 37 MiB"),
            "{error}"
        );
        million
            .check_kernel_memory(1_000_000, Some(4 * gib))
            .unwrap();
    }

    #[test]
    fn limits_scale_with_processes() {
        let l = Limits::for_processes(4);
        assert_eq!(
            (l.counter_entries, l.pending_entries, l.traced_entries),
            (16, 16384, 16384)
        );
        assert_eq!(Limits::for_processes(0).counter_entries, 4);
        assert_eq!(Limits::for_processes(u32::MAX).counter_entries, u32::MAX);
    }
}
