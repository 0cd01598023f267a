//! The process calls std lacks: sending a signal to a child, and `wait4` with the child's
//! rusage (the CPU of the whole tree it waited for).

use std::io;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// How a reaped child ended and what it cost, from `wait4`.
#[derive(Clone, Copy, Debug)]
pub struct Reaped {
    status: i32,
    /// User + system CPU seconds of the child and of the descendants it waited for.
    pub cpu_s: f64,
}

impl Reaped {
    pub fn success(&self) -> bool {
        libc::WIFEXITED(self.status) && libc::WEXITSTATUS(self.status) == 0
    }

    pub fn describe(&self) -> String {
        if libc::WIFEXITED(self.status) {
            format!("exit code {}", libc::WEXITSTATUS(self.status))
        } else if libc::WIFSIGNALED(self.status) {
            format!("killed by signal {}", libc::WTERMSIG(self.status))
        } else {
            format!("wait status {:#x}", self.status)
        }
    }
}

fn pid_t(pid: u32) -> Result<libc::pid_t> {
    libc::pid_t::try_from(pid).with_context(|| format!("pid {pid} out of range"))
}

/// Sends `signal` to our child `pid` (not yet reaped, so the pid cannot have been reused).
pub fn signal(pid: u32, signal: libc::c_int) -> Result<()> {
    let target = pid_t(pid)?;
    // SAFETY: kill passes no memory; the target is our own unreaped child.
    if unsafe { libc::kill(target, signal) } != 0 {
        return Err(io::Error::last_os_error()).with_context(|| format!("signalling pid {pid}"));
    }
    Ok(())
}

/// Reaps our child `pid`: waits for it when `block`, else returns `None` while it runs.
pub fn reap(pid: u32, block: bool) -> Result<Option<Reaped>> {
    let target = pid_t(pid)?;
    let flags = if block { 0 } else { libc::WNOHANG };
    loop {
        let mut status = 0;
        // SAFETY: rusage is plain integers, for which all-zero bytes are a valid value.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: status and usage are live, writable locals for the whole call.
        let rc = unsafe { libc::wait4(target, &mut status, flags, &mut usage) };
        if rc == 0 {
            return Ok(None);
        }
        if rc < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err).with_context(|| format!("waiting for pid {pid}"));
        }
        let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        return Ok(Some(Reaped {
            status,
            cpu_s: seconds(usage.ru_utime) + seconds(usage.ru_stime),
        }));
    }
}

/// Reaps `pid`, killing it if it has not exited within `patience`.
pub fn reap_within(pid: u32, patience: Duration) -> Result<Reaped> {
    let deadline = Instant::now() + patience;
    while Instant::now() < deadline {
        if let Some(reaped) = reap(pid, false)? {
            return Ok(reaped);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    signal(pid, libc::SIGKILL)?;
    reap(pid, true)?;
    bail!("pid {pid} did not exit within {patience:?}; killed it")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn exit_codes_and_signals_are_told_apart() {
        let ok = Command::new("true").spawn().unwrap().id();
        let reaped = reap(ok, true).unwrap().unwrap();
        assert!(reaped.success());
        assert_eq!(reaped.describe(), "exit code 0");

        let fails = Command::new("false").spawn().unwrap().id();
        let reaped = reap_within(fails, Duration::from_secs(10)).unwrap();
        assert!(!reaped.success());
        assert_eq!(reaped.describe(), "exit code 1");

        let sleeper = Command::new("sleep").arg("30").spawn().unwrap().id();
        assert!(reap(sleeper, false).unwrap().is_none());
        signal(sleeper, libc::SIGTERM).unwrap();
        let reaped = reap(sleeper, true).unwrap().unwrap();
        assert_eq!(reaped.describe(), "killed by signal 15");
    }
}
