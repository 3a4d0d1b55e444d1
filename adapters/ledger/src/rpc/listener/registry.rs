//! The open connections and their slots: the connection caps, eviction of the connection that
//! waited longest, the WebSocket caps, and the reply bytes in flight.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Waker;
use std::time::Instant;

use jsonrpsee::core::middleware::Notification;
use tokio::sync::{Notify, Semaphore};

use super::request::{MAX_MISREADS, Misread, misreads};
use super::{ConnectionLimits, MAX_QUEUED_CALLS, lock, take};

/// The open connections and the reply bytes in flight.
pub(super) struct Registry {
    pub(super) limits: ConnectionLimits,
    pub(super) conns: Mutex<HashMap<u64, Arc<Slot>>>,
    pub(super) next: AtomicU64,
    pub(super) base: Instant,
    /// Reply bytes made and not yet written, plus heavy reads' reservations.
    pub(super) unwritten: AtomicUsize,
    /// Fired when reply bytes are written or released.
    pub(super) changed: Notify,
    /// Heavy reads run at most half the machine's cores at once, so that submissions always
    /// find a core.
    pub(super) heavy: Arc<Semaphore>,
}

/// One connection's state, shared by its stream, its service and the registry.
pub(super) struct Slot {
    pub(super) id: u64,
    pub(super) ip: IpAddr,
    pub(super) registry: Arc<Registry>,
    /// An upgraded WebSocket session.
    pub(super) ws: AtomicBool,
    /// The first request asked for an upgrade: the stream parses what follows as frames.
    pub(super) ws_ready: AtomicBool,
    /// Registry milliseconds at accept.
    pub(super) accepted: u64,
    /// Calls admitted by the gate and running (such a connection is not evicted; one whose
    /// call waits in the gate may be).
    pub(super) executing: AtomicUsize,
    /// Registry milliseconds since the connection last made progress (accepted, answered a
    /// request; for a WebSocket, any byte read or written): eviction takes the smallest.
    pub(super) since: AtomicU64,
    /// The client left, or the connection is closing: queued calls are dropped.
    pub(super) gone: AtomicBool,
    /// Evicted or stopped: reads and writes fail.
    pub(super) killed: AtomicBool,
    /// WebSocket messages read and not yet handled.
    pub(super) queued: AtomicUsize,
    /// Calls in the gate, waiting or running.
    pub(super) at_gate: AtomicUsize,
    /// Calls of WebSocket messages read with a bad id, until the gate answers them.
    pub(super) misread: Mutex<std::collections::VecDeque<Misread>>,
    /// Reply bytes of this connection made and not yet written, and whether the connection
    /// has been given back (later replies are then not counted: they are never written).
    pub(super) bytes: Mutex<(usize, bool)>,
    /// One call of a connection runs at a time.
    pub(super) turn: Arc<Semaphore>,
    /// Fired on writes, departure and kill.
    pub(super) changed: Notify,
    pub(super) reader: Mutex<Option<Waker>>,
    pub(super) writer: Mutex<Option<Waker>>,
}

impl Registry {
    pub(super) fn new(limits: ConnectionLimits) -> Arc<Registry> {
        Arc::new(Registry {
            limits,
            conns: Mutex::new(HashMap::new()),
            next: AtomicU64::new(0),
            base: Instant::now(),
            unwritten: AtomicUsize::new(0),
            changed: Notify::new(),
            heavy: Arc::new(Semaphore::new(
                std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1)),
            )),
        })
    }

    pub(super) fn now(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Makes room for, and registers, a connection from `ip`: past a cap, the evictable
    /// connection that has waited longest (among `ip`'s for the per-IP cap) is closed.
    /// `None` when every candidate is answering a request or within its grace.
    pub(super) fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Held> {
        let mut map = lock(&self.conns);
        let now = self.now();
        let grace = u64::try_from(self.limits.eviction_grace.as_millis()).unwrap_or(u64::MAX);
        let oldest = |map: &HashMap<u64, Arc<Slot>>, same_ip: bool| {
            map.values()
                .filter(|s| {
                    (!same_ip || s.ip == ip)
                        && s.executing.load(Ordering::SeqCst) == 0
                        && now.saturating_sub(s.accepted) >= grace
                })
                .min_by_key(|s| s.since.load(Ordering::SeqCst))
                .map(|s| s.id)
        };
        if map.values().filter(|s| s.ip == ip).count() >= self.limits.max_per_ip {
            let victim = oldest(&map, true)?;
            if let Some(s) = map.remove(&victim) {
                s.kill();
            }
        }
        if map.len() >= self.limits.max_connections {
            let victim = oldest(&map, false)?;
            if let Some(s) = map.remove(&victim) {
                s.kill();
            }
        }
        let id = self.next.fetch_add(1, Ordering::SeqCst);
        let slot = Arc::new(Slot {
            id,
            ip,
            registry: self.clone(),
            ws: AtomicBool::new(false),
            ws_ready: AtomicBool::new(false),
            executing: AtomicUsize::new(0),
            accepted: now,
            since: AtomicU64::new(now),
            gone: AtomicBool::new(false),
            killed: AtomicBool::new(false),
            queued: AtomicUsize::new(0),
            at_gate: AtomicUsize::new(0),
            misread: Mutex::default(),
            bytes: Mutex::new((0, false)),
            turn: Arc::new(Semaphore::new(1)),
            changed: Notify::new(),
            reader: Mutex::new(None),
            writer: Mutex::new(None),
        });
        map.insert(id, slot.clone());
        Some(Held(slot))
    }

    /// Marks `slot` a WebSocket session if the session caps allow.
    pub(super) fn try_ws(&self, slot: &Slot) -> bool {
        let map = lock(&self.conns);
        let ws: Vec<&Arc<Slot>> = map
            .values()
            .filter(|s| s.ws.load(Ordering::SeqCst))
            .collect();
        if ws.len() >= self.limits.max_ws_sessions
            || ws.iter().filter(|s| s.ip == slot.ip).count() >= self.limits.max_ws_per_ip
        {
            return false;
        }
        slot.ws.store(true, Ordering::SeqCst);
        slot.touch();
        true
    }

    /// Closes every connection (the end of a stop).
    pub(super) fn kill_all(&self) {
        let all: Vec<Arc<Slot>> = lock(&self.conns).drain().map(|(_, s)| s).collect();
        for s in all {
            s.kill();
        }
    }
}

impl Slot {
    pub(super) fn touch(&self) {
        self.since.store(self.registry.now(), Ordering::SeqCst);
    }

    pub(super) fn wake(waker: &Mutex<Option<Waker>>) {
        if let Some(w) = lock(waker).take() {
            w.wake();
        }
    }

    /// The client left (or the connection is closing): calls still queued are dropped.
    pub(super) fn depart(&self) {
        self.gone.store(true, Ordering::SeqCst);
        self.changed.notify_waiters();
        Slot::wake(&self.reader);
    }

    /// Closes the connection: its reads and writes fail from now on.
    pub(super) fn kill(&self) {
        self.killed.store(true, Ordering::SeqCst);
        self.depart();
        Slot::wake(&self.writer);
    }

    /// `n` bytes went to the socket.
    pub(super) fn wrote(&self, n: usize) {
        let done = {
            let mut b = lock(&self.bytes);
            let done = b.0.min(n);
            b.0 -= done;
            take(&self.registry.unwritten, done);
            done
        };
        if done > 0 {
            self.registry.changed.notify_waiters();
        }
        if self.ws.load(Ordering::SeqCst) {
            self.touch();
            // jsonrpsee answers a message that is not JSON-RPC itself, past the gate: while
            // the server writes and nothing is in the gate, no counted message is waiting.
            if self.at_gate.load(Ordering::SeqCst) == 0 && n > 0 {
                self.queued.store(0, Ordering::SeqCst);
                Slot::wake(&self.reader);
            }
        }
        self.changed.notify_waiters();
    }

    /// A message counted by the stream enters the gate; it counts as handled when the
    /// returned guard drops.
    pub(super) fn enter(self: &Arc<Self>) -> AtGate {
        self.at_gate.fetch_add(1, Ordering::SeqCst);
        AtGate(self.clone())
    }

    /// A WebSocket message was read whole: its calls with a bad id are noted for the gate.
    pub(super) fn message(&self, body: &[u8]) {
        let found = misreads(body);
        if found.is_empty() {
            return;
        }
        let mut m = lock(&self.misread);
        m.extend(found);
        while m.len() > MAX_MISREADS {
            m.pop_front();
        }
    }

    /// Whether `n` is the notification jsonrpsee made of a call with a bad id; forgets it.
    pub(super) fn misread(&self, n: &Notification<'_>) -> bool {
        let params = n.params.as_ref().map(|p| p.get());
        let mut m = lock(&self.misread);
        let found = m
            .iter()
            .position(|(method, p)| method == n.method_name() && p.as_deref() == params);
        found.and_then(|i| m.remove(i)).is_some()
    }

    pub(super) fn read_paused(&self) -> bool {
        self.queued.load(Ordering::SeqCst) >= MAX_QUEUED_CALLS
    }
}

/// A message's stay in the [`Gate`] (waiting or running): on leaving, it no longer counts
/// against [`MAX_QUEUED_CALLS`].
pub(super) struct AtGate(pub(super) Arc<Slot>);

impl Drop for AtGate {
    fn drop(&mut self) {
        self.0.at_gate.fetch_sub(1, Ordering::SeqCst);
        take(&self.0.queued, 1);
        Slot::wake(&self.0.reader);
    }
}

/// A connection's registration, given back on drop (when its HTTP connection, or its
/// WebSocket session, ends).
pub(super) struct Held(pub(super) Arc<Slot>);

impl Drop for Held {
    fn drop(&mut self) {
        let slot = &self.0;
        slot.depart();
        let reg = &slot.registry;
        lock(&reg.conns).remove(&slot.id);
        {
            let mut b = lock(&slot.bytes);
            take(&reg.unwritten, b.0);
            *b = (0, true);
        }
        reg.changed.notify_waiters();
    }
}
