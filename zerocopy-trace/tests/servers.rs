//! Real servers nobody here wrote, attached to while they run: nginx serving a file with
//! `sendfile on;` (zero copy), `sendfile off;` (a user-space relay) and `directio` (O_DIRECT
//! reads written out by the CPU: one copy a byte), haproxy relaying nginx by splice (each
//! byte delivered once, though it went into a pipe and out), and socat relaying
//! tcp -> tcp through user space. The programs are installed by `cargo xtask test`.

mod common;

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

use common::{
    free_port, privileged, process, scratch, spawn_agent, spawn_agent_watched,
    spawn_agent_with_env, stop_agent, write_file,
};

const FILE_SIZE: u64 = 64 << 20;
const REQUESTS: u64 = 2;

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on port {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

struct Nginx {
    master: Child,
    port: u16,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGQUIT: graceful stop of master and workers.
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.master.id() as i32, libc::SIGQUIT) };
        let _ = self.master.wait();
    }
}

/// nginx serving `dir/www` with these `http` directives (`sendfile on;`, ...).
fn start_nginx(dir: &Path, directives: &str) -> Nginx {
    let www = dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    write_file(&www.join("big.bin"), FILE_SIZE);
    let port = free_port();
    let conf = format!(
        "daemon off;\nworker_processes 1;\npid {dir}/nginx.pid;\nerror_log {dir}/error.log;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n  access_log off;\n  {directives}\n  \
         client_body_temp_path {dir}/body;\n  proxy_temp_path {dir}/proxy;\n  \
         fastcgi_temp_path {dir}/fastcgi;\n  uwsgi_temp_path {dir}/uwsgi;\n  scgi_temp_path {dir}/scgi;\n  \
         server {{ listen 127.0.0.1:{port}; root {www}; }}\n}}\n",
        dir = dir.display(),
        www = www.display(),
    );
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let master = Command::new("/usr/sbin/nginx")
        .arg("-c")
        .arg(&conf_path)
        .arg("-p")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting nginx (cargo xtask test installs it)");
    wait_for_port(port);
    Nginx { master, port }
}

fn fetch(port: u16) {
    for _ in 0..REQUESTS {
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{size_download}"])
            .arg(format!("http://127.0.0.1:{port}/big.bin"))
            .output()
            .expect("running curl");
        assert_eq!(String::from_utf8_lossy(&out.stdout), FILE_SIZE.to_string());
    }
}

/// The nginx process that served the file: the one that moved the most bytes.
fn worker(report: &Value) -> &Value {
    report["processes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["comm"] == "nginx")
        .max_by_key(|p| {
            p["copied_bytes"].as_u64().unwrap() + p["zero_copy_bytes"].as_u64().unwrap()
        })
        .unwrap_or_else(|| panic!("no nginx process in {report:#}"))
}

/// Bytes written to tcp sockets by every syscall of a process.
fn bytes_to_tcp(process: &Value) -> u64 {
    process["syscalls"]
        .as_object()
        .unwrap()
        .values()
        .map(|s| s["fd_kinds"]["destination"]["tcp"].as_u64().unwrap_or(0))
        .sum()
}

#[test]
fn nginx_with_sendfile_achieves_zero_copy() {
    if !privileged() {
        return;
    }
    let dir = scratch("nginx-sendfile-on");
    let nginx = start_nginx(&dir, "sendfile on;");
    // Attached by name to the running server: master and worker. Alive at the end, so its
    // counts come from the live map, read in batches.
    let (agent, _) = spawn_agent(&["report", "--json", "--comm", "nginx"]);
    fetch(nginx.port);
    let report = stop_agent(agent);
    let w = worker(&report);
    assert_eq!(w["verdict"], "zero-copy", "{w:#}");
    assert_eq!(
        w["syscalls"]["sendfile64"]["bytes"],
        REQUESTS * FILE_SIZE,
        "{w:#}"
    );
    assert_eq!(
        w["syscalls"]["sendfile64"]["fd_kinds"]["source"]["file"],
        REQUESTS * FILE_SIZE
    );
    let top = &w["flows"][0];
    assert_eq!(
        (
            top["source"].as_str(),
            top["destination"].as_str(),
            top["via"].as_str()
        ),
        (Some("file"), Some("tcp"), Some("sendfile")),
        "{w:#}"
    );
    // Body by sendfile, plus the response headers (well under 1 KiB each) by write/writev.
    let to_tcp = bytes_to_tcp(w);
    assert!(
        (REQUESTS * FILE_SIZE..REQUESTS * (FILE_SIZE + 1024)).contains(&to_tcp),
        "{to_tcp}"
    );
    let finding = w["finding"].as_str().unwrap();
    assert!(
        finding.contains("moved file->tcp by sendfile: zero copy achieved"),
        "{finding}"
    );
    drop(nginx);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn nginx_without_sendfile_is_a_user_space_relay() {
    if !privileged() {
        return;
    }
    let dir = scratch("nginx-sendfile-off");
    let nginx = start_nginx(&dir, "sendfile off;");
    // Attached by pid: the master and its worker, both already running.
    let master = nginx.master.id().to_string();
    let workers: Vec<String> = children_of(nginx.master.id())
        .iter()
        .map(u32::to_string)
        .collect();
    let mut args = vec!["report", "--json", "--pid", &master];
    for w in &workers {
        args.extend(["--pid", w.as_str()]);
    }
    // The server is alive at the end, so its counts come from the live map: read here entry
    // by entry, as on kernels without batch lookups (the sendfile test reads it in batches).
    let (agent, _) = spawn_agent_with_env(&args, &[("ZEROCOPY_TRACE_TEST_ENTRY_BY_ENTRY", "1")]);
    fetch(nginx.port);
    let report = stop_agent(agent);
    let w = worker(&report);
    assert_eq!(w["verdict"], "copying", "{w:#}");
    assert!(w["syscalls"].get("sendfile64").is_none(), "{w:#}");
    // Every byte of the file read into user memory, and written out to the socket.
    let from_file: u64 = w["syscalls"]
        .as_object()
        .unwrap()
        .values()
        .map(|s| s["fd_kinds"]["source"]["file"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(from_file, REQUESTS * FILE_SIZE, "{w:#}");
    let to_tcp = bytes_to_tcp(w);
    assert!(
        (REQUESTS * FILE_SIZE..REQUESTS * (FILE_SIZE + 1024)).contains(&to_tcp),
        "{to_tcp}"
    );
    let top = &w["flows"][0];
    assert_eq!(
        (
            top["source"].as_str(),
            top["destination"].as_str(),
            top["via"].as_str()
        ),
        (Some("file"), Some("tcp"), Some("user space")),
        "{w:#}"
    );
    assert_eq!(top["relay"], true);
    assert_eq!(top["bytes"], REQUESTS * FILE_SIZE);
    let finding = w["finding"].as_str().unwrap();
    assert!(
        finding.contains("128.0 MiB file->tcp through user space: 256.0 MiB of CPU copies")
            && finding.contains("sendfile() would copy none of it"),
        "{finding}"
    );
    drop(nginx);
    let _ = std::fs::remove_dir_all(&dir);
}

/// nginx's `directio`: files from its size up are read with `O_DIRECT` (DMA into nginx's
/// buffers, no page cache, and no sendfile for them), then written to the socket by the CPU.
/// Every byte served went through user memory once: 1 CPU copy a byte, copying, not the half
/// zero copy its two legs would suggest.
#[test]
fn nginx_with_directio_copies_each_byte_once() {
    if !privileged() {
        return;
    }
    let dir = scratch("nginx-directio");
    let nginx = start_nginx(&dir, "sendfile on;\n  directio 4m;");
    let (agent, _) = spawn_agent(&["report", "--json", "--comm", "nginx"]);
    fetch(nginx.port);
    let report = stop_agent(agent);
    let w = worker(&report);
    // The kernel saw the O_DIRECT reads: every byte of the file.
    let direct: u64 = w["syscalls"]
        .as_object()
        .unwrap()
        .values()
        .map(|s| s["direct_bytes"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(direct, REQUESTS * FILE_SIZE, "{w:#}");
    assert!(w["syscalls"].get("sendfile64").is_none(), "{w:#}");
    let to_tcp = bytes_to_tcp(w);
    assert!(
        (REQUESTS * FILE_SIZE..REQUESTS * (FILE_SIZE + 1024)).contains(&to_tcp),
        "{to_tcp}"
    );
    let top = &w["flows"][0];
    assert_eq!(
        (
            top["source"].as_str(),
            top["destination"].as_str(),
            top["via"].as_str(),
            top["cpu_copies"].as_u64(),
            top["bytes"].as_u64(),
        ),
        (
            Some("file"),
            Some("tcp"),
            Some("direct I/O + user space"),
            Some(1),
            Some(REQUESTS * FILE_SIZE)
        ),
        "{w:#}"
    );
    assert_eq!(top["relay"], true);
    // The CPU copied the body once (and the requests and headers: under 1 KiB each).
    let copied = w["copied_bytes"].as_u64().unwrap();
    assert!(
        (REQUESTS * FILE_SIZE..REQUESTS * (FILE_SIZE + 2048)).contains(&copied),
        "{w:#}"
    );
    assert_eq!(w["verdict"], "copying", "{w:#}");
    let finding = w["finding"].as_str().unwrap();
    assert!(
        finding.contains(
            "128.0 MiB file->tcp through direct I/O + user space: 128.0 MiB of CPU copies"
        ) && finding.contains("sendfile() would copy none of it"),
        "{finding}"
    );
    drop(nginx);
    let _ = std::fs::remove_dir_all(&dir);
}

struct Haproxy {
    process: Child,
    port: u16,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// haproxy in front of `backend` in TCP mode, relaying the responses by `splice()` through
/// its pipes (`option splice-response`) where it can.
fn start_haproxy(dir: &Path, backend: u16) -> Haproxy {
    let port = free_port();
    let conf = format!(
        "global\n  maxconn 64\n  nbthread 1\n\
         defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n  \
         timeout server 60s\n  option splice-response\n\
         frontend relay\n  bind 127.0.0.1:{port}\n  default_backend web\n\
         backend web\n  server nginx 127.0.0.1:{backend}\n"
    );
    let conf_path = dir.join("haproxy.cfg");
    std::fs::write(&conf_path, conf).unwrap();
    let process = Command::new("haproxy")
        .arg("-db")
        .arg("-f")
        .arg(&conf_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting haproxy (cargo xtask test installs it)");
    wait_for_port(port);
    Haproxy { process, port }
}

/// haproxy relaying nginx's responses by splice: each byte goes into a pipe and out of it
/// (two splice calls, the syscalls' bytes twice the body), but is delivered once, tcp -> tcp
/// in the kernel.
#[test]
fn haproxy_splice_relay_is_delivered_once() {
    if !privileged() {
        return;
    }
    let dir = scratch("haproxy-splice");
    let nginx = start_nginx(&dir, "sendfile on;");
    let haproxy = start_haproxy(&dir, nginx.port);
    let pid = haproxy.process.id().to_string();
    let (agent, _) = spawn_agent(&["report", "--json", "--pid", &pid]);
    fetch(haproxy.port);
    let report = stop_agent(agent);
    let p = report["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pid"].as_u64() == Some(u64::from(haproxy.process.id())))
        .unwrap_or_else(|| panic!("no haproxy in {report:#}"));
    let spliced = p["syscalls"]["splice"]["bytes"].as_u64().unwrap_or(0);
    // Into the pipes from nginx's socket, out of them to curl's: most of the two bodies.
    let into_pipes = p["syscalls"]["splice"]["fd_kinds"]["destination"]["pipe"]
        .as_u64()
        .unwrap_or(0);
    assert_eq!(into_pipes * 2, spliced, "{p:#}");
    assert!(into_pipes >= REQUESTS * FILE_SIZE * 9 / 10, "{p:#}");
    // Counted once: the zero-copy bytes are what went through the pipes, not twice that.
    assert_eq!(p["zero_copy_bytes"].as_u64(), Some(into_pipes), "{p:#}");
    let top = &p["flows"][0];
    assert_eq!(
        (
            top["source"].as_str(),
            top["destination"].as_str(),
            top["via"].as_str(),
            top["bytes"].as_u64(),
            top["cpu_copies"].as_u64()
        ),
        (
            Some("tcp"),
            Some("tcp"),
            Some("splice"),
            Some(into_pipes),
            Some(0)
        ),
        "{p:#}"
    );
    // What did not go by splice went through user space: the headers, and any data that
    // arrived before a pipe was set up. Delivered: each byte once.
    let delivered = p["delivered_bytes"].as_u64().unwrap();
    assert!(
        (REQUESTS * FILE_SIZE..REQUESTS * (FILE_SIZE + 4096) + 4096).contains(&delivered),
        "{p:#}"
    );
    assert_eq!(p["verdict"], "zero-copy", "{p:#}");
    let finding = p["finding"].as_str().unwrap();
    assert!(
        finding.contains("moved tcp->tcp by splice: zero copy achieved"),
        "{finding}"
    );
    drop(haproxy);
    drop(nginx);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The children of `parent` (`pgrep -P`), once it has at least one.
fn children_of(parent: u32) -> Vec<u32> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = Command::new("pgrep")
            .args(["-P", &parent.to_string()])
            .output()
            .expect("running pgrep");
        let children: Vec<u32> = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(|pid| pid.parse().expect("a pid"))
            .collect();
        if !children.is_empty() {
            return children;
        }
        assert!(
            Instant::now() < deadline,
            "{parent} forked no child in 10 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `--pid $(cat nginx.pid)`, the first thing an operator types: the master's pid alone, its
/// worker started before the trace. The worker is traced as a descendant, the agent says so,
/// and its sendfile bytes are exact. With `--no-children` the master is traced alone.
#[test]
fn nginx_traced_by_its_masters_pid_includes_its_worker() {
    if !privileged() {
        return;
    }
    let dir = scratch("nginx-master-pid");
    let nginx = start_nginx(&dir, "sendfile on;");
    let master = nginx.master.id();
    let workers = children_of(master);
    assert_eq!(workers.len(), 1, "worker_processes 1: {workers:?}");
    let worker_pid = workers[0];
    let master_arg = master.to_string();
    let (agent, said, _) = spawn_agent_watched(&["report", "--json", "--pid", &master_arg], &[]);
    assert!(
        said.iter().any(|line| line.contains(&format!(
            "--pid: 1 running descendant(s) traced too: [{worker_pid}]"
        ))),
        "{said:#?}"
    );
    assert!(
        said.last().unwrap().contains(&format!(
            "scope: pid {master} + 1 descendant; new children followed"
        )),
        "{said:#?}"
    );
    fetch(nginx.port);
    let report = stop_agent(agent);
    let w = process(&report, u64::from(worker_pid));
    assert_eq!(w["comm"], "nginx", "{w:#}");
    assert_eq!(
        w["syscalls"]["sendfile64"]["bytes"],
        REQUESTS * FILE_SIZE,
        "{w:#}"
    );
    assert_eq!(
        w["syscalls"]["sendfile64"]["fd_kinds"]["destination"]["tcp"],
        REQUESTS * FILE_SIZE,
        "{w:#}"
    );
    assert_eq!(w["verdict"], "zero-copy", "{w:#}");

    // --no-children: the master alone, which serves nothing.
    let (agent, said, _) = spawn_agent_watched(
        &["report", "--json", "--pid", &master_arg, "--no-children"],
        &[],
    );
    assert!(
        said.last()
            .unwrap()
            .contains(&format!("scope: pid {master}; new children not followed")),
        "{said:#?}"
    );
    fetch(nginx.port);
    let report = stop_agent(agent);
    for p in report["processes"].as_array().unwrap() {
        assert_ne!(p["pid"], worker_pid, "{report:#}");
        assert!(p["syscalls"].get("sendfile64").is_none(), "{report:#}");
    }
    drop(nginx);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Whether something listens on 127.0.0.1:`port`, from /proc/net/tcp: connecting to check
/// would use up a one-connection server's only connection.
fn listening(port: u16) -> bool {
    let local = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    procfs::net::tcp()
        .unwrap_or_default()
        .iter()
        .any(|entry| entry.local_address == local && entry.state == procfs::net::TcpState::Listen)
}

fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !listening(port) {
        assert!(Instant::now() < deadline, "nothing listens on port {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn socat_proxy_is_a_tcp_relay() {
    if !privileged() {
        return;
    }
    let dir = scratch("socat");
    let data = dir.join("data");
    let size: u64 = 16 << 20;
    write_file(&data, size);
    let (front, back) = (free_port(), free_port());
    // client --file--> proxy (front) --tcp--> backend sink (back); each socat serves one
    // connection and exits when it ends.
    let socat = |args: &[String]| {
        Command::new("socat")
            .args(args)
            .stderr(Stdio::null())
            .spawn()
            .expect("starting socat")
    };
    let mut backend = socat(&[
        "-u".into(),
        format!("TCP-LISTEN:{back},bind=127.0.0.1,reuseaddr"),
        "OPEN:/dev/null".into(),
    ]);
    wait_listening(back);
    let mut proxy = socat(&[
        format!("TCP-LISTEN:{front},bind=127.0.0.1,reuseaddr"),
        format!("TCP:127.0.0.1:{back}"),
    ]);
    wait_listening(front);
    let (agent, _) = spawn_agent(&["report", "--json", "--comm", "socat"]);
    let client = Command::new("socat")
        .args([
            "-u".to_string(),
            format!("FILE:{}", data.display()),
            format!("TCP:127.0.0.1:{front}"),
        ])
        .status()
        .expect("running the socat client");
    assert!(client.success());
    assert!(proxy.wait().unwrap().success());
    assert!(backend.wait().unwrap().success());
    let report = stop_agent(agent);

    let proxy = common::process(&report, u64::from(proxy.id()));
    let top = &proxy["flows"][0];
    assert_eq!(
        (
            top["source"].as_str(),
            top["destination"].as_str(),
            top["via"].as_str()
        ),
        (Some("tcp"), Some("tcp"), Some("user space")),
        "{proxy:#}"
    );
    assert_eq!(top["relay"], true);
    assert_eq!(top["bytes"], size, "{proxy:#}");
    assert_eq!(proxy["verdict"], "copying");
    let finding = proxy["finding"].as_str().unwrap();
    assert!(
        finding.contains("16.0 MiB tcp->tcp through user space: 32.0 MiB of CPU copies")
            && finding.contains("splice()"),
        "{finding}"
    );
    let sink = common::process(&report, u64::from(backend.id()));
    assert_eq!(sink["flows"][0]["source"], "tcp");
    assert_eq!(sink["flows"][0]["destination"], "char");
    let _ = std::fs::remove_dir_all(&dir);
}
