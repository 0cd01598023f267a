//! The bench's results: the records of each run, the summary computed from them (pure: pairs
//! are matched by round, so every ratio compares runs made minutes apart at most), the goals of
//! the issue, and the table that shows them.

use std::collections::BTreeSet;
use std::fmt::Write;

use serde::Serialize;

use super::stats::{ratio, spread, Spread};
use super::tracers::{Stopped, Tracer};
use super::workloads::{Metric, Workload};

/// One timed workload run.
#[derive(Clone, Debug, Serialize)]
pub struct Run {
    pub round: usize,
    pub tracer: Tracer,
    pub workload: Workload,
    pub wall_s: f64,
    /// CPU of the workload's whole process tree.
    pub cpu_s: f64,
    /// Traced syscalls the run made, where known exactly (the storm).
    pub syscalls: Option<u64>,
    /// CPU the tracer's own process used during the run.
    pub tracer_cpu_s: Option<f64>,
}

/// One tracer's life: attached for a round's workloads (or for the stats pass), then stopped.
#[derive(Clone, Debug, Serialize)]
pub struct Session {
    /// `None` for the BPF stats pass.
    pub round: Option<usize>,
    pub tracer: Tracer,
    #[serde(flatten)]
    pub stopped: Stopped,
}

/// One BPF program's cost over one storm run, from the kernel's BPF stats.
#[derive(Clone, Debug, Serialize)]
pub struct Prog {
    pub tracer: Tracer,
    pub id: u32,
    pub name: String,
    pub run_cnt: u64,
    pub run_time_ns: u64,
    /// Traced syscalls of the storm run measured.
    pub syscalls: u64,
}

/// One line of the summary: a workload under a tracer.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub workload: Workload,
    pub tracer: Tracer,
    /// `wall_s` or `cpu_s`: which number `value` is.
    pub metric: &'static str,
    pub value: Spread,
    /// Traced / untraced, pair by pair within a round (per syscall where sizes differ).
    pub vs_untraced: Option<Spread>,
    /// Time a traced syscall gained, pair by pair (the storm only).
    pub added_ns_per_syscall: Option<Spread>,
    pub tracer_cpu_s: Option<Spread>,
    /// The tracer's CPU over the run's length, % of one core.
    pub tracer_cpu_pct: Option<Spread>,
}

fn metric(workload: Workload) -> (&'static str, fn(&Run) -> f64) {
    match workload.metric() {
        Metric::Wall => ("wall_s", |r| r.wall_s),
        Metric::Cpu => ("cpu_s", |r| r.cpu_s),
    }
}

/// Seconds per traced syscall.
fn per_call(run: &Run) -> Option<f64> {
    run.syscalls.and_then(|n| ratio(run.wall_s, n as f64))
}

/// Each run of `tracer` on `workload` with the untraced run of the same round.
fn pairs(runs: &[Run], tracer: Tracer, workload: Workload) -> Vec<(&Run, &Run)> {
    let find = |t: Tracer, round: usize| {
        runs.iter()
            .find(|r| r.tracer == t && r.workload == workload && r.round == round)
    };
    runs.iter()
        .filter(|r| r.tracer == tracer && r.workload == workload)
        .filter_map(|traced| Some((find(Tracer::None, traced.round)?, traced)))
        .collect()
}

fn pair_ratio(base: &Run, traced: &Run) -> Option<f64> {
    match (per_call(base), per_call(traced)) {
        (Some(b), Some(t)) => ratio(t, b),
        _ => {
            let (_, value) = metric(traced.workload);
            ratio(value(traced), value(base))
        }
    }
}

fn added_ns(base: &Run, traced: &Run) -> Option<f64> {
    Some((per_call(traced)? - per_call(base)?) * 1e9)
}

/// The summary, one row per workload and tracer that ran, in run order.
pub fn rows(runs: &[Run]) -> Vec<Row> {
    let keys: BTreeSet<(Workload, Tracer)> = runs.iter().map(|r| (r.workload, r.tracer)).collect();
    keys.into_iter()
        .filter_map(|(workload, tracer)| {
            let (name, value) = metric(workload);
            let mine: Vec<&Run> = runs
                .iter()
                .filter(|r| r.workload == workload && r.tracer == tracer)
                .collect();
            let values: Vec<f64> = mine.iter().map(|r| value(r)).collect();
            let pairs = pairs(runs, tracer, workload);
            let traced = tracer != Tracer::None;
            let collect = |f: &dyn Fn(&Run) -> Option<f64>| {
                let v: Vec<f64> = mine.iter().filter_map(|r| f(r)).collect();
                spread(&v)
            };
            Some(Row {
                workload,
                tracer,
                metric: name,
                value: spread(&values)?,
                vs_untraced: traced
                    .then(|| {
                        let v: Vec<f64> =
                            pairs.iter().filter_map(|(b, t)| pair_ratio(b, t)).collect();
                        spread(&v)
                    })
                    .flatten(),
                added_ns_per_syscall: traced
                    .then(|| {
                        let v: Vec<f64> =
                            pairs.iter().filter_map(|(b, t)| added_ns(b, t)).collect();
                        spread(&v)
                    })
                    .flatten(),
                tracer_cpu_s: collect(&|r| r.tracer_cpu_s),
                tracer_cpu_pct: collect(&|r| ratio(r.tracer_cpu_s?, r.wall_s).map(|f| f * 100.0)),
            })
        })
        .collect()
}

/// One of the goals, as measured.
#[derive(Clone, Debug, Serialize)]
pub struct Goal {
    pub name: &'static str,
    /// The value may not exceed this.
    pub limit: f64,
    pub value: Option<Spread>,
    /// Judged on the median for ratios and rates, on the worst run for RSS and drops.
    pub met: Option<bool>,
}

/// Added time per storm syscall of `ours` over that of `other`, round by round.
fn added_ratios(runs: &[Run], ours: Tracer, other: Tracer) -> Vec<f64> {
    let ours = pairs(runs, ours, Workload::Storm);
    let theirs = pairs(runs, other, Workload::Storm);
    ours.iter()
        .filter_map(|(b, t)| {
            let (ob, ot) = theirs.iter().find(|(ob, _)| ob.round == b.round)?;
            ratio(added_ns(b, t)?, added_ns(ob, ot)?)
        })
        .collect()
}

pub fn goals(runs: &[Run], sessions: &[Session]) -> Vec<Goal> {
    let on_median = |name, limit, values: &[f64]| {
        let value = spread(values);
        Goal {
            name,
            limit,
            value,
            met: value.map(|s| s.median <= limit),
        }
    };
    let on_worst = |name, limit, values: &[f64]| {
        let value = spread(values);
        Goal {
            name,
            limit,
            value,
            met: value.map(|s| s.max <= limit),
        }
    };
    let agent_cpu: Vec<f64> = runs
        .iter()
        .filter(|r| r.tracer == Tracer::ZeroCopyTraceRefresh && r.workload == Workload::Many)
        .filter_map(|r| ratio(r.tracer_cpu_s?, r.wall_s).map(|f| f * 100.0))
        .collect();
    let ours: Vec<&Session> = sessions
        .iter()
        .filter(|s| {
            matches!(
                s.tracer,
                Tracer::ZeroCopyTrace | Tracer::ZeroCopyTraceRefresh
            )
        })
        .collect();
    let rss: Vec<f64> = ours
        .iter()
        .map(|s| s.stopped.peak_rss_kib as f64 / 1024.0)
        .collect();
    let dropped: Vec<f64> = ours
        .iter()
        .filter_map(|s| s.stopped.dropped_calls.as_ref())
        .map(|d| d.values().sum::<u64>() as f64)
        .collect();
    vec![
        on_median(
            "storm: zerocopy-trace added / bpftrace added",
            0.4,
            &added_ratios(runs, Tracer::ZeroCopyTrace, Tracer::Bpftrace),
        ),
        on_median(
            "storm: zerocopy-trace added / empty floor added",
            1.25,
            &added_ratios(runs, Tracer::ZeroCopyTrace, Tracer::EmptyFloor),
        ),
        on_median(
            "storm: --hook tracepoints added / its empty floor added",
            1.25,
            &added_ratios(
                runs,
                Tracer::ZeroCopyTraceTracepoints,
                Tracer::EmptyFloorTracepoints,
            ),
        ),
        on_median(
            "many processes: agent CPU at 1 s refresh, % of a core",
            2.0,
            &agent_cpu,
        ),
        on_worst("agent peak RSS, MiB", 40.0, &rss),
        on_worst("dropped calls per session", 0.0, &dropped),
    ]
}

/// Calls lost over all `sessions`, with the reasons that lost any: "8 (missing_enter 8)".
fn dropped_text(sessions: &[&Stopped]) -> String {
    let mut by_reason = std::collections::BTreeMap::new();
    let mut reported = false;
    for dropped in sessions.iter().filter_map(|s| s.dropped_calls.as_ref()) {
        reported = true;
        for (reason, calls) in dropped {
            *by_reason.entry(reason.as_str()).or_insert(0u64) += calls;
        }
    }
    if !reported {
        return "n/a".to_owned();
    }
    let total: u64 = by_reason.values().sum();
    let reasons: Vec<String> = by_reason
        .iter()
        .filter(|(_, &calls)| calls > 0)
        .map(|(reason, calls)| format!("{reason} {calls}"))
        .collect();
    if reasons.is_empty() {
        total.to_string()
    } else {
        format!("{total} ({})", reasons.join(", "))
    }
}

fn secs(v: f64) -> String {
    if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

fn range(s: &Spread, f: fn(f64) -> String) -> String {
    format!("{}-{}", f(s.min), f(s.max))
}

/// The side-by-side table, the tracers' own costs, the BPF programs and the goals.
pub fn render(rows: &[Row], sessions: &[Session], progs: &[Prog], goals: &[Goal]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<15} {:<15} {:>2} {:>11} {:>15} {:>13} {:>13} {:>13}",
        "workload", "tracer", "n", "median", "min-max", "x untraced", "+ns/syscall", "tracer CPU"
    );
    let mut last = None;
    for row in rows {
        if last.is_some() && last != Some(row.workload) {
            out.push('\n');
        }
        last = Some(row.workload);
        let unit = if row.metric == "cpu_s" { "s cpu" } else { "s" };
        let ratio = row
            .vs_untraced
            .map_or(String::new(), |s| format!("{:.2}x", s.median));
        let added = row
            .added_ns_per_syscall
            .map_or(String::new(), |s| format!("{:+.0} ns", s.median));
        let cpu = match (row.workload, row.tracer_cpu_pct, row.tracer_cpu_s) {
            (Workload::Many, Some(pct), _) => format!("{:.1}% core", pct.median),
            (_, _, Some(s)) => format!("{} s", secs(s.median)),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "{:<15} {:<15} {:>2} {:>11} {:>15} {:>13} {:>13} {:>13}",
            row.workload.label(),
            row.tracer.label(),
            row.value.n,
            format!("{} {unit}", secs(row.value.median)),
            range(&row.value, secs),
            ratio,
            added,
            cpu
        );
    }

    let _ = writeln!(
        out,
        "\n{:<15} {:>8} {:>9} {:>9} {:>9} {:>10}  dropped calls, all sessions",
        "tracer", "sessions", "attach s", "detach s", "CPU s", "peak RSS"
    );
    let tracers: BTreeSet<Tracer> = sessions.iter().map(|s| s.tracer).collect();
    for tracer in tracers {
        let mine: Vec<&Stopped> = sessions
            .iter()
            .filter(|s| s.tracer == tracer)
            .map(|s| &s.stopped)
            .collect();
        let median = |f: fn(&Stopped) -> f64| {
            let v: Vec<f64> = mine.iter().map(|s| f(s)).collect();
            spread(&v).map_or(0.0, |s| s.median)
        };
        let rss = mine.iter().map(|s| s.peak_rss_kib).max().unwrap_or(0);
        let dropped = dropped_text(&mine);
        let _ = writeln!(
            out,
            "{:<15} {:>8} {:>9.2} {:>9.2} {:>9.2} {:>6.1} MiB  {}",
            tracer.label(),
            mine.len(),
            median(|s| s.attach_s),
            median(|s| s.detach_s),
            median(|s| s.cpu_s),
            rss as f64 / 1024.0,
            dropped
        );
    }

    if !progs.is_empty() {
        let _ = writeln!(
            out,
            "\nBPF programs over one storm run (kernel.bpf_stats_enabled=1):\n{:<15} {:<22} {:>11} {:>9} {:>14}",
            "tracer", "program", "runs", "ns/run", "ns/syscall"
        );
        let tracers: BTreeSet<Tracer> = progs.iter().map(|p| p.tracer).collect();
        for tracer in tracers {
            let mine: Vec<&Prog> = progs.iter().filter(|p| p.tracer == tracer).collect();
            let mut line = |name: &str, cnt: u64, ns: u64, syscalls: u64| {
                let per_run = ratio(ns as f64, cnt as f64).unwrap_or(0.0);
                let per_call = ratio(ns as f64, syscalls as f64).unwrap_or(0.0);
                let _ = writeln!(
                    out,
                    "{:<15} {:<22} {:>11} {:>9.1} {:>14.1}",
                    tracer.label(),
                    name,
                    cnt,
                    per_run,
                    per_call
                );
            };
            let syscalls = mine.first().map_or(0, |p| p.syscalls);
            // bpftrace loads one program per probe: only their total says something.
            if tracer == Tracer::ZeroCopyTrace {
                for p in mine.iter().filter(|p| p.run_cnt > 0) {
                    line(&p.name, p.run_cnt, p.run_time_ns, p.syscalls);
                }
            }
            let cnt = mine.iter().map(|p| p.run_cnt).sum();
            let ns = mine.iter().map(|p| p.run_time_ns).sum();
            line(&format!("all {} programs", mine.len()), cnt, ns, syscalls);
        }
    }

    let _ = writeln!(
        out,
        "\n{:<50} {:>7} {:>20} {:>6}",
        "goal", "limit", "median (min-max)", "met"
    );
    for goal in goals {
        let (value, met) = match goal.value {
            Some(s) => (
                format!("{:.2} ({:.2}-{:.2})", s.median, s.min, s.max),
                match goal.met {
                    Some(true) => "yes",
                    _ => "NO",
                },
            ),
            None => ("not measured".to_owned(), "-"),
        };
        let _ = writeln!(
            out,
            "{:<50} {:>7} {:>20} {:>6}",
            goal.name, goal.limit, value, met
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(
        round: usize,
        tracer: Tracer,
        workload: Workload,
        wall_s: f64,
        syscalls: Option<u64>,
    ) -> Run {
        Run {
            round,
            tracer,
            workload,
            wall_s,
            cpu_s: wall_s / 2.0,
            syscalls,
            tracer_cpu_s: (tracer != Tracer::None).then_some(wall_s / 100.0),
        }
    }

    fn storm(round: usize, tracer: Tracer, wall_s: f64) -> Run {
        run(round, tracer, Workload::Storm, wall_s, Some(1_000_000))
    }

    #[test]
    fn ratios_pair_runs_of_the_same_round() {
        let runs = [
            storm(0, Tracer::None, 1.0),
            storm(0, Tracer::ZeroCopyTrace, 1.1),
            storm(1, Tracer::None, 2.0),
            storm(1, Tracer::ZeroCopyTrace, 2.2),
        ];
        let rows = rows(&runs);
        let ours = rows
            .iter()
            .find(|r| r.tracer == Tracer::ZeroCopyTrace)
            .unwrap();
        // Each pair is 1.1x, though the medians of the two columns are 1.5 and 1.65.
        let ratio = ours.vs_untraced.unwrap();
        assert!((ratio.median - 1.1).abs() < 1e-9 && (ratio.max - 1.1).abs() < 1e-9);
        let added = ours.added_ns_per_syscall.unwrap();
        assert!((added.min - 100.0).abs() < 1e-6 && (added.max - 200.0).abs() < 1e-6);
        let base = rows.iter().find(|r| r.tracer == Tracer::None).unwrap();
        assert!(base.vs_untraced.is_none() && base.added_ns_per_syscall.is_none());
    }

    #[test]
    fn shrunk_runs_compare_per_syscall() {
        let runs = [
            storm(0, Tracer::None, 1.0),
            run(0, Tracer::PerfTrace, Workload::Storm, 0.5, Some(100_000)),
        ];
        let rows = rows(&runs);
        let perf = rows.iter().find(|r| r.tracer == Tracer::PerfTrace).unwrap();
        assert!((perf.vs_untraced.unwrap().median - 5.0).abs() < 1e-9);
        assert!((perf.added_ns_per_syscall.unwrap().median - 4000.0).abs() < 1e-6);
    }

    #[test]
    fn a_run_without_its_untraced_pair_has_no_ratio() {
        let runs = [storm(0, Tracer::Bpftrace, 1.0)];
        let rows = rows(&runs);
        assert_eq!(rows.len(), 1);
        assert!(rows[0].vs_untraced.is_none());
    }

    #[test]
    fn goals_from_one_run() {
        let runs = [
            storm(0, Tracer::None, 1.0),
            storm(0, Tracer::ZeroCopyTrace, 1.06),
            storm(0, Tracer::EmptyFloor, 1.05),
            storm(0, Tracer::Bpftrace, 1.2),
            storm(0, Tracer::ZeroCopyTraceTracepoints, 1.1),
            storm(0, Tracer::EmptyFloorTracepoints, 1.05),
            run(0, Tracer::ZeroCopyTraceRefresh, Workload::Many, 4.0, None),
        ];
        let sessions = [Session {
            round: Some(0),
            tracer: Tracer::ZeroCopyTrace,
            stopped: Stopped {
                attach_s: 1.0,
                detach_s: 2.0,
                cpu_s: 0.1,
                peak_rss_kib: 20 * 1024,
                dropped_calls: Some([("missing_enter".to_owned(), 2)].into()),
            },
        }];
        let goals = goals(&runs, &sessions);
        let value = |i: usize| goals[i].value.unwrap().median;
        assert!((value(0) - 0.3).abs() < 1e-9);
        assert_eq!(goals[0].met, Some(true));
        assert!((value(1) - 1.2).abs() < 1e-9);
        assert_eq!(goals[1].met, Some(true));
        // --hook tracepoints: +0.10 over its floor's +0.05.
        assert!((value(2) - 2.0).abs() < 1e-9);
        assert_eq!(goals[2].met, Some(false));
        assert!((value(3) - 1.0).abs() < 1e-9);
        assert_eq!(goals[4].met, Some(true));
        assert_eq!(goals[5].met, Some(false));
        let table = render(&rows(&runs), &sessions, &[], &goals);
        assert!(table.contains("syscall storm"));
        assert!(table.contains("dropped calls per session"));
    }

    #[test]
    fn nothing_measured_is_said_so() {
        let goals = goals(&[], &[]);
        assert!(goals.iter().all(|g| g.value.is_none() && g.met.is_none()));
        assert!(render(&[], &[], &[], &goals).contains("not measured"));
    }
}
