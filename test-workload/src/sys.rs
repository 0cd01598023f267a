//! The measured syscalls. Each wrapper issues exactly one raw `syscall(2)` by number (so glibc
//! cannot pick a sibling syscall) and records it in the child's slot before returning. Buffers
//! are passed as slices and `IoSlice`/`IoSliceMut` (ABI-compatible with `struct iovec`), so the
//! callers stay free of `unsafe`.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::RawFd;

use libc::c_long;

use crate::ground_truth::{Errno, Recorder, Syscall};

/// Most messages one `sendmmsg`/`recvmmsg` call of ours carries.
pub const MAX_MMSG_BATCH: usize = 8;

fn fd(fd: RawFd) -> c_long {
    c_long::from(fd)
}

fn len(n: usize) -> c_long {
    n as c_long
}

fn ptr<T>(p: *const T) -> c_long {
    p as c_long
}

fn mut_ptr<T>(p: *mut T) -> c_long {
    p as c_long
}

/// A file offset argument: the pointer to it, or NULL for "use and move the fd's offset".
fn offset(off: Option<&mut i64>) -> c_long {
    match off {
        Some(o) => mut_ptr(o as *mut i64),
        None => 0,
    }
}

pub fn read(rec: &Recorder, f: RawFd, buf: &mut [u8]) -> Result<usize, Errno> {
    // SAFETY: `buf` is writable for `buf.len()` bytes for the whole call.
    let ret = unsafe {
        libc::syscall(
            Syscall::Read.number(),
            fd(f),
            mut_ptr(buf.as_mut_ptr()),
            len(buf.len()),
        )
    };
    rec.call(Syscall::Read, ret)
}

pub fn write(rec: &Recorder, f: RawFd, buf: &[u8]) -> Result<usize, Errno> {
    // SAFETY: `buf` is readable for `buf.len()` bytes for the whole call.
    let ret = unsafe {
        libc::syscall(
            Syscall::Write.number(),
            fd(f),
            ptr(buf.as_ptr()),
            len(buf.len()),
        )
    };
    rec.call(Syscall::Write, ret)
}

pub fn readv(rec: &Recorder, f: RawFd, iov: &mut [IoSliceMut]) -> Result<usize, Errno> {
    // SAFETY: `IoSliceMut` is ABI-compatible with `iovec`; each points at writable memory
    // borrowed for the call.
    let ret = unsafe {
        libc::syscall(
            Syscall::Readv.number(),
            fd(f),
            mut_ptr(iov.as_mut_ptr()),
            len(iov.len()),
        )
    };
    rec.call(Syscall::Readv, ret)
}

pub fn writev(rec: &Recorder, f: RawFd, iov: &[IoSlice]) -> Result<usize, Errno> {
    // SAFETY: `IoSlice` is ABI-compatible with `iovec`; each points at memory borrowed for
    // the call.
    let ret = unsafe {
        libc::syscall(
            Syscall::Writev.number(),
            fd(f),
            ptr(iov.as_ptr()),
            len(iov.len()),
        )
    };
    rec.call(Syscall::Writev, ret)
}

pub fn pread64(rec: &Recorder, f: RawFd, buf: &mut [u8], pos: i64) -> Result<usize, Errno> {
    // SAFETY: `buf` is writable for `buf.len()` bytes for the whole call.
    let ret = unsafe {
        libc::syscall(
            Syscall::Pread64.number(),
            fd(f),
            mut_ptr(buf.as_mut_ptr()),
            len(buf.len()),
            pos,
        )
    };
    rec.call(Syscall::Pread64, ret)
}

pub fn pwrite64(rec: &Recorder, f: RawFd, buf: &[u8], pos: i64) -> Result<usize, Errno> {
    // SAFETY: `buf` is readable for `buf.len()` bytes for the whole call.
    let ret = unsafe {
        libc::syscall(
            Syscall::Pwrite64.number(),
            fd(f),
            ptr(buf.as_ptr()),
            len(buf.len()),
            pos,
        )
    };
    rec.call(Syscall::Pwrite64, ret)
}

// The vectored positional syscalls take the offset as (low, high) longs. On a 64-bit kernel
// the low long holds the whole offset and the high one is shifted out, so high is 0.

pub fn preadv(rec: &Recorder, f: RawFd, iov: &mut [IoSliceMut], pos: i64) -> Result<usize, Errno> {
    // SAFETY: as in `readv`.
    let ret = unsafe {
        libc::syscall(
            Syscall::Preadv.number(),
            fd(f),
            mut_ptr(iov.as_mut_ptr()),
            len(iov.len()),
            pos,
            0 as c_long,
        )
    };
    rec.call(Syscall::Preadv, ret)
}

pub fn pwritev(rec: &Recorder, f: RawFd, iov: &[IoSlice], pos: i64) -> Result<usize, Errno> {
    // SAFETY: as in `writev`.
    let ret = unsafe {
        libc::syscall(
            Syscall::Pwritev.number(),
            fd(f),
            ptr(iov.as_ptr()),
            len(iov.len()),
            pos,
            0 as c_long,
        )
    };
    rec.call(Syscall::Pwritev, ret)
}

pub fn preadv2(
    rec: &Recorder,
    f: RawFd,
    iov: &mut [IoSliceMut],
    pos: i64,
    flags: i32,
) -> Result<usize, Errno> {
    // SAFETY: as in `readv`.
    let ret = unsafe {
        libc::syscall(
            Syscall::Preadv2.number(),
            fd(f),
            mut_ptr(iov.as_mut_ptr()),
            len(iov.len()),
            pos,
            0 as c_long,
            c_long::from(flags),
        )
    };
    rec.call(Syscall::Preadv2, ret)
}

pub fn pwritev2(
    rec: &Recorder,
    f: RawFd,
    iov: &[IoSlice],
    pos: i64,
    flags: i32,
) -> Result<usize, Errno> {
    // SAFETY: as in `writev`.
    let ret = unsafe {
        libc::syscall(
            Syscall::Pwritev2.number(),
            fd(f),
            ptr(iov.as_ptr()),
            len(iov.len()),
            pos,
            0 as c_long,
            c_long::from(flags),
        )
    };
    rec.call(Syscall::Pwritev2, ret)
}

/// `recvfrom` without a source address (what glibc's `recv` issues).
pub fn recvfrom(rec: &Recorder, f: RawFd, buf: &mut [u8], flags: i32) -> Result<usize, Errno> {
    // SAFETY: `buf` is writable for `buf.len()` bytes; NULL address and length are allowed.
    let ret = unsafe {
        libc::syscall(
            Syscall::Recvfrom.number(),
            fd(f),
            mut_ptr(buf.as_mut_ptr()),
            len(buf.len()),
            c_long::from(flags),
            0 as c_long,
            0 as c_long,
        )
    };
    rec.call(Syscall::Recvfrom, ret)
}

/// `recvmsg` into `iov`, without address or control data.
pub fn recvmsg(
    rec: &Recorder,
    f: RawFd,
    iov: &mut [IoSliceMut],
    flags: i32,
) -> Result<usize, Errno> {
    let mut msg = empty_msghdr();
    msg.msg_iov = iov.as_mut_ptr().cast();
    msg.msg_iovlen = iov.len() as _;
    // SAFETY: `msg` points at `iov` (ABI-compatible with `iovec`, writable, borrowed for the
    // call) and has no name or control buffer.
    let ret = unsafe {
        libc::syscall(
            Syscall::Recvmsg.number(),
            fd(f),
            mut_ptr(&mut msg as *mut libc::msghdr),
            c_long::from(flags),
        )
    };
    rec.call(Syscall::Recvmsg, ret)
}

/// `recvmsg(..., MSG_ERRQUEUE | MSG_DONTWAIT)` into `control`: one zero-copy completion
/// notice (or EAGAIN when none is queued). Returns the byte count (0 for a notice) and the
/// length of control data the kernel wrote.
pub fn recvmsg_errqueue(
    rec: &Recorder,
    f: RawFd,
    control: &mut [u8],
) -> Result<(usize, usize), Errno> {
    let mut msg = empty_msghdr();
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = control.len() as _;
    // SAFETY: `msg` points at `control`, writable and borrowed for the call; no iov, no name.
    let ret = unsafe {
        libc::syscall(
            Syscall::Recvmsg.number(),
            fd(f),
            mut_ptr(&mut msg as *mut libc::msghdr),
            c_long::from(libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT),
        )
    };
    let n = rec.call(Syscall::Recvmsg, ret)?;
    Ok((n, msg.msg_controllen))
}

/// `io_uring_enter` on ring `f`: submits `to_submit` entries the caller already published in
/// the submission queue, and with `IORING_ENTER_GETEVENTS` in `flags` waits for
/// `min_complete` completions. Returns the entries consumed.
pub fn io_uring_enter(
    rec: &Recorder,
    f: RawFd,
    to_submit: u32,
    min_complete: u32,
    flags: u32,
) -> Result<usize, Errno> {
    // SAFETY: no memory is passed (no signal mask, no extended argument); the rings the
    // kernel reads and writes are the caller's mapped io_uring.
    let ret = unsafe {
        libc::syscall(
            Syscall::IoUringEnter.number(),
            fd(f),
            c_long::from(to_submit),
            c_long::from(min_complete),
            c_long::from(flags),
            0 as c_long,
            0 as c_long,
        )
    };
    rec.call(Syscall::IoUringEnter, ret)
}

/// `sendto` without a destination address (what glibc's `send` issues).
pub fn sendto(rec: &Recorder, f: RawFd, buf: &[u8], flags: i32) -> Result<usize, Errno> {
    // SAFETY: `buf` is readable for `buf.len()` bytes; NULL address and length are allowed.
    let ret = unsafe {
        libc::syscall(
            Syscall::Sendto.number(),
            fd(f),
            ptr(buf.as_ptr()),
            len(buf.len()),
            c_long::from(flags),
            0 as c_long,
            0 as c_long,
        )
    };
    rec.call_send(Syscall::Sendto, ret, flags)
}

/// `sendmsg` of `iov` on a connected socket.
pub fn sendmsg(rec: &Recorder, f: RawFd, iov: &[IoSlice], flags: i32) -> Result<usize, Errno> {
    let mut msg = empty_msghdr();
    // The kernel only reads through msg_iov for sendmsg; the field is `*mut` by C's typing.
    msg.msg_iov = iov.as_ptr().cast_mut().cast();
    msg.msg_iovlen = iov.len() as _;
    // SAFETY: `msg` points at `iov`, readable and borrowed for the call; no name or control.
    let ret = unsafe {
        libc::syscall(
            Syscall::Sendmsg.number(),
            fd(f),
            ptr(&msg as *const libc::msghdr),
            c_long::from(flags),
        )
    };
    rec.call_send(Syscall::Sendmsg, ret, flags)
}

/// `recvmmsg` of one message into each of `bufs` (at most `MAX_MMSG_BATCH`), no timeout.
/// Returns how many messages arrived; their lengths go to `lens`.
pub fn recvmmsg(
    rec: &Recorder,
    f: RawFd,
    bufs: &mut [IoSliceMut],
    flags: i32,
    lens: &mut [u32; MAX_MMSG_BATCH],
) -> Result<usize, Errno> {
    let count = bufs.len().min(MAX_MMSG_BATCH);
    let mut msgs = [empty_mmsghdr(); MAX_MMSG_BATCH];
    for (m, buf) in msgs.iter_mut().zip(bufs.iter_mut()) {
        m.msg_hdr.msg_iov = (buf as *mut IoSliceMut).cast();
        m.msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: the first `count` headers each point at one writable buffer borrowed for the
    // call; NULL timeout means none.
    let ret = unsafe {
        libc::syscall(
            Syscall::Recvmmsg.number(),
            fd(f),
            mut_ptr(msgs.as_mut_ptr()),
            len(count),
            c_long::from(flags),
            0 as c_long,
        )
    };
    let result = rec.call_mmsg(Syscall::Recvmmsg, ret, &msgs[..count]);
    for (l, m) in lens.iter_mut().zip(&msgs) {
        *l = m.msg_len;
    }
    result
}

/// `sendmmsg` of one message per entry of `bufs` (at most `MAX_MMSG_BATCH`) on a connected
/// socket. Returns how many messages were sent.
pub fn sendmmsg(rec: &Recorder, f: RawFd, bufs: &[IoSlice], flags: i32) -> Result<usize, Errno> {
    let count = bufs.len().min(MAX_MMSG_BATCH);
    let mut msgs = [empty_mmsghdr(); MAX_MMSG_BATCH];
    for (m, buf) in msgs.iter_mut().zip(bufs) {
        m.msg_hdr.msg_iov = (buf as *const IoSlice).cast_mut().cast();
        m.msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: the first `count` headers each point at one readable buffer borrowed for the
    // call; the kernel writes only `msg_len` of our own `msgs`.
    let ret = unsafe {
        libc::syscall(
            Syscall::Sendmmsg.number(),
            fd(f),
            mut_ptr(msgs.as_mut_ptr()),
            len(count),
            c_long::from(flags),
        )
    };
    rec.call_mmsg_send(Syscall::Sendmmsg, ret, &msgs[..count], flags)
}

/// `sendfile` from `in_fd` at `*pos` (advanced by the kernel) to `out_fd`.
pub fn sendfile64(
    rec: &Recorder,
    out_fd: RawFd,
    in_fd: RawFd,
    pos: &mut i64,
    count: usize,
) -> Result<usize, Errno> {
    // SAFETY: `pos` is a valid, exclusively borrowed offset for the call.
    let ret = unsafe {
        libc::syscall(
            Syscall::Sendfile64.number(),
            fd(out_fd),
            fd(in_fd),
            mut_ptr(pos as *mut i64),
            len(count),
        )
    };
    rec.call(Syscall::Sendfile64, ret)
}

pub fn splice(
    rec: &Recorder,
    fd_in: RawFd,
    off_in: Option<&mut i64>,
    fd_out: RawFd,
    off_out: Option<&mut i64>,
    count: usize,
    flags: u32,
) -> Result<usize, Errno> {
    // SAFETY: the offsets are NULL or valid, exclusively borrowed for the call.
    let ret = unsafe {
        libc::syscall(
            Syscall::Splice.number(),
            fd(fd_in),
            offset(off_in),
            fd(fd_out),
            offset(off_out),
            len(count),
            c_long::from(flags),
        )
    };
    rec.call(Syscall::Splice, ret)
}

pub fn tee(
    rec: &Recorder,
    fd_in: RawFd,
    fd_out: RawFd,
    count: usize,
    flags: u32,
) -> Result<usize, Errno> {
    // SAFETY: no memory is passed; only fds and sizes.
    let ret = unsafe {
        libc::syscall(
            Syscall::Tee.number(),
            fd(fd_in),
            fd(fd_out),
            len(count),
            c_long::from(flags),
        )
    };
    rec.call(Syscall::Tee, ret)
}

/// `vmsplice` of user memory into the pipe `f`. Without `SPLICE_F_GIFT` the pipe holds page
/// references, so the memory must not change until the pipe is drained (ours never does).
pub fn vmsplice(rec: &Recorder, f: RawFd, iov: &[IoSlice], flags: u32) -> Result<usize, Errno> {
    // SAFETY: `iov` is ABI-compatible with `iovec` and points at memory borrowed for the call.
    let ret = unsafe {
        libc::syscall(
            Syscall::Vmsplice.number(),
            fd(f),
            ptr(iov.as_ptr()),
            len(iov.len()),
            c_long::from(flags),
        )
    };
    rec.call(Syscall::Vmsplice, ret)
}

pub fn copy_file_range(
    rec: &Recorder,
    fd_in: RawFd,
    off_in: Option<&mut i64>,
    fd_out: RawFd,
    off_out: Option<&mut i64>,
    count: usize,
) -> Result<usize, Errno> {
    // SAFETY: the offsets are NULL or valid, exclusively borrowed for the call.
    let ret = unsafe {
        libc::syscall(
            Syscall::CopyFileRange.number(),
            fd(fd_in),
            offset(off_in),
            fd(fd_out),
            offset(off_out),
            len(count),
            0 as c_long,
        )
    };
    rec.call(Syscall::CopyFileRange, ret)
}

fn empty_msghdr() -> libc::msghdr {
    // SAFETY: `msghdr` is plain C data; all-zero is "no name, no iov, no control, no flags".
    unsafe { std::mem::zeroed() }
}

fn empty_mmsghdr() -> libc::mmsghdr {
    libc::mmsghdr {
        msg_hdr: empty_msghdr(),
        msg_len: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ground_truth::{Counts, SharedSlots};

    #[test]
    fn io_slices_have_the_iovec_layout() {
        // `IoSlice` documents this; the wrappers rely on it.
        assert_eq!(size_of::<IoSlice>(), size_of::<libc::iovec>());
        assert_eq!(size_of::<IoSliceMut>(), size_of::<libc::iovec>());
    }

    #[test]
    fn pipe_round_trip_is_recorded() {
        let slots = SharedSlots::new(1).expect("mmap");
        let rec = Recorder::start(slots.slot(0));
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors.
        assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
        assert_eq!(write(&rec, fds[1], b"hello"), Ok(5));
        let mut a = [0u8; 2];
        let mut b = [0u8; 8];
        let mut iov = [IoSliceMut::new(&mut a), IoSliceMut::new(&mut b)];
        assert_eq!(readv(&rec, fds[0], &mut iov), Ok(5));
        assert_eq!(&a, b"he");
        assert_eq!(&b[..3], b"llo");
        assert_eq!(pread64(&rec, fds[0], &mut b, 0), Err(Errno(libc::ESPIPE)));
        // SAFETY: closing the two descriptors this test opened.
        unsafe {
            libc::close(fds[0]);
            libc::close(fds[1]);
        }
        let slot = slots.slot(0);
        assert_eq!(
            slot.counts(Syscall::Write),
            Counts {
                calls: 1,
                bytes: 5,
                errors: 0,
                msg_zerocopy_bytes: 0
            }
        );
        assert_eq!(
            slot.counts(Syscall::Readv),
            Counts {
                calls: 1,
                bytes: 5,
                errors: 0,
                msg_zerocopy_bytes: 0
            }
        );
        assert_eq!(
            slot.counts(Syscall::Pread64),
            Counts {
                calls: 1,
                bytes: 0,
                errors: 1,
                msg_zerocopy_bytes: 0
            }
        );
    }
}
