//! What the parent prepares before forking: the work directory, input files, pipes and other
//! fds the children inherit, and the check of output files after they exit.

use std::fs::{self, File, OpenOptions};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::pattern::pattern;

/// The directory for the modes' files: the one given with `--dir` (kept), or a fresh one
/// under the system temp dir (removed on drop).
pub struct WorkDir {
    path: PathBuf,
    remove: bool,
}

impl WorkDir {
    pub fn new(given: Option<PathBuf>) -> Result<Self> {
        if let Some(path) = given {
            fs::create_dir_all(&path)
                .with_context(|| format!("create the work dir {}", path.display()))?;
            return Ok(WorkDir {
                path,
                remove: false,
            });
        }
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "zerocopy-trace-workload-{}-{nanos}",
            std::process::id()
        ));
        // create_dir, not create_dir_all: a leftover dir of the same name is an error, not reused.
        fs::create_dir(&path).with_context(|| format!("create {}", path.display()))?;
        Ok(WorkDir { path, remove: true })
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if self.remove {
            // Best effort: a leftover temp dir is not worth failing a finished run for.
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// Writes one round of the pattern to `path` and opens it for reading.
pub fn input_file(path: &Path, len: u64) -> Result<File> {
    fs::write(path, pattern(len)).with_context(|| format!("write {}", path.display()))?;
    File::open(path).with_context(|| format!("open {}", path.display()))
}

/// Creates (or truncates) `path` for writing.
pub fn output_file(path: &Path) -> Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .with_context(|| format!("create {}", path.display()))
}

/// Checks that `output` holds exactly the bytes of `input`.
pub fn same_contents(input: &Path, output: &Path) -> Result<()> {
    let a = fs::read(input).with_context(|| format!("read {}", input.display()))?;
    let b = fs::read(output).with_context(|| format!("read {}", output.display()))?;
    if a.len() != b.len() {
        bail!(
            "{} has {} bytes, {} has {}",
            output.display(),
            b.len(),
            input.display(),
            a.len()
        );
    }
    if let Some(at) = a.iter().zip(&b).position(|(x, y)| x != y) {
        bail!(
            "{} differs from {} at byte {at}",
            output.display(),
            input.display()
        );
    }
    Ok(())
}

/// Both ends of a pipe.
pub struct Pipe {
    pub read: OwnedFd,
    pub write: OwnedFd,
}

/// A pipe whose capacity is raised to at least `capacity` bytes if the system allows (root, or
/// within fs.pipe-max-size); the children's loops handle a smaller pipe too.
pub fn pipe(capacity: usize) -> Result<Pipe> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error()).context("create a pipe");
    }
    // SAFETY: pipe2 succeeded, so both are fresh descriptors owned by nobody else.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    if let Ok(size) = libc::c_int::try_from(capacity) {
        // SAFETY: F_SETPIPE_SZ on our own pipe; failure just leaves the default size.
        unsafe { libc::fcntl(fds[1], libc::F_SETPIPE_SZ, size) };
    }
    Ok(Pipe { read, write })
}
