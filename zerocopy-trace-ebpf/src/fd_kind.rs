//! What an fd refers to, read from the kernel's own structures: task -> files -> fdtable ->
//! file -> inode mode, and for sockets -> socket -> sock family and protocol. The offsets come
//! from the kernel's BTF through `CONFIG`; every read is a checked probe read, so a closed fd or
//! a changing table gives `UNKNOWN`, never a fault.

use aya_ebpf::helpers::{bpf_get_current_task, bpf_probe_read_kernel};
use zerocopy_trace_common::fd_kind;

use crate::config;

const S_IFMT: u16 = 0o170000;
const S_IFSOCK: u16 = 0o140000;
const S_IFREG: u16 = 0o100000;
const S_IFBLK: u16 = 0o060000;
const S_IFCHR: u16 = 0o020000;
const S_IFIFO: u16 = 0o010000;
const AF_UNIX: u16 = 1;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const IPPROTO_TCP: u16 = 6;
const IPPROTO_UDP: u16 = 17;
const IPPROTO_UDPLITE: u16 = 136;
const IPPROTO_MPTCP: u16 = 262;

#[inline(always)]
fn read<T>(address: u64) -> Option<T> {
    if address == 0 {
        return None;
    }
    // SAFETY: a checked read of kernel memory; a bad address returns an error.
    unsafe { bpf_probe_read_kernel(address as *const T) }.ok()
}

/// The `fd_kind` of `fd` in the current task.
#[inline(always)]
pub fn of_fd(fd: i32) -> u8 {
    resolve(fd).unwrap_or(fd_kind::UNKNOWN)
}

#[inline(always)]
fn resolve(fd: i32) -> Option<u8> {
    let o = config::offsets();
    if o.resolve == 0 || fd < 0 {
        return None;
    }
    // SAFETY: the helper has no preconditions; it returns the current task's address.
    let task = unsafe { bpf_get_current_task() };
    let files: u64 = read(task + o.task_files as u64)?;
    let fdt: u64 = read(files + o.files_fdt as u64)?;
    let max_fds: u32 = read(fdt + o.fdtable_max_fds as u64)?;
    if fd as u32 >= max_fds {
        return None;
    }
    let fd_array: u64 = read(fdt + o.fdtable_fd as u64)?;
    let file: u64 = read(fd_array + fd as u64 * 8)?;
    let inode: u64 = read(file + o.file_inode as u64)?;
    let mode: u16 = read(inode + o.inode_mode as u64)?;
    Some(match mode & S_IFMT {
        S_IFREG => fd_kind::FILE,
        S_IFBLK => fd_kind::BLOCK,
        S_IFCHR => fd_kind::CHAR,
        S_IFIFO => fd_kind::PIPE,
        S_IFSOCK => socket_kind(file).unwrap_or(fd_kind::SOCKET),
        _ => fd_kind::OTHER,
    })
}

#[inline(always)]
fn socket_kind(file: u64) -> Option<u8> {
    let o = config::offsets();
    let socket: u64 = read(file + o.file_private_data as u64)?;
    let sock: u64 = read(socket + o.socket_sk as u64)?;
    let family: u16 = read(sock + o.sock_family as u64)?;
    Some(match family {
        AF_UNIX => fd_kind::UNIX,
        AF_INET | AF_INET6 => match read::<u16>(sock + o.sock_protocol as u64)? {
            IPPROTO_TCP | IPPROTO_MPTCP => fd_kind::TCP,
            IPPROTO_UDP | IPPROTO_UDPLITE => fd_kind::UDP,
            _ => fd_kind::SOCKET,
        },
        _ => fd_kind::SOCKET,
    })
}
