//! The plain text report.

use std::fmt::Write;

use zerocopy_trace_common::drop_reason;

use super::Report;
use crate::{
    analysis::FoldedAnalysis,
    model::Cost,
    output::{human, wording},
    snapshot::Container,
};

/// Findings printed under the table, for the largest movers.
const FINDINGS: usize = 10;

const HEADER: [&str; 9] = [
    "PID",
    "COMM",
    "VERDICT",
    "ZERO-COPY%",
    "COPIED",
    "ZERO-COPY",
    "TRANSITIONS",
    "CALLS",
    "URING-OPS",
];

/// The cells of one row after its first two (PID, COMM).
fn figures(cost: &Cost) -> [String; 7] {
    [
        cost.verdict().as_str().to_string(),
        human::percent(cost.zero_copy_ratio()),
        human::bytes(cost.copied_bytes),
        human::bytes(cost.zero_copy_bytes),
        human::count(cost.transitions),
        human::count(cost.calls),
        human::count(cost.ops),
    ]
}

/// The COMM cell of a folded row: `cc1 (9 990 exited)`, with the unit when there is one.
fn folded_name(f: &FoldedAnalysis) -> String {
    let mut where_ = String::new();
    if !f.key.unit.is_empty() {
        where_ = format!(", {}", f.key.unit);
    }
    if !f.key.cgroup.is_empty() {
        where_ = format!(", {}", f.key.cgroup);
    }
    format!(
        "{} ({} exited{where_})",
        f.key.comm,
        human::count(f.processes)
    )
}

/// A text table: a header and rows, each column as wide as its widest cell, the columns in
/// `left` left-aligned (text), the others right-aligned (numbers).
fn aligned(header: &[&str], rows: &[Vec<String>], left: &[usize], indent: &str) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| -> String {
        let mut s = String::from(indent);
        for (i, (cell, &w)) in cells.zip(&widths).enumerate() {
            if i > 0 {
                s.push_str("  ");
            }
            if left.contains(&i) {
                let _ = write!(s, "{cell:<w$}");
            } else {
                let _ = write!(s, "{cell:>w$}");
            }
        }
        s.trim_end().to_string()
    };
    let mut out = String::new();
    let _ = writeln!(out, "{}", line(&mut header.iter().copied()));
    for row in rows {
        let _ = writeln!(out, "{}", line(&mut row.iter().map(String::as_str)));
    }
    out
}

pub fn to_table(report: &Report) -> String {
    let processes = &report.analysed.processes;
    let folded = &report.analysed.folded;
    let containers = &report.analysed.containers;
    // A CONTAINER column only where some process runs in one.
    let with_containers = !containers.is_empty()
        || processes.iter().any(|p| p.record.container.is_some())
        || folded.iter().any(|f| f.container.is_some());
    let container_cell =
        |c: Option<&Container>| c.map_or("-".to_string(), wording::container_label);
    // Processes and folded groups ranked together: largest movers first, then most calls.
    let mut ranked: Vec<(&Cost, Vec<String>)> = processes
        .iter()
        .map(|process| {
            let p = &process.record;
            let comm = if p.exited {
                format!("{} (exited)", p.comm)
            } else {
                p.comm.clone()
            };
            let cost = &process.analysis.cost;
            let mut row = vec![p.pid.to_string(), comm];
            if with_containers {
                row.push(container_cell(p.container.as_deref()));
            }
            row.extend(figures(cost));
            (cost, row)
        })
        .collect();
    ranked.extend(folded.iter().map(|f| {
        let cost = &f.analysis.cost;
        let mut row = vec!["-".to_string(), folded_name(f)];
        if with_containers {
            row.push(container_cell(f.container.as_deref()));
        }
        row.extend(figures(cost));
        (cost, row)
    }));
    ranked.sort_by(|(a, _), (b, _)| {
        b.delivered_bytes
            .cmp(&a.delivered_bytes)
            .then(b.calls.cmp(&a.calls))
    });
    let rows: Vec<Vec<String>> = ranked.into_iter().map(|(_, row)| row).collect();
    let folded_processes: u64 = folded.iter().map(|f| f.processes).sum();

    let mut out = String::new();
    let movers = processes.len() as u64 + folded_processes;
    let _ = writeln!(
        out,
        "zerocopy-trace: {:.1} s traced, {} process{} moved data",
        report.duration.as_secs_f64(),
        human::count(movers),
        if movers == 1 { "" } else { "es" }
    );
    if folded_processes > 0 {
        let _ = writeln!(
            out,
            "folded: {} exited processes beyond the last {} are summed per command and unit (rows with PID -; --max-rows changes it)",
            human::count(folded_processes),
            human::count(report.max_rows as u64),
        );
    }
    if report.analysed.groups_overflowed > 0 {
        let _ = writeln!(
            out,
            "groups: {} processes beyond the first {} groups are counted under \"other\"",
            human::count(report.analysed.groups_overflowed),
            human::count(crate::collect::groups::DEFAULT_MAX_GROUPS as u64),
        );
    }
    if let Some(why) = &report.ended_because {
        let _ = writeln!(out, "ended: {why}");
    }
    let mut header: Vec<&str> = HEADER[..2].to_vec();
    let mut left = vec![1, 2];
    if with_containers {
        header.push("CONTAINER");
        left.push(3);
    }
    header.extend_from_slice(&HEADER[2..]);
    out.push_str(&aligned(&header, &rows, &left, ""));
    if rows.is_empty() {
        let _ = writeln!(out, "(no data-path syscalls seen)");
    }
    if !containers.is_empty() {
        let _ = writeln!(out, "containers:");
        let rows: Vec<Vec<String>> = containers
            .iter()
            .map(|c| {
                let mut row = vec![
                    wording::container_label(&c.container),
                    c.container.id.runtime.name().to_string(),
                    human::count(c.processes),
                ];
                row.extend(figures(&c.analysis.cost));
                row
            })
            .collect();
        let header = [
            "CONTAINER",
            "RUNTIME",
            "PROCESSES",
            "VERDICT",
            "ZERO-COPY%",
            "COPIED",
            "ZERO-COPY",
            "TRANSITIONS",
            "CALLS",
            "URING-OPS",
        ];
        out.push_str(&aligned(&header, &rows, &[0, 1, 3], "  "));
    }
    if !processes.is_empty() {
        let _ = writeln!(out, "findings:");
        for p in processes.iter().take(FINDINGS) {
            let r = &p.record;
            let _ = writeln!(
                out,
                "  {}",
                wording::finding(&r.comm, r.pid, r.container.as_deref(), &p.analysis.finding)
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
                human::count(d.calls),
                human::bytes(d.bytes)
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
        analysis::SnapshotAnalysis,
        snapshot::{ProcessRecord, Snapshot},
    };

    fn process(pid: u32, comm: &str, entries: &[(&str, u64, u64)]) -> ProcessRecord {
        ProcessRecord {
            pid,
            ppid: 1,
            comm: comm.into(),
            exited: false,
            seq: 0,
            group: 0,
            container: None,
            counters: crate::snapshot::fixtures::served(entries),
        }
    }

    fn report_of(snapshot: &Snapshot) -> String {
        to_table(&Report {
            duration: Duration::from_secs(5),
            analysed: &SnapshotAnalysis::of(snapshot.clone()),
            not_covered: &[],
            ended_because: None,
            occupancy: None,
            max_rows: 10_000,
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
            groups: vec![],
            groups_overflowed: 0,
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
            "  nginx[4121]: 100.0% of 1.2 GiB delivered with no CPU copy, all of it moved file->tcp by sendfile: zero copy achieved",
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
        let mut dropped: crate::snapshot::Dropped = Default::default();
        dropped[drop_reason::COUNTERS_FULL as usize] = DropCounters {
            calls: 3,
            bytes: 4096,
        };
        let text = report_of(&Snapshot {
            processes: vec![],
            groups: vec![],
            groups_overflowed: 0,
            dropped,
        });
        assert!(text.contains("(no data-path syscalls seen)"), "{text}");
        assert!(
            text.contains("dropped: counters_full 3 calls / 4.0 KiB"),
            "{text}"
        );
    }

    #[test]
    fn folded_rows_say_how_many_exited() {
        use crate::snapshot::groups::{Group, GroupKey};
        let group = |comm: &str, unit: &str, exited, entries: &[(&str, u64, u64)]| Group {
            key: GroupKey {
                comm: comm.into(),
                unit: unit.into(),
                cgroup: String::new(),
                container: None,
            },
            container: None,
            exited,
            counters: crate::snapshot::fixtures::served(entries),
        };
        let snapshot = Snapshot {
            processes: vec![process(42, "nginx", &[("sendfile64", 4, 4096)])],
            groups: vec![
                group("other", "", 0, &[]),
                group("churner", "", 99_990, &[("write", 99_990, 99_990_000)]),
                group("cc1", "build.service", 3, &[("read", 3, 300)]),
            ],
            groups_overflowed: 0,
            dropped: Default::default(),
        };
        let text = report_of(&snapshot);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0], "zerocopy-trace: 5.0 s traced, 99 994 processes moved data",
            "{text}"
        );
        assert!(
            lines[1].starts_with("folded: 99 993 exited processes"),
            "{text}"
        );
        assert!(
            lines[3].starts_with("  -  churner (99 990 exited)") && lines[3].contains("95.4 MiB"),
            "{text}"
        );
        assert!(lines[4].contains("42  nginx"), "{text}");
        assert!(lines[5].contains("cc1 (3 exited, build.service)"), "{text}");
        assert!(!text.contains("other"), "an empty group is no row: {text}");
    }
}
