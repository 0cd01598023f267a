//! The fixed workloads: what each runs, at which size, and how its result is read.
//!
//! Each is one command (dd, a short Python script given with `-c`, or wrk against the bench's
//! nginx) so that the bench times the whole tree from spawn to reaping, and `wait4` gives the
//! CPU of every process in it.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::nginx::{self, Nginx};
use crate::wrk;
use dev_support::cmd;

/// The workloads, in the order each block runs them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    /// 1-byte read + write loop: the worst case for a syscall tracer.
    Storm,
    /// A file sent to a loopback TCP socket by read + write.
    BulkCopy,
    /// The same by sendfile.
    BulkZeroCopy,
    /// Many short-lived processes, each doing a little I/O.
    Churn,
    /// Many live processes doing I/O at once, for a fixed time.
    Many,
    /// nginx (`sendfile on;`) serving a 4 KiB file to wrk: per-request costs dominate.
    #[serde(rename = "nginx-4k")]
    Nginx4k,
    /// The same with a 1 MiB file: bytes dominate.
    #[serde(rename = "nginx-1m")]
    Nginx1m,
}

/// Which number of a run the table compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// Elapsed time from spawn to reaping.
    Wall,
    /// CPU of the whole process tree: for a workload of fixed length, the time is not the cost.
    Cpu,
    /// Requests a second a server answered over a fixed time: higher is better.
    Rate,
}

impl Workload {
    pub const ALL: [Workload; 7] = [
        Workload::Storm,
        Workload::BulkCopy,
        Workload::BulkZeroCopy,
        Workload::Churn,
        Workload::Many,
        Workload::Nginx4k,
        Workload::Nginx1m,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Workload::Storm => "syscall storm",
            Workload::BulkCopy => "bulk copy",
            Workload::BulkZeroCopy => "bulk zero copy",
            Workload::Churn => "churn",
            Workload::Many => "many processes",
            Workload::Nginx4k => "nginx 4 KiB",
            Workload::Nginx1m => "nginx 1 MiB",
        }
    }

    pub fn metric(self) -> Metric {
        match self {
            Workload::Many => Metric::Cpu,
            Workload::Nginx4k | Workload::Nginx1m => Metric::Rate,
            _ => Metric::Wall,
        }
    }

    /// The file a server workload asks for.
    fn served_file(self) -> Option<&'static str> {
        let index = match self {
            Workload::Nginx4k => 0,
            Workload::Nginx1m => 1,
            _ => return None,
        };
        Some(nginx::FILES[index].0)
    }
}

/// How big each workload is.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Sizes {
    /// dd's `count` at `bs=1`: twice as many traced syscalls.
    pub storm_count: u64,
    pub bulk_bytes: u64,
    pub chunk: u64,
    pub churn_processes: u32,
    pub many_processes: u32,
    pub many_seconds: f64,
    /// Length of each wrk run against nginx.
    pub wrk_seconds: u64,
    /// Short-lived processes of the churn-memory session (issue 11).
    pub churn_exits: u64,
}

impl Sizes {
    /// The sizes the issue names.
    pub fn full() -> Self {
        Self {
            storm_count: 2_000_000,
            bulk_bytes: 1 << 30,
            chunk: 64 << 10,
            churn_processes: 2000,
            many_processes: 1000,
            many_seconds: 4.0,
            wrk_seconds: 5,
            churn_exits: 1_000_000,
        }
    }

    /// A smoke test: every path taken, in seconds.
    pub fn quick() -> Self {
        Self {
            storm_count: 100_000,
            bulk_bytes: 16 << 20,
            chunk: 64 << 10,
            churn_processes: 100,
            many_processes: 50,
            many_seconds: 1.0,
            wrk_seconds: 1,
            churn_exits: 10_000,
        }
    }
}

/// What the workloads need on disk and on PATH.
pub struct Env {
    python: PathBuf,
    bulk_file: PathBuf,
    server: Option<Server>,
    pub sizes: Sizes,
}

/// The server workloads' nginx, running, and the client that loads it.
struct Server {
    nginx: Nginx,
    wrk: PathBuf,
    /// wrk's output of the last run.
    out: PathBuf,
}

/// The programs the server workloads need (both installed, or neither row runs).
pub struct ServerTools {
    pub nginx: PathBuf,
    pub wrk: PathBuf,
}

/// Finds the real Python interpreter (not a pyenv shim, which would add a shell to every run),
/// writes the bulk workloads' file once, and starts nginx when `server` has the tools for it.
pub fn prepare(dir: &Path, sizes: Sizes, server: Option<ServerTools>) -> Result<Env> {
    let python =
        cmd::probe(Command::new("python3").args(["-c", "import sys; print(sys.executable)"]))
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .context("the bench's workloads need python3 on PATH")?;
    let bulk_file = dir.join("bulk.dat");
    let current = std::fs::metadata(&bulk_file).map(|m| m.len()).ok();
    if current != Some(sizes.bulk_bytes) {
        eprintln!(
            "bench: writing {} MiB to {}",
            sizes.bulk_bytes >> 20,
            bulk_file.display()
        );
        crate::data_file::write(&bulk_file, sizes.bulk_bytes)?;
    }
    let server = match server {
        Some(tools) => {
            let prefix = dir.join("nginx");
            std::fs::create_dir_all(&prefix)
                .with_context(|| format!("creating {}", prefix.display()))?;
            Some(Server {
                nginx: nginx::start(&tools.nginx, &prefix)?,
                wrk: tools.wrk,
                out: dir.join("wrk.out"),
            })
        }
        None => None,
    };
    Ok(Env {
        python,
        bulk_file,
        server,
        sizes,
    })
}

impl Env {
    /// Whether `workload` can run here (the server workloads need nginx and wrk).
    pub fn has(&self, workload: Workload) -> bool {
        workload.served_file().is_none() || self.server.is_some()
    }

    /// The command for `workload`; `shrink` divides the storm (for tracers too slow for its
    /// full size).
    pub fn command(&self, workload: Workload, shrink: u64) -> Result<Command> {
        let s = &self.sizes;
        if let Some(file) = workload.served_file() {
            let server = self.server()?;
            server.nginx.check_alive()?;
            let out = File::create(&server.out)
                .with_context(|| format!("creating {}", server.out.display()))?;
            let mut c = wrk::command(&server.wrk, &server.nginx.url(file), s.wrk_seconds);
            c.stdin(Stdio::null()).stdout(out).stderr(Stdio::inherit());
            return Ok(c);
        }
        let mut command = match workload {
            Workload::Storm => {
                let mut c = Command::new("dd");
                c.args([
                    "if=/dev/zero",
                    "of=/dev/null",
                    "bs=1",
                    &format!("count={}", storm_count(s, shrink)),
                    "status=none",
                ]);
                c
            }
            Workload::BulkCopy | Workload::BulkZeroCopy => {
                let mode = if workload == Workload::BulkCopy {
                    "rw"
                } else {
                    "sendfile"
                };
                let mut c = self.python(BULK_PY);
                c.arg(mode).arg(&self.bulk_file).arg(s.chunk.to_string());
                c
            }
            Workload::Churn => {
                let mut c = self.python(CHURN_PY);
                c.arg(s.churn_processes.to_string());
                c
            }
            Workload::Many => {
                let mut c = self.python(MANY_PY);
                c.arg(s.many_processes.to_string())
                    .arg(s.many_seconds.to_string());
                c
            }
            Workload::Nginx4k | Workload::Nginx1m => bail!("{} has no script", workload.label()),
        };
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        Ok(command)
    }

    fn server(&self) -> Result<&Server> {
        self.server
            .as_ref()
            .context("the server workloads need nginx and wrk")
    }

    /// What the client of a server workload saw in the run that just ended.
    pub fn served(&self, workload: Workload) -> Result<Option<wrk::Summary>> {
        if workload.served_file().is_none() {
            return Ok(None);
        }
        let summary = wrk::read(&self.server()?.out)
            .with_context(|| format!("the {} workload", workload.label()))?;
        Ok(Some(summary))
    }

    /// Traced syscalls a run makes, where that is known exactly enough to divide by.
    pub fn syscalls(&self, workload: Workload, shrink: u64) -> Option<u64> {
        (workload == Workload::Storm).then(|| 2 * storm_count(&self.sizes, shrink))
    }

    fn python(&self, script: &str) -> Command {
        let mut c = Command::new(&self.python);
        // -I -S: no user site, no site module; the scripts need only the standard library.
        c.args(["-I", "-S", "-c", script]);
        c
    }
}

fn storm_count(sizes: &Sizes, shrink: u64) -> u64 {
    (sizes.storm_count / shrink.max(1)).max(1)
}

/// Checks a finished workload: a failed one would time nothing.
pub fn check(workload: Workload, reaped: &super::process::Reaped) -> Result<()> {
    if !reaped.success() {
        bail!(
            "the {} workload failed: {}",
            workload.label(),
            reaped.describe()
        );
    }
    Ok(())
}

/// `MODE PATH CHUNK`: a child connects to the parent over loopback TCP and drains the socket;
/// the parent sends the file by read + send (`rw`) or by sendfile, CHUNK bytes a call.
const BULK_PY: &str = r#"
import os, socket, sys
mode, path, chunk = sys.argv[1], sys.argv[2], int(sys.argv[3])
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(1)
port = srv.getsockname()[1]
pid = os.fork()
if pid == 0:
    srv.close()
    c = socket.create_connection(("127.0.0.1", port))
    buf = bytearray(chunk)
    while c.recv_into(buf):
        pass
    os._exit(0)
conn, _ = srv.accept()
fd = os.open(path, os.O_RDONLY)
size = os.fstat(fd).st_size
if mode == "sendfile":
    off = 0
    while off < size:
        off += os.sendfile(conn.fileno(), fd, off, min(chunk, size - off))
else:
    while True:
        data = os.read(fd, chunk)
        if not data:
            break
        conn.sendall(data)
conn.close()
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"#;

/// `N`: N children, at most 8 alive at once, each writing and reading 8 x 4 KiB, then exiting.
const CHURN_PY: &str = r#"
import os, sys
n = int(sys.argv[1])
buf = b"x" * 4096
live = failed = 0
def reap():
    global live, failed
    _, status = os.wait()
    live -= 1
    failed += status != 0
for _ in range(n):
    if os.fork() == 0:
        out = os.open("/dev/null", os.O_WRONLY)
        src = os.open("/dev/zero", os.O_RDONLY)
        for _ in range(8):
            os.write(out, buf)
            os.read(src, 4096)
        os._exit(0)
    live += 1
    if live >= 8:
        reap()
while live:
    reap()
sys.exit(1 if failed else 0)
"#;

/// `N SECONDS`: N children start together (a pipe is their gate) and each copies 4 KiB from
/// /dev/zero to /dev/null ten times a second for SECONDS.
const MANY_PY: &str = r#"
import os, sys, time
n, secs = int(sys.argv[1]), float(sys.argv[2])
gate_r, gate_w = os.pipe()
pids = []
for _ in range(n):
    pid = os.fork()
    if pid == 0:
        os.close(gate_w)
        os.read(gate_r, 1)
        out = os.open("/dev/null", os.O_WRONLY)
        src = os.open("/dev/zero", os.O_RDONLY)
        end = time.monotonic() + secs
        while time.monotonic() < end:
            os.write(out, os.read(src, 4096))
            time.sleep(0.1)
        os._exit(0)
    pids.append(pid)
os.close(gate_r)
os.close(gate_w)
failed = 0
for pid in pids:
    _, status = os.waitpid(pid, 0)
    failed += status != 0
sys.exit(1 if failed else 0)
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Env {
        Env {
            python: PathBuf::from("/usr/bin/python3"),
            bulk_file: PathBuf::from("/tmp/bulk.dat"),
            server: None,
            sizes: Sizes::quick(),
        }
    }

    #[test]
    fn storm_shrinks_and_counts_two_syscalls_a_byte() {
        let env = env();
        let args = |shrink| -> Vec<String> {
            env.command(Workload::Storm, shrink)
                .unwrap()
                .get_args()
                .map(|a| a.to_string_lossy().into_owned())
                .collect()
        };
        assert!(args(1).contains(&"count=100000".to_owned()));
        assert!(args(40).contains(&"count=2500".to_owned()));
        assert_eq!(env.syscalls(Workload::Storm, 1), Some(200_000));
        assert_eq!(env.syscalls(Workload::Storm, 40), Some(5_000));
        assert_eq!(env.syscalls(Workload::Churn, 1), None);
    }

    #[test]
    fn shrinking_never_reaches_zero() {
        assert_eq!(storm_count(&Sizes::quick(), 0), 100_000);
        assert_eq!(storm_count(&Sizes::quick(), u64::MAX), 1);
    }

    #[test]
    fn only_the_fixed_length_workload_compares_cpu() {
        for w in Workload::ALL {
            assert_eq!(w.metric() == Metric::Cpu, w == Workload::Many, "{w:?}");
        }
    }

    #[test]
    fn server_workloads_rate_requests_and_need_the_server() {
        let env = env();
        for w in Workload::ALL {
            let served = matches!(w, Workload::Nginx4k | Workload::Nginx1m);
            assert_eq!(w.metric() == Metric::Rate, served, "{w:?}");
            assert_eq!(env.has(w), !served, "{w:?}");
            assert_eq!(env.command(w, 1).is_ok(), !served, "{w:?}");
        }
        assert_eq!(Workload::Nginx4k.served_file(), Some("4k.bin"));
        assert_eq!(Workload::Nginx1m.served_file(), Some("1m.bin"));
        assert!(env.served(Workload::Storm).unwrap().is_none());
        assert!(env.served(Workload::Nginx4k).is_err());
    }
}
