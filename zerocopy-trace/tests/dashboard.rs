//! The dashboard end to end, in a real terminal: tmux runs `zerocopy-trace` (no subcommand),
//! the workload helper moves known bytes with sendfile, and the screen (`tmux capture-pane`)
//! must show its sender as zero-copy and its receiver as copying. Then `q`: the agent exits 0,
//! the terminal is back from the alternate screen, and the kernel holds none of its programs.
//! Also: with stdout not a terminal, the agent says so and prints the report instead.

mod common;

use std::{
    io::{BufRead, BufReader, Read},
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use serde_json::Value;

use common::{
    assert_unloaded, loaded, privileged, scratch,
    tmux::{verdict_of, Tmux},
    workload, AGENT,
};

/// The ids the agent logged on attach (`RUST_LOG=info`: "BPF program ids [1, 2, 3, 4]").
fn logged_program_ids(log: &str) -> Option<Vec<u32>> {
    let list = log.split("BPF program ids [").nth(1)?.split(']').next()?;
    Some(
        list.split(", ")
            .map(|id| id.parse().expect("numeric program id"))
            .collect(),
    )
}

fn quote(path: &Path) -> String {
    format!("'{}'", path.display())
}

#[test]
fn dashboard_shows_the_workload_and_quits_clean() {
    if !privileged() {
        return;
    }
    let dir = scratch("dashboard");
    let log = dir.join("agent.log");
    // The shell line stays after the agent: its exit status and the restored screen are
    // what the test reads at the end.
    let command = format!(
        "RUST_LOG=info {} --interval 500ms 2>{}; echo agent-exit=$?; sleep 600",
        quote(Path::new(AGENT)),
        quote(&log)
    );
    let Some(tmux) = Tmux::start("dashboard", &command, 120, 40) else {
        return;
    };
    tmux.wait_for("the dashboard", Duration::from_secs(30), |s| {
        s.contains("every 500ms") && s.contains("processes")
    });
    let ids = logged_program_ids(&std::fs::read_to_string(&log).expect("agent log"))
        .expect("the agent logs its program ids on attach");
    // sched fork, exec and exit, io_uring submit and complete, the raw exit hook.
    assert_eq!(loaded(&ids).len(), 6, "our 6 programs are loaded: {ids:?}");

    let truth_path = dir.join("truth.json");
    let status = Command::new(workload())
        .args([
            "sendfile",
            "--hold-ms",
            "3000",
            "--bytes",
            "8388608",
            "--out",
        ])
        .arg(&truth_path)
        .arg("--dir")
        .arg(dir.join("files"))
        .status()
        .expect("running the workload");
    assert!(status.success(), "workload failed");
    let truth: Value =
        serde_json::from_str(&std::fs::read_to_string(&truth_path).expect("ground truth written"))
            .expect("ground truth is JSON");
    let pid_of = |role: &str| {
        truth["processes"]
            .as_array()
            .expect("processes")
            .iter()
            .find(|p| p["role"] == role)
            .and_then(|p| p["pid"].as_u64())
            .unwrap_or_else(|| panic!("no {role} in {truth:#}"))
    };
    let (sender, receiver) = (pid_of("sender"), pid_of("receiver"));

    // The children exited a moment ago (they stay listed, greyed, for 10 s). Totals since
    // attach, filtered to the workload's name, so a busy machine cannot push them off screen.
    tmux.keys(&["t", "/"]);
    tmux.keys(&["-l", "zerocopy-trace-"]);
    tmux.keys(&["Enter"]);
    let screen = tmux.wait_for(
        "the workload's rows with their verdicts",
        Duration::from_secs(5),
        |s| {
            verdict_of(s, sender).as_deref() == Some("zero-copy")
                && verdict_of(s, receiver).as_deref() == Some("copying")
        },
    );
    assert!(screen.contains("totals by moved"), "{screen}");

    tmux.keys(&["q"]);
    let screen = tmux.wait_for("the agent to exit", Duration::from_secs(30), |s| {
        s.contains("agent-exit=")
    });
    assert!(screen.contains("agent-exit=0"), "{screen}");
    assert!(
        !screen.contains("totals by moved"),
        "the dashboard is gone from the screen:\n{screen}"
    );
    assert_eq!(
        tmux.run(&["display-message", "-p", "-t", "dash", "#{alternate_on}"])
            .trim(),
        "0",
        "the alternate screen was left"
    );
    assert_unloaded(&ids, "q");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
// The panic is the agent's test hook, built only with `--features test-hooks`.
#[cfg_attr(
    not(feature = "test-hooks"),
    ignore = "needs the agent built with --features test-hooks (cargo xtask test does)"
)]
fn a_panic_restores_the_terminal_and_unloads_everything() {
    if !privileged() {
        return;
    }
    let dir = scratch("dashboard-panic");
    let log = dir.join("agent.log");
    // The test hook panics at the 10th tick (1 s), with the dashboard on screen.
    let command = format!(
        "ZEROCOPY_TRACE_TEST_PANIC=10 RUST_LOG=info {} --interval 200ms 2>{}; echo agent-exit=$?; sleep 600",
        quote(Path::new(AGENT)),
        quote(&log)
    );
    let Some(tmux) = Tmux::start("dashboard", &command, 100, 30) else {
        return;
    };
    tmux.wait_for("the dashboard", Duration::from_secs(30), |s| {
        s.contains("every 200ms")
    });
    let screen = tmux.wait_for("the agent to exit", Duration::from_secs(30), |s| {
        s.contains("agent-exit=")
    });
    assert!(screen.contains("agent-exit=101"), "{screen}");
    assert!(
        !screen.contains("every 200ms"),
        "the dashboard is gone:\n{screen}"
    );
    assert_eq!(
        tmux.run(&["display-message", "-p", "-t", "dash", "#{alternate_on}"])
            .trim(),
        "0",
        "the alternate screen was left"
    );
    let text = std::fs::read_to_string(&log).expect("agent log");
    assert!(text.contains("panicking on purpose"), "{text}");
    let ids = logged_program_ids(&text).expect("the agent logs its program ids on attach");
    assert_unloaded(&ids, "a panic in the dashboard");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn without_a_terminal_it_prints_the_report() {
    if !privileged() {
        return;
    }
    let mut child = Command::new(AGENT)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting zerocopy-trace");
    let mut lines = BufReader::new(child.stderr.take().expect("piped stderr")).lines();
    let mut said = Vec::new();
    loop {
        let line = lines
            .next()
            .expect("agent exited before attaching")
            .expect("reading agent stderr");
        let attached = line.contains("BPF program ids");
        said.push(line);
        if attached {
            break;
        }
    }
    // SAFETY: signalling our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let mut report = String::new();
    child
        .stdout
        .take()
        .expect("piped stdout")
        .read_to_string(&mut report)
        .expect("reading the report");
    assert!(child.wait().expect("waiting").success());
    assert!(
        said.iter()
            .any(|l| l.contains("stdout is not a terminal") && l.contains("report")),
        "{said:#?}"
    );
    assert!(report.starts_with("zerocopy-trace: "), "{report}");
    assert!(report.contains("dropped: "), "{report}");
}
