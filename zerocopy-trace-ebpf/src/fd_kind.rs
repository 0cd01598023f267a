//! What an fd refers to, read from the kernel's own structures: task -> files -> fdtable ->
//! file -> inode mode, and for sockets -> socket -> sock family and protocol; for files and
//! block devices also whether they were opened `O_DIRECT` (`file.f_flags`, in the same walk).
//! The offsets come from the kernel's BTF through `CONFIG`; a closed fd or a changing table
//! gives `UNKNOWN`, never a fault.
//!
//! Two ways through: programs with a BTF-typed context (the tp_btf hook) walk with plain loads
//! the verifier checks against BTF (a fault reads as 0), from the task `current` gives them,
//! casting the two untyped pointers on the way (the fd array's `struct file *` and the socket
//! file's `void *private_data`) with the kernel's `bpf_rdonly_cast`; the others use a checked probe read per step. A probe read
//! is a helper call of some 20 to 30 ns; a plain load is one instruction, and the walk of a
//! socket has seven steps.

use aya_ebpf::helpers::{bpf_get_current_task, bpf_probe_read_kernel};
use zerocopy_trace_common::{fd_kind, RDONLY_CAST_PLACEHOLDER};

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

/// A checked read of kernel memory at `address` (`None` for NULL or a fault).
#[inline(always)]
pub fn read<T>(address: u64) -> Option<T> {
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
pub unsafe fn member<T: Copy>(object: *const u8, offset: u32) -> T {
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

/// The `fd_kind` of `fd` in `task`, walking to its file by direct loads. Only for programs
/// whose context is BTF-typed (tp_btf): others are rejected by the verifier. With
/// `SLOT_BY_HELPER`, the fd array's slot is read by a helper call instead: some verifiers
/// (6.12's) type the array, a `struct file **`, as a plain number and refuse the load through
/// it; the rest of the walk stays direct.
///
/// # Safety
/// `task` must come from `current::task_typed`.
#[inline(always)]
pub unsafe fn of_fd_typed<const SLOT_BY_HELPER: bool>(task: *const u8, fd: i32) -> u8 {
    // SAFETY: guaranteed by the caller.
    match unsafe { typed_file_of_fd::<SLOT_BY_HELPER>(task, fd) } {
        // SAFETY: `file` is typed by `typed_file_of_fd`.
        Some(file) => unsafe { typed_kind_of_file(file) },
        None => fd_kind::UNKNOWN,
    }
}

/// `pointer` as a read-only pointer of BTF type `type_id`: the kernel's `bpf_rdonly_cast`
/// kfunc, which the verifier inlines to a move (the agent patches the call in, see
/// `RDONLY_CAST_PLACEHOLDER`). Loads through the result are checked against that type and
/// read 0 where the memory is not there.
///
/// # Safety
/// `type_id` must be a constant of the frozen `CONFIG` naming a struct in the kernel's BTF.
#[inline(always)]
pub unsafe fn typed_cast(pointer: *const u8, type_id: u32) -> *const u8 {
    // SAFETY: the placeholder is rewritten into the kfunc call before load; the program is
    // only loaded with the typed hook, which needs that rewrite.
    let cast: unsafe extern "C" fn(*const u8, u32) -> *const u8 =
        unsafe { core::mem::transmute(RDONLY_CAST_PLACEHOLDER as usize) };
    unsafe { cast(pointer, type_id) }
}

/// The kind of the open file at `file`, with plain loads (as `kind_of_file`).
///
/// # Safety
/// `file` must be a `struct file *` typed by `typed_cast`.
#[inline(always)]
unsafe fn typed_kind_of_file(file: *const u8) -> u8 {
    let o = config::offsets();
    // SAFETY: each load is a member of its typed struct, at its BTF offset and size.
    unsafe {
        let inode: *const u8 = member(file, o.file_inode);
        if inode.is_null() {
            return fd_kind::UNKNOWN;
        }
        by_mode(
            member::<u16>(inode, o.inode_mode),
            || direct_bit(member(file, o.file_flags)),
            || typed_socket_kind(file),
        )
    }
}

/// # Safety
/// As `typed_kind_of_file`.
#[inline(always)]
unsafe fn typed_socket_kind(file: *const u8) -> u8 {
    let o = config::offsets();
    // SAFETY: as in `typed_kind_of_file`; `private_data` of a socket's file is its socket.
    unsafe {
        let private: *const u8 = member(file, o.file_private_data);
        if private.is_null() {
            return fd_kind::SOCKET;
        }
        let socket = typed_cast(private, config::typed_casts().socket);
        let sock: *const u8 = member(socket, o.socket_sk);
        if sock.is_null() {
            return fd_kind::SOCKET;
        }
        by_family(member::<u16>(sock, o.sock_family), || {
            Some(member::<u16>(sock, o.sock_protocol))
        })
        .unwrap_or(fd_kind::SOCKET)
    }
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

/// # Safety
/// `task` must come from `current::task_typed`.
#[inline(always)]
unsafe fn typed_file_of_fd<const SLOT_BY_HELPER: bool>(
    task: *const u8,
    fd: i32,
) -> Option<*const u8> {
    let o = config::offsets();
    if o.resolve == 0 || fd < 0 {
        return None;
    }
    // SAFETY: the task is BTF-typed (cast); `files` and `fdt` are typed struct pointers
    // (`fdt` is RCU-protected, and tp_btf programs run under RCU); the fd array is memory the
    // verifier lets the program read untrusted, bounded by `max_fds` as the kernel does, and
    // its slot an untyped pointer, typed by the cast. A NULL or stale pointer anywhere reads
    // as 0.
    let file: *const u8 = unsafe {
        let files: *const u8 = member(task, o.task_files);
        let fdt: *const u8 = member(files, o.files_fdt);
        let max_fds: u32 = member(fdt, o.fdtable_max_fds);
        if fd as u32 >= max_fds {
            return None;
        }
        let fd_array: *const *const u8 = member(fdt, o.fdtable_fd);
        if SLOT_BY_HELPER {
            read::<u64>(fd_array as u64 + fd as u64 * 8)? as *const u8
        } else {
            *fd_array.add(fd as usize)
        }
    };
    if file.is_null() {
        return None;
    }
    // SAFETY: the id is the frozen CONFIG's `struct file`.
    Some(unsafe { typed_cast(file, config::typed_casts().file) })
}

/// The kind of the open file at `file`.
#[inline(always)]
fn kind_of_file(file: u64) -> Option<u8> {
    let o = config::offsets();
    let inode: u64 = read(file + o.file_inode as u64)?;
    let mode: u16 = read(inode + o.inode_mode as u64)?;
    Some(by_mode(
        mode,
        || direct(file),
        || socket_kind(file).unwrap_or(fd_kind::SOCKET),
    ))
}

/// The kind a file's mode says; `direct` is asked for files and block devices (the
/// `fd_kind::DIRECT` bit or 0), `socket` for sockets (their family and protocol).
#[inline(always)]
fn by_mode(mode: u16, direct: impl FnOnce() -> u8, socket: impl FnOnce() -> u8) -> u8 {
    match mode & S_IFMT {
        S_IFREG => fd_kind::FILE | direct(),
        S_IFBLK => fd_kind::BLOCK | direct(),
        S_IFCHR => fd_kind::CHAR,
        S_IFIFO => fd_kind::PIPE,
        S_IFSOCK => socket(),
        _ => fd_kind::OTHER,
    }
}

/// The kind a socket's family says; `protocol` is asked for internet sockets (`None`: it
/// could not be read, and nor can the kind).
#[inline(always)]
fn by_family(family: u16, protocol: impl FnOnce() -> Option<u16>) -> Option<u8> {
    Some(match family {
        AF_UNIX => fd_kind::UNIX,
        AF_INET | AF_INET6 => match protocol()? {
            IPPROTO_TCP | IPPROTO_MPTCP => fd_kind::TCP,
            IPPROTO_UDP | IPPROTO_UDPLITE => fd_kind::UDP,
            _ => fd_kind::SOCKET,
        },
        _ => fd_kind::SOCKET,
    })
}

/// `fd_kind::DIRECT` when the file was opened `O_DIRECT` (asked only for files and block
/// devices: on a pipe the same flag means packet mode, not DMA).
#[inline(always)]
fn direct(file: u64) -> u8 {
    read::<u32>(file + config::offsets().file_flags as u64).map_or(0, direct_bit)
}

/// `fd_kind::DIRECT` if a file's `f_flags` have `O_DIRECT`, else 0.
#[inline(always)]
fn direct_bit(flags: u32) -> u8 {
    let o_direct = config::o_direct();
    if o_direct != 0 && flags & o_direct != 0 {
        fd_kind::DIRECT
    } else {
        0
    }
}

#[inline(always)]
fn socket_kind(file: u64) -> Option<u8> {
    let o = config::offsets();
    let socket: u64 = read(file + o.file_private_data as u64)?;
    let sock: u64 = read(socket + o.socket_sk as u64)?;
    let family: u16 = read(sock + o.sock_family as u64)?;
    by_family(family, || read::<u16>(sock + o.sock_protocol as u64))
}
