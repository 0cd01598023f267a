//! The bench's records (each run, each tracer's session, each BPF program's stats) and the
//! summary computed from them. Pure: pairs are matched by round, so every ratio compares runs
//! made minutes apart at most.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::stats::{ratio, spread, Spread};
use crate::tracers::{Stopped, Tracer};
use crate::workloads::{Metric, Workload};

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
    /// Requests a server answered, and how many a second (the server workloads).
    pub requests: Option<u64>,
    pub requests_per_s: Option<f64>,
    /// CPU the tracer's own process used during the run.
    pub tracer_cpu_s: Option<f64>,
}

/// Which part of the bench a tracer's session served.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pass {
    /// The timed runs of one round.
    Round(usize),
    /// The pass with `kernel.bpf_stats_enabled` on.
    BpfStats,
    /// The agent's memory under process churn.
    Churn,
}

/// One tracer's life: attached for a pass, then stopped.
#[derive(Clone, Debug, Serialize)]
pub struct Session {
    pub pass: Pass,
    pub tracer: Tracer,
    #[serde(flatten)]
    pub stopped: Stopped,
}

/// One BPF program's cost over one run, from the kernel's BPF stats.
#[derive(Clone, Debug, Serialize)]
pub struct Prog {
    pub tracer: Tracer,
    pub workload: Workload,
    pub id: u32,
    pub name: String,
    pub run_cnt: u64,
    pub run_time_ns: u64,
    /// What the run did, to divide by: traced syscalls of the storm, requests of a server.
    pub units: u64,
}

/// One line of the summary: a workload under a tracer.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub workload: Workload,
    pub tracer: Tracer,
    /// `wall_s`, `cpu_s` or `requests_per_s`: which number `value` is.
    pub metric: &'static str,
    pub value: Spread,
    /// Traced / untraced, pair by pair within a round (per syscall where sizes differ; for a
    /// server, requests/s, so below 1 is a loss).
    pub vs_untraced: Option<Spread>,
    /// Time a traced syscall gained, pair by pair (the storm only).
    pub added_ns_per_syscall: Option<Spread>,
    /// Requests/s lost, % of the untraced run's, pair by pair (the servers only).
    pub loss_pct: Option<Spread>,
    pub tracer_cpu_s: Option<Spread>,
    /// The tracer's CPU over the run's length, % of one core.
    pub tracer_cpu_pct: Option<Spread>,
}

pub fn metric(workload: Workload) -> (&'static str, fn(&Run) -> f64) {
    match workload.metric() {
        Metric::Wall => ("wall_s", |r| r.wall_s),
        Metric::Cpu => ("cpu_s", |r| r.cpu_s),
        Metric::Rate => ("requests_per_s", |r| r.requests_per_s.unwrap_or(f64::NAN)),
    }
}

/// Seconds per traced syscall.
fn per_call(run: &Run) -> Option<f64> {
    run.syscalls.and_then(|n| ratio(run.wall_s, n as f64))
}

/// Each run of `tracer` on `workload` with the untraced run of the same round.
pub fn pairs(runs: &[Run], tracer: Tracer, workload: Workload) -> Vec<(&Run, &Run)> {
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

/// Nanoseconds a traced syscall took longer than an untraced one.
pub fn added_ns(base: &Run, traced: &Run) -> Option<f64> {
    Some((per_call(traced)? - per_call(base)?) * 1e9)
}

/// Share of the untraced requests/s the traced run lost (0.1 = 10 %).
pub fn loss(base: &Run, traced: &Run) -> Option<f64> {
    Some(1.0 - ratio(traced.requests_per_s?, base.requests_per_s?)?)
}

/// The summary, one row per workload and tracer that ran.
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
            let paired = |f: &dyn Fn(&Run, &Run) -> Option<f64>| {
                let v: Vec<f64> = pairs.iter().filter_map(|(b, t)| f(b, t)).collect();
                traced.then(|| spread(&v)).flatten()
            };
            let collect = |f: &dyn Fn(&Run) -> Option<f64>| {
                let v: Vec<f64> = mine.iter().filter_map(|r| f(r)).collect();
                spread(&v)
            };
            Some(Row {
                workload,
                tracer,
                metric: name,
                value: spread(&values)?,
                vs_untraced: paired(&pair_ratio),
                added_ns_per_syscall: paired(&added_ns),
                loss_pct: paired(&|b, t| loss(b, t).map(|l| l * 100.0)),
                tracer_cpu_s: collect(&|r| r.tracer_cpu_s),
                tracer_cpu_pct: collect(&|r| ratio(r.tracer_cpu_s?, r.wall_s).map(|f| f * 100.0)),
            })
        })
        .collect()
}

#[cfg(test)]
pub mod tests {
    use super::*;

    pub fn run(
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
            requests: None,
            requests_per_s: None,
            tracer_cpu_s: (tracer != Tracer::None).then_some(wall_s / 100.0),
        }
    }

    pub fn storm(round: usize, tracer: Tracer, wall_s: f64) -> Run {
        run(round, tracer, Workload::Storm, wall_s, Some(1_000_000))
    }

    /// A 5 s run of wrk against nginx answering `rate` requests a second.
    pub fn served(round: usize, tracer: Tracer, workload: Workload, rate: f64) -> Run {
        Run {
            requests: Some((rate * 5.0) as u64),
            requests_per_s: Some(rate),
            ..run(round, tracer, workload, 5.0, None)
        }
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
        assert!(ours.loss_pct.is_none());
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
    fn servers_compare_requests_a_second() {
        let runs = [
            served(0, Tracer::None, Workload::Nginx4k, 100_000.0),
            served(0, Tracer::ZeroCopyTrace, Workload::Nginx4k, 80_000.0),
            served(1, Tracer::None, Workload::Nginx4k, 90_000.0),
            served(1, Tracer::ZeroCopyTrace, Workload::Nginx4k, 81_000.0),
        ];
        let rows = rows(&runs);
        let ours = rows
            .iter()
            .find(|r| r.tracer == Tracer::ZeroCopyTrace)
            .unwrap();
        assert_eq!(ours.metric, "requests_per_s");
        assert_eq!(ours.value.median, 80_500.0);
        let loss = ours.loss_pct.unwrap();
        assert!((loss.min - 10.0).abs() < 1e-9 && (loss.max - 20.0).abs() < 1e-9);
        assert!((ours.vs_untraced.unwrap().median - 0.85).abs() < 1e-9);
        assert!(ours.added_ns_per_syscall.is_none());
        // The agent's CPU over the run: 5 s / 100 of 5 s.
        assert!((ours.tracer_cpu_pct.unwrap().median - 1.0).abs() < 1e-9);
    }

    #[test]
    fn a_run_without_its_untraced_pair_has_no_ratio() {
        let runs = [storm(0, Tracer::BpftraceExit, 1.0)];
        let rows = rows(&runs);
        assert_eq!(rows.len(), 1);
        assert!(rows[0].vs_untraced.is_none());
    }

    #[test]
    fn a_server_run_without_a_rate_has_no_row() {
        let runs = [run(0, Tracer::None, Workload::Nginx1m, 5.0, None)];
        assert!(rows(&runs).is_empty());
    }
}
