//! Which processes to count, as the command line names them, resolved against the running
//! machine: pids to their thread groups (and, unless `--no-children`, the descendants they
//! have: a server's master and its workers), names to the processes running under them now
//! (those that exec under them later are caught in the kernel), a cgroup path to its id, a
//! container or a pod to its cgroup. What was resolved is said in one line once attached
//! (`Described`).

use std::{
    collections::{BTreeSet, HashMap},
    path::PathBuf,
};

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
    /// The `--pid` processes whose existing descendants are traced too (none with
    /// `--no-children`): found once the pids are registered, so that none forked in between is
    /// missed (`descendants`).
    pub descendants_of: Vec<u32>,
    pub scope: Scope,
    /// What is traced, in words.
    pub described: Described,
}

/// What a trace covers, for the line that says it is attached.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Described {
    /// `--pid`, as thread groups.
    pub pids: Vec<u32>,
    /// Their descendants found running at attach.
    pub descendants: usize,
    pub comms: Vec<String>,
    /// The cgroup traced, as named: `cgroup PATH`, or `container NAME (cgroup PATH)`.
    pub cgroup: Option<String>,
    /// The command `run` started.
    pub command: Option<u32>,
    pub follow_children: bool,
}

impl Described {
    /// `whole machine`, or each target joined by `, `, then whether children forked later are
    /// followed: `pid 812 + 2 descendants, comm nginx; new children followed`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(pid) = self.command {
            parts.push(format!("command pid {pid}"));
        }
        if !self.pids.is_empty() {
            let pids: Vec<String> = self.pids.iter().map(u32::to_string).collect();
            let noun = if self.pids.len() == 1 { "pid" } else { "pids" };
            let mut text = format!("{noun} {}", pids.join(" "));
            if self.follow_children {
                let plural = if self.descendants == 1 { "" } else { "s" };
                text.push_str(&format!(" + {} descendant{plural}", self.descendants));
            }
            parts.push(text);
        }
        if !self.comms.is_empty() {
            parts.push(format!("comm {}", self.comms.join(" ")));
        }
        parts.extend(self.cgroup.clone());
        if parts.is_empty() {
            return "whole machine".to_string();
        }
        let children = if self.cgroup.is_some() && parts.len() == 1 {
            // Everything in the cgroup is traced, children included, wherever they come from.
            ""
        } else if self.follow_children {
            "; new children followed"
        } else {
            "; new children not followed"
        };
        format!("{}{children}", parts.join(", "))
    }
}

/// The descendants of `roots` among `processes` (pid, parent pid), each once, in pid order;
/// the roots themselves are not among them. A process whose parent died was adopted by another
/// (init or a subreaper), and is no descendant any more.
pub fn descendants(roots: &[u32], processes: &[(u32, u32)]) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for &(pid, ppid) in processes {
        if pid != ppid {
            children.entry(ppid).or_default().push(pid);
        }
    }
    let roots: BTreeSet<u32> = roots.iter().copied().collect();
    let mut found = BTreeSet::new();
    let mut frontier: Vec<u32> = roots.iter().copied().collect();
    while let Some(pid) = frontier.pop() {
        for &child in children.get(&pid).into_iter().flatten() {
            if !roots.contains(&child) && found.insert(child) {
                frontier.push(child);
            }
        }
    }
    found.into_iter().collect()
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
    /// `--pod` resolves to (asking the runtimes in `names` for names); and it in words.
    fn cgroup_path(&self, names: &Sources) -> Result<Option<(PathBuf, String)>> {
        let found = match (&self.container, &self.pod) {
            (Some(container), _) => find::container(container, names)?,
            (None, Some(pod)) => find::pod(pod, names)?,
            (None, None) => {
                return Ok(self
                    .cgroup
                    .clone()
                    .map(|path| (path.clone(), format!("cgroup {}", path.display()))))
            }
        };
        log::info!("tracing {}: cgroup {}", found.what, found.path);
        let described = format!("{} (cgroup {})", found.what, found.path);
        // Relative to the v2 root, as `--cgroup` takes it.
        Ok(Some((
            PathBuf::from(found.path.trim_start_matches('/')),
            described,
        )))
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
        let named = pids.clone();
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
        let cgroup_path = self.cgroup_path(names)?;
        let scope = Scope {
            filtered: self.filtered() || extra_pid.is_some(),
            follow_children: self.follow_children,
            comms: self.comms.clone(),
            cgroup: cgroup_path
                .as_ref()
                .map(|(path, _)| cgroup::resolve(path))
                .transpose()?,
            hook,
        };
        let described = Described {
            pids: named.clone(),
            descendants: 0,
            comms: self.comms.clone(),
            cgroup: cgroup_path.map(|(_, described)| described),
            command: extra_pid,
            follow_children: self.follow_children,
        };
        Ok(Resolved {
            pids,
            descendants_of: if self.follow_children {
                named
            } else {
                Vec::new()
            },
            scope,
            described,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descendants_are_the_whole_subtree_once() {
        // nginx: master 10, workers 11 and 12; 12 forked a helper 13; 20 is unrelated, 21 its
        // child; 1 is init (its own parent 0), 30 was adopted by init.
        let processes = [
            (1, 0),
            (10, 1),
            (11, 10),
            (12, 10),
            (13, 12),
            (20, 1),
            (21, 20),
            (30, 1),
        ];
        assert_eq!(descendants(&[10], &processes), vec![11, 12, 13]);
        assert_eq!(descendants(&[12], &processes), vec![13]);
        // A root that is also a descendant of another root is not counted as a descendant.
        assert_eq!(descendants(&[10, 12], &processes), vec![11, 13]);
        assert_eq!(descendants(&[10, 20], &processes), vec![11, 12, 13, 21]);
        assert!(descendants(&[13], &processes).is_empty());
        assert!(descendants(&[], &processes).is_empty());
        assert!(descendants(&[10], &[]).is_empty());
        // A pid that names itself as parent (pid 0's own line) is no loop.
        assert!(descendants(&[0], &[(0, 0)]).is_empty());
    }

    #[test]
    fn the_scope_in_words() {
        assert_eq!(Described::default().describe(), "whole machine");
        let master = Described {
            pids: vec![812],
            descendants: 2,
            follow_children: true,
            ..Described::default()
        };
        assert_eq!(
            master.describe(),
            "pid 812 + 2 descendants; new children followed"
        );
        let one = Described {
            descendants: 1,
            ..master.clone()
        };
        assert_eq!(
            one.describe(),
            "pid 812 + 1 descendant; new children followed"
        );
        let alone = Described {
            pids: vec![812, 9],
            descendants: 0,
            follow_children: false,
            ..Described::default()
        };
        assert_eq!(alone.describe(), "pids 812 9; new children not followed");
        let names = Described {
            comms: vec!["nginx".into(), "java".into()],
            follow_children: true,
            ..Described::default()
        };
        assert_eq!(names.describe(), "comm nginx java; new children followed");
        let container = Described {
            cgroup: Some("container web (cgroup /libpod_parent/libpod-ab12)".into()),
            follow_children: true,
            ..Described::default()
        };
        assert_eq!(
            container.describe(),
            "container web (cgroup /libpod_parent/libpod-ab12)"
        );
        let command = Described {
            command: Some(4242),
            follow_children: true,
            ..Described::default()
        };
        assert_eq!(
            command.describe(),
            "command pid 4242; new children followed"
        );
        let both = Described {
            pids: vec![5],
            comms: vec!["cp".into()],
            cgroup: Some("cgroup system.slice/x.service".into()),
            follow_children: true,
            ..Described::default()
        };
        assert_eq!(
            both.describe(),
            "pid 5 + 0 descendants, comm cp, cgroup system.slice/x.service; new children followed"
        );
    }
}
