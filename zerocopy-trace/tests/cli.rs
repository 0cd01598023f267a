//! The agent's command line against a real kernel: exit statuses, errors on bad input (an
//! `-o` that cannot be written refused before anything starts, the report file staged and
//! renamed), and the report of a command's whole process tree.

mod common;

use std::process::Command;

use common::{privileged, process, scratch, trace_run, AGENT};

fn agent(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(AGENT)
        .args(args)
        .output()
        .expect("starting zerocopy-trace");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_flags_are_one_clear_error() {
    // No privileges needed: these fail before touching the kernel.
    for (args, needle) in [
        (vec!["report", "--duration", "0s"], "out of range"),
        (vec!["report", "--duration", "ten"], "not a duration"),
        (vec!["report", "--bogus"], "unexpected argument"),
        (vec!["report", "--pid", "abc"], "invalid value"),
        (vec!["run"], "required"),
        (
            vec!["exporter", "--listen", "localhost"],
            "`localhost` is not an address to listen on",
        ),
        (
            vec!["exporter", "--listen", "127.0.0.1:99999"],
            "is not an address to listen on",
        ),
        (vec!["exporter", "--labels", "pod"], "invalid value 'pod'"),
        (
            vec!["exporter", "--labels", "pid,bogus"],
            "invalid value 'bogus'",
        ),
        (vec!["exporter", "--max-groups", "0"], "invalid value"),
        (vec!["report", "--max-rows", "x"], "invalid value"),
        (
            vec!["top", "--interval", "0.0000000001s"],
            "is too short: refresh at most every 100ms",
        ),
        (
            vec!["top", "--interval", "0.000001s"],
            "is too short: refresh at most every 100ms",
        ),
        (vec!["report", "--duration", "0.0001s"], "at least 1ms"),
    ] {
        let (code, stdout, stderr) = agent(&args);
        assert_ne!(code, 0, "{args:?} must fail");
        assert!(stdout.is_empty(), "{args:?} printed to stdout: {stdout}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn an_occupied_listen_address_is_one_line_and_exit_1() {
    // No privileges needed: the exporter binds before it attaches anything.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a free port");
    let addr = taken.local_addr().unwrap().to_string();
    let (code, stdout, stderr) = agent(&["exporter", "--listen", &addr]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert_eq!(
        stderr.trim(),
        format!(
            "zerocopy-trace: error: cannot listen on {addr} (another exporter there? choose one with --listen): Address already in use (os error 98)"
        )
    );
}

#[test]
fn unknown_pid_and_missing_command_fail_cleanly() {
    if !privileged() {
        return;
    }
    let (code, _, stderr) = agent(&["report", "--pid", "999999999", "--duration", "1s"]);
    assert_eq!(code, 1);
    assert_eq!(
        stderr.trim(),
        "zerocopy-trace: error: no such process: 999999999"
    );

    let (code, _, stderr) = agent(&["run", "--", "/nonexistent/command"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("cannot run /nonexistent/command: No such file or directory"),
        "{stderr}"
    );
}

#[test]
fn run_reports_the_whole_tree_and_exits_with_the_command_status() {
    if !privileged() {
        return;
    }
    let dir = scratch("tree");
    let file = dir.join("data");
    std::fs::write(&file, vec![7u8; 300_000]).unwrap();
    // A shell whose child (cat) reads the file and writes it to /dev/null, then exits 3.
    let script = format!("cat {} > /dev/null; exit 3", file.display());
    let (status, report) = trace_run(&dir, &["sh", "-c", &script]);
    assert_eq!(status, 3);
    let processes = report["processes"].as_array().unwrap();
    let cat = processes
        .iter()
        .find(|p| p["comm"] == "cat")
        .unwrap_or_else(|| panic!("no cat in {report:#}"));
    let shell = process(&report, cat["ppid"].as_u64().unwrap());
    assert_eq!(shell["comm"], "sh", "cat's parent is the shell: {report:#}");
    // cat moves the file with copy_file_range, sendfile or read+write depending on coreutils;
    // whichever it is, all 300 000 bytes reach /dev/null exactly once.
    let sc = &cat["syscalls"];
    let out_bytes = ["write", "copy_file_range", "sendfile64", "splice"]
        .iter()
        .map(|s| sc[*s]["bytes"].as_u64().unwrap_or(0))
        .sum::<u64>();
    assert_eq!(out_bytes, 300_000, "{cat:#}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `run --json -- CMD | jq`: stdout is one JSON document whatever CMD prints; CMD's own
/// output comes out on stderr instead, and its writes are still counted.
#[test]
fn run_json_stays_parseable_when_the_command_prints() {
    if !privileged() {
        return;
    }
    let (code, stdout, stderr) = agent(&[
        "run",
        "--json",
        "--",
        "sh",
        "-c",
        "echo hello from the command; printf '{not json'",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{stdout}"));
    assert!(
        stderr.contains("hello from the command") && stderr.contains("{not json"),
        "{stderr}"
    );
    let shell = report["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["comm"] == "sh")
        .unwrap_or_else(|| panic!("no sh in {report:#}"));
    // "hello from the command\n" (23 bytes) and "{not json" (9), written to stderr now.
    assert_eq!(shell["syscalls"]["write"]["bytes"], 32, "{shell:#}");
}

/// Files of `dir`, sorted.
fn names(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// An `-o` that cannot be written is refused in one line before anything is attached or run:
/// no privileges needed, the command of `run` never starts, nothing is left behind.
#[test]
fn unwritable_outputs_are_refused_before_anything_starts() {
    let dir = scratch("bad-output");
    let dir_text = dir.to_str().unwrap();
    let missing = format!("{dir_text}/missing/report.json");
    for (args, needle) in [
        (
            vec!["report", "-o", dir_text],
            format!("-o {dir_text}: is a directory (-o takes a file)"),
        ),
        (
            vec!["report", "--format", "prom", "-o", dir_text],
            format!("-o {dir_text}: is a directory (-o takes a file)"),
        ),
        (
            vec!["report", "-o", &missing],
            format!("-o {missing}: {dir_text}/missing: No such file or directory"),
        ),
        (
            vec!["report", "-o", "/proc/version"],
            "-o /proc/version: cannot create a file in /proc to write it".to_string(),
        ),
        (
            vec!["report", "-o", "/dev/null"],
            "-o /dev/null: is a device".to_string(),
        ),
    ] {
        let (code, stdout, stderr) = agent(&args);
        assert_eq!(code, 1, "{args:?}: {stderr}");
        assert!(stdout.is_empty(), "{args:?}: {stdout}");
        assert!(
            stderr.starts_with(&format!("zerocopy-trace: error: {needle}")),
            "{args:?}: {stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
    }
    // `run` refuses before its command starts.
    let touched = dir.join("touched");
    let (code, _, stderr) = agent(&[
        "run",
        "-o",
        dir_text,
        "--",
        "touch",
        touched.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(!touched.exists(), "the command ran before -o was refused");
    let (code, _, stderr) = agent(&["run", "--", "/no/such/command"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("cannot run /no/such/command: No such file or directory"),
        "{stderr}"
    );
    assert_eq!(names(&dir), Vec::<String>::new());
    let _ = std::fs::remove_dir_all(&dir);
}

/// The report is written under a temporary name beside its target, mode 0600, while the trace
/// runs; renamed at the end (an existing 0644 file becomes 0600, as the help promises); and on
/// a failure after the start the temporary file goes and the old report stays.
#[test]
fn the_report_file_is_staged_private_and_renamed() {
    if !privileged() {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch("staged-output");
    let report = dir.join("report.json");
    std::fs::write(&report, "old").unwrap();
    std::fs::set_permissions(&report, std::fs::Permissions::from_mode(0o644)).unwrap();
    // The command sees the temporary file (named after the agent, its parent) while traced.
    let script = format!(
        "stat -c '%a %n' {}/.report.json.$PPID.tmp; cat {}",
        dir.display(),
        report.display()
    );
    let out = Command::new(AGENT)
        .args(["run", "--json", "-o"])
        .arg(&report)
        .args(["--", "sh", "-c", &script])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with("600 ") && stdout.ends_with("old"),
        "{stdout}"
    );
    let mode = std::fs::metadata(&report).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).expect("the report");
    assert!(json["processes"].is_array());
    assert_eq!(names(&dir), ["report.json"]);
    // A failure once the file is started: nothing replaced, nothing left.
    let (code, _, stderr) = agent(&[
        "report",
        "--pid",
        "999999999",
        "-o",
        report.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(names(&dir), ["report.json"]);
    assert!(std::fs::read_to_string(&report).unwrap().starts_with('{'));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A web configuration the exporter cannot serve as written is one line and exit 1, before
/// anything is bound or attached (no privileges needed).
#[test]
fn bad_web_configurations_are_one_line() {
    let dir = scratch("bad-web-config");
    let file = dir.join("web.yml");
    for (text, needle) in [
        (
            "tls_server_config:\n  cert_file: a\n  key_fil: b\n",
            "tls_server_config: unknown field `key_fil`",
        ),
        (
            "tls_server_config:\n  cert_file: a.crt\n  key_file: a.key\n",
            "reading cert_file",
        ),
        (
            "tls_server_config:\n  cert_file: a.crt\n  key_file: a.key\n  min_version: TLS11\n",
            "TLS 1.0 and 1.1 are not offered",
        ),
        (
            "tls_server_config:\n  cert_file: a.crt\n  key_file: a.key\n  \
             client_auth_type: RequireAnyClientCert\n",
            "RequireAnyClientCert accepts certificates without verifying them",
        ),
        (
            "basic_auth_users:\n  prometheus: s3cret\n",
            "the password of \"prometheus\" is not a bcrypt hash",
        ),
        (
            "tls_server_config:\n  cert: x\n  key: y\n  min_version: TLS10\n",
            "TLS 1.0 and 1.1 are not offered",
        ),
    ] {
        std::fs::write(&file, text).unwrap();
        let (code, stdout, stderr) =
            agent(&["exporter", "--web.config.file", file.to_str().unwrap()]);
        assert_eq!(code, 1, "{text:?}: {stderr}");
        assert!(stdout.is_empty());
        assert_eq!(stderr.lines().count(), 1, "{text:?}: {stderr}");
        assert!(
            stderr.starts_with(&format!(
                "zerocopy-trace: error: in the web configuration {}: ",
                file.display()
            )) && stderr.contains(needle),
            "{text:?}: {stderr}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
