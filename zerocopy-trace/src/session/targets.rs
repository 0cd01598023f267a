//! Which processes to count, as the command line names them, resolved against the running
//! machine: pids to their thread groups, names to the processes running under them now (those
//! that exec under them later are caught in the kernel), a cgroup path to its id, a container
//! or a pod to its cgroup.

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::{
    kernel::plan::{Hook, Scope},
    system::{
        cgroup,
        containers::{find, Sources},
        procfs,
    },
};

/// Which processes to count; the whole machine when nothing is named.
#[derive(Clone, Debug, Default)]
pub struct Targets {
    pub pids: Vec<u32>,
    pub comms: Vec<String>,
    /// A cgroup v2 directory: every process in it or below it.
    pub cgroup: Option<PathBuf>,
    /// A container (id or name): every process in its cgroup or below.
    pub container: Option<String>,
    /// A Kubernetes pod (UID or name): every process in its cgroup or below.
    pub pod: Option<String>,
    pub follow_children: bool,
}

/// The targets resolved: the processes to register with the kernel filter now, and the scope
/// the kernel programs are configured with.
pub struct Resolved {
    pub pids: Vec<u32>,
    pub scope: Scope,
}

impl Targets {
    fn filtered(&self) -> bool {
        !self.pids.is_empty()
            || !self.comms.is_empty()
            || self.cgroup.is_some()
            || self.container.is_some()
            || self.pod.is_some()
    }

    /// The cgroup the kernel filter traces: `--cgroup` as given, or the one `--container` or
    /// `--pod` resolves to (asking the runtimes in `names` for names).
    fn cgroup_path(&self, names: &Sources) -> Result<Option<PathBuf>> {
        let found = match (&self.container, &self.pod) {
            (Some(container), _) => find::container(container, names)?,
            (None, Some(pod)) => find::pod(pod, names)?,
            (None, None) => return Ok(self.cgroup.clone()),
        };
        log::info!("tracing {}: cgroup {}", found.what, found.path);
        // Relative to the v2 root, as `--cgroup` takes it.
        Ok(Some(PathBuf::from(found.path.trim_start_matches('/'))))
    }

    /// Resolves against /proc and the cgroup hierarchy (and the container runtimes in
    /// `names`, for a container or pod named by name). `extra_pid` (the stopped child of
    /// `run`) is traced too.
    pub fn resolve(&self, extra_pid: Option<u32>, hook: Hook, names: &Sources) -> Result<Resolved> {
        let mut pids = self
            .pids
            .iter()
            .map(|&pid| {
                procfs::process_info(pid)
                    .map(|info| info.tgid)
                    .with_context(|| format!("no such process: {pid}"))
            })
            .collect::<Result<Vec<u32>>>()?;
        for name in &self.comms {
            let matching: Vec<u32> = procfs::all_processes()
                .into_iter()
                .filter(|(pid, info)| info.comm == *name && info.tgid == *pid)
                .map(|(pid, _)| pid)
                .collect();
            if matching.is_empty() {
                log::info!("no process named {name:?} yet: it is traced from its exec on");
            }
            pids.extend(matching);
        }
        pids.extend(extra_pid);
        let scope = Scope {
            filtered: self.filtered() || extra_pid.is_some(),
            follow_children: self.follow_children,
            comms: self.comms.clone(),
            cgroup: self
                .cgroup_path(names)?
                .as_deref()
                .map(cgroup::resolve)
                .transpose()?,
            hook,
        };
        Ok(Resolved { pids, scope })
    }
}
