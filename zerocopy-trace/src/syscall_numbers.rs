//! This architecture's syscall numbers for the traced syscalls, so the kernel program can map
//! the `__syscall_nr` of a tracepoint record to a syscall id.

/// The syscall number of the syscall whose tracepoints are `sys_{enter,exit}_<name>`.
pub fn syscall_number(name: &str) -> Option<i64> {
    let nr = match name {
        "read" => libc::SYS_read,
        "write" => libc::SYS_write,
        "readv" => libc::SYS_readv,
        "writev" => libc::SYS_writev,
        "pread64" => libc::SYS_pread64,
        "pwrite64" => libc::SYS_pwrite64,
        "preadv" => libc::SYS_preadv,
        "pwritev" => libc::SYS_pwritev,
        "preadv2" => libc::SYS_preadv2,
        "pwritev2" => libc::SYS_pwritev2,
        "recvfrom" => libc::SYS_recvfrom,
        "recvmsg" => libc::SYS_recvmsg,
        "recvmmsg" => libc::SYS_recvmmsg,
        "sendto" => libc::SYS_sendto,
        "sendmsg" => libc::SYS_sendmsg,
        "sendmmsg" => libc::SYS_sendmmsg,
        // The tracepoint is named after the kernel's sendfile64 entry point.
        "sendfile64" => libc::SYS_sendfile,
        "splice" => libc::SYS_splice,
        "tee" => libc::SYS_tee,
        "vmsplice" => libc::SYS_vmsplice,
        "copy_file_range" => libc::SYS_copy_file_range,
        _ => return None,
    };
    Some(nr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy_trace_common::{MAX_SYSCALL_NR, SYSCALLS};

    #[test]
    fn every_traced_syscall_has_a_distinct_number_in_range() {
        let mut seen = Vec::new();
        for s in &SYSCALLS {
            let nr = syscall_number(s.name).unwrap_or_else(|| panic!("{} has no number", s.name));
            assert!((0..MAX_SYSCALL_NR as i64).contains(&nr), "{}: {nr}", s.name);
            assert!(!seen.contains(&nr), "{} duplicates {nr}", s.name);
            seen.push(nr);
        }
        assert_eq!(syscall_number("open"), None);
    }
}
