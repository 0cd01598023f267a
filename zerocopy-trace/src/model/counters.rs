//! What is counted of a process: the plain data every later step works on. A group of
//! processes (all those of one name, say) adds up to the same shape.

use zerocopy_trace_common::{
    Counters, FileRole, Method, IO_URING_OPS, IO_URING_OP_COUNT, SYSCALLS, SYSCALL_COUNT,
};

/// Per-syscall counters, indexed by syscall id.
pub type SyscallCounters = [Counters; SYSCALL_COUNT];
/// Per-operation counters of io_uring, indexed like `IO_URING_OPS`.
pub type IoUringCounters = [Counters; IO_URING_OP_COUNT];

/// Everything counted of one process, or of several added together. A new data path adds its
/// counters here, and to `add` and `difference`, which every sum and rate goes through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessCounters {
    pub syscalls: SyscallCounters,
    pub io_uring: IoUringCounters,
}

impl Default for ProcessCounters {
    fn default() -> Self {
        ProcessCounters {
            syscalls: [Counters::default(); SYSCALL_COUNT],
            io_uring: [Counters::default(); IO_URING_OP_COUNT],
        }
    }
}

/// One data path, a syscall or an io_uring operation, as the model sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Path {
    /// As in the JSON: the tracepoint's name, or the operation's `op_str`.
    pub name: &'static str,
    /// As flows and findings name it.
    pub display: &'static str,
    pub method: Method,
    /// Data comes out of an fd (else out of user memory).
    pub source_fd: bool,
    /// Data goes into an fd (else into user memory).
    pub destination_fd: bool,
    /// An io_uring operation: no transition of its own.
    pub io_uring: bool,
}

/// The path of counter id `id` (the kernel's numbering: syscalls, then io_uring operations).
pub fn path(id: usize) -> Option<Path> {
    if let Some(s) = SYSCALLS.get(id) {
        return Some(Path {
            name: s.name,
            display: s.display,
            method: s.method,
            source_fd: s.source_fd.is_some(),
            destination_fd: s.destination_fd.is_some(),
            io_uring: false,
        });
    }
    let op = IO_URING_OPS.get(id - SYSCALL_COUNT)?;
    Some(Path {
        name: op.name,
        display: op.display,
        method: op.method,
        source_fd: op.file == FileRole::Source || op.input_fd,
        destination_fd: op.file == FileRole::Destination,
        io_uring: true,
    })
}

fn difference(n: &Counters, b: &Counters) -> Counters {
    let minus = |n: &[u64], b: &[u64], o: &mut [u64]| {
        for ((o, n), b) in o.iter_mut().zip(n).zip(b) {
            *o = n.saturating_sub(*b);
        }
    };
    let mut o = Counters {
        calls: n.calls.saturating_sub(b.calls),
        bytes: n.bytes.saturating_sub(b.bytes),
        errors: n.errors.saturating_sub(b.errors),
        msg_zerocopy_bytes: n.msg_zerocopy_bytes.saturating_sub(b.msg_zerocopy_bytes),
        zerocopy_sends: n.zerocopy_sends.saturating_sub(b.zerocopy_sends),
        zerocopy_notified: n.zerocopy_notified.saturating_sub(b.zerocopy_notified),
        zerocopy_copied: n.zerocopy_copied.saturating_sub(b.zerocopy_copied),
        direct_bytes: n.direct_bytes.saturating_sub(b.direct_bytes),
        ..Counters::default()
    };
    minus(
        &n.source_kind_bytes,
        &b.source_kind_bytes,
        &mut o.source_kind_bytes,
    );
    minus(
        &n.destination_kind_bytes,
        &b.destination_kind_bytes,
        &mut o.destination_kind_bytes,
    );
    o
}

impl ProcessCounters {
    /// The counters of id `id` (syscalls, then io_uring operations), if there is such an id.
    pub fn slot_mut(&mut self, id: usize) -> Option<&mut Counters> {
        match id.checked_sub(SYSCALL_COUNT) {
            None => self.syscalls.get_mut(id),
            Some(op) => self.io_uring.get_mut(op),
        }
    }

    /// Every path with its counters, syscalls first.
    pub fn rows(&self) -> impl Iterator<Item = (Path, &Counters)> {
        self.syscalls
            .iter()
            .chain(&self.io_uring)
            .enumerate()
            .filter_map(|(id, c)| Some((path(id)?, c)))
    }

    /// Adds `other` in, field by field (64-bit byte counts do not wrap in any real trace).
    pub fn add(&mut self, other: &ProcessCounters) {
        for (s, o) in self.syscalls.iter_mut().zip(&other.syscalls) {
            s.add(o);
        }
        for (s, o) in self.io_uring.iter_mut().zip(&other.io_uring) {
            s.add(o);
        }
    }

    /// `self - before`, field by field; a counter that went backwards gives 0, not a wrap.
    pub fn difference(&self, before: &ProcessCounters) -> ProcessCounters {
        let mut out = ProcessCounters::default();
        for ((o, n), b) in out
            .syscalls
            .iter_mut()
            .zip(&self.syscalls)
            .zip(&before.syscalls)
        {
            *o = difference(n, b);
        }
        for ((o, n), b) in out
            .io_uring
            .iter_mut()
            .zip(&self.io_uring)
            .zip(&before.io_uring)
        {
            *o = difference(n, b);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use zerocopy_trace_common::{fd_kind, io_uring::io_uring_op_index, ID_COUNT};

    use super::*;

    #[test]
    fn differences_saturate_and_cover_every_field() {
        let mut before = ProcessCounters::default();
        let mut now = ProcessCounters::default();
        before.syscalls[0].calls = 9;
        before.syscalls[0].bytes = u64::MAX;
        now.syscalls[0].calls = 12;
        now.syscalls[0].bytes = 5;
        now.syscalls[3].msg_zerocopy_bytes = 7;
        now.syscalls[3].zerocopy_sends = 2;
        now.syscalls[3].zerocopy_notified = 3;
        now.syscalls[3].zerocopy_copied = 1;
        now.syscalls[3].direct_bytes = 8;
        now.syscalls[3].source_kind_bytes[fd_kind::FILE as usize] = 4;
        now.syscalls[3].destination_kind_bytes[fd_kind::TCP as usize] = 6;
        now.io_uring[2].bytes = 11;
        let d = now.difference(&before);
        assert_eq!((d.syscalls[0].calls, d.syscalls[0].bytes), (3, 0));
        let c = &d.syscalls[3];
        assert_eq!(
            (
                c.msg_zerocopy_bytes,
                c.zerocopy_sends,
                c.zerocopy_notified,
                c.zerocopy_copied,
                c.direct_bytes
            ),
            (7, 2, 3, 1, 8)
        );
        assert_eq!(c.source_kind_bytes[fd_kind::FILE as usize], 4);
        assert_eq!(c.destination_kind_bytes[fd_kind::TCP as usize], 6);
        assert_eq!(d.io_uring[2].bytes, 11);
        assert_eq!(before.difference(&before), ProcessCounters::default());
        let mut sum = ProcessCounters::default();
        sum.add(&now);
        sum.add(&now);
        assert_eq!(sum.syscalls[0].calls, 24);
        assert_eq!(sum.io_uring[2].bytes, 22);
    }

    #[test]
    fn ids_cover_both_tables() {
        let mut c = ProcessCounters::default();
        let read_op = SYSCALL_COUNT + io_uring_op_index("READ").unwrap();
        c.slot_mut(read_op).unwrap().calls = 5;
        c.slot_mut(0).unwrap().calls = 1;
        assert!(c.slot_mut(ID_COUNT).is_none());
        assert_eq!(c.io_uring[0].calls, 5);
        let rows: Vec<_> = c.rows().filter(|(_, c)| c.calls > 0).collect();
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].0.name, rows[0].0.io_uring), ("read", false));
        assert_eq!((rows[1].0.name, rows[1].0.io_uring), ("READ", true));
        assert_eq!(c.rows().count(), ID_COUNT);
        let splice = path(SYSCALL_COUNT + io_uring_op_index("SPLICE").unwrap()).unwrap();
        assert!(splice.source_fd && splice.destination_fd);
        assert!(path(ID_COUNT).is_none());
    }
}
