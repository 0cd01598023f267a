//! Where the kernel keeps what resolving an fd's kind needs, from its BTF. Without BTF (or with
//! a layout we do not recognise) fd kinds are reported as `unknown`: every count stays exact,
//! only the attribution to files, sockets and pipes is lost, and a warning says so.

use anyhow::{ensure, Context, Result};
use zerocopy_trace_common::KernelOffsets;

use crate::btf::Btf;

/// Offsets for `fd_kind` resolution, read from the kernel's BTF.
pub fn from_btf(btf: &Btf) -> Result<KernelOffsets> {
    let at = |structure: &str, path: &[&str]| -> Result<u32> {
        btf.member_offset(structure, path)
            .with_context(|| format!("locating {structure}.{}", path.join(".")))
    };
    let size = |structure: &str, path: &[&str]| -> Result<u32> {
        btf.member_size(structure, path)
            .with_context(|| format!("sizing {structure}.{}", path.join(".")))
    };
    // The kernel program reads these with fixed widths; refuse a layout where they differ.
    ensure!(
        size("fdtable", &["max_fds"])? == 4,
        "fdtable.max_fds is not 32 bits"
    );
    ensure!(
        size("inode", &["i_mode"])? == 2,
        "inode.i_mode is not 16 bits"
    );
    ensure!(
        size("sock", &["__sk_common", "skc_family"])? == 2,
        "skc_family is not 16 bits"
    );
    ensure!(
        size("sock", &["sk_protocol"])? == 2,
        "sock.sk_protocol is not a 16-bit member"
    );
    Ok(KernelOffsets {
        resolve: 1,
        task_files: at("task_struct", &["files"])?,
        files_fdt: at("files_struct", &["fdt"])?,
        fdtable_max_fds: at("fdtable", &["max_fds"])?,
        fdtable_fd: at("fdtable", &["fd"])?,
        file_inode: at("file", &["f_inode"])?,
        file_private_data: at("file", &["private_data"])?,
        inode_mode: at("inode", &["i_mode"])?,
        socket_sk: at("socket", &["sk"])?,
        sock_family: at("sock", &["__sk_common", "skc_family"])?,
        sock_protocol: at("sock", &["sk_protocol"])?,
        _reserved: 0,
    })
}

/// The offsets of this kernel, or none (with a warning) when they cannot be known.
pub fn of_running_kernel() -> KernelOffsets {
    match Btf::from_sys_fs()
        .map_err(anyhow::Error::from)
        .and_then(|btf| from_btf(&btf))
    {
        Ok(offsets) => offsets,
        Err(e) => {
            log::warn!("fd kinds unavailable, bytes will be attributed to `unknown`: {e:#}");
            KernelOffsets::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_kernel_has_every_offset() {
        let Ok(btf) = Btf::from_sys_fs() else {
            eprintln!("SKIPPED: no /sys/kernel/btf/vmlinux on this machine");
            return;
        };
        let o = from_btf(&btf).unwrap();
        assert_eq!(o.resolve, 1);
        // fdtable is { unsigned max_fds; struct file **fd; ... }: fd follows max_fds.
        assert_eq!((o.fdtable_max_fds, o.fdtable_fd), (0, 8));
        assert!(o.task_files > 0 && o.file_inode > 0 && o.socket_sk > 0);
        assert_ne!(o.sock_family, o.sock_protocol);
    }
}
