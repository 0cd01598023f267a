//! Shared helpers of the privileged integration tests: they load and attach the real programs,
//! so they need root. Outside CI they skip loudly when not root; in CI (CI=true) that is a
//! failure, never a silent skip.

#![allow(dead_code)]

pub mod containers;
pub mod fake_cri;
pub mod kafka;
pub mod prometheus;
pub mod tmux;

use std::{
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicUsize, Ordering},
        LazyLock,
    },
};

use serde_json::Value;

pub const AGENT: &str = env!("CARGO_BIN_EXE_zerocopy-trace");
/// The workload helper (a crate of its own, never shipped), which `cargo xtask test` builds into
/// the agent's target directory before the tests run.
pub fn workload() -> &'static str {
    static PATH: LazyLock<String> = LazyLock::new(|| {
        let path = Path::new(AGENT).with_file_name("zerocopy-trace-workload");
        assert!(
            path.is_file(),
            "the workload helper is not built at {}: run the tests with `cargo xtask test`, \
             or build it first with `cargo build -p zerocopy-trace-workload`",
            path.display()
        );
        path.to_string_lossy().into_owned()
    });
    &PATH
}

/// Privileged tests of this binary that skipped, for the summary printed at exit.
static SKIPPED: AtomicUsize = AtomicUsize::new(0);

/// True when the test may run; false (after saying so) when it must skip.
pub fn privileged() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("privileged test cannot run: not root, and CI=true forbids skipping");
    }
    let test = std::thread::current()
        .name()
        .map_or_else(|| "a privileged test".to_owned(), str::to_owned);
    say(&format!(
        "SKIPPED {test} (not root): it loads BPF programs; run `sudo cargo xtask test`"
    ));
    if SKIPPED.fetch_add(1, Ordering::SeqCst) == 0 {
        // SAFETY: registers a plain function, once; it only reads an atomic and writes stderr.
        unsafe { libc::atexit(say_how_many_skipped) };
    }
    false
}

/// libtest captures what `eprintln!` prints and shows it only for failed tests; the stderr
/// stream itself is not captured, so a line written there shows in every run.
fn say(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// After libtest's own summary, which counts a skipped test as passed.
extern "C" fn say_how_many_skipped() {
    let skipped = SKIPPED.load(Ordering::SeqCst);
    say(&format!(
        "SKIPPED: {skipped} privileged test(s) of this binary did not run (not root); \
         the \"passed\" above includes them"
    ));
}

/// Writes `size` bytes of a fixed pattern to `path` (a file servers and fio read).
pub fn write_file(path: &std::path::Path, size: u64) {
    let chunk: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
    let mut data = Vec::with_capacity(size as usize);
    while (data.len() as u64) < size {
        data.extend_from_slice(&chunk);
    }
    data.truncate(size as usize);
    std::fs::write(path, data).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

/// Free loopback ports, distinct: all are held until all are known, then released for the
/// servers to bind.
pub fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: [std::net::TcpListener; N] = std::array::from_fn(|_| {
        std::net::TcpListener::bind("127.0.0.1:0").expect("a free loopback port")
    });
    listeners.map(|l| l.local_addr().expect("a bound address").port())
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    let [port] = free_ports();
    port
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
    trace_run_with(dir, &[], command)
}

/// `trace_run` with extra agent options (e.g. `--hook tracepoints`).
pub fn trace_run_with(dir: &std::path::Path, options: &[&str], command: &[&str]) -> (i32, Value) {
    let report = dir.join("report.json");
    let out = Command::new(AGENT)
        .args(["run", "--json", "-o"])
        .arg(&report)
        .args(options)
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

/// Waits until `path` exists, at most `timeout`.
pub fn wait_for_file(path: &Path, timeout: std::time::Duration) {
    let deadline = std::time::Instant::now() + timeout;
    while !path.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "{} did not appear within {timeout:?}",
            path.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The kernel memory charged to the BPF maps process `pid` holds (the `memlock` of each map
/// fd in its fdinfo), in bytes.
pub fn kernel_map_bytes(pid: u32) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(format!("/proc/{pid}/fdinfo"))
        .unwrap()
        .flatten()
    {
        let Ok(info) = std::fs::read_to_string(entry.path()) else {
            continue;
        };
        if !info.lines().any(|line| line.starts_with("map_type:")) {
            continue;
        }
        total += info
            .lines()
            .find_map(|line| line.strip_prefix("memlock:"))
            .and_then(|value| value.trim().parse::<u64>().ok())
            .unwrap_or(0);
    }
    total
}

/// Whether the running kernel's BTF names `name` (a function, type or member), by its
/// string table: enough to tell which features a kernel has.
pub fn kernel_btf_names(name: &str) -> bool {
    let btf = std::fs::read("/sys/kernel/btf/vmlinux").unwrap();
    let needle = format!("\0{name}\0");
    btf.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// The number of possible CPUs (what per-CPU maps are sized by).
pub fn possible_cpus() -> usize {
    let text = std::fs::read_to_string("/sys/devices/system/cpu/possible").unwrap();
    text.trim()
        .split(',')
        .map(|range| match range.split_once('-') {
            Some((a, b)) => b.parse::<usize>().unwrap() - a.parse::<usize>().unwrap() + 1,
            None => 1,
        })
        .sum()
}

/// Asserts nothing was dropped.
pub fn assert_nothing_dropped(report: &Value) {
    for (reason, d) in report["dropped"].as_object().expect("dropped object") {
        assert_eq!(d["calls"], 0, "dropped {reason}: {d}");
        assert_eq!(d["bytes"], 0, "dropped {reason}: {d}");
    }
}

/// An agent started by a test. Killed if the test fails first, so a failed assertion never
/// leaves a tracer attached to the machine.
pub struct Agent(Option<Child>);

impl Agent {
    pub fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("agent already stopped")
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts the agent with `args` (stdout piped, `RUST_LOG=info`), waits until its programs are
/// attached, and returns it with the kernel ids of those programs.
pub fn spawn_agent(args: &[&str]) -> (Agent, Vec<u32>) {
    spawn_agent_with_env(args, &[])
}

/// `spawn_agent` with extra environment variables.
pub fn spawn_agent_with_env(args: &[&str], env: &[(&str, &str)]) -> (Agent, Vec<u32>) {
    let (agent, said, rest) = spawn_agent_watched(args, env);
    // Keep draining stderr so the agent never blocks on a full pipe.
    std::thread::spawn(move || for _ in rest {});
    (agent, program_ids(&said))
}

/// The kernel ids of the programs in the agent's attached line, the last of `said`.
pub fn program_ids(said: &[String]) -> Vec<u32> {
    let line = said.last().expect("the attached line");
    let list = line
        .split("BPF program ids [")
        .nth(1)
        .unwrap_or_else(|| panic!("no program ids in {line:?}"));
    list.trim_end_matches(']')
        .split(", ")
        .map(|id| id.parse::<u32>().expect("numeric program id"))
        .collect()
}

/// Starts the agent with `args` (stdout piped, `RUST_LOG=info` unless `env` says otherwise)
/// and waits until its programs are attached; returns it, what it said on stderr until then
/// (the attached line last), and the lines it says after, as they come (read them, or drop
/// the receiver: the agent never blocks on a full pipe).
pub fn spawn_agent_watched(
    args: &[&str],
    env: &[(&str, &str)],
) -> (Agent, Vec<String>, std::sync::mpsc::Receiver<String>) {
    let mut child = Command::new(AGENT)
        .args(args)
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting zerocopy-trace");
    let stderr = child.stderr.take().expect("piped stderr");
    let mut lines = BufReader::new(stderr).lines();
    let mut said = Vec::new();
    loop {
        let line = match lines.next() {
            Some(Ok(line)) => line,
            _ => panic!(
                "the agent exited before attaching: {:?}\n{}",
                child.wait(),
                said.join("\n")
            ),
        };
        let attached = line.contains("BPF program ids [");
        said.push(line);
        if attached {
            break;
        }
    }
    let (send, receive) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            // A receiver dropped: keep draining all the same.
            let _ = send.send(line);
        }
    });
    (Agent(Some(child)), said, receive)
}

/// Waits at most `timeout` for a line of `lines` that contains `needle`; returns it.
pub fn wait_for_line(
    lines: &std::sync::mpsc::Receiver<String>,
    needle: &str,
    timeout: std::time::Duration,
) -> String {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return line,
            Ok(_) => {}
            Err(e) => panic!("no line with {needle:?} within {timeout:?}: {e}"),
        }
    }
}

/// Sends `signal` to an agent started by `spawn_agent`; returns how it ended and its stdout.
pub fn signal_agent(agent: &mut Agent, signal: i32) -> (std::process::ExitStatus, String) {
    use std::io::Read;
    let child = agent.child();
    // SAFETY: signalling our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .expect("piped stdout")
        .read_to_string(&mut stdout)
        .expect("reading the report");
    (child.wait().expect("waiting for the agent"), stdout)
}

/// Ends an agent started by `spawn_agent` with SIGINT and returns its JSON report.
pub fn stop_agent(mut agent: Agent) -> Value {
    let (status, stdout) = signal_agent(&mut agent, libc::SIGINT);
    assert!(status.success(), "agent failed: {status:?}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("bad JSON ({e}):\n{stdout}"))
}

/// Which of these kernel program ids are loaded.
pub fn loaded(ids: &[u32]) -> Vec<u32> {
    aya::programs::loaded_programs()
        .filter_map(Result::ok)
        .map(|info| info.id())
        .filter(|id| ids.contains(id))
        .collect()
}

/// The kernel frees a program once its last reference is gone, which can trail the process
/// exit by a grace period; wait for that, boundedly, then insist.
pub fn assert_unloaded(ids: &[u32], how: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !loaded(ids).is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(
        loaded(ids),
        Vec::<u32>::new(),
        "programs left loaded after {how}"
    );
}

/// True when `program` is on PATH; false (after saying so) outside CI, a failure in CI.
pub fn have(program: &str, package: &str) -> bool {
    if Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("{program} is missing, and CI=true forbids skipping (`cargo xtask test` installs {package})");
    }
    eprintln!("SKIPPED ({program} not installed): `cargo xtask test` installs {package}");
    false
}
