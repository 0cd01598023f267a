//! The in-kernel filters against real processes: `--cgroup` counts every process of a cgroup
//! v2 subtree and nothing else; `--comm` catches a process that execs under that name after
//! attach, with its children.

mod common;

use std::{path::PathBuf, process::Command};

use serde_json::Value;

use common::{privileged, process, scratch, spawn_agent, stop_agent, workload};

fn truth(path: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("ground truth written"))
        .expect("JSON")
}

/// Every measured child of the workload appears with exactly its ground-truth counts.
fn assert_exact(truth: &Value, report: &Value) {
    for child in truth["processes"].as_array().unwrap() {
        let seen = process(report, child["pid"].as_u64().unwrap());
        for (name, want) in child["syscalls"].as_object().unwrap() {
            for field in ["calls", "bytes", "errors"] {
                assert_eq!(
                    seen["syscalls"][name][field], want[field],
                    "{name}.{field}: {seen:#}"
                );
            }
        }
    }
}

fn pids(truth: &Value) -> Vec<u64> {
    truth["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["pid"].as_u64().unwrap())
        .collect()
}

fn cgroup2_root() -> PathBuf {
    procfs::mounts()
        .expect("reading /proc/self/mounts")
        .into_iter()
        .find(|entry| entry.fs_vfstype == "cgroup2")
        .map(|entry| PathBuf::from(entry.fs_file))
        .expect("a cgroup v2 hierarchy (this kernel mounts one)")
}

#[test]
fn cgroup_counts_its_processes_and_nothing_else() {
    if !privileged() {
        return;
    }
    let dir = scratch("cgroup");
    let group = cgroup2_root().join(format!("zerocopy-trace-test-{}", std::process::id()));
    std::fs::create_dir(&group).expect("creating a test cgroup");
    let (agent, _) = spawn_agent(&["report", "--json", "--cgroup", group.to_str().unwrap()]);

    let inside_truth = dir.join("inside.json");
    // The shell moves itself into the cgroup, then becomes the workload.
    let script = format!(
        "echo $$ > {}/cgroup.procs && exec {workload} sendfile --out {} --bytes 1048576",
        group.display(),
        inside_truth.display(),
        workload = workload()
    );
    let outside_truth = dir.join("outside.json");
    let mut outside = Command::new(workload())
        .args(["read-write", "--bytes", "1048576", "--out"])
        .arg(&outside_truth)
        .spawn()
        .unwrap();
    assert!(Command::new("sh")
        .args(["-c", &script])
        .status()
        .unwrap()
        .success());
    assert!(outside.wait().unwrap().success());
    let report = stop_agent(agent);
    let _ = std::fs::remove_dir(&group);

    let inside = truth(&inside_truth);
    assert_exact(&inside, &report);
    let outside_pids = pids(&truth(&outside_truth));
    for p in report["processes"].as_array().unwrap() {
        let pid = p["pid"].as_u64().unwrap();
        assert!(
            !outside_pids.contains(&pid),
            "pid {pid} is outside the cgroup: {p:#}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn comm_catches_a_process_started_after_attach() {
    if !privileged() {
        return;
    }
    let dir = scratch("comm");
    // exec sets comm from the file name: a link named zct-late makes a process named zct-late.
    let late = dir.join("zct-late");
    std::os::unix::fs::symlink(workload(), &late).unwrap();
    let (agent, _) = spawn_agent(&["report", "--json", "--comm", "zct-late"]);
    let truth_path = dir.join("truth.json");
    let other_truth = dir.join("other.json");
    assert!(Command::new(&late)
        .args(["splice", "--bytes", "1048576", "--out"])
        .arg(&truth_path)
        .status()
        .unwrap()
        .success());
    // The same program under its own name is not traced.
    assert!(Command::new(workload())
        .args(["splice", "--bytes", "1048576", "--out"])
        .arg(&other_truth)
        .status()
        .unwrap()
        .success());
    let report = stop_agent(agent);
    assert_exact(&truth(&truth_path), &report);
    for p in report["processes"].as_array().unwrap() {
        assert_eq!(
            p["comm"], "zct-late",
            "only zct-late and its children: {p:#}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
