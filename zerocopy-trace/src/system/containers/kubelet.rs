//! Names from kubelet's log directories, which need no API at all: kubelet links every
//! container's log as `/var/log/containers/<pod>_<namespace>_<container>-<id>.log` and keeps
//! each pod's logs in `/var/log/pods/<namespace>_<pod>_<uid>/`. Only the directories are
//! listed; no log is opened, and the links are not followed.

use std::{collections::HashMap, path::Path};

use super::{unix_http::ApiError, Named};
use crate::snapshot::ContainerNames;

/// Where kubelet keeps the pods' log directories, beside `/var/log/containers`.
pub fn pods_dir(containers: &Path) -> std::path::PathBuf {
    containers.with_file_name("pods")
}

/// Every container kubelet has a log link for, with its pod's UID where its pod directory
/// is there too.
pub fn list(containers: &Path) -> Result<Vec<Named>, ApiError> {
    let names = read_names(containers)?;
    let pods = read_names(&pods_dir(containers)).unwrap_or_default();
    Ok(parse(&names, &pods))
}

fn read_names(dir: &Path) -> Result<Vec<String>, ApiError> {
    let entries = std::fs::read_dir(dir).map_err(|err| match err.kind() {
        std::io::ErrorKind::NotFound => ApiError::Absent(err),
        std::io::ErrorKind::PermissionDenied => ApiError::Denied,
        _ => ApiError::Io(err),
    })?;
    Ok(entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect())
}

/// The containers named by log links (`links`), their pods' UIDs from the pod directories'
/// names (`pods`).
pub fn parse(links: &[String], pods: &[String]) -> Vec<Named> {
    // `<namespace>_<pod>_<uid>`: none of the three may hold an underscore.
    let uids: HashMap<(&str, &str), &str> = pods
        .iter()
        .filter_map(|dir| {
            let mut parts = dir.split('_');
            let (namespace, pod, uid) = (parts.next()?, parts.next()?, parts.next()?);
            parts.next().is_none().then_some(((namespace, pod), uid))
        })
        .collect();
    links
        .iter()
        .filter_map(|link| {
            let stem = link.strip_suffix(".log")?;
            let (head, id) = stem.rsplit_once('-')?;
            if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            let mut parts = head.splitn(3, '_');
            let (pod, namespace, container) = (parts.next()?, parts.next()?, parts.next()?);
            Some(Named {
                id: id.to_string(),
                names: ContainerNames {
                    name: container.to_string(),
                    pod: pod.to_string(),
                    namespace: namespace.to_string(),
                    image: String::new(),
                },
                pod_uid: uids
                    .get(&(namespace, pod))
                    .map(|u| u.to_string())
                    .unwrap_or_default(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn log_links_name_pods_and_containers() {
        let id = "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb";
        let links = strings(&[
            &format!("shop-7d4f9c-x2x8k_prod_web-{id}.log"),
            &format!(
                "coredns-5d78c9869d-abcde_kube-system_coredns-{}.log",
                &id[..63]
            ),
            "README",
            &format!("no-namespace_web-{id}.log"),
        ]);
        let pods = strings(&[
            "prod_shop-7d4f9c-x2x8k_7c9e6679-7425-40de-944b-e07fc1f90ae7",
            "bad_dir",
        ]);
        let named = parse(&links, &pods);
        assert_eq!(named.len(), 1, "{named:?}");
        let n = &named[0];
        assert_eq!(n.id, id);
        assert_eq!(
            (
                n.names.name.as_str(),
                n.names.pod.as_str(),
                n.names.namespace.as_str()
            ),
            ("web", "shop-7d4f9c-x2x8k", "prod")
        );
        assert_eq!(n.pod_uid, "7c9e6679-7425-40de-944b-e07fc1f90ae7");
        // Without the pod directory: names, no UID.
        assert_eq!(parse(&links, &[])[0].pod_uid, "");
    }

    #[test]
    fn a_missing_directory_is_absent() {
        let err = list(Path::new("/nonexistent/zerocopy-trace/containers")).unwrap_err();
        assert!(err.is_absent(), "{err}");
    }
}
