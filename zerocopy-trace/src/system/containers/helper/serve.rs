//! The names helper's own side, `zerocopy-trace names-helper`: confined first, then one
//! listing of its sources for each `list` the agent sends, until the agent goes away.

use std::{
    io::{self, Read, Write},
    os::{
        fd::{FromRawFd, OwnedFd},
        unix::net::UnixStream,
    },
    path::PathBuf,
    time::Instant,
};

use anyhow::{bail, Context, Result};

use super::{
    super::{ask_all, kubelet, SourceKind, Sources, RELIST_INTERVAL},
    protocol::{encode_answer, READY, REQUEST},
};
use crate::system::{landlock, privileges, seccomp};

/// Runs the helper: `parent` is the agent's pid, `specs` the sources as `--names-from` takes
/// them. Returns when the agent closes its end; any other way out is an error.
pub fn serve(parent: u32, specs: &[String]) -> Result<()> {
    let stream = agent_socket()?;
    end_with(parent)?;
    // Its own name in ps, top and the agent's own reports (an exec of /proc/self/exe is "exe").
    // SAFETY: PR_SET_NAME copies at most 16 bytes of a NUL-terminated string.
    unsafe { libc::prctl(libc::PR_SET_NAME, c"zerocopy-names".as_ptr(), 0, 0, 0) };
    let sources = Sources::parse(specs).map_err(anyhow::Error::msg)?;
    close_other_descriptors();
    privileges::drop_for_names_helper()?;
    let listable = listable(&sources);
    landlock::confine_to_listing(&listable.iter().map(PathBuf::as_path).collect::<Vec<_>>())?;
    // Built before the filter: it makes its epoll instance and its waker then.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    seccomp::install_names_helper()?;
    (&stream)
        .write_all(READY)
        .context("telling the agent it is ready")?;
    let mut last: Option<Instant> = None;
    while read_request(&stream)? {
        // At most one listing a `RELIST_INTERVAL`, whatever the agent asks: the runtimes are
        // never asked more often than the agent itself would.
        if let Some(at) = last {
            std::thread::sleep(RELIST_INTERVAL.saturating_sub(at.elapsed()));
        }
        last = Some(Instant::now());
        let answers = runtime.block_on(ask_all(&sources));
        let answer = encode_answer(answers.iter().map(|(_, answer)| answer));
        match (&stream).write_all(&answer) {
            Ok(()) => {}
            // The agent is gone: so is the helper.
            Err(err) if err.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
            Err(err) => return Err(err).context("answering the agent"),
        }
    }
    Ok(())
}

/// The directories the helper may list under Landlock: kubelet's log directories (each
/// source's and its pods' beside it), or, where a source is not there yet, the directory it
/// will be made in (kubelet may start after the agent).
fn listable(sources: &Sources) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for source in sources
        .0
        .iter()
        .filter(|s| s.kind == SourceKind::KubeletLogs)
    {
        if source.path.is_dir() {
            dirs.push(source.path.clone());
            dirs.push(kubelet::pods_dir(&source.path));
        } else if let Some(parent) = source.path.parent() {
            dirs.push(parent.to_path_buf());
        }
    }
    dirs
}

/// Standard input, which the agent made one end of a socket pair; anything else means the
/// helper was not started by the agent.
fn agent_socket() -> Result<UnixStream> {
    // SAFETY: fstat of descriptor 0 into a zeroed stat.
    let is_socket = unsafe {
        let mut stat: libc::stat = std::mem::zeroed();
        libc::fstat(0, &mut stat) == 0 && stat.st_mode & libc::S_IFMT == libc::S_IFSOCK
    };
    if !is_socket {
        bail!("{} is started by the agent itself", super::SUBCOMMAND);
    }
    // SAFETY: descriptor 0 is open (checked above) and owned by nothing else from here on.
    Ok(UnixStream::from(unsafe { OwnedFd::from_raw_fd(0) }))
}

/// Dies with the agent, even when it is killed: the kernel sends SIGKILL when the thread that
/// started this process ends (the agent's main thread). Checked after asking, so an agent that
/// died just before is not missed. Terminal and service-manager signals meant for the agent
/// are ignored: it still wants names for its final report after a Ctrl-C or a stop.
fn end_with(parent: u32) -> Result<()> {
    // SAFETY: plain prctl and signal calls with constant arguments.
    unsafe {
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
            return Err(io::Error::last_os_error()).context("PR_SET_PDEATHSIG");
        }
        for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
            libc::signal(signal, libc::SIG_IGN);
        }
        if libc::getppid() as u32 != parent {
            bail!("the agent (pid {parent}) is gone");
        }
    }
    Ok(())
}

/// Closes every descriptor but the standard three: the agent's are close-on-exec, but nothing
/// it might have left open is to outlive it here.
fn close_other_descriptors() {
    // SAFETY: close_range(2) of descriptors this process does not use.
    let closed = unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    if closed != 0 {
        // Before 5.9: those /proc lists.
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            let fds: Vec<i32> = fds
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .filter(|&fd| fd > 2)
                .collect();
            for fd in fds {
                // SAFETY: as above.
                unsafe { libc::close(fd) };
            }
        }
    }
}

/// Waits for the next request: `false` when the agent closed its end.
fn read_request(mut stream: &UnixStream) -> Result<bool> {
    let mut request = [0u8; REQUEST.len()];
    let mut got = 0;
    while got < request.len() {
        match stream.read(&mut request[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => bail!("the agent closed its end inside a request"),
            Ok(n) => got += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) if err.kind() == io::ErrorKind::ConnectionReset => return Ok(false),
            Err(err) => return Err(err).context("reading the agent's request"),
        }
    }
    if request != REQUEST {
        bail!("an unknown request from the agent");
    }
    Ok(true)
}
