//! Starting the command of `zerocopy-trace run` so that not one of its syscalls escapes the
//! trace: the child stops itself right after fork, the tracer registers its pid, and only then
//! does it continue into exec. `std::process::Command` cannot do this: its `spawn` waits for
//! the exec, which would wait for us.

use std::{
    ffi::CString,
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

use anyhow::{bail, Context, Result};

/// A forked child, stopped before exec.
pub struct StoppedChild {
    pid: libc::pid_t,
    /// Read end of a close-on-exec pipe: EOF means exec succeeded, 4 bytes are its errno.
    exec_status: OwnedFd,
    program: String,
    resumed: bool,
}

/// A child that is running the command.
pub struct RunningChild {
    pid: libc::pid_t,
}

/// Where the command's standard output goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommandStdout {
    /// Ours, shared.
    Inherit,
    /// Our standard error: our standard output carries only the report (`run --json`, so
    /// `| jq` works whatever the command prints).
    ToStderr,
}

/// Forks a child that stops itself and, once continued, execs `argv` (searching PATH).
/// Call before any thread is started: the child only makes async-signal-safe calls.
pub fn spawn_stopped(argv: &[String], stdout: CommandStdout) -> Result<StoppedChild> {
    let Some(program) = argv.first() else {
        bail!("no command given to run");
    };
    let args: Vec<CString> = argv
        .iter()
        .map(|a| CString::new(a.as_str()))
        .collect::<Result<_, _>>()
        .context("command arguments must not contain NUL bytes")?;
    let mut arg_ptrs: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    arg_ptrs.push(std::ptr::null());

    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error()).context("pipe2");
    }
    // SAFETY: pipe2 just returned these two open descriptors; each is owned once.
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };

    // SAFETY: the caller guarantees a single-threaded process; the child below only calls
    // async-signal-safe functions (dup2, raise, execvp, write, _exit) on memory prepared
    // before fork.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error()).context("fork");
    }
    if pid == 0 {
        // SAFETY: see above; this branch never returns.
        unsafe {
            if stdout == CommandStdout::ToStderr {
                libc::dup2(libc::STDERR_FILENO, libc::STDOUT_FILENO);
            }
            libc::raise(libc::SIGSTOP);
            libc::execvp(arg_ptrs[0], arg_ptrs.as_ptr());
            let errno = *libc::__errno_location();
            libc::write(write_end.as_raw_fd(), (&raw const errno).cast(), 4);
            libc::_exit(127);
        }
    }
    drop(write_end);
    let child = StoppedChild {
        pid,
        exec_status: read_end,
        program: program.clone(),
        resumed: false,
    };
    let mut status = 0;
    // SAFETY: waiting for our own child; `status` is a valid out-pointer.
    let rc = unsafe { libc::waitpid(pid, &mut status, libc::WUNTRACED) };
    if rc != pid || !libc::WIFSTOPPED(status) {
        bail!("the child for {program} did not stop before exec as expected");
    }
    Ok(child)
}

impl StoppedChild {
    pub fn pid(&self) -> u32 {
        self.pid as u32
    }

    /// Lets the child exec the command; fails if exec failed (e.g. command not found).
    pub fn resume(mut self) -> Result<RunningChild> {
        self.resumed = true;
        // SAFETY: signalling our own stopped child.
        if unsafe { libc::kill(self.pid, libc::SIGCONT) } != 0 {
            return Err(io::Error::last_os_error()).context("resuming the command");
        }
        let mut errno = [0u8; 4];
        let n = loop {
            // SAFETY: reading into a 4-byte buffer from our pipe.
            let n =
                unsafe { libc::read(self.exec_status.as_raw_fd(), errno.as_mut_ptr().cast(), 4) };
            if n >= 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                break n;
            }
        };
        let running = RunningChild { pid: self.pid };
        if n == 4 {
            let _ = running.wait();
            let err = io::Error::from_raw_os_error(i32::from_ne_bytes(errno));
            bail!("cannot run {}: {err}", self.program);
        }
        Ok(running)
    }
}

impl Drop for StoppedChild {
    fn drop(&mut self) {
        if !self.resumed {
            // Tracing could not start: do not leave a stopped child behind.
            // SAFETY: killing and reaping our own child.
            unsafe {
                libc::kill(self.pid, libc::SIGKILL);
                libc::waitpid(self.pid, std::ptr::null_mut(), 0);
            }
        }
    }
}

impl RunningChild {
    /// Blocks until the command exits; returns the exit code a shell would report
    /// (128 + signal number when it was killed by a signal).
    pub fn wait(&self) -> Result<u8> {
        let mut status = 0;
        loop {
            // SAFETY: waiting for our own child; `status` is a valid out-pointer.
            let rc = unsafe { libc::waitpid(self.pid, &mut status, 0) };
            if rc == self.pid {
                break;
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err).context("waiting for the command");
            }
        }
        Ok(if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status) as u8
        } else {
            128u8.wrapping_add(libc::WTERMSIG(status) as u8)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // These fork the test process; the test harness runs tests on threads, but the child only
    // calls async-signal-safe functions, which is what makes fork safe there.
    #[test]
    fn runs_a_command_and_reports_its_status() {
        let child = spawn_stopped(
            &["sh".into(), "-c".into(), "exit 7".into()],
            CommandStdout::Inherit,
        )
        .unwrap();
        assert!(child.pid() > 0);
        let running = child.resume().unwrap();
        assert_eq!(running.wait().unwrap(), 7);
    }

    #[test]
    fn a_missing_command_is_an_error() {
        let child = spawn_stopped(
            &["/nonexistent/zerocopy-trace-nope".into()],
            CommandStdout::Inherit,
        )
        .unwrap();
        let err = child.resume().err().unwrap().to_string();
        assert!(
            err.contains("cannot run /nonexistent/zerocopy-trace-nope"),
            "{err}"
        );
    }

    #[test]
    fn an_unresumed_child_is_killed() {
        let child = spawn_stopped(&["sleep".into(), "100".into()], CommandStdout::Inherit).unwrap();
        let pid = child.pid();
        drop(child);
        assert!(!crate::system::procfs::exists(pid));
    }
}
