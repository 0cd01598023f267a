//! The Container Runtime Interface (CRI, `runtime.v1`), which containerd and CRI-O serve to
//! kubelet over gRPC: `ListContainers` gives each container its Kubernetes name, its pod's
//! name, namespace and UID (the labels kubelet sets) and its image. Only the messages and
//! fields read here are declared (field numbers as in cri-api's `api.proto`); protobuf skips
//! the rest.

use std::collections::HashMap;
use std::path::Path;

use prost::Message;

use super::{docker::kubernetes_labels, unix_http, unix_http::ApiError, Named};
use crate::snapshot::ContainerNames;

/// The gRPC method.
pub const LIST_CONTAINERS: &str = "/runtime.v1.RuntimeService/ListContainers";

/// `ListContainersRequest`: no filter, so every container.
#[derive(Clone, PartialEq, Message)]
pub struct ListContainersRequest {}

#[derive(Clone, PartialEq, Message)]
pub struct ListContainersResponse {
    #[prost(message, repeated, tag = "1")]
    pub containers: Vec<CriContainer>,
}

/// `Container`.
#[derive(Clone, PartialEq, Message)]
pub struct CriContainer {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, tag = "2")]
    pub pod_sandbox_id: String,
    #[prost(message, optional, tag = "3")]
    pub metadata: Option<ContainerMetadata>,
    #[prost(message, optional, tag = "4")]
    pub image: Option<ImageSpec>,
    #[prost(map = "string, string", tag = "8")]
    pub labels: HashMap<String, String>,
}

/// `ContainerMetadata`.
#[derive(Clone, PartialEq, Message)]
pub struct ContainerMetadata {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(uint32, tag = "2")]
    pub attempt: u32,
}

/// `ImageSpec`.
#[derive(Clone, PartialEq, Message)]
pub struct ImageSpec {
    #[prost(string, tag = "1")]
    pub image: String,
}

/// Every container the runtime knows.
pub async fn list(socket: &Path) -> Result<Vec<Named>, ApiError> {
    let request = ListContainersRequest {}.encode_to_vec();
    let answer = unix_http::grpc(socket, LIST_CONTAINERS, &request).await?;
    parse_list(&answer)
}

/// A `ListContainersResponse` message.
pub fn parse_list(message: &[u8]) -> Result<Vec<Named>, ApiError> {
    let response =
        ListContainersResponse::decode(message).map_err(|e| ApiError::Decode(e.to_string()))?;
    Ok(response
        .containers
        .into_iter()
        .filter(|c| !c.id.is_empty())
        .map(|c| {
            let label = |key: &str| c.labels.get(key).cloned().unwrap_or_default();
            let own = c
                .metadata
                .as_ref()
                .map(|m| m.name.clone())
                .unwrap_or_default();
            let k8s = label(kubernetes_labels::CONTAINER_NAME);
            Named {
                names: ContainerNames {
                    name: if k8s.is_empty() { own } else { k8s },
                    pod: label(kubernetes_labels::POD_NAME),
                    namespace: label(kubernetes_labels::POD_NAMESPACE),
                    image: c
                        .image
                        .as_ref()
                        .map(|i| i.image.clone())
                        .unwrap_or_default(),
                },
                pod_uid: label(kubernetes_labels::POD_UID),
                id: c.id,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_with_kubelet_labels() {
        let response = ListContainersResponse {
            containers: vec![
                CriContainer {
                    id: "ca97".into(),
                    pod_sandbox_id: "5f3c".into(),
                    metadata: Some(ContainerMetadata {
                        name: "web".into(),
                        attempt: 0,
                    }),
                    image: Some(ImageSpec {
                        image: "docker.io/library/nginx:1.27".into(),
                    }),
                    labels: HashMap::from([
                        ("io.kubernetes.pod.name".into(), "shop-0".into()),
                        ("io.kubernetes.pod.namespace".into(), "prod".into()),
                        (
                            "io.kubernetes.pod.uid".into(),
                            "7c9e6679-7425-40de-944b-e07fc1f90ae7".into(),
                        ),
                    ]),
                },
                CriContainer {
                    id: String::new(),
                    ..CriContainer::default()
                },
            ],
        };
        let named = parse_list(&response.encode_to_vec()).unwrap();
        assert_eq!(named.len(), 1, "an entry without an id is left out");
        let n = &named[0];
        assert_eq!(n.id, "ca97");
        assert_eq!(
            n.names,
            ContainerNames {
                name: "web".into(),
                pod: "shop-0".into(),
                namespace: "prod".into(),
                image: "docker.io/library/nginx:1.27".into(),
            }
        );
        assert_eq!(n.pod_uid, "7c9e6679-7425-40de-944b-e07fc1f90ae7");
        assert!(parse_list(&[0xff, 0xff]).is_err());
        assert!(parse_list(&[]).unwrap().is_empty());
    }
}
