//! What the bench reads from /proc about a process (CPU time, memory, attached hooks, BPF
//! program stats), through the `procfs` crate, and the `kernel.bpf_stats_enabled` switch.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;

use anyhow::{Context, Result};
use procfs::process::{FDTarget, Process};
use procfs::{Current, Meminfo};

const BPF_STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";

fn process(pid: u32) -> Option<Process> {
    Process::new(i32::try_from(pid).ok()?).ok()
}

/// A process's user + system CPU seconds so far.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = process(pid)?.stat().ok()?;
    let ticks = stat.utime.saturating_add(stat.stime);
    Some(ticks as f64 / procfs::ticks_per_second().max(1) as f64)
}

/// Peak resident memory of a live process (`VmHWM`), in KiB.
pub fn vm_hwm_kib(pid: u32) -> Option<u64> {
    process(pid)?.status().ok()?.vmhwm
}

/// Resident memory of a live process now (`VmRSS`), in KiB.
pub fn vm_rss_kib(pid: u32) -> Option<u64> {
    process(pid)?.status().ok()?.vmrss
}

/// Memory the machine could give without swapping, in KiB.
pub fn mem_available_kib() -> Option<u64> {
    Some(Meminfo::current().ok()?.mem_available? / 1024)
}

/// The anonymous-inode kind of each open fd of `pid` (`bpf-prog`, `bpf_link`, ...), by fd.
fn anon_fds(pid: u32) -> Vec<(i32, String)> {
    let Some(fds) = process(pid).and_then(|p| p.fd().ok()) else {
        return Vec::new();
    };
    fds.filter_map(|fd| {
        let fd = fd.ok()?;
        match fd.target {
            FDTarget::AnonInode(kind) => Some((fd.fd, kind)),
            _ => None,
        }
    })
    .collect()
}

/// How many hooks `pid` holds attached: BPF links (aya) and perf events (bpftrace, perf).
pub fn attachments(pid: u32) -> usize {
    anon_fds(pid)
        .iter()
        .filter(|(_, kind)| is_attachment(kind))
        .count()
}

fn is_attachment(anon_kind: &str) -> bool {
    matches!(anon_kind, "bpf_link" | "[perf_event]")
}

/// Processes other than `exclude` holding at least `min` attached hooks: other tracers (a
/// test suite, a forgotten bpftrace) whose programs would run in every traced and untraced run
/// alike and skew the comparison. Returns pid and command line.
pub fn other_tracers(exclude: &[u32], min: usize) -> Vec<(u32, String)> {
    let Ok(all) = procfs::process::all_processes() else {
        return Vec::new();
    };
    let me = std::process::id();
    let mut found: Vec<(u32, String)> = all
        .filter_map(|p| p.ok())
        .filter_map(|p| Some((u32::try_from(p.pid).ok()?, p)))
        .filter(|(pid, _)| *pid != me && !exclude.contains(pid))
        .filter(|(pid, _)| attachments(*pid) >= min)
        .map(|(pid, p)| {
            let cmdline = p.cmdline().unwrap_or_default().join(" ");
            (pid, cmdline.chars().take(80).collect())
        })
        .collect();
    found.sort();
    found
}

/// One BPF program's cumulative stats (non-zero only while `kernel.bpf_stats_enabled` is 1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProgStats {
    pub run_time_ns: u64,
    pub run_cnt: u64,
}

/// The stats of every BPF program `pid` holds open, by program id.
pub fn prog_stats(pid: u32) -> BTreeMap<u32, ProgStats> {
    let Some(proc) = process(pid) else {
        return BTreeMap::new();
    };
    anon_fds(pid)
        .into_iter()
        .filter(|(_, kind)| kind == "bpf-prog")
        .filter_map(|(fd, _)| {
            // procfs has no parser for a BPF fd's fdinfo: its lines are the kernel's own.
            let mut text = String::new();
            proc.open_relative(format!("fdinfo/{fd}"))
                .ok()?
                .read_to_string(&mut text)
                .ok()?;
            parse_prog_fdinfo(&text)
        })
        .collect()
}

/// `prog_id`, `run_time_ns` and `run_cnt` from a bpf-prog fd's `fdinfo`.
pub fn parse_prog_fdinfo(text: &str) -> Option<(u32, ProgStats)> {
    let mut id = None;
    let mut stats = ProgStats::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key.trim() {
            "prog_id" => id = value.parse().ok(),
            "run_time_ns" => stats.run_time_ns = value.parse().ok()?,
            "run_cnt" => stats.run_cnt = value.parse().ok()?,
            _ => {}
        }
    }
    Some((id?, stats))
}

/// Per-program growth from `before` to `after`; programs absent before count from zero.
pub fn prog_delta(
    before: &BTreeMap<u32, ProgStats>,
    after: &BTreeMap<u32, ProgStats>,
) -> BTreeMap<u32, ProgStats> {
    after
        .iter()
        .map(|(id, now)| {
            let then = before.get(id).copied().unwrap_or_default();
            (
                *id,
                ProgStats {
                    run_time_ns: now.run_time_ns.saturating_sub(then.run_time_ns),
                    run_cnt: now.run_cnt.saturating_sub(then.run_cnt),
                },
            )
        })
        .collect()
}

/// `kernel.bpf_stats_enabled` switched on for as long as this lives; the old value comes back on
/// drop (also when the bench fails half way).
pub struct BpfStats {
    previous: String,
}

impl BpfStats {
    pub fn enable() -> Result<Self> {
        let previous = fs::read_to_string(BPF_STATS)
            .with_context(|| format!("reading {BPF_STATS}"))?
            .trim()
            .to_owned();
        fs::write(BPF_STATS, "1").with_context(|| format!("writing 1 to {BPF_STATS}"))?;
        Ok(Self { previous })
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        if let Err(err) = fs::write(BPF_STATS, &self.previous) {
            eprintln!(
                "bench: warning: could not restore {BPF_STATS} to {}: {err}",
                self.previous
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_cpu_and_memory_are_readable() {
        let me = std::process::id();
        assert!(cpu_seconds(me).is_some());
        // Two reads: the RSS may have grown past the first read's peak in between.
        assert!(vm_hwm_kib(me).is_some_and(|kib| kib > 0));
        assert!(vm_rss_kib(me).is_some_and(|kib| kib > 0));
        assert!(mem_available_kib().is_some_and(|kib| kib > 0));
    }

    #[test]
    fn a_missing_process_reads_as_nothing() {
        // pid_max is at most 2^22: this pid cannot exist.
        let gone = 1 << 23;
        assert_eq!(cpu_seconds(gone), None);
        assert_eq!(vm_hwm_kib(gone), None);
        assert_eq!(attachments(gone), 0);
        assert!(prog_stats(gone).is_empty());
    }

    #[test]
    fn prog_fdinfo_fields() {
        let text = "pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t1057\nprog_type:\t5\n\
                    prog_jited:\t1\nprog_tag:\tab\nmemlock:\t4096\nprog_id:\t77\n\
                    run_time_ns:\t1500\nrun_cnt:\t10\nrecursion_misses:\t0\n";
        assert_eq!(
            parse_prog_fdinfo(text),
            Some((
                77,
                ProgStats {
                    run_time_ns: 1500,
                    run_cnt: 10
                }
            ))
        );
        assert_eq!(parse_prog_fdinfo("pos:\t0\n"), None);
    }

    #[test]
    fn deltas_saturate_and_count_new_programs_from_zero() {
        let stats = |run_time_ns, run_cnt| ProgStats {
            run_time_ns,
            run_cnt,
        };
        let before = BTreeMap::from([(1, stats(100, 10)), (2, stats(50, 5))]);
        let after = BTreeMap::from([(1, stats(160, 13)), (2, stats(40, 5)), (3, stats(7, 1))]);
        let delta = prog_delta(&before, &after);
        assert_eq!(delta[&1], stats(60, 3));
        assert_eq!(delta[&2], stats(0, 0));
        assert_eq!(delta[&3], stats(7, 1));
    }

    #[test]
    fn this_test_is_no_tracer() {
        assert!(other_tracers(&[], 1)
            .iter()
            .all(|(pid, _)| *pid != std::process::id()));
    }

    #[test]
    fn attachment_fds() {
        assert!(is_attachment("bpf_link"));
        assert!(is_attachment("[perf_event]"));
        assert!(!is_attachment("bpf-prog"));
        assert!(!is_attachment("[eventfd]"));
    }
}
