//! The tracers compared: how each starts, how the bench knows it is attached, how it stops.
//!
//! Every BPF tracer here sits on the syscall tracepoints zerocopy-trace uses ([`SYSCALLS`]):
//! the peer is bpftrace as its users write these counters (one exit-only program per syscall),
//! and the floor is zerocopy-trace's own empty programs on its own hooks.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;
use zerocopy_trace_common::{SYSCALLS, SYSCALL_COUNT};

use crate::bpftrace;
use crate::process::{self, Reaped};
use crate::procfs;
use crate::workloads::{ServerTools, Workload};
use dev_support::apt::Apt;
use dev_support::cmd;

/// How long a tracer may take to compile, load and attach.
const ATTACH_PATIENCE: Duration = Duration::from_secs(60);
/// Attached hooks must hold steady this long before the workload starts (for the tracers
/// that do not say when they are attached).
const SETTLE: Duration = Duration::from_millis(500);
/// How long a tracer may take to detach and write its output after SIGINT.
/// (Detaching waits for RCU grace periods per hook; with other tracers attaching and detaching
/// at the same time that has been seen to take over a minute.)
const STOP_PATIENCE: Duration = Duration::from_secs(150);
/// perf trace handles every event in user space; the full storm would take minutes under it.
pub const PERF_STORM_SHRINK: u64 = 40;
/// The agent's log filter: its own `info` lines, among them the one that says it attached.
const AGENT_LOG: &str = "zerocopy_trace=info";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tracer {
    /// The baseline every traced run is paired with.
    None,
    /// `zerocopy-trace report` with its default hook (the BTF-typed `sys_exit` tracepoint).
    #[serde(rename = "zerocopy-trace")]
    ZeroCopyTrace,
    /// `zerocopy-trace report --hook raw` (the raw `sys_exit` tracepoint, probe reads).
    #[serde(rename = "zerocopy-trace-raw")]
    ZeroCopyTraceRaw,
    /// `zerocopy-trace report` reading every counter each second, as the dashboard does.
    #[serde(rename = "zerocopy-trace-refresh")]
    ZeroCopyTraceRefresh,
    /// `zerocopy-trace report --hook tracepoints` (enter and exit of each syscall).
    #[serde(rename = "zerocopy-trace-tracepoints")]
    ZeroCopyTraceTracepoints,
    /// Empty programs on the default hooks (`zerocopy-trace floor`): the floor for any
    /// program there.
    EmptyFloor,
    /// Empty programs on the raw hook's.
    EmptyFloorRaw,
    /// Empty programs on the per-syscall tracepoints.
    EmptyFloorTracepoints,
    /// The peer: bpftrace with one exit-only program over the 21 exit tracepoints.
    BpftraceExit,
    /// bpftrace on enter and exit, counting a call only when its enter was seen.
    BpftraceEnterExit,
    /// `perf trace -s` on the same syscalls.
    PerfTrace,
}

impl Tracer {
    pub const ALL: [Tracer; 11] = [
        Tracer::None,
        Tracer::ZeroCopyTrace,
        Tracer::ZeroCopyTraceRefresh,
        Tracer::EmptyFloor,
        Tracer::ZeroCopyTraceRaw,
        Tracer::EmptyFloorRaw,
        Tracer::ZeroCopyTraceTracepoints,
        Tracer::EmptyFloorTracepoints,
        Tracer::BpftraceExit,
        Tracer::BpftraceEnterExit,
        Tracer::PerfTrace,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Tracer::None => "untraced",
            Tracer::ZeroCopyTrace => "zerocopy-trace",
            Tracer::ZeroCopyTraceRefresh => "zerocopy-trace (1s refresh)",
            Tracer::ZeroCopyTraceRaw => "zerocopy-trace (raw)",
            Tracer::ZeroCopyTraceTracepoints => "zerocopy-trace (tp)",
            Tracer::EmptyFloor => "empty floor",
            Tracer::EmptyFloorRaw => "empty floor (raw)",
            Tracer::EmptyFloorTracepoints => "empty floor (tp)",
            Tracer::BpftraceExit => "bpftrace exit-only",
            Tracer::BpftraceEnterExit => "bpftrace enter+exit",
            Tracer::PerfTrace => "perf trace -s",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Tracer::None => "none",
            Tracer::ZeroCopyTrace => "zerocopy-trace",
            Tracer::ZeroCopyTraceRefresh => "zerocopy-trace-refresh",
            Tracer::ZeroCopyTraceRaw => "zerocopy-trace-raw",
            Tracer::ZeroCopyTraceTracepoints => "zerocopy-trace-tracepoints",
            Tracer::EmptyFloor => "empty-floor",
            Tracer::EmptyFloorRaw => "empty-floor-raw",
            Tracer::EmptyFloorTracepoints => "empty-floor-tracepoints",
            Tracer::BpftraceExit => "bpftrace-exit",
            Tracer::BpftraceEnterExit => "bpftrace-enter-exit",
            Tracer::PerfTrace => "perf-trace",
        }
    }

    /// Whether the tracer runs BPF programs whose kernel stats mean something.
    pub fn has_bpf_programs(self) -> bool {
        !matches!(self, Tracer::None | Tracer::PerfTrace)
    }

    /// Whether this is the agent itself (its `report` or `empty-programs`), which logs when it attached.
    fn is_agent(self) -> bool {
        matches!(
            self,
            Tracer::ZeroCopyTrace
                | Tracer::ZeroCopyTraceRefresh
                | Tracer::ZeroCopyTraceRaw
                | Tracer::ZeroCopyTraceTracepoints
                | Tracer::EmptyFloor
                | Tracer::EmptyFloorRaw
                | Tracer::EmptyFloorTracepoints
        )
    }

    /// Divisor of the storm's size under this tracer (1: full size).
    pub fn storm_shrink(self) -> u64 {
        if self == Tracer::PerfTrace {
            PERF_STORM_SHRINK
        } else {
            1
        }
    }

    /// Whether this tracer runs `workload` at all (perf trace only gets the storm, shrunk: it
    /// handles each event in user space and would dominate the bench's time otherwise).
    pub fn runs(self, workload: Workload) -> bool {
        self != Tracer::PerfTrace || workload == Workload::Storm
    }

    /// Hooks that must be attached before the workload starts.
    fn min_attachments(self) -> usize {
        match self {
            Tracer::None => 0,
            // The sys_exit program (typed or raw), plus sched_process_fork, _exec and _exit.
            Tracer::ZeroCopyTrace
            | Tracer::ZeroCopyTraceRefresh
            | Tracer::ZeroCopyTraceRaw
            | Tracer::EmptyFloor
            | Tracer::EmptyFloorRaw => 4,
            // Enter and exit of every syscall, plus the three sched tracepoints.
            Tracer::ZeroCopyTraceTracepoints | Tracer::EmptyFloorTracepoints => {
                2 * SYSCALL_COUNT + 3
            }
            Tracer::BpftraceExit => SYSCALL_COUNT,
            Tracer::BpftraceEnterExit => 2 * SYSCALL_COUNT,
            // Its own raw_syscalls events, one per CPU and direction: at least one.
            Tracer::PerfTrace => 1,
        }
    }
}

/// Where the tools are, and why any tracer or workload is left out.
pub struct Tools {
    pub agent: PathBuf,
    pub bpftrace: Option<PathBuf>,
    pub perf: Option<PathBuf>,
    pub bpftool: Option<PathBuf>,
    pub nginx: Option<PathBuf>,
    pub wrk: Option<PathBuf>,
}

/// Directories searched besides PATH: /usr/sbin holds nginx and is not on every PATH.
const SBIN_DIRS: [&str; 2] = ["/usr/sbin", "/sbin"];

impl Tools {
    /// Finds bpftrace, bpftool, perf, nginx and wrk, installing the missing ones with apt where
    /// it can; each one still missing (or perf trace not working here) becomes a note.
    pub fn find(agent: PathBuf, apt: &mut Apt, notes: &mut Vec<String>) -> Self {
        let wanted = [
            ("bpftrace", "bpftrace"),
            ("bpftool", "bpftool"),
            ("perf", "linux-perf"),
            ("nginx", "nginx-light"),
            ("wrk", "wrk"),
        ];
        let want: Vec<&str> = wanted
            .iter()
            .filter(|(program, _)| which(program).is_none())
            .map(|(_, package)| *package)
            .collect();
        if !want.is_empty() {
            if let Err(err) = apt.install(&want, "the bench's comparison tracers and server") {
                notes.push(format!("could not install {}: {err:#}", want.join(" ")));
            }
        }
        let bpftrace = which("bpftrace");
        if bpftrace.is_none() {
            notes.push("bpftrace missing: the bpftrace rows are skipped".into());
        }
        let bpftool = which("bpftool");
        if bpftool.is_none() {
            notes.push("bpftool missing: BPF programs are listed by id, not name".into());
        }
        let perf = which("perf").filter(|perf| {
            let works =
                cmd::probe(Command::new(perf).args(["trace", "-s", "-e", "write", "--", "true"]))
                    .is_some();
            if !works {
                notes.push("`perf trace -s -- true` fails here: perf trace is skipped".into());
            }
            works
        });
        if perf.is_none() && which("perf").is_none() {
            notes.push("perf missing: perf trace is skipped".into());
        }
        let (nginx, wrk) = (which("nginx"), which("wrk"));
        if nginx.is_none() || wrk.is_none() {
            notes.push("nginx or wrk missing: the nginx rows are skipped".into());
        }
        Self {
            agent,
            bpftrace,
            perf,
            bpftool,
            nginx,
            wrk,
        }
    }

    pub fn available(&self, tracer: Tracer) -> bool {
        match tracer {
            Tracer::BpftraceExit | Tracer::BpftraceEnterExit => self.bpftrace.is_some(),
            Tracer::PerfTrace => self.perf.is_some(),
            _ => true,
        }
    }

    /// nginx and wrk, when both are here.
    pub fn server(&self) -> Option<ServerTools> {
        Some(ServerTools {
            nginx: self.nginx.clone()?,
            wrk: self.wrk.clone()?,
        })
    }

    /// A BPF program's name, from bpftool where it is installed.
    pub fn prog_name(&self, id: u32) -> String {
        let fallback = || format!("id {id}");
        let Some(bpftool) = &self.bpftool else {
            return fallback();
        };
        cmd::probe(Command::new(bpftool).args(["prog", "show", "id", &id.to_string(), "--json"]))
            .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
            .and_then(|v| v.get("name")?.as_str().map(str::to_owned))
            .unwrap_or_else(fallback)
    }
}

fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(SBIN_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

fn perf_syscalls() -> String {
    SYSCALLS
        .iter()
        .map(|s| s.name)
        .collect::<Vec<_>>()
        .join(",")
}

/// A tracer started and attached.
pub struct Running {
    pub tracer: Tracer,
    pub pid: u32,
    pub attach_s: f64,
    stderr: PathBuf,
    json: Option<PathBuf>,
}

/// What a tracer cost over its whole life, and what it lost.
#[derive(Clone, Debug, Serialize)]
pub struct Stopped {
    /// From spawn to attached: the agent's own "attached" log line; for the others, the last
    /// change in their count of attached hooks.
    pub attach_s: f64,
    pub detach_s: f64,
    pub cpu_s: f64,
    pub peak_rss_kib: u64,
    /// Calls lost, by reason (zerocopy-trace's JSON `dropped`).
    pub dropped_calls: Option<BTreeMap<String, u64>>,
}

/// What becomes of the agent's report when it stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportTo {
    /// A JSON file, read back for the calls it dropped.
    Json,
    /// Nowhere (the churn session: a report of a million exited processes is not the point).
    Discard,
}

/// Starts `tracer` (not [`Tracer::None`]) with its files in `dir`, and waits until its hooks
/// are attached.
pub fn start(tracer: Tracer, tools: &Tools, dir: &Path) -> Result<Running> {
    start_with(tracer, tools, dir, ReportTo::Json)
}

pub fn start_with(tracer: Tracer, tools: &Tools, dir: &Path, report: ReportTo) -> Result<Running> {
    let stderr = dir.join(format!("{}.stderr", tracer.key()));
    let mut json = None;
    let mut command = match tracer {
        Tracer::None => bail!("the untraced runs have no tracer to start"),
        Tracer::ZeroCopyTrace
        | Tracer::ZeroCopyTraceRefresh
        | Tracer::ZeroCopyTraceRaw
        | Tracer::ZeroCopyTraceTracepoints => {
            let mut c = Command::new(&tools.agent);
            c.arg("report");
            if report == ReportTo::Json {
                let out = dir.join(format!("{}.json", tracer.key()));
                c.args(["--json", "--output"]).arg(&out);
                json = Some(out);
            }
            match tracer {
                Tracer::ZeroCopyTraceTracepoints => {
                    c.args(["--hook", "tracepoints"]);
                }
                Tracer::ZeroCopyTraceRaw => {
                    c.args(["--hook", "raw"]);
                }
                Tracer::ZeroCopyTraceRefresh => {
                    c.args(["--refresh", "1s"]);
                }
                _ => {}
            }
            c
        }
        // Empty programs on the same hooks, loaded by the agent itself: bpftrace cannot attach
        // a raw tracepoint on every version, and the agent's own hooks are what to compare.
        Tracer::EmptyFloor | Tracer::EmptyFloorRaw | Tracer::EmptyFloorTracepoints => {
            let mut c = Command::new(&tools.agent);
            c.arg("empty-programs");
            match tracer {
                Tracer::EmptyFloorTracepoints => {
                    c.args(["--hook", "tracepoints"]);
                }
                Tracer::EmptyFloorRaw => {
                    c.args(["--hook", "raw"]);
                }
                _ => {}
            }
            c
        }
        Tracer::BpftraceExit | Tracer::BpftraceEnterExit => {
            let program = if tracer == Tracer::BpftraceExit {
                bpftrace::exit_only()
            } else {
                bpftrace::enter_exit()
            };
            let mut c = Command::new(tools.bpftrace.as_deref().context("no bpftrace")?);
            c.arg("-e").arg(program);
            c
        }
        Tracer::PerfTrace => {
            let mut c = Command::new(tools.perf.as_deref().context("no perf")?);
            c.args(["trace", "-s", "-a", "-e", &perf_syscalls(), "-o"])
                .arg(dir.join("perf-trace.txt"));
            c
        }
    };
    if tracer.is_agent() {
        command.env("RUST_LOG", AGENT_LOG);
    }
    if let Some(out) = &json {
        // A stale report from an earlier run must not pass for this one's.
        let _ = std::fs::remove_file(out);
    }
    let err_file =
        File::create(&stderr).with_context(|| format!("creating {}", stderr.display()))?;
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err_file);
    let started = Instant::now();
    let child = command
        .spawn()
        .with_context(|| format!("starting {}", cmd::describe(&command)))?;
    let running = Running {
        tracer,
        pid: child.id(),
        attach_s: 0.0,
        stderr,
        json,
    };
    // The child is reaped by pid (wait4, for its rusage); std's handle has nothing to clean up.
    drop(child);
    running.wait_attached(started)
}

/// Whether the agent's log says it has attached (`attached ...; BPF program ids [...]`, from
/// both `report` and `empty-programs`).
pub fn says_attached(log: &str) -> bool {
    log.lines()
        .any(|line| line.contains("attached") && line.contains("program ids"))
}

impl Running {
    fn wait_attached(mut self, started: Instant) -> Result<Self> {
        let need = self.tracer.min_attachments();
        let mut last = (0, Instant::now());
        let mut logged = None;
        loop {
            if let Some(reaped) = process::reap(self.pid, false)? {
                bail!(
                    "{} exited before attaching ({}): {}",
                    self.tracer.label(),
                    reaped.describe(),
                    self.stderr_tail()
                );
            }
            let now = Instant::now();
            if self.tracer.is_agent() && logged.is_none() && says_attached(&self.stderr_text()) {
                logged = Some(now);
            }
            let count = procfs::attachments(self.pid);
            if count != last.0 {
                last = (count, now);
            }
            if count >= need && count > 0 {
                // The agent says when it is done; the others are done when their count of
                // hooks has held still for a while.
                if let Some(at) = logged {
                    self.attach_s = (at - started).as_secs_f64();
                    return Ok(self);
                }
                if !self.tracer.is_agent() && now - last.1 >= SETTLE {
                    self.attach_s = (last.1 - started).as_secs_f64();
                    return Ok(self);
                }
            }
            if now - started > ATTACH_PATIENCE {
                let _ = process::signal(self.pid, libc::SIGKILL);
                let _ = process::reap(self.pid, true);
                bail!(
                    "{} attached {count} of {need} hooks within {ATTACH_PATIENCE:?}{}: {}",
                    self.tracer.label(),
                    if self.tracer.is_agent() && logged.is_none() {
                        " and never logged \"attached\""
                    } else {
                        ""
                    },
                    self.stderr_tail()
                );
            }
            // Fine enough for an attach goal of half a second.
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// SIGINT, as an operator's Ctrl-C; then the tracer's lifetime cost and losses.
    pub fn stop(self) -> Result<Stopped> {
        // The peak while tracing, from the process's own memory map. wait4's ru_maxrss would
        // not do: it keeps the RSS the child inherited at fork from this (larger) process.
        let peak_rss_kib = procfs::vm_hwm_kib(self.pid).unwrap_or(0);
        process::signal(self.pid, libc::SIGINT)?;
        let asked = Instant::now();
        let reaped: Reaped = process::reap_within(self.pid, STOP_PATIENCE)
            .with_context(|| format!("stopping {}", self.tracer.label()))?;
        let detach_s = asked.elapsed().as_secs_f64();
        if !reaped.success() {
            eprintln!(
                "bench: warning: {} ended with {}: {}",
                self.tracer.label(),
                reaped.describe(),
                self.stderr_tail()
            );
        }
        let dropped_calls = match &self.json {
            Some(path) => Some(read_dropped(path).with_context(|| {
                format!(
                    "reading {}'s report ({})",
                    self.tracer.label(),
                    self.stderr_tail()
                )
            })?),
            None => None,
        };
        Ok(Stopped {
            attach_s: self.attach_s,
            detach_s,
            cpu_s: reaped.cpu_s,
            peak_rss_kib,
            dropped_calls,
        })
    }

    /// Stops the tracer after a failure elsewhere: whatever it says is beside the point.
    pub fn abandon(self) {
        let label = self.tracer.label();
        if let Err(err) = self.stop() {
            eprintln!("bench: warning: {label}: {err:#}");
        }
    }

    fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn stderr_tail(&self) -> String {
        let text = self.stderr_text();
        let lines: Vec<&str> = text.lines().rev().take(5).collect();
        let tail: Vec<&str> = lines.into_iter().rev().collect();
        if tail.is_empty() {
            format!("nothing on stderr ({})", self.stderr.display())
        } else {
            tail.join(" | ")
        }
    }
}

fn read_dropped(path: &Path) -> Result<BTreeMap<String, u64>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse_dropped(&text)
}

/// `{"dropped": {"reason": {"calls": N, "bytes": M}}}` -> reason -> calls.
pub fn parse_dropped(json: &str) -> Result<BTreeMap<String, u64>> {
    let doc: serde_json::Value = serde_json::from_str(json).context("not JSON")?;
    let dropped = doc
        .get("dropped")
        .and_then(|d| d.as_object())
        .context("no \"dropped\" object")?;
    Ok(dropped
        .iter()
        .map(|(reason, counts)| {
            let calls = counts.get("calls").and_then(|c| c.as_u64()).unwrap_or(0);
            (reason.clone(), calls)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_counts_by_reason() {
        let json = r#"{"dropped": {"missing_enter": {"calls": 2, "bytes": 13},
                       "exit_lost": {"calls": 0, "bytes": 0}}}"#;
        let dropped = parse_dropped(json).unwrap();
        assert_eq!(dropped["missing_enter"], 2);
        assert_eq!(dropped["exit_lost"], 0);
        assert!(parse_dropped("{}").is_err());
        assert!(parse_dropped("not json").is_err());
    }

    #[test]
    fn perf_gets_only_a_shrunk_storm() {
        assert!(Tracer::PerfTrace.runs(Workload::Storm));
        assert!(!Tracer::PerfTrace.runs(Workload::Churn));
        assert!(!Tracer::PerfTrace.runs(Workload::Nginx4k));
        assert!(Tracer::ZeroCopyTrace.runs(Workload::Many));
        assert!(Tracer::BpftraceExit.runs(Workload::Nginx4k));
        assert_eq!(Tracer::PerfTrace.storm_shrink(), PERF_STORM_SHRINK);
        assert_eq!(Tracer::BpftraceExit.storm_shrink(), 1);
    }

    #[test]
    fn the_peer_holds_one_hook_per_syscall() {
        assert_eq!(Tracer::BpftraceExit.min_attachments(), SYSCALL_COUNT);
        assert_eq!(
            Tracer::BpftraceEnterExit.min_attachments(),
            2 * SYSCALL_COUNT
        );
        assert!(Tracer::BpftraceExit.has_bpf_programs() && !Tracer::PerfTrace.has_bpf_programs());
        assert!(!Tracer::BpftraceExit.is_agent() && Tracer::EmptyFloor.is_agent());
    }

    #[test]
    fn labels_and_keys_are_unique() {
        let labels: std::collections::BTreeSet<_> = Tracer::ALL.iter().map(|t| t.label()).collect();
        let keys: std::collections::BTreeSet<_> = Tracer::ALL.iter().map(|t| t.key()).collect();
        assert_eq!(labels.len(), Tracer::ALL.len());
        assert_eq!(keys.len(), Tracer::ALL.len());
    }

    #[test]
    fn the_agents_attached_line() {
        let report = "[2026-01-01T00:00:00Z INFO  zerocopy_trace::session] attached 21 syscalls; \
                      BPF program ids [41, 42, 43, 44]\n";
        let floor = "[.. INFO  zerocopy_trace::session] attached empty programs (Raw hook); \
                     BPF program ids [7]\n";
        assert!(says_attached(report) && says_attached(floor));
        assert!(!says_attached(
            "zerocopy-trace: tracing; press Ctrl-C to stop\n"
        ));
        assert!(!says_attached(""));
    }
}
