//! The exposition: the series of one snapshot (`analysis::series`) as metric families, in the
//! Prometheus text format or OpenMetrics. Pure: a snapshot in, text out; every figure comes
//! from the model, as in the report; this file only names and encodes them.

use prometheus_client::{
    encoding::{prometheus_text, text},
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::{Registry, Unit},
};
use zerocopy_trace_common::drop_reason;

pub use crate::analysis::series::Labels;
use crate::{
    analysis::series::{LabelSet, Series},
    snapshot::Snapshot,
};

/// The two text formats a scraper may ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4.
    Prometheus,
    OpenMetrics,
}

impl Format {
    /// OpenMetrics when the scraper's Accept header lists it, else the Prometheus text format
    /// (what every scraper understands).
    pub fn from_accept(accept: &str) -> Format {
        if accept.contains("application/openmetrics-text") {
            Format::OpenMetrics
        } else {
            Format::Prometheus
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// The exporter's own figures, for its own families.
#[derive(Clone, Debug, Default)]
pub struct ServerStats {
    /// Connections and requests closed or refused since start, by reason label.
    pub rejected: Vec<(&'static str, u64)>,
    /// Open connections now.
    pub connections: u64,
    /// The most it serves at once.
    pub max_connections: u64,
}

/// The families of one scrape.
struct Families {
    calls: Family<LabelSet, Counter>,
    errors: Family<LabelSet, Counter>,
    bytes: Family<LabelSet, Counter>,
    transitions: Family<LabelSet, Counter>,
    exited: Family<LabelSet, Counter>,
    processes: Family<LabelSet, Gauge>,
    dropped: Family<LabelSet, Counter>,
    dropped_bytes: Family<LabelSet, Counter>,
    overflowed: Counter,
    build_info: Family<LabelSet, Gauge>,
    rejected: Family<LabelSet, Counter>,
    connections: Gauge,
    max_connections: Gauge,
}

impl Families {
    fn registry(&self, server: bool) -> Registry {
        let mut r = Registry::with_prefix("zerocopy");
        r.register(
            "syscall_calls",
            "Completed data-path syscalls (failed ones included), per command and syscall",
            self.calls.clone(),
        );
        r.register(
            "syscall_errors",
            "Data-path syscalls that returned an error, per command and syscall",
            self.errors.clone(),
        );
        r.register_with_unit(
            "syscall",
            "Bytes moved by data-path syscalls, by method: copied (through user memory, by the CPU) or zero_copy (in the kernel: sendfile, splice, copy_file_range, MSG_ZEROCOPY)",
            Unit::Bytes,
            self.bytes.clone(),
        );
        r.register(
            "transitions",
            "User/kernel mode transitions spent on the data path (2 per syscall)",
            self.transitions.clone(),
        );
        r.register(
            "processes_exited",
            "Traced processes of the group that exited (their counts stay in the group's counters)",
            self.exited.clone(),
        );
        r.register(
            "processes",
            "Live processes with data-path syscalls, by verdict (zero-copy, mixed, copying, idle)",
            self.processes.clone(),
        );
        r.register(
            "dropped",
            "Data-path syscalls that could not be attributed to a process, by reason",
            self.dropped.clone(),
        );
        r.register_with_unit(
            "dropped",
            "Bytes that could not be attributed to a process, by reason",
            Unit::Bytes,
            self.dropped_bytes.clone(),
        );
        r.register(
            "groups_overflowed",
            "Processes counted under comm=\"other\" because --max-groups groups already had series of their own",
            self.overflowed.clone(),
        );
        r.register(
            "build_info",
            "The exporter's version; always 1",
            self.build_info.clone(),
        );
        if server {
            r.register(
                "exporter_rejected",
                "Connections and requests the exporter closed or refused, by reason",
                self.rejected.clone(),
            );
            r.register(
                "exporter_connections",
                "Connections open to the exporter",
                self.connections.clone(),
            );
            r.register(
                "exporter_connections_max",
                "Connections the exporter serves at once, at most",
                self.max_connections.clone(),
            );
        }
        r
    }
}

/// The exposition of `snapshot` in `format`, with the `labels` asked for.
pub fn exposition(snapshot: Snapshot, labels: Labels, format: Format) -> String {
    encode(&Series::of(snapshot, labels), format, None)
}

/// `exposition`, and the exporter's own families.
pub fn exposition_with_server(
    snapshot: Snapshot,
    labels: Labels,
    format: Format,
    server: &ServerStats,
) -> String {
    encode(&Series::of(snapshot, labels), format, Some(server))
}

/// `series` as metric families, in `format`.
fn encode(series: &Series, format: Format, server: Option<&ServerStats>) -> String {
    let families = Families {
        calls: Family::default(),
        errors: Family::default(),
        bytes: Family::default(),
        transitions: Family::default(),
        exited: Family::default(),
        processes: Family::default(),
        dropped: Family::default(),
        dropped_bytes: Family::default(),
        overflowed: Counter::default(),
        build_info: Family::default(),
        rejected: Family::default(),
        connections: Gauge::default(),
        max_connections: Gauge::default(),
    };
    for path in &series.paths {
        families
            .calls
            .get_or_create(&path.labels)
            .inc_by(path.calls);
        families
            .errors
            .get_or_create(&path.labels)
            .inc_by(path.errors);
        for &(method, bytes) in &path.bytes {
            let mut with_method = path.labels.clone();
            with_method.push(("method", method.to_string()));
            families.bytes.get_or_create(&with_method).inc_by(bytes);
        }
    }
    for (labels, transitions) in &series.transitions {
        families
            .transitions
            .get_or_create(labels)
            .inc_by(*transitions);
    }
    for (labels, exited) in &series.exited {
        families.exited.get_or_create(labels).inc_by(*exited);
    }
    for &(verdict, n) in &series.processes {
        families
            .processes
            .get_or_create(&vec![("verdict", verdict.as_str().to_string())])
            .set(n as i64);
    }
    for (name, d) in drop_reason::NAMES.iter().zip(&series.dropped) {
        let set: LabelSet = vec![("reason", name.to_string())];
        families.dropped.get_or_create(&set).inc_by(d.calls);
        families.dropped_bytes.get_or_create(&set).inc_by(d.bytes);
    }
    families.overflowed.inc_by(series.groups_overflowed);
    families
        .build_info
        .get_or_create(&vec![("version", env!("CARGO_PKG_VERSION").to_string())])
        .set(1);

    if let Some(server) = server {
        for &(reason, n) in &server.rejected {
            families
                .rejected
                .get_or_create(&vec![("reason", reason.to_string())])
                .inc_by(n);
        }
        families.connections.set(server.connections as i64);
        families.max_connections.set(server.max_connections as i64);
    }

    let registry = families.registry(server.is_some());
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = match format {
        Format::Prometheus => prometheus_text::encode(&mut out, &registry),
        Format::OpenMetrics => text::encode(&mut out, &registry),
    };
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{
        groups::{Group, GroupKey},
        GroupId, ProcessRecord,
    };

    fn group(comm: &str, unit: &str, exited: u64, entries: &[(&str, u64, u64)]) -> Group {
        Group {
            key: GroupKey {
                comm: comm.into(),
                unit: unit.into(),
                cgroup: format!("/system.slice/{unit}"),
                container: None,
            },
            container: None,
            exited,
            counters: crate::snapshot::fixtures::served(entries),
        }
    }

    fn process(
        pid: u32,
        group: GroupId,
        exited: bool,
        entries: &[(&str, u64, u64)],
    ) -> ProcessRecord {
        ProcessRecord {
            pid,
            ppid: 1,
            comm: String::new(),
            exited,
            seq: u64::from(exited),
            group,
            container: None,
            counters: crate::snapshot::fixtures::served(entries),
        }
    }

    fn fixture() -> Snapshot {
        let mut dropped: crate::snapshot::Dropped = Default::default();
        dropped[drop_reason::EXIT_LOST as usize].calls = 3;
        dropped[drop_reason::EXIT_LOST as usize].bytes = 300;
        Snapshot {
            processes: vec![
                process(10, 1, false, &[("sendfile64", 4, 4000)]),
                process(11, 1, false, &[("read", 2, 200), ("write", 2, 200)]),
                process(12, 2, true, &[("read", 1, 7)]),
            ],
            groups: vec![
                group("other", "", 0, &[]),
                group("nginx", "nginx.service", 5, &[("sendfile64", 5, 5000)]),
                group("cat", "", 0, &[]),
            ],
            groups_overflowed: 4,
            dropped,
        }
    }

    /// The sample lines of a text exposition, as a sorted list.
    fn samples(text: &str) -> Vec<&str> {
        let mut lines: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        lines.sort_unstable();
        lines
    }

    #[test]
    fn groups_add_folded_exits_and_live_processes() {
        let text = exposition(fixture(), Labels::default(), Format::Prometheus);
        let s = samples(&text);
        for want in [
            r#"zerocopy_syscall_bytes_total{comm="nginx",unit="nginx.service",container="",pod="",namespace="",syscall="sendfile64",method="zero_copy"} 9000"#,
            r#"zerocopy_syscall_bytes_total{comm="nginx",unit="nginx.service",container="",pod="",namespace="",syscall="read",method="copied"} 200"#,
            r#"zerocopy_syscall_bytes_total{comm="nginx",unit="nginx.service",container="",pod="",namespace="",syscall="write",method="copied"} 200"#,
            r#"zerocopy_syscall_calls_total{comm="nginx",unit="nginx.service",container="",pod="",namespace="",syscall="sendfile64"} 9"#,
            r#"zerocopy_syscall_errors_total{comm="nginx",unit="nginx.service",container="",pod="",namespace="",syscall="sendfile64"} 0"#,
            r#"zerocopy_transitions_total{comm="nginx",unit="nginx.service",container="",pod="",namespace=""} 26"#,
            r#"zerocopy_processes_exited_total{comm="nginx",unit="nginx.service",container="",pod="",namespace=""} 5"#,
            r#"zerocopy_syscall_bytes_total{comm="cat",unit="",container="",pod="",namespace="",syscall="read",method="copied"} 7"#,
            r#"zerocopy_processes_exited_total{comm="cat",unit="",container="",pod="",namespace=""} 1"#,
            r#"zerocopy_processes{verdict="zero-copy"} 1"#,
            r#"zerocopy_processes{verdict="copying"} 1"#,
            r#"zerocopy_processes{verdict="mixed"} 0"#,
            r#"zerocopy_dropped_total{reason="exit_lost"} 3"#,
            r#"zerocopy_dropped_bytes_total{reason="exit_lost"} 300"#,
            r#"zerocopy_dropped_total{reason="missing_enter"} 0"#,
            "zerocopy_groups_overflowed_total 4",
        ] {
            assert!(s.contains(&want), "missing {want} in:\n{text}");
        }
        assert!(
            s.iter()
                .any(|l| l.starts_with("zerocopy_build_info{version=")),
            "{text}"
        );
        // An empty group has no series; no pid or cgroup unless asked.
        assert!(!s.iter().any(|l| l.contains(r#"comm="other""#)), "{text}");
        assert!(
            !s.iter()
                .any(|l| l.contains("pid=") || l.contains("cgroup=")),
            "{text}"
        );
        assert!(
            text.contains("# TYPE zerocopy_syscall_bytes_total counter"),
            "{text}"
        );
        assert!(!text.contains("# EOF"));
    }

    #[test]
    fn pids_label_live_processes_only() {
        let labels = Labels {
            pid: true,
            cgroup: true,
        };
        let text = exposition(fixture(), labels, Format::Prometheus);
        let s = samples(&text);
        for want in [
            r#"zerocopy_syscall_bytes_total{comm="nginx",unit="nginx.service",container="",pod="",namespace="",cgroup="/system.slice/nginx.service",pid="10",syscall="sendfile64",method="zero_copy"} 4000"#,
            r#"zerocopy_syscall_bytes_total{comm="nginx",unit="nginx.service",container="",pod="",namespace="",cgroup="/system.slice/nginx.service",syscall="sendfile64",method="zero_copy"} 5000"#,
            r#"zerocopy_syscall_bytes_total{comm="cat",unit="",container="",pod="",namespace="",cgroup="/system.slice/",syscall="read",method="copied"} 7"#,
        ] {
            assert!(s.contains(&want), "missing {want} in:\n{text}");
        }
    }

    #[test]
    fn containers_label_their_series_and_same_labels_add_up() {
        use std::sync::Arc;

        use crate::snapshot::{Container, ContainerId, ContainerNames, Runtime};
        let named = |id: &str, names: Option<ContainerNames>| {
            Arc::new(Container {
                id: ContainerId {
                    runtime: Runtime::Containerd,
                    id: id.repeat(64),
                    pod_uid: "7c9e6679-7425-40de-944b-e07fc1f90ae7".into(),
                },
                names,
            })
        };
        let web = ContainerNames {
            name: "web".into(),
            pod: "shop-0".into(),
            namespace: "prod".into(),
            image: String::new(),
        };
        // The container restarted: a new id, the same names, one series for both.
        let mut first = group("nginx", "", 2, &[("sendfile64", 2, 2000)]);
        first.container = Some(named("a", Some(web.clone())));
        let mut second = group("nginx", "", 0, &[]);
        second.container = Some(named("b", Some(web)));
        let mut unnamed = group("nginx", "", 1, &[("read", 1, 10)]);
        unnamed.container = Some(named("c", None));
        let mut live = process(20, 2, false, &[("sendfile64", 1, 500)]);
        live.container = second.container.clone();
        let snapshot = Snapshot {
            processes: vec![live],
            groups: vec![group("other", "", 0, &[]), first, second, unnamed],
            groups_overflowed: 0,
            dropped: Default::default(),
        };
        let text = exposition(snapshot, Labels::default(), Format::Prometheus);
        let s = samples(&text);
        for want in [
            r#"zerocopy_syscall_bytes_total{comm="nginx",unit="",container="web",pod="shop-0",namespace="prod",syscall="sendfile64",method="zero_copy"} 2500"#,
            r#"zerocopy_processes_exited_total{comm="nginx",unit="",container="web",pod="shop-0",namespace="prod"} 2"#,
            r#"zerocopy_syscall_bytes_total{comm="nginx",unit="",container="cccccccccccc",pod="7c9e6679-7425-40de-944b-e07fc1f90ae7",namespace="",syscall="read",method="copied"} 10"#,
        ] {
            assert!(s.contains(&want), "missing {want} in:\n{text}");
        }
    }

    #[test]
    fn openmetrics_when_asked() {
        assert_eq!(
            Format::from_accept("application/openmetrics-text;version=1.0.0,text/plain;q=0.5"),
            Format::OpenMetrics
        );
        assert_eq!(Format::from_accept("text/plain"), Format::Prometheus);
        assert_eq!(Format::from_accept(""), Format::Prometheus);
        let text = exposition(fixture(), Labels::default(), Format::OpenMetrics);
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert!(
            text.contains("# UNIT zerocopy_syscall_bytes bytes"),
            "{text}"
        );
    }

    #[test]
    fn the_exporter_counts_what_it_refused() {
        let stats = ServerStats {
            rejected: vec![("busy", 0), ("header_timeout", 7)],
            connections: 3,
            max_connections: 2048,
        };
        let text = exposition_with_server(fixture(), Labels::default(), Format::Prometheus, &stats);
        let s = samples(&text);
        for want in [
            r#"zerocopy_exporter_rejected_total{reason="busy"} 0"#,
            r#"zerocopy_exporter_rejected_total{reason="header_timeout"} 7"#,
            "zerocopy_exporter_connections 3",
            "zerocopy_exporter_connections_max 2048",
        ] {
            assert!(s.contains(&want), "missing {want} in:\n{text}");
        }
        // A report's exposition (the textfile collector's) has no server to speak of.
        let text = exposition(fixture(), Labels::default(), Format::Prometheus);
        assert!(!text.contains("zerocopy_exporter_"), "{text}");
    }

    #[test]
    fn an_empty_snapshot_still_has_the_machine_families() {
        let snapshot = Snapshot {
            processes: vec![],
            groups: vec![group("other", "", 0, &[])],
            groups_overflowed: 0,
            dropped: Default::default(),
        };
        let text = exposition(snapshot, Labels::default(), Format::Prometheus);
        assert!(
            text.contains(r#"zerocopy_processes{verdict="idle"} 0"#),
            "{text}"
        );
        assert!(
            text.contains("zerocopy_groups_overflowed_total 0"),
            "{text}"
        );
        assert!(!text.contains("zerocopy_syscall_calls_total{"), "{text}");
    }
}
