//! What is counted of a process: the plain data every later step works on. A group of
//! processes (all those of one name, say) adds up to the same shape.

use zerocopy_trace_common::{
    Counters, FileRole, Method, ID_COUNT, IO_URING_OPS, SYSCALLS, SYSCALL_COUNT,
};

/// Everything counted of one process, or of several added together: the counters of each id
/// it used (syscalls, then io_uring operations, the kernel's numbering). Sparse on purpose: a
/// process uses a few of the 39 ids, and a full table would be 8 KiB a process, which a
/// dashboard holding a thousand rows (totals and deltas) and a snapshot of them would pay for
/// in tens of megabytes. Every sum and rate goes through `add` and `difference`.
#[derive(Clone, Debug, Default)]
pub struct ProcessCounters {
    /// The ids used, in order, with their counters.
    used: Vec<(u8, Counters)>,
}

/// What an unused id reads as.
static ZERO: Counters = Counters::ZERO;

impl PartialEq for ProcessCounters {
    /// Equal when every id reads the same (an id present with zero counters equals absent).
    fn eq(&self, other: &Self) -> bool {
        let differs =
            |a: &Self, b: &Self| a.used.iter().any(|(id, c)| b.get(usize::from(*id)) != c);
        !differs(self, other) && !differs(other, self)
    }
}

impl Eq for ProcessCounters {}

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

impl Path {
    /// How a list of paths names this one: a syscall by its tracepoint's name (`sendfile64`),
    /// an io_uring operation as flows name it (`io_uring READ`), so it is never mistaken for
    /// the syscall of the same name.
    pub fn label(&self) -> &'static str {
        if self.io_uring {
            self.display
        } else {
            self.name
        }
    }
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
    /// The counters of id `id`: zero when unused (or past the tables).
    pub fn get(&self, id: usize) -> &Counters {
        match self.position(id) {
            Ok(at) => &self.used[at].1,
            Err(_) => &ZERO,
        }
    }

    /// The counters of syscall `id` (as in `SYSCALLS`).
    pub fn syscall(&self, id: usize) -> &Counters {
        self.get(id)
    }

    /// The counters of io_uring operation `index` (as in `IO_URING_OPS`).
    pub fn op(&self, index: usize) -> &Counters {
        self.get(SYSCALL_COUNT + index)
    }

    /// The counters of id `id` (syscalls, then io_uring operations), made on first use; `None`
    /// past the tables.
    pub fn slot_mut(&mut self, id: usize) -> Option<&mut Counters> {
        let key = u8::try_from(id).ok().filter(|_| id < ID_COUNT)?;
        let at = match self.position(id) {
            Ok(at) => at,
            Err(at) => {
                self.used.insert(at, (key, Counters::default()));
                at
            }
        };
        Some(&mut self.used[at].1)
    }

    /// `slot_mut` of syscall `id`, which must be in the table.
    pub fn syscall_mut(&mut self, id: usize) -> &mut Counters {
        self.slot_mut(id).expect("a syscall id of the table")
    }

    /// `slot_mut` of io_uring operation `index`, which must be in the table.
    pub fn op_mut(&mut self, index: usize) -> &mut Counters {
        self.slot_mut(SYSCALL_COUNT + index)
            .expect("an io_uring operation of the table")
    }

    fn position(&self, id: usize) -> Result<usize, usize> {
        self.used
            .binary_search_by_key(&id, |(used, _)| usize::from(*used))
    }

    /// Every path used, with its id and counters, syscalls first.
    pub fn rows(&self) -> impl Iterator<Item = (usize, Path, &Counters)> {
        self.used.iter().filter_map(|(id, c)| {
            let id = usize::from(*id);
            Some((id, path(id)?, c))
        })
    }

    /// Adds `other` in, field by field (64-bit byte counts do not wrap in any real trace).
    pub fn add(&mut self, other: &ProcessCounters) {
        for (id, c) in &other.used {
            if let Some(slot) = self.slot_mut(usize::from(*id)) {
                slot.add(c);
            }
        }
    }

    /// The ids used, in order, with their counters.
    pub fn entries(&self) -> &[(u8, Counters)] {
        &self.used
    }

    /// `self - before`, field by field; a counter that went backwards gives 0, not a wrap.
    /// Ids with nothing new are left out.
    pub fn difference(&self, before: &ProcessCounters) -> ProcessCounters {
        let used = self
            .used
            .iter()
            .map(|(id, now)| (*id, difference(now, before.get(usize::from(*id)))))
            .filter(|(_, d)| !d.is_zero())
            .collect();
        ProcessCounters { used }
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
        before.syscall_mut(0).calls = 9;
        before.syscall_mut(0).bytes = u64::MAX;
        now.syscall_mut(0).calls = 12;
        now.syscall_mut(0).bytes = 5;
        now.syscall_mut(3).msg_zerocopy_bytes = 7;
        now.syscall_mut(3).zerocopy_sends = 2;
        now.syscall_mut(3).zerocopy_notified = 3;
        now.syscall_mut(3).zerocopy_copied = 1;
        now.syscall_mut(3).direct_bytes = 8;
        now.syscall_mut(3).source_kind_bytes[fd_kind::FILE as usize] = 4;
        now.syscall_mut(3).destination_kind_bytes[fd_kind::TCP as usize] = 6;
        now.op_mut(2).bytes = 11;
        let d = now.difference(&before);
        assert_eq!((d.syscall(0).calls, d.syscall(0).bytes), (3, 0));
        let c = d.syscall(3);
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
        assert_eq!(d.op(2).bytes, 11);
        assert_eq!(before.difference(&before), ProcessCounters::default());
        let mut sum = ProcessCounters::default();
        sum.add(&now);
        sum.add(&now);
        assert_eq!(sum.syscall(0).calls, 24);
        assert_eq!(sum.op(2).bytes, 22);
    }

    #[test]
    fn unused_ids_read_as_zero_and_equality_ignores_zero_entries() {
        let mut a = ProcessCounters::default();
        a.syscall_mut(4);
        assert_eq!(a, ProcessCounters::default());
        a.syscall_mut(4).calls = 1;
        assert_ne!(a, ProcessCounters::default());
        let mut b = ProcessCounters::default();
        b.syscall_mut(4).calls = 1;
        b.op_mut(1);
        assert_eq!(a, b);
        // A process with nothing new between two snapshots holds nothing in its difference.
        assert!(a.difference(&a).rows().next().is_none());
    }

    #[test]
    fn ids_cover_both_tables() {
        let mut c = ProcessCounters::default();
        let read_op = SYSCALL_COUNT + io_uring_op_index("READ").unwrap();
        c.slot_mut(read_op).unwrap().calls = 5;
        c.slot_mut(0).unwrap().calls = 1;
        assert!(c.slot_mut(ID_COUNT).is_none());
        assert_eq!(c.op(0).calls, 5);
        let rows: Vec<_> = c.rows().collect();
        assert_eq!(rows.len(), 2, "only the ids used");
        assert_eq!(
            (rows[0].0, rows[0].1.name, rows[0].1.io_uring),
            (0, "read", false)
        );
        assert_eq!(
            (rows[1].0, rows[1].1.name, rows[1].1.io_uring),
            (read_op, "READ", true)
        );
        assert!(c.get(7).is_zero() && c.get(ID_COUNT + 5).is_zero());
        let splice = path(SYSCALL_COUNT + io_uring_op_index("SPLICE").unwrap()).unwrap();
        assert!(splice.source_fd && splice.destination_fd);
        assert!(path(ID_COUNT).is_none());
    }
}
