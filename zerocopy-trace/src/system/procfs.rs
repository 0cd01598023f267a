//! What the agent reads from /proc: a process's name and parent, whether it exists, and the
//! mount table. The `procfs` crate reads and parses; this module only picks what we need.
//! A process can vanish between any two reads; that is an ordinary `None`, never an error.

use std::path::PathBuf;

use procfs::{
    process::{Process, Stat},
    FromRead, MountEntry,
};

/// The memory the kernel says is available for new work (`MemAvailable` in /proc/meminfo),
/// in bytes; `None` where it cannot be read.
pub fn mem_available() -> Option<u64> {
    use procfs::Current;
    procfs::Meminfo::current().ok()?.mem_available
}

/// The kernel memory charged to the BPF maps this process holds: the `memlock` of each map
/// fd in /proc/self/fdinfo, in bytes (what `bpftool map` shows as memlock).
pub fn own_bpf_map_bytes() -> u64 {
    let Ok(entries) = std::fs::read_dir("/proc/self/fdinfo") else {
        return 0;
    };
    entries
        .flatten()
        .filter_map(|entry| std::fs::read_to_string(entry.path()).ok())
        .filter(|info| info.lines().any(|line| line.starts_with("map_type:")))
        .filter_map(|info| {
            info.lines()
                .find_map(|line| line.strip_prefix("memlock:"))
                .and_then(|value| value.trim().parse::<u64>().ok())
        })
        .sum()
}

/// Name and parent of a live process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessInfo {
    pub comm: String,
    pub ppid: u32,
    /// Thread group id: differs from the pid asked about when that pid is a thread.
    pub tgid: u32,
}

/// Reads /proc/PID/stat (name and parent) and /proc/PID/status (thread group), both through
/// one handle on /proc/PID, so a pid reused between the two reads cannot mix two processes.
pub fn process_info(pid: u32) -> Option<ProcessInfo> {
    info_of(&Process::new(i32::try_from(pid).ok()?).ok()?)
}

fn info_of(process: &Process) -> Option<ProcessInfo> {
    // The name comes from `stat`, which prints `comm` as the kernel holds it: `status`
    // escapes it, and the crate cuts its `Name:` at the first ':' (`kworker/0:1`).
    let stat = process.stat().ok()?;
    let status = process.status().ok()?;
    Some(ProcessInfo {
        comm: stat.comm,
        ppid: u32::try_from(stat.ppid).ok()?,
        tgid: u32::try_from(status.tgid).ok()?,
    })
}

/// Name and parent of thread-group leader `tgid`, from /proc/TGID/stat alone. The collector
/// learns every new process of the live map this way: its keys are thread groups already, so
/// `process_info`'s directory handle and `status` parse (two thirds of the cost, and most of
/// the agent's CPU when many processes start) are not needed.
pub fn leader_info(tgid: u32) -> Option<ProcessInfo> {
    let stat = Stat::from_file(format!("/proc/{tgid}/stat")).ok()?;
    Some(ProcessInfo {
        comm: stat.comm,
        ppid: u32::try_from(stat.ppid).ok()?,
        tgid,
    })
}

/// Turns a kernel `comm` buffer (NUL-padded) into a string.
pub fn comm_from_bytes(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// Mount points of file systems of type `fstype` in a mount table (from `mounts()`).
pub fn mount_points(mounts: &[MountEntry], fstype: &str) -> Vec<PathBuf> {
    mounts
        .iter()
        .filter(|entry| entry.fs_vfstype == fstype)
        .map(|entry| PathBuf::from(&entry.fs_file))
        .collect()
}

/// This process's mount table (`/proc/self/mounts`); empty when it cannot be read.
pub fn mounts() -> Vec<MountEntry> {
    procfs::mounts().unwrap_or_default()
}

/// Whether a process (or thread) with this pid exists.
pub fn exists(pid: u32) -> bool {
    i32::try_from(pid).is_ok_and(|pid| Process::new(pid).is_ok())
}

/// Every process (thread group) currently alive with its parent, (pid, parent pid), from
/// /proc/PID/stat alone.
pub fn parents() -> Vec<(u32, u32)> {
    let Ok(processes) = procfs::process::all_processes() else {
        return Vec::new();
    };
    processes
        .filter_map(|process| {
            let stat = process.ok()?.stat().ok()?;
            Some((
                u32::try_from(stat.pid).ok()?,
                u32::try_from(stat.ppid).ok()?,
            ))
        })
        .collect()
}

/// Every process (thread group) currently alive, with its info.
pub fn all_processes() -> Vec<(u32, ProcessInfo)> {
    let Ok(processes) = procfs::process::all_processes() else {
        return Vec::new();
    };
    processes
        .filter_map(|process| {
            let process = process.ok()?;
            let pid = u32::try_from(process.pid()).ok()?;
            Some((pid, info_of(&process)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use procfs::FromBufRead;
    use proptest::prelude::*;

    use super::*;

    fn table(text: &str) -> Vec<MountEntry> {
        Vec::<MountEntry>::from_buf_read(text.as_bytes()).expect("a well-formed mount table")
    }

    #[test]
    fn mount_points_by_type() {
        let hybrid = table(
            "cgroup /sys/fs/cgroup/cpu cgroup rw 0 0\ncgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\ntracefs /sys/kernel/tracing tracefs rw 0 0\n",
        );
        assert_eq!(
            mount_points(&hybrid, "cgroup2"),
            vec![PathBuf::from("/sys/fs/cgroup/unified")]
        );
        assert_eq!(
            mount_points(&hybrid, "tracefs"),
            vec![PathBuf::from("/sys/kernel/tracing")]
        );
        assert!(mount_points(&hybrid, "proc").is_empty());
        assert!(mount_points(&table(""), "tracefs").is_empty());
    }

    #[test]
    fn garbage_mount_tables_are_an_error_not_a_panic() {
        assert!(Vec::<MountEntry>::from_buf_read("garbage\n\n  \n".as_bytes()).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(10_000))]

        /// Mangled mount tables: an error or a table, never a panic; and what `mount_points`
        /// finds in a table is a subset of its entries.
        #[test]
        fn mutated_mount_tables_never_panic(
            text in crate::text_mutations::mutated(
                "cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\ntracefs /sys/kernel/tracing tracefs rw,nosuid 0 0\nproc /proc proc rw 0 0\n",
            ),
        ) {
            if let Ok(mounts) = Vec::<MountEntry>::from_buf_read(text.as_bytes()) {
                for fstype in ["cgroup2", "tracefs"] {
                    prop_assert!(mount_points(&mounts, fstype).len() <= mounts.len());
                }
            }
        }
    }

    proptest! {
        /// In a table written from (device, mount point, type) rows, `mount_points` finds
        /// exactly the mount points of that type, in table order.
        #[test]
        fn mount_points_of_written_tables(
            rows in prop::collection::vec(
                ("[a-z0-9]{1,8}", "/[a-z0-9/._-]{0,24}", prop::sample::select(&["cgroup2", "tracefs", "proc"][..])),
                0..12,
            ),
        ) {
            let text: String = rows
                .iter()
                .map(|(device, point, kind)| format!("{device} {point} {kind} rw,relatime 0 0\n"))
                .collect();
            let mounts = table(&text);
            for fstype in ["cgroup2", "tracefs"] {
                let want: Vec<PathBuf> = rows
                    .iter()
                    .filter(|(_, _, kind)| *kind == fstype)
                    .map(|(_, point, _)| PathBuf::from(point))
                    .collect();
                prop_assert_eq!(mount_points(&mounts, fstype), want);
            }
        }
    }

    #[test]
    fn comm_bytes() {
        assert_eq!(comm_from_bytes(b"cat\0\0\0garbage"), "cat");
        assert_eq!(comm_from_bytes(b"0123456789abcdef"), "0123456789abcdef");
        assert_eq!(comm_from_bytes(b""), "");
    }

    #[test]
    fn this_process_exists_and_is_readable() {
        let me = std::process::id();
        assert!(exists(me));
        let info = process_info(me).unwrap();
        assert_eq!(info.tgid, me);
        assert_eq!(leader_info(me), Some(info.clone()));
        // SAFETY: getppid has no preconditions.
        let parent = unsafe { libc::getppid() };
        assert_eq!(i64::from(info.ppid), i64::from(parent));
        let name = std::fs::read_to_string("/proc/self/comm").unwrap();
        assert_eq!(info.comm, name.trim_end_matches('\n'));
        assert!(all_processes()
            .iter()
            .any(|(pid, i)| *pid == me && *i == info));
    }

    #[test]
    fn a_thread_reports_its_thread_group() {
        let me = std::process::id();
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("odd: name)".into())
            .spawn(move || {
                // SAFETY: gettid has no preconditions.
                tid_tx.send(unsafe { libc::gettid() } as u32).unwrap();
                let _ = done_rx.recv();
            })
            .unwrap();
        let tid = tid_rx.recv().unwrap();
        let info = process_info(tid).unwrap();
        done_tx.send(()).unwrap();
        thread.join().unwrap();
        assert_ne!(tid, me);
        assert_eq!(info.tgid, me);
        // A colon and a parenthesis in a name (threads name themselves): kept whole.
        assert_eq!(info.comm, "odd: name)");
    }

    #[test]
    fn missing_processes_are_none() {
        assert!(!exists(u32::MAX));
        assert!(process_info(u32::MAX).is_none());
        assert!(!exists(999_999_999));
        assert!(process_info(999_999_999).is_none());
        assert!(leader_info(u32::MAX).is_none());
    }
}
