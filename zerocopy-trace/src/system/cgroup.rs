//! cgroups (v2): `--cgroup PATH` resolved to the id and depth the kernel filter compares, and
//! the other way round, a process's cgroup path and the systemd unit it names, which counts are
//! grouped under.

use std::{
    collections::HashMap,
    os::unix::fs::MetadataExt,
    path::{Component, Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};

use super::procfs;

/// A cgroup v2 directory as the kernel names it: its id (the directory's inode number) and its
/// depth below the hierarchy's root.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cgroup {
    pub id: u64,
    pub level: u32,
}

/// Where the unified (v2) hierarchy is mounted: `/sys/fs/cgroup` on most machines,
/// `/sys/fs/cgroup/unified` on hybrid ones. The kernel's cgroup ids are those of this hierarchy.
pub fn v2_root() -> Result<PathBuf> {
    procfs::mount_points(&procfs::mounts(), "cgroup2")
        .into_iter()
        .next()
        .context(
            "no cgroup v2 hierarchy is mounted: --cgroup needs one (mount -t cgroup2 none /sys/fs/cgroup)",
        )
}

/// Resolves `path` (absolute, or relative to the v2 root, e.g. `system.slice/nginx.service`).
pub fn resolve(path: &Path) -> Result<Cgroup> {
    let root = v2_root()?;
    let root = root.as_path();
    let full = within(root, path)?;
    let full = full
        .canonicalize()
        .with_context(|| format!("no such cgroup: {}", path.display()))?;
    let relative = full.strip_prefix(root).with_context(|| {
        format!(
            "{} is not under the cgroup v2 hierarchy at {}",
            path.display(),
            root.display()
        )
    })?;
    if !full.join("cgroup.procs").is_file() {
        bail!(
            "{} is not a cgroup directory (no cgroup.procs)",
            full.display()
        );
    }
    let id = std::fs::metadata(&full)
        .with_context(|| format!("reading {}", full.display()))?
        .ino();
    Ok(Cgroup {
        id,
        level: depth(relative),
    })
}

/// `path` (absolute, or relative to the hierarchy's `root`) as a path under `root`, judged
/// from its text alone: a path outside the hierarchy, or with `..`, is refused before anything
/// is looked up, so an agent that can read any directory (CAP_DAC_READ_SEARCH, a setcap'd
/// binary run by anyone) does not tell whether a path elsewhere exists.
fn within(root: &Path, path: &Path) -> Result<PathBuf> {
    if path.components().any(|c| matches!(c, Component::ParentDir)) {
        bail!("{}: a cgroup path has no `..`", path.display());
    }
    if path.is_absolute() && !path.starts_with(root) {
        bail!(
            "{} is not under the cgroup v2 hierarchy at {}",
            path.display(),
            root.display()
        );
    }
    Ok(root.join(path))
}

/// Depth below the root: `""` is 0, `system.slice/nginx.service` is 2.
fn depth(relative: &Path) -> u32 {
    relative
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .count() as u32
}

/// Suffixes of the systemd unit types that hold processes (services, scopes) or group them
/// (slices, and the units that run helper processes).
const UNIT_SUFFIXES: [&str; 6] = [".service", ".scope", ".slice", ".socket", ".mount", ".swap"];

/// The systemd unit a cgroup path belongs to: its innermost component named like a unit
/// (`/system.slice/nginx.service/worker` -> `nginx.service`); empty when none is (the root,
/// a container runtime's own tree).
pub fn unit_of(path: &str) -> &str {
    path.rsplit('/')
        .find(|part| UNIT_SUFFIXES.iter().any(|suffix| part.ends_with(suffix)))
        .unwrap_or("")
}

/// The v2 cgroup path of a live process (`/system.slice/nginx.service`), from the `0::` line
/// of /proc/PID/cgroup; `None` when it is gone or has no v2 membership.
pub fn of_process(pid: u32) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    v2_path_in(&text).map(str::to_string)
}

/// The path on the `0::` line of a /proc/PID/cgroup file.
fn v2_path_in(text: &str) -> Option<&str> {
    text.lines().find_map(|line| line.strip_prefix("0::"))
}

/// Most cgroup directories one walk of the hierarchy reads.
const MAX_WALKED: usize = 65_536;
/// An unknown id starts a new walk at most this often: ids of cgroups removed before the walk
/// stay unknown, and must not make every exit walk the tree.
const WALK_INTERVAL: Duration = Duration::from_secs(1);

/// Cgroup ids (as the kernel reports them: the inode number of the cgroup's directory) to
/// paths, learned by walking the v2 hierarchy when an id is not known yet.
#[derive(Default)]
pub struct CgroupPaths {
    root: Option<PathBuf>,
    by_id: HashMap<u64, String>,
    walked_at: Option<Instant>,
}

impl CgroupPaths {
    pub fn new() -> CgroupPaths {
        CgroupPaths {
            root: v2_root().ok(),
            ..CgroupPaths::default()
        }
    }

    /// The path of cgroup `id`, walking the hierarchy again if it is new and the last walk is
    /// old enough; `None` if it cannot be found (removed already, or no v2 hierarchy).
    pub fn path_of(&mut self, id: u64) -> Option<&str> {
        let stale = self
            .walked_at
            .is_none_or(|at| at.elapsed() >= WALK_INTERVAL);
        if !self.by_id.contains_key(&id) && stale {
            self.walk();
        }
        self.by_id.get(&id).map(String::as_str)
    }

    fn walk(&mut self) {
        self.walked_at = Some(Instant::now());
        let Some(root) = self.root.clone() else {
            return;
        };
        self.by_id.clear();
        let by_id = &mut self.by_id;
        walk(&root, |id, path| {
            by_id.insert(id, path.to_string());
        });
    }
}

/// Visits every cgroup directory below `root` (the v2 root) and `root` itself, at most
/// `MAX_WALKED`, with its id and its path as /proc/PID/cgroup writes it (`/`,
/// `/system.slice/nginx.service`).
pub fn walk(root: &Path, mut visit: impl FnMut(u64, &str)) {
    let mut pending = vec![(root.to_path_buf(), String::new())];
    let mut walked = 0;
    while let Some((dir, path)) = pending.pop() {
        if walked >= MAX_WALKED {
            break;
        }
        let Ok(meta) = std::fs::metadata(&dir) else {
            continue;
        };
        walked += 1;
        visit(meta.ino(), if path.is_empty() { "/" } else { &path });
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                let name = entry.file_name().to_string_lossy().into_owned();
                pending.push((entry.path(), format!("{path}/{name}")));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn paths_outside_the_hierarchy_are_refused_unseen() {
        let root = Path::new("/sys/fs/cgroup");
        assert_eq!(
            within(root, Path::new("system.slice/nginx.service")).unwrap(),
            Path::new("/sys/fs/cgroup/system.slice/nginx.service")
        );
        assert_eq!(
            within(root, Path::new("/sys/fs/cgroup/user.slice")).unwrap(),
            Path::new("/sys/fs/cgroup/user.slice")
        );
        for (path, needle) in [
            ("/root/x", "is not under the cgroup v2 hierarchy"),
            ("/root/absent", "is not under the cgroup v2 hierarchy"),
            ("../../root/x", "has no `..`"),
            ("/sys/fs/cgroup/../../root", "has no `..`"),
        ] {
            let message = within(root, Path::new(path)).unwrap_err().to_string();
            assert!(message.contains(needle), "{path}: {message}");
        }
    }

    use super::*;

    #[test]
    fn units_of_paths() {
        assert_eq!(unit_of("/system.slice/nginx.service"), "nginx.service");
        assert_eq!(
            unit_of("/system.slice/nginx.service/worker"),
            "nginx.service"
        );
        assert_eq!(
            unit_of("/user.slice/user-1000.slice/session-3.scope"),
            "session-3.scope"
        );
        assert_eq!(unit_of("/system.slice"), "system.slice");
        assert_eq!(unit_of("/"), "");
        assert_eq!(unit_of(""), "");
        assert_eq!(unit_of("/docker/0123abcd"), "");
    }

    #[test]
    fn the_v2_line_of_proc_cgroup() {
        let hybrid = "9:name=systemd:/\n4:memory:/x\n0::/system.slice/a.service\n";
        assert_eq!(v2_path_in(hybrid), Some("/system.slice/a.service"));
        assert_eq!(v2_path_in("0::/\n"), Some("/"));
        assert_eq!(v2_path_in("4:memory:/x\n"), None);
        assert_eq!(v2_path_in(""), None);
    }

    #[test]
    fn this_process_cgroup_is_found_by_its_id() {
        let Some(path) = of_process(std::process::id()) else {
            eprintln!("SKIPPED: no cgroup v2 membership here");
            return;
        };
        let Ok(root) = v2_root() else {
            eprintln!("SKIPPED: no cgroup v2 hierarchy here");
            return;
        };
        let dir = root.join(path.trim_start_matches('/'));
        let id = std::fs::metadata(&dir).unwrap().ino();
        let mut paths = CgroupPaths::new();
        assert_eq!(paths.path_of(id), Some(path.as_str()));
        // An unknown id does not walk again within the interval, and is not found.
        assert_eq!(paths.path_of(u64::MAX), None);
    }

    #[test]
    fn depths() {
        assert_eq!(depth(Path::new("")), 0);
        assert_eq!(depth(Path::new("system.slice")), 1);
        assert_eq!(depth(Path::new("system.slice/nginx.service")), 2);
    }

    #[test]
    fn missing_cgroups_are_named() {
        let Ok(root) = v2_root() else {
            eprintln!("SKIPPED: no cgroup v2 hierarchy here");
            return;
        };
        let err = resolve(Path::new("no/such/zerocopy-trace-group")).unwrap_err();
        assert!(
            format!("{err:#}").contains("no such cgroup: no/such/zerocopy-trace-group"),
            "{err:#}"
        );
        assert_eq!(resolve(&root).unwrap().level, 0);
        assert!(resolve(Path::new("/etc")).is_err());
    }
}
