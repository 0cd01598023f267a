//! How often the kernel skipped one of our programs: `recursion_misses` of its program info
//! (Linux 5.12 and later), counted where a program would have run inside another BPF program
//! on the same CPU. A skipped syscall exit is a call not counted; the trace reports the total
//! as dropped (`missed_runs`) so that nothing is lost silently. aya does not expose the field,
//! so `BPF_OBJ_GET_INFO_BY_FD` is called here.

use std::{io, mem::size_of, os::fd::AsRawFd};

use aya_obj::generated::{bpf_attr, bpf_cmd, bpf_prog_info};

/// The kernel's count of skipped runs of the program `fd` refers to; `Ok(0)` on kernels whose
/// program info predates the field (it comes back zeroed).
pub fn recursion_misses(fd: &impl AsRawFd) -> io::Result<u64> {
    // SAFETY: all-zero is the valid empty state of both.
    let mut info: bpf_prog_info = unsafe { std::mem::zeroed() };
    let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
    attr.info.bpf_fd = fd.as_raw_fd() as u32;
    attr.info.info_len = size_of::<bpf_prog_info>() as u32;
    attr.info.info = &mut info as *mut bpf_prog_info as u64;
    // SAFETY: `attr` points to `info`, sized as said, alive across the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            bpf_cmd::BPF_OBJ_GET_INFO_BY_FD as libc::c_long,
            &mut attr as *mut bpf_attr,
            size_of::<bpf_attr>() as libc::c_uint,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(info.recursion_misses)
}
