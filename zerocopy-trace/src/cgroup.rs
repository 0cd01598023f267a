//! `--cgroup PATH`: the cgroup v2 directory's id and depth, as the kernel filter compares them.

use std::{
    os::unix::fs::MetadataExt,
    path::{Component, Path, PathBuf},
};

use anyhow::{bail, Context, Result};

use crate::{plan::Cgroup, procfs};

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
