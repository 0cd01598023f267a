//! Kubernetes without a cluster. The layouts: real processes (the workload helper, moving
//! exactly known bytes) placed in cgroups named as kubelet names them, with the systemd and
//! the cgroupfs driver, for Guaranteed, Burstable and BestEffort pods of containerd and CRI-O
//! (and Docker's, Podman's and systemd-nspawn's systemd layouts beside them), must resolve to
//! the right runtime, container id and pod UID, and count exactly; a fake CRI socket gives
//! the names (container, pod, namespace) and nothing else. `--pod` and `--container` by
//! name and by id trace exactly their processes. A real containerd (Debian's, with its CRI
//! plugin) starts a pod and its container over the CRI as kubelet would: traced by the pod's
//! name, exactly, named by containerd's own answer. Then the DaemonSet: the Helm chart renders
//! and lints with helm and validates against Kubernetes' schemas (kubernetes-validate), the
//! plain manifest is what the chart renders, and the agent's OCI image, built from the Debian
//! package with Podman, runs with exactly the manifest's capabilities and mounts and counts a
//! workload on the host exactly.

mod common;

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

use common::{
    containers::{self, Podman},
    fake_cri::{FakeContainer, FakeCri},
    free_port, have, privileged, process, scratch, spawn_agent, stop_agent, workload,
};

/// Where the cgroup v2 hierarchy is mounted.
fn cgroup2_root() -> PathBuf {
    procfs::mounts()
        .expect("reading /proc/self/mounts")
        .into_iter()
        .find(|entry| entry.fs_vfstype == "cgroup2")
        .map(|entry| PathBuf::from(entry.fs_file))
        .expect("a cgroup v2 hierarchy (this kernel mounts one)")
}

/// Cgroup directories made by a test, removed (deepest first, once empty) when dropped.
struct Cgroups {
    root: PathBuf,
    made: Vec<PathBuf>,
}

impl Cgroups {
    fn new() -> Cgroups {
        Cgroups {
            root: cgroup2_root(),
            made: Vec::new(),
        }
    }

    /// Makes `path` (as /proc/PID/cgroup writes it) and the directories above it that are
    /// missing; returns its directory.
    fn make(&mut self, path: &str) -> PathBuf {
        let mut dir = self.root.clone();
        for part in path.split('/').filter(|p| !p.is_empty()) {
            dir.push(part);
            if !dir.is_dir() {
                std::fs::create_dir(&dir)
                    .unwrap_or_else(|e| panic!("creating cgroup {}: {e}", dir.display()));
                self.made.push(dir.clone());
            }
        }
        dir
    }
}

impl Drop for Cgroups {
    fn drop(&mut self) {
        // A runtime that placed a container there (runc's cgroupfs driver) made the same
        // path in every v1 hierarchy too: removed there as well, once empty.
        let hierarchies: Vec<PathBuf> = std::fs::read_dir("/sys/fs/cgroup")
            .map(|d| {
                d.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.is_dir())
                    .collect()
            })
            .unwrap_or_default();
        for dir in self.made.iter().rev() {
            let _ = std::fs::remove_dir(dir);
            if let Ok(relative) = dir.strip_prefix(&self.root) {
                for hierarchy in &hierarchies {
                    if *hierarchy != self.root {
                        let _ = std::fs::remove_dir(hierarchy.join(relative));
                    }
                }
            }
        }
    }
}

/// A 64-hex id, different for each `seed` from its first digits on.
fn hex_id(seed: u32) -> String {
    let x = u128::from(seed) + 1;
    format!(
        "{:032x}{:032x}",
        x.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835) | 1 << 127,
        x.wrapping_mul(0xc2b2_ae3d_27d4_eb4f_1656_67b1_9e37_79f9)
    )
}

/// A pod UID, different for each `seed`.
fn pod_uid(seed: u32) -> String {
    format!("{seed:08x}-7425-40de-944b-e07fc1f90ae7")
}

/// One container placed as a runtime under kubelet would place it.
struct Placed {
    /// As /proc/PID/cgroup writes it.
    path: String,
    runtime: &'static str,
    id: String,
    pod_uid: String,
    /// Kubernetes names (the fake CRI's) for the pods' containers.
    names: Option<(String, String, String)>,
}

/// Every layout, named apart by `tag` (this test's pid) so nothing of a real machine's is
/// touched.
fn layouts(tag: u32) -> Vec<Placed> {
    let k8s = |n: u32, path: String, runtime, id: String, uid: String| Placed {
        path,
        runtime,
        id,
        pod_uid: uid,
        names: Some((format!("app-{n}"), format!("shop-{n}"), "prod".to_string())),
    };
    let mut placed = Vec::new();
    for (n, qos) in [(1, ""), (2, "burstable"), (3, "besteffort")] {
        let uid = pod_uid(tag * 16 + n);
        let slice_uid = uid.replace('-', "_");
        // systemd driver: Guaranteed pods directly under kubepods.slice.
        let parent = if qos.is_empty() {
            format!("/kubepods.slice/kubepods-pod{slice_uid}.slice")
        } else {
            format!("/kubepods.slice/kubepods-{qos}.slice/kubepods-{qos}-pod{slice_uid}.slice")
        };
        let id = hex_id(tag * 16 + n);
        let (leaf, runtime) = if n == 2 {
            (format!("crio-{id}.scope"), "cri-o")
        } else {
            (format!("cri-containerd-{id}.scope"), "containerd")
        };
        placed.push(k8s(n, format!("{parent}/{leaf}"), runtime, id, uid));
        // cgroupfs driver, the same QoS classes.
        let uid = pod_uid(tag * 16 + n + 3);
        let parent = if qos.is_empty() {
            format!("/kubepods/pod{uid}")
        } else {
            format!("/kubepods/{qos}/pod{uid}")
        };
        let id = hex_id(tag * 16 + n + 3);
        let (leaf, runtime) = if n == 3 {
            (format!("crio-{id}"), "cri-o")
        } else {
            (id.clone(), "cri")
        };
        placed.push(k8s(n + 3, format!("{parent}/{leaf}"), runtime, id, uid));
    }
    // CRI-O with crun: the processes one level below the container's scope.
    let uid = pod_uid(tag * 16 + 7);
    let id = hex_id(tag * 16 + 7);
    placed.push(k8s(
        7,
        format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/crio-{id}.scope/container",
            uid.replace('-', "_")
        ),
        "cri-o",
        id,
        uid,
    ));
    // Outside Kubernetes, their systemd layouts (ids only: no runtime answers for them).
    let (docker, podman) = (hex_id(tag * 16 + 8), hex_id(tag * 16 + 9));
    placed.push(Placed {
        path: format!("/system.slice/docker-{docker}.scope"),
        runtime: "docker",
        id: docker,
        pod_uid: String::new(),
        names: None,
    });
    placed.push(Placed {
        path: format!("/machine.slice/libpod-{podman}.scope"),
        runtime: "podman",
        id: podman,
        pod_uid: String::new(),
        names: None,
    });
    let machine = format!("zc-{tag}-nspawn");
    placed.push(Placed {
        path: format!(
            "/machine.slice/machine-{}.scope/payload",
            machine.replace('-', r"\x2d")
        ),
        runtime: "systemd-nspawn",
        id: machine,
        pod_uid: String::new(),
        names: None,
    });
    placed
}

/// What the fake CRI lists: every pod's container.
fn fake_containers(placed: &[Placed]) -> Vec<FakeContainer> {
    placed
        .iter()
        .filter_map(|p| {
            let (name, pod, namespace) = p.names.clone()?;
            Some(FakeContainer {
                id: p.id.clone(),
                name,
                pod,
                namespace,
                pod_uid: p.pod_uid.clone(),
                image: "registry.example/shop:1.0".to_string(),
            })
        })
        .collect()
}

/// Runs the workload helper's `mode` inside cgroup `dir`, its children renamed `comm`, and
/// returns its ground truth once it has exited.
fn run_in(dir: &Path, mode: &str, comm: &str, truth: &Path) -> Value {
    let script = format!(
        "echo $$ > '{}/cgroup.procs' && exec {} {mode} --child-comm {comm} --bytes 1048576 --out {}",
        dir.display(),
        workload(),
        truth.display()
    );
    let status = Command::new("sh").args(["-c", &script]).status().unwrap();
    assert!(status.success(), "the workload in {}", dir.display());
    serde_json::from_str(&std::fs::read_to_string(truth).unwrap()).unwrap()
}

/// Every measured child of `truth` in `report`, with exactly its counts; returns their pids.
fn assert_exact(truth: &Value, report: &Value) -> Vec<u64> {
    let mut pids = Vec::new();
    for child in truth["processes"].as_array().unwrap() {
        let pid = child["pid"].as_u64().unwrap();
        let seen = process(report, pid);
        for (name, want) in child["syscalls"].as_object().unwrap() {
            for field in ["calls", "bytes", "errors"] {
                assert_eq!(
                    seen["syscalls"][name][field], want[field],
                    "{name}.{field}: {seen:#}"
                );
            }
        }
        pids.push(pid);
    }
    pids
}

#[test]
fn kubelet_layouts_resolve_to_pods_and_containers() {
    if !privileged() {
        return;
    }
    let dir = scratch("layouts");
    let tag = std::process::id() % 0x10000;
    let placed = layouts(tag);
    let cri = FakeCri::start(dir.join("cri.sock"), fake_containers(&placed));
    let mut cgroups = Cgroups::new();
    let dirs: Vec<PathBuf> = placed.iter().map(|p| cgroups.make(&p.path)).collect();

    let (agent, _) = spawn_agent(&["report", "--json", "--names-from", &cri.names_from()]);
    let truths: Vec<Value> = dirs
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let mode = if i % 2 == 0 { "sendfile" } else { "read-write" };
            run_in(
                d,
                mode,
                &format!("zck-{i}"),
                &dir.join(format!("truth-{i}.json")),
            )
        })
        .collect();
    let report = stop_agent(agent);

    for (p, truth) in placed.iter().zip(&truths) {
        for pid in assert_exact(truth, &report) {
            let c = &process(&report, pid)["container"];
            assert_eq!(c["runtime"], p.runtime, "{}: {c:#}", p.path);
            assert_eq!(c["id"], p.id.as_str(), "{}", p.path);
            match &p.names {
                Some((name, pod, namespace)) => {
                    assert_eq!(c["pod_uid"], p.pod_uid.as_str(), "{}", p.path);
                    assert_eq!(
                        (&c["name"], &c["pod"], &c["namespace"]),
                        (
                            &Value::from(name.as_str()),
                            &Value::from(pod.as_str()),
                            &Value::from(namespace.as_str())
                        ),
                        "{}: the fake CRI's names",
                        p.path
                    );
                    assert_eq!(c["image"], "registry.example/shop:1.0");
                }
                None if p.runtime == "systemd-nspawn" => {
                    assert_eq!(c["pod_uid"], Value::Null);
                    assert_eq!(
                        c["name"],
                        Value::Null,
                        "nobody named it: its id is its name"
                    );
                }
                None => {
                    assert_eq!(
                        (&c["pod_uid"], &c["name"]),
                        (&Value::Null, &Value::Null),
                        "{}",
                        p.path
                    );
                }
            }
        }
        eprintln!(
            "{:<15} {} -> {}",
            p.runtime,
            p.path,
            if p.names.is_some() {
                "named by the fake CRI"
            } else {
                "ids only"
            }
        );
    }
    // A process outside every container has none.
    let outside = report["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["container"].is_null());
    assert!(
        outside.is_some(),
        "the agent's own host processes have no container"
    );
    drop(cri);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn pod_and_container_filters_by_name_and_id() {
    if !privileged() {
        return;
    }
    let dir = scratch("pod-filters");
    let tag = std::process::id() % 0x10000 + 1;
    let placed = layouts(tag);
    let cri = FakeCri::start(dir.join("cri.sock"), fake_containers(&placed));
    let mut cgroups = Cgroups::new();
    let dirs: Vec<PathBuf> = placed.iter().map(|p| cgroups.make(&p.path)).collect();
    // The Burstable pod of the systemd driver (CRI-O), by namespace/name; the BestEffort pod
    // of the cgroupfs driver by its UID with no names at all; the Guaranteed containerd
    // container by its Kubernetes name; the Podman one by its id.
    let cases: [(&[&str], usize); 4] = [
        (&["--pod", "prod/shop-2"], 2),
        (&["--pod", &placed[5].pod_uid, "--names-from", "none"], 5),
        (&["--container", "app-1"], 0),
        (&["--container", &placed[8].id[..16]], 8),
    ];
    for (k, (filter, wanted)) in cases.iter().enumerate() {
        let mut args = vec!["report", "--json"];
        args.extend_from_slice(filter);
        let names = cri.names_from();
        if !filter.contains(&"--names-from") {
            args.extend(["--names-from", &names]);
        }
        let (agent, _) = spawn_agent(&args);
        // The wanted one and a neighbour in another pod.
        let other = (wanted + 1) % placed.len();
        let truth = run_in(
            &dirs[*wanted],
            "sendfile",
            &format!("zcp-{k}"),
            &dir.join(format!("in-{k}.json")),
        );
        let outside = run_in(
            &dirs[other],
            "sendfile",
            &format!("zcq-{k}"),
            &dir.join(format!("out-{k}.json")),
        );
        let report = stop_agent(agent);
        assert_exact(&truth, &report);
        for p in report["processes"].as_array().unwrap() {
            assert_eq!(
                p["container"]["id"],
                placed[*wanted].id.as_str(),
                "{filter:?} only: {p:#}"
            );
        }
        for child in outside["processes"].as_array().unwrap() {
            let pid = child["pid"].as_u64().unwrap();
            assert!(
                !report["processes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|p| p["pid"] == pid),
                "{filter:?}: pid {pid} of another container counted"
            );
        }
    }
    // Names that do not resolve are one clear line each.
    let names = cri.names_from();
    for (filter, says) in [
        (
            ["--pod", "prod/no-such-pod"],
            "no pod named or with the UID prod/no-such-pod",
        ),
        (
            ["--container", "app-404"],
            "no running container named or with the id app-404",
        ),
    ] {
        let out = Command::new(common::AGENT)
            .arg("report")
            .args(filter)
            .args(["--names-from", &names])
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{filter:?}: {stderr}");
    }
    drop(cri);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `contrib/kubernetes/<name>`.
fn contrib(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../contrib/kubernetes")
        .join(name)
}

/// A tool `cargo xtask test` brought into target/containers; `None` (after saying so, or
/// failing in CI) when it is not there.
fn tool(relative: &str) -> Option<PathBuf> {
    let path = containers::dir().join(relative);
    if path.exists() {
        return Some(path);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!(
            "{} is missing, and CI=true forbids skipping: run the tests with `cargo xtask test`",
            path.display()
        );
    }
    eprintln!(
        "SKIPPED ({} missing): `cargo xtask test` brings it",
        path.display()
    );
    None
}

/// Runs `program` with `args`; (success, stdout, stderr).
fn run(program: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", program.display()));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The documents of a YAML stream as JSON values (PyYAML, from the validator's virtualenv).
fn yaml_documents(python: &Path, yaml: &str) -> Vec<Value> {
    let mut child = Command::new(python)
        .args([
            "-c",
            "import json, sys, yaml; json.dump([d for d in yaml.safe_load_all(sys.stdin) if d], sys.stdout)",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("running the virtualenv's python");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(yaml.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the YAML does not parse");
    serde_json::from_slice(&out.stdout).unwrap()
}

fn kind<'a>(documents: &'a [Value], kind: &str) -> &'a Value {
    documents
        .iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in the manifest"))
}

/// The rendering the plain manifest is made of.
const RENDER: [&str; 6] = [
    "template",
    "zerocopy-trace",
    "--namespace",
    "zerocopy-trace",
    "--set",
    "podMonitor.enabled=true",
];

#[test]
fn the_chart_lints_renders_the_manifest_and_validates() {
    let (Some(helm), Some(validate), Some(python), Some(models)) = (
        tool("bin/helm"),
        tool("venv/bin/kubernetes-validate"),
        tool("venv/bin/python"),
        tool("node_modules/@kubernetes-models/prometheus-operator"),
    ) else {
        return;
    };
    let chart = contrib("chart/zerocopy-trace");
    let chart = chart.to_str().unwrap();
    let (ok, out, err) = run(&helm, &["lint", "--strict", chart]);
    assert!(
        ok && out.contains("1 chart(s) linted, 0 chart(s) failed"),
        "{out}{err}"
    );

    // The plain manifest is the chart rendered (its header comment aside).
    let mut args = RENDER.to_vec();
    args.insert(2, chart);
    let (ok, rendered, err) = run(&helm, &args);
    assert!(ok, "{err}");
    let manifest = std::fs::read_to_string(contrib("zerocopy-trace.yaml")).unwrap();
    let body: String = manifest
        .lines()
        .skip_while(|l| l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(body, rendered, "contrib/kubernetes/zerocopy-trace.yaml is not the chart's rendering: render it again (see its header)");

    // Every option on, against Kubernetes 1.37's schemas, strictly; and a broken copy fails.
    let dir = scratch("chart");
    let (ok, all, err) = run(
        &helm,
        &[
            "template",
            "t1",
            chart,
            "--set",
            "podMonitor.enabled=true,serviceMonitor.enabled=true,names.criSocket.enabled=true",
        ],
    );
    assert!(ok, "{err}");
    let all_path = containers::write(&dir.join("all.yaml"), &all);
    let (ok, out, err) = run(
        &validate,
        &["-k", "1.37.0", "--strict", all_path.to_str().unwrap()],
    );
    assert!(ok, "{out}{err}");
    for resource in [
        "serviceaccount/t1-zerocopy-trace",
        "service/t1-zerocopy-trace",
        "daemonset/t1-zerocopy-trace",
    ] {
        assert!(
            out.contains(&format!("passed for resource {resource}")),
            "{out}"
        );
    }
    let broken = containers::write(
        &dir.join("broken.yaml"),
        &all.replace("hostPID: true", "hostPID: \"yes\""),
    );
    let (ok, out, _) = run(
        &validate,
        &["-k", "1.37.0", "--strict", broken.to_str().unwrap()],
    );
    assert!(
        !ok && out.contains("hostPID"),
        "the validator must catch it: {out}"
    );

    // The operator's resources, with their CRDs' schemas (npm's kubernetes-models).
    let documents = yaml_documents(&python, &all);
    let json = containers::write(
        &dir.join("all.json"),
        &serde_json::to_string(&documents).unwrap(),
    );
    let check = containers::write(
        &containers::dir().join("check-operator.mjs"),
        "import { readFileSync } from 'node:fs';\n\
         import { PodMonitor, ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';\n\
         const models = { PodMonitor, ServiceMonitor };\n\
         for (const doc of JSON.parse(readFileSync(process.argv[2], 'utf8'))) {\n\
           if (models[doc.kind]) { new models[doc.kind](doc).validate(); console.log(`valid ${doc.kind}`); }\n\
         }\n",
    );
    assert!(models.is_dir());
    let (ok, out, err) = run(
        Path::new("node"),
        &[check.to_str().unwrap(), json.to_str().unwrap()],
    );
    assert!(
        ok && out.contains("valid PodMonitor") && out.contains("valid ServiceMonitor"),
        "{out}{err}"
    );

    // The least privilege, as the DaemonSet asks for it.
    let documents = yaml_documents(&python, &manifest);
    let daemonset = kind(&documents, "DaemonSet");
    let pod = &daemonset["spec"]["template"]["spec"];
    assert_eq!(pod["hostPID"], true);
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert_eq!(pod["hostNetwork"], Value::Null, "the pod's own network");
    let agent = &pod["containers"][0];
    let security = &agent["securityContext"];
    assert_eq!(security["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert_eq!(
        security["capabilities"]["add"],
        serde_json::json!(["BPF", "PERFMON", "DAC_READ_SEARCH"])
    );
    assert_eq!(
        (
            &security["privileged"],
            &security["allowPrivilegeEscalation"],
            &security["readOnlyRootFilesystem"]
        ),
        (&Value::Bool(false), &Value::Bool(false), &Value::Bool(true))
    );
    let mounts = agent["volumeMounts"].as_array().unwrap();
    assert!(
        mounts.iter().all(|m| m["readOnly"] == true),
        "every mount read-only: {mounts:#?}"
    );
    let paths: Vec<&str> = mounts
        .iter()
        .map(|m| m["mountPath"].as_str().unwrap())
        .collect();
    for wanted in [
        "/sys/kernel/btf",
        "/sys/fs/cgroup",
        "/sys/kernel/tracing",
        "/var/log/containers",
        "/var/log/pods",
    ] {
        assert!(paths.contains(&wanted), "{wanted} in {paths:?}");
    }
    assert!(
        !paths.iter().any(|p| p.ends_with(".sock")),
        "no runtime socket by default: {paths:?}"
    );
    // The PodMonitor selects the agent's pods and scrapes its port by name, and keeps the
    // traced workloads' labels.
    let monitor = kind(&documents, "PodMonitor");
    let labels = &daemonset["spec"]["template"]["metadata"]["labels"];
    for (k, v) in monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .unwrap()
    {
        assert_eq!(&labels[k], v, "the PodMonitor selects the pods by {k}");
    }
    assert_eq!(
        monitor["spec"]["podMetricsEndpoints"][0]["port"],
        agent["ports"][0]["name"]
    );
    assert_eq!(
        monitor["spec"]["podMetricsEndpoints"][0]["relabelings"][0]["action"],
        "labeldrop"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Podman's default seccomp profile (Debian's containers-common) with bpf() allowed under
/// CAP_BPF and perf_event_open() under CAP_PERFMON (it allows both only with CAP_SYS_ADMIN).
fn seccomp_allowing_bpf(path: &Path) -> PathBuf {
    let default = std::fs::read_to_string("/usr/share/containers/seccomp.json")
        .expect("Podman's default seccomp profile (containers-common)");
    let mut profile: Value = serde_json::from_str(&default).unwrap();
    let rules = profile["syscalls"].as_array_mut().unwrap();
    for rule in rules.iter_mut() {
        if let Some(names) = rule["names"].as_array_mut() {
            names.retain(|n| n != "bpf" && n != "perf_event_open");
        }
    }
    rules.retain(|r| r["names"].as_array().is_some_and(|n| !n.is_empty()));
    for (name, cap) in [("bpf", "CAP_BPF"), ("perf_event_open", "CAP_PERFMON")] {
        rules.push(serde_json::json!({"names": [name], "action": "SCMP_ACT_ALLOW", "includes": {"caps": [cap]}}));
    }
    containers::write(path, &serde_json::to_string_pretty(&profile).unwrap())
}

/// A capability set from /proc/PID/status (`CapBnd:`, `CapEff:`...).
fn capability_set(pid: &str, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the agent runs");
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
        .trim();
    u64::from_str_radix(hex, 16).unwrap()
}

/// The bit of a capability Kubernetes names without `CAP_`.
fn capability_bit(name: &str) -> u64 {
    let number = match name {
        "DAC_READ_SEARCH" => 2,
        "PERFMON" => 38,
        "BPF" => 39,
        other => panic!("a capability this test does not know: {other}"),
    };
    1 << number
}

/// The value of every sample line of `family` whose labels include `labels`, summed.
fn sample_sum(exposition: &str, family: &str, labels: &str) -> u64 {
    exposition
        .lines()
        .filter(|l| l.starts_with(&format!("{family}{{")) && l.contains(labels))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[test]
fn the_image_runs_with_the_manifests_capabilities_and_counts_the_host_exactly() {
    if !privileged() || !have("podman", "podman") {
        return;
    }
    let Ok(image) = std::env::var("ZEROCOPY_TRACE_IMAGE") else {
        if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
            panic!("no ZEROCOPY_TRACE_IMAGE, and CI=true forbids skipping: `cargo xtask test` builds the image");
        }
        eprintln!("SKIPPED (no ZEROCOPY_TRACE_IMAGE): `cargo xtask test -- --test kubernetes` builds the image");
        return;
    };
    let Some(python) = tool("venv/bin/python") else {
        return;
    };
    let dir = scratch("image");
    let podman = Podman::new(&dir);
    // What the manifest grants: the capabilities, host PID, the read-only host paths.
    let documents = yaml_documents(
        &python,
        &std::fs::read_to_string(contrib("zerocopy-trace.yaml")).unwrap(),
    );
    let pod = &kind(&documents, "DaemonSet")["spec"]["template"]["spec"];
    assert_eq!(pod["hostPID"], true);
    let agent = &pod["containers"][0];
    let caps: Vec<&str> = agent["securityContext"]["capabilities"]["add"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let host_paths: std::collections::HashMap<&str, &str> = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["name"].as_str().unwrap(),
                v["hostPath"]["path"].as_str().unwrap(),
            )
        })
        .collect();
    let mut made = Vec::new();
    let mut args: Vec<String> = vec![
        "run".into(),
        "--pid=host".into(),
        "--network".into(),
        "host".into(),
        "--read-only".into(),
        "--cap-drop=all".into(),
        format!(
            "--cap-add={}",
            caps.iter()
                .map(|c| format!("CAP_{c}"))
                .collect::<Vec<_>>()
                .join(",")
        ),
    ];
    for var in agent["env"].as_array().into_iter().flatten() {
        args.push("-e".into());
        args.push(format!(
            "{}={}",
            var["name"].as_str().unwrap(),
            var["value"].as_str().unwrap()
        ));
    }
    for mount in agent["volumeMounts"].as_array().unwrap() {
        let host = host_paths[mount["name"].as_str().unwrap()];
        if !Path::new(host).exists() {
            // DirectoryOrCreate in the manifest: kubelet would make it.
            std::fs::create_dir_all(host).unwrap();
            made.push(PathBuf::from(host));
        }
        let ro = if mount["readOnly"] == true { ":ro" } else { "" };
        args.push("-v".into());
        args.push(format!(
            "{host}:{}{ro}",
            mount["mountPath"].as_str().unwrap()
        ));
    }
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let command = |extra: &[&str], name: &str| -> Vec<String> {
        let mut full = args.clone();
        full.extend(["--name".to_string(), name.to_string()]);
        full.extend(extra.iter().map(|s| s.to_string()));
        full.push(image.clone());
        // The manifest's arguments, listening on loopback here rather than the pod's address.
        full.extend(agent["args"].as_array().unwrap().iter().map(|a| {
            let a = a.as_str().unwrap();
            if a.starts_with("0.0.0.0:") {
                listen.clone()
            } else {
                a.to_string()
            }
        }));
        full
    };

    // Under Podman's own seccomp profile the kernel programs cannot load: bpf() is refused.
    let refused = podman
        .command()
        .args(command(&["--rm"], "zc-image-refused"))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success(),
        "bpf() should be refused by the default profile: {said}"
    );
    assert!(
        said.contains("Operation not permitted") || said.contains("EPERM"),
        "{said}"
    );

    // With a profile that allows bpf() under CAP_BPF, it attaches and serves.
    let profile = seccomp_allowing_bpf(&dir.join("seccomp.json"));
    let seccomp = format!("seccomp={}", profile.display());
    let _ = podman
        .command()
        .args(["rm", "-f", "-t", "0", "zc-image-agent"])
        .output();
    let id = podman.run(
        &command(&["-d", "--security-opt", &seccomp], "zc-image-agent")
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    struct Stop<'a>(&'a Podman);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            let _ = self
                .0
                .command()
                .args(["rm", "-f", "-t", "2", "zc-image-agent"])
                .output();
        }
    }
    let _stop = Stop(&podman);
    let deadline = Instant::now() + Duration::from_secs(30);
    let metrics = format!("http://{listen}/metrics");
    while !Command::new("curl")
        .args(["-sf", "--max-time", "2", &metrics])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        assert!(
            Instant::now() < deadline,
            "the image's exporter never answered: {}",
            podman.run(&["logs", &id])
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Exactly the manifest's capabilities in its bounding set (no CAP_SETPCAP to empty it);
    // after attach none (CAP_BPF alone where this kernel checks it on every use of a map, as
    // the agent says), and root's uid, which the pod has no CAP_SETUID to give up.
    let pid = podman.inspect("zc-image-agent", "{{.State.Pid}}");
    let logs = podman.command().args(["logs", &id]).output().unwrap();
    let logs = format!(
        "{}{}",
        String::from_utf8_lossy(&logs.stdout),
        String::from_utf8_lossy(&logs.stderr)
    );
    let kept_bpf = logs.contains("privileges dropped: uid 0, capabilities CAP_BPF only");
    assert!(
        kept_bpf || logs.contains("privileges dropped: uid 0, capabilities none"),
        "{logs}"
    );
    let after = if kept_bpf { capability_bit("BPF") } else { 0 };
    let wanted: u64 = caps.iter().map(|c| capability_bit(c)).sum();
    assert_eq!(
        capability_set(&pid, "CapBnd:"),
        wanted,
        "bounding set of pid {pid}"
    );
    assert_eq!(
        capability_set(&pid, "CapEff:"),
        after,
        "effective after attach"
    );
    assert_eq!(capability_set(&pid, "CapPrm:"), after);
    // Its names helper (kubelet's logs): root's uid, no capability, NoNewPrivs, its filter.
    let helper = procfs::process::all_processes()
        .unwrap()
        .filter_map(Result::ok)
        .find(|p| {
            p.stat().is_ok_and(|s| s.ppid.to_string() == pid)
                && p.cmdline()
                    .is_ok_and(|c| c.get(1).is_some_and(|a| a == "names-helper"))
        })
        .unwrap_or_else(|| panic!("no names helper under pid {pid}:\n{logs}"));
    let status = helper.status().unwrap();
    assert_eq!(status.euid, 0);
    assert_eq!(
        (status.capeff, status.capprm, status.capamb),
        (0, 0, Some(0))
    );
    assert_eq!(status.capbnd, Some(wanted));
    assert_eq!((status.nonewprivs, status.seccomp), (Some(1), Some(2)));

    // A workload on the host, counted exactly through the image's exporter.
    let truth_path = dir.join("truth.json");
    let status = Command::new(workload())
        .args([
            "sendfile",
            "--child-comm",
            "zci-sf",
            "--bytes",
            "4194304",
            "--out",
        ])
        .arg(&truth_path)
        .status()
        .unwrap();
    assert!(status.success());
    let truth: Value =
        serde_json::from_str(&std::fs::read_to_string(&truth_path).unwrap()).unwrap();
    let (mut calls, mut sendfile) = (0, 0);
    for child in truth["processes"].as_array().unwrap() {
        for (name, s) in child["syscalls"].as_object().unwrap() {
            calls += s["calls"].as_u64().unwrap();
            if name == "sendfile64" {
                sendfile += s["bytes"].as_u64().unwrap();
            }
        }
    }
    assert_eq!(sendfile, 4 << 20);
    let deadline = Instant::now() + Duration::from_secs(30);
    let exposition = loop {
        let out = Command::new("curl")
            .args(["-sf", "--max-time", "5", &metrics])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let seen = sample_sum(&text, "zerocopy_syscall_calls_total", r#"comm="zci-sf""#);
        if seen == calls || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        sample_sum(
            &exposition,
            "zerocopy_syscall_calls_total",
            r#"comm="zci-sf""#
        ),
        calls,
        "{exposition}"
    );
    assert_eq!(
        sample_sum(
            &exposition,
            "zerocopy_syscall_bytes_total",
            r#"comm="zci-sf",unit="",container="",pod="",namespace="",syscall="sendfile64",method="zero_copy""#
        ),
        sendfile,
        "{exposition}"
    );
    assert_eq!(
        sample_sum(&exposition, "zerocopy_dropped_total", "reason="),
        0
    );
    eprintln!("the image {image}: CapBnd {wanted:#x}, CapEff after attach {after:#x}; {sendfile} sendfile bytes of zci-sf counted");
    drop(_stop);
    let _ = podman.command().args(["rmi", "-f", &image]).output();
    for made in made.iter().rev() {
        let _ = std::fs::remove_dir(made);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The CRI messages a kubelet sends to start a pod with one container (only the fields used
/// here; numbers as in cri-api's `api.proto`).
mod cri {
    use std::collections::HashMap;

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PodSandboxMetadata {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub uid: String,
        #[prost(string, tag = "3")]
        pub namespace: String,
        #[prost(uint32, tag = "4")]
        pub attempt: u32,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NamespaceOption {
        /// NamespaceMode: POD 0, CONTAINER 1, NODE 2.
        #[prost(int32, tag = "1")]
        pub network: i32,
        #[prost(int32, tag = "2")]
        pub pid: i32,
        #[prost(int32, tag = "3")]
        pub ipc: i32,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LinuxSandboxSecurityContext {
        #[prost(message, optional, tag = "1")]
        pub namespace_options: Option<NamespaceOption>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LinuxPodSandboxConfig {
        #[prost(string, tag = "1")]
        pub cgroup_parent: String,
        #[prost(message, optional, tag = "2")]
        pub security_context: Option<LinuxSandboxSecurityContext>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PodSandboxConfig {
        #[prost(message, optional, tag = "1")]
        pub metadata: Option<PodSandboxMetadata>,
        #[prost(string, tag = "2")]
        pub hostname: String,
        #[prost(string, tag = "3")]
        pub log_directory: String,
        #[prost(map = "string, string", tag = "6")]
        pub labels: HashMap<String, String>,
        #[prost(message, optional, tag = "8")]
        pub linux: Option<LinuxPodSandboxConfig>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct RunPodSandboxRequest {
        #[prost(message, optional, tag = "1")]
        pub config: Option<PodSandboxConfig>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct RunPodSandboxResponse {
        #[prost(string, tag = "1")]
        pub pod_sandbox_id: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ContainerMetadata {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(uint32, tag = "2")]
        pub attempt: u32,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ImageSpec {
        #[prost(string, tag = "1")]
        pub image: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Mount {
        #[prost(string, tag = "1")]
        pub container_path: String,
        #[prost(string, tag = "2")]
        pub host_path: String,
        #[prost(bool, tag = "3")]
        pub readonly: bool,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ContainerConfig {
        #[prost(message, optional, tag = "1")]
        pub metadata: Option<ContainerMetadata>,
        #[prost(message, optional, tag = "2")]
        pub image: Option<ImageSpec>,
        #[prost(string, repeated, tag = "3")]
        pub command: Vec<String>,
        #[prost(message, repeated, tag = "7")]
        pub mounts: Vec<Mount>,
        #[prost(map = "string, string", tag = "9")]
        pub labels: HashMap<String, String>,
        #[prost(string, tag = "11")]
        pub log_path: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct CreateContainerRequest {
        #[prost(string, tag = "1")]
        pub pod_sandbox_id: String,
        #[prost(message, optional, tag = "2")]
        pub config: Option<ContainerConfig>,
        #[prost(message, optional, tag = "3")]
        pub sandbox_config: Option<PodSandboxConfig>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct CreateContainerResponse {
        #[prost(string, tag = "1")]
        pub container_id: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ContainerId {
        #[prost(string, tag = "1")]
        pub container_id: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PodSandboxId {
        #[prost(string, tag = "1")]
        pub pod_sandbox_id: String,
    }
}

/// containerd (Debian's, which docker.io brings) with its CRI plugin on a socket, a root and a
/// state of its own: runc, the cgroupfs driver, no CNI (the pods use the host's network), and
/// no OOM score below its own (lowering one needs CAP_SYS_RESOURCE, which these machines lack).
/// Stopped, and its data removed, when dropped.
struct Containerd {
    child: std::process::Child,
    root: PathBuf,
    state: PathBuf,
    socket: PathBuf,
}

impl Containerd {
    fn start(tag: u32, sandbox_image: &str) -> Containerd {
        let root = PathBuf::from(format!("/var/tmp/zerocopy-trace-containerd-{tag}"));
        let state = PathBuf::from(format!("/run/zerocopy-trace-containerd-{tag}"));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&state).unwrap();
        let socket = state.join("containerd.sock");
        let config = containers::write(
            &root.join("config.toml"),
            &format!(
                "version = 2\nroot = \"{root}/data\"\nstate = \"{state}/state\"\n\
                 [grpc]\n  address = \"{socket}\"\n[ttrpc]\n  address = \"{socket}.ttrpc\"\n\
                 [plugins.\"io.containerd.grpc.v1.cri\"]\n  sandbox_image = \"{sandbox_image}\"\n  restrict_oom_score_adj = true\n\
                 [plugins.\"io.containerd.grpc.v1.cri\".containerd]\n  snapshotter = \"overlayfs\"\n  default_runtime_name = \"runc\"\n\
                 [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]\n  runtime_type = \"io.containerd.runc.v2\"\n\
                 [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]\n  SystemdCgroup = false\n\
                 [plugins.\"io.containerd.grpc.v1.cri\".cni]\n  bin_dir = \"{root}/no-cni\"\n  conf_dir = \"{root}/no-cni\"\n",
                root = root.display(),
                state = state.display(),
                socket = socket.display(),
            ),
        );
        let log = std::fs::File::create(root.join("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting containerd (docker.io brings it)");
        let containerd = Containerd {
            child,
            root,
            state,
            socket,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::os::unix::net::UnixStream::connect(&containerd.socket).is_err() {
            assert!(
                Instant::now() < deadline,
                "containerd not up: {}",
                containerd.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        containerd
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.root.join("containerd.log")).unwrap_or_default()
    }

    fn ctr(&self, args: &[&str]) {
        let out = Command::new("ctr")
            .arg("--address")
            .arg(&self.socket)
            .args(["--namespace", "k8s.io"])
            .args(args)
            .output()
            .expect("running ctr");
        assert!(
            out.status.success(),
            "ctr {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn call<M: prost::Message>(&self, method: &str, message: M) -> bytes::Bytes {
        common::fake_cri::call(&self.socket, method, message.encode_to_vec())
            .unwrap_or_else(|e| panic!("{e}\n{}", self.log()))
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Snapshots containerd left mounted, then its data.
        if let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") {
            let root = self.root.to_string_lossy().into_owned();
            let state = self.state.to_string_lossy().into_owned();
            let mut points: Vec<&str> = mounts
                .lines()
                .filter_map(|l| l.split_whitespace().nth(1))
                .filter(|p| p.starts_with(&root) || p.starts_with(&state))
                .collect();
            points.sort_by_key(|p| std::cmp::Reverse(p.len()));
            for point in points {
                let _ = Command::new("umount").args(["-l", point]).status();
            }
        }
        let _ = std::fs::remove_dir_all(&self.root);
        let _ = std::fs::remove_dir_all(&self.state);
    }
}

#[test]
fn a_containerd_pod_started_over_the_cri_is_named_by_containerd() {
    if !privileged()
        || !have("containerd", "containerd")
        || !have("ctr", "containerd")
        || !have("podman", "podman")
    {
        return;
    }
    let Some(rootfs) = containers::rootfs() else {
        return;
    };
    let dir = scratch("containerd");
    let tag = std::process::id();
    // An image of the test root filesystem, for the pause container (sleep) and nginx.
    let podman = Podman::new(&dir);
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
    let image = format!("localhost/zerocopy-trace-cri:{tag}");
    let pause = format!("localhost/zerocopy-trace-pause:{tag}");
    podman.run(&[
        "import",
        "--change",
        "CMD [\"/bin/sleep\", \"infinity\"]",
        "--change",
        "ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin",
        tarball.to_str().unwrap(),
        &image,
    ]);
    let archive = dir.join("image.tar");
    podman.run(&[
        "save",
        "--format",
        "docker-archive",
        "-o",
        archive.to_str().unwrap(),
        &image,
    ]);
    let _ = podman.command().args(["rmi", "-f", &image]).output();
    let containerd = Containerd::start(tag, &pause);
    containerd.ctr(&["images", "import", archive.to_str().unwrap()]);
    containerd.ctr(&["images", "tag", &image, &pause]);

    let uid = pod_uid(tag % 0x10000 + 0x100);
    let cgroup_parent = format!("/kubepods/besteffort/pod{uid}");
    let mut cgroups = Cgroups::new();
    cgroups.make(&cgroup_parent);
    let sandbox = cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: "shop-real".into(),
            uid: uid.clone(),
            namespace: "prod".into(),
            attempt: 0,
        }),
        // A pod on the host's network keeps the host's name, as kubelet leaves it.
        hostname: String::new(),
        log_directory: dir.join("pod-logs").display().to_string(),
        labels: Default::default(),
        linux: Some(cri::LinuxPodSandboxConfig {
            cgroup_parent: cgroup_parent.clone(),
            security_context: Some(cri::LinuxSandboxSecurityContext {
                namespace_options: Some(cri::NamespaceOption {
                    network: 2,
                    pid: 0,
                    ipc: 0,
                }),
            }),
        }),
    };
    std::fs::create_dir_all(dir.join("pod-logs")).unwrap();
    let answer = containerd.call(
        "RunPodSandbox",
        cri::RunPodSandboxRequest {
            config: Some(sandbox.clone()),
        },
    );
    let pod_id = <cri::RunPodSandboxResponse as prost::Message>::decode(answer)
        .unwrap()
        .pod_sandbox_id;
    struct Pod<'a>(&'a Containerd, String);
    impl Drop for Pod<'_> {
        fn drop(&mut self) {
            let id = cri::PodSandboxId {
                pod_sandbox_id: self.1.clone(),
            };
            let _ = common::fake_cri::call(
                &self.0.socket,
                "StopPodSandbox",
                prost::Message::encode_to_vec(&id),
            );
            let _ = common::fake_cri::call(
                &self.0.socket,
                "RemovePodSandbox",
                prost::Message::encode_to_vec(&id),
            );
        }
    }
    let _pod = Pod(&containerd, pod_id.clone());

    // nginx with sendfile off, labelled as kubelet labels its containers.
    let www = dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    common::write_file(&www.join("blob.bin"), (4 << 20) + 3);
    let port = free_port();
    let conf = containers::write(
        &dir.join("nginx.conf"),
        &containers::nginx_conf(false, port),
    );
    let labels = [
        ("io.kubernetes.container.name", "web"),
        ("io.kubernetes.pod.name", "shop-real"),
        ("io.kubernetes.pod.namespace", "prod"),
        ("io.kubernetes.pod.uid", uid.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let config = cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata {
            name: "web".into(),
            attempt: 0,
        }),
        image: Some(cri::ImageSpec {
            image: image.clone(),
        }),
        command: vec!["/usr/sbin/nginx".into()],
        mounts: vec![
            cri::Mount {
                container_path: "/etc/nginx/nginx.conf".into(),
                host_path: conf.display().to_string(),
                readonly: true,
            },
            cri::Mount {
                container_path: "/srv/www".into(),
                host_path: www.display().to_string(),
                readonly: true,
            },
        ],
        labels,
        log_path: "web.log".into(),
    };
    let answer = containerd.call(
        "CreateContainer",
        cri::CreateContainerRequest {
            pod_sandbox_id: pod_id.clone(),
            config: Some(config),
            sandbox_config: Some(sandbox),
        },
    );
    let container_id = <cri::CreateContainerResponse as prost::Message>::decode(answer)
        .unwrap()
        .container_id;
    containerd.call(
        "StartContainer",
        cri::ContainerId {
            container_id: container_id.clone(),
        },
    );
    containers::wait_for_port(port);

    // By the pod's name, names asked of containerd itself.
    let names = format!("cri={}", containerd.socket.display());
    let (agent, _) = spawn_agent(&[
        "report",
        "--json",
        "--pod",
        "prod/shop-real",
        "--names-from",
        &names,
    ]);
    let mut got = containers::Download::default();
    for _ in 0..2 {
        got.add(containers::download(port, "/blob.bin"));
    }
    let report = stop_agent(agent);
    let processes = report["processes"].as_array().unwrap();
    assert!(!processes.is_empty(), "{report:#}");
    let (mut copied, mut from_file) = (0, 0);
    for p in processes {
        let c = &p["container"];
        assert_eq!(
            c["id"],
            container_id.as_str(),
            "only the pod's container: {p:#}"
        );
        assert_eq!(
            c["runtime"], "cri",
            "kubelet's cgroupfs layout names it by its bare id"
        );
        assert_eq!(
            (&c["name"], &c["pod"], &c["namespace"]),
            (
                &Value::from("web"),
                &Value::from("shop-real"),
                &Value::from("prod")
            )
        );
        assert_eq!(c["pod_uid"], uid.as_str());
        copied += p["copied_bytes"].as_u64().unwrap();
        for s in p["syscalls"].as_object().unwrap().values() {
            from_file += s["fd_kinds"]["source"]["file"].as_u64().unwrap_or(0);
        }
    }
    assert_eq!(from_file, got.body, "{report:#}");
    assert_eq!(
        copied,
        got.request + got.header + 2 * got.body,
        "{report:#}"
    );
    // Where containerd put it: the pod's cgroup and the container's id.
    let cgroup = format!("{cgroup_parent}/{container_id}");
    assert!(
        Path::new(&format!("{}{cgroup}", cgroup2_root().display())).is_dir(),
        "containerd's cgroup {cgroup}"
    );
    eprintln!("containerd's CRI: pod prod/shop-real ({uid}), container web {container_id} at {cgroup}: {copied} bytes copied, exactly");
    drop(_pod);
    drop(containerd);
    let _ = std::fs::remove_dir_all(&dir);
}
