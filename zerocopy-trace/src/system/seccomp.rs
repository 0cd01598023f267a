//! The seccomp allow-list installed once the agent is attached and has dropped its privileges:
//! the syscalls it makes from then on (reading maps and /proc, serving HTTP and TLS, drawing
//! the dashboard, waiting for and signalling the command of `run`, detaching), and nothing
//! else: no socket can be opened, no program run, no file renamed or its mode changed.
//!
//! A syscall outside the list is not a silent kill: it raises SIGSYS, whose handler writes
//! `zerocopy-trace: seccomp: blocked syscall N (name)` to standard error and makes the call
//! fail with ENOSYS (the kernel leaves the registers as they were at the call; the handler sets
//! the return register), so the caller sees an error it can report, and the log names what to
//! add. On architectures whose return register the handler does not know, the call fails with
//! EPERM instead, without the line.
//!
//! The list was taken from `strace -f` of every command after attach (the exporter over TLS
//! with Basic auth under attack, the dashboard, `report`, `run`), plus calls glibc, std, tokio
//! or rustls make on paths those runs did not take (a thread starting, a big buffer growing).
//!
//! The names helper (`containers::helper`) has a list of its own, narrower still, with
//! conditions on two calls' arguments (`install_names_helper`); its blocked calls are said the
//! same way, as the helper's.

use std::{
    collections::BTreeMap,
    sync::atomic::{AtomicBool, Ordering},
};

use anyhow::{anyhow, Result};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// The allowed syscalls, with the names the SIGSYS line uses.
macro_rules! syscalls {
    ($($name:ident),* $(,)?) => {
        &[$((libc::$name, stringify!($name)),)*]
    };
}

/// Everything the agent calls after attach.
const ALLOWED: &[(libc::c_long, &str)] = syscalls![
    // Memory (allocation, thread stacks, big buffers growing).
    SYS_brk,
    SYS_mmap,
    SYS_munmap,
    SYS_mremap,
    SYS_mprotect,
    SYS_madvise,
    // Threads: tokio's blocking pool (password checks, `run`'s wait), detach's threads.
    SYS_clone,
    SYS_clone3,
    SYS_set_robust_list,
    SYS_rseq,
    SYS_sigaltstack,
    SYS_gettid,
    SYS_futex,
    SYS_sched_getaffinity,
    SYS_sched_yield,
    SYS_exit,
    SYS_exit_group,
    // Signals: handlers (tokio's, glibc's for its threads), masks, `run` forwarding to its
    // command and reading signalfd, glibc's per-thread signals.
    SYS_rt_sigaction,
    SYS_rt_sigprocmask,
    SYS_rt_sigreturn,
    SYS_kill,
    SYS_tgkill,
    SYS_restart_syscall,
    // The runtime: epoll, its waker, timers.
    SYS_epoll_pwait,
    SYS_epoll_ctl,
    SYS_eventfd2,
    SYS_nanosleep,
    SYS_clock_nanosleep,
    SYS_clock_gettime,
    SYS_getrandom,
    // Files and descriptors already open or opened for reading: /proc, the terminal, the
    // report's temporary file, pipes.
    SYS_read,
    SYS_write,
    SYS_readv,
    SYS_writev,
    SYS_pread64,
    SYS_pwrite64,
    SYS_openat,
    SYS_close,
    SYS_fstat,
    SYS_newfstatat,
    SYS_statx,
    SYS_lseek,
    SYS_getdents64,
    SYS_readlinkat,
    SYS_fcntl,
    SYS_ioctl,
    SYS_ppoll,
    SYS_pipe2,
    SYS_dup,
    SYS_fsync,
    SYS_fdatasync,
    SYS_getcwd,
    SYS_uname,
    SYS_prlimit64,
    // The exporter's listening socket and its connections (no new socket can be made).
    SYS_accept4,
    SYS_recvfrom,
    SYS_sendto,
    SYS_recvmsg,
    SYS_sendmsg,
    SYS_shutdown,
    SYS_setsockopt,
    SYS_getsockopt,
    SYS_getsockname,
    SYS_getpeername,
    // The maps (and detaching), the command of `run`.
    SYS_bpf,
    SYS_wait4,
    SYS_waitid,
    SYS_getpid,
    SYS_getppid,
    SYS_getuid,
    SYS_geteuid,
    SYS_getgid,
    SYS_getegid,
    SYS_prctl,
    SYS_capget,
];

/// What only x86_64 has (the calls newer architectures replaced with their `*at` forms).
#[cfg(target_arch = "x86_64")]
const ALLOWED_X86_64: &[(libc::c_long, &str)] = syscalls![SYS_epoll_wait, SYS_poll];
#[cfg(not(target_arch = "x86_64"))]
const ALLOWED_X86_64: &[(libc::c_long, &str)] = &[];

/// Other syscalls the SIGSYS line can name.
const NAMED: &[(libc::c_long, &str)] = syscalls![
    SYS_socket,
    SYS_connect,
    SYS_bind,
    SYS_listen,
    SYS_socketpair,
    SYS_execve,
    SYS_execveat,
    SYS_ptrace,
    SYS_mount,
    SYS_umount2,
    SYS_unlinkat,
    SYS_renameat,
    SYS_renameat2,
    SYS_mkdirat,
    SYS_fchmod,
    SYS_fchmodat,
    SYS_fchown,
    SYS_fchownat,
    SYS_setuid,
    SYS_setgid,
    SYS_setresuid,
    SYS_setresgid,
    SYS_setgroups,
    SYS_capset,
    SYS_linkat,
    SYS_symlinkat,
    SYS_truncate,
    SYS_ftruncate,
    SYS_memfd_create,
    SYS_process_vm_readv,
    SYS_process_vm_writev,
    SYS_perf_event_open,
    SYS_init_module,
    SYS_finit_module,
    SYS_kexec_load,
    SYS_reboot,
    SYS_setns,
    SYS_unshare,
    SYS_pidfd_open,
    SYS_pidfd_send_signal,
    SYS_pidfd_getfd,
    SYS_io_uring_setup,
    SYS_seccomp,
    SYS_epoll_create1,
    SYS_signalfd4,
    SYS_timerfd_create,
    SYS_inotify_init1,
    SYS_sched_setaffinity,
    SYS_set_tid_address,
    SYS_membarrier,
    SYS_setpriority,
    SYS_getpriority,
];

#[cfg(target_arch = "x86_64")]
const NAMED_X86_64: &[(libc::c_long, &str)] = syscalls![
    SYS_fork,
    SYS_vfork,
    SYS_open,
    SYS_creat,
    SYS_unlink,
    SYS_rename,
    SYS_mkdir,
    SYS_rmdir,
    SYS_chmod,
    SYS_chown,
    SYS_link,
    SYS_symlink,
];
#[cfg(not(target_arch = "x86_64"))]
const NAMED_X86_64: &[(libc::c_long, &str)] = &[];

/// Every allowed syscall.
fn allowed() -> impl Iterator<Item = &'static (libc::c_long, &'static str)> {
    ALLOWED.iter().chain(ALLOWED_X86_64)
}

/// The name of syscall `nr`, if known (async-signal-safe: a search of static tables).
fn name_of(nr: libc::c_long) -> Option<&'static str> {
    allowed()
        .chain(NAMED)
        .chain(NAMED_X86_64)
        .find(|(known, _)| *known == nr)
        .map(|(_, name)| &name[4..])
}

/// What the names helper calls once confined (`containers::helper`): memory, its runtime's
/// epoll and timers, reading and writing what it holds, connecting its sockets, listing
/// kubelet's directories. `socket` and `openat` are allowed with conditions of their own
/// (`install_names_helper`); nothing else: no thread, no program, no file written, renamed or
/// its mode changed, no signal sent, no credential changed.
const NAMES_HELPER_ALLOWED: &[(libc::c_long, &str)] = syscalls![
    SYS_brk,
    SYS_mmap,
    SYS_munmap,
    SYS_mremap,
    SYS_mprotect,
    SYS_madvise,
    SYS_futex,
    SYS_sched_yield,
    SYS_rt_sigreturn,
    SYS_rt_sigprocmask,
    SYS_sigaltstack,
    SYS_exit,
    SYS_exit_group,
    SYS_epoll_pwait,
    SYS_epoll_ctl,
    SYS_clock_gettime,
    SYS_clock_nanosleep,
    SYS_nanosleep,
    SYS_getrandom,
    SYS_read,
    SYS_write,
    SYS_readv,
    SYS_writev,
    SYS_recvfrom,
    SYS_sendto,
    SYS_recvmsg,
    SYS_sendmsg,
    SYS_close,
    SYS_fstat,
    SYS_newfstatat,
    SYS_statx,
    SYS_getdents64,
    SYS_fcntl,
    SYS_connect,
    SYS_getsockopt,
    SYS_getsockname,
    SYS_getpeername,
    SYS_shutdown,
    SYS_getpid,
    SYS_getppid,
];

#[cfg(target_arch = "x86_64")]
const NAMES_HELPER_ALLOWED_X86_64: &[(libc::c_long, &str)] = syscalls![SYS_epoll_wait];
#[cfg(not(target_arch = "x86_64"))]
const NAMES_HELPER_ALLOWED_X86_64: &[(libc::c_long, &str)] = &[];

/// `openat`'s flags that write, create or truncate: the helper opens for reading only.
const OPEN_WRITES: u64 = (libc::O_ACCMODE | libc::O_CREAT | libc::O_TRUNC | libc::O_APPEND) as u64;

/// Whether this process is the names helper (for the SIGSYS line).
static IN_NAMES_HELPER: AtomicBool = AtomicBool::new(false);

/// Installs the agent's allow-list on every thread of this process (it also sets `NoNewPrivs`,
/// which a filter needs without CAP_SYS_ADMIN).
pub fn install() -> Result<()> {
    apply(allowed().map(|&(nr, _)| (nr, Vec::new())).collect())
}

/// Installs the names helper's allow-list: its calls, `socket` for unix sockets only
/// (`AF_UNIX` as the domain) and `openat` for reading only (none of `OPEN_WRITES`).
pub fn install_names_helper() -> Result<()> {
    IN_NAMES_HELPER.store(true, Ordering::Relaxed);
    let condition = |arg, op, value| {
        SeccompCondition::new(arg, SeccompCmpArgLen::Dword, op, value)
            .and_then(|c| SeccompRule::new(vec![c]))
            .map_err(|e| anyhow!("building the seccomp filter: {e}"))
    };
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = NAMES_HELPER_ALLOWED
        .iter()
        .chain(NAMES_HELPER_ALLOWED_X86_64)
        .map(|&(nr, _)| (nr, Vec::new()))
        .collect();
    rules.insert(
        libc::SYS_socket,
        vec![condition(0, SeccompCmpOp::Eq, libc::AF_UNIX as u64)?],
    );
    rules.insert(
        libc::SYS_openat,
        vec![condition(2, SeccompCmpOp::MaskedEq(OPEN_WRITES), 0)?],
    );
    apply(rules)
}

/// Installs `rules` (a syscall with no rule is allowed outright) on every thread.
fn apply(rules: BTreeMap<i64, Vec<SeccompRule>>) -> Result<()> {
    let trap = handles_sigsys();
    if trap {
        install_sigsys_handler()?;
    }
    let denied = if trap {
        SeccompAction::Trap
    } else {
        SeccompAction::Errno(libc::EPERM as u32)
    };
    let arch: TargetArch = std::env::consts::ARCH
        .try_into()
        .map_err(|e| anyhow!("seccomp on {}: {e:?}", std::env::consts::ARCH))?;
    let filter = SeccompFilter::new(rules, denied, SeccompAction::Allow, arch)
        .map_err(|e| anyhow!("building the seccomp filter: {e}"))?;
    let program: BpfProgram = filter
        .try_into()
        .map_err(|e| anyhow!("compiling the seccomp filter: {e:?}"))?;
    seccompiler::apply_filter_all_threads(&program)
        .map_err(|e| anyhow!("installing the seccomp filter: {e}"))
}

/// Whether the SIGSYS handler can make a blocked call return an error on this architecture.
fn handles_sigsys() -> bool {
    cfg!(any(target_arch = "x86_64", target_arch = "aarch64"))
}

/// The part of a SIGSYS siginfo the handler reads (64-bit layout: the union at byte 16).
#[repr(C)]
struct SigsysInfo {
    signo: libc::c_int,
    errno: libc::c_int,
    code: libc::c_int,
    _pad: libc::c_int,
    call_addr: *mut libc::c_void,
    syscall: libc::c_int,
    arch: libc::c_uint,
}

/// Writes `zerocopy-trace: seccomp: blocked syscall N (name)` with write(2) alone: no
/// allocation, no lock (a signal handler may interrupt either).
fn say_blocked(nr: libc::c_long) {
    let mut line = [0u8; 128];
    let mut len = 0;
    let mut put = |bytes: &[u8]| {
        let n = bytes.len().min(line.len() - len);
        line[len..len + n].copy_from_slice(&bytes[..n]);
        len += n;
    };
    if IN_NAMES_HELPER.load(Ordering::Relaxed) {
        put(b"zerocopy-trace names helper: seccomp: blocked syscall ");
    } else {
        put(b"zerocopy-trace: seccomp: blocked syscall ");
    }
    let mut digits = [0u8; 20];
    let mut d = digits.len();
    let mut v = nr.unsigned_abs();
    loop {
        d -= 1;
        digits[d] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    put(&digits[d..]);
    if let Some(name) = name_of(nr) {
        put(b" (");
        put(name.as_bytes());
        put(b")");
    }
    put(b"; it fails with ENOSYS\n");
    // SAFETY: write(2) of a buffer on the stack; async-signal-safe.
    unsafe { libc::write(libc::STDERR_FILENO, line.as_ptr().cast(), len) };
}

extern "C" fn on_sigsys(
    _signal: libc::c_int,
    info: *mut libc::siginfo_t,
    context: *mut libc::c_void,
) {
    // SAFETY: the kernel passes a SIGSYS siginfo and the interrupted context to an SA_SIGINFO
    // handler; only the syscall number is read and the return register written.
    unsafe {
        let info = &*info.cast::<SigsysInfo>();
        say_blocked(libc::c_long::from(info.syscall));
        let context = &mut *context.cast::<libc::ucontext_t>();
        #[cfg(target_arch = "x86_64")]
        {
            context.uc_mcontext.gregs[libc::REG_RAX as usize] =
                -libc::c_longlong::from(libc::ENOSYS);
        }
        #[cfg(target_arch = "aarch64")]
        {
            context.uc_mcontext.regs[0] = (-libc::c_longlong::from(libc::ENOSYS)) as u64;
        }
        let _ = context;
    }
}

fn install_sigsys_handler() -> Result<()> {
    // SAFETY: a sigaction with a valid handler and an empty mask.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigsys as *const () as libc::sighandler_t;
        action.sa_flags = libc::SA_SIGINFO;
        libc::sigemptyset(&mut action.sa_mask);
        if libc::sigaction(libc::SIGSYS, &action, std::ptr::null_mut()) != 0 {
            return Err(anyhow!(
                "installing the SIGSYS handler: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_tables() {
        assert_eq!(name_of(libc::SYS_bpf), Some("bpf"));
        assert_eq!(name_of(libc::SYS_socket), Some("socket"));
        assert_eq!(name_of(-5), None);
        let denied: Vec<_> = NAMED.iter().chain(NAMED_X86_64).collect();
        assert!(
            !allowed().any(|(nr, _)| denied.iter().any(|(n, _)| n == nr)),
            "a syscall is both allowed and not"
        );
    }

    /// In a child process (the filter is for good and reaches every thread): an allowed call
    /// works, a denied one fails with ENOSYS and says so.
    #[test]
    fn a_denied_syscall_is_an_error_not_a_kill() {
        // SAFETY: the child only runs the filter and plain syscalls, then _exits.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let code = (|| {
                install().ok()?;
                // SAFETY: plain syscalls.
                let allowed = unsafe { libc::getppid() } > 0;
                let denied = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
                let errno = std::io::Error::last_os_error().raw_os_error();
                (allowed && denied == -1 && errno == Some(libc::ENOSYS)).then_some(0)
            })()
            .unwrap_or(1);
            // SAFETY: leaving the forked child without running the harness's exit path.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFEXITED(status), "killed: status {status:#x}");
        assert_eq!(libc::WEXITSTATUS(status), 0);
    }

    /// The names helper's list, in a child: a unix socket and a read-only open work; a TCP
    /// socket, an open for writing (or creating, or truncating), an exec and a thread fail with
    /// ENOSYS. The child exits with the number of the first check that did not hold.
    #[test]
    fn the_names_helper_may_only_read_and_use_unix_sockets() {
        // Prepared before the fork: the child allocates nothing.
        let path = std::ffi::CString::new("/etc/hostname").unwrap();
        let scratch = std::env::temp_dir().join(format!("zct-seccomp-{}", std::process::id()));
        let scratch = std::ffi::CString::new(scratch.to_str().unwrap()).unwrap();
        let shell = std::ffi::CString::new("/bin/true").unwrap();
        // SAFETY: the child only runs the filter and plain syscalls, then _exits.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            // SAFETY: plain syscalls on prepared arguments; the child _exits.
            unsafe {
                let enosys =
                    |rc: libc::c_long| rc == -1 && *libc::__errno_location() == libc::ENOSYS;
                let code = if install_names_helper().is_err() {
                    1
                } else if libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0) < 0 {
                    2
                } else if libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) < 0 {
                    3
                } else if !enosys(libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0).into()) {
                    4
                } else if !enosys(libc::socket(libc::AF_NETLINK, libc::SOCK_RAW, 0).into()) {
                    5
                } else if !enosys(libc::open(path.as_ptr(), libc::O_WRONLY).into()) {
                    6
                } else if !enosys(libc::open(path.as_ptr(), libc::O_RDWR).into()) {
                    7
                } else if !enosys(
                    libc::open(scratch.as_ptr(), libc::O_RDONLY | libc::O_CREAT, 0o600).into(),
                ) {
                    8
                } else if !enosys(libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_TRUNC).into())
                {
                    9
                } else if !enosys(
                    libc::execv(shell.as_ptr(), [shell.as_ptr(), std::ptr::null()].as_ptr()).into(),
                ) {
                    10
                } else if !enosys(libc::syscall(libc::SYS_clone3, 0, 0)) {
                    11
                } else if !enosys(libc::syscall(libc::SYS_setuid, 0)) {
                    12
                } else {
                    0
                };
                libc::_exit(code)
            }
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(libc::WIFEXITED(status), "killed: status {status:#x}");
        assert_eq!(libc::WEXITSTATUS(status), 0, "the check that failed");
    }
}
