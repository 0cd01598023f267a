//! io_uring: the same data paths as the syscall modes, as operations submitted to a ring. Each
//! child makes its own ring (so its SQPOLL thread and io-wq workers are its own threads) and
//! enters the kernel only through `sys::io_uring_enter`, which records every call: the
//! transitions of a mode are exactly 2 per recorded syscall. Every completion is recorded with
//! its result as the ring returned it.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;

use anyhow::{bail, Context, Result};
use io_uring::{cqueue, opcode, squeue, types::Fd, IoUring};

use super::tcp::{run_stream, Receive};
use super::{loff, piece, shutdown_write, Mode, Params, Sizes};
use crate::child::{ChildResult, Children};
use crate::ground_truth::{Failure, Op, OrFail, Recorder, SharedSlots};
use crate::net;
use crate::pattern::{pattern, Verifier};
use crate::report::ProcessReport;
use crate::setup::{input_file, output_file, pipe, same_contents};
use crate::sys;

const IORING_ENTER_GETEVENTS: u32 = 1;
const IORING_ENTER_SQ_WAKEUP: u32 = 2;
/// `IORING_SEND_ZC_REPORT_USAGE` (in the SQE's `ioprio`): the notification says whether the
/// kernel copied.
const IORING_SEND_ZC_REPORT_USAGE: u16 = 1 << 3;
/// `IORING_NOTIF_USAGE_ZC_COPIED`, in a notification's result.
const IORING_NOTIF_USAGE_ZC_COPIED: u32 = 1 << 31;
/// Entries of every ring: one operation is in flight at a time.
const ENTRIES: u32 = 8;
/// `O_DIRECT` transfers must be aligned to the logical block size; a page is enough for any.
const DIRECT_ALIGN: usize = 4096;

/// A ring of the child's own, and what it waits with.
struct Ring {
    ring: IoUring,
    fd: RawFd,
}

impl Ring {
    fn new() -> Result<Ring, Failure> {
        let ring = IoUring::new(ENTRIES).map_err(|e| Failure {
            what: "io_uring_setup",
            errno: e.raw_os_error().unwrap_or(0),
        })?;
        let fd = ring.as_raw_fd();
        Ok(Ring { ring, fd })
    }

    /// A ring whose kernel thread polls the submission queue: no syscall to submit while the
    /// thread is awake (it sleeps after `idle_ms` without work).
    fn sqpoll(idle_ms: u32) -> Result<Ring, Failure> {
        let ring = IoUring::builder()
            .setup_sqpoll(idle_ms)
            .build(ENTRIES)
            .map_err(|e| Failure {
                what: "io_uring_setup with SQPOLL",
                errno: e.raw_os_error().unwrap_or(0),
            })?;
        let fd = ring.as_raw_fd();
        Ok(Ring { ring, fd })
    }

    fn push(&mut self, entry: &squeue::Entry) -> ChildResult {
        // SAFETY: every buffer an entry points at outlives its completion: the callers reap
        // an operation's completion before they touch or drop its buffer.
        unsafe { self.ring.submission().push(entry) }
            .map_err(|_| Failure::new("the io_uring submission queue is full"))
    }

    /// The next completion, entering the kernel to wait only when none is queued.
    fn next(&mut self, rec: &Recorder) -> Result<cqueue::Entry, Failure> {
        loop {
            if let Some(cqe) = self.ring.completion().next() {
                return Ok(cqe);
            }
            sys::io_uring_enter(rec, self.fd, 0, 1, IORING_ENTER_GETEVENTS)
                .or_fail("io_uring_enter to wait")?;
        }
    }

    /// One operation: pushed, submitted and waited for with one `io_uring_enter`, its
    /// completion recorded. Returns its result.
    fn one(&mut self, rec: &Recorder, op: Op, entry: &squeue::Entry) -> Result<i32, Failure> {
        self.push(entry)?;
        sys::io_uring_enter(rec, self.fd, 1, 1, IORING_ENTER_GETEVENTS)
            .or_fail("io_uring_enter to submit")?;
        let cqe = self.next(rec)?;
        rec.op(op, cqe.result());
        Ok(cqe.result())
    }
}

/// The positive result of an operation, or its failure.
fn moved(res: i32, what: &'static str) -> Result<usize, Failure> {
    if res < 0 {
        return Err(Failure { what, errno: -res });
    }
    Ok(res as usize)
}

fn len32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// copier: io_uring READ of the input file and WRITE of what was read to the same offset of
/// the output file, a chunk at a time, one operation per `io_uring_enter`.
pub fn uring_read_write(params: &Params) -> Result<Vec<ProcessReport>> {
    let sizes = params.sizes;
    let (input_path, output_path) = (
        params.dir.file("uring-read-write.input"),
        params.dir.file("uring-read-write.output"),
    );
    let input = input_file(&input_path, sizes.bytes)?;
    let output = output_file(&output_path)?;
    let (src, dst) = (input.as_raw_fd(), output.as_raw_fd());
    let mut buf = vec![0u8; sizes.chunk];
    let slots = SharedSlots::new(1)?;
    let mut children = Children::new(Mode::UringReadWrite.name(), &slots, params.hold);
    children.spawn("copier", &[src, dst], move |rec| {
        let mut ring = Ring::new()?;
        let (read, write) = (Op::named("READ"), Op::named("WRITE"));
        for _ in 0..sizes.rounds {
            let mut at = 0u64;
            while at < sizes.bytes {
                let want = piece(sizes.chunk, sizes.bytes - at);
                let entry = opcode::Read::new(Fd(src), buf.as_mut_ptr(), len32(want))
                    .offset(at)
                    .build();
                let n = moved(ring.one(rec, read, &entry)?, "io_uring READ")?;
                if n == 0 {
                    return Err(Failure::new("input file ended early"));
                }
                let mut done = 0;
                while done < n {
                    let entry = opcode::Write::new(Fd(dst), buf[done..n].as_ptr(), len32(n - done))
                        .offset(at + done as u64)
                        .build();
                    let w = moved(ring.one(rec, write, &entry)?, "io_uring WRITE")?;
                    if w == 0 {
                        return Err(Failure::new("io_uring WRITE took no bytes"));
                    }
                    done += w;
                }
                at += n as u64;
            }
        }
        Ok(())
    })?;
    drop((input, output));
    let reports = children.wait()?;
    same_contents(&input_path, &output_path).context("uring-read-write output")?;
    Ok(reports)
}

/// A buffer aligned for `O_DIRECT`, freed on drop.
struct Aligned {
    ptr: *mut u8,
    layout: Layout,
}

impl Aligned {
    fn new(len: usize) -> Result<Aligned> {
        let layout = Layout::from_size_align(len, DIRECT_ALIGN).context("buffer layout")?;
        // SAFETY: `layout` has a non-zero size (checked by the caller).
        let ptr = unsafe { alloc_zeroed(layout) };
        if ptr.is_null() {
            bail!("could not allocate {len} aligned bytes");
        }
        Ok(Aligned { ptr, layout })
    }

    fn bytes(&self, len: usize) -> &[u8] {
        // SAFETY: `ptr` holds `layout.size()` initialised bytes; `len` is clamped to them.
        unsafe { std::slice::from_raw_parts(self.ptr, len.min(self.layout.size())) }
    }
}

impl Drop for Aligned {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout, freed once.
        unsafe { dealloc(self.ptr, self.layout) };
    }
}

/// reader: io_uring READ of a file opened `O_DIRECT`, a chunk at a time into an aligned
/// buffer: DMA into user memory, no CPU copy. `--bytes` and `--chunk` must be multiples of
/// 4096, and the work dir on a filesystem with direct I/O (ext4, xfs; not tmpfs).
pub fn uring_direct_read(params: &Params) -> Result<Vec<ProcessReport>> {
    let sizes = params.sizes;
    let align = DIRECT_ALIGN as u64;
    if !sizes.bytes.is_multiple_of(align)
        || !sizes.chunk.is_multiple_of(DIRECT_ALIGN)
        || sizes.chunk == 0
    {
        bail!("uring-direct-read needs --bytes and --chunk in multiples of {DIRECT_ALIGN}");
    }
    let path = params.dir.file("uring-direct-read.input");
    drop(input_file(&path, sizes.bytes)?);
    let input = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(&path)
        .with_context(|| format!("open {} with O_DIRECT", path.display()))?;
    let src = input.as_raw_fd();
    let buf = Aligned::new(sizes.chunk)?;
    let mut verifier = Verifier::new(sizes.bytes, sizes.rounds);
    let slots = SharedSlots::new(1)?;
    let mut children = Children::new(Mode::UringDirectRead.name(), &slots, params.hold);
    children.spawn("reader", &[src], move |rec| {
        let mut ring = Ring::new()?;
        let read = Op::named("READ");
        for _ in 0..sizes.rounds {
            let mut at = 0u64;
            while at < sizes.bytes {
                let want = piece(sizes.chunk, sizes.bytes - at);
                let entry = opcode::Read::new(Fd(src), buf.ptr, len32(want))
                    .offset(at)
                    .build();
                let n = moved(ring.one(rec, read, &entry)?, "io_uring READ with O_DIRECT")?;
                if n == 0 {
                    return Err(Failure::new("input file ended early"));
                }
                verifier.check(buf.bytes(n))?;
                at += n as u64;
            }
        }
        verifier.finish()
    })?;
    drop(input);
    children.wait()
}

/// sender: io_uring SEND of each chunk over loopback TCP; receiver: io_uring RECV until the
/// sender's FIN.
pub fn uring_send_recv(params: &Params) -> Result<Vec<ProcessReport>> {
    let sizes = params.sizes;
    let data = pattern(sizes.bytes);
    let pair = net::tcp_pair()?;
    let slots = SharedSlots::new(2)?;
    let mut children = Children::new(Mode::UringSendRecv.name(), &slots, params.hold);

    let receiver = pair.receiver.as_raw_fd();
    let mut buf = vec![0u8; sizes.chunk];
    let mut verifier = Verifier::new(sizes.bytes, sizes.rounds);
    children.spawn("receiver", &[receiver], move |rec| {
        let mut ring = Ring::new()?;
        let recv = Op::named("RECV");
        loop {
            let entry = opcode::Recv::new(Fd(receiver), buf.as_mut_ptr(), len32(buf.len())).build();
            let n = moved(ring.one(rec, recv, &entry)?, "io_uring RECV")?;
            if n == 0 {
                return verifier.finish();
            }
            verifier.check(&buf[..n])?;
        }
    })?;

    let sender = pair.sender.as_raw_fd();
    children.spawn("sender", &[sender], move |rec| {
        let mut ring = Ring::new()?;
        let send = Op::named("SEND");
        for_each_chunk(&data, sizes, |chunk| {
            let entry = opcode::Send::new(Fd(sender), chunk.as_ptr(), len32(chunk.len())).build();
            moved(ring.one(rec, send, &entry)?, "io_uring SEND")
        })?;
        shutdown_write(sender)
    })?;
    drop(pair);
    children.wait()
}

/// Hands every chunk of every round to `op`, which returns how much it took; the rest of a
/// chunk goes to the next call.
fn for_each_chunk(
    data: &[u8],
    sizes: Sizes,
    mut op: impl FnMut(&[u8]) -> Result<usize, Failure>,
) -> ChildResult {
    for _ in 0..sizes.rounds {
        for chunk in data.chunks(sizes.chunk) {
            let mut rest = chunk;
            while !rest.is_empty() {
                let n = op(rest)?;
                if n == 0 {
                    return Err(Failure::new("a send took no bytes"));
                }
                rest = &rest[n..];
            }
        }
    }
    Ok(())
}

/// sender: io_uring SPLICE of each chunk from the file into a pipe, then SPLICE out of the
/// pipe into the socket until the pipe is empty; receiver: `read`.
pub fn uring_splice(params: &Params) -> Result<Vec<ProcessReport>> {
    let sizes = params.sizes;
    let input = input_file(&params.dir.file("uring-splice.input"), sizes.bytes)?;
    let pipe = pipe(sizes.chunk)?;
    let (file, pipe_read, pipe_write) = (
        input.as_raw_fd(),
        pipe.read.as_raw_fd(),
        pipe.write.as_raw_fd(),
    );
    let send = move |rec: &Recorder, socket: RawFd| {
        let mut ring = Ring::new()?;
        let splice = Op::named("SPLICE");
        for _ in 0..sizes.rounds {
            let mut at = 0u64;
            while at < sizes.bytes {
                let want = piece(sizes.chunk, sizes.bytes - at);
                let offset = loff(at)?;
                let into_pipe =
                    opcode::Splice::new(Fd(file), offset, Fd(pipe_write), -1, len32(want)).build();
                let n = moved(
                    ring.one(rec, splice, &into_pipe)?,
                    "io_uring SPLICE file -> pipe",
                )?;
                if n == 0 {
                    return Err(Failure::new("input file ended early"));
                }
                let mut left = n;
                while left > 0 {
                    let out =
                        opcode::Splice::new(Fd(pipe_read), -1, Fd(socket), -1, len32(left)).build();
                    let m = moved(
                        ring.one(rec, splice, &out)?,
                        "io_uring SPLICE pipe -> socket",
                    )?;
                    if m == 0 {
                        return Err(Failure::new("io_uring SPLICE to the socket took no bytes"));
                    }
                    left -= m;
                }
                at += n as u64;
            }
        }
        Ok(())
    };
    let pair = net::tcp_pair()?;
    let reports = run_stream(
        Mode::UringSplice,
        params,
        pair,
        Receive::Read,
        &[file, pipe_read, pipe_write],
        send,
    );
    drop((input, pipe));
    reports
}

/// sender: io_uring SEND_ZC of each chunk over loopback TCP, asking for usage reports, each
/// followed by its notification (the kernel copies on loopback, and says so); receiver: `read`.
pub fn uring_send_zc(params: &Params) -> Result<Vec<ProcessReport>> {
    let sizes = params.sizes;
    let data = pattern(sizes.bytes);
    let send = move |rec: &Recorder, socket: RawFd| {
        let mut ring = Ring::new()?;
        let send_zc = Op::named("SEND_ZC");
        for_each_chunk(&data, sizes, |chunk| {
            let entry = opcode::SendZc::new(Fd(socket), chunk.as_ptr(), len32(chunk.len()))
                .zc_flags(IORING_SEND_ZC_REPORT_USAGE)
                .build();
            ring.push(&entry)?;
            sys::io_uring_enter(rec, ring.fd, 1, 1, IORING_ENTER_GETEVENTS)
                .or_fail("io_uring_enter to submit")?;
            // The send's completion (F_MORE: a notification follows), then the notification,
            // once the kernel no longer holds the pages: the buffer is free again only then.
            let mut sent = None;
            loop {
                let cqe = ring.next(rec)?;
                if cqueue::notif(cqe.flags()) {
                    rec.notice(1, cqe.result() as u32 & IORING_NOTIF_USAGE_ZC_COPIED != 0);
                    break;
                }
                rec.op(send_zc, cqe.result());
                let n = moved(cqe.result(), "io_uring SEND_ZC")?;
                if n > 0 {
                    rec.zerocopy_send(n);
                }
                sent = Some(n);
                if !cqueue::more(cqe.flags()) {
                    break;
                }
            }
            sent.ok_or(Failure::new(
                "io_uring SEND_ZC: a notification before its send",
            ))
        })
    };
    let pair = net::tcp_pair()?;
    run_stream(Mode::UringSendZc, params, pair, Receive::Read, &[], send)
}

/// reader: io_uring READ of a file through an SQPOLL ring. Submitting is a store to shared
/// memory that the ring's kernel thread picks up, and completions are polled from the
/// completion queue: `io_uring_enter` only when the thread went to sleep, so the process
/// spends next to no transitions.
pub fn uring_sqpoll(params: &Params) -> Result<Vec<ProcessReport>> {
    let sizes = params.sizes;
    let input = input_file(&params.dir.file("uring-sqpoll.input"), sizes.bytes)?;
    let src = input.as_raw_fd();
    let mut buf = vec![0u8; sizes.chunk];
    let mut verifier = Verifier::new(sizes.bytes, sizes.rounds);
    let slots = SharedSlots::new(1)?;
    let mut children = Children::new(Mode::UringSqpoll.name(), &slots, params.hold);
    children.spawn("reader", &[src], move |rec| {
        let mut ring = Ring::sqpoll(2000)?;
        let read = Op::named("READ");
        for _ in 0..sizes.rounds {
            let mut at = 0u64;
            while at < sizes.bytes {
                let want = piece(sizes.chunk, sizes.bytes - at);
                let entry = opcode::Read::new(Fd(src), buf.as_mut_ptr(), len32(want))
                    .offset(at)
                    .build();
                ring.push(&entry)?;
                if ring.ring.submission().need_wakeup() {
                    sys::io_uring_enter(rec, ring.fd, 0, 0, IORING_ENTER_SQ_WAKEUP)
                        .or_fail("io_uring_enter to wake the SQPOLL thread")?;
                }
                let deadline = std::time::Instant::now() + net::IO_TIMEOUT;
                let cqe = loop {
                    if let Some(cqe) = ring.ring.completion().next() {
                        break cqe;
                    }
                    if std::time::Instant::now() > deadline {
                        return Err(Failure::new("no completion from the SQPOLL ring"));
                    }
                    std::hint::spin_loop();
                };
                rec.op(read, cqe.result());
                let n = moved(cqe.result(), "io_uring READ (SQPOLL)")?;
                if n == 0 {
                    return Err(Failure::new("input file ended early"));
                }
                verifier.check(&buf[..n])?;
                at += n as u64;
            }
        }
        verifier.finish()
    })?;
    drop(input);
    children.wait()
}
