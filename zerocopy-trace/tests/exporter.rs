//! The exporter against a real Prometheus (Debian's `prometheus`, started here on loopback with
//! a 1 s scrape interval and its own storage): while the workload helper moves exactly known
//! bytes by sendfile and by read+write under names of their own, Prometheus's query API must
//! return exactly those bytes, and the same after the processes exited. `promtool` accepts the
//! exposition and the alert rules, and every query of the Grafana dashboard succeeds. Then
//! Prometheus over TLS with a client certificate and Basic auth (`--web.config.file`), wrong
//! credentials refused. Then churn: 100 000 short-lived processes leave the exporter and the
//! dashboard under a memory bound, with the per-command totals exact.

mod common;

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

use common::{
    free_port, have, privileged,
    prometheus::{get, Prometheus},
    scratch, signal_agent, spawn_agent,
    tmux::Tmux,
    workload, Agent, AGENT,
};

/// The repository's fleet files: Grafana dashboard, alert rules, systemd unit.
fn fleet_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../contrib/fleet")
        .join(name)
}

/// Where the cgroup v2 hierarchy is mounted.
fn cgroup2_root() -> PathBuf {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    mounts
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(2) == Some(&"cgroup2")).then(|| PathBuf::from(f[1]))
        })
        .expect("a cgroup v2 hierarchy (this kernel mounts one)")
}

/// A cgroup named like a systemd scope, removed (once empty) when dropped.
struct Scope(PathBuf);

impl Drop for Scope {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Starts the workload helper in `mode` inside `scope`, its children renamed `comm`.
fn workload_in(scope: &Path, mode: &str, comm: &str, bytes: u64, truth: &Path) -> Child {
    let script = format!(
        "echo $$ > {}/cgroup.procs && exec {workload} {mode} --child-comm {comm} --bytes {bytes} --hold-ms 10000 --out {}",
        scope.display(),
        truth.display(),
        workload = workload()
    );
    Command::new("sh")
        .args(["-c", &script])
        .spawn()
        .expect("starting the workload")
}

/// Bytes a ground truth's children moved, (copied, zero-copy), by the cost model's rule: the
/// in-kernel movers move without copying, everything else copies.
fn truth_bytes(path: &Path) -> (u64, u64) {
    let truth: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let (mut copied, mut zero_copy) = (0, 0);
    for child in truth["processes"].as_array().unwrap() {
        for (name, s) in child["syscalls"].as_object().unwrap() {
            let bytes = s["bytes"].as_u64().unwrap();
            match name.as_str() {
                "sendfile64" | "splice" | "tee" | "vmsplice" | "copy_file_range" => {
                    zero_copy += bytes
                }
                _ => copied += bytes,
            }
        }
    }
    (copied, zero_copy)
}

/// Every `"expr"` string in a JSON document.
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

/// Stops an exporter with SIGINT; it must exit 0.
fn stop_exporter(mut agent: Agent) {
    let (status, _) = signal_agent(&mut agent, libc::SIGINT);
    assert!(status.success(), "exporter failed: {status:?}");
}

#[test]
fn a_real_prometheus_sees_the_exact_bytes() {
    if !privileged() || !have("prometheus", "prometheus") || !have("promtool", "prometheus") {
        return;
    }
    let dir = scratch("exporter");
    let unit = format!("zcfleet-{}.scope", std::process::id());
    let scope = Scope(cgroup2_root().join(&unit));
    std::fs::create_dir(&scope.0).expect("creating a test cgroup");

    let listen = format!("127.0.0.1:{}", free_port());
    let (agent, _) = spawn_agent(&["exporter", "--listen", &listen]);
    let prometheus = Prometheus::start(&dir, &listen);

    // Scraping before the workload starts (Prometheus's first scrape comes a few seconds
    // after it is ready).
    prometheus.wait_for(r#"sum(up{job="zerocopy-trace"})"#, 1);

    const BYTES: u64 = 4 << 20;
    let (sf_truth, rw_truth) = (dir.join("sendfile.json"), dir.join("read-write.json"));
    let mut sendfile = workload_in(&scope.0, "sendfile", "zcf-sf", BYTES, &sf_truth);
    let mut read_write = workload_in(&scope.0, "read-write", "zcf-rw", BYTES, &rw_truth);

    // While the children are alive (they hold 10 s after moving their bytes): the sender's
    // sendfile moved exactly BYTES.
    let zero_copy = |comm: &str| {
        format!(r#"sum(zerocopy_syscall_bytes_total{{comm="{comm}",method="zero_copy"}})"#)
    };
    let copied = |comm: &str| {
        format!(r#"sum(zerocopy_syscall_bytes_total{{comm="{comm}",method="copied"}})"#)
    };
    prometheus.wait_for(&zero_copy("zcf-sf"), BYTES);
    assert!(
        sendfile.try_wait().unwrap().is_none(),
        "the sendfile children should still be alive (holding 10 s)"
    );
    assert!(sendfile.wait().unwrap().success());
    assert!(read_write.wait().unwrap().success());

    // After they exited: exactly the ground truth, by method, for both programs.
    let (sf_copied, sf_zero_copy) = truth_bytes(&sf_truth);
    let (rw_copied, rw_zero_copy) = truth_bytes(&rw_truth);
    assert_eq!(sf_zero_copy, BYTES);
    assert_eq!(rw_zero_copy, 0);
    assert!(
        rw_copied >= 2 * BYTES,
        "read+write copies each byte twice: {rw_copied}"
    );
    for (query, want) in [
        (zero_copy("zcf-sf"), sf_zero_copy),
        (copied("zcf-sf"), sf_copied),
        (copied("zcf-rw"), rw_copied),
    ] {
        prometheus.wait_for(&query, want);
    }
    // The systemd unit comes from the cgroup, and no zero-copy series for read+write.
    prometheus.wait_for(
        &format!(r#"sum(zerocopy_syscall_bytes_total{{unit="{unit}",method="zero_copy"}})"#),
        BYTES,
    );
    assert_eq!(prometheus.scalar(&zero_copy("zcf-rw")), None);
    prometheus.wait_for(
        r#"sum(zerocopy_processes_exited_total{comm=~"zcf-.*"})"#,
        // sendfile: sender and receiver; read-write: sender and receiver.
        4,
    );

    // Monotonic: a few scrapes later the same values, and no counter ever went down.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(prometheus.scalar(&zero_copy("zcf-sf")), Some(sf_zero_copy));
    assert_eq!(prometheus.scalar(&copied("zcf-rw")), Some(rw_copied));
    assert_eq!(
        prometheus.scalar(r#"sum(resets(zerocopy_syscall_bytes_total[5m])) + sum(resets(zerocopy_syscall_calls_total[5m]))"#),
        Some(0)
    );
    assert_eq!(
        prometheus.scalar(r#"sum(zerocopy_dropped_total)"#),
        Some(0),
        "nothing dropped"
    );

    // promtool accepts the exposition (the Prometheus text format, and OpenMetrics on request).
    let exposition = get(&format!("http://{listen}/metrics"), None);
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running promtool");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let checked = promtool.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "promtool check metrics: {}{}\n{exposition}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    let openmetrics = get(
        &format!("http://{listen}/metrics"),
        Some("application/openmetrics-text; version=1.0.0"),
    );
    assert!(openmetrics.ends_with("# EOF\n"), "{openmetrics}");

    // The alert rules load, and every query of the Grafana dashboard runs.
    let rules = Command::new("promtool")
        .args(["check", "rules"])
        .arg(fleet_file("zerocopy-trace-alerts.yml"))
        .output()
        .unwrap();
    assert!(
        rules.status.success(),
        "{}",
        String::from_utf8_lossy(&rules.stdout)
    );
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(fleet_file("grafana-dashboard.json")).unwrap(),
    )
    .unwrap();
    let mut queries = Vec::new();
    exprs(&dashboard, &mut queries);
    assert!(queries.len() >= 5, "{queries:?}");
    for expr in &queries {
        let promql = expr
            .replace("$__rate_interval", "1m")
            .replace("$host", ".*");
        let answer = prometheus.query(&promql);
        assert_eq!(answer["status"], "success", "{promql}: {answer}");
    }
    // The share of zero copy per service, as the README gives it (here of the measured
    // children: the workload's parents, in the same unit, copy bytes of their own): sendfile's
    // BYTES of BYTES + everything the four children copied.
    let share = prometheus.query(&format!(
        r#"sum by (unit) (zerocopy_syscall_bytes_total{{method="zero_copy",unit="{unit}",comm=~"zcf-.*"}}) / sum by (unit) (zerocopy_syscall_bytes_total{{unit="{unit}",comm=~"zcf-.*"}})"#
    ));
    let share: f64 = share["data"]["result"][0]["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .expect("a share");
    let want = BYTES as f64 / (BYTES + sf_copied + rw_copied) as f64;
    assert!((share - want).abs() < 1e-9, "share {share}, want {want}");

    // Only GET, and nothing but /metrics and /.
    let status = |args: &[&str]| {
        let out = Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                "5",
            ])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(
        status(&["-X", "POST", &format!("http://{listen}/metrics")]),
        "405"
    );
    assert_eq!(status(&[&format!("http://{listen}/nothing")]), "404");

    drop(prometheus);
    stop_exporter(agent);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `VmHWM` and `VmRSS` of a process, in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("process alive");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// The agent's pid in `tmux`'s pane: the pane's process, or its child when a shell started it.
fn agent_in(tmux: &Tmux) -> u32 {
    let pane: u32 = tmux
        .run(&["list-panes", "-t", "dash", "-F", "#{pane_pid}"])
        .trim()
        .parse()
        .expect("the pane's pid");
    let agent = Path::new(AGENT).canonicalize().unwrap();
    let is_agent =
        |pid: u32| std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| exe == agent);
    if is_agent(pane) {
        return pane;
    }
    std::fs::read_to_string(format!("/proc/{pane}/task/{pane}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .find(|&p| is_agent(p))
        .expect("the dashboard's agent")
}

/// The value of every sample line of `family` whose labels include `labels`, summed.
fn sample_sum(exposition: &str, family: &str, labels: &str) -> u64 {
    exposition
        .lines()
        .filter(|l| l.starts_with(&format!("{family}{{")) && l.contains(labels))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Memory bound of the test, generous: the issue's goal is 40 MiB (the exact figure is the
/// benchmark's), and a leak of even 100 bytes per exited process would pass 50 MiB here.
const RSS_BOUND_KIB: u64 = 60 * 1024;

#[test]
fn churn_leaves_exporter_and_dashboard_flat_and_exact() {
    if !privileged() || !have("curl", "curl") {
        return;
    }
    let Some(dashboard) = Tmux::start("fleet", &format!("{AGENT} top"), 120, 30) else {
        return;
    };
    let has = |text: &'static str| move |screen: &str| screen.contains(text);
    dashboard.wait_for("the dashboard", Duration::from_secs(30), has("dropped"));
    let top = agent_in(&dashboard);
    let listen = format!("127.0.0.1:{}", free_port());
    let (mut exporter, _) = spawn_agent(&["exporter", "--listen", &listen]);
    let exporter_pid = exporter.child().id();
    let before = (memory_kib(exporter_pid), memory_kib(top));

    const PROCESSES: u64 = 100_000;
    const CHUNK: u64 = 1000;
    let dir = scratch("fleet-churn");
    let truth = dir.join("truth.json");
    let status = Command::new(workload())
        .args(["churn", "--child-comm", "zcf-churn", "--parallel", "8"])
        .args(["--processes", &PROCESSES.to_string()])
        .args(["--chunk", &CHUNK.to_string(), "--out"])
        .arg(&truth)
        .status()
        .unwrap();
    assert!(status.success());

    // Every churner counted, exactly, under its name (summed over units).
    let deadline = Instant::now() + Duration::from_secs(30);
    let exposition = loop {
        let text = get(&format!("http://{listen}/metrics"), None);
        let exited = sample_sum(
            &text,
            "zerocopy_processes_exited_total",
            r#"comm="zcf-churn""#,
        );
        if exited == PROCESSES || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let churn = r#"comm="zcf-churn""#;
    assert_eq!(
        sample_sum(&exposition, "zerocopy_processes_exited_total", churn),
        PROCESSES,
        "{exposition}"
    );
    assert_eq!(
        sample_sum(&exposition, "zerocopy_syscall_bytes_total", churn),
        PROCESSES * CHUNK,
        "{exposition}"
    );
    assert_eq!(
        sample_sum(&exposition, "zerocopy_syscall_calls_total", churn),
        PROCESSES,
        "{exposition}"
    );
    assert_eq!(
        sample_sum(&exposition, "zerocopy_dropped_total", "reason="),
        0,
        "{exposition}"
    );
    // The dashboard says it folded them.
    let screen = dashboard.wait_for("the folded count", Duration::from_secs(10), has("folded"));

    let after = (memory_kib(exporter_pid), memory_kib(top));
    eprintln!(
        "after {PROCESSES} exited processes: exporter VmHWM {} KiB, VmRSS {} -> {} KiB; \
         dashboard VmHWM {} KiB, VmRSS {} -> {} KiB",
        after.0 .0, before.0 .1, after.0 .1, after.1 .0, before.1 .1, after.1 .1
    );
    for (who, (hwm, _)) in [("exporter", after.0), ("dashboard", after.1)] {
        assert!(
            hwm < RSS_BOUND_KIB,
            "{who} peaked at {hwm} KiB after {PROCESSES} exits (bound {RSS_BOUND_KIB} KiB)\n{screen}"
        );
    }

    stop_exporter(exporter);
    dashboard.keys(&["q"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    while Path::new(&format!("/proc/{top}")).exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn report_writes_a_textfile_for_node_exporter() {
    if !privileged() || !have("promtool", "prometheus") {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch("textfile");
    let file = dir.join("zerocopy.prom");
    let truth = dir.join("truth.json");
    let out = Command::new(AGENT)
        .args(["run", "--format", "prom", "-o"])
        .arg(&file)
        .args(["--", workload(), "sendfile", "--child-comm", "zcf-tf"])
        .args(["--bytes", "1048576", "--out"])
        .arg(&truth)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&file).unwrap();
    let (copied, zero_copy) = truth_bytes(&truth);
    let zero_copy_seen: u64 = text
        .lines()
        .filter(|l| l.contains(r#"comm="zcf-tf""#) && l.contains(r#"method="zero_copy""#))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    let copied_seen: u64 = text
        .lines()
        .filter(|l| l.contains(r#"comm="zcf-tf""#) && l.contains(r#"method="copied""#))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!((copied_seen, zero_copy_seen), (copied, zero_copy), "{text}");
    assert_eq!(zero_copy, 1 << 20);
    // Readable by node_exporter's user, and no temporary file left beside it.
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o644);
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.ends_with(".tmp")), "{names:?}");
    let checked = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
        .unwrap();
    assert!(
        checked.status.success(),
        "{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A test CA, a server certificate for 127.0.0.1 and a client certificate it signed, and a
/// client certificate of another CA, made with openssl in `dir` (ECDSA P-256, one day).
fn make_certificates(dir: &Path) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("running openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("client.ext"),
        "extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    for ca in ["ca", "other-ca"] {
        let key = format!("{ca}.key");
        let crt = format!("{ca}.crt");
        let subject = format!("/CN=zerocopy-trace test {ca}");
        let mut args = vec!["req", "-x509", "-days", "1", "-subj", &subject];
        args.extend(ec);
        args.extend(["-keyout", &key, "-out", &crt]);
        openssl(&args);
    }
    for (name, ca, ext, subject) in [
        ("server", "ca", "server.ext", "/CN=127.0.0.1"),
        ("client", "ca", "client.ext", "/CN=prometheus"),
        ("intruder", "other-ca", "client.ext", "/CN=intruder"),
    ] {
        let (key, csr, crt) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.crt"),
        );
        let mut args = vec!["req", "-subj", subject];
        args.extend(ec);
        args.extend(["-keyout", &key, "-out", &csr]);
        openssl(&args);
        let (ca_crt, ca_key) = (format!("{ca}.crt"), format!("{ca}.key"));
        openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_crt,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            ext,
            "-out",
            &crt,
        ]);
    }
}

/// `curl` over TLS to the exporter with `args`: the HTTP code (000 when no HTTP answer) and
/// curl's exit status.
fn curl_tls(url: &str, dir: &Path, args: &[&str]) -> (String, i32) {
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "10",
        ])
        .arg("--cacert")
        .arg(dir.join("ca.crt"))
        .args(args)
        .arg(url)
        .current_dir(dir)
        .output()
        .expect("running curl");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

/// The exporter with `--web.config.file` (TLS, client certificates required, Basic auth with
/// a bcrypt hash; the key readable by root only, read before the agent becomes nobody) against
/// a real Prometheus: the job with the client certificate and the password is up and its
/// samples arrive; the job with a wrong password is down with 401, the one without a client
/// certificate down with a TLS error; curl without credentials gets 401, an intruder's
/// certificate no answer, plain HTTP a 400; and the exporter counted each refusal.
#[test]
fn a_real_prometheus_scrapes_over_tls_with_basic_auth() {
    if !privileged() || !have("prometheus", "prometheus") || !have("openssl", "openssl") {
        return;
    }
    let dir = scratch("exporter-tls");
    make_certificates(&dir);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        dir.join("server.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let hash = bcrypt::hash("s3cret", 10).unwrap();
    let web = dir.join("web.yml");
    std::fs::write(
        &web,
        format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  \
             client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n\
             basic_auth_users:\n  prometheus: '{hash}'\n"
        ),
    )
    .unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let (agent, _) = spawn_agent(&[
        "exporter",
        "--listen",
        &listen,
        "--web.config.file",
        web.to_str().unwrap(),
    ]);
    let d = dir.display();
    let job = |name: &str, password: &str, client_cert: bool| {
        let cert = if client_cert {
            format!("\n        cert_file: {d}/client.crt\n        key_file: {d}/client.key")
        } else {
            String::new()
        };
        format!(
            "  - job_name: {name}\n    scheme: https\n    tls_config:\n        ca_file: {d}/ca.crt{cert}\n    \
             basic_auth:\n        username: prometheus\n        password: {password}\n    \
             static_configs:\n      - targets: ['{listen}']\n"
        )
    };
    let prometheus = Prometheus::with_jobs(
        &dir,
        &[
            job("good", "s3cret", true),
            job("wrong_password", "wrong", true),
            job("no_client_cert", "s3cret", false),
        ]
        .concat(),
    );
    prometheus.wait_for(r#"up{job="good"}"#, 1);
    prometheus.wait_for(r#"up{job="wrong_password"}"#, 0);
    prometheus.wait_for(r#"up{job="no_client_cert"}"#, 0);
    // The good job's samples arrive: the exporter's own families among them, with what it
    // refused to the other two.
    prometheus.wait_for(r#"count(zerocopy_build_info{job="good"})"#, 1);
    let deadline = Instant::now() + Duration::from_secs(30);
    let refused = |reason: &str| {
        prometheus
            .scalar(&format!(
                r#"zerocopy_exporter_rejected_total{{job="good",reason="{reason}"}}"#
            ))
            .unwrap_or(0)
    };
    while (refused("unauthorized") == 0 || refused("tls_handshake_error") == 0)
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(refused("unauthorized") > 0 && refused("tls_handshake_error") > 0);
    let errors = prometheus.last_errors();
    let error_of = |job: &str| {
        errors
            .iter()
            .find(|(j, _)| j == job)
            .map(|(_, e)| e.clone())
            .unwrap_or_else(|| panic!("no target of job {job}: {errors:?}"))
    };
    assert_eq!(error_of("good"), "");
    assert!(
        error_of("wrong_password").contains("401 Unauthorized"),
        "{errors:?}"
    );
    assert!(error_of("no_client_cert").contains("tls:"), "{errors:?}");

    let url = format!("https://{listen}/metrics");
    let client = ["--cert", "client.crt", "--key", "client.key"];
    for (user, want) in [
        ("prometheus:s3cret", "200"),
        ("prometheus:wrong", "401"),
        ("nobody:s3cret", "401"),
    ] {
        let args = [&client[..], &["-u", user]].concat();
        assert_eq!(curl_tls(&url, &dir, &args).0, want, "{user}");
    }
    assert_eq!(curl_tls(&url, &dir, &client).0, "401");
    let intruder = [
        "--cert",
        "intruder.crt",
        "--key",
        "intruder.key",
        "-u",
        "prometheus:s3cret",
    ];
    let (code, exit) = curl_tls(&url, &dir, &intruder);
    assert!(
        code == "000" && exit != 0,
        "an intruder's certificate: {code} {exit}"
    );
    // Plain HTTP on the TLS port is told so, as Go's servers do.
    let (code, _) = curl_tls(&format!("http://{listen}/metrics"), &dir, &[]);
    assert_eq!(code, "400", "plain HTTP");

    drop(prometheus);
    stop_exporter(agent);
    let _ = std::fs::remove_dir_all(&dir);
}
