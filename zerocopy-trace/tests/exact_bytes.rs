//! The tracer against ground truth: the workload helper moves exactly known bytes in every
//! mode of the data path, in forked children that make no other data-path syscall, and records
//! what each call and io_uring completion returned. Under `zerocopy-trace run --json`, every
//! child's per-syscall calls, bytes and errors, per-operation completions, bytes and errors,
//! its zero-copy sends and the notices it read, its transitions, and the verdict of its mode
//! must match exactly.

mod common;

use serde_json::Value;

use common::{assert_nothing_dropped, privileged, process, scratch, trace_run_with, workload};

/// The verdict each (mode, role) must get. Receivers copy into user memory in every mode.
fn expected_verdict(mode: &str, role: &str) -> &'static str {
    match (mode, role) {
        (_, "receiver") => "copying",
        (
            "sendfile" | "splice" | "copy-file-range" | "pipe-zero-copy" | "uring-direct-read"
            | "uring-splice",
            _,
        ) => "zero-copy",
        // MSG_ZEROCOPY and SEND_ZC over loopback: the kernel copies, and says so.
        _ => "copying",
    }
}

/// The largest flow each (mode, role) must show: (source, destination, via).
fn expected_flow(mode: &str, role: &str) -> (&'static str, &'static str, &'static str) {
    match (mode, role) {
        ("mmsg" | "msg-zerocopy-udp", "receiver") => ("udp", "process", "user space"),
        ("mmsg" | "msg-zerocopy-udp", _) => ("process", "udp", "user space"),
        (_, "receiver") => ("tcp", "process", "user space"),
        ("read-write" | "readv-writev", _) => ("file", "tcp", "user space"),
        ("sendfile", _) => ("file", "tcp", "sendfile"),
        ("splice", _) => ("file", "tcp", "splice"),
        ("copy-file-range", _) => ("file", "file", "copy_file_range"),
        ("positional", _) => ("file", "file", "user space"),
        ("pipe-zero-copy", _) => ("process", "char", "splice+tee+vmsplice"),
        ("send-recv" | "msg-zerocopy", _) => ("process", "tcp", "user space"),
        ("errors", _) => ("pipe", "pipe", "user space"),
        ("uring-read-write", _) => ("file", "file", "user space"),
        ("uring-direct-read", _) => ("file", "process", "direct I/O"),
        ("uring-send-recv", _) => ("process", "tcp", "user space"),
        ("uring-splice", _) => ("file", "tcp", "io_uring SPLICE"),
        ("uring-send-zc", _) => ("process", "tcp", "io_uring SEND_ZC"),
        ("uring-sqpoll", _) => ("file", "process", "user space"),
        other => panic!("no expected flow for {other:?}"),
    }
}

/// The ground truth's entry for the workload's child of this role.
fn truth_of<'a>(truth: &'a Value, role: &str) -> &'a Value {
    truth["processes"]
        .as_array()
        .expect("processes")
        .iter()
        .find(|p| p["role"] == role)
        .unwrap_or_else(|| panic!("a {role}"))
}

/// The report's entry for the workload's sender.
fn sender<'a>(truth: &Value, report: &'a Value) -> &'a Value {
    sender_or(truth, report, "sender")
}

/// The report's entry for the workload's child of this role.
fn sender_or<'a>(truth: &Value, report: &'a Value, role: &str) -> &'a Value {
    process(report, truth_of(truth, role)["pid"].as_u64().expect("pid"))
}

fn run_mode(mode: &str, extra: &[&str]) -> (Value, Value) {
    run_mode_with(&[], mode, extra)
}

fn run_mode_with(options: &[&str], mode: &str, extra: &[&str]) -> (Value, Value) {
    let dir = scratch(mode);
    let truth_path = dir.join("truth.json");
    let truth_arg = truth_path.to_str().expect("utf-8 temp path");
    let dir_arg = dir.join("files");
    let mut command = vec![
        workload(),
        mode,
        "--out",
        truth_arg,
        "--dir",
        dir_arg.to_str().expect("utf-8"),
    ];
    command.extend_from_slice(extra);
    let (status, report) = trace_run_with(&dir, options, &command);
    assert_eq!(
        status, 0,
        "run must exit with the workload's status (0):\n{report:#}"
    );
    let truth: Value =
        serde_json::from_str(&std::fs::read_to_string(&truth_path).expect("ground truth written"))
            .expect("ground truth is JSON");
    let _ = std::fs::remove_dir_all(&dir);
    (truth, report)
}

/// Every measured child: same syscalls, same calls, bytes, errors and `MSG_ZEROCOPY` bytes;
/// the right verdict.
fn assert_matches(truth: &Value, report: &Value) {
    let children = truth["processes"].as_array().expect("processes");
    assert!(
        !children.is_empty(),
        "the workload measured nothing: {truth:#}"
    );
    for child in children {
        let pid = child["pid"].as_u64().expect("pid");
        let (mode, role) = (
            child["mode"].as_str().unwrap(),
            child["role"].as_str().unwrap(),
        );
        let seen = process(report, pid);
        let want = child["syscalls"].as_object().expect("syscalls");
        let got = seen["syscalls"].as_object().expect("syscalls");
        let names = |m: &serde_json::Map<String, Value>| m.keys().cloned().collect::<Vec<_>>();
        assert_eq!(
            names(got),
            names(want),
            "{mode}/{role} (pid {pid}): syscalls differ"
        );
        for (name, w) in want {
            for field in ["calls", "bytes", "errors", "msg_zerocopy_bytes"] {
                assert_eq!(
                    got[name][field], w[field],
                    "{mode}/{role} (pid {pid}) {name}.{field}"
                );
            }
        }
        // io_uring: every operation's completions, bytes and errors.
        let none = serde_json::Map::new();
        let want_ops = child["io_uring"].as_object().unwrap_or(&none);
        let got_ops = seen["io_uring"].as_object().unwrap_or(&none);
        assert_eq!(
            names(got_ops),
            names(want_ops),
            "{mode}/{role} (pid {pid}): io_uring operations differ"
        );
        for (name, w) in want_ops {
            assert_eq!(
                (
                    &got_ops[name]["ops"],
                    &got_ops[name]["bytes"],
                    &got_ops[name]["errors"]
                ),
                (&w["calls"], &w["bytes"], &w["errors"]),
                "{mode}/{role} (pid {pid}) io_uring {name}"
            );
        }
        // Zero-copy sends, and what the notices the sender read said of them.
        assert_eq!(
            seen["msg_zerocopy"].is_null(),
            child["msg_zerocopy"].is_null(),
            "{mode}/{role} (pid {pid}) msg_zerocopy: {}",
            seen["msg_zerocopy"]
        );
        if let Some(w) = child["msg_zerocopy"].as_object() {
            for field in ["sends", "bytes", "completions", "kernel_copied"] {
                assert_eq!(
                    seen["msg_zerocopy"][field], w[field],
                    "{mode}/{role} (pid {pid}) msg_zerocopy.{field}"
                );
            }
        }
        // Transitions: 2 per syscall (io_uring_enter included), none per io_uring operation.
        let syscalls: u64 = want.values().map(|w| w["calls"].as_u64().unwrap()).sum();
        assert_eq!(
            seen["transitions"].as_u64(),
            Some(2 * syscalls),
            "{mode}/{role} (pid {pid}) transitions"
        );
        assert_eq!(
            seen["verdict"],
            expected_verdict(mode, role),
            "{mode}/{role} (pid {pid}): {seen:#}"
        );
        let top = &seen["flows"][0];
        let (source, destination, via) = expected_flow(mode, role);
        assert_eq!(
            (
                top["source"].as_str(),
                top["destination"].as_str(),
                top["via"].as_str()
            ),
            (Some(source), Some(destination), Some(via)),
            "{mode}/{role} (pid {pid}) flows: {}",
            seen["flows"]
        );
        // Every fd these children use is resolvable: nothing may land in `unknown`.
        for (name, sc) in got.iter().chain(got_ops) {
            for end in ["source", "destination"] {
                assert!(
                    sc["fd_kinds"][end].get("unknown").is_none(),
                    "{mode}/{role} {name}: {sc}"
                );
            }
        }
        assert_eq!(
            seen["exited"], true,
            "{mode}/{role}: its final counts came from the exit record"
        );
    }
}

#[test]
fn every_mode_counts_exactly() {
    if !privileged() {
        return;
    }
    let (truth, report) = run_mode("all", &["--bytes", "1048576", "--chunk", "65536"]);
    assert_matches(&truth, &report);
    assert_nothing_dropped(&report);
    // Every one of the 22 syscalls was exercised and seen.
    let mut seen: Vec<&str> = truth["processes"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| {
            p["syscalls"]
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
        })
        .collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 22, "modes cover {seen:?}");
}

/// Every hook counts the same calls and bytes: the classic per-syscall tracepoints (enter and
/// exit programs) and the raw exit hook as well as the default typed (btf) one.
#[test]
fn the_tracepoint_hook_counts_exactly_too() {
    if !privileged() {
        return;
    }
    let (truth, report) = run_mode_with(&["--hook", "tracepoints"], "all", &["--bytes", "1048576"]);
    assert_matches(&truth, &report);
    assert_nothing_dropped(&report);
}

#[test]
fn the_raw_hook_counts_exactly_too() {
    if !privileged() {
        return;
    }
    let (truth, report) = run_mode_with(&["--hook", "raw"], "all", &["--bytes", "1048576"]);
    assert_matches(&truth, &report);
    assert_nothing_dropped(&report);
}

#[test]
fn sendfile_is_zero_copy_with_exact_figures() {
    if !privileged() {
        return;
    }
    // 4 MiB in 64 KiB chunks: 64 sendfile calls, 128 transitions, 0 CPU copies.
    let (truth, report) = run_mode("sendfile", &["--bytes", "4194304", "--chunk", "65536"]);
    assert_matches(&truth, &report);
    let seen = sender(&truth, &report);
    assert_eq!(seen["syscalls"]["sendfile64"]["bytes"], 4194304);
    assert_eq!(seen["zero_copy_bytes"], 4194304);
    assert_eq!(seen["copied_bytes"], 0);
    assert_eq!(
        seen["transitions"],
        2 * seen["syscalls"]["sendfile64"]["calls"].as_u64().unwrap()
    );
    assert_eq!(seen["zero_copy_ratio"], 1.0);
    assert_eq!(
        seen["syscalls"]["sendfile64"]["fd_kinds"]["source"]["file"],
        4194304
    );
    assert_eq!(
        seen["syscalls"]["sendfile64"]["fd_kinds"]["destination"]["tcp"],
        4194304
    );
    assert!(seen["finding"]
        .as_str()
        .unwrap()
        .ends_with("moved file->tcp by sendfile: zero copy achieved"));
}

#[test]
fn read_write_relay_copies_every_byte_twice() {
    if !privileged() {
        return;
    }
    let (truth, report) = run_mode("read-write", &["--bytes", "2097152", "--chunk", "65536"]);
    assert_matches(&truth, &report);
    let seen = sender(&truth, &report);
    // In from the file, out to the socket: 2 MiB copied each way through user memory.
    assert_eq!(seen["copied_bytes"], 2 * 2097152);
    assert_eq!(seen["zero_copy_bytes"], 0);
    assert_eq!(seen["zero_copy_ratio"], 0.0);
    assert_eq!(seen["flows"][0]["relay"], true);
    assert_eq!(seen["flows"][0]["bytes"], 2097152);
    let finding = seen["finding"].as_str().unwrap();
    assert!(
        finding.contains("2.0 MiB file->tcp through user space: 4.0 MiB of CPU copies")
            && finding.contains("sendfile() would copy none of it"),
        "{finding}"
    );
}

/// MSG_ZEROCOPY over loopback: the kernel copies every send and says so on the error queue.
/// What the tracer counts as copied is what the sender itself read there.
fn assert_kernel_copied(mode: &str, bytes: u64) {
    let (truth, report) = run_mode(mode, &["--bytes", &bytes.to_string()]);
    assert_matches(&truth, &report);
    let seen = sender(&truth, &report);
    let own = truth_of(&truth, "sender");
    let sends = own["msg_zerocopy"]["sends"].as_u64().unwrap();
    // The workload recorded which of its sends carried MSG_ZEROCOPY: every byte of them.
    assert_eq!(
        own["syscalls"]["sendto"]["msg_zerocopy_bytes"], bytes,
        "{own}"
    );
    assert!(sends > 0, "{own}");
    assert_eq!(seen["msg_zerocopy"]["kernel_copied"], sends, "{seen:#}");
    assert_eq!(own["msg_zerocopy"]["kernel_copied"], sends, "{own}");
    assert_eq!(seen["msg_zerocopy"]["unconfirmed"], 0);
    assert_eq!(seen["syscalls"]["sendto"]["msg_zerocopy_bytes"], bytes);
    assert_eq!(
        (
            seen["copied_bytes"].as_u64(),
            seen["zero_copy_bytes"].as_u64()
        ),
        (Some(bytes), Some(0))
    );
    assert_eq!(seen["verdict"], "copying");
    let finding = seen["finding"].as_str().unwrap();
    assert!(
        finding.ends_with(&format!(
            "MSG_ZEROCOPY requested, but the kernel copied {sends} of {sends} sends: loopback, veth and NICs without scatter-gather fall back to copying"
        )),
        "{finding}"
    );
}

#[test]
fn msg_zerocopy_over_tcp_is_judged_by_the_kernel_s_notices() {
    if !privileged() {
        return;
    }
    // 16 sends of 64 KiB.
    assert_kernel_copied("msg-zerocopy", 1048576);
}

#[test]
fn msg_zerocopy_over_udp_is_judged_by_the_kernel_s_notices() {
    if !privileged() {
        return;
    }
    // 128 datagrams of 8 KiB.
    assert_kernel_copied("msg-zerocopy-udp", 1048576);
}

/// Each io_uring mode with every hook: operations, bytes, verdict, flows and transitions
/// exactly as the workload recorded them.
#[test]
fn io_uring_modes_count_exactly_with_every_hook() {
    if !privileged() {
        return;
    }
    for hook in ["btf", "raw", "tracepoints"] {
        for mode in [
            "uring-read-write",
            "uring-direct-read",
            "uring-send-recv",
            "uring-splice",
            "uring-send-zc",
            "uring-sqpoll",
        ] {
            let (truth, report) = run_mode_with(&["--hook", hook], mode, &["--bytes", "2097152"]);
            assert_matches(&truth, &report);
            assert_nothing_dropped(&report);
            assert_eq!(
                report["maps"]["io_uring"], 0,
                "{mode}: requests left in flight"
            );
        }
    }
}

#[test]
fn io_uring_figures() {
    if !privileged() {
        return;
    }
    // 2 MiB in 64 KiB chunks: 32 operations each way.
    let (truth, report) = run_mode("uring-read-write", &["--bytes", "2097152"]);
    let seen = sender_or(&truth, &report, "copier");
    assert_eq!(seen["io_uring"]["READ"]["ops"], 32);
    assert_eq!(seen["io_uring"]["WRITE"]["bytes"], 2097152);
    assert_eq!(seen["syscalls"]["io_uring_enter"]["calls"], 64);
    assert_eq!(seen["copied_bytes"], 2 * 2097152);
    assert_eq!(seen["transitions"], 128);
    assert!(seen["finding"]
        .as_str()
        .unwrap()
        .contains("copy_file_range() would copy none of it"));

    // O_DIRECT: DMA into user memory, zero copy, its own method.
    let (truth, report) = run_mode("uring-direct-read", &["--bytes", "2097152"]);
    let seen = sender_or(&truth, &report, "reader");
    assert_eq!(seen["io_uring"]["READ"]["direct_bytes"], 2097152);
    assert_eq!(
        (
            seen["zero_copy_bytes"].as_u64(),
            seen["copied_bytes"].as_u64()
        ),
        (Some(2097152), Some(0))
    );
    assert!(seen["finding"]
        .as_str()
        .unwrap()
        .ends_with("moved file->process by direct I/O: zero copy achieved"));

    // SEND_ZC with usage reports: every notification says the kernel copied.
    let (truth, report) = run_mode("uring-send-zc", &["--bytes", "2097152"]);
    let seen = sender(&truth, &report);
    assert_eq!(seen["msg_zerocopy"]["sends"], 32);
    assert_eq!(seen["msg_zerocopy"]["kernel_copied"], 32);
    assert_eq!(seen["verdict"], "copying");
    assert!(seen["finding"]
        .as_str()
        .unwrap()
        .contains("SEND_ZC requested, but the kernel copied 32 of 32 sends"));

    // SQPOLL: the kernel thread submits; the reader itself enters the kernel at most to wake it.
    let (truth, report) = run_mode("uring-sqpoll", &["--bytes", "2097152"]);
    let seen = sender_or(&truth, &report, "reader");
    assert_eq!(seen["io_uring"]["READ"]["ops"], 32);
    assert!(seen["transitions"].as_u64().unwrap() <= 4, "{seen:#}");
}

#[test]
fn repeated_rounds_add_up() {
    if !privileged() {
        return;
    }
    let (truth, report) = run_mode("splice", &["--bytes", "262144", "--repeat", "5"]);
    assert_matches(&truth, &report);
    assert_nothing_dropped(&report);
}

/// On this project's machines the kernel takes tp_btf programs: the default hook must really
/// be the typed one, not a silent fallback to raw.
#[test]
fn the_default_hook_is_the_typed_one() {
    if !privileged() {
        return;
    }
    let out = std::process::Command::new(common::AGENT)
        .args(["run", "--", "true"])
        .env("RUST_LOG", "info")
        .output()
        .expect("starting zerocopy-trace");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // Before 6.2 the kernel has no bpf_rdonly_cast: the typed hook falls back to raw, saying
    // so in one line.
    if common::kernel_btf_names("bpf_rdonly_cast") {
        assert!(
            stderr.contains("attached 22 syscalls (btf hook;"),
            "{stderr}"
        );
    } else {
        assert!(
            stderr.contains("attached 22 syscalls (raw hook;"),
            "{stderr}"
        );
        assert!(stderr.contains("using --hook raw"), "{stderr}");
    }
    // Every warning is one line, whatever the kernel refused.
    for line in stderr.lines() {
        assert!(line.len() < 400, "a long line: {line}");
    }
}
