//! The plain text report.

use std::fmt::Write;

use zerocopy_trace_common::drop_reason;

use super::Report;
use crate::{describe, units};

/// Findings printed under the table, for the largest movers.
const FINDINGS: usize = 10;

const HEADER: [&str; 8] = [
    "PID",
    "COMM",
    "VERDICT",
    "ZERO-COPY%",
    "COPIED",
    "ZERO-COPY",
    "TRANSITIONS",
    "CALLS",
];

pub fn to_table(report: &Report) -> String {
    let processes = &report.analysed.processes;
    let rows: Vec<[String; 8]> = processes
        .iter()
        .map(|process| {
            let (p, cost) = (&process.record, &process.analysis.cost);
            [
                p.pid.to_string(),
                if p.exited {
                    format!("{} (exited)", p.comm)
                } else {
                    p.comm.clone()
                },
                cost.verdict().as_str().to_string(),
                units::percent(cost.zero_copy_ratio()),
                units::bytes(cost.copied_bytes),
                units::bytes(cost.zero_copy_bytes),
                units::count(cost.transitions),
                units::count(cost.calls),
            ]
        })
        .collect();

    let mut widths = HEADER.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "zerocopy-trace: {:.1} s traced, {} process{} moved data",
        report.duration.as_secs_f64(),
        rows.len(),
        if rows.len() == 1 { "" } else { "es" }
    );
    if let Some(why) = &report.ended_because {
        let _ = writeln!(out, "ended: {why}");
    }
    let line = |cells: &[&str]| -> String {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            // Text columns (comm, verdict) read best left-aligned, numbers right-aligned.
            let left = i == 1 || i == 2;
            if i > 0 {
                s.push_str("  ");
            }
            if left {
                let _ = write!(s, "{cell:<w$}");
            } else {
                let _ = write!(s, "{cell:>w$}");
            }
        }
        s.trim_end().to_string()
    };
    let _ = writeln!(out, "{}", line(&HEADER));
    for row in &rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        let _ = writeln!(out, "{}", line(&cells));
    }
    if rows.is_empty() {
        let _ = writeln!(out, "(no data-path syscalls seen)");
    }
    if !processes.is_empty() {
        let _ = writeln!(out, "findings:");
        for p in processes.iter().take(FINDINGS) {
            let (comm, pid) = (&p.record.comm, p.record.pid);
            let _ = writeln!(
                out,
                "  {}",
                describe::finding(comm, pid, &p.analysis.finding)
            );
        }
        if processes.len() > FINDINGS {
            let _ = writeln!(out, "  ... {} more in --json", processes.len() - FINDINGS);
        }
    }
    let dropped: Vec<String> = report
        .analysed
        .dropped
        .iter()
        .enumerate()
        .filter(|(_, d)| d.calls > 0 || d.bytes > 0)
        .map(|(i, d)| {
            format!(
                "{} {} calls / {}",
                drop_reason::NAMES[i],
                units::count(d.calls),
                units::bytes(d.bytes)
            )
        })
        .collect();
    if dropped.is_empty() {
        let _ = writeln!(out, "dropped: none");
    } else {
        let _ = writeln!(out, "dropped: {}", dropped.join(", "));
    }
    if !report.not_covered.is_empty() {
        let _ = writeln!(
            out,
            "not covered (no tracepoint in this kernel): {}",
            report.not_covered.join(" ")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use zerocopy_trace_common::DropCounters;

    use super::*;
    use crate::{
        collect::{ProcessRecord, Snapshot},
        model::Analysed,
    };

    fn process(pid: u32, comm: &str, entries: &[(&str, u64, u64)]) -> ProcessRecord {
        ProcessRecord {
            pid,
            ppid: 1,
            comm: comm.into(),
            exited: false,
            counters: crate::correlate::fixtures::served(entries),
        }
    }

    fn report_of(snapshot: &Snapshot) -> String {
        to_table(&Report {
            duration: Duration::from_secs(5),
            analysed: &Analysed::of(snapshot.clone()),
            not_covered: &[],
            ended_because: None,
            occupancy: None,
        })
    }

    #[test]
    fn largest_movers_first_with_units() {
        let snapshot = Snapshot {
            processes: vec![
                process(
                    880,
                    "python3",
                    &[("read", 8192, 512 << 20), ("write", 8192, 512 << 20)],
                ),
                process(4121, "nginx", &[("sendfile64", 20480, 1288490188)]),
                process(7, "idle", &[]),
            ],
            dropped: Default::default(),
        };
        let text = report_of(&snapshot);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "zerocopy-trace: 5.0 s traced, 2 processes moved data"
        );
        assert!(lines[1].starts_with(" PID  COMM"), "{text}");
        assert!(
            lines[2].contains("4121  nginx    zero-copy")
                && lines[2].contains("1.2 GiB")
                && lines[2].contains("40 960"),
            "{text}"
        );
        assert!(
            lines[3].contains("880  python3  copying")
                && lines[3].contains("1.0 GiB")
                && lines[3].contains("32 768"),
            "{text}"
        );
        assert_eq!(lines[4], "findings:");
        assert_eq!(
            lines[5],
            "  nginx[4121]: 100.0% of 1.2 GiB moved file->tcp by sendfile: zero copy achieved",
            "{text}"
        );
        assert!(
            lines[6].starts_with(
                "  python3[880]: 512.0 MiB file->tcp through user space: 1.0 GiB of CPU copies"
            ),
            "{text}"
        );
        assert_eq!(lines[7], "dropped: none");
        assert!(
            !text.contains("idle"),
            "processes that moved nothing are left out: {text}"
        );
    }

    #[test]
    fn empty_and_dropped() {
        let mut dropped: crate::collect::Dropped = Default::default();
        dropped[drop_reason::COUNTERS_FULL as usize] = DropCounters {
            calls: 3,
            bytes: 4096,
        };
        let text = report_of(&Snapshot {
            processes: vec![],
            dropped,
        });
        assert!(text.contains("(no data-path syscalls seen)"), "{text}");
        assert!(
            text.contains("dropped: counters_full 3 calls / 4.0 KiB"),
            "{text}"
        );
    }
}
