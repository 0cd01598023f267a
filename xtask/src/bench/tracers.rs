//! The tracers compared: how each starts, how the bench knows it is attached, how it stops.
//!
//! Every BPF tracer here sits on the same hooks as zerocopy-trace (the enter and exit syscall
//! tracepoints of [`SYSCALLS`], plus the fork/exit scheduler tracepoints where it uses them), so
//! the differences are the programs, not the hooks.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;
use zerocopy_trace_common::{SYSCALLS, SYSCALL_COUNT};

use super::procfs::{self, Reaped};
use crate::apt::Apt;
use crate::cmd;

/// How long a tracer may take to compile, load and attach.
const ATTACH_PATIENCE: Duration = Duration::from_secs(60);
/// Attached hooks must hold steady this long before the workload starts.
const SETTLE: Duration = Duration::from_millis(500);
/// How long a tracer may take to detach and write its output after SIGINT.
/// (Detaching waits for RCU grace periods per hook; with other tracers attaching and detaching
/// at the same time that has been seen to take over a minute.)
const STOP_PATIENCE: Duration = Duration::from_secs(150);
/// perf trace handles every event in user space; the full storm would take minutes under it.
pub const PERF_STORM_SHRINK: u64 = 40;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tracer {
    /// The baseline every traced run is paired with.
    None,
    /// `zerocopy-trace report` with its default hook (the raw `sys_exit` tracepoint).
    #[serde(rename = "zerocopy-trace")]
    ZeroCopyTrace,
    /// `zerocopy-trace report` reading every counter each second, as the dashboard does.
    #[serde(rename = "zerocopy-trace-refresh")]
    ZeroCopyTraceRefresh,
    /// `zerocopy-trace report --hook tracepoints` (enter and exit of each syscall).
    #[serde(rename = "zerocopy-trace-tracepoints")]
    ZeroCopyTraceTracepoints,
    /// Empty programs on the default hooks (`zerocopy-trace floor`): the floor for any
    /// program there.
    EmptyFloor,
    /// Empty programs on the per-syscall tracepoints.
    EmptyFloorTracepoints,
    /// bpftrace keeping the same per-process counters.
    Bpftrace,
    /// `perf trace -s` on the same syscalls.
    PerfTrace,
}

impl Tracer {
    pub const ALL: [Tracer; 8] = [
        Tracer::None,
        Tracer::ZeroCopyTrace,
        Tracer::ZeroCopyTraceRefresh,
        Tracer::EmptyFloor,
        Tracer::ZeroCopyTraceTracepoints,
        Tracer::EmptyFloorTracepoints,
        Tracer::Bpftrace,
        Tracer::PerfTrace,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Tracer::None => "untraced",
            Tracer::ZeroCopyTrace => "zerocopy-trace",
            Tracer::ZeroCopyTraceRefresh => "zerocopy-trace (1s refresh)",
            Tracer::ZeroCopyTraceTracepoints => "zerocopy-trace (tp)",
            Tracer::EmptyFloor => "empty floor",
            Tracer::EmptyFloorTracepoints => "empty floor (tp)",
            Tracer::Bpftrace => "bpftrace",
            Tracer::PerfTrace => "perf trace -s",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Tracer::None => "none",
            Tracer::ZeroCopyTrace => "zerocopy-trace",
            Tracer::ZeroCopyTraceRefresh => "zerocopy-trace-refresh",
            Tracer::ZeroCopyTraceTracepoints => "zerocopy-trace-tracepoints",
            Tracer::EmptyFloor => "empty-floor",
            Tracer::EmptyFloorTracepoints => "empty-floor-tracepoints",
            Tracer::Bpftrace => "bpftrace",
            Tracer::PerfTrace => "perf-trace",
        }
    }

    /// Whether the tracer runs BPF programs whose kernel stats mean something.
    pub fn has_bpf_programs(self) -> bool {
        matches!(
            self,
            Tracer::ZeroCopyTrace
                | Tracer::ZeroCopyTraceRefresh
                | Tracer::ZeroCopyTraceTracepoints
                | Tracer::EmptyFloor
                | Tracer::EmptyFloorTracepoints
                | Tracer::Bpftrace
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
    pub fn runs(self, workload: super::workloads::Workload) -> bool {
        self != Tracer::PerfTrace || workload == super::workloads::Workload::Storm
    }

    /// Hooks that must be attached before the workload starts.
    fn min_attachments(self) -> usize {
        match self {
            Tracer::None => 0,
            // The raw sys_exit, plus sched_process_fork, _exec and _exit.
            Tracer::ZeroCopyTrace | Tracer::ZeroCopyTraceRefresh | Tracer::EmptyFloor => 4,
            // Enter and exit of every syscall, plus the three sched tracepoints.
            Tracer::ZeroCopyTraceTracepoints | Tracer::EmptyFloorTracepoints => {
                2 * SYSCALL_COUNT + 3
            }
            Tracer::Bpftrace => 2 * SYSCALL_COUNT,
            // Its own raw_syscalls events, one per CPU and direction: at least one.
            Tracer::PerfTrace => 1,
        }
    }
}

/// Where the tools are, and why any tracer is left out.
pub struct Tools {
    pub agent: PathBuf,
    pub bpftrace: Option<PathBuf>,
    pub perf: Option<PathBuf>,
    pub bpftool: Option<PathBuf>,
}

impl Tools {
    /// Finds bpftrace, bpftool and perf, installing the missing ones with apt where it can;
    /// each one still missing (or perf trace not working here) becomes a note.
    pub fn find(agent: PathBuf, apt: &mut Apt, notes: &mut Vec<String>) -> Self {
        let mut want: Vec<&str> = Vec::new();
        if which("bpftrace").is_none() {
            want.push("bpftrace");
        }
        if which("bpftool").is_none() {
            want.push("bpftool");
        }
        if which("perf").is_none() {
            want.push("linux-perf");
        }
        if !want.is_empty() {
            if let Err(err) = apt.install(&want, "the bench's comparison tracers") {
                notes.push(format!("could not install {}: {err:#}", want.join(" ")));
            }
        }
        let bpftrace = which("bpftrace");
        if bpftrace.is_none() {
            notes.push("bpftrace missing: the empty floor and bpftrace rows are skipped".into());
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
        Self {
            agent,
            bpftrace,
            perf,
            bpftool,
        }
    }

    pub fn available(&self, tracer: Tracer) -> bool {
        match tracer {
            Tracer::None
            | Tracer::ZeroCopyTrace
            | Tracer::ZeroCopyTraceRefresh
            | Tracer::ZeroCopyTraceTracepoints
            | Tracer::EmptyFloor
            | Tracer::EmptyFloorTracepoints => true,
            Tracer::Bpftrace => self.bpftrace.is_some(),
            Tracer::PerfTrace => self.perf.is_some(),
        }
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
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// The tracepoints of every traced syscall, `sys_enter_*` or `sys_exit_*`, as bpftrace probes.
fn probes(direction: &str) -> String {
    SYSCALLS
        .iter()
        .map(|s| format!("tracepoint:syscalls:sys_{direction}_{}", s.name))
        .collect::<Vec<_>>()
        .join(",\n")
}

/// What a bpftrace user would write for zerocopy-trace's counters: calls, bytes and errors per
/// process and syscall, counted at the exit of a call whose enter was seen.
pub fn counters_program() -> String {
    format!(
        "{}\n{{ @pending[tid] = 1; }}\n\n{}\n/@pending[tid]/\n{{\n  delete(@pending[tid]);\n  \
         @calls[pid, probe] = count();\n  if (args->ret > 0) {{ @bytes[pid, probe] = sum(args->ret); }}\n  \
         if (args->ret < 0) {{ @errors[pid, probe] = count(); }}\n}}\n",
        probes("enter"),
        probes("exit")
    )
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
    pub attach_s: f64,
    pub detach_s: f64,
    pub cpu_s: f64,
    pub peak_rss_kib: u64,
    /// Calls lost, by reason (zerocopy-trace's JSON `dropped`).
    pub dropped_calls: Option<BTreeMap<String, u64>>,
}

/// Starts `tracer` (not [`Tracer::None`]) with its files in `dir`, and waits until its hooks
/// are attached.
pub fn start(tracer: Tracer, tools: &Tools, dir: &Path) -> Result<Running> {
    let stderr = dir.join(format!("{}.stderr", tracer.key()));
    let mut json = None;
    let mut command = match tracer {
        Tracer::None => bail!("the untraced runs have no tracer to start"),
        Tracer::ZeroCopyTrace | Tracer::ZeroCopyTraceRefresh | Tracer::ZeroCopyTraceTracepoints => {
            let out = dir.join(format!("{}.json", tracer.key()));
            let mut c = Command::new(&tools.agent);
            c.args(["report", "--json", "--output"]).arg(&out);
            match tracer {
                Tracer::ZeroCopyTraceTracepoints => {
                    c.args(["--hook", "tracepoints"]);
                }
                Tracer::ZeroCopyTraceRefresh => {
                    c.args(["--refresh", "1s"]);
                }
                _ => {}
            }
            json = Some(out);
            c
        }
        // Empty programs on the same hooks, loaded by the agent itself: bpftrace cannot attach
        // a raw tracepoint on every version, and the agent's own hooks are what to compare.
        Tracer::EmptyFloor | Tracer::EmptyFloorTracepoints => {
            let mut c = Command::new(&tools.agent);
            c.arg("floor");
            if tracer == Tracer::EmptyFloorTracepoints {
                c.args(["--hook", "tracepoints"]);
            }
            c
        }
        Tracer::Bpftrace => {
            let program = counters_program();
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

impl Running {
    fn wait_attached(mut self, started: Instant) -> Result<Self> {
        let need = self.tracer.min_attachments();
        let mut last = (0, Instant::now());
        loop {
            if let Some(reaped) = procfs::reap(self.pid, false)? {
                bail!(
                    "{} exited before attaching ({}): {}",
                    self.tracer.label(),
                    reaped.describe(),
                    self.stderr_tail()
                );
            }
            let now = Instant::now();
            let count = procfs::attachments(self.pid);
            if count != last.0 {
                last = (count, now);
            } else if count >= need && count > 0 && now - last.1 >= SETTLE {
                self.attach_s = (last.1 - started).as_secs_f64();
                return Ok(self);
            }
            if now - started > ATTACH_PATIENCE {
                let _ = procfs::signal(self.pid, libc::SIGKILL);
                let _ = procfs::reap(self.pid, true);
                bail!(
                    "{} attached {count} of {need} hooks within {ATTACH_PATIENCE:?}: {}",
                    self.tracer.label(),
                    self.stderr_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// SIGINT, as an operator's Ctrl-C; then the tracer's lifetime cost and losses.
    pub fn stop(self) -> Result<Stopped> {
        // The peak while tracing, from the process's own memory map. wait4's ru_maxrss would
        // not do: it keeps the RSS the child inherited at fork from this (larger) process.
        let peak_rss_kib = procfs::vm_hwm_kib(self.pid).unwrap_or(0);
        procfs::signal(self.pid, libc::SIGINT)?;
        let asked = Instant::now();
        let reaped: Reaped = procfs::reap_within(self.pid, STOP_PATIENCE)
            .with_context(|| format!("stopping {}", self.tracer.label()))?;
        let detach_s = asked.elapsed().as_secs_f64();
        if !reaped.success() {
            eprintln!(
                "xtask: warning: {} ended with {}: {}",
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

    fn stderr_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.stderr).unwrap_or_default();
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
    fn counters_program_counts_at_exit() {
        let program = counters_program();
        assert_eq!(program.matches("tracepoint:").count(), 2 * SYSCALL_COUNT);
        assert!(program.contains("@bytes[pid, probe] = sum(args->ret)"));
        assert_eq!(program.matches("delete(@pending[tid])").count(), 1);
    }

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
        use super::super::workloads::Workload;
        assert!(Tracer::PerfTrace.runs(Workload::Storm));
        assert!(!Tracer::PerfTrace.runs(Workload::Churn));
        assert!(Tracer::ZeroCopyTrace.runs(Workload::Many));
        assert_eq!(Tracer::PerfTrace.storm_shrink(), PERF_STORM_SHRINK);
        assert_eq!(Tracer::Bpftrace.storm_shrink(), 1);
    }
}
