//! Docker's API, which Podman serves too (its Docker-compatible endpoints): the list of
//! containers, each with its id, name, image and labels. Under kubelet (cri-dockerd) the
//! labels carry the pod and the Kubernetes container name.

use std::path::Path;

use serde_json::Value;

use super::{unix_http, unix_http::ApiError, Named};
use crate::snapshot::ContainerNames;

/// The API version asked for: Docker 20.10's, which Docker since 1.13 and Podman 4 serve.
const LIST: &str = "/v1.41/containers/json?all=true";

/// Every container the daemon knows, running or not.
pub async fn list(socket: &Path) -> Result<Vec<Named>, ApiError> {
    let body = unix_http::get(socket, LIST).await?;
    parse_list(&body)
}

/// The labels kubelet puts on every container it starts.
pub mod kubernetes_labels {
    pub const POD_NAME: &str = "io.kubernetes.pod.name";
    pub const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
    pub const POD_UID: &str = "io.kubernetes.pod.uid";
    pub const CONTAINER_NAME: &str = "io.kubernetes.container.name";
}

/// A `GET /containers/json` answer: `[{"Id", "Names": ["/name"], "Image", "Labels"}...]`.
pub fn parse_list(body: &[u8]) -> Result<Vec<Named>, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| ApiError::Decode(e.to_string()))?;
    let list = value
        .as_array()
        .ok_or_else(|| ApiError::Decode("not a list of containers".into()))?;
    Ok(list.iter().filter_map(parse_one).collect())
}

fn parse_one(c: &Value) -> Option<Named> {
    let id = c["Id"].as_str()?.to_string();
    let label = |key: &str| c["Labels"][key].as_str().unwrap_or_default().to_string();
    let own_name = c["Names"]
        .as_array()
        .and_then(|names| names.first())
        .and_then(Value::as_str)
        .map(|n| n.trim_start_matches('/').to_string())
        .unwrap_or_default();
    let k8s_name = label(kubernetes_labels::CONTAINER_NAME);
    Some(Named {
        id,
        names: ContainerNames {
            name: if k8s_name.is_empty() {
                own_name
            } else {
                k8s_name
            },
            pod: label(kubernetes_labels::POD_NAME),
            namespace: label(kubernetes_labels::POD_NAMESPACE),
            image: c["Image"].as_str().unwrap_or_default().to_string(),
        },
        pod_uid: label(kubernetes_labels::POD_UID),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_and_podman_lists() {
        // Shortened from Docker 20.10's and Podman 4.3's answers on the test machine.
        let docker = br#"[{"Id":"123c967a9ea3754492c7766122110ef1e984778194bbe2ffe7ac22af5fe0ed7e","Names":["/zc-docker-nginx"],"Image":"zc/nginx-rootfs:bookworm","ImageID":"sha256:7a6e","Command":"/usr/sbin/nginx","State":"running","Labels":{}}]"#;
        let podman = br#"[{"Id":"0934f6b1a335b838525323cd033639ebcc79d524878673b5dba1a1361dcd30ab","Names":["/zc-nginx-sendfile-on"],"Image":"","ImageID":"sha256:","Labels":null,"State":"running"},{"Names":["/no-id"]}]"#;
        let d = parse_list(docker).unwrap();
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].names.name, "zc-docker-nginx");
        assert_eq!(d[0].names.image, "zc/nginx-rootfs:bookworm");
        assert_eq!((d[0].names.pod.as_str(), d[0].pod_uid.as_str()), ("", ""));
        let p = parse_list(podman).unwrap();
        assert_eq!(p.len(), 1, "an entry without an id is left out");
        assert_eq!(p[0].names.name, "zc-nginx-sendfile-on");
        assert!(parse_list(b"{}").is_err());
        assert!(parse_list(b"not json").is_err());
        assert!(parse_list(b"[]").unwrap().is_empty());
    }

    #[test]
    fn kubelet_labels_name_the_pod() {
        let body = br#"[{"Id":"ab","Names":["/k8s_web_shop-7d4_default_7c9e6679_0"],"Image":"nginx","Labels":{"io.kubernetes.container.name":"web","io.kubernetes.pod.name":"shop-7d4","io.kubernetes.pod.namespace":"default","io.kubernetes.pod.uid":"7c9e6679-7425-40de-944b-e07fc1f90ae7"}}]"#;
        let n = &parse_list(body).unwrap()[0];
        assert_eq!(
            (
                n.names.name.as_str(),
                n.names.pod.as_str(),
                n.names.namespace.as_str()
            ),
            ("web", "shop-7d4", "default")
        );
        assert_eq!(n.pod_uid, "7c9e6679-7425-40de-944b-e07fc1f90ae7");
    }
}
