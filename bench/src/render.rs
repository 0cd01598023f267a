//! The bench's tables, as text: the workloads side by side, each tracer's sessions, the BPF
//! programs' kernel time, the churn session, and the goals.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use crate::churn::Churn;
use crate::goals::Goal;
use crate::report::{Pass, Prog, Row, Session};
use crate::stats::{ratio, spread, Spread};
use crate::tracers::{Stopped, Tracer};
use crate::workloads::Workload;

/// Programs listed one by one per tracer and workload (the busiest); the rest are in the total.
const PROGRAMS_LISTED: usize = 6;

/// Everything the bench prints.
pub struct Tables<'a> {
    pub rows: &'a [Row],
    pub sessions: &'a [Session],
    pub progs: &'a [Prog],
    pub churn: Option<&'a Churn>,
    pub goals: &'a [Goal],
}

pub fn render(t: &Tables) -> String {
    let mut out = String::new();
    workloads(&mut out, t.rows);
    sessions(&mut out, t.sessions);
    programs(&mut out, t.progs);
    if let Some(churn) = t.churn {
        churned(&mut out, churn);
    }
    goals(&mut out, t.goals);
    out
}

fn secs(v: f64) -> String {
    if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// Requests/s, grouped by thousands: `104 604`.
fn rate(v: f64) -> String {
    let n = v.round().max(0.0) as u64;
    let digits = n.to_string();
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(' ');
        }
        grouped.push(c);
    }
    grouped
}

fn value(row: &Row, v: f64) -> String {
    match row.metric {
        "requests_per_s" => rate(v),
        _ => secs(v),
    }
}

fn workloads(out: &mut String, rows: &[Row]) {
    let _ = writeln!(
        out,
        "{:<15} {:<28} {:>2} {:>13} {:>17} {:>10} {:>14} {:>11}",
        "workload", "tracer", "n", "median", "min-max", "x untraced", "cost", "tracer CPU"
    );
    let mut last = None;
    for row in rows {
        if last.is_some() && last != Some(row.workload) {
            out.push('\n');
        }
        last = Some(row.workload);
        let unit = match row.metric {
            "cpu_s" => " s cpu",
            "requests_per_s" => " req/s",
            _ => " s",
        };
        let x = row
            .vs_untraced
            .map_or(String::new(), |s| format!("{:.2}x", s.median));
        let cost = match (row.added_ns_per_syscall, row.loss_pct) {
            (Some(ns), _) => format!("{:+.0} ns/call", ns.median),
            (_, Some(loss)) => format!("{:+.1} % req/s", -loss.median),
            _ => String::new(),
        };
        let cpu = match (row.metric, row.tracer_cpu_pct, row.tracer_cpu_s) {
            ("cpu_s" | "requests_per_s", Some(pct), _) => format!("{:.1}% core", pct.median),
            (_, _, Some(s)) => format!("{} s", secs(s.median)),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "{:<15} {:<28} {:>2} {:>13} {:>17} {:>10} {:>14} {:>11}",
            row.workload.label(),
            row.tracer.label(),
            row.value.n,
            format!("{}{unit}", value(row, row.value.median)),
            format!(
                "{}-{}",
                value(row, row.value.min),
                value(row, row.value.max)
            ),
            x,
            cost,
            cpu
        );
    }
}

/// Calls lost over all `sessions`, with the reasons that lost any: "8 (missing_enter 8)".
fn dropped_text(sessions: &[&Stopped]) -> String {
    let mut by_reason = BTreeMap::new();
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

fn sessions(out: &mut String, sessions: &[Session]) {
    let _ = writeln!(
        out,
        "\n{:<36} {:>8} {:>15} {:>9} {:>9} {:>10}  dropped calls, all sessions",
        "tracer (all sessions)", "sessions", "attach s (max)", "detach s", "CPU s", "peak RSS"
    );
    // The churn session apart: its memory is the churn's, not the timed runs'.
    let groups: BTreeSet<(Tracer, bool)> = sessions
        .iter()
        .map(|s| (s.tracer, s.pass == Pass::Churn))
        .collect();
    for (tracer, churn) in groups {
        let mine: Vec<&Stopped> = sessions
            .iter()
            .filter(|s| s.tracer == tracer && (s.pass == Pass::Churn) == churn)
            .map(|s| &s.stopped)
            .collect();
        let label = if churn {
            format!("{} [churn]", tracer.label())
        } else {
            tracer.label().to_owned()
        };
        let of = |f: fn(&Stopped) -> f64| {
            let v: Vec<f64> = mine.iter().map(|s| f(s)).collect();
            spread(&v).unwrap_or(Spread {
                median: 0.0,
                min: 0.0,
                max: 0.0,
                n: 0,
            })
        };
        let attach = of(|s| s.attach_s);
        let rss = mine.iter().map(|s| s.peak_rss_kib).max().unwrap_or(0);
        let _ = writeln!(
            out,
            "{:<36} {:>8} {:>15} {:>9.2} {:>9.2} {:>6.1} MiB  {}",
            label,
            mine.len(),
            format!("{:.2} ({:.2})", attach.median, attach.max),
            of(|s| s.detach_s).median,
            of(|s| s.cpu_s).median,
            rss as f64 / 1024.0,
            dropped_text(&mine)
        );
    }
}

fn programs(out: &mut String, progs: &[Prog]) {
    if progs.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\nBPF programs, one run each (kernel.bpf_stats_enabled=1; a program runs for every \
         process on the machine, ns/unit divides all its time by the run's syscalls or requests):\n\
         {:<15} {:<28} {:<24} {:>10} {:>8} {:>16}",
        "workload", "tracer", "program", "runs", "ns/run", "ns/unit"
    );
    let keys: BTreeSet<(Workload, Tracer)> = progs.iter().map(|p| (p.workload, p.tracer)).collect();
    let mut last = None;
    for (workload, tracer) in keys {
        if last.is_some() && last != Some(workload) {
            out.push('\n');
        }
        last = Some(workload);
        let mut mine: Vec<&Prog> = progs
            .iter()
            .filter(|p| p.workload == workload && p.tracer == tracer)
            .collect();
        mine.sort_by_key(|p| std::cmp::Reverse(p.run_time_ns));
        let units = mine.first().map_or(0, |p| p.units);
        let unit = if workload == Workload::Storm {
            "syscall"
        } else {
            "request"
        };
        let mut line = |name: &str, cnt: u64, ns: u64| {
            let _ = writeln!(
                out,
                "{:<15} {:<28} {:<24} {:>10} {:>8.1} {:>16}",
                workload.label(),
                tracer.label(),
                name,
                cnt,
                ratio(ns as f64, cnt as f64).unwrap_or(0.0),
                ratio(ns as f64, units as f64).map_or(String::new(), |v| format!("{v:.1}/{unit}"))
            );
        };
        let busy: Vec<&&Prog> = mine.iter().filter(|p| p.run_cnt > 0).collect();
        if busy.len() > 1 {
            for p in busy.iter().take(PROGRAMS_LISTED) {
                line(&p.name, p.run_cnt, p.run_time_ns);
            }
        }
        let cnt = mine.iter().map(|p| p.run_cnt).sum();
        let ns = mine.iter().map(|p| p.run_time_ns).sum();
        line(&format!("all {} ({} ran)", mine.len(), busy.len()), cnt, ns);
    }
}

fn churned(out: &mut String, c: &Churn) {
    let mib = |kib: u64| kib as f64 / 1024.0;
    let _ = writeln!(
        out,
        "\nchurn: zerocopy-trace report --refresh 1s while {} short-lived processes exit\n  \
         {} exited in {:.1} s ({:.0}/s{}); agent RSS {:.1} MiB before, peak {:.1} MiB, \
         {:.1} MiB at the end ({})",
        c.processes_asked,
        c.processes_exited,
        c.wall_s,
        c.exits_per_s,
        c.untraced_exits_per_s
            .map_or(String::new(), |r| format!(", untraced {r:.0}/s")),
        mib(c.rss_before_kib),
        mib(c.peak_rss_kib),
        mib(c.final_rss_kib),
        c.kib_per_1000_exits()
            .map_or("no exits".to_owned(), |k| format!(
                "{k:+.0} KiB per 1000 exits"
            ))
    );
    if let Some(why) = &c.stopped_early {
        let _ = writeln!(out, "  {why}");
    }
}

fn goals(out: &mut String, goals: &[Goal]) {
    let _ = writeln!(
        out,
        "\n{:<48} {:>6} {:>9} {:>4}  how",
        "goal", "limit", "measured", "met"
    );
    for goal in goals {
        let value = goal.value.map_or("-".to_owned(), |v| format!("{v:.2}"));
        let met = match goal.met {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "-",
        };
        let _ = writeln!(
            out,
            "{:<48} {:>6} {:>9} {:>4}  {}",
            goal.name, goal.limit, value, met, goal.detail
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::goals;
    use crate::report::rows;
    use crate::report::tests::{served, storm};

    #[test]
    fn rates_group_thousands() {
        assert_eq!(rate(104_603.8), "104 604");
        assert_eq!(rate(999.0), "999");
        assert_eq!(rate(1000.0), "1 000");
        assert_eq!(rate(0.0), "0");
    }

    #[test]
    fn every_section_is_printed() {
        let runs = [
            storm(0, Tracer::None, 1.0),
            storm(0, Tracer::ZeroCopyTrace, 1.1),
            served(0, Tracer::None, Workload::Nginx4k, 100_000.0),
            served(0, Tracer::ZeroCopyTrace, Workload::Nginx4k, 83_200.0),
        ];
        let stopped = Stopped {
            attach_s: 0.21,
            detach_s: 0.3,
            cpu_s: 0.5,
            peak_rss_kib: 20 << 10,
            dropped_calls: Some([("missing_enter".to_owned(), 2)].into()),
        };
        let sessions = [
            Session {
                pass: Pass::Round(0),
                tracer: Tracer::ZeroCopyTrace,
                stopped: stopped.clone(),
            },
            Session {
                pass: Pass::Churn,
                tracer: Tracer::ZeroCopyTrace,
                stopped: Stopped {
                    peak_rss_kib: 300 << 10,
                    dropped_calls: None,
                    ..stopped
                },
            },
        ];
        let prog = |name: &str, run_cnt, run_time_ns| Prog {
            tracer: Tracer::BpftraceExit,
            workload: Workload::Storm,
            id: 1,
            name: name.to_owned(),
            run_cnt,
            run_time_ns,
            units: 1000,
        };
        let progs = [
            prog("sys_exit_read", 500, 50_000),
            prog("sys_exit_write", 500, 100_000),
            prog("sys_exit_tee", 0, 0),
        ];
        let churn = Churn {
            processes_asked: 10_000,
            processes_exited: 10_000,
            wall_s: 2.0,
            exits_per_s: 5000.0,
            untraced_exits_per_s: Some(8000.0),
            rss_before_kib: 14 << 10,
            peak_rss_kib: 30 << 10,
            final_rss_kib: 24 << 10,
            ..Churn::default()
        };
        let goals = goals::goals(&runs, &sessions, Some(&churn));
        let rows = rows(&runs);
        let text = render(&Tables {
            rows: &rows,
            sessions: &sessions,
            progs: &progs,
            churn: Some(&churn),
            goals: &goals,
        });
        assert!(text.contains("+100 ns/call"), "{text}");
        assert!(text.contains("83 200 req/s"), "{text}");
        assert!(text.contains("-16.8 % req/s"), "{text}");
        assert!(text.contains("2 (missing_enter 2)"), "{text}");
        assert!(text.contains("0.21 (0.21)"), "{text}");
        // The churn session's memory is shown apart from the timed sessions'.
        assert!(text.contains(" 20.0 MiB  2 (missing_enter 2)"), "{text}");
        assert!(text.contains("zerocopy-trace [churn]"), "{text}");
        assert!(text.contains("300.0 MiB  n/a"), "{text}");
        assert!(text.contains("all 3 (2 ran)"), "{text}");
        // 150 000 ns over 1000 syscalls.
        assert!(text.contains("150.0/syscall"), "{text}");
        assert!(text.contains("+1024 KiB per 1000 exits"), "{text}");
        assert!(text.contains("(5000/s, untraced 8000/s)"), "{text}");
        assert!(
            text.contains("churn, 10000 exits: agent peak RSS"),
            "{text}"
        );
        assert!(text.contains("not measured"), "{text}");
    }
}
