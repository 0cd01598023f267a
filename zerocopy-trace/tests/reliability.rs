//! Counts survive what busy machines do: thousands of short-lived processes, pid reuse,
//! threads that outlive their leader, more processes than the kernel maps hold, more live
//! processes than the hot slots hold, two agents at once, and a traced pid that exits. Every figure is checked against the workload's ground
//! truth, and the kernel maps are checked empty afterwards.

mod common;

use std::{collections::BTreeMap, process::Command};

use serde_json::Value;

use common::{privileged, scratch, spawn_agent, trace_run_with, workload};

/// Runs the workload under `zerocopy-trace run` and returns (ground truth, report).
fn traced(name: &str, options: &[&str], workload: &[&str]) -> (Value, Value) {
    let dir = scratch(name);
    let truth_path = dir.join("truth.json");
    let mut command = vec![common::workload()];
    command.extend_from_slice(workload);
    command.extend(["--out", truth_path.to_str().unwrap()]);
    let (status, report) = trace_run_with(&dir, options, &command);
    assert_eq!(status, 0, "{report:#}");
    let truth = serde_json::from_str(&std::fs::read_to_string(&truth_path).unwrap()).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    (truth, report)
}

/// (calls, bytes) of `syscall` in a process entry.
fn figures(process: &Value, syscall: &str) -> (u64, u64) {
    let s = &process["syscalls"][syscall];
    (
        s["calls"].as_u64().unwrap_or(0),
        s["bytes"].as_u64().unwrap_or(0),
    )
}

/// Per pid, the (calls, bytes) of `write` of every process that had it, sorted: a pid that
/// was reused has several.
fn writes_by_pid(processes: &[Value], pids: &[u64]) -> BTreeMap<u64, Vec<(u64, u64)>> {
    let mut out: BTreeMap<u64, Vec<(u64, u64)>> = BTreeMap::new();
    for p in processes {
        let pid = p["pid"].as_u64().unwrap();
        if pids.contains(&pid) {
            out.entry(pid).or_default().push(figures(p, "write"));
        }
    }
    for list in out.values_mut() {
        list.sort();
    }
    out
}

fn assert_maps_empty(report: &Value) {
    for (map, entries) in report["maps"].as_object().expect("maps occupancy") {
        assert_eq!(
            entries, 0,
            "{map} still holds entries after every process exited"
        );
    }
}

fn dropped_calls(report: &Value) -> u64 {
    report["dropped"]
        .as_object()
        .unwrap()
        .values()
        .map(|d| d["calls"].as_u64().unwrap())
        .sum()
}

#[test]
fn ten_thousand_short_lived_processes_count_exactly() {
    if !privileged() {
        return;
    }
    // Every exit listed one by one (10 001 of them: the churners and their parent).
    let (truth, report) = traced(
        "churn",
        &["--max-rows", "20000"],
        &["churn", "--processes", "10000", "--chunk", "1000"],
    );
    let children = truth["processes"].as_array().unwrap();
    assert_eq!(children.len(), 10_000);
    let pids: Vec<u64> = children
        .iter()
        .map(|c| c["pid"].as_u64().unwrap())
        .collect();
    let want = writes_by_pid(children, &pids);
    let got = writes_by_pid(report["processes"].as_array().unwrap(), &pids);
    // Every child counted once, exactly, under its own pid.
    let wrong: Vec<_> = want
        .iter()
        .filter(|(pid, w)| got.get(pid) != Some(w))
        .map(|(pid, w)| (pid, w, got.get(pid)))
        .take(10)
        .collect();
    assert!(
        wrong.is_empty(),
        "children not counted exactly (pid, expected, seen), first 10: {wrong:?}; dropped {:#}",
        report["dropped"]
    );
    let total: u64 = got.values().flatten().map(|(_, bytes)| bytes).sum();
    assert_eq!(total, 10_000 * 1000);
    assert_eq!(dropped_calls(&report), 0, "{:#}", report["dropped"]);
    assert_maps_empty(&report);
}

#[test]
fn a_reused_pid_starts_from_zero() {
    if !privileged() {
        return;
    }
    // Forcing the pid's reuse writes ns_last_pid, which takes CAP_SYS_ADMIN: the command is
    // asked to run as root with root's capabilities.
    let (truth, report) = traced(
        "pid-reuse",
        &["--user", "root"],
        &["pid-reuse", "--chunk", "100"],
    );
    let entries = truth["processes"].as_array().unwrap();
    let second = entries
        .iter()
        .find(|p| p["role"] == "second")
        .expect("the reused pid");
    let pid = second["pid"].as_u64().unwrap();
    let seen: Vec<&Value> = report["processes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["pid"].as_u64() == Some(pid))
        .collect();
    let mut writes: Vec<(u64, u64)> = seen.iter().map(|p| figures(p, "write")).collect();
    writes.sort();
    // The first process's 3 writes and the second's 5, apart: nothing inherited.
    assert_eq!(writes, vec![(3, 300), (5, 500)], "{seen:#?}");
    assert_maps_empty(&report);
}

#[test]
fn threads_outliving_their_leader_count_once_exactly() {
    if !privileged() {
        return;
    }
    for hook in ["btf", "raw", "tracepoints"] {
        let (truth, report) = traced(
            "threads",
            &["--hook", hook],
            &[
                "threads",
                "--threads",
                "8",
                "--repeat",
                "50",
                "--chunk",
                "512",
            ],
        );
        let child = &truth["processes"][0];
        let pid = child["pid"].as_u64().unwrap();
        let seen: Vec<&Value> = report["processes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["pid"].as_u64() == Some(pid))
            .collect();
        assert_eq!(seen.len(), 1, "{hook}: one process, not one per thread");
        assert_eq!(figures(seen[0], "write"), (400, 400 * 512), "{hook}");
        assert_eq!(seen[0]["exited"], true);
        assert_maps_empty(&report);
    }
}

/// Processes whose threads all exit at once (the leader's exit_group with every thread alive):
/// before 6.16 the end of a process is told by its live-thread count, which several of them
/// can read as 0 at the exit tracepoint; the process must still be one entry with all its
/// counts, not two halves under one pid. (On a kernel with `group_dead`, exactly one thread
/// is told the group is dead, and this checks the same.)
#[test]
fn threads_that_exit_together_deliver_their_process_once() {
    if !privileged() {
        return;
    }
    let (truth, report) = traced(
        "together",
        &[],
        &[
            "exit-together",
            "--processes",
            "60",
            "--threads",
            "6",
            "--repeat",
            "20",
            "--chunk",
            "512",
        ],
    );
    let children = truth["processes"].as_array().unwrap();
    assert_eq!(children.len(), 60);
    let processes = report["processes"].as_array().unwrap();
    for child in children {
        let pid = child["pid"].as_u64();
        let seen: Vec<&Value> = processes
            .iter()
            .filter(|p| p["pid"].as_u64() == pid)
            .collect();
        assert_eq!(seen.len(), 1, "pid {pid:?} delivered as {seen:#?}");
        assert_eq!(figures(seen[0], "write"), (120, 120 * 512), "{:#}", seen[0]);
        assert_eq!(figures(seen[0], "read"), (1, 512), "{:#}", seen[0]);
        assert_eq!(seen[0]["exited"], true);
    }
    assert_eq!(dropped_calls(&report), 0, "{:#}", report["dropped"]);
    assert_maps_empty(&report);
}

#[test]
fn past_the_process_limit_the_rest_is_counted_as_dropped() {
    if !privileged() {
        return;
    }
    // Room for 4 processes (16 process-syscall slots) and 100 holders alive at once.
    let (truth, report) = traced(
        "pressure",
        &["--max-processes", "4"],
        &[
            "hold",
            "--processes",
            "100",
            "--hold-ms",
            "1500",
            "--chunk",
            "4096",
        ],
    );
    let holders = truth["processes"].as_array().unwrap();
    let pids: Vec<u64> = holders.iter().map(|c| c["pid"].as_u64().unwrap()).collect();
    let got = writes_by_pid(report["processes"].as_array().unwrap(), &pids);
    // Whoever was attributed is exact.
    for (pid, writes) in &got {
        assert_eq!(writes, &vec![(1, 4096)], "holder {pid}");
    }
    let full = &report["dropped"]["counters_full"];
    let (attributed, dropped) = (got.len() as u64, full["calls"].as_u64().unwrap());
    assert!(
        attributed > 0 && attributed <= 16,
        "{attributed} attributed"
    );
    assert_eq!(
        attributed + dropped,
        100,
        "every holder's write is either attributed or dropped"
    );
    assert_eq!(full["bytes"].as_u64().unwrap(), dropped * 4096);
}

#[test]
fn two_agents_at_once_both_count_exactly() {
    if !privileged() {
        return;
    }
    let dir = scratch("two-agents");
    let (a_truth, b_truth) = (dir.join("a.json"), dir.join("b.json"));
    let run = |truth: &std::path::Path, report: &std::path::Path, mode: &str| {
        Command::new(common::AGENT)
            .args(["run", "--json", "-o"])
            .arg(report)
            .args(["--", workload(), mode, "--bytes", "4194304", "--out"])
            .arg(truth)
            .spawn()
            .unwrap()
    };
    let (a_report, b_report) = (dir.join("a-report.json"), dir.join("b-report.json"));
    let mut a = run(&a_truth, &a_report, "sendfile");
    let mut b = run(&b_truth, &b_report, "read-write");
    assert!(a.wait().unwrap().success() && b.wait().unwrap().success());
    for (truth, report) in [(&a_truth, &a_report), (&b_truth, &b_report)] {
        let truth: Value = serde_json::from_str(&std::fs::read_to_string(truth).unwrap()).unwrap();
        let report: Value =
            serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap();
        for child in truth["processes"].as_array().unwrap() {
            let seen = common::process(&report, child["pid"].as_u64().unwrap());
            for (name, want) in child["syscalls"].as_object().unwrap() {
                assert_eq!(seen["syscalls"][name]["bytes"], want["bytes"], "{name}");
                assert_eq!(seen["syscalls"][name]["calls"], want["calls"], "{name}");
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_traced_pid_that_exits_ends_the_trace_with_its_report() {
    if !privileged() {
        return;
    }
    let dir = scratch("pid-exits");
    let truth_path = dir.join("truth.json");
    let go = dir.join("go");
    // The shell waits for the agent to attach (the go file), then becomes the workload (same
    // pid), whose holders are forked after attach and so followed.
    let script = format!(
        "while [ ! -e {go} ]; do sleep 0.05; done; exec {workload} hold --processes 2 \
         --hold-ms 500 --out {truth}",
        go = go.display(),
        truth = truth_path.display(),
        workload = workload()
    );
    let mut workload = Command::new("sh").args(["-c", &script]).spawn().unwrap();
    let pid = workload.id().to_string();
    let (mut agent, _) = spawn_agent(&["report", "--json", "--pid", &pid]);
    std::fs::write(&go, b"").unwrap();
    assert!(workload.wait().unwrap().success());
    // No signal: the agent ends by itself once the pid is gone, and reports.
    let mut stdout = String::new();
    use std::io::Read;
    agent
        .child()
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    assert!(agent.child().wait().unwrap().success());
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["ended_because"], "every traced --pid exited");
    // The holders were forked after attach: followed, and counted exactly.
    let truth: Value =
        serde_json::from_str(&std::fs::read_to_string(&truth_path).unwrap()).unwrap();
    for holder in truth["processes"].as_array().unwrap() {
        let seen = common::process(&report, holder["pid"].as_u64().unwrap());
        assert_eq!(figures(seen, "write"), figures(holder, "write"));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Starts `holders` holders of `writes` writes of 1 000 bytes each under a traced shell,
/// stops the agent once every holder has written (the workload's ready file) while they are
/// all alive (they live 30 s after the last is forked), and returns the report, the ground
/// truth and the kernel memory of the agent's maps read while it ran.
fn live_holders(name: &str, holders: usize, writes: u64) -> (Value, Vec<Value>, u64) {
    let dir = scratch(name);
    let truth_path = dir.join("truth.json");
    let ready = dir.join("ready");
    let go = dir.join("go");
    // The shell waits for the agent to attach (the go file) before the holders start.
    let script = format!(
        "while [ ! -e {go} ]; do sleep 0.05; done; exec {workload} hold --processes {holders} \
         --repeat {writes} --chunk 1000 --hold-ms 30000 --ready {ready} --out {truth}",
        go = go.display(),
        ready = ready.display(),
        truth = truth_path.display(),
        workload = workload()
    );
    let mut workload = Command::new("sh").args(["-c", &script]).spawn().unwrap();
    let pid = workload.id().to_string();
    let rows = (holders + 100).to_string();
    let (mut agent, _) = spawn_agent(&["report", "--json", "--max-rows", &rows, "--pid", &pid]);
    std::fs::write(&go, b"").unwrap();
    common::wait_for_file(&ready, std::time::Duration::from_secs(600));
    let map_bytes = common::kernel_map_bytes(agent.child().id());
    let (status, stdout) = common::signal_agent(&mut agent, libc::SIGINT);
    assert!(status.success(), "{stdout}");
    assert!(workload.wait().unwrap().success());
    let report: Value = serde_json::from_str(&stdout).unwrap();
    let truth: Value =
        serde_json::from_str(&std::fs::read_to_string(&truth_path).unwrap()).unwrap();
    let truth = truth["processes"].as_array().unwrap().clone();
    assert_eq!(truth.len(), holders);
    for holder in &truth {
        assert_eq!(figures(holder, "write"), (writes, writes * 1000));
    }
    let _ = std::fs::remove_dir_all(&dir);
    (report, truth, map_bytes)
}

#[test]
fn live_counts_are_exact_when_processes_outnumber_the_hot_slots() {
    if !privileged() {
        return;
    }
    // 1 500 holders alive at once, 100 writes each: past the 64 calls after which a key claims
    // its hot slot, and more keys than the 1 024 slots, so some count in a slot and the rest
    // in the shared map. The agent stops while they are alive, so every figure comes from the
    // live maps, not from exit records.
    let (report, truth, _) = live_holders("live-overflow", 1500, 100);
    for holder in &truth {
        let seen = common::process(&report, holder["pid"].as_u64().unwrap());
        assert_eq!(seen["exited"], false, "read live: {seen:#}");
        assert_eq!(figures(seen, "write"), (100, 100_000));
    }
    // Still alive at the end: both places hold their counts.
    let maps = &report["maps"];
    let hot = maps["hot"].as_u64().unwrap();
    assert!(hot > 0 && hot <= 1024, "{maps}");
    assert!(maps["counters"].as_u64().unwrap() >= 1500, "{maps}");
    assert_eq!(dropped_calls(&report), 0, "{:#}", report["dropped"]);
}

#[test]
fn ten_thousand_live_processes_count_exactly_within_64_mib() {
    if !privileged() {
        return;
    }
    // The default --max-processes holds 10 000 live processes on any number of CPUs, and all
    // of the agent's maps stay within 64 MiB of kernel memory (the memlock the kernel charges
    // them, read from the agent's fdinfo while it runs).
    let (report, truth, map_bytes) = live_holders("ten-thousand", 10_000, 2);
    for holder in &truth {
        let seen = common::process(&report, holder["pid"].as_u64().unwrap());
        assert_eq!(seen["exited"], false, "read live: {seen:#}");
        assert_eq!(figures(seen, "write"), (2, 2000));
    }
    assert_eq!(dropped_calls(&report), 0, "{:#}", report["dropped"]);
    assert!(
        map_bytes > 0 && map_bytes <= 64 << 20,
        "maps take {map_bytes} bytes"
    );
    eprintln!(
        "10 000 live processes on {} possible CPUs: maps {:.1} MiB",
        common::possible_cpus(),
        map_bytes as f64 / (1 << 20) as f64
    );
}
