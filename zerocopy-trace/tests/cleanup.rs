//! Ending a trace leaves nothing behind: on SIGINT, SIGTERM and SIGHUP the agent detaches,
//! still prints its report and exits 0; after SIGKILL the kernel frees the programs because
//! nothing is pinned. Checked by the kernel's own program ids, as the agent logs them.

mod common;

use std::process::{Command, Stdio};

use common::{
    assert_unloaded, loaded, privileged, signal_agent, spawn_agent, spawn_agent_with_env, Agent,
    AGENT,
};

/// Starts `zerocopy-trace report --hook <hook>` and returns it with the ids of the programs it
/// loaded: fork, exec and exit, io_uring's submit and complete, plus the raw exit program or
/// the enter and exit pair.
fn start_agent(hook: &str) -> (Agent, Vec<u32>) {
    let (agent, ids) = spawn_agent(&["report", "--json", "--hook", hook]);
    // Three sched programs and io_uring's submit and complete, plus one exit program or the
    // tracepoints' enter and exit pair.
    let expected = if hook == "tracepoints" { 7 } else { 6 };
    assert_eq!(ids.len(), expected, "{hook}: {ids:?}");
    (agent, ids)
}

fn end_with(signal: i32, name: &str, hook: &str) {
    let (mut agent, ids) = start_agent(hook);
    assert_eq!(
        loaded(&ids).len(),
        ids.len(),
        "the programs are loaded while tracing"
    );
    let (status, stdout) = signal_agent(&mut agent, signal);
    if signal == libc::SIGKILL {
        assert!(!status.success());
    } else {
        assert_eq!(status.code(), Some(0), "{name}: {stdout}");
        let report: serde_json::Value =
            serde_json::from_str(&stdout).expect("a JSON report after the signal");
        assert_eq!(report["ended_because"], format!("interrupted by {name}"));
    }
    assert_unloaded(&ids, name);
}

#[test]
fn sigint_detaches_and_reports() {
    if privileged() {
        end_with(libc::SIGINT, "SIGINT", "btf");
    }
}

#[test]
fn sigterm_detaches_and_reports() {
    if privileged() {
        end_with(libc::SIGTERM, "SIGTERM", "tracepoints");
    }
}

#[test]
fn sighup_detaches_and_reports() {
    if privileged() {
        end_with(libc::SIGHUP, "SIGHUP", "raw");
    }
}

#[test]
fn sigkill_leaves_no_program_behind() {
    if privileged() {
        end_with(libc::SIGKILL, "SIGKILL", "tracepoints");
    }
}

#[test]
// The panic is the agent's test hook, built only with `--features test-hooks`.
#[cfg_attr(
    not(feature = "test-hooks"),
    ignore = "needs the agent built with --features test-hooks (cargo xtask test does)"
)]
fn a_panic_leaves_no_program_behind() {
    if !privileged() {
        return;
    }
    let (mut agent, ids) =
        spawn_agent_with_env(&["report", "--json"], &[("ZEROCOPY_TRACE_TEST_PANIC", "3")]);
    let status = agent.child().wait().expect("waiting for the agent");
    // Rust's panic exit status; the programs go with the process's fds.
    assert_eq!(status.code(), Some(101));
    assert_unloaded(&ids, "a panic");
}

#[test]
fn a_closed_stdout_is_not_a_crash() {
    if !privileged() {
        return;
    }
    // Like `zerocopy-trace report | head -0`: the reader is gone before the report is written.
    let mut child = Command::new(AGENT)
        .args(["report", "--duration", "300ms"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting zerocopy-trace");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("waiting for the agent");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
