//! Containers: which one a process runs in, from its cgroup path (`layout`, pure), and what
//! the runtimes call them, from the sources that answer without new privileges: Docker's and
//! Podman's API sockets (`docker`), the CRI socket of containerd or CRI-O (`cri`), kubelet's
//! log directories (`kubelet`). `names` keeps those names in a cache a background thread
//! fills, so the agent's loop never waits for a runtime; `find` turns `--container` and
//! `--pod` into the cgroup the kernel filter traces.

mod cri;
mod docker;
pub mod find;
pub mod helper;
mod kubelet;
pub mod layout;
pub mod names;
mod unix_http;

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

pub use self::unix_http::ApiError;
use crate::snapshot::ContainerNames;

/// A container a source knows, by id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Named {
    pub id: String,
    pub names: ContainerNames,
    /// Its pod's UID when the source says (kubelet's labels); else empty.
    pub pod_uid: String,
}

/// What kind of source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SourceKind {
    Docker,
    Podman,
    Cri,
    KubeletLogs,
}

impl SourceKind {
    pub const ALL: [SourceKind; 4] = [
        SourceKind::Docker,
        SourceKind::Podman,
        SourceKind::Cri,
        SourceKind::KubeletLogs,
    ];

    /// As `--names-from` spells it.
    pub fn name(self) -> &'static str {
        match self {
            SourceKind::Docker => "docker",
            SourceKind::Podman => "podman",
            SourceKind::Cri => "cri",
            SourceKind::KubeletLogs => "kubelet-logs",
        }
    }

    pub fn from_name(name: &str) -> Option<SourceKind> {
        SourceKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Where each is found on a usual machine: the daemons' default sockets (containerd's
    /// also as k3s places it), kubelet's log links.
    pub fn default_paths(self) -> &'static [&'static str] {
        match self {
            SourceKind::Docker => &["/var/run/docker.sock"],
            SourceKind::Podman => &["/run/podman/podman.sock"],
            SourceKind::Cri => &[
                "/run/containerd/containerd.sock",
                "/run/crio/crio.sock",
                "/run/k3s/containerd/containerd.sock",
            ],
            SourceKind::KubeletLogs => &["/var/log/containers"],
        }
    }
}

/// One place to ask.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    pub kind: SourceKind,
    pub path: PathBuf,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.kind.name(), self.path.display())
    }
}

/// Where container names come from (`--names-from`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sources(pub Vec<Source>);

impl Default for Sources {
    /// Every kind at its usual places.
    fn default() -> Sources {
        Sources(
            SourceKind::ALL
                .into_iter()
                .flat_map(|kind| {
                    kind.default_paths().iter().map(move |path| Source {
                        kind,
                        path: PathBuf::from(path),
                    })
                })
                .collect(),
        )
    }
}

impl Sources {
    /// None: containers are shown by id only.
    pub fn none() -> Sources {
        Sources(Vec::new())
    }

    /// `KIND=PATH`, `KIND` (its usual places) or `none`, as `--names-from` takes them; a
    /// list of them replaces the defaults.
    pub fn parse(specs: &[String]) -> Result<Sources, String> {
        let mut sources = Vec::new();
        for spec in specs {
            if spec == "none" {
                continue;
            }
            let (kind, path) = match spec.split_once('=') {
                Some((kind, path)) => (kind, Some(path)),
                None => (spec.as_str(), None),
            };
            let kind = SourceKind::from_name(kind).ok_or_else(|| {
                format!(
                    "`{spec}`: unknown source `{kind}` (one of docker, podman, cri, kubelet-logs, none; e.g. cri=/run/containerd/containerd.sock)"
                )
            })?;
            match path {
                Some("") => return Err(format!("`{spec}`: no path after `=`")),
                Some(path) => sources.push(Source {
                    kind,
                    path: PathBuf::from(path),
                }),
                None => sources.extend(kind.default_paths().iter().map(|p| Source {
                    kind,
                    path: PathBuf::from(p),
                })),
            }
        }
        Ok(Sources(sources))
    }
}

/// Runtimes are listed again at most this often.
pub const RELIST_INTERVAL: Duration = Duration::from_secs(1);

/// How long one source may take to answer.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(2);

/// Asks one source for its containers, within `ANSWER_TIMEOUT`.
pub async fn ask(source: &Source) -> Result<Vec<Named>, ApiError> {
    let asked = async {
        match source.kind {
            SourceKind::Docker | SourceKind::Podman => docker::list(&source.path).await,
            SourceKind::Cri => cri::list(&source.path).await,
            SourceKind::KubeletLogs => kubelet::list(&source.path),
        }
    };
    tokio::time::timeout(ANSWER_TIMEOUT, asked)
        .await
        .unwrap_or_else(|_| {
            Err(ApiError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {} s", ANSWER_TIMEOUT.as_secs()),
            )))
        })
}

/// Every source's answer, in order.
pub type Answers = Vec<(Source, Result<Vec<Named>, ApiError>)>;

/// Every source's answer, in order.
pub async fn ask_all(sources: &Sources) -> Answers {
    let mut answers = Vec::with_capacity(sources.0.len());
    for source in &sources.0 {
        // Skip quickly what is not there at all (most of the usual places on any machine).
        if !Path::new(&source.path).exists() {
            answers.push((
                source.clone(),
                Err(ApiError::Absent(std::io::ErrorKind::NotFound.into())),
            ));
            continue;
        }
        let answer = ask(source).await;
        answers.push((source.clone(), answer));
    }
    answers
}

/// `ask_all` from synchronous code, on a thread of its own (so it works whether or not the
/// caller is inside an async runtime); the thread ends before this returns.
pub fn ask_all_blocking(sources: &Sources) -> Answers {
    let sources = sources.clone();
    let asked = std::thread::Builder::new()
        .name("zct-containers".into())
        .spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map(|runtime| runtime.block_on(ask_all(&sources)))
        });
    match asked.map(|thread| thread.join()) {
        Ok(Ok(Ok(answers))) => answers,
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn names_from() {
        let defaults = Sources::default();
        assert_eq!(defaults.0.len(), 6);
        assert_eq!(
            defaults.0[0],
            Source {
                kind: SourceKind::Docker,
                path: "/var/run/docker.sock".into()
            }
        );
        assert_eq!(Sources::parse(&specs(&["none"])).unwrap(), Sources::none());
        let cri = Sources::parse(&specs(&["cri=/tmp/cri.sock", "podman"])).unwrap();
        assert_eq!(
            cri.0,
            vec![
                Source {
                    kind: SourceKind::Cri,
                    path: "/tmp/cri.sock".into()
                },
                Source {
                    kind: SourceKind::Podman,
                    path: "/run/podman/podman.sock".into()
                }
            ]
        );
        assert_eq!(
            Sources::parse(&specs(&["kubelet-logs"])).unwrap().0[0].path,
            Path::new("/var/log/containers")
        );
        assert!(Sources::parse(&specs(&["rkt"]))
            .unwrap_err()
            .contains("unknown source `rkt`"));
        assert!(Sources::parse(&specs(&["cri="])).is_err());
        assert_eq!(
            Source {
                kind: SourceKind::Cri,
                path: "/x.sock".into()
            }
            .to_string(),
            "cri (/x.sock)"
        );
    }

    #[test]
    fn absent_sources_answer_absent_quickly() {
        let sources = Sources::parse(&specs(&[
            "docker=/nonexistent/d.sock",
            "kubelet-logs=/nonexistent/containers",
        ]))
        .unwrap();
        let answers = ask_all_blocking(&sources);
        assert_eq!(answers.len(), 2);
        assert!(answers
            .iter()
            .all(|(_, a)| a.as_ref().is_err_and(ApiError::is_absent)));
    }
}
