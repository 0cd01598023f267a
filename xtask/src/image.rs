//! The agent's OCI image, without any registry: the Debian package (`dist`) installed into
//! the Debian root filesystem the container tests use (`containers`), by
//! `contrib/kubernetes/Containerfile`, with Podman. `cargo xtask image` builds it as
//! `localhost/zerocopy-trace:<version>` and saves it as an OCI archive that any node's
//! runtime imports (`ctr -n k8s.io images import`, `podman load`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use dev_support::apt::Apt;
use dev_support::cmd;

use crate::{containers, dist};

/// The image's name (a local one: no registry is involved).
pub const NAME: &str = "localhost/zerocopy-trace";

/// Podman's settings for building on these machines (as the tests run it): runc, cgroupfs,
/// ulimits within the hard limits.
const CONTAINERS_CONF: &str =
    "[containers]\ndefault_ulimits = [\"nofile=1024:1024\", \"nproc=4096:4096\"]\n\
[engine]\ncgroup_manager = \"cgroupfs\"\nruntime = \"runc\"\nevents_logger = \"file\"\n";

/// `<workspace>/target/image`.
pub fn dir(workspace: &Path) -> PathBuf {
    workspace.join("target").join("image")
}

/// Builds the image from `deb` as `NAME:tag`; returns its name.
pub fn build(workspace: &Path, apt: &mut Apt, deb: &Path, tag: &str) -> Result<String> {
    let rootfs = containers::runtimes_and_rootfs(workspace, apt)?.join("rootfs");
    let dir = dir(workspace);
    let context = dir.join("context");
    fs::create_dir_all(&context).with_context(|| format!("creating {}", context.display()))?;
    cmd::run(
        Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .args(["--numeric-owner", "--exclude=./var/lib/apt/lists/*"])
            .args(["--exclude=./var/cache/apt/*", "-cf"])
            .arg(context.join("rootfs.tar"))
            .arg("."),
    )?;
    fs::copy(deb, context.join("zerocopy-trace.deb"))
        .with_context(|| format!("copying {}", deb.display()))?;
    let conf = dir.join("containers.conf");
    fs::write(&conf, CONTAINERS_CONF)?;
    let name = format!("{NAME}:{tag}");
    cmd::run(
        Command::new("podman")
            .env("CONTAINERS_CONF", &conf)
            .args([
                "build",
                "--ulimit",
                "nofile=1024:1024",
                "--ulimit",
                "nproc=4096:4096",
            ])
            .args(["--network", "none", "-t", &name, "-f"])
            .arg(workspace.join("contrib/kubernetes/Containerfile"))
            .arg(&context),
    )
    .context("building the agent's image with Podman")?;
    // The context is 200 MB of root filesystem: not kept.
    let _ = fs::remove_dir_all(&context);
    Ok(name)
}

/// `cargo xtask image`: the package, the image, and its OCI archive; returns the archive.
pub fn image(workspace: &Path, apt: &mut Apt) -> Result<PathBuf> {
    let deb = dist::dist_prepared(workspace, apt)?;
    let version = dist::agent_version(workspace)?;
    let name = build(workspace, apt, &deb, &version)?;
    let archive = dir(workspace).join(format!("zerocopy-trace_{version}.oci.tar"));
    let _ = fs::remove_file(&archive);
    cmd::run(
        Command::new("podman")
            .args(["save", "--format", "oci-archive", "-o"])
            .arg(&archive)
            .arg(&name),
    )?;
    eprintln!("xtask: built {name}");
    Ok(archive)
}
