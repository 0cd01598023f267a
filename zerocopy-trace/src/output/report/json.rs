//! The JSON report: a contract for tests and other tools.
//! `{"duration_s", "processes": [{"pid", "ppid", "comm", "exited", "syscalls": {"<name>":
//! {"calls", "bytes", "errors", "msg_zerocopy_bytes", "direct_bytes"}}, "io_uring": {"<OP>":
//! {"ops", "bytes", "errors", "direct_bytes"}}, "msg_zerocopy": {"sends", "bytes",
//! "completions", "kernel_copied", "unconfirmed"}, "copied_bytes", "zero_copy_bytes",
//! "delivered_bytes", "transitions", "zero_copy_ratio", "verdict", "flows": [{"source",
//! "destination", "via", "bytes", "cpu_copies", "relay"}], "flows_folded": {"flows", "bytes"},
//! "finding"}], "dropped": {"<reason>": {"calls", "bytes"}}, "not_covered": [...]}`.
//! `copied_bytes` are the bytes the CPU copied (a byte read and written out: twice),
//! `delivered_bytes` each byte once from its source to its destination (the flows' sum),
//! `zero_copy_bytes` those delivered with no CPU copy, `zero_copy_ratio` their share.
//! Flows under 1 MiB and under 1 % of what the process delivered are added up in
//! `flows_folded` (left out when there are none). Each syscall and operation also has `"fd_kinds": {"source": {"<kind>": bytes},
//! "destination": {...}}`. Syscalls and operations a process never used are left out of its
//! maps; `io_uring` and `msg_zerocopy` are left out when empty.
//! Exited processes beyond `--max-rows` are summed per group in `"folded": [{"comm", "unit",
//! "cgroup", "container", "processes", "syscalls", "io_uring", "copied_bytes",
//! "zero_copy_bytes", "delivered_bytes", "transitions", "zero_copy_ratio", "verdict"}]`, with
//! `"folded_processes"` their number and `"groups_overflowed"` the processes counted under the
//! `other` group.
//! A process (or group) in a container has `"container": {"runtime", "id", "name", "image",
//! "pod_uid", "pod", "namespace"}` (`null` where unknown or outside a pod); outside one,
//! `"container": null`. `"containers": [{"container": {...}, "processes", "copied_bytes",
//! "zero_copy_bytes", "delivered_bytes", "transitions", "zero_copy_ratio", "verdict", "finding"}]` sums each
//! container's processes, live, exited and folded, largest movers first.

use std::collections::BTreeMap;

use serde::Serialize;
use zerocopy_trace_common::{drop_reason, fd_kind, Counters, IO_URING_OPS, SYSCALLS};

use super::Report;
use crate::{
    analysis::{ContainerAnalysis, FoldedAnalysis, ProcessAnalysis},
    model::{flows, Verdict, ZeroCopySends},
    output::wording,
    snapshot::{Container, ContainerNames, Occupancy, ProcessCounters},
};

#[derive(Serialize)]
struct JsonReport<'a> {
    duration_s: f64,
    processes: Vec<JsonProcess<'a>>,
    containers: Vec<JsonContainerTotals<'a>>,
    folded: Vec<JsonFolded<'a>>,
    folded_processes: u64,
    max_rows: usize,
    groups_overflowed: u64,
    dropped: BTreeMap<&'static str, JsonDropped>,
    not_covered: &'a [&'static str],
    #[serde(skip_serializing_if = "Option::is_none")]
    ended_because: Option<&'a str>,
    /// Entries left in the kernel maps at the end (`counters`, `pending`, `traced`, `parents`).
    #[serde(skip_serializing_if = "Option::is_none")]
    maps: Option<Occupancy>,
}

#[derive(Serialize)]
struct JsonProcess<'a> {
    pid: u32,
    ppid: u32,
    comm: &'a str,
    exited: bool,
    container: Option<JsonContainer<'a>>,
    syscalls: BTreeMap<&'static str, JsonSyscall>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    io_uring: BTreeMap<&'static str, JsonOp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    msg_zerocopy: Option<JsonZeroCopySends>,
    copied_bytes: u64,
    zero_copy_bytes: u64,
    delivered_bytes: u64,
    transitions: u64,
    zero_copy_ratio: Option<f64>,
    verdict: Verdict,
    flows: Vec<JsonFlow>,
    #[serde(skip_serializing_if = "Option::is_none")]
    flows_folded: Option<JsonFoldedFlows>,
    finding: String,
}

/// The flows too small to list (`model::flows::listed`), added up.
#[derive(Serialize)]
struct JsonFoldedFlows {
    flows: u64,
    bytes: u64,
}

/// Exited processes of one group, summed.
#[derive(Serialize)]
struct JsonFolded<'a> {
    comm: &'a str,
    unit: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    cgroup: &'a str,
    container: Option<JsonContainer<'a>>,
    processes: u64,
    syscalls: BTreeMap<&'static str, JsonSyscall>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    io_uring: BTreeMap<&'static str, JsonOp>,
    copied_bytes: u64,
    zero_copy_bytes: u64,
    delivered_bytes: u64,
    transitions: u64,
    zero_copy_ratio: Option<f64>,
    verdict: Verdict,
}

/// A container as its cgroup names it, and as its runtime does when it answered.
#[derive(Serialize)]
struct JsonContainer<'a> {
    runtime: &'static str,
    id: &'a str,
    name: Option<&'a str>,
    image: Option<&'a str>,
    pod_uid: Option<&'a str>,
    pod: Option<&'a str>,
    namespace: Option<&'a str>,
}

impl<'a> JsonContainer<'a> {
    fn of(c: &'a Container) -> JsonContainer<'a> {
        let given = |field: fn(&ContainerNames) -> &str| {
            c.names.as_ref().map(field).filter(|s| !s.is_empty())
        };
        JsonContainer {
            runtime: c.id.runtime.name(),
            id: &c.id.id,
            name: given(|n| &n.name),
            image: given(|n| &n.image),
            pod_uid: Some(c.id.pod_uid.as_str()).filter(|s| !s.is_empty()),
            pod: given(|n| &n.pod),
            namespace: given(|n| &n.namespace),
        }
    }
}

/// A container's processes added up.
#[derive(Serialize)]
struct JsonContainerTotals<'a> {
    container: JsonContainer<'a>,
    processes: u64,
    copied_bytes: u64,
    zero_copy_bytes: u64,
    delivered_bytes: u64,
    transitions: u64,
    zero_copy_ratio: Option<f64>,
    verdict: Verdict,
    finding: String,
}

fn json_container_totals(c: &ContainerAnalysis) -> JsonContainerTotals<'_> {
    let cost = &c.analysis.cost;
    JsonContainerTotals {
        container: JsonContainer::of(&c.container),
        processes: c.processes,
        copied_bytes: cost.copied_bytes,
        zero_copy_bytes: cost.zero_copy_bytes,
        delivered_bytes: cost.delivered_bytes,
        transitions: cost.transitions,
        zero_copy_ratio: cost.zero_copy_ratio(),
        verdict: cost.verdict(),
        finding: wording::container_finding(&c.container, &c.analysis.finding),
    }
}

#[derive(Serialize)]
struct JsonFlow {
    source: &'static str,
    destination: &'static str,
    via: String,
    bytes: u64,
    /// CPU copies each byte cost: 2 read + write, 1 with an O_DIRECT or pinned leg, 0 in the
    /// kernel.
    cpu_copies: u8,
    /// Read into user memory only to be written out again.
    relay: bool,
}

/// Bytes by fd kind at each end of a syscall (kinds with no bytes left out).
#[derive(Serialize)]
struct JsonFdKinds {
    source: BTreeMap<&'static str, u64>,
    destination: BTreeMap<&'static str, u64>,
}

fn by_kind(bytes: &[u64; fd_kind::COUNT]) -> BTreeMap<&'static str, u64> {
    fd_kind::NAMES
        .iter()
        .zip(bytes)
        .filter(|(_, &b)| b > 0)
        .map(|(name, &b)| (*name, b))
        .collect()
}

#[derive(Serialize)]
struct JsonSyscall {
    calls: u64,
    bytes: u64,
    errors: u64,
    msg_zerocopy_bytes: u64,
    direct_bytes: u64,
    fd_kinds: JsonFdKinds,
}

/// An io_uring operation: its completions (`ops`), the bytes of its positive results, its
/// failed completions.
#[derive(Serialize)]
struct JsonOp {
    ops: u64,
    bytes: u64,
    errors: u64,
    direct_bytes: u64,
    fd_kinds: JsonFdKinds,
}

/// Sends that asked for zero copy and what the kernel's notices said of them.
#[derive(Serialize)]
struct JsonZeroCopySends {
    sends: u64,
    bytes: u64,
    /// Sends covered by a notice the process read (io_uring: a notification with a usage
    /// report).
    completions: u64,
    kernel_copied: u64,
    /// Sends no notice covered: counted as copied.
    unconfirmed: u64,
}

impl JsonZeroCopySends {
    fn of(z: &ZeroCopySends) -> Option<JsonZeroCopySends> {
        (z.sends > 0 || z.notified > 0).then_some(JsonZeroCopySends {
            sends: z.sends,
            bytes: z.bytes,
            completions: z.notified,
            kernel_copied: z.kernel_copied(),
            unconfirmed: z.unconfirmed(),
        })
    }
}

fn fd_kinds(c: &Counters) -> JsonFdKinds {
    JsonFdKinds {
        source: by_kind(&c.source_kind_bytes),
        destination: by_kind(&c.destination_kind_bytes),
    }
}

#[derive(Serialize)]
struct JsonDropped {
    calls: u64,
    bytes: u64,
}

/// The syscalls a process (or group) called, with their counts.
fn json_syscalls(counters: &ProcessCounters) -> BTreeMap<&'static str, JsonSyscall> {
    SYSCALLS
        .iter()
        .enumerate()
        .map(|(id, desc)| (desc, counters.syscall(id)))
        .filter(|(_, c)| c.calls > 0)
        .map(|(desc, c)| {
            (
                desc.name,
                JsonSyscall {
                    calls: c.calls,
                    bytes: c.bytes,
                    errors: c.errors,
                    msg_zerocopy_bytes: c.msg_zerocopy_bytes,
                    direct_bytes: c.direct_bytes,
                    fd_kinds: fd_kinds(c),
                },
            )
        })
        .collect()
}

fn json_io_uring(counters: &ProcessCounters) -> BTreeMap<&'static str, JsonOp> {
    IO_URING_OPS
        .iter()
        .enumerate()
        .map(|(index, op)| (op, counters.op(index)))
        .filter(|(_, c)| c.calls > 0)
        .map(|(op, c)| {
            (
                op.name,
                JsonOp {
                    ops: c.calls,
                    bytes: c.bytes,
                    errors: c.errors,
                    direct_bytes: c.direct_bytes,
                    fd_kinds: fd_kinds(c),
                },
            )
        })
        .collect()
}

fn json_folded(f: &FoldedAnalysis) -> JsonFolded<'_> {
    let cost = &f.analysis.cost;
    JsonFolded {
        comm: &f.key.comm,
        unit: &f.key.unit,
        cgroup: &f.key.cgroup,
        container: f.container.as_deref().map(JsonContainer::of),
        processes: f.processes,
        syscalls: json_syscalls(&f.counters),
        io_uring: json_io_uring(&f.counters),
        copied_bytes: cost.copied_bytes,
        zero_copy_bytes: cost.zero_copy_bytes,
        delivered_bytes: cost.delivered_bytes,
        transitions: cost.transitions,
        zero_copy_ratio: cost.zero_copy_ratio(),
        verdict: cost.verdict(),
    }
}

/// One process of the report: its counters as the kernel recorded them, and its analysis.
fn json_process(process: &ProcessAnalysis) -> JsonProcess<'_> {
    let (p, analysis) = (&process.record, &process.analysis);
    let cost = &analysis.cost;
    let (listed, folded) = flows::listed(&analysis.flows, cost.delivered_bytes);
    JsonProcess {
        pid: p.pid,
        ppid: p.ppid,
        comm: &p.comm,
        exited: p.exited,
        container: p.container.as_deref().map(JsonContainer::of),
        syscalls: json_syscalls(&p.counters),
        io_uring: json_io_uring(&p.counters),
        msg_zerocopy: JsonZeroCopySends::of(&cost.zero_copy_sends),
        copied_bytes: cost.copied_bytes,
        zero_copy_bytes: cost.zero_copy_bytes,
        delivered_bytes: cost.delivered_bytes,
        transitions: cost.transitions,
        zero_copy_ratio: cost.zero_copy_ratio(),
        verdict: cost.verdict(),
        flows: listed
            .iter()
            .map(|f| JsonFlow {
                relay: f.is_relay(),
                source: f.source.name(),
                destination: f.destination.name(),
                via: f.via.label.clone(),
                bytes: f.bytes,
                cpu_copies: f.cpu_copies,
            })
            .collect(),
        flows_folded: (!folded.is_empty()).then(|| JsonFoldedFlows {
            flows: folded.len() as u64,
            bytes: folded.iter().map(|f| f.bytes).sum(),
        }),
        finding: wording::finding(&p.comm, p.pid, p.container.as_deref(), &analysis.finding),
    }
}

pub fn to_json(report: &Report) -> String {
    let processes = report.analysed.processes.iter().map(json_process).collect();
    let dropped = drop_reason::NAMES
        .iter()
        .zip(&report.analysed.dropped)
        .map(|(name, d)| {
            (
                *name,
                JsonDropped {
                    calls: d.calls,
                    bytes: d.bytes,
                },
            )
        })
        .collect();
    let folded = &report.analysed.folded;
    let doc = JsonReport {
        duration_s: report.duration.as_secs_f64(),
        processes,
        containers: report
            .analysed
            .containers
            .iter()
            .map(json_container_totals)
            .collect(),
        folded: folded.iter().map(json_folded).collect(),
        folded_processes: folded.iter().map(|f| f.processes).sum(),
        max_rows: report.max_rows,
        groups_overflowed: report.analysed.groups_overflowed,
        dropped,
        not_covered: report.not_covered,
        ended_because: report.ended_because.as_deref(),
        maps: report.occupancy,
    };
    // Serialising plain structs of numbers and strings cannot fail.
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::Value;
    use zerocopy_trace_common::{syscalls::syscall_id, Counters};

    use super::*;
    use crate::{
        analysis::SnapshotAnalysis,
        snapshot::{
            groups::{Group, GroupKey},
            ProcessCounters, ProcessRecord, Snapshot,
        },
    };

    /// 4 io_uring READ completions of 4 KiB from an O_DIRECT file.
    fn read_op() -> Counters {
        let mut read = Counters {
            calls: 4,
            bytes: 16384,
            direct_bytes: 16384,
            ..Default::default()
        };
        read.source_kind_bytes[fd_kind::FILE as usize] = 16384;
        read
    }

    #[test]
    fn contract_fields() {
        let mut syscalls = ProcessCounters::default();
        let mut sendfile = Counters {
            calls: 16,
            bytes: 1 << 20,
            ..Default::default()
        };
        sendfile.source_kind_bytes[fd_kind::FILE as usize] = 1 << 20;
        sendfile.destination_kind_bytes[fd_kind::TCP as usize] = 1 << 20;
        *syscalls.syscall_mut(syscall_id("sendfile64").unwrap()) = sendfile;
        *syscalls.syscall_mut(syscall_id("read").unwrap()) = Counters {
            calls: 2,
            bytes: 0,
            errors: 2,
            ..Default::default()
        };
        let snapshot = Snapshot {
            processes: vec![
                ProcessRecord {
                    pid: 10,
                    ppid: 1,
                    comm: "srv".into(),
                    exited: true,
                    seq: 1,
                    group: 1,
                    container: None,
                    counters: {
                        let mut counters = syscalls.clone();
                        *counters.op_mut(0) = read_op();
                        counters
                    },
                },
                ProcessRecord {
                    pid: 11,
                    ppid: 1,
                    comm: "none".into(),
                    exited: false,
                    seq: 0,
                    group: 0,
                    container: None,
                    counters: ProcessCounters::default(),
                },
            ],
            groups: vec![
                Group {
                    key: GroupKey {
                        comm: "other".into(),
                        ..GroupKey::default()
                    },
                    container: None,
                    exited: 0,
                    counters: ProcessCounters::default(),
                },
                Group {
                    key: GroupKey {
                        comm: "srv".into(),
                        unit: "srv.service".into(),
                        cgroup: String::new(),
                        container: None,
                    },
                    container: None,
                    exited: 7,
                    counters: syscalls,
                },
            ],
            groups_overflowed: 2,
            dropped: Default::default(),
        };
        let report = Report {
            duration: Duration::from_millis(1500),
            analysed: &SnapshotAnalysis::of(snapshot),
            not_covered: &["tee"],
            ended_because: None,
            occupancy: None,
            max_rows: 1,
        };
        let v: Value = serde_json::from_str(&to_json(&report)).unwrap();
        assert_eq!(v["duration_s"], 1.5);
        assert_eq!(v["processes"].as_array().unwrap().len(), 1);
        let p = &v["processes"][0];
        assert_eq!(
            (p["pid"].as_u64(), p["ppid"].as_u64(), p["comm"].as_str()),
            (Some(10), Some(1), Some("srv"))
        );
        assert_eq!(p["syscalls"]["sendfile64"]["calls"], 16);
        assert_eq!(p["syscalls"]["sendfile64"]["bytes"], 1 << 20);
        assert_eq!(p["syscalls"]["read"]["errors"], 2);
        assert!(p["syscalls"].get("write").is_none());
        assert_eq!(p["copied_bytes"], 0);
        assert_eq!(p["zero_copy_bytes"], (1 << 20) + 16384);
        assert_eq!(p["io_uring"]["READ"]["ops"], 4);
        assert_eq!(p["io_uring"]["READ"]["bytes"], 16384);
        assert_eq!(p["io_uring"]["READ"]["direct_bytes"], 16384);
        assert_eq!(p["io_uring"]["READ"]["fd_kinds"]["source"]["file"], 16384);
        assert!(p["io_uring"].get("WRITE").is_none());
        assert!(
            p.get("msg_zerocopy").is_none(),
            "no zero-copy sends: left out"
        );
        assert_eq!(p["transitions"], 36);
        assert_eq!(p["zero_copy_ratio"], 1.0);
        assert_eq!(p["verdict"], "zero-copy");
        assert_eq!(
            p["syscalls"]["sendfile64"]["fd_kinds"]["source"]["file"],
            1 << 20
        );
        assert_eq!(p["flows"][0]["via"], "sendfile");
        assert_eq!(p["flows"][1]["via"], "direct I/O");
        assert_eq!(p["flows"][0]["relay"], false);
        assert_eq!(v["dropped"]["missing_enter"]["calls"], 0);
        assert_eq!(v["not_covered"][0], "tee");
        assert_eq!(
            (
                &v["folded_processes"],
                &v["max_rows"],
                &v["groups_overflowed"]
            ),
            (&Value::from(7), &Value::from(1), &Value::from(2))
        );
        let folded = v["folded"].as_array().unwrap();
        assert_eq!(
            folded.len(),
            1,
            "groups without exited processes are left out"
        );
        assert_eq!(
            (
                &folded[0]["comm"],
                &folded[0]["unit"],
                &folded[0]["processes"]
            ),
            (
                &Value::from("srv"),
                &Value::from("srv.service"),
                &Value::from(7)
            )
        );
        assert!(folded[0].get("cgroup").is_none());
        assert_eq!(folded[0]["syscalls"]["sendfile64"]["bytes"], 1 << 20);
        assert_eq!(folded[0]["zero_copy_bytes"], 1 << 20);
        assert_eq!(folded[0]["verdict"], "zero-copy");
    }
}
