//! Kubernetes without a cluster. The layouts: real processes (the workload helper, moving
//! exactly known bytes) placed in cgroups named as kubelet names them, with the systemd and
//! the cgroupfs driver, for Guaranteed, Burstable and BestEffort pods of containerd and CRI-O
//! (and Docker's, Podman's and systemd-nspawn's systemd layouts beside them), must resolve to
//! the right runtime, container id and pod UID, and count exactly; a fake CRI socket gives
//! the names (container, pod, namespace) and nothing else. `--pod` and `--container` by
//! name and by id trace exactly their processes. Then the DaemonSet: the Helm chart renders
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
        for dir in self.made.iter().rev() {
            let _ = std::fs::remove_dir(dir);
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
