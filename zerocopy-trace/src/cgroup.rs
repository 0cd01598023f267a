//! `--cgroup PATH`: the cgroup v2 directory's id and depth, as the kernel filter compares them.

use std::{
    os::unix::fs::MetadataExt,
    path::{Component, Path, PathBuf},
};

use anyhow::{bail, Context, Result};

use crate::plan::Cgroup;

/// Where the unified (v2) hierarchy is mounted: `/sys/fs/cgroup` on most machines,
/// `/sys/fs/cgroup/unified` on hybrid ones. The kernel's cgroup ids are those of this hierarchy.
pub fn v2_root() -> Result<PathBuf> {
    let mounts =
        std::fs::read_to_string("/proc/self/mounts").context("reading /proc/self/mounts")?;
    v2_root_in(&mounts).context(
        "no cgroup v2 hierarchy is mounted: --cgroup needs one (mount -t cgroup2 none /sys/fs/cgroup)",
    )
}

/// The first `cgroup2` mount point in a mounts table.
pub(crate) fn v2_root_in(mounts: &str) -> Option<PathBuf> {
    mounts.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let (_, target, kind) = (fields.next()?, fields.next()?, fields.next()?);
        (kind == "cgroup2").then(|| PathBuf::from(target))
    })
}

/// Resolves `path` (absolute, or relative to the v2 root, e.g. `system.slice/nginx.service`).
pub fn resolve(path: &Path) -> Result<Cgroup> {
    let root = v2_root()?;
    let root = root.as_path();
    let full: PathBuf = if path.is_absolute() {
        path.to_path_buf()
    } else {
        root.join(path)
    };
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

/// Depth below the root: `""` is 0, `system.slice/nginx.service` is 2.
fn depth(relative: &Path) -> u32 {
    relative
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .count() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depths() {
        assert_eq!(depth(Path::new("")), 0);
        assert_eq!(depth(Path::new("system.slice")), 1);
        assert_eq!(depth(Path::new("system.slice/nginx.service")), 2);
    }

    #[test]
    fn finds_the_v2_mount() {
        let hybrid = "cgroup /sys/fs/cgroup/cpu cgroup rw 0 0\ncgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n";
        assert_eq!(
            v2_root_in(hybrid),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        assert_eq!(
            v2_root_in("cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n"),
            Some(PathBuf::from("/sys/fs/cgroup"))
        );
        assert_eq!(v2_root_in("proc /proc proc rw 0 0\n"), None);
        assert_eq!(v2_root_in(""), None);
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
