//! A process is named by its program: the name of its thread group leader, which is the
//! program's after its last exec, whatever its other threads call themselves and whichever of
//! them exits last. Real programs with exactly known bytes: Debian's Java 17 writing a file
//! from threads that rename themselves and outlive its main thread, and a shell that is known
//! to the agent as `sh` before it execs `cp` (exiting) or `python3` (alive at the end).

mod common;

use std::{
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use serde_json::Value;

use common::{
    have, privileged, process, scratch, spawn_agent_watched, stop_agent, trace_run, wait_for_line,
    write_file,
};

/// What the agent logs as it learns names (debug lines of its collector), on top of `info`.
const NAMES_LOG: (&str, &str) = ("RUST_LOG", "info,zerocopy_trace::collect=debug");

/// How long the agent may take to learn a process's name (it walks the live map every second).
const LEARNED_WITHIN: Duration = Duration::from_secs(20);

/// Bytes the workloads write, and the Java program's threads.
const BYTES: u64 = 3_000_000;
const JAVA_THREADS: u32 = 6;

/// The bytes a process wrote to files, by `write`.
fn written_to_files(p: &Value) -> &Value {
    &p["syscalls"]["write"]["fd_kinds"]["destination"]["file"]
}

/// Opens the fifo `gate` for writing (which waits for its reader, the shell) and lets the shell
/// read one line from it.
fn open_gate(gate: &Path) {
    std::fs::write(gate, "go\n").unwrap_or_else(|e| panic!("opening {}: {e}", gate.display()));
}

/// Waits for the file `path` that process `pid` makes, saying what became of it if it does not.
fn wait_until(path: &Path, timeout: Duration, pid: u32) {
    let deadline = std::time::Instant::now() + timeout;
    while !path.exists() {
        if std::time::Instant::now() > deadline {
            let read = |file: &str| std::fs::read_to_string(format!("/proc/{pid}/{file}"));
            panic!(
                "{} did not appear within {timeout:?}; pid {pid}: comm {:?}, stat {:?}, wchan {:?}",
                path.display(),
                read("comm"),
                read("stat"),
                read("wchan")
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn make_fifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().expect("mkfifo");
    assert!(status.success(), "mkfifo {}", path.display());
}

/// `java Names.java OUT BYTES THREADS` under `run`: the threads rename themselves (their
/// comm, as `ps -L` shows) and are still alive when the JVM exits, so the thread that exits
/// last is almost never the leader (the issue saw `GC Thread#0` and `Notification Th` in 15 runs
/// of 16). The report names the process `java` with the file's bytes, every round.
#[test]
fn java_is_named_java_whichever_thread_exits_last() {
    // `java File.java` compiles the source first: the JDK, not only the JRE.
    if !privileged() || !have("javac", "openjdk-17-jdk-headless") {
        return;
    }
    let dir = scratch("names-java");
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs/Names.java");
    let out = dir.join("out.bin");
    let threads = JAVA_THREADS.to_string();
    let bytes = BYTES.to_string();
    for round in 0..3 {
        let (status, report) = trace_run(
            &dir,
            &[
                "java",
                // No write but the program's own: no perf data file, and no writes of
                // /proc/self/coredump_filter at start-up.
                "-XX:-UsePerfData",
                "-XX:+UnlockDiagnosticVMOptions",
                "-XX:-DumpPrivateMappingsInCore",
                "-XX:-DumpSharedMappingsInCore",
                source.to_str().unwrap(),
                out.to_str().unwrap(),
                &bytes,
                &threads,
            ],
        );
        assert_eq!(status, 0, "round {round}: {report:#}");
        assert_eq!(std::fs::metadata(&out).unwrap().len(), BYTES);
        let processes = report["processes"].as_array().unwrap();
        let writer = processes
            .iter()
            .find(|p| written_to_files(p).as_u64().is_some_and(|b| b > 0))
            .unwrap_or_else(|| panic!("round {round}: no process wrote a file: {report:#}"));
        assert_eq!(writer["comm"], "java", "round {round}: {writer:#}");
        assert_eq!(writer["exited"], true, "round {round}: {writer:#}");
        assert_eq!(
            *written_to_files(writer),
            BYTES,
            "round {round}: {writer:#}"
        );
        assert_eq!(
            writer["syscalls"]["write"]["bytes"], BYTES,
            "round {round}: {writer:#}"
        );
        for p in processes {
            let comm = p["comm"].as_str().unwrap();
            assert!(
                !comm.starts_with("renamed-") && !comm.starts_with("GC Thread"),
                "round {round}: a thread's name: {p:#}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `sh -c '...; exec cp SRC DST'` under `run`: the shell reads a file, so it is counted and
/// learned as `sh` while alive, then execs cp, which copies the file and exits. The process
/// is reported as `cp` with the copy's bytes, and no `sh` is left in the report.
#[test]
fn a_process_that_execs_is_named_after_the_program() {
    if !privileged() {
        return;
    }
    let dir = scratch("names-exec-cp");
    let (source, copy, gate) = (dir.join("a"), dir.join("b"), dir.join("gate"));
    write_file(&source, BYTES);
    make_fifo(&gate);
    let report_path = dir.join("report.json");
    let script = format!(
        "read x < /etc/hostname; read go < {}; exec cp {} {}",
        gate.display(),
        source.display(),
        copy.display()
    );
    let (mut agent, said, lines) = spawn_agent_watched(
        &[
            "run",
            "--json",
            "-o",
            report_path.to_str().unwrap(),
            "--",
            "sh",
            "-c",
            &script,
        ],
        &[NAMES_LOG],
    );
    let attached = said.last().unwrap();
    let pid: u64 = attached
        .split("scope: command pid ")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("no command pid in {attached:?}"));
    wait_for_line(&lines, &format!("learned pid {pid}: sh"), LEARNED_WITHIN);
    open_gate(&gate);
    let status = agent.child().wait().expect("waiting for the agent");
    assert!(status.success(), "{status:?}");
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
    assert_eq!(std::fs::metadata(&copy).unwrap().len(), BYTES);
    let cp = process(&report, pid);
    assert_eq!(cp["comm"], "cp", "{cp:#}");
    assert_eq!(cp["exited"], true, "{cp:#}");
    assert_eq!(cp["syscalls"]["copy_file_range"]["bytes"], BYTES, "{cp:#}");
    assert_eq!(
        cp["syscalls"]["copy_file_range"]["fd_kinds"]["destination"]["file"], BYTES,
        "{cp:#}"
    );
    let names: Vec<&str> = report["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["comm"].as_str().unwrap())
        .collect();
    assert!(!names.contains(&"sh"), "{names:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A shell traced by `--pid`, learned as `sh`, execs `python3`, which writes a file and stays
/// alive: the report, taken while it lives, names it `python3` (from the exec the kernel saw,
/// without reading /proc again), with the file's bytes.
#[test]
fn a_live_process_is_renamed_when_it_execs() {
    if !privileged() {
        return;
    }
    let dir = scratch("names-exec-live");
    let (first, second) = (dir.join("gate1"), dir.join("gate2"));
    make_fifo(&first);
    make_fifo(&second);
    let (out, done) = (dir.join("out.bin"), dir.join("done"));
    let code = "import sys, time\n\
                open(sys.argv[1], 'wb').write(bytes(int(sys.argv[2])))\n\
                open(sys.argv[3], 'w').close()\n\
                time.sleep(600)\n";
    let mut shell = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "read x < {}; read y < {}; exec python3 -B -I -c \"$0\" {} {BYTES} {}",
            first.display(),
            second.display(),
            out.display(),
            done.display()
        ))
        .arg(code)
        .stdin(Stdio::null())
        .spawn()
        .expect("starting sh");
    let pid = shell.id();
    let (agent, said, lines) = spawn_agent_watched(
        &["report", "--json", "--pid", &pid.to_string()],
        &[NAMES_LOG],
    );
    assert!(
        said.last().unwrap().contains(&format!(
            "scope: pid {pid} + 0 descendants; new children followed"
        )),
        "{said:#?}"
    );
    // The shell reads from the first gate (counted), then waits at the second.
    open_gate(&first);
    wait_for_line(&lines, &format!("learned pid {pid}: sh"), LEARNED_WITHIN);
    open_gate(&second);
    // Generous: python3 starts in well under a second here, in some seconds in a TCG guest.
    wait_until(&done, Duration::from_secs(120), pid);
    wait_for_line(
        &lines,
        &format!("pid {pid} exec'd: named python3"),
        LEARNED_WITHIN,
    );
    let report = stop_agent(agent);
    let _ = shell.kill();
    let _ = shell.wait();
    let python = process(&report, u64::from(pid));
    assert_eq!(python["comm"], "python3", "{python:#}");
    assert_eq!(python["exited"], false, "{python:#}");
    assert_eq!(*written_to_files(python), BYTES, "{python:#}");
    let _ = std::fs::remove_dir_all(&dir);
}
