//! Which container a cgroup (v2) path belongs to, read from the path alone: the names the
//! runtimes and kubelet give their cgroups, under the systemd and the cgroupfs drivers. Pure:
//! a path in, an identity out; nothing is read from the machine.
//!
//! The layouts, innermost component first (the container's own cgroup may have children:
//! CRI-O with crun puts the processes in `crio-<id>.scope/container`, systemd-nspawn in
//! `machine-<name>.scope/payload`, and a container may run a systemd of its own):
//!
//! | runtime | systemd driver | cgroupfs driver |
//! |---|---|---|
//! | Docker | `/system.slice/docker-<id>.scope` | `/docker/<id>` |
//! | containerd (CRI) | `…/kubepods-…-pod<uid_>.slice/cri-containerd-<id>.scope` | `/kubepods/<qos>/pod<uid>/<id>` |
//! | CRI-O | `…/kubepods-…-pod<uid_>.slice/crio-<id>.scope` | `/kubepods/<qos>/pod<uid>/crio-<id>` |
//! | Podman | `/machine.slice/libpod-<id>.scope` | `/libpod_parent/libpod-<id>` |
//! | systemd-nspawn | `/machine.slice/machine-<escaped name>.scope` | - |
//!
//! kubelet's pod cgroups: `kubepods-pod<uid>.slice` (Guaranteed, directly under
//! `kubepods.slice`), `kubepods-burstable-pod<uid>.slice`, `kubepods-besteffort-pod<uid>.slice`
//! (in their QoS slices), the UID's dashes written as underscores (systemd escapes `-`);
//! with cgroupfs `/kubepods/pod<uid>`, `/kubepods/burstable/pod<uid>`,
//! `/kubepods/besteffort/pod<uid>`. containerd with the cgroupfs driver under a systemd
//! kubelet leaves `kubepods-…-pod<uid_>.slice:cri-containerd:<id>` as one component. Conmon's
//! cgroups (`libpod-conmon-<id>.scope`, `crio-conmon-<id>.scope`) are not the container's.
//!
//! Where the names come from (read, not copied): kubelet's `pkg/kubelet/cm` (the QoS and pod
//! cgroups, and systemd's escaping of `-`), containerd's CRI `getCgroupsPath`, runc's systemd
//! unit names (`<prefix>-<name>.scope`), CRI-O's `internal/config/cgmgr`, moby's
//! `daemon/oci_linux.go`, Podman's `libpod` (`libpod-<id>`, `/libpod_parent`), and systemd's
//! `machine_start_scope`. The paths in the tests are ones real processes had on the project's
//! machines (Podman, Docker and containerd by themselves, the others placed there with runc).

use crate::snapshot::{ContainerId, Runtime};

/// The container whose cgroup `path` is or is below, and its pod; `None` outside any.
pub fn identify(path: &str) -> Option<ContainerId> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    for (i, part) in parts.iter().enumerate().rev() {
        let above = &parts[..i];
        if let Some((runtime, id, pod_in_part)) = container_of(part, above) {
            let pod_uid = pod_in_part
                .or_else(|| above.iter().rev().find_map(|p| pod_of_component(p, above)))
                .unwrap_or_default();
            return Some(ContainerId {
                runtime,
                id,
                pod_uid,
            });
        }
    }
    None
}

/// The pod UID when the last component of `path` is a pod's own cgroup (not a container's
/// below it): `…/kubepods-besteffort-pod<uid_>.slice`, `/kubepods/pod<uid>`.
pub fn pod_cgroup(path: &str) -> Option<String> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let (last, above) = parts.split_last()?;
    if last.contains(':') {
        return None;
    }
    pod_of_component(last, above)
}

/// A container's id in one component, given the components above it; the pod UID too when
/// the component carries it (`…pod<uid_>.slice:cri-containerd:<id>`).
fn container_of(part: &str, above: &[&str]) -> Option<(Runtime, String, Option<String>)> {
    // `slice:prefix:id`: a systemd-style cgroupsPath taken literally by a cgroupfs driver.
    if let [slice, prefix, id] = part.split(':').collect::<Vec<_>>()[..] {
        let runtime = prefixed_runtime(prefix)?;
        return is_hex_id(id).then(|| (runtime, id.to_string(), pod_of_slice(slice)));
    }
    let name = part.strip_suffix(".scope").unwrap_or(part);
    if let Some((prefix, id)) = name.rsplit_once('-') {
        if let Some(runtime) = prefixed_runtime(prefix) {
            return is_hex_id(id).then(|| (runtime, id.to_string(), None));
        }
    }
    if let Some(machine) = part
        .strip_prefix("machine-")
        .and_then(|p| p.strip_suffix(".scope"))
    {
        if above.last() == Some(&"machine.slice") && !machine.is_empty() {
            return Some((Runtime::Nspawn, unescape_unit(machine), None));
        }
    }
    if is_hex_id(part) {
        if above.last() == Some(&"docker") {
            return Some((Runtime::Docker, part.to_string(), None));
        }
        if above.iter().any(|p| is_kubepods(p)) {
            return Some((Runtime::Cri, part.to_string(), None));
        }
    }
    None
}

/// The runtime a leaf prefix names (`docker-<id>.scope`, `cri-containerd:<id>`...).
fn prefixed_runtime(prefix: &str) -> Option<Runtime> {
    match prefix {
        "docker" => Some(Runtime::Docker),
        "cri-containerd" => Some(Runtime::Containerd),
        "crio" => Some(Runtime::CriO),
        "libpod" => Some(Runtime::Podman),
        _ => None,
    }
}

/// kubelet's root: `kubepods` (cgroupfs) or `kubepods.slice` (systemd).
fn is_kubepods(part: &str) -> bool {
    part == "kubepods" || part == "kubepods.slice"
}

/// The pod UID a component names, if it is a pod's cgroup below kubelet's root.
fn pod_of_component(part: &str, above: &[&str]) -> Option<String> {
    if part.ends_with(".slice") {
        return pod_of_slice(part);
    }
    // cgroupfs: `pod<uid>` somewhere below `kubepods`.
    let uid = part.strip_prefix("pod")?;
    (above.iter().any(|p| is_kubepods(p)) && is_uid(uid)).then(|| uid.to_string())
}

/// `kubepods-pod<uid_>.slice`, `kubepods-<qos>-pod<uid_>.slice` -> the UID with dashes.
fn pod_of_slice(slice: &str) -> Option<String> {
    let name = slice.strip_suffix(".slice")?;
    if !name.starts_with("kubepods-") {
        return None;
    }
    let (_, escaped) = name.rsplit_once("-pod")?;
    let uid = escaped.replace('_', "-");
    is_uid(&uid).then_some(uid)
}

/// 64 lowercase hex digits: the ids Docker, containerd, CRI-O and Podman give containers.
fn is_hex_id(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A pod UID as Kubernetes writes it: 8-4-4-4-12 hex digits.
fn is_uid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Undoes systemd's unit-name escaping: `zc\x2dtest` -> `zc-test` (any `\xNN`).
fn unescape_unit(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = bytes
            .get(i..i + 4)
            .filter(|b| b[0] == b'\\' && b[1] == b'x')
            .and_then(|b| std::str::from_utf8(&b[2..]).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: &str = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
    const UID_: &str = "7c9e6679_7425_40de_944b_e07fc1f90ae7";

    fn hex(seed: char) -> String {
        std::iter::repeat_n(seed, 64).collect()
    }

    fn check(path: &str, runtime: Runtime, id: &str, pod_uid: &str) {
        assert_eq!(
            identify(path),
            Some(ContainerId {
                runtime,
                id: id.into(),
                pod_uid: pod_uid.into()
            }),
            "{path}"
        );
    }

    /// Every path below was a real process's `0::` line on the test machine (the runtimes'
    /// own, or runc placing a container at kubelet's path).
    #[test]
    fn docker_and_podman() {
        let docker = "123c967a9ea3754492c7766122110ef1e984778194bbe2ffe7ac22af5fe0ed7e";
        check(&format!("/docker/{docker}"), Runtime::Docker, docker, "");
        let sd = "cd0aa9856147b6c5b4ff2b7dfee5da20aa38253099ef1b4a64aced233c9afe29";
        check(
            &format!("/system.slice/docker-{sd}.scope"),
            Runtime::Docker,
            sd,
            "",
        );
        let podman = "0934f6b1a335b838525323cd033639ebcc79d524878673b5dba1a1361dcd30ab";
        check(
            &format!("/libpod_parent/libpod-{podman}"),
            Runtime::Podman,
            podman,
            "",
        );
        let podman_sd = "aaa9402664f1a41f40ebbc52c9993eb66aeb366602958fdfaa283b71e64db123";
        check(
            &format!("/machine.slice/libpod-{podman_sd}.scope"),
            Runtime::Podman,
            podman_sd,
            "",
        );
        // A private cgroup namespace shows the path relative to the agent's own cgroup.
        check(&format!("/../libpod-{podman}"), Runtime::Podman, podman, "");
        // Conmon's cgroups, and the runtimes' parents, are no container.
        assert_eq!(identify("/libpod_parent/conmon"), None);
        assert_eq!(
            identify(&format!("/machine.slice/libpod-conmon-{podman}.scope")),
            None
        );
        assert_eq!(identify("/docker"), None);
    }

    #[test]
    fn kubelet_systemd_driver() {
        let c = "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb";
        check(
            &format!("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice/cri-containerd-{c}.scope"),
            Runtime::Containerd,
            c,
            UID,
        );
        let crio = "3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d";
        check(
            &format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/crio-{crio}.scope"),
            Runtime::CriO,
            crio,
            UID,
        );
        let guaranteed = "2e7d2c03a9507ae265ecf5b5356885a53393a2029d241394997265a1a25aefc6";
        check(
            &format!("/kubepods.slice/kubepods-pod{UID_}.slice/cri-containerd-{guaranteed}.scope"),
            Runtime::Containerd,
            guaranteed,
            UID,
        );
        // CRI-O with crun: the processes sit one level below the container's scope.
        check(
            &format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_}.slice/crio-{crio}.scope/container"),
            Runtime::CriO,
            crio,
            UID,
        );
        // Docker under kubelet (cri-dockerd) with the systemd driver.
        check(
            &format!("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice/docker-{c}.scope"),
            Runtime::Docker,
            c,
            UID,
        );
        // containerd's cgroupfs driver under a systemd kubelet: one component.
        check(
            &format!("/system.slice/containerd.service/kubepods-burstable-pod{UID_}.slice:cri-containerd:{c}"),
            Runtime::Containerd,
            c,
            UID,
        );
        // The pod's own cgroup and the QoS slices are no container.
        let pod = format!(
            "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_}.slice"
        );
        assert_eq!(identify(&pod), None);
        assert_eq!(pod_cgroup(&pod), Some(UID.to_string()));
        assert_eq!(
            pod_cgroup(&format!("/kubepods.slice/kubepods-pod{UID_}.slice")),
            Some(UID.to_string())
        );
        assert_eq!(
            pod_cgroup("/kubepods.slice/kubepods-besteffort.slice"),
            None
        );
        assert_eq!(
            pod_cgroup(&format!("{pod}/cri-containerd-{c}.scope")),
            None,
            "a container's cgroup is not its pod's"
        );
    }

    #[test]
    fn kubelet_cgroupfs_driver() {
        let be = "18ac3e7343f016890c510e93f935261169d9e3f565436429830faf0934f4f8e4";
        check(
            &format!("/kubepods/besteffort/pod{UID}/{be}"),
            Runtime::Cri,
            be,
            UID,
        );
        let g = "3f79bb7b435b05321651daefd374cdc681dc06faa65e374e38337b88ca046dea";
        check(&format!("/kubepods/pod{UID}/{g}"), Runtime::Cri, g, UID);
        let crio = "252f10c83610ebca1a059c0bae8255eba2f95be4d1d7bcfa89d7248a82d9f111";
        check(
            &format!("/kubepods/burstable/pod{UID}/crio-{crio}"),
            Runtime::CriO,
            crio,
            UID,
        );
        assert_eq!(
            pod_cgroup(&format!("/kubepods/burstable/pod{UID}")),
            Some(UID.to_string())
        );
        assert_eq!(pod_cgroup(&format!("/elsewhere/pod{UID}")), None);
        assert_eq!(identify(&format!("/kubepods/burstable/pod{UID}")), None);
    }

    #[test]
    fn systemd_nspawn() {
        check(
            r"/machine.slice/machine-zc\x2dtest.scope/payload",
            Runtime::Nspawn,
            "zc-test",
            "",
        );
        check(
            "/machine.slice/machine-debian.scope",
            Runtime::Nspawn,
            "debian",
            "",
        );
        // A systemd inside the container: the machine is still the container.
        check(
            "/machine.slice/machine-web.scope/payload/system.slice/nginx.service",
            Runtime::Nspawn,
            "web",
            "",
        );
        assert_eq!(identify("/system.slice/machine-x.scope"), None);
        assert_eq!(identify("/machine.slice"), None);
    }

    #[test]
    fn the_innermost_container_wins_and_plain_paths_are_none() {
        let (outer, inner) = (hex('a'), hex('b'));
        check(
            &format!("/docker/{outer}/docker/{inner}"),
            Runtime::Docker,
            &inner,
            "",
        );
        for path in [
            "",
            "/",
            "/system.slice/nginx.service",
            "/user.slice/user-1000.slice/session-3.scope",
            "/process_api/ef405e3a",
            // Hex ids outside any runtime's tree, ids of the wrong length or case.
            &format!("/elsewhere/{outer}"),
            &format!("/docker/{}", &outer[..63]),
            &format!("/docker/{}", outer.to_uppercase()),
            &format!("/system.slice/docker-{}.scope", &outer[..12]),
            &format!("/system.slice/podman-{outer}.scope"),
        ] {
            assert_eq!(identify(path), None, "{path}");
        }
    }

    #[test]
    fn uids_and_escapes() {
        assert!(is_uid(UID));
        assert!(!is_uid(UID_));
        assert!(!is_uid("7c9e6679-7425-40de-944b"));
        assert!(!is_uid("7c9e667g-7425-40de-944b-e07fc1f90ae7"));
        assert_eq!(unescape_unit(r"a\x2db\x2dc"), "a-b-c");
        assert_eq!(unescape_unit(r"trailing\x2"), r"trailing\x2");
        assert_eq!(unescape_unit(r"bad\xzz"), r"bad\xzz");
        assert_eq!(pod_of_slice("kubepods-besteffort.slice"), None);
        assert_eq!(pod_of_slice(&format!("other-pod{UID_}.slice")), None);
    }
}
