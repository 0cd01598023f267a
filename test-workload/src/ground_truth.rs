//! The ground truth: what each measured child did, per traced syscall, kept in a `MAP_SHARED`
//! anonymous mapping made before `fork()`. A child records into its slot with plain memory
//! stores, so reporting costs it no syscall; the parent reads the slot after `waitpid()`.

use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, AtomicU8, Ordering};

use anyhow::{bail, Context, Result};
use libc::c_long;
use serde::Serialize;
use zerocopy_trace_common::{
    Arch, Counting, IO_URING_OPS, IO_URING_OP_COUNT, SYSCALLS, SYSCALL_COUNT,
};

/// A traced syscall. The discriminant is the syscall's index in the common crate's `SYSCALLS`
/// table, so the names in our JSON are the tracer's names by construction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Syscall {
    Read,
    Write,
    Readv,
    Writev,
    Pread64,
    Pwrite64,
    Preadv,
    Pwritev,
    Preadv2,
    Pwritev2,
    Recvfrom,
    Recvmsg,
    Recvmmsg,
    Sendto,
    Sendmsg,
    Sendmmsg,
    Sendfile64,
    Splice,
    Tee,
    Vmsplice,
    CopyFileRange,
    IoUringEnter,
}

impl Syscall {
    /// Every variant in table order; the array length ties the enum to `SYSCALL_COUNT`.
    pub const ALL: [Syscall; SYSCALL_COUNT] = [
        Syscall::Read,
        Syscall::Write,
        Syscall::Readv,
        Syscall::Writev,
        Syscall::Pread64,
        Syscall::Pwrite64,
        Syscall::Preadv,
        Syscall::Pwritev,
        Syscall::Preadv2,
        Syscall::Pwritev2,
        Syscall::Recvfrom,
        Syscall::Recvmsg,
        Syscall::Recvmmsg,
        Syscall::Sendto,
        Syscall::Sendmsg,
        Syscall::Sendmmsg,
        Syscall::Sendfile64,
        Syscall::Splice,
        Syscall::Tee,
        Syscall::Vmsplice,
        Syscall::CopyFileRange,
        Syscall::IoUringEnter,
    ];

    pub const fn id(self) -> usize {
        self as usize
    }

    /// The tracer's name for this syscall (tracepoint `sys_enter_<name>`).
    pub const fn name(self) -> &'static str {
        SYSCALLS[self.id()].name
    }

    /// The number we pass to `syscall(2)`, from the common table. Calling by number keeps
    /// glibc from substituting a sibling (`pread` -> `pread64`, `preadv2` -> `preadv`, `send` ->
    /// `sendto`).
    pub const fn number(self) -> c_long {
        match Arch::HOST {
            Some(arch) => SYSCALLS[self.id()].number(arch) as c_long,
            // An architecture the table lacks: no call can be made by number. main() refuses
            // to start there, so this is never reached.
            None => -1,
        }
    }
}

/// An `errno` value a measured call failed with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Errno(pub i32);

/// Why a child gave up: a fixed description and the `errno` involved (0 when the failure is
/// not a syscall's, e.g. the data received did not match what was sent).
#[derive(Clone, Copy, Debug)]
pub struct Failure {
    pub what: &'static str,
    pub errno: i32,
}

impl Failure {
    pub const fn new(what: &'static str) -> Self {
        Failure { what, errno: 0 }
    }
}

/// Attaches the step's description to a failed measured call.
pub trait OrFail<T> {
    fn or_fail(self, what: &'static str) -> Result<T, Failure>;
}

impl<T> OrFail<T> for Result<T, Errno> {
    fn or_fail(self, what: &'static str) -> Result<T, Failure> {
        self.map_err(|Errno(errno)| Failure { what, errno })
    }
}

/// An io_uring operation, by its index in the common crate's `IO_URING_OPS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Op(usize);

impl Op {
    /// The operation `op_str` calls `name`; panics on a name the table lacks (a typo in a
    /// mode, caught by its first run).
    pub fn named(name: &str) -> Op {
        let index = zerocopy_trace_common::io_uring::io_uring_op_index(name);
        Op(index.unwrap_or_else(|| panic!("{name} is not a traced io_uring operation")))
    }

    pub fn name(self) -> &'static str {
        IO_URING_OPS[self.0].name
    }
}

/// Zero-copy sends as the sender itself saw them: what it sent, and what the kernel's
/// completion notices it read said.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ZeroCopyCounts {
    pub sends: u64,
    pub bytes: u64,
    /// Sends covered by the notices read.
    pub completions: u64,
    pub kernel_copied: u64,
}

/// The counters of one syscall, as the tracer defines them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub calls: u64,
    /// Sum of non-negative return values; for the mmsg pair, the `msg_len` of the messages the
    /// call reported.
    pub bytes: u64,
    /// Calls that returned -1.
    pub errors: u64,
    /// Of `bytes`, those of calls made with `MSG_ZEROCOPY` (the send family only, as the
    /// tracer counts them).
    pub msg_zerocopy_bytes: u64,
}

const MESSAGE_LEN: usize = 96;

/// Where a child is in its life, as seen in its slot.
const NOT_STARTED: u32 = 0;
const RUNNING: u32 = 1;
const SUCCEEDED: u32 = 2;
const FAILED: u32 = 3;

/// One child's record. Every field is an atomic so that both processes only ever hold shared
/// references to the mapping; all-zero bytes (what a fresh mapping holds) are a valid,
/// empty slot.
#[repr(C)]
pub struct Slot {
    state: AtomicU32,
    errno: AtomicI32,
    message_len: AtomicU32,
    message: [AtomicU8; MESSAGE_LEN],
    /// Free for a mode's own use between its children (mmsg: messages received so far).
    pub progress: AtomicU64,
    /// `[calls, bytes, errors, msg_zerocopy_bytes]` per syscall id.
    counters: [[AtomicU64; 4]; SYSCALL_COUNT],
    /// `[completions, bytes, errors]` per io_uring operation.
    ops: [[AtomicU64; 3]; IO_URING_OP_COUNT],
    /// `[sends, bytes, completions, kernel_copied]` of zero-copy sends.
    zerocopy: [AtomicU64; 4],
}

/// How a child ended, according to its slot.
#[derive(Debug)]
pub enum Outcome {
    NotStarted,
    /// Still `RUNNING`: the child died before it could say how it ended.
    Unfinished,
    Succeeded,
    Failed(String),
}

impl Slot {
    pub fn counts(&self, syscall: Syscall) -> Counts {
        let [calls, bytes, errors, msg_zerocopy_bytes] = &self.counters[syscall.id()];
        Counts {
            calls: calls.load(Ordering::Acquire),
            bytes: bytes.load(Ordering::Acquire),
            errors: errors.load(Ordering::Acquire),
            msg_zerocopy_bytes: msg_zerocopy_bytes.load(Ordering::Acquire),
        }
    }

    /// Completions of io_uring operation `op`: `calls` are its completions.
    pub fn op_counts(&self, op: Op) -> Counts {
        let [calls, bytes, errors] = &self.ops[op.0];
        Counts {
            calls: calls.load(Ordering::Acquire),
            bytes: bytes.load(Ordering::Acquire),
            errors: errors.load(Ordering::Acquire),
            // Zero-copy sends of io_uring are in `zerocopy`.
            msg_zerocopy_bytes: 0,
        }
    }

    /// Every operation the child completed at least once.
    pub fn ops_used(&self) -> impl Iterator<Item = (Op, Counts)> + '_ {
        (0..IO_URING_OP_COUNT)
            .map(|i| (Op(i), self.op_counts(Op(i))))
            .filter(|(_, c)| c.calls > 0)
    }

    pub fn zerocopy(&self) -> ZeroCopyCounts {
        let [sends, bytes, completions, copied] = &self.zerocopy;
        ZeroCopyCounts {
            sends: sends.load(Ordering::Acquire),
            bytes: bytes.load(Ordering::Acquire),
            completions: completions.load(Ordering::Acquire),
            kernel_copied: copied.load(Ordering::Acquire),
        }
    }

    /// Empties the slot for the next child, as a fresh mapping would be. Only the parent calls
    /// this, between reaping one child and forking the next into the slot, when no process
    /// uses it.
    pub fn reset(&self) {
        self.state.store(NOT_STARTED, Ordering::Relaxed);
        self.errno.store(0, Ordering::Relaxed);
        self.message_len.store(0, Ordering::Relaxed);
        for b in &self.message {
            b.store(0, Ordering::Relaxed);
        }
        self.progress.store(0, Ordering::Relaxed);
        for counter in self
            .counters
            .iter()
            .flatten()
            .chain(self.ops.iter().flatten())
            .chain(&self.zerocopy)
        {
            counter.store(0, Ordering::Relaxed);
        }
        // fork() orders these stores before anything the next child does.
        std::sync::atomic::fence(Ordering::Release);
    }

    pub fn outcome(&self) -> Outcome {
        match self.state.load(Ordering::Acquire) {
            NOT_STARTED => Outcome::NotStarted,
            SUCCEEDED => Outcome::Succeeded,
            FAILED => {
                let len = (self.message_len.load(Ordering::Acquire) as usize).min(MESSAGE_LEN);
                let bytes: Vec<u8> = self.message[..len]
                    .iter()
                    .map(|b| b.load(Ordering::Acquire))
                    .collect();
                let mut text = String::from_utf8_lossy(&bytes).into_owned();
                let errno = self.errno.load(Ordering::Acquire);
                if errno != 0 {
                    text = format!("{text}: {}", io::Error::from_raw_os_error(errno));
                }
                Outcome::Failed(text)
            }
            _ => Outcome::Unfinished,
        }
    }
}

/// The child's side of its slot: counts calls, and says how the child ended.
pub struct Recorder<'a> {
    slot: &'a Slot,
}

impl<'a> Recorder<'a> {
    pub fn start(slot: &'a Slot) -> Self {
        slot.state.store(RUNNING, Ordering::Release);
        Recorder { slot }
    }

    /// Records one call of `syscall` that returned `ret` (as `syscall(2)` returns it: -1 on
    /// failure with `errno` set) and hands back the byte count or the `errno`. Must directly
    /// follow the call, before anything else can change `errno`.
    pub fn call(&self, syscall: Syscall, ret: c_long) -> Result<usize, Errno> {
        self.call_send(syscall, ret, 0)
    }

    /// `call` for a send made with `flags` (`MSG_*`): the bytes of a `MSG_ZEROCOPY` send are
    /// also counted apart, as the tracer does.
    pub fn call_send(&self, syscall: Syscall, ret: c_long, flags: i32) -> Result<usize, Errno> {
        let result = returned(ret);
        let bytes = match result {
            // io_uring_enter returns the entries it consumed, not bytes.
            Ok(_) if SYSCALLS[syscall.id()].counting == Counting::CallsOnly => 0,
            Ok(n) => n as u64,
            Err(_) => 0,
        };
        self.add(syscall, bytes, result.is_err(), zerocopy(flags));
        result
    }

    /// Records one `sendmmsg`/`recvmmsg` call: its bytes are the `msg_len` of the first `ret`
    /// entries of `msgs`, as the kernel filled them in. Returns the number of messages.
    pub fn call_mmsg(
        &self,
        syscall: Syscall,
        ret: c_long,
        msgs: &[libc::mmsghdr],
    ) -> Result<usize, Errno> {
        self.call_mmsg_send(syscall, ret, msgs, 0)
    }

    /// `call_mmsg` for a `sendmmsg` made with `flags`, as `call_send`.
    pub fn call_mmsg_send(
        &self,
        syscall: Syscall,
        ret: c_long,
        msgs: &[libc::mmsghdr],
        flags: i32,
    ) -> Result<usize, Errno> {
        let result = returned(ret);
        let bytes = match result {
            Ok(n) => msgs.iter().take(n).map(|m| u64::from(m.msg_len)).sum(),
            Err(_) => 0,
        };
        self.add(syscall, bytes, result.is_err(), zerocopy(flags));
        result
    }

    fn add(&self, syscall: Syscall, bytes: u64, failed: bool, msg_zerocopy: bool) {
        let [calls, total, errors, zerocopy_bytes] = &self.slot.counters[syscall.id()];
        calls.fetch_add(1, Ordering::Release);
        total.fetch_add(bytes, Ordering::Release);
        if failed {
            errors.fetch_add(1, Ordering::Release);
        }
        if msg_zerocopy {
            zerocopy_bytes.fetch_add(bytes, Ordering::Release);
        }
    }

    /// Records one completion of io_uring operation `op` with result `res` (a byte count, or
    /// a negative errno).
    pub fn op(&self, op: Op, res: i32) {
        let [calls, bytes, errors] = &self.slot.ops[op.0];
        calls.fetch_add(1, Ordering::Release);
        if res > 0 {
            bytes.fetch_add(res as u64, Ordering::Release);
        }
        if res < 0 {
            errors.fetch_add(1, Ordering::Release);
        }
    }

    /// Records one send that asked for zero copy and took `bytes`.
    pub fn zerocopy_send(&self, bytes: usize) {
        self.slot.zerocopy[0].fetch_add(1, Ordering::Release);
        self.slot.zerocopy[1].fetch_add(bytes as u64, Ordering::Release);
    }

    /// Records a completion notice covering `sends` sends, which the kernel copied or not.
    pub fn notice(&self, sends: u64, copied: bool) {
        self.slot.zerocopy[2].fetch_add(sends, Ordering::Release);
        if copied {
            self.slot.zerocopy[3].fetch_add(sends, Ordering::Release);
        }
    }

    pub fn succeed(&self) {
        self.slot.state.store(SUCCEEDED, Ordering::Release);
    }

    pub fn fail(&self, failure: Failure) {
        let what = failure.what.as_bytes();
        let len = what.len().min(MESSAGE_LEN);
        for (dst, src) in self.slot.message.iter().zip(&what[..len]) {
            dst.store(*src, Ordering::Relaxed);
        }
        self.slot.message_len.store(len as u32, Ordering::Release);
        self.slot.errno.store(failure.errno, Ordering::Release);
        self.slot.state.store(FAILED, Ordering::Release);
    }
}

fn zerocopy(flags: i32) -> bool {
    flags & libc::MSG_ZEROCOPY != 0
}

/// Turns `syscall(2)`'s return into a byte/message count or the `errno`.
fn returned(ret: c_long) -> Result<usize, Errno> {
    if ret < 0 {
        // Read at once: nothing has run since the call that could overwrite errno.
        Err(Errno(
            io::Error::last_os_error().raw_os_error().unwrap_or(0),
        ))
    } else {
        Ok(ret as usize)
    }
}

/// The shared mapping holding one `Slot` per child of a mode run.
pub struct SharedSlots {
    base: NonNull<Slot>,
    len: usize,
}

impl SharedSlots {
    pub fn new(len: usize) -> Result<Self> {
        if len == 0 {
            bail!("a mode needs at least one child slot");
        }
        let bytes = len * size_of::<Slot>();
        // SAFETY: a fresh anonymous mapping; no existing memory is touched. MAP_SHARED makes
        // the children's stores visible to the parent after fork().
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error()).context("mmap the shared ground-truth slots");
        }
        let base = NonNull::new(addr.cast::<Slot>()).context("mmap returned a null mapping")?;
        Ok(SharedSlots { base, len })
    }

    /// How many slots the mapping holds.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn slot(&self, index: usize) -> &Slot {
        assert!(index < self.len, "slot {index} of {}", self.len);
        // SAFETY: the mapping holds `len` slots, is page-aligned (enough for `Slot`), lives as
        // long as `self`, and starts zeroed, which is a valid `Slot` (atomics only). Only
        // shared references are ever made to it.
        unsafe { &*self.base.as_ptr().add(index) }
    }
}

impl Drop for SharedSlots {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping made in `new`; no reference outlives `self`.
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.len * size_of::<Slot>());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snake_case(camel: &str) -> String {
        let mut out = String::new();
        for (i, c) in camel.chars().enumerate() {
            if c.is_ascii_uppercase() {
                if i > 0 {
                    out.push('_');
                }
                out.push(c.to_ascii_lowercase());
            } else {
                out.push(c);
            }
        }
        out
    }

    #[test]
    fn variants_follow_the_common_table() {
        for (i, s) in Syscall::ALL.iter().enumerate() {
            assert_eq!(s.id(), i);
            assert_eq!(snake_case(&format!("{s:?}")), s.name());
        }
    }

    #[test]
    fn records_bytes_and_errors() {
        let slots = SharedSlots::new(1).expect("mmap");
        let rec = Recorder::start(slots.slot(0));
        assert_eq!(rec.call(Syscall::Read, 10), Ok(10));
        assert_eq!(rec.call(Syscall::Read, 0), Ok(0));
        // SAFETY: sets errno of this thread, as a failed syscall would.
        unsafe { *libc::__errno_location() = libc::EBADF };
        assert_eq!(rec.call(Syscall::Read, -1), Err(Errno(libc::EBADF)));
        let c = slots.slot(0).counts(Syscall::Read);
        assert_eq!(
            c,
            Counts {
                calls: 3,
                bytes: 10,
                errors: 1,
                msg_zerocopy_bytes: 0
            }
        );
        assert_eq!(slots.slot(0).counts(Syscall::Write), Counts::default());
    }

    #[test]
    fn mmsg_bytes_are_the_reported_messages() {
        let slots = SharedSlots::new(1).expect("mmap");
        let rec = Recorder::start(slots.slot(0));
        // SAFETY: mmsghdr is plain data; all-zero is valid.
        let mut msgs: [libc::mmsghdr; 3] = unsafe { std::mem::zeroed() };
        for (m, len) in msgs.iter_mut().zip([100, 200, 300]) {
            m.msg_len = len;
        }
        assert_eq!(rec.call_mmsg(Syscall::Sendmmsg, 2, &msgs), Ok(2));
        let c = slots.slot(0).counts(Syscall::Sendmmsg);
        assert_eq!(
            c,
            Counts {
                calls: 1,
                bytes: 300,
                errors: 0,
                msg_zerocopy_bytes: 0
            }
        );
        assert_eq!(
            rec.call_mmsg_send(Syscall::Sendmmsg, 3, &msgs, libc::MSG_ZEROCOPY),
            Ok(3)
        );
        assert_eq!(
            slots.slot(0).counts(Syscall::Sendmmsg).msg_zerocopy_bytes,
            600
        );
    }

    #[test]
    fn msg_zerocopy_sends_are_counted_apart() {
        let slots = SharedSlots::new(1).expect("mmap");
        let rec = Recorder::start(slots.slot(0));
        assert_eq!(rec.call_send(Syscall::Sendto, 100, 0), Ok(100));
        assert_eq!(
            rec.call_send(Syscall::Sendto, 40, libc::MSG_ZEROCOPY | libc::MSG_DONTWAIT),
            Ok(40)
        );
        // SAFETY: sets errno of this thread, as a failed syscall would.
        unsafe { *libc::__errno_location() = libc::ENOBUFS };
        assert_eq!(
            rec.call_send(Syscall::Sendto, -1, libc::MSG_ZEROCOPY),
            Err(Errno(libc::ENOBUFS))
        );
        assert_eq!(
            slots.slot(0).counts(Syscall::Sendto),
            Counts {
                calls: 3,
                bytes: 140,
                errors: 1,
                msg_zerocopy_bytes: 40
            }
        );
    }

    #[test]
    fn failure_message_round_trips() {
        let slots = SharedSlots::new(2).expect("mmap");
        Recorder::start(slots.slot(1)).fail(Failure {
            what: "write to socket",
            errno: libc::EPIPE,
        });
        match slots.slot(1).outcome() {
            Outcome::Failed(text) => assert!(text.starts_with("write to socket: "), "{text}"),
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(slots.slot(0).outcome(), Outcome::NotStarted));
    }

    #[test]
    fn reset_empties_a_used_slot() {
        let slots = SharedSlots::new(1).expect("mmap");
        let rec = Recorder::start(slots.slot(0));
        assert_eq!(rec.call(Syscall::Write, 5), Ok(5));
        rec.fail(Failure::new("write"));
        slots.slot(0).progress.store(3, Ordering::Relaxed);
        slots.slot(0).reset();
        assert!(matches!(slots.slot(0).outcome(), Outcome::NotStarted));
        assert_eq!(slots.slot(0).counts(Syscall::Write), Counts::default());
        assert_eq!(slots.slot(0).progress.load(Ordering::Relaxed), 0);
    }
}
