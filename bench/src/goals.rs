//! The issues' goals (12: honest peers and a real server; 11: memory under churn), judged on
//! the bench's records. Pure, so each goal's arithmetic and its unmeasurable cases are tested.
//!
//! A cost ratio is the median of our paired costs over the median of theirs (added ns per
//! storm syscall, or share of requests/s lost), not a median of per-round ratios: a server's
//! small losses are noisy round by round, and one round's near-zero loss would make its ratio
//! meaningless.

use serde::Serialize;

use crate::churn::Churn;
use crate::report::{added_ns, loss, pairs, Pass, Run, Session};
use crate::stats::{ratio, spread};
use crate::tracers::Tracer;
use crate::workloads::Workload;

/// One goal, as measured.
#[derive(Clone, Debug, Serialize)]
pub struct Goal {
    pub name: String,
    /// The value may not exceed this.
    pub limit: f64,
    pub value: Option<f64>,
    /// What the value is made of, or why there is none.
    pub detail: String,
    /// `None` when not measured.
    pub met: Option<bool>,
}

impl Goal {
    fn judged(name: impl Into<String>, limit: f64, value: Option<f64>, detail: String) -> Self {
        Self {
            name: name.into(),
            limit,
            value,
            detail,
            met: value.map(|v| v <= limit),
        }
    }
}

/// What a tracer costs a workload, round by round: added ns per storm syscall, or the share of
/// requests/s a server lost.
fn costs(runs: &[Run], tracer: Tracer, workload: Workload) -> Vec<f64> {
    let cost = if workload == Workload::Storm {
        added_ns
    } else {
        loss
    };
    pairs(runs, tracer, workload)
        .into_iter()
        .filter_map(|(base, traced)| cost(base, traced))
        .collect()
}

fn show_cost(workload: Workload, value: f64) -> String {
    if workload == Workload::Storm {
        format!("{value:+.0} ns")
    } else {
        format!("{:.1} %", value * 100.0)
    }
}

/// Our median cost over `other`'s, on `workload`.
fn cost_ratio(
    runs: &[Run],
    workload: Workload,
    ours: Tracer,
    other: Tracer,
) -> (Option<f64>, String) {
    let (Some(mine), Some(theirs)) = (
        spread(&costs(runs, ours, workload)),
        spread(&costs(runs, other, workload)),
    ) else {
        return (None, "not measured".to_owned());
    };
    let shown = format!(
        "{} / {} (medians of {} and {} rounds)",
        show_cost(workload, mine.median),
        show_cost(workload, theirs.median),
        mine.n,
        theirs.n
    );
    if mine.median <= 0.0 {
        // Within noise of untraced, or better: nothing to divide, and nothing lost.
        return (
            Some(0.0),
            format!("{shown}: {} cost nothing measurable", ours.label()),
        );
    }
    if theirs.median <= 0.0 {
        return (
            None,
            format!(
                "{shown}: {} cost nothing measurable, no ratio",
                other.label()
            ),
        );
    }
    (ratio(mine.median, theirs.median), shown)
}

/// The agent's `report` sessions (any hook), where its memory and losses are the product's.
fn agent_sessions(sessions: &[Session]) -> Vec<&Session> {
    sessions
        .iter()
        .filter(|s| {
            matches!(
                s.tracer,
                Tracer::ZeroCopyTrace
                    | Tracer::ZeroCopyTraceRefresh
                    | Tracer::ZeroCopyTraceRaw
                    | Tracer::ZeroCopyTraceTracepoints
            )
        })
        .collect()
}

/// The worst of `values`, with their median and count.
fn worst(values: &[f64], unit: &str) -> (Option<f64>, String) {
    match spread(values) {
        Some(s) => (
            Some(s.max),
            format!("worst of {} sessions; median {:.2}{unit}", s.n, s.median),
        ),
        None => (None, "not measured".to_owned()),
    }
}

pub fn goals(runs: &[Run], sessions: &[Session], churn: Option<&Churn>) -> Vec<Goal> {
    let ratio_goal = |name: &str, limit, workload, ours, other| {
        let (value, detail) = cost_ratio(runs, workload, ours, other);
        Goal::judged(name, limit, value, detail)
    };
    let mut goals = vec![
        ratio_goal(
            "nginx 4 KiB: req/s lost / exit-only bpftrace's",
            0.5,
            Workload::Nginx4k,
            Tracer::ZeroCopyTrace,
            Tracer::BpftraceExit,
        ),
        ratio_goal(
            "nginx 4 KiB: req/s lost / empty floor's",
            1.5,
            Workload::Nginx4k,
            Tracer::ZeroCopyTrace,
            Tracer::EmptyFloor,
        ),
        ratio_goal(
            "storm: time added / exit-only bpftrace's",
            0.5,
            Workload::Storm,
            Tracer::ZeroCopyTrace,
            Tracer::BpftraceExit,
        ),
        ratio_goal(
            "storm: time added / empty floor's",
            1.25,
            Workload::Storm,
            Tracer::ZeroCopyTrace,
            Tracer::EmptyFloor,
        ),
        ratio_goal(
            "storm, raw hook: time added / its empty floor's",
            1.25,
            Workload::Storm,
            Tracer::ZeroCopyTraceRaw,
            Tracer::EmptyFloorRaw,
        ),
        ratio_goal(
            "storm, tp hook: time added / its empty floor's",
            1.25,
            Workload::Storm,
            Tracer::ZeroCopyTraceTracepoints,
            Tracer::EmptyFloorTracepoints,
        ),
    ];

    let agent_cpu: Vec<f64> = runs
        .iter()
        .filter(|r| r.tracer == Tracer::ZeroCopyTraceRefresh && r.workload == Workload::Many)
        .filter_map(|r| ratio(r.tracer_cpu_s?, r.wall_s).map(|f| f * 100.0))
        .collect();
    let cpu = spread(&agent_cpu);
    goals.push(Goal::judged(
        "many processes: agent CPU at 1 s refresh, % core",
        2.0,
        cpu.map(|s| s.median),
        cpu.map_or("not measured".to_owned(), |s| {
            format!("median of {} runs, {:.1}-{:.1}", s.n, s.min, s.max)
        }),
    ));

    let ours = agent_sessions(sessions);
    let rss: Vec<f64> = ours
        .iter()
        .map(|s| s.stopped.peak_rss_kib as f64 / 1024.0)
        .collect();
    let (value, detail) = worst(&rss, " MiB");
    goals.push(Goal::judged(
        "agent peak RSS, MiB, every session",
        40.0,
        value,
        detail,
    ));

    let churn_name = match churn {
        Some(c) => format!("churn, {} exits: agent peak RSS, MiB", c.processes_exited),
        None => "churn: agent peak RSS, MiB".to_owned(),
    };
    let (value, detail) = match churn {
        Some(c) => (
            Some(c.peak_rss_kib as f64 / 1024.0),
            match &c.stopped_early {
                Some(why) => format!("{why} (of {} asked)", c.processes_asked),
                None => format!(
                    "{:.1} MiB before, {:.1} MiB at the end",
                    c.rss_before_kib as f64 / 1024.0,
                    c.final_rss_kib as f64 / 1024.0
                ),
            },
        ),
        None => (None, "not measured".to_owned()),
    };
    goals.push(Goal::judged(churn_name, 40.0, value, detail));

    // The default hook: what an operator gets without options.
    let attach: Vec<f64> = ours
        .iter()
        .filter(|s| s.tracer != Tracer::ZeroCopyTraceTracepoints)
        .map(|s| s.stopped.attach_s)
        .collect();
    let (value, detail) = worst(&attach, " s");
    goals.push(Goal::judged(
        "attach, default hook, s, every session",
        0.5,
        value,
        detail,
    ));

    // The default hook: the tracepoint hook counts calls already in flight at attach as
    // `missing_enter`, as documented.
    let dropped: Vec<f64> = ours
        .iter()
        .filter(|s| s.tracer != Tracer::ZeroCopyTraceTracepoints && s.pass != Pass::Churn)
        .filter_map(|s| s.stopped.dropped_calls.as_ref())
        .map(|d| d.values().sum::<u64>() as f64)
        .collect();
    let (value, detail) = worst(&dropped, "");
    goals.push(Goal::judged(
        "dropped calls, default hook, every session",
        0.0,
        value,
        detail,
    ));
    goals
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tests::{run, served, storm};
    use crate::tracers::Stopped;

    fn session(tracer: Tracer, pass: Pass, attach_s: f64, rss_mib: u64) -> Session {
        Session {
            pass,
            tracer,
            stopped: Stopped {
                attach_s,
                detach_s: 0.1,
                cpu_s: 0.1,
                peak_rss_kib: rss_mib * 1024,
                dropped_calls: (pass != Pass::Churn)
                    .then(|| [("missing_enter".to_owned(), 0)].into()),
            },
        }
    }

    fn find<'a>(goals: &'a [Goal], prefix: &str) -> &'a Goal {
        goals
            .iter()
            .find(|g| g.name.starts_with(prefix))
            .unwrap_or_else(|| panic!("no goal {prefix}"))
    }

    fn close(goal: &Goal, value: f64) -> bool {
        goal.value.is_some_and(|v| (v - value).abs() < 1e-9)
    }

    #[test]
    fn server_losses_compare_as_medians() {
        let n = Workload::Nginx4k;
        let runs = [
            served(0, Tracer::None, n, 100_000.0),
            served(0, Tracer::ZeroCopyTrace, n, 84_000.0),
            served(0, Tracer::BpftraceExit, n, 90_000.0),
            served(0, Tracer::EmptyFloor, n, 96_000.0),
            served(1, Tracer::None, n, 100_000.0),
            served(1, Tracer::ZeroCopyTrace, n, 83_000.0),
            // A noisy round: the peer lost nothing here, which a per-round ratio cannot use.
            served(1, Tracer::BpftraceExit, n, 100_000.0),
            served(1, Tracer::EmptyFloor, n, 96_000.0),
            served(2, Tracer::None, n, 100_000.0),
            served(2, Tracer::ZeroCopyTrace, n, 82_000.0),
            served(2, Tracer::BpftraceExit, n, 80_000.0),
            served(2, Tracer::EmptyFloor, n, 96_000.0),
        ];
        let goals = goals(&runs, &[], None);
        // Losses 16/17/18 % against bpftrace's 10/0/20 %: medians 17 % and 10 %.
        let peer = find(&goals, "nginx 4 KiB: req/s lost / exit-only");
        assert!(close(peer, 1.7), "{peer:?}");
        assert_eq!(peer.met, Some(false));
        assert!(peer.detail.contains("17.0 % / 10.0 %"), "{}", peer.detail);
        let floor = find(&goals, "nginx 4 KiB: req/s lost / empty floor");
        assert!(close(floor, 17.0 / 4.0), "{floor:?}");
        assert_eq!(floor.met, Some(false));
    }

    #[test]
    fn losing_nothing_meets_the_goal_at_zero() {
        let n = Workload::Nginx4k;
        let runs = [
            served(0, Tracer::None, n, 100_000.0),
            served(0, Tracer::ZeroCopyTrace, n, 100_200.0),
            served(0, Tracer::BpftraceExit, n, 90_000.0),
        ];
        let goals = goals(&runs, &[], None);
        let peer = find(&goals, "nginx 4 KiB: req/s lost / exit-only");
        assert!(close(peer, 0.0) && peer.met == Some(true), "{peer:?}");
        assert!(peer.detail.contains("-0.2 % / 10.0 %"), "{}", peer.detail);
        assert!(peer
            .detail
            .contains("zerocopy-trace cost nothing measurable"));
    }

    #[test]
    fn a_peer_that_lost_nothing_gives_no_ratio() {
        let n = Workload::Nginx4k;
        let runs = [
            served(0, Tracer::None, n, 100_000.0),
            served(0, Tracer::ZeroCopyTrace, n, 99_000.0),
            served(0, Tracer::EmptyFloor, n, 100_500.0),
        ];
        let goals = goals(&runs, &[], None);
        let floor = find(&goals, "nginx 4 KiB: req/s lost / empty floor");
        assert_eq!((floor.value, floor.met), (None, None));
        assert!(
            floor.detail.contains("nothing measurable"),
            "{}",
            floor.detail
        );
    }

    #[test]
    fn storm_ratios_from_added_time() {
        let runs = [
            storm(0, Tracer::None, 1.0),
            storm(0, Tracer::ZeroCopyTrace, 1.06),
            storm(0, Tracer::EmptyFloor, 1.05),
            storm(0, Tracer::BpftraceExit, 1.2),
            storm(0, Tracer::ZeroCopyTraceTracepoints, 1.1),
            storm(0, Tracer::EmptyFloorTracepoints, 1.05),
            run(0, Tracer::ZeroCopyTraceRefresh, Workload::Many, 4.0, None),
        ];
        let goals = goals(&runs, &[], None);
        let peer = find(&goals, "storm: time added / exit-only");
        assert!(close(peer, 0.3) && peer.met == Some(true), "{peer:?}");
        assert!(peer.detail.contains("+60 ns / +200 ns"), "{}", peer.detail);
        let floor = find(&goals, "storm: time added / empty floor");
        assert!(close(floor, 1.2) && floor.met == Some(true), "{floor:?}");
        let tp = find(&goals, "storm, tp hook");
        assert!(close(tp, 2.0) && tp.met == Some(false), "{tp:?}");
        let cpu = find(&goals, "many processes");
        assert!(close(cpu, 1.0) && cpu.met == Some(true), "{cpu:?}");
    }

    #[test]
    fn memory_attach_and_drops_are_judged_on_the_worst_session() {
        let sessions = [
            session(Tracer::ZeroCopyTrace, Pass::Round(0), 0.2, 20),
            session(Tracer::ZeroCopyTraceRefresh, Pass::Round(0), 0.3, 45),
            // The tp hook's attach is not the default's; its memory still counts.
            session(Tracer::ZeroCopyTraceTracepoints, Pass::Round(0), 2.5, 30),
            // The floor is not the agent's work.
            session(Tracer::EmptyFloor, Pass::Round(0), 9.0, 99),
            session(Tracer::ZeroCopyTraceRefresh, Pass::Churn, 0.25, 30),
        ];
        let churn = Churn {
            processes_asked: 1000,
            processes_exited: 1000,
            rss_before_kib: 14 << 10,
            peak_rss_kib: 30 << 10,
            final_rss_kib: 29 << 10,
            ..Churn::default()
        };
        let goals = goals(&[], &sessions, Some(&churn));
        let rss = find(&goals, "agent peak RSS");
        assert!(close(rss, 45.0) && rss.met == Some(false), "{rss:?}");
        assert!(rss.detail.contains("4 sessions"), "{}", rss.detail);
        let attach = find(&goals, "attach");
        assert!(close(attach, 0.3) && attach.met == Some(true), "{attach:?}");
        let churned = find(&goals, "churn, 1000 exits");
        assert!(
            close(churned, 30.0) && churned.met == Some(true),
            "{churned:?}"
        );
        let dropped = find(&goals, "dropped calls");
        assert!(
            close(dropped, 0.0) && dropped.met == Some(true),
            "{dropped:?}"
        );
    }

    #[test]
    fn a_churn_stopped_early_says_why() {
        let churn = Churn {
            processes_asked: 1_000_000,
            processes_exited: 300_000,
            peak_rss_kib: 6 << 20,
            stopped_early: Some("stopped after 300000 exits: cap".to_owned()),
            ..Churn::default()
        };
        let goals = goals(&[], &[], Some(&churn));
        let churned = find(&goals, "churn, 300000 exits");
        assert_eq!(churned.met, Some(false));
        assert!(
            churned.detail.contains("of 1000000 asked"),
            "{}",
            churned.detail
        );
    }

    #[test]
    fn nothing_measured_is_said_so() {
        let goals = goals(&[], &[], None);
        assert_eq!(goals.len(), 11);
        assert!(goals
            .iter()
            .all(|g| g.value.is_none() && g.met.is_none() && g.detail == "not measured"));
    }
}
