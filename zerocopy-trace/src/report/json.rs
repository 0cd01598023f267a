//! The JSON report: a contract for tests and other tools.
//! `{"duration_s", "processes": [{"pid", "ppid", "comm", "exited", "syscalls": {"<name>":
//! {"calls", "bytes", "errors", "msg_zerocopy_bytes"}}, "copied_bytes", "zero_copy_bytes",
//! "transitions", "zero_copy_ratio", "verdict", "flows": [{"source", "destination", "via", "bytes",
//! "relay"}], "finding"}], "dropped": {"<reason>": {"calls", "bytes"}}, "not_covered": [...]}`.
//! Each syscall also has `"fd_kinds": {"source": {"<kind>": bytes}, "destination": {...}}`.
//! Syscalls a process never called are left out of its map.

use std::collections::BTreeMap;

use serde::Serialize;
use zerocopy_trace_common::{drop_reason, fd_kind, SYSCALLS};

use super::Report;
use crate::{
    attach::Occupancy,
    describe,
    model::{ProcessAnalysis, Verdict},
};

#[derive(Serialize)]
struct JsonReport<'a> {
    duration_s: f64,
    processes: Vec<JsonProcess<'a>>,
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
    syscalls: BTreeMap<&'static str, JsonSyscall>,
    copied_bytes: u64,
    zero_copy_bytes: u64,
    transitions: u64,
    zero_copy_ratio: Option<f64>,
    verdict: Verdict,
    flows: Vec<JsonFlow>,
    finding: String,
}

#[derive(Serialize)]
struct JsonFlow {
    source: &'static str,
    destination: &'static str,
    via: String,
    bytes: u64,
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
    fd_kinds: JsonFdKinds,
}

#[derive(Serialize)]
struct JsonDropped {
    calls: u64,
    bytes: u64,
}

/// One process of the report: its counters as the kernel recorded them, and its analysis.
fn json_process(process: &ProcessAnalysis) -> JsonProcess<'_> {
    let (p, analysis) = (&process.record, &process.analysis);
    let cost = &analysis.cost;
    JsonProcess {
        pid: p.pid,
        ppid: p.ppid,
        comm: &p.comm,
        exited: p.exited,
        syscalls: SYSCALLS
            .iter()
            .zip(&p.counters.syscalls)
            .filter(|(_, c)| c.calls > 0)
            .map(|(desc, c)| {
                (
                    desc.name,
                    JsonSyscall {
                        calls: c.calls,
                        bytes: c.bytes,
                        errors: c.errors,
                        msg_zerocopy_bytes: c.msg_zerocopy_bytes,
                        fd_kinds: JsonFdKinds {
                            source: by_kind(&c.source_kind_bytes),
                            destination: by_kind(&c.destination_kind_bytes),
                        },
                    },
                )
            })
            .collect(),
        copied_bytes: cost.copied_bytes,
        zero_copy_bytes: cost.zero_copy_bytes,
        transitions: cost.transitions,
        zero_copy_ratio: cost.zero_copy_ratio(),
        verdict: cost.verdict(),
        flows: analysis
            .flows
            .iter()
            .map(|f| JsonFlow {
                relay: f.is_relay(),
                source: f.source.name(),
                destination: f.destination.name(),
                via: f.via.label.clone(),
                bytes: f.bytes,
            })
            .collect(),
        finding: describe::finding(&p.comm, p.pid, &analysis.finding),
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
    let doc = JsonReport {
        duration_s: report.duration.as_secs_f64(),
        processes,
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
    use zerocopy_trace_common::{syscalls::syscall_id, Counters, SYSCALL_COUNT};

    use super::*;
    use crate::{
        collect::{ProcessRecord, Snapshot},
        model::{Analysed, ProcessCounters},
    };

    #[test]
    fn contract_fields() {
        let mut syscalls = [Counters::default(); SYSCALL_COUNT];
        let mut sendfile = Counters {
            calls: 16,
            bytes: 1 << 20,
            ..Default::default()
        };
        sendfile.source_kind_bytes[fd_kind::FILE as usize] = 1 << 20;
        sendfile.destination_kind_bytes[fd_kind::TCP as usize] = 1 << 20;
        syscalls[syscall_id("sendfile64").unwrap()] = sendfile;
        syscalls[syscall_id("read").unwrap()] = Counters {
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
                    counters: ProcessCounters { syscalls },
                },
                ProcessRecord {
                    pid: 11,
                    ppid: 1,
                    comm: "none".into(),
                    exited: false,
                    counters: ProcessCounters::default(),
                },
            ],
            dropped: Default::default(),
        };
        let report = Report {
            duration: Duration::from_millis(1500),
            analysed: &Analysed::of(snapshot),
            not_covered: &["tee"],
            ended_because: None,
            occupancy: None,
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
        assert_eq!(p["zero_copy_bytes"], 1 << 20);
        assert_eq!(p["transitions"], 36);
        assert_eq!(p["zero_copy_ratio"], 1.0);
        assert_eq!(p["verdict"], "zero-copy");
        assert_eq!(
            p["syscalls"]["sendfile64"]["fd_kinds"]["source"]["file"],
            1 << 20
        );
        assert_eq!(p["flows"][0]["via"], "sendfile");
        assert_eq!(p["flows"][0]["relay"], false);
        assert_eq!(v["dropped"]["missing_enter"]["calls"], 0);
        assert_eq!(v["not_covered"][0], "tee");
    }
}
