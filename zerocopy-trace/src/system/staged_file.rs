//! A file written under a temporary name beside its target and renamed over it at the end, so
//! no reader ever sees half a report and a failed trace leaves the old file as it was.
//!
//! The temporary file is made when the command starts, before anything is attached or run, so
//! an `-o` that cannot be written (a directory, a missing directory, `/proc/version`) is
//! refused at once. It is created `0600`, exclusively, by the agent while it still has its
//! privileges. The agent later runs as another user that may not write into the target's
//! directory, so the rename (and the final mode) is done by a small keeper process forked at
//! creation, which holds the directory and the file and waits on a pipe: told to commit, it
//! sets the mode and renames; on anything else, the pipe's end included (the agent failed,
//! panicked or was killed), it removes the temporary file. So the temporary file is removed
//! on every way out, SIGKILL of the agent included.

use std::{
    ffi::CString,
    fs::File,
    io::{self, Write},
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
        unix::{ffi::OsStrExt, fs::FileTypeExt},
    },
    path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};

/// The message to the keeper that the file is complete.
const COMMIT: u8 = b'c';

/// A file being written; `commit` puts it in place.
pub struct StagedFile {
    target: PathBuf,
    temporary: PathBuf,
    file: File,
    keeper: Keeper,
}

/// The process that renames or removes the temporary file.
struct Keeper {
    pid: libc::pid_t,
    /// Written to commit; closed to abort.
    tell: Option<OwnedFd>,
    /// The keeper's answer to a commit: an errno, 0 for done.
    answer: OwnedFd,
}

impl StagedFile {
    /// Checks that `target` can be written and starts its temporary file; `mode` is the mode
    /// the file gets when it is put in place. Call before any thread is started: it forks.
    pub fn create(target: &Path, mode: u32) -> Result<StagedFile> {
        let shown = target.display();
        let name = target
            .file_name()
            .filter(|_| !target.as_os_str().as_bytes().ends_with(b"/"))
            .with_context(|| format!("-o {shown}: not a file name"))?;
        match std::fs::metadata(target) {
            Ok(meta) if meta.is_dir() => bail!("-o {shown}: is a directory (-o takes a file)"),
            Ok(meta) if !meta.file_type().is_file() => {
                let kind =
                    if meta.file_type().is_char_device() || meta.file_type().is_block_device() {
                        "a device"
                    } else {
                        "not a regular file"
                    };
                bail!("-o {shown}: is {kind} (without -o the report goes to standard output)")
            }
            _ => {}
        }
        let dir = match target.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let temporary = dir.join(format!(
            ".{}.{}.tmp",
            name.to_string_lossy(),
            std::process::id()
        ));
        let dir_fd = open_dir(&dir).with_context(|| format!("-o {shown}: {}", dir.display()))?;
        let file = create_exclusive(&temporary).with_context(|| {
            format!(
                "-o {shown}: cannot create a file in {} to write it",
                dir.display()
            )
        })?;
        let names = (
            CString::new(temporary.file_name().unwrap_or_default().as_bytes())
                .context("a file name with a NUL byte")?,
            CString::new(name.as_bytes()).context("a file name with a NUL byte")?,
        );
        let keeper = match Keeper::start(dir_fd, &file, names, mode) {
            Ok(keeper) => keeper,
            Err(e) => {
                let _ = std::fs::remove_file(&temporary);
                return Err(e);
            }
        };
        Ok(StagedFile {
            target: target.to_path_buf(),
            temporary,
            file,
            keeper,
        })
    }

    /// The temporary file's path.
    #[cfg(test)]
    pub fn temporary(&self) -> &Path {
        &self.temporary
    }

    /// Writes `contents`, then has the keeper set the mode and rename it over the target.
    pub fn commit(mut self, contents: &[u8]) -> Result<()> {
        let written = self
            .file
            .write_all(contents)
            .and_then(|()| self.file.sync_all());
        written.with_context(|| format!("writing {}", self.temporary.display()))?;
        let errno = self.keeper.commit()?;
        if errno != 0 {
            return Err(io::Error::from_raw_os_error(errno)).with_context(|| {
                format!(
                    "renaming {} to {}",
                    self.temporary.display(),
                    self.target.display()
                )
            });
        }
        Ok(())
    }
}

fn open_dir(dir: &Path) -> Result<OwnedFd> {
    let path = CString::new(dir.as_os_str().as_bytes()).context("a path with a NUL byte")?;
    // SAFETY: open(2) of a NUL-terminated path; the descriptor is owned once below.
    let fd = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error().into());
    }
    // SAFETY: a new descriptor, owned once.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn create_exclusive(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error()).context("pipe2");
    }
    // SAFETY: pipe2 just returned these two open descriptors; each is owned once.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

impl Keeper {
    fn start(
        dir: OwnedFd,
        file: &File,
        (temporary, target): (CString, CString),
        mode: u32,
    ) -> Result<Keeper> {
        let (listen, tell) = pipe()?;
        let (answer, reply) = pipe()?;
        let kept = [
            dir.as_raw_fd(),
            file.as_raw_fd(),
            listen.as_raw_fd(),
            reply.as_raw_fd(),
        ];
        // SAFETY: the child only makes async-signal-safe calls on what is prepared above,
        // then _exits.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(io::Error::last_os_error()).context("fork");
        }
        if pid == 0 {
            // SAFETY: see above; never returns.
            unsafe { keep(kept, &temporary, &target, mode) }
        }
        drop((listen, reply, dir));
        Ok(Keeper {
            pid,
            tell: Some(tell),
            answer,
        })
    }

    /// Tells the keeper to put the file in place; its errno (0: done).
    fn commit(&mut self) -> Result<i32> {
        let tell = self.tell.take().context("the file was already committed")?;
        // SAFETY: write(2) of one byte to our pipe.
        if unsafe { libc::write(tell.as_raw_fd(), [COMMIT].as_ptr().cast(), 1) } != 1 {
            return Err(io::Error::last_os_error()).context("telling the keeper of -o");
        }
        let mut errno = [0u8; 4];
        let n = retry(|| {
            // SAFETY: reading into a 4-byte buffer from our pipe.
            unsafe { libc::read(self.answer.as_raw_fd(), errno.as_mut_ptr().cast(), 4) }
        });
        if n != 4 {
            bail!("the process that renames the -o file ended without an answer");
        }
        Ok(i32::from_ne_bytes(errno))
    }
}

impl Drop for Keeper {
    fn drop(&mut self) {
        // Without a commit, closing the pipe tells the keeper to remove the file.
        drop(self.tell.take());
        // SAFETY: reaping our own child.
        retry(|| unsafe { libc::waitpid(self.pid, std::ptr::null_mut(), 0) } as isize);
    }
}

fn retry(mut call: impl FnMut() -> isize) -> isize {
    loop {
        let n = call();
        if n >= 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return n;
        }
    }
}

/// The keeper: closes every descriptor but its own, keeps no capability but the one that
/// lets root write into any directory, then waits for its one message.
///
/// # Safety
/// Runs in a freshly forked child: raw syscalls only, no allocation.
unsafe fn keep(
    [dir, file, listen, reply]: [RawFd; 4],
    temporary: &CString,
    target: &CString,
    mode: u32,
) -> ! {
    let mut kept = [dir, file, listen, reply];
    kept.sort_unstable();
    let mut from: libc::c_uint = 0;
    for fd in kept {
        if (fd as libc::c_uint) > from {
            close_range(from, fd as libc::c_uint - 1);
        }
        from = fd as libc::c_uint + 1;
    }
    close_range(from, libc::c_uint::MAX);
    keep_only_dac_override();
    libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    let mut message = [0u8; 1];
    let n = retry(|| libc::read(listen, message.as_mut_ptr().cast(), 1));
    if n == 1 && message[0] == COMMIT {
        let mut errno = 0;
        if libc::fchmod(file, mode) != 0
            || libc::renameat(dir, temporary.as_ptr(), dir, target.as_ptr()) != 0
        {
            errno = *libc::__errno_location();
            libc::unlinkat(dir, temporary.as_ptr(), 0);
        }
        libc::write(reply, (&raw const errno).cast(), 4);
    } else {
        libc::unlinkat(dir, temporary.as_ptr(), 0);
    }
    libc::_exit(0)
}

/// close_range(2) (5.9+), or one close at a time before it.
unsafe fn close_range(first: libc::c_uint, last: libc::c_uint) {
    if libc::syscall(libc::SYS_close_range, first, last, 0) == 0 {
        return;
    }
    let last = last.min(65535);
    let mut fd = first;
    while fd <= last {
        libc::close(fd as libc::c_int);
        fd += 1;
    }
}

/// Capabilities of this thread cut down to CAP_DAC_OVERRIDE (if it had it): enough to rename
/// in a directory root does not own, nothing else. Raw capget/capset: no allocation.
unsafe fn keep_only_dac_override() {
    const VERSION_3: u32 = 0x2008_0522;
    const DAC_OVERRIDE: u32 = 1 << 1;
    let mut header = [VERSION_3, 0];
    let mut data = [0u32; 6];
    if libc::syscall(libc::SYS_capget, header.as_mut_ptr(), data.as_mut_ptr()) != 0 {
        return;
    }
    // (effective, permitted, inheritable) for capabilities 0-31, then 32-63.
    let keep = data[1] & DAC_OVERRIDE;
    let cut = [keep, keep, 0, 0, 0, 0];
    libc::syscall(libc::SYS_capset, header.as_mut_ptr(), cut.as_ptr());
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "zerocopy-trace-staged-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_commit_replaces_the_target_with_the_mode_asked() {
        let dir = scratch("commit");
        let target = dir.join("report.json");
        std::fs::write(&target, "old").unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
        let staged = StagedFile::create(&target, 0o600).unwrap();
        let mode = std::fs::metadata(staged.temporary())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the temporary file");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "old");
        staged.commit(b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "new");
        let mode = std::fs::metadata(&target).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o777,
            0o600,
            "an existing 0644 file becomes owner-only"
        );
        assert_eq!(names(&dir), ["report.json"]);

        let prom = dir.join("zerocopy.prom");
        StagedFile::create(&prom, 0o644)
            .unwrap()
            .commit(b"x 1\n")
            .unwrap();
        let mode = std::fs::metadata(&prom).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn without_a_commit_nothing_is_left() {
        let dir = scratch("abort");
        let target = dir.join("report.json");
        drop(StagedFile::create(&target, 0o600).unwrap());
        assert!(names(&dir).is_empty(), "{:?}", names(&dir));
    }

    #[test]
    fn unwritable_targets_are_refused_at_once() {
        let dir = scratch("refused");
        for (target, needle) in [
            (dir.clone(), "is a directory"),
            (dir.join("missing/report.json"), "No such file or directory"),
            (
                PathBuf::from("/proc/version"),
                "cannot create a file in /proc",
            ),
            (PathBuf::from("/dev/null"), "is a device"),
            (dir.join("x/"), "not a file name"),
        ] {
            let message = format!("{:#}", StagedFile::create(&target, 0o600).err().unwrap());
            assert!(message.contains(needle), "{}: {message}", target.display());
        }
        assert!(names(&dir).is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
