//! Real containers, traced by name: Podman (Debian's) running nginx with `sendfile on;` and
//! another with `sendfile off;` from a Debian root filesystem made with debootstrap (no
//! registry), and Docker's daemon doing the same. Each container's bytes must be exactly what
//! curl received from it (the file by sendfile, or read and written through user space), its
//! verdict the right one, its name the one its runtime gave it (asked over the runtime's API
//! socket), and nothing of the other container counted; then the same under the exporter, in a
//! real Prometheus, `sum by (container)`.

mod common;

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

use common::{
    containers::{self, download, podman_nginx, Download, Podman, PodmanService},
    free_port, free_ports, have, privileged,
    prometheus::Prometheus,
    scratch, signal_agent, spawn_agent, stop_agent,
    tmux::Tmux,
    write_file,
};

/// The served file: 10 MiB and 7 bytes, a multiple of no buffer size.
const BODY: u64 = (10 << 20) + 7;
/// Downloads from each server.
const DOWNLOADS: u64 = 2;

/// What a container's processes moved, from a JSON report: bytes from files, from tcp, to tcp,
/// copied and zero-copy, summed over its processes.
#[derive(Debug, Default, PartialEq, Eq)]
struct Moved {
    from_file: u64,
    from_tcp: u64,
    to_tcp: u64,
    copied: u64,
    zero_copy: u64,
}

fn moved_by(report: &Value, container: &str) -> Moved {
    let mut m = Moved::default();
    for p in report["processes"].as_array().expect("processes") {
        if p["container"]["name"] != container {
            continue;
        }
        for s in p["syscalls"].as_object().unwrap().values() {
            let kinds = &s["fd_kinds"];
            m.from_file += kinds["source"]["file"].as_u64().unwrap_or(0);
            m.from_tcp += kinds["source"]["tcp"].as_u64().unwrap_or(0);
            m.to_tcp += kinds["destination"]["tcp"].as_u64().unwrap_or(0);
        }
        m.copied += p["copied_bytes"].as_u64().unwrap();
        m.zero_copy += p["zero_copy_bytes"].as_u64().unwrap();
    }
    m
}

/// What a server moved for `got`: the request in, the headers and the body out, the body read
/// from the file; by sendfile (zero copy) or through user space (the body copied twice).
fn expected(got: Download, sendfile: bool) -> Moved {
    let copied = got.request + got.header + if sendfile { 0 } else { 2 * got.body };
    Moved {
        from_file: got.body,
        from_tcp: got.request,
        to_tcp: got.header + got.body,
        copied,
        zero_copy: if sendfile { got.body } else { 0 },
    }
}

/// The servers' file under `dir/www`.
fn serve_file(dir: &Path) {
    let www = dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    write_file(&www.join("blob.bin"), BODY);
}

/// `DOWNLOADS` downloads from `port`, added up.
fn downloads(port: u16) -> Download {
    let mut total = Download::default();
    for _ in 0..DOWNLOADS {
        let got = download(port, "/blob.bin");
        assert_eq!(got.body, BODY, "the whole file");
        total.add(got);
    }
    total
}

fn ready(program: &str, package: &str) -> Option<PathBuf> {
    if !privileged() || !have(program, package) || !have("curl", "curl") {
        return None;
    }
    containers::rootfs()
}

/// The one process entry of container `name` that moved the most, for its verdict.
fn busiest<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["processes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["container"]["name"] == name)
        .max_by_key(|p| {
            p["copied_bytes"].as_u64().unwrap() + p["zero_copy_bytes"].as_u64().unwrap()
        })
        .unwrap_or_else(|| panic!("no process of container {name}:\n{report:#}"))
}

#[test]
fn podman_containers_traced_by_name_count_exactly() {
    let Some(rootfs) = ready("podman", "podman") else {
        return;
    };
    let dir = scratch("podman");
    serve_file(&dir);
    let podman = Podman::new(&dir);
    let [on_port, off_port] = free_ports();
    let on = podman_nginx(&podman, &dir, &rootfs, "zc-ct-on", true, on_port);
    let off = podman_nginx(&podman, &dir, &rootfs, "zc-ct-off", false, off_port);
    let service = PodmanService::start(&podman, &dir);
    let names = service.names_from();

    // One agent by name, one by a prefix of the id, one for both (the table): at once.
    let (by_name, _) = spawn_agent(&[
        "report",
        "--json",
        "--container",
        "zc-ct-off",
        "--names-from",
        &names,
    ]);
    let (by_id, _) = spawn_agent(&[
        "report",
        "--json",
        "--container",
        &on.id[..12],
        "--names-from",
        &names,
    ]);
    let (mut table, _) = spawn_agent(&["report", "--comm", "nginx", "--names-from", &names]);
    let got_on = downloads(on_port);
    let got_off = downloads(off_port);
    let off_report = stop_agent(by_name);
    let on_report = stop_agent(by_id);
    let (status, table) = signal_agent(&mut table, libc::SIGINT);
    assert!(status.success(), "{table}");
    eprintln!("zerocopy-trace report --comm nginx, both containers:\n{table}");

    // Exactly what each server moved for curl, and nothing of the other container.
    assert_eq!(
        moved_by(&off_report, "zc-ct-off"),
        expected(got_off, false),
        "{off_report:#}"
    );
    assert_eq!(
        moved_by(&on_report, "zc-ct-on"),
        expected(got_on, true),
        "{on_report:#}"
    );
    for (report, name) in [(&off_report, "zc-ct-off"), (&on_report, "zc-ct-on")] {
        for p in report["processes"].as_array().unwrap() {
            assert_eq!(p["container"]["name"], name, "only its container: {p:#}");
            assert_eq!(p["container"]["runtime"], "podman");
        }
    }
    assert_eq!(
        off_report["processes"][0]["container"]["id"],
        off.id.as_str()
    );
    assert_eq!(on_report["processes"][0]["container"]["id"], on.id.as_str());
    assert_eq!(busiest(&off_report, "zc-ct-off")["verdict"], "copying");
    assert_eq!(busiest(&on_report, "zc-ct-on")["verdict"], "zero-copy");
    // The container's totals, and its finding named after it.
    let totals = &off_report["containers"][0];
    assert_eq!(totals["container"]["name"], "zc-ct-off");
    assert_eq!(totals["verdict"], "copying");
    assert_eq!(totals["copied_bytes"], expected(got_off, false).copied);
    let finding = busiest(&off_report, "zc-ct-off")["finding"]
        .as_str()
        .unwrap();
    assert!(
        finding.contains("(container zc-ct-off): ")
            && finding.contains("file->tcp through user space"),
        "{finding}"
    );
    // The table names both, under CONTAINER and in the containers' totals.
    for want in [
        "CONTAINER",
        "zc-ct-on",
        "zc-ct-off",
        "containers:",
        "(container zc-ct-on): 100.0% of 20.0 MiB delivered with no CPU copy, 20.0 MiB of it moved file->tcp by sendfile: zero copy achieved",
    ] {
        assert!(table.contains(want), "{want:?} missing:\n{table}");
    }
    // The busiest process is the container's nginx worker: its parent is the container's
    // first process.
    let master: u64 = podman
        .inspect("zc-ct-on", "{{.State.Pid}}")
        .parse()
        .unwrap();
    assert_eq!(busiest(&on_report, "zc-ct-on")["ppid"], master);

    drop(service);
    drop((on, off));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_unknown_container_is_one_clear_line() {
    if !privileged() {
        return;
    }
    let out = Command::new(common::AGENT)
        .args([
            "report",
            "--container",
            "zc-no-such-container",
            "--names-from",
            "none",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "no running container with the id zc-no-such-container, and no runtime answered"
        ),
        "{stderr}"
    );
}

#[test]
fn podman_containers_in_prometheus_sum_by_container() {
    let Some(rootfs) = ready("podman", "podman") else {
        return;
    };
    if !have("prometheus", "prometheus") {
        return;
    }
    let dir = scratch("podman-prometheus");
    serve_file(&dir);
    let podman = Podman::new(&dir);
    let [on_port, off_port] = free_ports();
    let on = podman_nginx(&podman, &dir, &rootfs, "zc-pm-on", true, on_port);
    let off = podman_nginx(&podman, &dir, &rootfs, "zc-pm-off", false, off_port);
    let service = PodmanService::start(&podman, &dir);
    let listen = format!("127.0.0.1:{}", free_port());
    let (exporter, _) = spawn_agent(&[
        "exporter",
        "--listen",
        &listen,
        "--names-from",
        &service.names_from(),
    ]);
    let prometheus = Prometheus::start(&dir, &listen);
    prometheus.wait_for(r#"sum(up{job="zerocopy-trace"})"#, 1);

    let got_on = downloads(on_port);
    let got_off = downloads(off_port);
    let by_container = |method: &str, name: &str| {
        format!(
            r#"sum by (container) (zerocopy_syscall_bytes_total{{method="{method}",container="{name}"}})"#
        )
    };
    prometheus.wait_for(
        &by_container("zero_copy", "zc-pm-on"),
        expected(got_on, true).zero_copy,
    );
    prometheus.wait_for(
        &by_container("copied", "zc-pm-on"),
        expected(got_on, true).copied,
    );
    prometheus.wait_for(
        &by_container("copied", "zc-pm-off"),
        expected(got_off, false).copied,
    );
    assert_eq!(
        prometheus.scalar(&by_container("zero_copy", "zc-pm-off")),
        None,
        "no zero-copy series"
    );
    // Both containers in one answer, as an operator asks it.
    let answer = prometheus
        .query(r#"sum by (container) (zerocopy_syscall_bytes_total{container=~"zc-pm-.*"})"#);
    let mut rows: Vec<(String, u64)> = answer["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["metric"]["container"].as_str().unwrap().to_string(),
                r["value"][1].as_str().unwrap().parse::<f64>().unwrap() as u64,
            )
        })
        .collect();
    rows.sort();
    let moved = |m: Moved| m.copied + m.zero_copy;
    assert_eq!(
        rows,
        [
            ("zc-pm-off".to_string(), moved(expected(got_off, false))),
            ("zc-pm-on".to_string(), moved(expected(got_on, true))),
        ]
    );
    eprintln!(
        "sum by (container) (zerocopy_syscall_bytes_total{{container=~\"zc-pm-.*\"}}): {rows:?}"
    );
    // Every query of the containers' Grafana dashboard runs, and the one on what copied
    // most names the copying container (beside the host's processes, summed in one series).
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../contrib/kubernetes/grafana-dashboard-containers.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let mut queries = Vec::new();
    exprs(&dashboard, &mut queries);
    assert!(queries.len() >= 7, "{queries:?}");
    for expr in &queries {
        let mut promql = expr.replace("$__rate_interval", "1m");
        for variable in ["$namespace", "$pod", "$container", "$node"] {
            promql = promql.replace(variable, ".*");
        }
        let answer = prometheus.query(&promql);
        assert_eq!(answer["status"], "success", "{promql}: {answer}");
        if promql.starts_with("topk(10") {
            // increase() needs two samples of the named series: a few scrapes.
            let deadline = Instant::now() + Duration::from_secs(30);
            let named = |answer: &Value| {
                answer["data"]["result"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|r| r["metric"]["container"] == "zc-pm-off")
            };
            let mut answer = answer;
            while !named(&answer) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(500));
                answer = prometheus.query(&promql);
            }
            assert!(
                named(&answer),
                "the copying container among the top ten: {answer}"
            );
        }
    }
    // Podman's containers have no pod.
    assert_eq!(
        prometheus.scalar(r#"count(zerocopy_syscall_bytes_total{container="zc-pm-on",pod!=""})"#),
        None
    );

    drop(prometheus);
    let mut exporter = exporter;
    let (status, _) = signal_agent(&mut exporter, libc::SIGINT);
    assert!(status.success());
    drop(service);
    drop((on, off));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every `"expr"` string in a JSON document (a Grafana dashboard's queries).
fn exprs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("expr", Value::String(expr)) => out.push(expr.clone()),
                    _ => exprs(v, out),
                }
            }
        }
        Value::Array(list) => list.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

/// Docker's daemon with its own data, state and socket, stopped (and its data removed) when
/// dropped: no bridge, no iptables rules, host network only.
struct Dockerd {
    child: Child,
    root: PathBuf,
    socket: PathBuf,
}

impl Dockerd {
    fn start(root: &Path) -> Dockerd {
        std::fs::create_dir_all(root).unwrap();
        let socket = root.join("docker.sock");
        let log = std::fs::File::create(root.join("dockerd.log")).unwrap();
        let child = Command::new("dockerd")
            .arg("--data-root")
            .arg(root.join("data"))
            .arg("--exec-root")
            .arg(root.join("exec"))
            .arg("--pidfile")
            .arg(root.join("dockerd.pid"))
            .arg("-H")
            .arg(format!("unix://{}", socket.display()))
            .args([
                "--bridge=none",
                "--iptables=false",
                "--ip6tables=false",
                "--ip-masq=false",
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting dockerd (cargo xtask test installs docker.io)");
        let dockerd = Dockerd {
            child,
            root: root.to_path_buf(),
            socket,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let up = Command::new("curl")
                .args(["-sf", "--max-time", "2", "--unix-socket"])
                .arg(&dockerd.socket)
                .arg("http://d/_ping")
                .output()
                .is_ok_and(|o| o.status.success());
            if up {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "dockerd not up in 60 s: {}",
                std::fs::read_to_string(dockerd.root.join("dockerd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        dockerd
    }

    fn docker(&self, args: &[&str]) -> String {
        let out = Command::new("docker")
            .arg("-H")
            .arg(format!("unix://{}", self.socket.display()))
            .args(args)
            .output()
            .expect("running docker");
        assert!(
            out.status.success(),
            "docker {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        // SAFETY: signalling our own child; SIGTERM lets dockerd stop its containerd and
        // unmount its layers.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // dockerd leaves its default network namespace mounted under its exec root.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.root.join("exec/netns/default"))
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.root);
        // The parent cgroup dockerd's cgroupfs driver leaves in each hierarchy, if empty.
        if let Ok(hierarchies) = std::fs::read_dir("/sys/fs/cgroup") {
            for h in hierarchies.flatten() {
                let _ = std::fs::remove_dir(h.path().join("docker"));
            }
        }
    }
}

#[test]
fn a_docker_container_by_name_counts_exactly() {
    let Some(rootfs) = ready("dockerd", "docker.io") else {
        return;
    };
    if !have("docker", "docker.io") {
        return;
    }
    let dir = scratch("docker");
    serve_file(&dir);
    let tarball = dir.join("rootfs.tar");
    let tar = Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .args(["--numeric-owner", "-cf"])
        .arg(&tarball)
        .arg(".")
        .status()
        .unwrap();
    assert!(tar.success());
    // Under /var/tmp: Docker's overlay layers need a filesystem that is not itself an overlay.
    let dockerd = Dockerd::start(Path::new(&format!(
        "/var/tmp/zerocopy-trace-dockerd-{}",
        std::process::id()
    )));
    dockerd.docker(&[
        "import",
        tarball.to_str().unwrap(),
        "zerocopy-trace/nginx:test",
    ]);
    let port = free_port();
    let conf = containers::write(
        &dir.join("nginx.conf"),
        &containers::nginx_conf(false, port),
    );
    let id = dockerd.docker(&[
        "run",
        "-d",
        "--name",
        "zc-docker-nginx",
        "--network",
        "host",
        "-v",
        &format!("{}:/etc/nginx/nginx.conf:ro", conf.display()),
        "-v",
        &format!("{}:/srv/www:ro", dir.join("www").display()),
        "zerocopy-trace/nginx:test",
        "/usr/sbin/nginx",
    ]);
    containers::wait_for_port(port);
    let names = format!("docker={}", dockerd.socket.display());
    let (agent, _) = spawn_agent(&[
        "report",
        "--json",
        "--container",
        "zc-docker-nginx",
        "--names-from",
        &names,
    ]);
    let got = downloads(port);
    let report = stop_agent(agent);
    assert_eq!(
        moved_by(&report, "zc-docker-nginx"),
        expected(got, false),
        "{report:#}"
    );
    let first = &report["processes"][0]["container"];
    assert_eq!(first["runtime"], "docker");
    assert_eq!(first["id"], id.as_str());
    assert_eq!(first["image"], "zerocopy-trace/nginx:test");
    assert_eq!(busiest(&report, "zc-docker-nginx")["verdict"], "copying");
    // The cgroup is Docker's cgroupfs layout.
    let pid = dockerd.docker(&["inspect", "--format", "{{.State.Pid}}", "zc-docker-nginx"]);
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(cgroup.contains(&format!("0::/docker/{id}")), "{cgroup}");
    dockerd.docker(&["rm", "-f", "zc-docker-nginx"]);
    drop(dockerd);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_dashboard_names_containers_and_groups_by_them() {
    let Some(rootfs) = ready("podman", "podman") else {
        return;
    };
    let dir = scratch("podman-dashboard");
    serve_file(&dir);
    let podman = Podman::new(&dir);
    let [on_port, off_port] = free_ports();
    let on = podman_nginx(&podman, &dir, &rootfs, "zc-db-on", true, on_port);
    let off = podman_nginx(&podman, &dir, &rootfs, "zc-db-off", false, off_port);
    let service = PodmanService::start(&podman, &dir);
    let command = format!(
        "{} top --comm nginx --names-from {}",
        common::AGENT,
        service.names_from()
    );
    let Some(tmux) = Tmux::start("containers", &command, 110, 16) else {
        return;
    };
    let has = |texts: &'static [&'static str]| {
        move |screen: &str| texts.iter().all(|t| screen.contains(t))
    };
    tmux.wait_for("the dashboard", Duration::from_secs(30), has(&["dropped"]));
    // Downloads in the background while the dashboard refreshes.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let loader = {
        let stop = std::sync::Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && n < 400 {
                download(on_port, "/blob.bin");
                download(off_port, "/blob.bin");
                n += 1;
            }
        })
    };
    let processes = tmux.wait_for(
        "both containers by name",
        Duration::from_secs(30),
        has(&["CONTAINER", "zc-db-on", "zc-db-off", "c containers"]),
    );
    tmux.keys(&["c"]);
    let grouped = tmux.wait_for(
        "one row per container",
        Duration::from_secs(10),
        has(&["PROCS", "per container", "zc-db-on", "zc-db-off"]),
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = loader.join();
    eprintln!("the dashboard, per process:\n{processes}\nper container (c):\n{grouped}");
    let row = |screen: &str, name: &str| -> String {
        screen
            .lines()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("no {name} row:\n{screen}"))
            .to_string()
    };
    assert!(row(&grouped, "zc-db-on").contains("zero-copy"), "{grouped}");
    assert!(row(&grouped, "zc-db-off").contains("copying"), "{grouped}");
    assert!(
        !grouped.contains("(host)"),
        "no host process is traced: {grouped}"
    );
    tmux.keys(&["q"]);
    drop(tmux);
    drop(service);
    drop((on, off));
    let _ = std::fs::remove_dir_all(&dir);
}
