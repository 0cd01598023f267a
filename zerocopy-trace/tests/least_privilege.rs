//! Least privilege and bad input: the agent runs as an unprivileged user holding only
//! CAP_BPF, CAP_PERFMON and CAP_DAC_READ_SEARCH (tracefs is root-only) and counts exactly;
//! started as root, after attaching it is nobody with no capability, an empty bounding set,
//! NoNewPrivs and a seccomp filter whose refusals are errors, not kills; `run`'s command gets
//! none of its capabilities; without what it needs, and on every kind of bad input, it says so
//! in one line and exits non-zero. The names helper it starts to ask the container runtimes
//! keeps root's uid and nothing else, and goes away with the agent, even when the agent is
//! killed.

mod common;

use std::{os::unix::fs::PermissionsExt, path::Path, process::Command};

use common::{privileged, process, scratch, signal_agent, spawn_agent, workload, AGENT};

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

/// The agent's threads once attached, from /proc.
fn thread_statuses(pid: u32) -> Vec<procfs::process::Status> {
    procfs::process::Process::new(pid as i32)
        .and_then(|agent| agent.tasks())
        .expect("listing the agent's threads")
        .map(|task| {
            task.and_then(|task| task.status())
                .expect("the status of an agent thread")
        })
        .collect()
}

/// Started as root, once attached the agent is nobody, with no capability (CAP_BPF alone
/// where the kernel wants it for map reads: the agent says which), an empty bounding set,
/// NoNewPrivs and the seccomp filter; it can no longer read /etc/shadow, and a syscall outside
/// its allow-list is an error it reports, not a kill: it goes on and ends with its report.
#[test]
fn becomes_nobody_without_capabilities_after_attaching() {
    if !privileged() {
        return;
    }
    let mut child = Command::new(AGENT)
        .args(["report", "--json"])
        .env("RUST_LOG", "info")
        .env("ZEROCOPY_TRACE_TEST_FORBIDDEN", "5")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("starting zerocopy-trace");
    let pid = child.id();
    let stderr = child.stderr.take().unwrap();
    let (lines_tx, lines_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = lines_tx.send(line);
        }
    });
    let mut log = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    // Until the test hook has run (tick 5, half a second after attach).
    while !log.iter().any(|l: &String| l.contains("test hook: socket")) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match lines_rx.recv_timeout(left) {
            Ok(line) => log.push(line),
            Err(_) => panic!("no test hook line in 30 s:\n{}", log.join("\n")),
        }
    }
    let log_text = log.join("\n");
    let kept_bpf = log_text.contains("capabilities CAP_BPF only");
    assert!(
        kept_bpf || log_text.contains("privileges dropped: uid 65534, capabilities none"),
        "{log_text}"
    );
    let want_caps = if kept_bpf { 1u64 << 39 } else { 0 };
    for status in thread_statuses(pid) {
        assert_eq!((status.ruid, status.euid), (65534, 65534), "{log_text}");
        assert_eq!(
            (status.capeff, status.capprm, status.capinh),
            (want_caps, want_caps, 0)
        );
        assert_eq!(status.capbnd, Some(0), "bounding set");
        assert_eq!(status.capamb, Some(0), "ambient set");
        assert_eq!(status.nonewprivs, Some(1));
        assert_eq!(status.seccomp, Some(2), "seccomp filter");
    }
    assert!(
        log_text
            .contains("test hook: opening /etc/shadow: Err(Os { code: 13, kind: PermissionDenied"),
        "{log_text}"
    );
    assert!(
        log_text
            .contains("zerocopy-trace: seccomp: blocked syscall 41 (socket); it fails with ENOSYS"),
        "{log_text}"
    );
    assert!(
        log_text.contains("test hook: socket(AF_INET): Function not implemented"),
        "{log_text}"
    );
    // Still running, and it ends as always: detached, with its report.
    // SAFETY: signalling our own child.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGINT) }, 0);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{:?}\n{log_text}", out.status);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
    assert!(report["processes"].is_array());
}

/// `run`'s command gets none of the agent's capabilities: as root (the agent started by root,
/// no sudo), with the unit's ambient capabilities (here setpriv's), or as --user; root's own
/// only with `--user root`.
#[test]
fn the_command_of_run_has_no_capabilities() {
    if !privileged() {
        return;
    }
    let dir = open_dir("run-capabilities");
    let agent = runnable_copy(AGENT, &dir);
    let report = dir.join("report.json");
    let show = "grep -E '^(Uid|CapInh|CapPrm|CapEff|CapBnd|CapAmb):' /proc/self/status";
    let fields = |out: &std::process::Output| -> Vec<String> {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect()
    };
    let run = |prefix: &[&str], extra: &[&str]| {
        let mut command = Command::new(prefix.first().copied().unwrap_or(agent.as_str()));
        command.args(prefix.iter().skip(1));
        if !prefix.is_empty() {
            command.arg(&agent);
        }
        command
            .args(["run", "-o"])
            .arg(&report)
            .args(extra)
            .args(["--", "sh", "-c", show])
            .env_remove("SUDO_UID")
            .output()
            .unwrap()
    };
    let zero = "0000000000000000";
    let as_root = fields(&run(&[], &[]));
    assert_eq!(
        as_root,
        [
            "Uid: 0 0 0 0".to_string(),
            format!("CapInh: {zero}"),
            format!("CapPrm: {zero}"),
            format!("CapEff: {zero}"),
            format!("CapBnd: {zero}"),
            format!("CapAmb: {zero}"),
        ]
    );
    // Only when asked for by name does a command run as root with root's capabilities.
    let as_root_asked = fields(&run(&[], &["--user", "root"]));
    assert_eq!(as_root_asked[0], "Uid: 0 0 0 0");
    assert_ne!(
        as_root_asked[3],
        format!("CapEff: {zero}"),
        "{as_root_asked:?}"
    );
    let as_nobody = fields(&run(&[], &["--user", "nobody"]));
    assert_eq!(as_nobody[0], "Uid: 65534 65534 65534 65534");
    assert!(
        as_nobody[1..4].iter().all(|l| l.ends_with(zero)),
        "{as_nobody:?}"
    );
    let setpriv = format!("--inh-caps={CAPS}");
    let ambient = format!("--ambient-caps={CAPS}");
    let with_ambient = fields(&run(
        &[
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            &setpriv,
            &ambient,
        ],
        &[],
    ));
    assert_eq!(with_ambient[0], "Uid: 65534 65534 65534 65534");
    for (line, set) in with_ambient[1..]
        .iter()
        .zip(["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"])
    {
        if set != "CapBnd" {
            assert_eq!(*line, format!("{set}: {zero}"), "{with_ambient:?}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The agent's names helper: its one child whose command line is `names-helper`.
fn names_helper_of(agent: u32) -> u32 {
    let helpers: Vec<u32> = procfs::process::all_processes()
        .expect("listing processes")
        .filter_map(Result::ok)
        .filter(|p| p.stat().is_ok_and(|s| s.ppid == agent as i32))
        .filter(|p| {
            p.cmdline()
                .is_ok_and(|c| c.get(1).is_some_and(|a| a == "names-helper"))
        })
        .map(|p| p.pid as u32)
        .collect();
    assert_eq!(
        helpers.len(),
        1,
        "the names helpers of {agent}: {helpers:?}"
    );
    helpers[0]
}

/// Whether `pid` is gone (or a zombie: dead, waiting for a reaper that is not ours).
fn gone(pid: u32) -> bool {
    procfs::process::Process::new(pid as i32)
        .and_then(|p| p.stat())
        .map_or(true, |s| s.state == 'Z')
}

/// Started as root, the agent starts its names helper before it drops its privileges: root's
/// uid (the owner of the runtimes' sockets), no group, no capability in any set, NoNewPrivs,
/// its own seccomp filter, its own process group, nothing open but its socket pair and the
/// standard streams; it goes away when the agent ends, and when the agent is killed.
#[test]
fn the_names_helper_keeps_root_alone_and_dies_with_the_agent() {
    if !privileged() {
        return;
    }
    let dir = scratch("names-helper");
    let logs = dir.join("containers");
    std::fs::create_dir_all(&logs).unwrap();
    let names = format!("kubelet-logs={}", logs.display());
    for end in [libc::SIGINT, libc::SIGKILL] {
        let (mut agent, _) = spawn_agent(&["report", "--json", "--names-from", &names]);
        let agent_pid = agent.child().id();
        let helper = names_helper_of(agent_pid);
        let status = procfs::process::Process::new(helper as i32)
            .and_then(|p| p.status())
            .expect("the helper's status");
        assert_eq!(
            (status.ruid, status.euid, status.suid, status.fuid),
            (0, 0, 0, 0),
            "root's uid"
        );
        assert_eq!(status.groups, Vec::<u32>::new(), "no group");
        assert_eq!(
            (status.capinh, status.capprm, status.capeff),
            (0, 0, 0),
            "no capability"
        );
        assert_eq!(status.capbnd, Some(0), "bounding set");
        assert_eq!(status.capamb, Some(0), "ambient set");
        assert_eq!(status.nonewprivs, Some(1));
        assert_eq!(status.seccomp, Some(2), "its seccomp filter");
        let process = procfs::process::Process::new(helper as i32).unwrap();
        assert_eq!(process.stat().unwrap().pgrp, helper as i32, "its own group");
        // Nothing of the agent's but the socket pair and standard error: no map, program, file
        // or socket of its own; past the standard three, only its runtime's epoll, waker and
        // signal pair, made after it closed everything else.
        for fd in process.fd().expect("the helper's descriptors") {
            use procfs::process::FDTarget;
            let fd = fd.unwrap();
            let allowed = match (fd.fd, &fd.target) {
                (0, FDTarget::Socket(_)) => true,
                (1, FDTarget::Path(path)) => path == Path::new("/dev/null"),
                (2, FDTarget::Pipe(_)) => true,
                (3.., FDTarget::AnonInode(kind)) => kind == "[eventpoll]" || kind == "[eventfd]",
                (3.., FDTarget::Socket(_)) => true,
                _ => false,
            };
            assert!(allowed, "the helper holds fd {} -> {:?}", fd.fd, fd.target);
        }
        // The agent's own status: nobody, as always.
        let agent_status = procfs::process::Process::new(agent_pid as i32)
            .and_then(|p| p.status())
            .unwrap();
        assert_eq!(agent_status.euid, 65534);
        if end == libc::SIGINT {
            // The agent reaps it before it exits.
            let (exit, _) = signal_agent(&mut agent, end);
            assert!(exit.success(), "{exit:?}");
            assert!(gone(helper), "the helper outlived the agent");
        } else {
            let (exit, _) = signal_agent(&mut agent, end);
            assert_eq!(
                std::os::unix::process::ExitStatusExt::signal(&exit),
                Some(libc::SIGKILL)
            );
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while !gone(helper) {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the helper {helper} outlived the killed agent by 10 s"
                );
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
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
        // With CAP_DAC_READ_SEARCH the agent could see into /root: a path outside the cgroup
        // hierarchy is refused from its text, so whether it exists does not show.
        (vec![CAPS], "report --duration 1s --cgroup /root", "/root is not under the cgroup v2 hierarchy at /sys/fs/cgroup"),
        (vec![CAPS], "report --duration 1s --cgroup /root/absent-zc", "/root/absent-zc is not under the cgroup v2 hierarchy at /sys/fs/cgroup"),
        (vec![CAPS], "report --duration 1s --comm a-name-longer-than-15", "process names are 1 to 15 bytes"),
        (vec![CAPS], "report --duration 0", "out of range"),
        (vec![CAPS], "report --duration 5parsecs", "unknown unit"),
        (vec![CAPS], "top --interval -1s", "unexpected argument"),
        (vec![CAPS], "report --max-processes 0", "invalid value"),
        (vec![CAPS], "top --interval 0.0000000001s", "is too short: refresh at most every 100ms"),
        (vec![CAPS], "report --user root", "--user root: only an agent started as root can become another user"),
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
