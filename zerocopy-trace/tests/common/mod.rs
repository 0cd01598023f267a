//! Shared helpers of the privileged integration tests: they load and attach the real programs,
//! so they need root. Outside CI they skip loudly when not root; in CI (CI=true) that is a
//! failure, never a silent skip.

#![allow(dead_code)]

use std::{path::PathBuf, process::Command};

use serde_json::Value;

pub const AGENT: &str = env!("CARGO_BIN_EXE_zerocopy-trace");
pub const WORKLOAD: &str = env!("CARGO_BIN_EXE_zerocopy-trace-workload");

/// True when the test may run; false (after saying so) when it must skip.
pub fn privileged() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("privileged test cannot run: not root, and CI=true forbids skipping");
    }
    eprintln!("SKIPPED (not root): this test loads BPF programs; run `sudo cargo xtask test`");
    false
}

/// A fresh directory for one test's files.
pub fn scratch(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("zerocopy-trace-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating a scratch directory");
    dir
}

/// Runs `zerocopy-trace run --json -o <file> -- <command>` and returns the agent's exit status
/// and JSON report.
pub fn trace_run(dir: &std::path::Path, command: &[&str]) -> (i32, Value) {
    let report = dir.join("report.json");
    let out = Command::new(AGENT)
        .args(["run", "--json", "-o"])
        .arg(&report)
        .arg("--")
        .args(command)
        .output()
        .expect("starting zerocopy-trace");
    let text = std::fs::read_to_string(&report).unwrap_or_else(|e| {
        panic!(
            "no report ({e}); agent stderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad JSON ({e}):\n{text}"));
    (out.status.code().unwrap_or(-1), json)
}

/// The process with this pid in a report.
pub fn process(report: &Value, pid: u64) -> &Value {
    report["processes"]
        .as_array()
        .expect("processes array")
        .iter()
        .find(|p| p["pid"].as_u64() == Some(pid))
        .unwrap_or_else(|| panic!("pid {pid} missing from the report:\n{report:#}"))
}

/// Asserts nothing was dropped.
pub fn assert_nothing_dropped(report: &Value) {
    for (reason, d) in report["dropped"].as_object().expect("dropped object") {
        assert_eq!(d["calls"], 0, "dropped {reason}: {d}");
        assert_eq!(d["bytes"], 0, "dropped {reason}: {d}");
    }
}
