//! Landlock for the names helper: root's uid alone still owns most of the filesystem (it may
//! read `/etc/shadow`, write `/etc/passwd`), so beside its seccomp list the helper gives up
//! every filesystem access Landlock knows of, but listing the directories it was told to list
//! (kubelet's log directories). Connecting to a unix socket by its path is not a filesystem
//! access Landlock restricts, so the runtimes' sockets still answer; abstract unix sockets
//! and signals outside the helper are shut off where the kernel scopes them (Landlock ABI 6).
//!
//! Where the kernel has no Landlock (before 5.13, or not enabled), nothing is restricted here:
//! the helper's seccomp list still keeps it from opening anything for writing.

use std::{ffi::CString, io, os::unix::ffi::OsStrExt, path::Path};

use anyhow::{Context, Result};

/// `LANDLOCK_ACCESS_FS_*`, by the ABI version that brought them.
const FS_ABI_1: u64 = (1 << 13) - 1; // execute .. make_sym
const FS_REFER: u64 = 1 << 13; // ABI 2
const FS_TRUNCATE: u64 = 1 << 14; // ABI 3
const FS_IOCTL_DEV: u64 = 1 << 15; // ABI 5
const FS_READ_DIR: u64 = 1 << 3;
/// `LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET | LANDLOCK_SCOPE_SIGNAL` (ABI 6).
const SCOPED_ALL: u64 = 0b11;

const CREATE_RULESET_VERSION: u32 = 1 << 0;
const RULE_PATH_BENEATH: u32 = 1;

/// `struct landlock_ruleset_attr` (ABI 6's: the kernel takes a prefix of it from older ABIs).
#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
    scoped: u64,
}

/// `struct landlock_path_beneath_attr`, packed as the kernel declares it.
#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// The Landlock ABI version of this kernel, or `None` without Landlock.
pub fn abi() -> Option<u32> {
    // SAFETY: the version query takes no attribute.
    let version = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<RulesetAttr>(),
            0usize,
            CREATE_RULESET_VERSION,
        )
    };
    u32::try_from(version).ok().filter(|&v| v >= 1)
}

/// Restricts this process (every thread started later too) to listing the directories beneath
/// `listable`, and to nothing else Landlock controls. `NoNewPrivs` must be set already.
/// Returns whether Landlock was there to do it.
pub fn confine_to_listing(listable: &[&Path]) -> Result<bool> {
    let Some(abi) = abi() else {
        return Ok(false);
    };
    let mut handled = FS_ABI_1;
    if abi >= 2 {
        handled |= FS_REFER;
    }
    if abi >= 3 {
        handled |= FS_TRUNCATE;
    }
    if abi >= 5 {
        handled |= FS_IOCTL_DEV;
    }
    let attr = RulesetAttr {
        handled_access_fs: handled,
        handled_access_net: 0,
        scoped: if abi >= 6 { SCOPED_ALL } else { 0 },
    };
    // An older kernel takes only the fields it knows.
    let size = if abi >= 6 {
        size_of::<RulesetAttr>()
    } else {
        size_of::<u64>()
    };
    // SAFETY: `attr` is valid for `size` bytes.
    let ruleset = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            &raw const attr,
            size,
            0u32,
        )
    };
    let ruleset = owned(ruleset).context("creating a Landlock ruleset")?;
    for dir in listable {
        let Ok(path) = CString::new(dir.as_os_str().as_bytes()) else {
            continue;
        };
        // SAFETY: open(2) of a NUL-terminated path.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
        let Ok(fd) = owned(fd.into()) else {
            // Not there: nothing to list beneath it.
            continue;
        };
        let rule = PathBeneathAttr {
            allowed_access: FS_READ_DIR,
            parent_fd: std::os::fd::AsRawFd::as_raw_fd(&fd),
        };
        // SAFETY: a path-beneath rule for an open descriptor, added to our ruleset.
        let added = unsafe {
            libc::syscall(
                libc::SYS_landlock_add_rule,
                std::os::fd::AsRawFd::as_raw_fd(&ruleset),
                RULE_PATH_BENEATH,
                &raw const rule,
                0u32,
            )
        };
        if added != 0 {
            return Err(io::Error::last_os_error())
                .with_context(|| format!("a Landlock rule for {}", dir.display()));
        }
    }
    // SAFETY: restricting ourselves with our own ruleset.
    let restricted = unsafe {
        libc::syscall(
            libc::SYS_landlock_restrict_self,
            std::os::fd::AsRawFd::as_raw_fd(&ruleset),
            0u32,
        )
    };
    if restricted != 0 {
        return Err(io::Error::last_os_error()).context("landlock_restrict_self");
    }
    Ok(true)
}

fn owned(fd: libc::c_long) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new descriptor the kernel just returned, owned once.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// In a child (Landlock is for good): listing the allowed directory works; listing any
    /// other, reading or writing a file, even one inside it, does not.
    #[test]
    fn only_the_directories_given_can_be_listed() {
        if abi().is_none() {
            eprintln!("SKIPPED: no Landlock in this kernel");
            return;
        }
        let dir = std::env::temp_dir().join(format!("zct-landlock-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("inner")).unwrap();
        std::fs::write(dir.join("file"), "x").unwrap();
        // SAFETY: the child only confines itself and makes plain calls, then _exits.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let code = (|| {
                // SAFETY: a plain prctl.
                unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
                if !confine_to_listing(&[dir.as_path()]).ok()? {
                    return None;
                }
                let listed =
                    std::fs::read_dir(&dir).is_ok() && std::fs::read_dir(dir.join("inner")).is_ok();
                let denied = |r: io::Result<()>| {
                    r.is_err_and(|e| e.kind() == io::ErrorKind::PermissionDenied)
                };
                let refused = denied(std::fs::read_dir("/etc").map(drop))
                    && denied(std::fs::read(dir.join("file")).map(drop))
                    && denied(std::fs::read("/etc/hostname").map(drop))
                    && denied(std::fs::write(dir.join("new"), "x"));
                (listed && refused).then_some(0)
            })()
            .unwrap_or(1);
            // SAFETY: leaving the forked child without running the harness's exit path.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        let _ = std::fs::remove_dir_all(&dir);
        assert!(libc::WIFEXITED(status), "status {status:#x}");
        assert_eq!(libc::WEXITSTATUS(status), 0);
    }
}
