//! Starting the command of `zerocopy-trace run` so that not one of its syscalls escapes the
//! trace, and so that it runs as it would without us: the child stops itself right after
//! fork, the tracer registers its pid, and only then does it continue into exec.
//! `std::process::Command` cannot do this: its `spawn` waits for the exec, which would wait
//! for us.
//!
//! Between fork and exec the child, in this order: takes the command's user (or, for a root
//! command, gives up every capability for good: root's own securebits, an empty bounding set);
//! asks to be killed when the agent dies (`PR_SET_PDEATHSIG`, which a credential change clears,
//! hence after it) and checks the agent did not die before that; puts back the default
//! SIGPIPE disposition (Rust's runtime ignores SIGPIPE, and exec keeps ignored signals) and an
//! empty signal mask (the agent blocks the signals it forwards); stops; execs.
//!
//! The agent forwards SIGINT, SIGTERM and SIGHUP sent to it (by `kill`, systemd, a
//! supervisor) to the command, as `timeout` does, and keeps tracing until the command exits.
//! A terminal's Ctrl-C or hang-up is not forwarded: the kernel sends those to the whole
//! foreground process group, the command included.

use std::{
    ffi::CString,
    io,
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd},
        unix::{ffi::OsStrExt, fs::PermissionsExt},
    },
    path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};

use super::privileges::User;

/// The signals forwarded to the command.
pub const FORWARDED: [libc::c_int; 3] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP];

/// A forked child, stopped before exec.
pub struct StoppedChild {
    pid: libc::pid_t,
    /// Read end of a close-on-exec pipe: EOF means exec succeeded, 4 bytes are its errno.
    exec_status: OwnedFd,
    program: String,
    resumed: bool,
}

/// A child that is running the command.
#[derive(Clone, Copy, Debug)]
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

/// Who the command runs as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommandUser {
    /// The agent's own user (an agent that is not root): only the capabilities it was given
    /// (ambient, inheritable) are cleared, so exec grants none.
    Same,
    /// This user, with its groups (an agent started as root).
    User(User),
    /// uid 0 without any capability, now or after exec (an agent started as root, with no
    /// other user to run the command as): it can still use what root owns, but no privilege.
    RootWithoutCapabilities,
    /// Root as root is anywhere, its capabilities regained at exec (an agent started as root,
    /// asked with `--user root`): for a command that needs them.
    Root,
}

/// A command ready to be forked: everything the child needs, prepared before fork (the child
/// may not allocate).
struct Prepared {
    path: CString,
    argv: Vec<CString>,
    user: CommandUser,
    groups: Vec<libc::gid_t>,
    last_cap: libc::c_ulong,
}

/// Finds `program` as execvp would (PATH unless it names a path), before anything starts.
pub fn resolve(program: &str) -> Result<PathBuf> {
    let executable = |path: &Path| {
        std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if program.contains('/') {
        let path = PathBuf::from(program);
        return match std::fs::metadata(&path) {
            Err(e) => Err(e).with_context(|| format!("cannot run {program}")),
            Ok(_) if !executable(&path) => {
                bail!("cannot run {program}: not an executable file")
            }
            Ok(_) => Ok(path),
        };
    }
    let search = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&search)
        .map(|dir| dir.join(program))
        .find(|path| executable(path))
        .with_context(|| format!("cannot run {program}: not found in PATH"))
}

fn last_cap() -> libc::c_ulong {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(63)
}

/// Blocks the forwarded signals in this thread (and so in every thread started later) and
/// returns a signalfd that reads them. Call before any thread is started and before forking
/// the command (whose child clears the mask again).
pub fn forwarded_signals() -> Result<OwnedFd> {
    // SAFETY: sigset operations on a local set, then sigprocmask and signalfd with it.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for signal in FORWARDED {
            libc::sigaddset(&mut set, signal);
        }
        if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error()).context("blocking the forwarded signals");
        }
        let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);
        if fd < 0 {
            return Err(io::Error::last_os_error()).context("signalfd");
        }
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

/// A signal read from the signalfd.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    pub signal: libc::c_int,
    /// Sent by a process (`kill`), not by the kernel to a whole process group (a terminal).
    pub sent: bool,
    pub sender: u32,
}

impl Received {
    pub fn name(&self) -> &'static str {
        match self.signal {
            libc::SIGINT => "SIGINT",
            libc::SIGTERM => "SIGTERM",
            libc::SIGHUP => "SIGHUP",
            _ => "a signal",
        }
    }
}

/// Reads one pending signal from `fd` (non-blocking); `None` when none is pending.
pub fn read_signal(fd: &OwnedFd) -> io::Result<Option<Received>> {
    // SAFETY: signalfd_siginfo is plain data; read(2) fills it whole or not at all.
    unsafe {
        let mut info: libc::signalfd_siginfo = std::mem::zeroed();
        let size = size_of::<libc::signalfd_siginfo>();
        let n = libc::read(fd.as_raw_fd(), (&raw mut info).cast(), size);
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::WouldBlock {
                Ok(None)
            } else {
                Err(e)
            };
        }
        if n as usize != size {
            return Ok(None);
        }
        Ok(Some(Received {
            signal: info.ssi_signo as libc::c_int,
            sent: info.ssi_code != libc::SI_KERNEL,
            sender: info.ssi_pid,
        }))
    }
}

/// Forks a child that stops itself and, once continued, execs `argv` as `user`. Call before
/// any thread is started: the child only makes async-signal-safe calls.
pub fn spawn_stopped(
    argv: &[String],
    stdout: CommandStdout,
    user: CommandUser,
) -> Result<StoppedChild> {
    let Some(program) = argv.first() else {
        bail!("no command given to run");
    };
    let path = resolve(program)?;
    let prepared = Prepared {
        path: CString::new(path.as_os_str().as_bytes())
            .context("the command's path must not contain NUL bytes")?,
        argv: argv
            .iter()
            .map(|a| CString::new(a.as_str()))
            .collect::<Result<_, _>>()
            .context("command arguments must not contain NUL bytes")?,
        groups: match &user {
            CommandUser::User(user) => user.groups.clone(),
            _ => Vec::new(),
        },
        user,
        last_cap: last_cap(),
    };
    let mut arg_ptrs: Vec<*const libc::c_char> = prepared.argv.iter().map(|a| a.as_ptr()).collect();
    arg_ptrs.push(std::ptr::null());

    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error()).context("pipe2");
    }
    // SAFETY: pipe2 just returned these two open descriptors; each is owned once.
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };

    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    // SAFETY: the caller guarantees a single-threaded process; the child below only makes
    // async-signal-safe calls on memory prepared before fork.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error()).context("fork");
    }
    if pid == 0 {
        // SAFETY: see above; this never returns.
        unsafe { child(&prepared, &arg_ptrs, stdout, parent, write_end.as_raw_fd()) }
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
        let mut errno = [0u8; 4];
        // SAFETY: reading into a 4-byte buffer from our pipe.
        let n = unsafe { libc::read(child.exec_status.as_raw_fd(), errno.as_mut_ptr().cast(), 4) };
        if n == 4 {
            let step = i32::from_ne_bytes(errno);
            bail!(
                "the child for {program} could not be prepared ({})",
                step_name(step)
            );
        }
        bail!("the child for {program} did not stop before exec as expected");
    }
    Ok(child)
}

/// Steps of the child that can fail before exec, reported through the pipe as negative codes
/// (exec's own failure is its errno, positive).
const STEP_CREDENTIALS: i32 = -1;
const STEP_CAPABILITIES: i32 = -2;
const STEP_PARENT_GONE: i32 = -3;

fn step_name(step: i32) -> &'static str {
    match step {
        STEP_CREDENTIALS => "taking the command's user failed",
        STEP_CAPABILITIES => "dropping the capabilities failed",
        STEP_PARENT_GONE => "the agent died before it was ready",
        _ => "an unknown step failed",
    }
}

/// Between fork and exec: raw syscalls only (async-signal-safe), no allocation, no lock.
///
/// # Safety
/// Only in the child of a fork, with `prepared` and `argv` built before it.
unsafe fn child(
    prepared: &Prepared,
    argv: &[*const libc::c_char],
    stdout: CommandStdout,
    parent: libc::pid_t,
    status_fd: libc::c_int,
) -> ! {
    let fail = |code: i32| -> ! {
        libc::write(status_fd, (&raw const code).cast(), 4);
        libc::_exit(127)
    };
    if stdout == CommandStdout::ToStderr {
        libc::dup2(libc::STDERR_FILENO, libc::STDOUT_FILENO);
    }
    // 1. Credentials. The raw syscalls change this thread only, the only one a forked child has.
    match &prepared.user {
        CommandUser::User(user) => {
            if libc::syscall(
                libc::SYS_setgroups,
                prepared.groups.len(),
                prepared.groups.as_ptr(),
            ) != 0
                || libc::syscall(libc::SYS_setresgid, user.gid, user.gid, user.gid) != 0
                || libc::syscall(libc::SYS_setresuid, user.uid, user.uid, user.uid) != 0
            {
                fail(STEP_CREDENTIALS);
            }
        }
        CommandUser::RootWithoutCapabilities => {
            // Exec must not make root's capabilities again (NOROOT), nor may a uid change
            // touch them (NO_SETUID_FIXUP), nor keep-caps be turned on; all locked.
            let bits = libc::SECBIT_NOROOT
                | libc::SECBIT_NOROOT_LOCKED
                | libc::SECBIT_NO_SETUID_FIXUP
                | libc::SECBIT_NO_SETUID_FIXUP_LOCKED
                | libc::SECBIT_KEEP_CAPS_LOCKED;
            if libc::prctl(libc::PR_SET_SECUREBITS, bits as libc::c_ulong, 0, 0, 0) != 0 {
                fail(STEP_CAPABILITIES);
            }
            let mut cap = 0;
            while cap <= prepared.last_cap {
                libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0);
                cap += 1;
            }
        }
        CommandUser::Same | CommandUser::Root => {}
    }
    // 2. No capability of ours crosses exec: none ambient, none inheritable, none held. (A
    // root command asked for regains root's at exec, from its uid alone.)
    libc::prctl(
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
        0,
        0,
        0,
    );
    let mut header = [0x2008_0522u32, 0]; // _LINUX_CAPABILITY_VERSION_3, this thread
    let none = [0u32; 6];
    if libc::syscall(libc::SYS_capset, header.as_mut_ptr(), none.as_ptr()) != 0 {
        fail(STEP_CAPABILITIES);
    }
    // 3. Die with the agent (with the thread that forked: the main one). After the credential
    // change, which clears it; then make sure the agent did not die in between.
    libc::prctl(
        libc::PR_SET_PDEATHSIG,
        libc::SIGKILL as libc::c_ulong,
        0,
        0,
        0,
    );
    if libc::getppid() != parent {
        fail(STEP_PARENT_GONE);
    }
    // 4. Signals as a command started by a shell has them.
    let mut action: libc::sigaction = std::mem::zeroed();
    action.sa_sigaction = libc::SIG_DFL;
    libc::sigaction(libc::SIGPIPE, &action, std::ptr::null_mut());
    let mut empty: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut empty);
    libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
    // 5. Wait for the tracer to register us, then run the command.
    libc::raise(libc::SIGSTOP);
    extern "C" {
        static environ: *const *const libc::c_char;
    }
    libc::execve(prepared.path.as_ptr(), argv.as_ptr(), environ);
    fail(*libc::__errno_location())
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
            let code = i32::from_ne_bytes(errno);
            if code < 0 {
                bail!("cannot run {}: {}", self.program, step_name(code));
            }
            let err = io::Error::from_raw_os_error(code);
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
    pub fn pid(&self) -> u32 {
        self.pid as u32
    }

    /// Sends `signal` to the command.
    pub fn signal(&self, signal: libc::c_int) -> io::Result<()> {
        // SAFETY: signalling our own child.
        if unsafe { libc::kill(self.pid, signal) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

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

    fn spawn(argv: &[&str]) -> Result<StoppedChild> {
        let argv: Vec<String> = argv.iter().map(|a| a.to_string()).collect();
        spawn_stopped(&argv, CommandStdout::Inherit, CommandUser::Same)
    }

    // These fork the test process; the test harness runs tests on threads, but the child only
    // calls async-signal-safe functions, which is what makes fork safe there.
    #[test]
    fn runs_a_command_and_reports_its_status() {
        let child = spawn(&["sh", "-c", "exit 7"]).unwrap();
        assert!(child.pid() > 0);
        let running = child.resume().unwrap();
        assert_eq!(running.wait().unwrap(), 7);
    }

    #[test]
    fn a_missing_command_is_an_error_before_anything_runs() {
        let message = format!(
            "{:#}",
            spawn(&["/nonexistent/zerocopy-trace-nope"]).err().unwrap()
        );
        assert_eq!(
            message,
            "cannot run /nonexistent/zerocopy-trace-nope: No such file or directory (os error 2)"
        );
        let message = format!("{:#}", spawn(&["zerocopy-trace-nope"]).err().unwrap());
        assert_eq!(message, "cannot run zerocopy-trace-nope: not found in PATH");
        let message = format!("{:#}", spawn(&["/etc/passwd"]).err().unwrap());
        assert_eq!(message, "cannot run /etc/passwd: not an executable file");
    }

    #[test]
    fn an_unresumed_child_is_killed() {
        let child = spawn(&["sleep", "100"]).unwrap();
        let pid = child.pid();
        drop(child);
        assert!(!crate::system::procfs::exists(pid));
    }

    /// The command starts with nothing blocked and SIGPIPE at its default, so SIGPIPE kills it
    /// (141), as in a shell (the test harness, Rust, ignores SIGPIPE).
    #[test]
    fn the_command_has_default_signals() {
        let child = spawn(&[
            "sh",
            "-c",
            "grep -qE '^SigBlk:[[:space:]]+0+$' /proc/self/status || exit 3; kill -PIPE $$; exit 0",
        ])
        .unwrap();
        assert_eq!(child.resume().unwrap().wait().unwrap(), 141);
    }
}
