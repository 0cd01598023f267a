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

use std::collections::BTreeMap;

use anyhow::{anyhow, Result};
use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, TargetArch};

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

/// Installs the allow-list on every thread of this process (it also sets `NoNewPrivs`, which a
/// filter needs without CAP_SYS_ADMIN).
pub fn install() -> Result<()> {
    let trap = handles_sigsys();
    if trap {
        install_sigsys_handler()?;
    }
    let rules: BTreeMap<i64, Vec<seccompiler::SeccompRule>> =
        allowed().map(|&(nr, _)| (nr, Vec::new())).collect();
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
    let mut line = [0u8; 96];
    let mut len = 0;
    let mut put = |bytes: &[u8]| {
        let n = bytes.len().min(line.len() - len);
        line[len..len + n].copy_from_slice(&bytes[..n]);
        len += n;
    };
    put(b"zerocopy-trace: seccomp: blocked syscall ");
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
}
