//! Booting a kernel with virtme-ng over the host's root filesystem: the host packages it needs
//! (QEMU, busybox, kmod; installed with apt where missing), virtme-ng itself (from PyPI into a
//! venv under `target/vm/venv`), the scratch disk, and the `vng` command.
//!
//! Always QEMU's software CPU (TCG): this machine's `/dev/kvm` cannot boot Debian's kernels.
//! Under TCG `vng` exits 255 whatever the guest did, so its exit code is ignored; only a
//! timeout (`timeout`'s 124) is read from it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use dev_support::apt::Apt;
use dev_support::cmd;

use super::guest::SCRATCH_SERIAL;

/// The virtme-ng release, pinned: its command line and guest init are what this module drives.
pub const VIRTME_NG_VERSION: &str = "1.42";

/// The scratch disk's size: sparse, so only what the tests write takes space.
const SCRATCH_BYTES: u64 = 8 << 30;

/// Online CPUs in every guest; `--possible-cpus` adds hot-pluggable ones beyond them.
pub const ONLINE_CPUS: u16 = 2;

/// The programs virtme-ng and the harness run on the host, and the Debian packages that bring
/// them.
const HOST_TOOLS: [(&str, &str); 4] = [
    ("qemu-system-x86_64", "qemu-system-x86"),
    ("busybox", "busybox-static"),
    ("depmod", "kmod"),
    ("mkfs.ext4", "e2fsprogs"),
];

/// Installs the host packages that are missing, then virtme-ng; returns the venv's `bin`.
pub fn ensure(workspace: &Path, apt: &mut Apt) -> Result<PathBuf> {
    let missing: Vec<&str> = HOST_TOOLS
        .iter()
        .filter(|(program, _)| find_program(program).is_none())
        .map(|(_, package)| *package)
        .collect();
    if !missing.is_empty() {
        apt.install_without_recommends(
            &missing,
            "booting kernels in QEMU (cargo xtask test --kernel)",
        )?;
    }
    ensure_venv(&workspace.join("target").join("vm").join("venv"))
}

/// `program` on PATH or in the sbin directories a user's PATH may lack.
fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// virtme-ng in `venv` (made with `python3 -m venv`), unless its stamp says it is there.
fn ensure_venv(venv: &Path) -> Result<PathBuf> {
    let bin = venv.join("bin");
    let stamp = venv.join("virtme-ng.version");
    if bin.join("vng").is_file()
        && fs::read_to_string(&stamp).is_ok_and(|s| s.trim() == VIRTME_NG_VERSION)
    {
        return Ok(bin);
    }
    eprintln!(
        "xtask: installing virtme-ng {VIRTME_NG_VERSION} (PyPI) into {}",
        venv.display()
    );
    cmd::run(
        Command::new("python3")
            .args(["-m", "venv", "--clear"])
            .arg(venv),
    )
    .context("making a Python venv for virtme-ng (python3 with venv)")?;
    cmd::run(
        Command::new(bin.join("pip"))
            .args(["install", "--quiet"])
            .arg(format!("virtme-ng=={VIRTME_NG_VERSION}")),
    )
    .context("installing virtme-ng from PyPI")?;
    fs::write(&stamp, format!("{VIRTME_NG_VERSION}\n"))
        .with_context(|| format!("writing {}", stamp.display()))?;
    Ok(bin)
}

/// A fresh, empty ext4 image at `path`, sparse.
pub fn scratch_disk(path: &Path) -> Result<()> {
    let _ = fs::remove_file(path);
    let file = fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    file.set_len(SCRATCH_BYTES)
        .with_context(|| format!("sizing {}", path.display()))?;
    drop(file);
    let mkfs = find_program("mkfs.ext4").context("no mkfs.ext4 (Debian's e2fsprogs)")?;
    cmd::run(Command::new(mkfs).args(["-q", "-F"]).arg(path))
}

/// `--cpus` for virtme-ng: two online, and with more possible, hot-pluggable one-CPU sockets up
/// to that many (QEMU's plain `maxcpus` alone leaves the possible mask at the online ones).
pub fn cpus_arg(possible: u16) -> String {
    if possible <= ONLINE_CPUS {
        ONLINE_CPUS.to_string()
    } else {
        format!("{ONLINE_CPUS},sockets={possible},cores=1,threads=1,maxcpus={possible}")
    }
}

/// One boot.
pub struct Boot<'a> {
    pub vmlinuz: &'a Path,
    pub memory: &'a str,
    pub possible_cpus: u16,
    /// Writable in the guest at the same path.
    pub rwdir: &'a Path,
    pub scratch: &'a Path,
    /// The guest script, run with `sh`.
    pub script: &'a Path,
}

/// virtme-ng joins its options into a shell command line unquoted, so every path it gets must
/// be one shell word as it stands.
fn shell_word(path: &Path) -> Result<String> {
    let text = path.to_string_lossy().into_owned();
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._+-=,:@%".contains(c);
    if text.is_empty() || !text.chars().all(plain) {
        bail!(
            "virtme-ng passes `{text}` through a shell unquoted: use a workspace path of plain \
             characters"
        );
    }
    Ok(text)
}

/// The `vng` arguments for `boot`. `--verbose` sends the guest's console (the kernel's log and
/// the script's output) to stdout, which `run` keeps in a file.
pub fn vng_args(boot: &Boot) -> Result<Vec<String>> {
    let scratch = shell_word(boot.scratch)?;
    Ok(vec![
        "--disable-kvm".to_owned(),
        "--verbose".to_owned(),
        "--run".to_owned(),
        shell_word(boot.vmlinuz)?,
        "-m".to_owned(),
        boot.memory.to_owned(),
        "--cpus".to_owned(),
        cpus_arg(boot.possible_cpus),
        "--rwdir".to_owned(),
        shell_word(boot.rwdir)?,
        format!(
            "--qemu-opts=-drive if=none,id=scratch,file={scratch},format=raw \
             -device virtio-blk-pci,drive=scratch,serial={SCRATCH_SERIAL}"
        ),
        "--exec".to_owned(),
        format!("sh {}", shell_word(boot.script)?),
    ])
}

/// How a boot ended, as far as the host can tell.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// QEMU exited (under TCG always with 255: the results say what happened).
    Exited,
    /// It ran past the timeout and was stopped.
    TimedOut,
}

/// `timeout`'s exit code when the time ran out.
const TIMED_OUT: i32 = 124;

/// Boots, with the console going to `console`, and stops the whole VM after `minutes`.
pub fn run(venv_bin: &Path, boot: &Boot, minutes: u64, console: &Path) -> Result<Ended> {
    let log =
        fs::File::create(console).with_context(|| format!("creating {}", console.display()))?;
    let path = std::env::var_os("PATH").unwrap_or_default();
    let path = std::env::join_paths(
        std::iter::once(venv_bin.to_path_buf()).chain(std::env::split_paths(&path)),
    )?;
    let mut command = Command::new("timeout");
    // timeout signals its whole process group: vng, virtme-run and QEMU.
    command
        .args(["--kill-after=30", &format!("{minutes}m")])
        .arg(venv_bin.join("vng"))
        .args(vng_args(boot)?)
        // vng runs virtme-run from PATH.
        .env("PATH", path)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    eprintln!("xtask: {}", cmd::describe(&command));
    let status = command.status().context("could not start vng")?;
    Ok(if status.code() == Some(TIMED_OUT) {
        Ended::TimedOut
    } else {
        Ended::Exited
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn possible_cpus_are_hot_pluggable_sockets_beyond_two_online() {
        assert_eq!(cpus_arg(2), "2");
        assert_eq!(cpus_arg(16), "2,sockets=16,cores=1,threads=1,maxcpus=16");
        assert_eq!(cpus_arg(255), "2,sockets=255,cores=1,threads=1,maxcpus=255");
    }

    #[test]
    fn vng_boots_the_kernel_under_tcg_with_the_scratch_disk() {
        let boot = Boot {
            vmlinuz: Path::new(
                "/ws/target/vm/kernels/6.18.15+deb13-amd64/boot/vmlinuz-6.18.15+deb13-amd64",
            ),
            memory: "4G",
            possible_cpus: 16,
            rwdir: Path::new("/ws/target/vm/runs/6.18-16cpus/results"),
            scratch: Path::new("/ws/target/vm/runs/6.18-16cpus/scratch.img"),
            script: Path::new("/ws/target/vm/runs/6.18-16cpus/results/guest.sh"),
        };
        assert_eq!(
            vng_args(&boot).unwrap().join(" "),
            "--disable-kvm --verbose --run \
             /ws/target/vm/kernels/6.18.15+deb13-amd64/boot/vmlinuz-6.18.15+deb13-amd64 \
             -m 4G --cpus 2,sockets=16,cores=1,threads=1,maxcpus=16 \
             --rwdir /ws/target/vm/runs/6.18-16cpus/results \
             --qemu-opts=-drive if=none,id=scratch,file=/ws/target/vm/runs/6.18-16cpus/scratch.img,format=raw \
             -device virtio-blk-pci,drive=scratch,serial=zct-scratch \
             --exec sh /ws/target/vm/runs/6.18-16cpus/results/guest.sh"
        );
    }

    #[test]
    fn paths_the_shell_would_split_are_refused() {
        assert!(shell_word(Path::new("/home/me/my work/x")).is_err());
        assert!(shell_word(Path::new("/ws/$(x)")).is_err());
        assert!(shell_word(Path::new("/ws/6.18.15+deb13-amd64")).is_ok());
    }
}
