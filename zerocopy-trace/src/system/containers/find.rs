//! `--container ID|NAME` and `--pod UID|NAME`, resolved to the cgroup the kernel filter
//! traces: the container's own cgroup (its processes are in it or below it) or the pod's.
//! Ids are found by walking the cgroup v2 hierarchy and reading each path (`layout`); names
//! are asked of the runtimes once, and matched to the ids they name.

use anyhow::{bail, Result};

use super::{
    layout,
    names::{list_now, Listing},
    Named, Sources,
};
use crate::{snapshot::ContainerId, system::cgroup};

/// A cgroup found for a filter, and what it is, for the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// As /proc/PID/cgroup writes it: `/libpod_parent/libpod-<id>`.
    pub path: String,
    pub what: String,
}

/// Every container cgroup below the v2 root: the outermost one of each id (where its
/// runtime put it; its processes may sit in children of it).
fn container_cgroups() -> Result<Vec<(String, ContainerId)>> {
    let root = cgroup::v2_root()?;
    let mut found: Vec<(String, ContainerId)> = Vec::new();
    cgroup::walk(&root, |_, path| {
        if let Some(id) = layout::identify(path) {
            found.push((path.to_string(), id));
        }
    });
    Ok(outermost(found))
}

fn outermost(mut found: Vec<(String, ContainerId)>) -> Vec<(String, ContainerId)> {
    found.sort_by(|a, b| a.0.len().cmp(&b.0.len()).then(a.0.cmp(&b.0)));
    let mut kept: Vec<(String, ContainerId)> = Vec::new();
    for (path, id) in found {
        if !kept.iter().any(|(_, k)| k.id == id.id) {
            kept.push((path, id));
        }
    }
    kept
}

/// The cgroup of container `wanted`: an id, a unique prefix of one, a machine's name, or a
/// name a runtime gave it.
pub fn container(wanted: &str, sources: &Sources) -> Result<Found> {
    let candidates = container_cgroups()?;
    if let Some(found) = match_id(wanted, &candidates)? {
        return Ok(found);
    }
    match_name(wanted, &candidates, &list_now(sources))
}

/// Why no runtime could be asked, for an error: nothing answered, and what failed.
fn unanswered(listing: &Listing) -> String {
    if listing.problems.is_empty() {
        "no runtime answered to look up names (see --names-from)".to_string()
    } else {
        format!(
            "no runtime answered to look up names ({}; see --names-from)",
            listing.problems.join("; ")
        )
    }
}

fn describe(path: &str, id: &ContainerId, name: Option<&str>) -> Found {
    let what = match name {
        Some(name) => format!("{} container {name} ({})", id.runtime, id.short()),
        None => format!("{} container {}", id.runtime, id.short()),
    };
    Found {
        path: path.to_string(),
        what,
    }
}

/// By id (or prefix, or machine name); `None` when nothing matches.
fn match_id(wanted: &str, candidates: &[(String, ContainerId)]) -> Result<Option<Found>> {
    if let Some((path, id)) = candidates.iter().find(|(_, id)| id.id == wanted) {
        return Ok(Some(describe(path, id, None)));
    }
    let hex = !wanted.is_empty() && wanted.bytes().all(|b| b.is_ascii_hexdigit());
    if !hex {
        return Ok(None);
    }
    let prefixed: Vec<&(String, ContainerId)> = candidates
        .iter()
        .filter(|(_, id)| id.id.starts_with(wanted))
        .collect();
    match prefixed[..] {
        [] => Ok(None),
        [(path, id)] => Ok(Some(describe(path, id, None))),
        _ => bail!(
            "--container {wanted} matches {} containers ({}): give more of the id",
            prefixed.len(),
            prefixed
                .iter()
                .map(|(_, id)| id.short())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// By a name the runtimes gave.
fn match_name(
    wanted: &str,
    candidates: &[(String, ContainerId)],
    listing: &Listing,
) -> Result<Found> {
    let named = &listing.named;
    let matching: Vec<(&(String, ContainerId), &Named)> = named
        .iter()
        .filter(|n| n.names.name == wanted)
        .filter_map(|n| {
            candidates
                .iter()
                .find(|(_, id)| id.id == n.id)
                .map(|c| (c, n))
        })
        .collect();
    match matching[..] {
        [((path, id), n)] => Ok(describe(path, id, Some(&n.names.name))),
        [] if !listing.answered => bail!(
            "no running container with the id {wanted}, and {}",
            unanswered(listing)
        ),
        [] => bail!(
            "no running container named or with the id {wanted} ({} container cgroups here, {} containers named by the runtimes)",
            candidates.len(),
            named.len()
        ),
        _ => bail!(
            "--container {wanted} names {} running containers ({}): give its id",
            matching.len(),
            matching
                .iter()
                .map(|((_, id), n)| if n.names.pod.is_empty() {
                    id.short().to_string()
                } else {
                    format!("{} in pod {}/{}", id.short(), n.names.namespace, n.names.pod)
                })
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The cgroup of pod `wanted`: its UID (or a unique prefix), its name, or
/// `namespace/name`.
pub fn pod(wanted: &str, sources: &Sources) -> Result<Found> {
    let root = cgroup::v2_root()?;
    let mut pods: Vec<(String, String)> = Vec::new();
    cgroup::walk(&root, |_, path| {
        if let Some(uid) = layout::pod_cgroup(path) {
            pods.push((path.to_string(), uid));
        }
    });
    if let Some(found) = match_pod_uid(wanted, &pods)? {
        return Ok(found);
    }
    let listing = list_now(sources);
    let containers = if listing.named.is_empty() {
        Vec::new()
    } else {
        container_cgroups()?
    };
    match_pod_name(wanted, &pods, &listing, &containers)
}

fn pod_found(path: &str, uid: &str, name: Option<&str>) -> Found {
    Found {
        path: path.to_string(),
        what: match name {
            Some(name) => format!("pod {name} ({uid})"),
            None => format!("pod {uid}"),
        },
    }
}

fn match_pod_uid(wanted: &str, pods: &[(String, String)]) -> Result<Option<Found>> {
    let matching: Vec<&(String, String)> = pods
        .iter()
        .filter(|(_, uid)| uid.starts_with(wanted))
        .collect();
    if let Some((path, uid)) = pods.iter().find(|(_, uid)| uid == wanted) {
        return Ok(Some(pod_found(path, uid, None)));
    }
    let uid_like = !wanted.is_empty() && wanted.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    match matching[..] {
        [(path, uid)] if uid_like => Ok(Some(pod_found(path, uid, None))),
        [_, _, ..] if uid_like => bail!(
            "--pod {wanted} matches {} pods: give more of the UID",
            matching.len()
        ),
        _ => Ok(None),
    }
}

fn match_pod_name(
    wanted: &str,
    pods: &[(String, String)],
    listing: &Listing,
    containers: &[(String, ContainerId)],
) -> Result<Found> {
    let named = &listing.named;
    let (namespace, name) = match wanted.split_once('/') {
        Some((namespace, name)) => (Some(namespace), name),
        None => (None, wanted),
    };
    let mut uids: Vec<(String, String)> = named
        .iter()
        .filter(|n| n.names.pod == name && namespace.is_none_or(|ns| n.names.namespace == ns))
        .filter_map(|n| {
            // The source's UID, else the one the container's cgroup names.
            let uid = if n.pod_uid.is_empty() {
                containers
                    .iter()
                    .find(|(_, id)| id.id == n.id)
                    .map(|(_, id)| id.pod_uid.clone())
                    .filter(|uid| !uid.is_empty())?
            } else {
                n.pod_uid.clone()
            };
            Some((uid, format!("{}/{}", n.names.namespace, n.names.pod)))
        })
        .collect();
    uids.sort();
    uids.dedup();
    match &uids[..] {
        [(uid, shown)] => match pods.iter().find(|(_, u)| u == uid) {
            Some((path, _)) => Ok(pod_found(path, uid, Some(shown))),
            None => bail!("pod {shown} ({uid}) has no cgroup here: is it running on this node?"),
        },
        [] if !listing.answered => bail!(
            "no pod with the UID {wanted}, and {} (pod names come from the CRI socket or kubelet's logs)",
            unanswered(listing)
        ),
        [] => bail!(
            "no pod named or with the UID {wanted} on this node ({} pod cgroups here)",
            pods.len()
        ),
        _ => bail!(
            "--pod {wanted} names {} pods ({}): give namespace/name or the UID",
            uids.len(),
            uids.iter()
                .map(|(_, shown)| shown.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{ContainerNames, Runtime};

    const UID: &str = "7c9e6679-7425-40de-944b-e07fc1f90ae7";

    fn hex(c: char) -> String {
        std::iter::repeat_n(c, 64).collect()
    }

    fn candidates() -> Vec<(String, ContainerId)> {
        let paths = [
            format!("/libpod_parent/libpod-{}", hex('a')),
            format!(
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/crio-{}.scope",
                UID.replace('-', "_"),
                hex('b')
            ),
            format!(
                "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/crio-{}.scope/container",
                UID.replace('-', "_"),
                hex('b')
            ),
            format!("/docker/{}b", &hex('a')[..63]),
            "/machine.slice/machine-web.scope/payload".to_string(),
        ];
        outermost(
            paths
                .iter()
                .filter_map(|p| layout::identify(p).map(|id| (p.clone(), id)))
                .collect(),
        )
    }

    fn answered(named: Vec<Named>) -> Listing {
        Listing {
            named,
            answered: true,
            problems: Vec::new(),
        }
    }

    fn entry(id: &str, name: &str, pod: &str, namespace: &str) -> Named {
        Named {
            id: id.into(),
            names: ContainerNames {
                name: name.into(),
                pod: pod.into(),
                namespace: namespace.into(),
                image: String::new(),
            },
            pod_uid: String::new(),
        }
    }

    #[test]
    fn containers_by_id_prefix_and_machine_name() {
        let c = candidates();
        assert_eq!(c.len(), 4, "the crun child is its container's: {c:?}");
        let crio = match_id(&hex('b'), &c).unwrap().unwrap();
        assert!(crio.path.ends_with(".scope"), "the outermost: {crio:?}");
        assert_eq!(crio.what, "cri-o container bbbbbbbbbbbb");
        let machine = match_id("web", &c).unwrap().unwrap();
        assert_eq!(machine.path, "/machine.slice/machine-web.scope/payload");
        let err = match_id("aaa", &c).unwrap_err().to_string();
        assert!(err.contains("matches 2 containers"), "{err}");
        assert_eq!(
            match_id("bbbb", &c).unwrap().unwrap().path,
            crio.path,
            "a unique prefix"
        );
        assert_eq!(match_id("nginx", &c).unwrap(), None, "a name is not an id");
        assert_eq!(match_id("cccc", &c).unwrap(), None);
    }

    #[test]
    fn containers_by_name() {
        let c = candidates();
        let named = answered(vec![
            entry(&hex('a'), "zc-nginx-on", "", ""),
            entry(&hex('b'), "web", "shop-0", "prod"),
            entry(&hex('f'), "web", "gone", "prod"),
        ]);
        let on = match_name("zc-nginx-on", &c, &named).unwrap();
        assert_eq!(on.what, "podman container zc-nginx-on (aaaaaaaaaaaa)");
        assert_eq!(
            match_name("web", &c, &named).unwrap().what,
            "cri-o container web (bbbbbbbbbbbb)",
            "a name whose other container has no cgroup here is not ambiguous"
        );
        let err = match_name("nope", &c, &named).unwrap_err().to_string();
        assert!(
            err.contains("no running container named or with the id nope"),
            "{err}"
        );
        let err = match_name("nope", &c, &Listing::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("no runtime answered"), "{err}");
        let refused = Listing {
            problems: vec!["cri (/x.sock): permission denied".into()],
            ..Listing::default()
        };
        let err = match_name("nope", &c, &refused).unwrap_err().to_string();
        assert!(
            err.contains("(cri (/x.sock): permission denied; see --names-from)"),
            "{err}"
        );
        let err = match_name("nope", &c, &answered(vec![]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no running container named or with the id nope"),
            "an empty answer is an answer: {err}"
        );
        let twice = answered(vec![
            entry(&hex('a'), "web", "", ""),
            entry(&hex('b'), "web", "shop-0", "prod"),
        ]);
        let err = match_name("web", &c, &twice).unwrap_err().to_string();
        assert!(err.contains("names 2 running containers"), "{err}");
        assert!(err.contains("bbbbbbbbbbbb in pod prod/shop-0"), "{err}");
    }

    #[test]
    fn pods_by_uid_and_name() {
        let pods = vec![
            (
                format!(
                    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice",
                    UID.replace('-', "_")
                ),
                UID.to_string(),
            ),
            (
                "/kubepods/pod11111111-2222-3333-4444-555555555555".to_string(),
                "11111111-2222-3333-4444-555555555555".to_string(),
            ),
        ];
        assert_eq!(match_pod_uid(UID, &pods).unwrap().unwrap().path, pods[0].0);
        assert_eq!(
            match_pod_uid("1111", &pods).unwrap().unwrap().path,
            pods[1].0
        );
        assert_eq!(match_pod_uid("shop-0", &pods).unwrap(), None);
        let c = candidates();
        // The source gives no UID: the container's cgroup does.
        let named = answered(vec![entry(&hex('b'), "web", "shop-0", "prod")]);
        let found = match_pod_name("shop-0", &pods, &named, &c).unwrap();
        assert_eq!(found.path, pods[0].0);
        assert_eq!(found.what, format!("pod prod/shop-0 ({UID})"));
        assert!(match_pod_name("prod/shop-0", &pods, &named, &c).is_ok());
        assert!(match_pod_name("dev/shop-0", &pods, &named, &c).is_err());
        let err = match_pod_name("shop-0", &pods, &Listing::default(), &c)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no runtime answered"), "{err}");
        assert!(c
            .iter()
            .any(|(_, id)| id.runtime == Runtime::CriO && id.pod_uid == UID));
    }
}
