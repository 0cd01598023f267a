//! The exporter's open connections, and which one gives way when a new one arrives and every
//! place is taken: the one that has waited longest for a request (a TLS handshake, request
//! headers, or the next request on a kept-alive connection). A connection inside a request is
//! never closed for a newcomer; only when every place is inside a request is the newcomer
//! refused. So idle or slow clients, however many, cannot keep a scraper out: its connection
//! is the newest, and it is inside a request as soon as its headers are read.
//!
//! A connection just accepted is "fresh" and cannot give way until its task has been polled
//! once: the accept loop takes many connections per turn, and a flood would otherwise close a
//! scraper's connection before its request, already in the socket, was ever read.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, Mutex, MutexGuard},
    time::Instant,
};

use tokio::sync::oneshot;

/// Where a connection stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Accepted, its task not yet polled.
    Fresh,
    /// Waiting for a request since then: the first to give way is the oldest.
    Waiting(Instant),
    /// Inside a request.
    Busy,
}

struct Entry {
    state: State,
    /// Told to close (its task drops the connection) when it gives way.
    close: Option<oneshot::Sender<()>>,
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    open: HashMap<u64, Entry>,
    /// The waiting ones, oldest first.
    waiting: BTreeSet<(Instant, u64)>,
}

impl Inner {
    fn set(&mut self, id: u64, state: State) {
        let Some(entry) = self.open.get_mut(&id) else {
            return;
        };
        if let State::Waiting(since) = entry.state {
            self.waiting.remove(&(since, id));
        }
        if let State::Waiting(since) = state {
            self.waiting.insert((since, id));
        }
        entry.state = state;
    }
}

/// The open connections, at most `capacity`.
#[derive(Clone)]
pub struct Connections {
    capacity: usize,
    inner: Arc<Mutex<Inner>>,
}

/// What became of a new connection.
pub enum Admission {
    /// It has a place; `made_room` when the longest-waiting connection was closed for it.
    Admitted {
        slot: Slot,
        closed: oneshot::Receiver<()>,
        made_room: bool,
    },
    /// Every place is inside a request: the newcomer is closed.
    Refused,
}

/// A connection's place; frees it when dropped.
pub struct Slot {
    id: u64,
    inner: Arc<Mutex<Inner>>,
}

fn lock(inner: &Mutex<Inner>) -> MutexGuard<'_, Inner> {
    // A panic while holding the lock leaves plain bookkeeping behind, still consistent enough
    // to go on serving.
    inner
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Connections {
    pub fn new(capacity: usize) -> Connections {
        Connections {
            capacity: capacity.max(1),
            inner: Arc::default(),
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        lock(&self.inner).open.len()
    }

    /// A place for a new connection, closing the longest-waiting one if none is free.
    pub fn admit(&self) -> Admission {
        let mut inner = lock(&self.inner);
        let mut made_room = false;
        if inner.open.len() >= self.capacity {
            let Some(&(since, oldest)) = inner.waiting.iter().next() else {
                return Admission::Refused;
            };
            inner.waiting.remove(&(since, oldest));
            if let Some(close) = inner.open.remove(&oldest).and_then(|e| e.close) {
                // Its task may be gone already: then there is nothing to tell.
                let _ = close.send(());
            }
            made_room = true;
        }
        let id = inner.next_id;
        inner.next_id += 1;
        let (close, closed) = oneshot::channel();
        inner.open.insert(
            id,
            Entry {
                state: State::Fresh,
                close: Some(close),
            },
        );
        drop(inner);
        Admission::Admitted {
            slot: Slot {
                id,
                inner: self.inner.clone(),
            },
            closed,
            made_room,
        }
    }
}

impl Slot {
    /// Its task has been polled once: a fresh connection that read no request yet now waits.
    pub fn polled(&self) {
        let mut inner = lock(&self.inner);
        if inner.open.get(&self.id).map(|e| e.state) == Some(State::Fresh) {
            inner.set(self.id, State::Waiting(Instant::now()));
        }
    }

    /// A request arrived: it cannot give way until answered.
    pub fn busy(&self) {
        lock(&self.inner).set(self.id, State::Busy);
    }

    /// The answer is out: it waits for the next request.
    pub fn waiting(&self) {
        lock(&self.inner).set(self.id, State::Waiting(Instant::now()));
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut inner = lock(&self.inner);
        if let Some(entry) = inner.open.remove(&self.id) {
            if let State::Waiting(since) = entry.state {
                inner.waiting.remove(&(since, self.id));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admitted(connections: &Connections) -> (Slot, oneshot::Receiver<()>, bool) {
        match connections.admit() {
            Admission::Admitted {
                slot,
                closed,
                made_room,
            } => (slot, closed, made_room),
            Admission::Refused => panic!("refused"),
        }
    }

    #[test]
    fn below_capacity_everyone_gets_in() {
        let connections = Connections::new(2);
        let (_a, _, made_room_a) = admitted(&connections);
        let (_b, _, made_room_b) = admitted(&connections);
        assert!(!made_room_a && !made_room_b);
        assert_eq!(connections.open(), 2);
    }

    #[test]
    fn the_longest_waiting_gives_way() {
        let connections = Connections::new(2);
        let (a, mut a_closed, _) = admitted(&connections);
        let (b, mut b_closed, _) = admitted(&connections);
        a.polled();
        std::thread::sleep(std::time::Duration::from_millis(2));
        b.polled();
        let (_c, _, made_room) = admitted(&connections);
        assert!(made_room);
        assert!(a_closed.try_recv().is_ok(), "a waited longest");
        assert!(b_closed.try_recv().is_err());
        assert_eq!(connections.open(), 2);
        drop(a);
        assert_eq!(connections.open(), 2, "a's place was already given away");
        drop(b);
        assert_eq!(connections.open(), 1);
    }

    #[test]
    fn fresh_and_busy_connections_never_give_way() {
        let connections = Connections::new(2);
        let (fresh, _, _) = admitted(&connections);
        let (busy, _, _) = admitted(&connections);
        busy.polled();
        busy.busy();
        assert!(matches!(connections.admit(), Admission::Refused));
        // Once answered, the busy one waits again and may give way; the fresh one still not.
        busy.waiting();
        let (_new, _, made_room) = admitted(&connections);
        assert!(made_room);
        // A connection busy at its first poll stays busy.
        fresh.busy();
        fresh.polled();
        assert!(matches!(connections.admit(), Admission::Refused));
    }

    #[test]
    fn a_dropped_slot_frees_its_place() {
        let connections = Connections::new(1);
        let (a, _, _) = admitted(&connections);
        a.polled();
        drop(a);
        assert_eq!(connections.open(), 0);
        let (_b, _, made_room) = admitted(&connections);
        assert!(!made_room);
    }
}
