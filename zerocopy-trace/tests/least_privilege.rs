//! Least privilege and bad input: the agent runs as an unprivileged user holding only
//! CAP_BPF, CAP_PERFMON and CAP_DAC_READ_SEARCH (tracefs is root-only) and counts exactly;
//! after attaching it keeps only CAP_BPF; without what it needs, and on every kind of bad
//! input, it says so in one line and exits non-zero.

mod common;

use std::{os::unix::fs::PermissionsExt, path::Path, process::Command};

use common::{privileged, process, scratch, spawn_agent, workload, AGENT};

const CAPS: &str = "+bpf,+perfmon,+dac_read_search";

/// Copies a binary where the unprivileged user can run it (the build tree may be closed).
fn runnable_copy(binary: &str, dir: &Path) -> String {
    let to = dir.join(Path::new(binary).file_name().unwrap());
    std::fs::copy(binary, &to).unwrap();
    std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o755)).unwrap();
    to.to_str().unwrap().to_string()
}

/// `setpriv` as nobody with `caps` (empty: none), running `args`.
fn as_nobody(caps: &str, args: &[&str]) -> std::process::Output {
    let mut command = Command::new("setpriv");
    command.args(["--reuid=65534", "--regid=65534", "--clear-groups"]);
    if !caps.is_empty() {
        command
            .arg(format!("--inh-caps={caps}"))
            .arg(format!("--ambient-caps={caps}"));
    }
    command.args(args).output().expect("running setpriv")
}

fn open_dir(name: &str) -> std::path::PathBuf {
    let dir = scratch(name);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    dir
}

#[test]
fn counts_exactly_with_only_the_documented_capabilities() {
    if !privileged() {
        return;
    }
    let dir = open_dir("least-privilege");
    let agent = runnable_copy(AGENT, &dir);
    let workload = runnable_copy(workload(), &dir);
    let report_path = dir.join("report.json");
    let truth_path = dir.join("truth.json");
    let out = as_nobody(
        CAPS,
        &[
            &agent,
            "run",
            "--json",
            "-o",
            report_path.to_str().unwrap(),
            "--",
            &workload,
            "sendfile",
            "--out",
            truth_path.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
    let truth: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&truth_path).unwrap()).unwrap();
    for child in truth["processes"].as_array().unwrap() {
        let seen = process(&report, child["pid"].as_u64().unwrap());
        for (name, want) in child["syscalls"].as_object().unwrap() {
            assert_eq!(seen["syscalls"][name]["bytes"], want["bytes"], "{name}");
            assert_eq!(seen["syscalls"][name]["calls"], want["calls"], "{name}");
        }
    }
    // The report file is readable by its owner only.
    let mode = std::fs::metadata(&report_path)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn keeps_only_cap_bpf_after_attaching() {
    if !privileged() {
        return;
    }
    let (mut agent, _) = spawn_agent(&["report", "--json"]);
    let pid = agent.child().id();
    let tasks = procfs::process::Process::new(pid as i32)
        .and_then(|agent| agent.tasks())
        .expect("listing the agent's threads");
    for task in tasks {
        let status = task
            .and_then(|task| task.status())
            .expect("the status of an agent thread");
        // Bit 39, CAP_BPF, and nothing else.
        assert_eq!(
            (status.capeff, status.capprm),
            (0x0000_0080_0000_0000, 0x0000_0080_0000_0000)
        );
    }
    common::stop_agent(agent);
}

#[test]
fn bad_input_gets_one_clear_line() {
    if !privileged() {
        return;
    }
    let dir = open_dir("bad-input");
    let agent = runnable_copy(AGENT, &dir);
    let cases: Vec<(Vec<&str>, &str, &str)> = vec![
        (vec![], "report --duration 1s", "permission denied: tracing needs root or the capabilities CAP_BPF and CAP_PERFMON (missing: CAP_BPF, CAP_PERFMON)"),
        (vec!["+bpf,+perfmon"], "report --duration 1s", "tracefs at /sys/kernel/tracing is not readable: run as root, or add CAP_DAC_READ_SEARCH"),
        (vec![CAPS], "report --duration 1s --pid 999999999", "no such process: 999999999"),
        (vec![CAPS], "report --duration 1s --cgroup no/such/group", "no such cgroup: no/such/group"),
        (vec![CAPS], "report --duration 1s --comm a-name-longer-than-15", "process names are 1 to 15 bytes"),
        (vec![CAPS], "report --duration 0", "out of range"),
        (vec![CAPS], "report --duration 5parsecs", "unknown unit"),
        (vec![CAPS], "top --interval -1s", "unexpected argument"),
        (vec![CAPS], "report --max-processes 0", "invalid value"),
        (vec![CAPS], "report --frobnicate", "unexpected argument '--frobnicate'"),
        (vec![CAPS], "run -- /no/such/command", "cannot run /no/such/command: No such file or directory"),
    ];
    for (caps, args, needle) in cases {
        let args: Vec<&str> = std::iter::once(agent.as_str())
            .chain(args.split_whitespace())
            .collect();
        let out = as_nobody(caps.first().copied().unwrap_or(""), &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(
            out.stdout.is_empty(),
            "{args:?} printed a report: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
