//! fio, a real storage benchmark nobody here wrote, through the data paths the syscall table
//! alone cannot judge: its io_uring engine (buffered read and write, and `--direct=1` read),
//! whose every operation and byte must be what fio itself reports having done, and its psync
//! engine with `--direct=1`, which reads by DMA and must be judged zero copy. fio is installed
//! by `cargo xtask test`.

mod common;

use std::path::Path;

use serde_json::Value;

use common::{assert_nothing_dropped, privileged, scratch, trace_run, write_file};

const SIZE: u64 = 32 << 20;
const BLOCK: u64 = 64 << 10;

/// A file of `SIZE` bytes fio can read without laying it out first.
fn data_file(dir: &Path) -> String {
    let path = dir.join("data");
    write_file(&path, SIZE);
    path.to_str().expect("utf-8 path").to_string()
}

/// Runs fio under `zerocopy-trace run`; returns fio's own JSON and the tracer's report.
fn fio(dir: &Path, args: &[&str]) -> (Value, Value) {
    let out = dir.join("fio.json");
    let out_arg = format!("--output={}", out.display());
    let mut command = vec!["fio", "--name=job", "--output-format=json", &out_arg];
    command.extend_from_slice(args);
    let (status, report) = trace_run(dir, &command);
    assert_eq!(status, 0, "fio failed under the tracer: {report:#}");
    let text = std::fs::read_to_string(&out).expect("fio wrote its JSON");
    // fio may print a notice before the document; the JSON starts at the first brace.
    let json = &text[text.find('{').expect("fio JSON")..];
    let fio: Value = serde_json::from_str(json).expect("fio's JSON parses");
    (fio, report)
}

/// (operations, bytes) fio says its job did in direction `dir` ("read" or "write").
fn fio_did(fio: &Value, dir: &str) -> (u64, u64) {
    let job = &fio["jobs"][0][dir];
    (
        job["total_ios"].as_u64().expect("total_ios"),
        job["io_bytes"].as_u64().expect("io_bytes"),
    )
}

/// The report's process that ran fio's job: the one that completed these operations.
fn job<'a>(report: &'a Value, ops: &[&str]) -> &'a Value {
    report["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| ops.iter().any(|op| p["io_uring"].get(*op).is_some()))
        .unwrap_or_else(|| panic!("no process completed {ops:?}: {report:#}"))
}

/// Sum of a field over the operations named (fio picks READ or READV by what the kernel has).
fn sum(process: &Value, ops: &[&str], field: &str) -> u64 {
    ops.iter()
        .map(|op| process["io_uring"][op][field].as_u64().unwrap_or(0))
        .sum()
}

fn io_uring(rw: &str, direct: bool) -> (Value, Value, Value) {
    let dir = scratch(&format!("fio-{rw}-{direct}"));
    let file = data_file(&dir);
    let filename = format!("--filename={file}");
    let size = format!("--size={SIZE}");
    let bs = format!("--bs={BLOCK}");
    let rw_arg = format!("--rw={rw}");
    let direct_arg = format!("--direct={}", direct as u8);
    let (fio, report) = fio(
        &dir,
        &[
            "--ioengine=io_uring",
            &rw_arg,
            &filename,
            &size,
            &bs,
            "--iodepth=8",
            &direct_arg,
        ],
    );
    let _ = std::fs::remove_dir_all(&dir);
    let ops: &[&str] = if rw == "read" {
        &["READ", "READV"]
    } else {
        &["WRITE", "WRITEV"]
    };
    let process = job(&report, ops).clone();
    (fio, report, process)
}

#[test]
fn fio_io_uring_buffered_read_counts_every_operation() {
    if !privileged() {
        return;
    }
    let (fio, report, job) = io_uring("read", false);
    let ops = ["READ", "READV"];
    let (ios, bytes) = fio_did(&fio, "read");
    assert_eq!((ios, bytes), (SIZE / BLOCK, SIZE), "fio's own account");
    assert_eq!(sum(&job, &ops, "ops"), ios, "{job:#}");
    assert_eq!(sum(&job, &ops, "bytes"), bytes, "{job:#}");
    assert_eq!(sum(&job, &ops, "errors"), 0);
    assert_eq!(sum(&job, &ops, "direct_bytes"), 0);
    // Through the page cache: copied into fio's buffers by the CPU.
    assert_eq!(job["verdict"], "copying", "{job:#}");
    assert!(job["copied_bytes"].as_u64().unwrap() >= SIZE);
    // The operations cost no transitions of their own: only fio's syscalls do, nearly all of
    // them io_uring_enter. fio enters to submit and to wait for completions, so a loaded
    // machine sees a few more enters than operations (515 for 512 once): bounded by two each.
    let enters = job["syscalls"]["io_uring_enter"]["calls"].as_u64().unwrap();
    assert!(enters > 0 && enters <= 2 * ios, "{job:#}");
    let calls: u64 = job["syscalls"]
        .as_object()
        .unwrap()
        .values()
        .map(|s| s["calls"].as_u64().unwrap())
        .sum();
    assert_eq!(job["transitions"].as_u64(), Some(2 * calls), "{job:#}");
    assert_nothing_dropped(&report);
    assert_eq!(report["maps"]["io_uring"], 0);
}

#[test]
fn fio_io_uring_write_counts_every_operation() {
    if !privileged() {
        return;
    }
    let (fio, report, job) = io_uring("write", false);
    let ops = ["WRITE", "WRITEV"];
    let (ios, bytes) = fio_did(&fio, "write");
    assert_eq!((ios, bytes), (SIZE / BLOCK, SIZE), "fio's own account");
    assert_eq!(sum(&job, &ops, "ops"), ios, "{job:#}");
    assert_eq!(sum(&job, &ops, "bytes"), bytes, "{job:#}");
    assert_eq!(job["verdict"], "copying", "{job:#}");
    assert_nothing_dropped(&report);
}

#[test]
fn fio_io_uring_direct_read_is_zero_copy() {
    if !privileged() {
        return;
    }
    let (fio, report, job) = io_uring("read", true);
    let ops = ["READ", "READV"];
    let (ios, bytes) = fio_did(&fio, "read");
    assert_eq!((ios, bytes), (SIZE / BLOCK, SIZE), "fio's own account");
    assert_eq!(sum(&job, &ops, "ops"), ios, "{job:#}");
    assert_eq!(sum(&job, &ops, "bytes"), bytes, "{job:#}");
    assert_eq!(sum(&job, &ops, "direct_bytes"), bytes, "{job:#}");
    assert_eq!(job["verdict"], "zero-copy", "{job:#}");
    assert_eq!(job["flows"][0]["via"], "direct I/O", "{job:#}");
    assert_eq!(job["flows"][0]["source"], "file");
    assert_nothing_dropped(&report);
}

#[test]
fn fio_psync_direct_read_is_zero_copy() {
    if !privileged() {
        return;
    }
    let dir = scratch("fio-psync-direct");
    let file = data_file(&dir);
    let filename = format!("--filename={file}");
    let size = format!("--size={SIZE}");
    let bs = format!("--bs={BLOCK}");
    let (fio, report) = fio(
        &dir,
        &[
            "--ioengine=psync",
            "--rw=read",
            "--direct=1",
            &filename,
            &size,
            &bs,
        ],
    );
    let _ = std::fs::remove_dir_all(&dir);
    let (ios, bytes) = fio_did(&fio, "read");
    assert_eq!((ios, bytes), (SIZE / BLOCK, SIZE), "fio's own account");
    let job = report["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["syscalls"]["pread64"]["bytes"].as_u64() >= Some(SIZE))
        .unwrap_or_else(|| panic!("no process read {SIZE} bytes with pread64: {report:#}"));
    let pread = &job["syscalls"]["pread64"];
    assert_eq!(pread["calls"], ios, "{job:#}");
    assert_eq!(pread["bytes"], bytes);
    assert_eq!(pread["direct_bytes"], bytes, "{job:#}");
    assert_eq!(job["verdict"], "zero-copy", "{job:#}");
    assert!(
        job["finding"]
            .as_str()
            .unwrap()
            .contains("moved file->process by direct I/O: zero copy achieved"),
        "{job:#}"
    );
    assert_nothing_dropped(&report);
}
