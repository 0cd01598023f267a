//! What an fd refers to, read from the kernel's own structures: task -> files -> fdtable ->
//! file -> inode mode, and for sockets -> socket -> sock family and protocol; for files and
//! block devices also whether they were opened `O_DIRECT` (`file.f_flags`, in the same walk).
//! The offsets come from the kernel's BTF through `CONFIG`; a closed fd or a changing table
//! gives `UNKNOWN`, never a fault.
//!
//! Two ways to the `struct file`: programs with a BTF-typed context (the tp_btf hook) walk
//! task -> files -> fdtable -> fd array with direct loads the verifier checks against BTF
//! (a fault reads as 0); the others use a checked probe read per step. From the file on, the
//! pointer is untyped to the verifier, so both use probe reads.

use aya_ebpf::helpers::{bpf_get_current_task, bpf_get_current_task_btf, bpf_probe_read_kernel};
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

/// A member of a BTF-typed kernel object, loaded directly: the verifier checks `offset`
/// (a constant of the frozen `CONFIG`) against the object's BTF type.
///
/// # Safety
/// `object` must be a pointer the verifier knows the BTF type of (or untrusted memory it lets
/// the program read), and `offset` a member of that type of size `size_of::<T>()`.
#[inline(always)]
unsafe fn member<T: Copy>(object: *const u8, offset: u32) -> T {
    *(object.add(offset as usize) as *const T)
}

/// The `fd_kind` of a `struct file` (an io_uring request's), with `fd_kind::DIRECT` for an
/// `O_DIRECT` file, as `of_fd`.
#[inline(always)]
pub fn of_file(file: u64) -> u8 {
    if config::offsets().resolve == 0 {
        return fd_kind::UNKNOWN;
    }
    kind_of_file(file).unwrap_or(fd_kind::UNKNOWN)
}

/// The `fd_kind` of `fd` in the current task, by probe reads (`fd_kind::DIRECT` or'ed in for
/// an `O_DIRECT` file).
#[inline(always)]
pub fn of_fd(fd: i32) -> u8 {
    file_of_fd(fd)
        .and_then(kind_of_file)
        .unwrap_or(fd_kind::UNKNOWN)
}

/// The `fd_kind` of `fd` in the current task, walking to its file by direct loads. Only for
/// programs whose context is BTF-typed (tp_btf): others are rejected by the verifier.
#[inline(always)]
pub fn of_fd_typed(fd: i32) -> u8 {
    typed_file_of_fd(fd)
        .and_then(kind_of_file)
        .unwrap_or(fd_kind::UNKNOWN)
}

#[inline(always)]
fn file_of_fd(fd: i32) -> Option<u64> {
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
    read(fd_array + fd as u64 * 8)
}

#[inline(always)]
fn typed_file_of_fd(fd: i32) -> Option<u64> {
    let o = config::offsets();
    if o.resolve == 0 || fd < 0 {
        return None;
    }
    // SAFETY: the task is BTF-typed (trusted); `files` and `fdt` are typed struct pointers
    // (`fdt` is RCU-protected, and tp_btf programs run under RCU); the fd array is memory the
    // verifier lets the program read untrusted, bounded by `max_fds` as the kernel does. A
    // NULL or stale pointer anywhere reads as 0.
    let file: u64 = unsafe {
        let task = bpf_get_current_task_btf() as *const u8;
        let files: *const u8 = member(task, o.task_files);
        let fdt: *const u8 = member(files, o.files_fdt);
        let max_fds: u32 = member(fdt, o.fdtable_max_fds);
        if fd as u32 >= max_fds {
            return None;
        }
        let fd_array: *const u64 = member(fdt, o.fdtable_fd);
        *fd_array.add(fd as usize)
    };
    (file != 0).then_some(file)
}

/// The kind of the open file at `file`.
#[inline(always)]
fn kind_of_file(file: u64) -> Option<u8> {
    let o = config::offsets();
    let inode: u64 = read(file + o.file_inode as u64)?;
    let mode: u16 = read(inode + o.inode_mode as u64)?;
    Some(match mode & S_IFMT {
        S_IFREG => fd_kind::FILE | direct(file),
        S_IFBLK => fd_kind::BLOCK | direct(file),
        S_IFCHR => fd_kind::CHAR,
        S_IFIFO => fd_kind::PIPE,
        S_IFSOCK => socket_kind(file).unwrap_or(fd_kind::SOCKET),
        _ => fd_kind::OTHER,
    })
}

/// `fd_kind::DIRECT` when the file was opened `O_DIRECT` (only files and block devices: on a
/// pipe the same flag means packet mode, not DMA).
#[inline(always)]
fn direct(file: u64) -> u8 {
    let o_direct = config::o_direct();
    match read::<u32>(file + config::offsets().file_flags as u64) {
        Some(flags) if o_direct != 0 && flags & o_direct != 0 => fd_kind::DIRECT,
        _ => 0,
    }
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
