//! `zerocopy-trace run -- CMD` changes nothing its command would see without it: the command
//! starts with SIGPIPE at its default and nothing blocked, SIGINT, SIGTERM and SIGHUP sent to the
//! agent reach it (the agent then exits with its status), and when the agent is killed with
//! SIGKILL the command dies too, leaving no temporary report file behind.

mod common;

use std::{
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use common::{privileged, scratch, AGENT};

/// The agent of a test, killed and reaped if the test fails first.
struct Agent(std::process::Child);

impl std::ops::Deref for Agent {
    type Target = std::process::Child;
    fn deref(&self) -> &std::process::Child {
        &self.0
    }
}

impl std::ops::DerefMut for Agent {
    fn deref_mut(&mut self) -> &mut std::process::Child {
        &mut self.0
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `run -o DIR/report.json -- sh -c SCRIPT` (stderr piped, `RUST_LOG=info`) and waits
/// until the command has written its pid to DIR/pid; returns the agent and the command's pid.
fn start(dir: &Path, script: &str) -> (Agent, i32) {
    let pid_file = dir.join("pid");
    let agent = Command::new(AGENT)
        .args(["run", "-o"])
        .arg(dir.join("report.json"))
        .args(["--", "sh", "-c"])
        .arg(format!("echo $$ > {}; {script}", pid_file.display()))
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map(Agent)
        .expect("starting zerocopy-trace");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(pid) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|text| text.trim().parse().ok())
        {
            return (agent, pid);
        }
        assert!(
            Instant::now() < deadline,
            "the command did not start in 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn signal(pid: u32, signal: i32) {
    // SAFETY: signalling a process of this test.
    assert_eq!(unsafe { libc::kill(pid as i32, signal) }, 0);
}

/// Waits at most `within` for `child` to exit.
fn exit_within(child: &mut std::process::Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "the agent did not exit within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether `pid` is gone or a zombie (dead, not yet reaped by its new parent).
fn dead(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

/// Files of `dir` but the ones the test made.
fn left_over(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != "pid" && name != "report.json")
        .collect()
}

/// Without RUST_LOG the agent says one thing on stderr: that it is attached, with the hook and
/// the scope, so a script can wait for that line.
#[test]
fn the_attached_line_is_shown_by_default_and_names_the_scope() {
    if !privileged() {
        return;
    }
    let dir = scratch("run-attached-line");
    let out = Command::new(AGENT)
        .args(["run", "-o"])
        .arg(dir.join("report.json"))
        .args(["--", "true"])
        .env_remove("RUST_LOG")
        .output()
        .expect("starting zerocopy-trace");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let attached: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains("attached"))
        .collect();
    assert_eq!(attached.len(), 1, "{stderr}");
    let line = attached[0];
    assert!(line.starts_with("[INFO ] attached 22 syscalls ("), "{line}");
    assert!(
        line.contains(" hook; scope: command pid ") && line.contains("; new children followed;"),
        "{line}"
    );
    assert!(line.contains("BPF program ids ["), "{line}");
    // Nothing else at info level without RUST_LOG.
    assert!(
        !stderr
            .lines()
            .any(|l| l.starts_with("[INFO ]") && l != line),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_command_starts_with_default_signals() {
    if !privileged() {
        return;
    }
    let dir = scratch("run-signals-default");
    // SigBlk and SigIgn as the command sees them, then a SIGPIPE to itself: with SIGPIPE
    // ignored (Rust's runtime ignores it, and exec keeps that) the shell would survive.
    let out = Command::new(AGENT)
        .args(["run", "-o"])
        .arg(dir.join("report.json"))
        .args([
            "--",
            "sh",
            "-c",
            "grep -E '^Sig(Blk|Ign):' /proc/self/status; kill -PIPE $$; exit 0",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mask = |field: &str| -> u64 {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(field))
            .unwrap_or_else(|| panic!("no {field} in {stdout}"));
        u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
    };
    assert_eq!(mask("SigBlk:"), 0, "{stdout}");
    assert_eq!(mask("SigIgn:") & (1 << (libc::SIGPIPE - 1)), 0, "{stdout}");
    assert_eq!(out.status.code(), Some(128 + libc::SIGPIPE), "{out:?}");
    let report = std::fs::read_to_string(dir.join("report.json")).unwrap();
    assert!(
        report.contains("ended: command exited with status 141"),
        "{report}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// SIGINT, SIGTERM and SIGHUP sent to the agent (as `kill`, systemd or a supervisor sends
/// them) reach the command; the agent goes on tracing until it exits and exits with its
/// status, the report written.
#[test]
fn signals_sent_to_the_agent_reach_the_command() {
    if !privileged() {
        return;
    }
    for (sig, name) in [
        (libc::SIGTERM, "SIGTERM"),
        (libc::SIGINT, "SIGINT"),
        (libc::SIGHUP, "SIGHUP"),
    ] {
        let dir = scratch(&format!("run-forward-{name}"));
        let (mut agent, command) = start(&dir, "exec sleep 30");
        let started = Instant::now();
        signal(agent.id(), sig);
        let status = exit_within(&mut agent, Duration::from_secs(10));
        assert_eq!(status.code(), Some(128 + sig), "{name}: {status:?}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{name}: took {:?}",
            started.elapsed()
        );
        assert!(dead(command), "{name}: the command still runs");
        let mut stderr = String::new();
        use std::io::Read;
        agent
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        assert!(
            stderr.contains(&format!(
                "{name} from pid {}: passed on to the command",
                std::process::id()
            )),
            "{name}: {stderr}"
        );
        let report = std::fs::read_to_string(dir.join("report.json")).unwrap();
        assert!(
            report.contains(&format!("ended: command exited with status {}", 128 + sig)),
            "{name}: {report}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// SIGKILL of the agent takes the command with it (PR_SET_PDEATHSIG), and the temporary file
/// of `-o` is removed (its keeper sees the agent gone); a report already there is untouched.
#[test]
fn the_command_dies_with_the_agent() {
    if !privileged() {
        return;
    }
    let dir = scratch("run-sigkill");
    std::fs::write(dir.join("report.json"), "the previous report").unwrap();
    let (mut agent, command) = start(&dir, "exec sleep 30");
    assert!(!dead(command));
    assert_eq!(left_over(&dir).len(), 1, "the temporary report file");
    signal(agent.id(), libc::SIGKILL);
    let _ = agent.wait();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !(dead(command) && left_over(&dir).is_empty()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(dead(command), "the command outlived the agent");
    assert_eq!(left_over(&dir), Vec::<String>::new());
    assert_eq!(
        std::fs::read_to_string(dir.join("report.json")).unwrap(),
        "the previous report"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
