//! `--cgroup PATH`: the cgroup v2 directory's id and depth, as the kernel filter compares them.

use std::{
    os::unix::fs::MetadataExt,
    path::{Component, Path, PathBuf},
};

use anyhow::{bail, Context, Result};

use crate::plan::Cgroup;

/// Where the unified (v2) hierarchy is mounted on systemd machines and most others.
pub const ROOT: &str = "/sys/fs/cgroup";

/// Resolves `path` (absolute, or relative to the cgroup root, e.g. `system.slice/nginx.service`).
pub fn resolve(path: &Path) -> Result<Cgroup> {
    let root = Path::new(ROOT);
    if !root.join("cgroup.controllers").is_file() {
        bail!("no cgroup v2 hierarchy at {ROOT}: --cgroup needs the unified hierarchy");
    }
    let full: PathBuf = if path.is_absolute() {
        path.to_path_buf()
    } else {
        root.join(path)
    };
    let full = full
        .canonicalize()
        .with_context(|| format!("no such cgroup: {}", path.display()))?;
    let relative = full
        .strip_prefix(root)
        .with_context(|| format!("{} is not under {ROOT}", path.display()))?;
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
        if !Path::new(ROOT).join("cgroup.controllers").is_file() {
            eprintln!("SKIPPED: no cgroup v2 hierarchy here");
            return;
        }
        let err = resolve(Path::new("no/such/zerocopy-trace-group")).unwrap_err();
        assert!(
            format!("{err:#}").contains("no such cgroup: no/such/zerocopy-trace-group"),
            "{err:#}"
        );
        let root = resolve(Path::new(ROOT)).unwrap();
        assert_eq!(root.level, 0);
        assert!(resolve(Path::new("/etc")).is_err());
    }
}
