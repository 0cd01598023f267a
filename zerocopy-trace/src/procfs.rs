//! What the agent reads from /proc: a process's name and parent, and whether it exists.
//! A process can vanish between any two reads; that is an ordinary `None`, never an error.

use std::fs;

/// Name and parent of a live process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessInfo {
    pub comm: String,
    pub ppid: u32,
    /// Thread group id: differs from the pid asked about when that pid is a thread.
    pub tgid: u32,
}

/// Reads /proc/PID/status (name, parent and thread group in one small read).
pub fn process_info(pid: u32) -> Option<ProcessInfo> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status(&text)
}

/// Parses the `Name:`, `Tgid:` and `PPid:` lines of /proc/PID/status.
pub fn parse_status(text: &str) -> Option<ProcessInfo> {
    let (mut comm, mut ppid, mut tgid) = (None, None, None);
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key {
            "Name" => comm = Some(unescape_name(value)),
            "PPid" => ppid = value.parse().ok(),
            "Tgid" => tgid = value.parse().ok(),
            _ => {}
        }
    }
    Some(ProcessInfo {
        comm: comm?,
        ppid: ppid?,
        tgid: tgid?,
    })
}

/// /proc/PID/status escapes `\n` and `\\` in names; undo that so names match `comm`.
fn unescape_name(name: &str) -> String {
    name.replace("\\n", "\n").replace("\\\\", "\\")
}

/// Turns a kernel `comm` buffer (NUL-padded) into a string.
pub fn comm_from_bytes(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// Mount points of file systems of type `fstype` in a mounts table (`/proc/self/mounts`).
pub fn mount_points(mounts: &str, fstype: &str) -> Vec<std::path::PathBuf> {
    mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (_, target, kind) = (fields.next()?, fields.next()?, fields.next()?);
            (kind == fstype).then(|| std::path::PathBuf::from(target))
        })
        .collect()
}

/// This process's mount table; empty when it cannot be read.
pub fn mounts() -> String {
    fs::read_to_string("/proc/self/mounts").unwrap_or_default()
}

/// Whether a process (or thread) with this pid exists.
pub fn exists(pid: u32) -> bool {
    fs::metadata(format!("/proc/{pid}")).is_ok()
}

/// Every process (thread group) currently alive, with its info.
pub fn all_processes() -> Vec<(u32, ProcessInfo)> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|entry| {
        let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
        Some((pid, process_info(pid)?))
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status() {
        let text = "Name:\tnginx\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t4121\nNgid:\t0\nPid:\t4122\nPPid:\t4120\n";
        assert_eq!(
            parse_status(text),
            Some(ProcessInfo {
                comm: "nginx".into(),
                ppid: 4120,
                tgid: 4121
            })
        );
    }

    #[test]
    fn odd_names_and_garbage() {
        let text = "Name:\tmy proc\\nx: y\nTgid:\t1\nPPid:\t0\n";
        assert_eq!(parse_status(text).unwrap().comm, "my proc\nx: y");
        assert_eq!(parse_status(""), None);
        assert_eq!(parse_status("Name:\tx\nTgid:\tnope\nPPid:\t1\n"), None);
        assert_eq!(parse_status("\u{0}:\u{0}\n::::\n"), None);
    }

    #[test]
    fn fuzzed_status_files_never_panic() {
        let status = "Name:\tnginx\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t4121\nNgid:\t0\nPid:\t4122\nPPid:\t4120\nCapEff:\t000001ffffffffff\n";
        crate::fuzz::fuzz_text(&[status], 20_000, |text| {
            let _ = parse_status(text);
            let _ = crate::privileges::parse_cap_eff(text);
        });
        crate::fuzz::fuzz_text(
            &["cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n"],
            5_000,
            |text| {
                let _ = mount_points(text, "cgroup2");
            },
        );
    }

    #[test]
    fn mount_points_by_type() {
        let hybrid = "cgroup /sys/fs/cgroup/cpu cgroup rw 0 0\ncgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\ntracefs /sys/kernel/tracing tracefs rw 0 0\n";
        assert_eq!(
            mount_points(hybrid, "cgroup2"),
            vec![std::path::PathBuf::from("/sys/fs/cgroup/unified")]
        );
        assert_eq!(
            mount_points(hybrid, "tracefs"),
            vec![std::path::PathBuf::from("/sys/kernel/tracing")]
        );
        assert!(mount_points(hybrid, "proc").is_empty());
        assert!(mount_points("", "tracefs").is_empty());
        assert!(mount_points("garbage\n\n  \n", "tracefs").is_empty());
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
    }
}
