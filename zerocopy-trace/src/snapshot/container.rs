//! The container a process runs in: who runs it and its id, as its cgroup path names them
//! (`ContainerId`, the part every layer can rely on), and the names its runtime gave it when
//! the runtime answered (`ContainerNames`). `Container` is both, as outputs show it.

use std::fmt;

/// The runtime a cgroup path names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Runtime {
    /// Docker (`docker-<id>.scope`, `/docker/<id>`), also under kubelet with cri-dockerd.
    Docker,
    /// containerd's CRI plugin (`cri-containerd-<id>.scope`).
    Containerd,
    /// CRI-O (`crio-<id>.scope`, `crio-<id>`).
    CriO,
    /// A CRI runtime under kubelet's cgroupfs driver, which names the container's cgroup by
    /// its bare id (`/kubepods/besteffort/pod<uid>/<id>`): containerd or cri-dockerd.
    Cri,
    /// Podman (`libpod-<id>.scope`, `/libpod_parent/libpod-<id>`).
    Podman,
    /// A machine registered with systemd-machined (`machine.slice/machine-<name>.scope`):
    /// systemd-nspawn containers (and, the same way, virtual machines).
    Nspawn,
}

impl Runtime {
    /// The name outputs show (`docker`, `containerd`, `cri-o`, `cri`, `podman`,
    /// `systemd-nspawn`).
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Docker => "docker",
            Runtime::Containerd => "containerd",
            Runtime::CriO => "cri-o",
            Runtime::Cri => "cri",
            Runtime::Podman => "podman",
            Runtime::Nspawn => "systemd-nspawn",
        }
    }
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A container as its cgroup path names it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContainerId {
    pub runtime: Runtime,
    /// The runtime's id: 64 hex digits, or for systemd-nspawn the machine's name.
    pub id: String,
    /// The Kubernetes pod's UID (`7c9e6679-7425-40de-944b-e07fc1f90ae7`) when the container
    /// is one of a pod's; empty otherwise.
    pub pod_uid: String,
}

/// How many hex digits of an id are shown where a name is missing (as `docker ps` does).
pub const SHORT_ID: usize = 12;

impl ContainerId {
    /// The id as people read it: the first 12 hex digits (a machine's name whole).
    pub fn short(&self) -> &str {
        if self.runtime == Runtime::Nspawn {
            &self.id
        } else {
            self.id.get(..SHORT_ID).unwrap_or(&self.id)
        }
    }
}

/// What the runtime (or kubelet) calls a container; empty strings where it says nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContainerNames {
    /// The container's name: Docker's and Podman's `--name`, Kubernetes' container name.
    pub name: String,
    /// The pod's name and namespace (Kubernetes only).
    pub pod: String,
    pub namespace: String,
    /// The image it runs, as the runtime names it.
    pub image: String,
}

/// A container and, once a runtime answered, its names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Container {
    pub id: ContainerId,
    pub names: Option<ContainerNames>,
}

impl Container {
    /// Its name when known, else its short id (a systemd-nspawn machine's name is its id).
    pub fn display_name(&self) -> &str {
        match &self.names {
            Some(names) if !names.name.is_empty() => &names.name,
            _ => self.id.short(),
        }
    }

    /// Its pod's name when known, else the pod's UID; empty outside a pod.
    pub fn pod_name(&self) -> &str {
        match &self.names {
            Some(names) if !names.pod.is_empty() => &names.pod,
            _ => &self.id.pod_uid,
        }
    }

    /// Its pod's namespace when known, else empty.
    pub fn namespace(&self) -> &str {
        self.names.as_ref().map_or("", |n| n.namespace.as_str())
    }

    /// Its image when known, else empty.
    pub fn image(&self) -> &str {
        self.names.as_ref().map_or("", |n| n.image.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(runtime: Runtime, id: &str, pod_uid: &str) -> ContainerId {
        ContainerId {
            runtime,
            id: id.into(),
            pod_uid: pod_uid.into(),
        }
    }

    #[test]
    fn names_fall_back_to_ids() {
        let hex = "0934f6b1a335b838525323cd033639ebcc79d524878673b5dba1a1361dcd30ab";
        let mut c = Container {
            id: id(Runtime::Podman, hex, ""),
            names: None,
        };
        assert_eq!(c.display_name(), "0934f6b1a335");
        assert_eq!((c.pod_name(), c.namespace(), c.image()), ("", "", ""));
        c.names = Some(ContainerNames {
            name: "web".into(),
            ..ContainerNames::default()
        });
        assert_eq!(c.display_name(), "web");
        let pod = Container {
            id: id(
                Runtime::Containerd,
                hex,
                "7c9e6679-7425-40de-944b-e07fc1f90ae7",
            ),
            names: Some(ContainerNames::default()),
        };
        assert_eq!(
            pod.display_name(),
            "0934f6b1a335",
            "an empty name is no name"
        );
        assert_eq!(pod.pod_name(), "7c9e6679-7425-40de-944b-e07fc1f90ae7");
        let machine = id(Runtime::Nspawn, "debian-test", "");
        assert_eq!(machine.short(), "debian-test");
        assert_eq!(id(Runtime::Docker, "abc", "").short(), "abc");
        assert_eq!(Runtime::CriO.to_string(), "cri-o");
    }
}
