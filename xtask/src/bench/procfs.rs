//! What the bench reads from the kernel about a process: CPU time, attached hooks and BPF
//! program stats (from `/proc/PID/fd` and `fdinfo`), the `kernel.bpf_stats_enabled` switch; and
//! the two process calls std lacks (sending SIGINT, `wait4` with the child's rusage).

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

const BPF_STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";

/// A process's user + system CPU seconds so far, from `/proc/PID/stat`.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let ticks = stat_cpu_ticks(&text)?;
    Some(ticks as f64 / clock_ticks_per_second())
}

/// utime + stime, in clock ticks, from the text of `/proc/PID/stat`.
pub fn stat_cpu_ticks(stat: &str) -> Option<u64> {
    // The command name may hold spaces and parentheses: the fields resume after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After ')' comes field 3 (state); utime is field 14 and stime field 15.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime.saturating_add(stime))
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a constant of the C library; no memory is passed.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// What each open fd of `pid` points to (`anon_inode:bpf-prog`, a path, ...).
fn fd_targets(pid: u32) -> Vec<(String, String)> {
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    dir.filter_map(|entry| {
        let entry = entry.ok()?;
        let target = fs::read_link(entry.path()).ok()?;
        Some((
            entry.file_name().to_string_lossy().into_owned(),
            target.to_string_lossy().into_owned(),
        ))
    })
    .collect()
}

/// How many hooks `pid` holds attached: BPF links (aya) and perf events (bpftrace, perf).
pub fn attachments(pid: u32) -> usize {
    fd_targets(pid)
        .iter()
        .filter(|(_, target)| is_attachment(target))
        .count()
}

/// Processes other than `exclude` holding at least `min` attached hooks: other tracers (a
/// test suite, a forgotten bpftrace) whose programs would run in every traced and untraced run
/// alike and skew the comparison. Returns pid and command line.
pub fn other_tracers(exclude: &[u32], min: usize) -> Vec<(u32, String)> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let me = std::process::id();
    let mut found: Vec<(u32, String)> = dir
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me && !exclude.contains(pid))
        .filter(|&pid| attachments(pid) >= min)
        .map(|pid| {
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let text: String = String::from_utf8_lossy(&cmdline)
                .replace('\0', " ")
                .trim()
                .chars()
                .take(80)
                .collect();
            (pid, text)
        })
        .collect();
    found.sort();
    found
}

fn is_attachment(target: &str) -> bool {
    matches!(target, "anon_inode:bpf_link" | "anon_inode:[perf_event]")
}

/// One BPF program's cumulative stats (non-zero only while `kernel.bpf_stats_enabled` is 1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProgStats {
    pub run_time_ns: u64,
    pub run_cnt: u64,
}

/// The stats of every BPF program `pid` holds open, by program id.
pub fn prog_stats(pid: u32) -> BTreeMap<u32, ProgStats> {
    fd_targets(pid)
        .into_iter()
        .filter(|(_, target)| target == "anon_inode:bpf-prog")
        .filter_map(|(fd, _)| fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).ok())
        .filter_map(|text| parse_prog_fdinfo(&text))
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
                "xtask: warning: could not restore {BPF_STATS} to {}: {err}",
                self.previous
            );
        }
    }
}

/// How a reaped child ended and what it cost, from `wait4`.
#[derive(Clone, Copy, Debug)]
pub struct Reaped {
    status: i32,
    /// User + system CPU seconds of the child and of the descendants it waited for.
    pub cpu_s: f64,
}

impl Reaped {
    pub fn success(&self) -> bool {
        libc::WIFEXITED(self.status) && libc::WEXITSTATUS(self.status) == 0
    }

    pub fn describe(&self) -> String {
        if libc::WIFEXITED(self.status) {
            format!("exit code {}", libc::WEXITSTATUS(self.status))
        } else if libc::WIFSIGNALED(self.status) {
            format!("killed by signal {}", libc::WTERMSIG(self.status))
        } else {
            format!("wait status {:#x}", self.status)
        }
    }
}

fn pid_t(pid: u32) -> Result<libc::pid_t> {
    libc::pid_t::try_from(pid).with_context(|| format!("pid {pid} out of range"))
}

/// Sends `signal` to our child `pid` (not yet reaped, so the pid cannot have been reused).
/// Peak resident memory of a live process (`VmHWM` of /proc/PID/status), in KiB.
pub fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

pub fn signal(pid: u32, signal: libc::c_int) -> Result<()> {
    let target = pid_t(pid)?;
    // SAFETY: kill passes no memory; the target is our own unreaped child.
    if unsafe { libc::kill(target, signal) } != 0 {
        return Err(io::Error::last_os_error()).with_context(|| format!("signalling pid {pid}"));
    }
    Ok(())
}

/// Reaps our child `pid`: waits for it when `block`, else returns `None` while it runs.
pub fn reap(pid: u32, block: bool) -> Result<Option<Reaped>> {
    let target = pid_t(pid)?;
    let flags = if block { 0 } else { libc::WNOHANG };
    loop {
        let mut status = 0;
        // SAFETY: rusage is plain integers, for which all-zero bytes are a valid value.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: status and usage are live, writable locals for the whole call.
        let rc = unsafe { libc::wait4(target, &mut status, flags, &mut usage) };
        if rc == 0 {
            return Ok(None);
        }
        if rc < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err).with_context(|| format!("waiting for pid {pid}"));
        }
        let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        return Ok(Some(Reaped {
            status,
            cpu_s: seconds(usage.ru_utime) + seconds(usage.ru_stime),
        }));
    }
}

/// Reaps `pid`, killing it if it has not exited within `patience`.
pub fn reap_within(pid: u32, patience: Duration) -> Result<Reaped> {
    let deadline = Instant::now() + patience;
    while Instant::now() < deadline {
        if let Some(reaped) = reap(pid, false)? {
            return Ok(reaped);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    signal(pid, libc::SIGKILL)?;
    reap(pid, true)?;
    bail!("pid {pid} did not exit within {patience:?}; killed it")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_survive_odd_command_names() {
        let stat = "4242 (a b) c)) S 1 4242 4242 0 -1 4194560 100 0 0 0 7 5 0 0 20 0 1 0 99 \
                    1000 10 18446744073709551615";
        assert_eq!(stat_cpu_ticks(stat), Some(12));
        assert_eq!(stat_cpu_ticks("4242 (x) S 1"), None);
        assert_eq!(stat_cpu_ticks(""), None);
    }

    #[test]
    fn own_cpu_time_is_readable() {
        assert!(cpu_seconds(std::process::id()).is_some());
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
        assert!(is_attachment("anon_inode:bpf_link"));
        assert!(is_attachment("anon_inode:[perf_event]"));
        assert!(!is_attachment("anon_inode:bpf-prog"));
        assert!(!is_attachment("/dev/null"));
    }
}
