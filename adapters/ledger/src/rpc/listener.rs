//! The accept loop: jsonrpsee's tower service served over hyper with the ledger's connection rules
//! ([`ConnectionLimits`]), so that no client, a local one included, can lock the others out, and a
//! web page cannot drive the RPC.
//!
//! - At most [`ConnectionLimits::max_connections`] connections, and
//!   [`ConnectionLimits::max_per_ip`] from one address. Every client of a loopback server shares
//!   one address, so a cap alone would let one local process take every slot: when a new connection
//!   finds a cap reached, the connection that has waited longest without being served (an idle or
//!   slow HTTP connection, a WebSocket that neither sent nor took a byte for longest) is closed to
//!   make room. Not evicted: a connection whose call is running (admitted by the gate below, not
//!   waiting in it), and one younger than [`ConnectionLimits::eviction_grace`] (time to send its
//!   first request). When nothing can be evicted, the new connection waits, and connections behind
//!   it wait in the listen queue, in arrival order, until something can (at most
//!   [`ConnectionLimits::request_timeout`], then it is closed): a process that reopens every socket
//!   the server closes only queues behind the clients that came before it.
//! - At most [`ConnectionLimits::max_ws_sessions`] WebSocket sessions,
//!   [`ConnectionLimits::max_ws_per_ip`] from one address: the rest is a reserve for plain HTTP
//!   (`deepnode tx`, `ledger_submit`). An upgrade past either cap gets HTTP 429. An upgraded
//!   session keeps its connection slots until it ends.
//! - Request headers must arrive within [`ConnectionLimits::header_timeout`] (hyper's
//!   `header_read_timeout`), and an HTTP connection with no request in flight for as long is
//!   closed. A request body must make progress every [`ConnectionLimits::body_timeout`] and, with
//!   its answer, take at most [`ConnectionLimits::request_timeout`] (else 408); a body over
//!   [`MAX_REQUEST_BYTES`], declared or chunked, gets 413.
//! - A WebSocket that answers no ping for [`ConnectionLimits::ws_inactive`] is closed (jsonrpsee's
//!   `PingConfig`).
//! - Replies: a connection runs one call (or batch) at a time, and the next only once fewer than
//!   [`ConnectionLimits::reply_bytes_per_connection`] of its earlier replies are unwritten. A heavy
//!   read (metagraph, epoch input, block, weights, bonds) waits for one of half the cores, then
//!   reserves [`MAX_RESPONSE_BYTES`] of [`ConnectionLimits::reply_bytes_total`] (the reply bytes in
//!   flight across all connections), and gets [`SERVER_BUSY`] if none frees within [`BUSY_WAIT`].
//!   Nothing more is read from a connection while a write to it is blocked or [`MAX_QUEUED_CALLS`]
//!   of its WebSocket messages wait ([`Backpressured`]), and calls still queued when their client
//!   leaves are answered with an error, unrun.
//! - A connection may become a WebSocket only with its first request (else HTTP 400). Its client
//!   frames must be masked (else the connection is closed), and a message over
//!   [`MAX_REQUEST_BYTES`], in one frame or in fragments, gets `-32007`.
//! - On stop, connections get [`STOP_GRACE`] to finish, then are closed.
//! - `Host` must be one header naming a loopback host (`localhost`, `127.*`, `[::1]`), else HTTP
//!   400 for several and 403 for another host; an `Origin`, if sent, must be a loopback origin,
//!   else 403: a browser page elsewhere cannot call it.
//! - A request (HTTP, or a WebSocket message) whose id is not a string, `null` or an integer that
//!   fits 64 bits gets the JSON-RPC error `-32600` (invalid request) and does not run; a batch
//!   holding one is refused whole.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use hyper::body::Body as _;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use jsonrpsee::core::middleware::{Batch, BatchEntry, Notification, RpcServiceT};
use jsonrpsee::server::{HttpBody, HttpResponse, MethodResponse, Methods, StopHandle};
use jsonrpsee::types::{ErrorObjectOwned, Id, Request};
use serde_json::value::RawValue;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tower::Service;

use super::wire::{MAX_BATCH_LEN, MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES, SERVER_BUSY};

/// WebSocket messages of one connection read and not yet run (waiting or running) past which
/// the server reads nothing more from it.
pub const MAX_QUEUED_CALLS: usize = 4;

/// How long a heavy read waits for reply bytes to free before it gets [`SERVER_BUSY`].
pub const BUSY_WAIT: Duration = Duration::from_secs(5);

/// How long a stopping server lets open connections finish before closing them.
pub const STOP_GRACE: Duration = Duration::from_secs(1);

/// The methods whose replies may be large; they reserve reply bytes before they run.
const HEAVY: [&str; 5] = [
    "ledger_metagraph",
    "ledger_epochInput",
    "ledger_block",
    "ledger_weights",
    "ledger_bonds",
];

/// The connection rules of the RPC server (see the module docs). `Default` is what
/// `deepnode ledger run` uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Open connections in all.
    pub max_connections: usize,
    /// Open connections from one IP address.
    pub max_per_ip: usize,
    /// Open WebSocket sessions; `max_connections - max_ws_sessions` is kept for HTTP.
    pub max_ws_sessions: usize,
    /// Open WebSocket sessions from one IP address; `max_per_ip - max_ws_per_ip` is kept for
    /// HTTP.
    pub max_ws_per_ip: usize,
    /// A new connection is not evicted for this long.
    pub eviction_grace: Duration,
    /// Time to receive a request's headers (and between requests on a kept-alive connection).
    pub header_timeout: Duration,
    /// Longest wait for the next piece of a request body.
    pub body_timeout: Duration,
    /// Time to read an HTTP request's body and answer it.
    pub request_timeout: Duration,
    /// A WebSocket that answers no ping for this long is closed.
    pub ws_inactive: Duration,
    /// Unwritten reply bytes past which a connection's next call waits.
    pub reply_bytes_per_connection: usize,
    /// Reply bytes in flight (unwritten, or reserved by heavy reads) across all connections
    /// past which a heavy read waits.
    pub reply_bytes_total: usize,
}

impl Default for ConnectionLimits {
    /// 512 connections, 64 per IP, 384 WebSocket sessions (48 per IP), new connections kept
    /// 500 ms before they may be evicted, headers in 5 s, a body piece every 2 s, a request in
    /// 10 s, WebSockets closed after 60 s without a pong, 4 MiB of unwritten replies per
    /// connection and 64 MiB in all.
    fn default() -> ConnectionLimits {
        ConnectionLimits {
            max_connections: 512,
            max_per_ip: 64,
            max_ws_sessions: 384,
            max_ws_per_ip: 48,
            eviction_grace: Duration::from_millis(500),
            header_timeout: Duration::from_secs(5),
            body_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(10),
            ws_inactive: Duration::from_secs(60),
            reply_bytes_per_connection: 4 << 20,
            reply_bytes_total: 64 << 20,
        }
    }
}

/// The jsonrpsee service factory the loop builds one service per request from.
pub(super) type Builder = jsonrpsee::server::TowerServiceBuilder<
    tower::layer::util::Stack<GateLayer, tower::layer::util::Identity>,
    tower::layer::util::Identity,
>;

/// Locks `m`; every update under these locks is one statement, so a poisoned lock still
/// guards consistent data.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Subtracts up to `n` from `a` (never below zero); returns what was subtracted.
fn take(a: &AtomicUsize, n: usize) -> usize {
    let prev = a
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| {
            Some(v.saturating_sub(n))
        })
        .unwrap_or_else(|v| v);
    prev.min(n)
}

/// Waits until `ready()` holds, re-checking each time `notify` fires.
async fn wait_for(notify: &Notify, mut ready: impl FnMut() -> bool) {
    loop {
        let n = notify.notified();
        tokio::pin!(n);
        n.as_mut().enable();
        if ready() {
            return;
        }
        n.await;
    }
}

/// The open connections and the reply bytes in flight.
pub(super) struct Registry {
    limits: ConnectionLimits,
    conns: Mutex<HashMap<u64, Arc<Slot>>>,
    next: AtomicU64,
    base: Instant,
    /// Reply bytes made and not yet written, plus heavy reads' reservations.
    unwritten: AtomicUsize,
    /// Fired when reply bytes are written or released.
    changed: Notify,
    /// Heavy reads run at most half the machine's cores at once, so that submissions always
    /// find a core.
    heavy: Arc<Semaphore>,
}

/// One connection's state, shared by its stream, its service and the registry.
pub(super) struct Slot {
    id: u64,
    ip: IpAddr,
    registry: Arc<Registry>,
    /// An upgraded WebSocket session.
    ws: AtomicBool,
    /// The first request asked for an upgrade: the stream parses what follows as frames.
    ws_ready: AtomicBool,
    /// Registry milliseconds at accept.
    accepted: u64,
    /// Calls admitted by the gate and running (such a connection is not evicted; one whose
    /// call waits in the gate may be).
    executing: AtomicUsize,
    /// Registry milliseconds since the connection last made progress (accepted, answered a
    /// request; for a WebSocket, any byte read or written): eviction takes the smallest.
    since: AtomicU64,
    /// The client left, or the connection is closing: queued calls are dropped.
    gone: AtomicBool,
    /// Evicted or stopped: reads and writes fail.
    killed: AtomicBool,
    /// WebSocket messages read and not yet handled.
    queued: AtomicUsize,
    /// Calls in the gate, waiting or running.
    at_gate: AtomicUsize,
    /// Calls of WebSocket messages read with a bad id, until the gate answers them.
    misread: Mutex<std::collections::VecDeque<Misread>>,
    /// Reply bytes of this connection made and not yet written, and whether the connection
    /// has been given back (later replies are then not counted: they are never written).
    bytes: Mutex<(usize, bool)>,
    /// One call of a connection runs at a time.
    turn: Arc<Semaphore>,
    /// Fired on writes, departure and kill.
    changed: Notify,
    reader: Mutex<Option<Waker>>,
    writer: Mutex<Option<Waker>>,
}

impl Registry {
    fn new(limits: ConnectionLimits) -> Arc<Registry> {
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

    fn now(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Makes room for, and registers, a connection from `ip`: past a cap, the evictable
    /// connection that has waited longest (among `ip`'s for the per-IP cap) is closed.
    /// `None` when every candidate is answering a request or within its grace.
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Held> {
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
    fn try_ws(&self, slot: &Slot) -> bool {
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
    fn kill_all(&self) {
        let all: Vec<Arc<Slot>> = lock(&self.conns).drain().map(|(_, s)| s).collect();
        for s in all {
            s.kill();
        }
    }
}

impl Slot {
    fn touch(&self) {
        self.since.store(self.registry.now(), Ordering::SeqCst);
    }

    fn wake(waker: &Mutex<Option<Waker>>) {
        if let Some(w) = lock(waker).take() {
            w.wake();
        }
    }

    /// The client left (or the connection is closing): calls still queued are dropped.
    fn depart(&self) {
        self.gone.store(true, Ordering::SeqCst);
        self.changed.notify_waiters();
        Slot::wake(&self.reader);
    }

    /// Closes the connection: its reads and writes fail from now on.
    fn kill(&self) {
        self.killed.store(true, Ordering::SeqCst);
        self.depart();
        Slot::wake(&self.writer);
    }

    /// `n` bytes went to the socket.
    fn wrote(&self, n: usize) {
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
    fn enter(self: &Arc<Self>) -> AtGate {
        self.at_gate.fetch_add(1, Ordering::SeqCst);
        AtGate(self.clone())
    }

    /// A WebSocket message was read whole: its calls with a bad id are noted for the gate.
    fn message(&self, body: &[u8]) {
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
    fn misread(&self, n: &Notification<'_>) -> bool {
        let params = n.params.as_ref().map(|p| p.get());
        let mut m = lock(&self.misread);
        let found = m
            .iter()
            .position(|(method, p)| method == n.method_name() && p.as_deref() == params);
        found.and_then(|i| m.remove(i)).is_some()
    }

    fn read_paused(&self) -> bool {
        self.queued.load(Ordering::SeqCst) >= MAX_QUEUED_CALLS
    }
}

/// A message's stay in the [`Gate`] (waiting or running): on leaving, it no longer counts
/// against [`MAX_QUEUED_CALLS`].
struct AtGate(Arc<Slot>);

impl Drop for AtGate {
    fn drop(&mut self) {
        self.0.at_gate.fetch_sub(1, Ordering::SeqCst);
        take(&self.0.queued, 1);
        Slot::wake(&self.0.reader);
    }
}

/// A connection's registration, given back on drop (when its HTTP connection, or its
/// WebSocket session, ends).
pub(super) struct Held(Arc<Slot>);

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

/// Puts a connection's [`Slot`] in its requests' extensions, for the [`Gate`].
#[derive(Clone)]
struct ConnRef(Arc<Slot>);

/// Makes [`Gate`]s.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct GateLayer;

impl<S> tower::Layer<S> for GateLayer {
    type Service = Gate<S>;

    fn layer(&self, inner: S) -> Gate<S> {
        Gate { inner }
    }
}

/// The RPC middleware that runs a connection's calls one at a time, within the reply-byte
/// budgets, and drops the calls of a client that left (module docs).
#[derive(Clone)]
pub(super) struct Gate<S> {
    inner: S,
}

/// A call's admission: its turn, its place in the queue and its reservation, given back on
/// drop.
struct Ticket {
    slot: Arc<Slot>,
    _turn: Option<OwnedSemaphorePermit>,
    _heavy: Option<OwnedSemaphorePermit>,
    reserved: usize,
}

impl Ticket {
    /// The reply of `len` bytes replaces the reservation.
    fn settle(&mut self, len: usize) {
        let reg = &self.slot.registry;
        {
            let mut b = lock(&self.slot.bytes);
            if !b.1 {
                b.0 += len;
                reg.unwritten.fetch_add(len, Ordering::SeqCst);
            }
        }
        take(&reg.unwritten, std::mem::take(&mut self.reserved));
        reg.changed.notify_waiters();
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let reg = &self.slot.registry;
        if self.reserved > 0 {
            take(&reg.unwritten, self.reserved);
            reg.changed.notify_waiters();
        }
    }
}

/// Why a call was not run.
enum Refusal {
    /// Its client left.
    Departed,
    /// No reply bytes freed within [`BUSY_WAIT`].
    Busy,
}

impl Refusal {
    fn error(&self) -> ErrorObjectOwned {
        match self {
            Refusal::Departed => ErrorObjectOwned::owned(-32603, "the client left", None::<()>),
            Refusal::Busy => ErrorObjectOwned::owned(
                SERVER_BUSY,
                "server busy: too many reply bytes in flight, try again",
                None::<()>,
            ),
        }
    }
}

/// Waits for `slot`'s turn and room for a reply (module docs).
async fn admit(slot: Arc<Slot>, heavy: bool) -> Result<Ticket, Refusal> {
    let mut ticket = Ticket {
        slot: slot.clone(),
        _turn: None,
        _heavy: None,
        reserved: 0,
    };
    let gone = || slot.gone.load(Ordering::SeqCst);
    tokio::select! {
        turn = slot.turn.clone().acquire_owned() => ticket._turn = turn.ok(),
        () = wait_for(&slot.changed, gone) => return Err(Refusal::Departed),
    }
    let limits = &slot.registry.limits;
    wait_for(&slot.changed, || {
        gone() || lock(&slot.bytes).0 < limits.reply_bytes_per_connection
    })
    .await;
    if gone() {
        return Err(Refusal::Departed);
    }
    if heavy {
        let reg = &slot.registry;
        // In line for a core first, so that reply bytes are reserved only by reads about to
        // run: the budget runs out only when replies go unread.
        tokio::select! {
            permit = reg.heavy.clone().acquire_owned() => ticket._heavy = permit.ok(),
            () = wait_for(&slot.changed, gone) => return Err(Refusal::Departed),
        }
        let want = MAX_RESPONSE_BYTES as usize;
        let reserve = || {
            reg.unwritten
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |u| {
                    (u + want <= limits.reply_bytes_total.max(want)).then_some(u + want)
                })
                .is_ok()
        };
        let mut got = false;
        let waited = tokio::time::timeout(
            BUSY_WAIT,
            wait_for(&reg.changed, || {
                gone() || {
                    got = reserve();
                    got
                }
            }),
        )
        .await;
        if got {
            ticket.reserved = want;
        }
        if gone() {
            return Err(Refusal::Departed);
        }
        if waited.is_err() || !got {
            return Err(Refusal::Busy);
        }
    }
    Ok(ticket)
}

impl<S> Gate<S>
where
    S: RpcServiceT<
            MethodResponse = MethodResponse,
            BatchResponse = MethodResponse,
            NotificationResponse = MethodResponse,
        > + Clone
        + Send
        + Sync
        + 'static,
{
    /// Runs `run` once admitted; a refusal is answered with its error under `id`.
    async fn gated<F>(
        slot: Option<Arc<Slot>>,
        heavy: bool,
        id: Id<'static>,
        run: F,
    ) -> MethodResponse
    where
        F: std::future::Future<Output = MethodResponse>,
    {
        let Some(slot) = slot else {
            return run.await;
        };
        let _at_gate = slot.enter();
        match admit(slot.clone(), heavy).await {
            Ok(mut ticket) => {
                let running = Executing::new(&slot);
                let rp = run.await;
                drop(running);
                ticket.settle(rp.as_json().get().len());
                rp
            }
            Err(r) => MethodResponse::error(id, r.error()),
        }
    }
}

impl<S> RpcServiceT for Gate<S>
where
    S: RpcServiceT<
            MethodResponse = MethodResponse,
            BatchResponse = MethodResponse,
            NotificationResponse = MethodResponse,
        > + Clone
        + Send
        + Sync
        + 'static,
{
    type MethodResponse = MethodResponse;
    type BatchResponse = MethodResponse;
    type NotificationResponse = MethodResponse;

    fn call<'a>(
        &self,
        req: Request<'a>,
    ) -> impl std::future::Future<Output = MethodResponse> + Send + 'a {
        let slot = req.extensions().get::<ConnRef>().map(|c| c.0.clone());
        let heavy = HEAVY.contains(&req.method_name());
        let id = req.id().into_owned();
        let inner = self.inner.clone();
        Self::gated(slot, heavy, id, async move { inner.call(req).await })
    }

    fn batch<'a>(
        &self,
        batch: Batch<'a>,
    ) -> impl std::future::Future<Output = MethodResponse> + Send + 'a {
        let entry = |e: &Result<BatchEntry<'a>, _>| e.as_ref().ok().cloned();
        let entries: Vec<BatchEntry<'a>> = batch.iter().filter_map(entry).collect();
        let slot = entries
            .iter()
            .find_map(|e| e.extensions().get::<ConnRef>().map(|c| c.0.clone()));
        let heavy = entries.iter().any(|e| HEAVY.contains(&e.method_name()));
        // Every call of the batch with a bad id is forgotten, and the batch refused whole, as
        // over HTTP.
        let misread = slot.as_ref().is_some_and(|s| {
            entries
                .iter()
                .filter(|e| matches!(e, BatchEntry::Notification(n) if s.misread(n)))
                .count()
                > 0
        });
        let inner = self.inner.clone();
        async move {
            if misread {
                let _at_gate = slot.as_ref().map(Slot::enter);
                return invalid_request();
            }
            Self::gated(slot, heavy, Id::Null, inner.batch(batch)).await
        }
    }

    fn notification<'a>(
        &self,
        n: Notification<'a>,
    ) -> impl std::future::Future<Output = MethodResponse> + Send + 'a {
        let slot = n.extensions().get::<ConnRef>().map(|c| c.0.clone());
        let misread = slot.as_ref().is_some_and(|s| s.misread(&n));
        let inner = self.inner.clone();
        async move {
            let _at_gate = slot.as_ref().map(Slot::enter);
            if misread {
                // A request, not a notification: it gets an error, as over HTTP, and does not
                // run.
                return invalid_request();
            }
            inner.notification(n).await
        }
    }
}

/// The JSON-RPC error `-32600` with a `null` id: a request with an id jsonrpsee cannot take.
fn invalid_request() -> MethodResponse {
    MethodResponse::error(
        Id::Null,
        ErrorObjectOwned::from(jsonrpsee::types::ErrorCode::InvalidRequest),
    )
}

/// Accepts connections on `listener` until `stop` says so, serving each under `limits`;
/// then gives open connections [`STOP_GRACE`] and closes them.
pub(super) async fn accept_loop(
    listener: TcpListener,
    builder: Builder,
    methods: Methods,
    stop: StopHandle,
    limits: ConnectionLimits,
) {
    let registry = Registry::new(limits);
    loop {
        let (sock, remote) = tokio::select! {
            res = listener.accept() => match res {
                Ok(conn) => conn,
                // Out of descriptors, or a connection reset before accept: keep serving.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            () = stop.clone().shutdown() => break,
        };
        // Wait in line (the listen queue keeps the others in arrival order) until there is
        // room; dropping the socket after that closes it.
        let waited = Instant::now();
        let held = loop {
            if let Some(held) = registry.admit(remote.ip()) {
                break Some(held);
            }
            if waited.elapsed() >= registry.limits.request_timeout {
                break None;
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(20)) => {}
                () = stop.clone().shutdown() => break None,
            }
        };
        let Some(held) = held else {
            continue;
        };
        let conn = Conn {
            builder: builder.clone(),
            methods: methods.clone(),
            stop: stop.clone(),
            slot: held.0.clone(),
            held: Arc::new(held),
        };
        tokio::spawn(conn.serve(sock));
    }
    drop((listener, stop, builder, methods));
    tokio::time::sleep(STOP_GRACE).await;
    registry.kill_all();
}

/// What serving one connection needs.
#[derive(Clone)]
struct Conn {
    builder: Builder,
    methods: Methods,
    stop: StopHandle,
    slot: Arc<Slot>,
    /// The registration; an upgraded session keeps a clone until it ends.
    held: Arc<Held>,
}

/// When a connection last finished a request, and how many it has in flight.
struct Activity {
    in_flight: AtomicUsize,
    last: Mutex<Instant>,
}

impl Activity {
    fn touch(&self) {
        *lock(&self.last) = Instant::now();
    }

    /// Resolves once no request has been in flight for `limit`.
    async fn idle_for(&self, limit: Duration) {
        loop {
            let since = lock(&self.last).elapsed();
            if self.in_flight.load(Ordering::SeqCst) == 0 && since >= limit {
                return;
            }
            tokio::time::sleep(limit.saturating_sub(since).max(limit / 4)).await;
        }
    }
}

/// A plain-text HTTP response with `status`, closing the connection.
fn refuse(status: hyper::StatusCode, text: &'static str) -> HttpResponse {
    let mut r = HttpResponse::new(HttpBody::from(text));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONNECTION,
        hyper::header::HeaderValue::from_static("close"),
    );
    r
}

/// Whether `host` (a `Host` header's host, or an origin's) is a loopback name.
fn loopback_host(host: &str) -> bool {
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.split_once(']').map(|(h, _)| h))
        .unwrap_or_else(|| host.rsplit_once(':').map_or(host, |(h, _)| h));
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The `Host` / `Origin` rule (module docs): `Err` with the status to refuse with.
fn allowed<B>(req: &hyper::Request<B>) -> Result<(), hyper::StatusCode> {
    if req.headers().get_all(hyper::header::HOST).iter().count() > 1 {
        return Err(hyper::StatusCode::BAD_REQUEST);
    }
    let header = |name| {
        req.headers()
            .get(name)
            .map(|v| v.to_str().unwrap_or("\u{0}"))
    };
    let host_ok = header(hyper::header::HOST)
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .is_some_and(loopback_host);
    let origin_ok = header(hyper::header::ORIGIN).is_none_or(|o| {
        o.strip_prefix("http://")
            .or_else(|| o.strip_prefix("https://"))
            .is_some_and(loopback_host)
    });
    if host_ok && origin_ok {
        Ok(())
    } else {
        Err(hyper::StatusCode::FORBIDDEN)
    }
}

/// The calls of a request body: a batch's, or the one call; none if it is not JSON.
fn calls_of(body: &[u8]) -> Vec<&RawValue> {
    serde_json::from_slice::<Vec<&RawValue>>(body)
        .or_else(|_| serde_json::from_slice::<&RawValue>(body).map(|c| vec![c]))
        .unwrap_or_default()
}

/// Whether `call` has an id JSON-RPC allows but jsonrpsee would take it for a notification
/// by (an object, an array, a fraction, a number past `u64`): such a request must get an
/// error, not silence.
fn has_bad_id(call: &RawValue) -> bool {
    #[derive(serde::Deserialize)]
    struct Probe<'a> {
        #[serde(borrow)]
        id: Option<&'a RawValue>,
    }
    serde_json::from_str::<Probe<'_>>(call.get()).is_ok_and(|p| {
        p.id.is_some_and(|id| {
            let id = id.get();
            !(id.starts_with('"') || id.parse::<u64>().is_ok())
        })
    })
}

/// Whether a request body holds a call with a bad id ([`has_bad_id`]).
fn bad_id(body: &[u8]) -> bool {
    calls_of(body).into_iter().any(has_bad_id)
}

/// A call with a bad id that jsonrpsee hands to the [`Gate`] as a notification: its method
/// and its params as sent, which that notification carries.
type Misread = (String, Option<String>);

/// The calls of a WebSocket message with a bad id that jsonrpsee will take for notifications.
fn misreads(body: &[u8]) -> Vec<Misread> {
    calls_of(body)
        .into_iter()
        .filter(|c| has_bad_id(c))
        .filter_map(|c| {
            let n: jsonrpsee::types::Notification<'_, Option<&RawValue>> =
                serde_json::from_str(c.get()).ok()?;
            Some((n.method.into_owned(), n.params.map(|p| p.get().to_owned())))
        })
        .collect()
}

/// The most [`Misread`]s a connection keeps until jsonrpsee hands them to the gate: a
/// session's queued messages' worth of full batches.
const MAX_MISREADS: usize = MAX_QUEUED_CALLS * MAX_BATCH_LEN as usize;

/// A request body read whole, or the response refusing it.
async fn read_body(
    headers: &hyper::HeaderMap,
    mut body: hyper::body::Incoming,
    piece: Duration,
) -> Result<Vec<u8>, HttpResponse> {
    let max = MAX_REQUEST_BYTES as usize;
    let too_large = || {
        refuse(
            hyper::StatusCode::PAYLOAD_TOO_LARGE,
            "request body too large",
        )
    };
    let declared = headers
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    let mut out = Vec::with_capacity(declared.map_or(0, |n| n as usize));
    loop {
        let frame = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx));
        match tokio::time::timeout(piece, frame).await {
            Err(_) => {
                return Err(refuse(
                    hyper::StatusCode::REQUEST_TIMEOUT,
                    "request timeout",
                ));
            }
            Ok(None) => return Ok(out),
            Ok(Some(Err(_))) => return Err(refuse(hyper::StatusCode::BAD_REQUEST, "bad body")),
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    if out.len() + data.len() > max {
                        return Err(too_large());
                    }
                    out.extend_from_slice(&data);
                }
            }
        }
    }
}

/// Counts a call as running while it lives.
struct Executing(Arc<Slot>);

impl Executing {
    fn new(slot: &Arc<Slot>) -> Executing {
        slot.executing.fetch_add(1, Ordering::SeqCst);
        Executing(slot.clone())
    }
}

impl Drop for Executing {
    fn drop(&mut self) {
        self.0.executing.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Conn {
    async fn serve(self, sock: TcpStream) {
        let _ = sock.set_nodelay(true);
        let stop = self.stop.clone();
        let slot = self.slot.clone();
        let header_timeout = self.slot.registry.limits.header_timeout;
        // hyper's header timeout starts with a request's first byte (and the HTTP/1-or-2
        // sniffing before it waits for bytes without one), so a connection that sends
        // nothing is closed here: no request in flight for `header_timeout`.
        let activity = Arc::new(Activity {
            in_flight: AtomicUsize::new(0),
            last: Mutex::new(Instant::now()),
        });
        let seen = activity.clone();
        let io = Backpressured::new(sock, slot.clone());
        let held = self.held.clone();
        let svc = tower::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
            let this = self.clone();
            let seen = seen.clone();
            async move {
                seen.in_flight.fetch_add(1, Ordering::SeqCst);
                let reply = this.clone().handle(req).await;
                this.slot.touch();
                seen.touch();
                seen.in_flight.fetch_sub(1, Ordering::SeqCst);
                Ok::<_, std::convert::Infallible>(reply)
            }
        });
        let mut http = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        http.http1()
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout);
        let conn = http.serve_connection_with_upgrades(
            TokioIo::new(io),
            hyper_util::service::TowerToHyperService::new(svc),
        );
        tokio::pin!(conn);
        tokio::select! {
            _ = conn.as_mut() => {}
            () = activity.idle_for(header_timeout) => {} // dropping the connection closes it
            () = wait_for(&slot.changed, || slot.killed.load(Ordering::SeqCst)) => {}
            () = stop.shutdown() => {
                conn.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(STOP_GRACE, conn).await;
            }
        }
        drop(held);
    }

    async fn handle(self, mut req: hyper::Request<hyper::body::Incoming>) -> HttpResponse {
        match allowed(&req) {
            Ok(()) => {}
            Err(hyper::StatusCode::BAD_REQUEST) => {
                return refuse(hyper::StatusCode::BAD_REQUEST, "one Host header only");
            }
            Err(status) => return refuse(status, "Host and Origin must be loopback"),
        }
        let limits = &self.slot.registry.limits;
        req.extensions_mut().insert(ConnRef(self.slot.clone()));
        let mut svc = self.builder.build(self.methods, self.stop);
        if jsonrpsee::server::ws::is_upgrade_request(&req) {
            if !self.slot.ws_ready.load(Ordering::SeqCst) || self.slot.ws.load(Ordering::SeqCst) {
                return refuse(
                    hyper::StatusCode::BAD_REQUEST,
                    "a WebSocket upgrade must be a connection's first request",
                );
            }
            if !self.slot.registry.try_ws(&self.slot) {
                return refuse(
                    hyper::StatusCode::TOO_MANY_REQUESTS,
                    "Too many WebSocket sessions. Please try again later.",
                );
            }
            // Resolves when the session ends (or the upgrade fails): the connection's slots
            // live as long.
            let closed = svc.on_session_closed();
            let held = self.held.clone();
            tokio::spawn(async move {
                closed.await;
                drop(held);
            });
            return svc.call(req).await.unwrap_or_else(|_| {
                refuse(hyper::StatusCode::INTERNAL_SERVER_ERROR, "internal error")
            });
        }
        let deadline = tokio::time::Instant::now() + limits.request_timeout;
        let timeout = || refuse(hyper::StatusCode::REQUEST_TIMEOUT, "request timeout");
        let (parts, body) = req.into_parts();
        let body = match tokio::time::timeout_at(
            deadline,
            read_body(&parts.headers, body, limits.body_timeout),
        )
        .await
        {
            Ok(Ok(body)) => body,
            Ok(Err(refusal)) => return refusal,
            Err(_) => return timeout(),
        };
        if bad_id(&body) {
            let mut r = HttpResponse::new(HttpBody::from(
                r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Invalid request"}}"#,
            ));
            r.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("application/json; charset=utf-8"),
            );
            return r;
        }
        let req = hyper::Request::from_parts(parts, HttpBody::from(body));
        match tokio::time::timeout_at(deadline, svc.call(req)).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(_)) => refuse(hyper::StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
            Err(_) => timeout(),
        }
    }
}

/// What a connection's stream is carrying.
enum Mode {
    /// The first request's head, up to its blank line (`tail`: its last bytes): it decides
    /// whether the rest is WebSocket frames.
    Head {
        len: usize,
        tail: [u8; 4],
        upgrade: Vec<u8>,
    },
    /// HTTP requests, passed as they come.
    Http,
    /// A WebSocket session's client frames, parsed as they pass.
    Ws(WsIn),
}

/// The longest first request head scanned for an upgrade.
const MAX_HEAD: usize = 16 << 10;

/// Bytes read from a WebSocket's socket at a time, so that one read takes in a few frames,
/// not all the socket holds.
const WS_READ: usize = 4096;

/// The largest buffer of a WebSocket message's text kept for the next message.
const WS_KEEP: usize = 64 << 10;

/// The client-to-server frames of a WebSocket, parsed as they pass: each complete data
/// message is counted in [`Slot::queued`]; an unmasked frame closes the connection; a
/// message past [`MAX_REQUEST_BYTES`] is cut so that jsonrpsee answers it with `-32007`
/// (its reader then skips the message's whole length: the stream supplies the part already
/// passed as zeros, and drops the message's later fragments) and the session goes on.
#[derive(Default)]
struct WsIn {
    head: [u8; 14],
    have: usize,
    /// Payload bytes left in the current frame.
    left: u64,
    /// The current frame is a data frame, the last of its message, dropped.
    data: bool,
    fin: bool,
    drop_frame: bool,
    /// The current frame made its message too long.
    over: bool,
    /// Payload bytes of the current data message so far.
    msg: u64,
    /// Dropping the later fragments of a message that was too long.
    dropping: bool,
    /// The current frame's masking key, and the payload bytes of it passed so far.
    mask: [u8; 4],
    pos: u64,
    /// The current data message's payload so far, unmasked (for [`Slot::message`]).
    text: Vec<u8>,
}

/// What a WebSocket client sent that the server refuses.
#[derive(Debug)]
struct Unmasked;

impl WsIn {
    /// The header's length once its first bytes are in.
    fn head_len(&self) -> Option<usize> {
        if self.have < 2 {
            return None;
        }
        let ext = match self.head[1] & 0x7f {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        Some(2 + ext + if self.head[1] & 0x80 != 0 { 4 } else { 0 })
    }

    /// Passes `chunk` to `out`, frame by frame; returns the bytes of `chunk` consumed and the
    /// zeros to supply before the rest.
    fn feed(
        &mut self,
        chunk: &[u8],
        out: &mut Vec<u8>,
        slot: &Slot,
    ) -> Result<(usize, u64), Unmasked> {
        let mut i = 0;
        while i < chunk.len() {
            if self.left > 0 {
                let n = usize::try_from(self.left)
                    .unwrap_or(usize::MAX)
                    .min(chunk.len() - i);
                if !self.drop_frame {
                    out.extend_from_slice(&chunk[i..i + n]);
                    if self.data && !self.over {
                        let (mask, pos) = (self.mask, self.pos);
                        self.text
                            .extend(chunk[i..i + n].iter().enumerate().map(|(k, b)| {
                                b ^ mask[usize::try_from((pos + k as u64) % 4).unwrap_or(0)]
                            }));
                    }
                }
                self.pos += n as u64;
                i += n;
                self.left -= n as u64;
                if self.left == 0 {
                    let zeros = self.frame_end(slot);
                    if zeros > 0 {
                        return Ok((i, zeros));
                    }
                }
                continue;
            }
            self.head[self.have] = chunk[i];
            self.have += 1;
            i += 1;
            let Some(need) = self.head_len() else {
                continue;
            };
            if self.have < need {
                continue;
            }
            if self.head[1] & 0x80 == 0 {
                return Err(Unmasked);
            }
            let len = match self.head[1] & 0x7f {
                126 => u64::from(u16::from_be_bytes([self.head[2], self.head[3]])),
                127 => u64::from_be_bytes(self.head[2..10].try_into().unwrap_or([0xff; 8])),
                n => u64::from(n),
            };
            self.have = 0;
            self.fin = self.head[0] & 0x80 != 0;
            self.data = self.head[0] & 0x08 == 0;
            self.over = false;
            self.drop_frame = self.dropping && self.data;
            if self.drop_frame {
                if self.fin {
                    self.dropping = false;
                }
            } else {
                out.extend_from_slice(&self.head[..need]);
                if self.data {
                    let before = self.msg;
                    if before == 0 {
                        self.text.clear();
                    }
                    self.msg = self.msg.saturating_add(len);
                    if self.msg > u64::from(MAX_REQUEST_BYTES) {
                        // jsonrpsee's reader skips `self.msg` bytes from here: this frame's
                        // payload, then `before` zeros.
                        self.over = true;
                        self.dropping = !self.fin;
                        self.msg = before;
                    }
                }
            }
            self.mask.copy_from_slice(&self.head[need - 4..need]);
            self.pos = 0;
            self.left = len;
            if len == 0 {
                let zeros = self.frame_end(slot);
                if zeros > 0 {
                    return Ok((i, zeros));
                }
            }
        }
        Ok((i, 0))
    }

    /// The current frame ended; returns the zeros to supply after it.
    fn frame_end(&mut self, slot: &Slot) -> u64 {
        if self.over {
            self.over = false;
            self.text = Vec::new();
            return std::mem::take(&mut self.msg);
        }
        if self.data && self.fin && !self.drop_frame {
            self.msg = 0;
            slot.message(&self.text);
            // A large message's buffer is not kept for the small ones after it.
            if self.text.capacity() > WS_KEEP {
                self.text = Vec::new();
            }
            self.text.clear();
            slot.queued.fetch_add(1, Ordering::SeqCst);
        }
        0
    }
}

/// A connection's stream, tied to its [`Slot`]: it reads nothing while a write to it is
/// blocked (the peer's receive window and the socket's send buffer are full) or while
/// [`MAX_QUEUED_CALLS`] of its WebSocket messages wait or run, so a peer that does not read
/// its replies cannot make the server take in more of its requests; it counts written bytes
/// against the reply budgets; it marks the connection departed at end of input or on an
/// error; once the connection is evicted its reads and writes fail. A connection may become a
/// WebSocket only with its first request: the stream passes that request's head alone, and
/// parses what follows as frames ([`WsIn`]).
pub(super) struct Backpressured {
    inner: TcpStream,
    slot: Arc<Slot>,
    write_blocked: bool,
    mode: Mode,
    /// Bytes read from the socket and not yet passed on.
    stash: Vec<u8>,
    /// Zeros to pass before the stash.
    zeros: u64,
}

impl Backpressured {
    fn new(inner: TcpStream, slot: Arc<Slot>) -> Backpressured {
        Backpressured {
            inner,
            slot,
            write_blocked: false,
            mode: Mode::Head {
                len: 0,
                tail: [0; 4],
                upgrade: Vec::new(),
            },
            stash: Vec::new(),
            zeros: 0,
        }
    }

    fn killed(&self) -> bool {
        self.slot.killed.load(Ordering::SeqCst)
    }

    fn aborted<T>() -> Poll<std::io::Result<T>> {
        Poll::Ready(Err(std::io::ErrorKind::ConnectionAborted.into()))
    }

    /// Records whether the last write was blocked, and what it wrote.
    fn wrote(
        &mut self,
        r: Poll<std::io::Result<usize>>,
        cx: &Context<'_>,
    ) -> Poll<std::io::Result<usize>> {
        self.write_blocked = r.is_pending();
        match &r {
            Poll::Pending => {
                *lock(&self.slot.writer) = Some(cx.waker().clone());
                if self.killed() {
                    return Self::aborted();
                }
            }
            Poll::Ready(Ok(n)) => self.slot.wrote(*n),
            Poll::Ready(Err(_)) => self.slot.depart(),
        }
        if !self.write_blocked {
            Slot::wake(&self.slot.reader);
        }
        r
    }

    /// Reads up to `max` bytes from the socket into the stash.
    fn fill(&mut self, cx: &mut Context<'_>, max: usize) -> Poll<std::io::Result<usize>> {
        let mut tmp = vec![0u8; max];
        let mut rb = ReadBuf::new(&mut tmp);
        match Pin::new(&mut self.inner).poll_read(cx, &mut rb) {
            Poll::Ready(Ok(())) => {
                let n = rb.filled().len();
                self.stash.extend_from_slice(rb.filled());
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Passes stashed bytes to `buf` under the current mode.
    fn pass(&mut self, buf: &mut ReadBuf<'_>) -> std::io::Result<()> {
        let room = buf.remaining();
        match &mut self.mode {
            Mode::Http => {
                let n = room.min(self.stash.len());
                buf.put_slice(&self.stash[..n]);
                self.stash.drain(..n);
            }
            Mode::Head { len, tail, upgrade } => {
                let mut n = 0;
                let mut end = false;
                while n < room.min(self.stash.len()) {
                    let b = self.stash[n];
                    n += 1;
                    *len += 1;
                    tail.rotate_left(1);
                    tail[3] = b;
                    if upgrade.len() < MAX_HEAD {
                        upgrade.push(b);
                    }
                    if *tail == *b"\r\n\r\n" || *len >= MAX_HEAD {
                        end = true;
                        break;
                    }
                }
                buf.put_slice(&self.stash[..n]);
                self.stash.drain(..n);
                if end {
                    let head = String::from_utf8_lossy(upgrade).to_ascii_lowercase();
                    let ws = head.lines().any(|l| {
                        l.split_once(':')
                            .is_some_and(|(k, v)| k.trim() == "upgrade" && v.contains("websocket"))
                    });
                    self.mode = if ws {
                        self.slot.ws_ready.store(true, Ordering::SeqCst);
                        Mode::Ws(WsIn::default())
                    } else {
                        Mode::Http
                    };
                }
            }
            Mode::Ws(ws) => {
                let take = room.min(self.stash.len());
                let mut out = Vec::with_capacity(take);
                let (used, zeros) =
                    ws.feed(&self.stash[..take], &mut out, &self.slot)
                        .map_err(|_| {
                            self.slot.kill();
                            std::io::Error::from(std::io::ErrorKind::InvalidData)
                        })?;
                buf.put_slice(&out);
                self.stash.drain(..used);
                self.zeros = zeros;
            }
        }
        Ok(())
    }
}

impl AsyncRead for Backpressured {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.killed() {
            return Self::aborted();
        }
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        if self.zeros > 0 {
            let n = usize::try_from(self.zeros)
                .unwrap_or(usize::MAX)
                .min(buf.remaining());
            buf.put_slice(&vec![0u8; n]);
            self.zeros -= n as u64;
            return Poll::Ready(Ok(()));
        }
        loop {
            if self.write_blocked || self.slot.read_paused() {
                *lock(&self.slot.reader) = Some(cx.waker().clone());
                // Re-checked once the waker is in place, so a wake in between is not lost.
                if self.killed() {
                    return Self::aborted();
                }
                if self.write_blocked || self.slot.read_paused() {
                    return Poll::Pending;
                }
            }
            if self.stash.is_empty() {
                if let Mode::Http = self.mode {
                    // Straight into `buf`.
                    let before = buf.filled().len();
                    let r = Pin::new(&mut self.inner).poll_read(cx, buf);
                    return self.after_read(r, buf.filled().len() > before, cx);
                }
                let max = if let Mode::Ws(_) = self.mode {
                    WS_READ
                } else {
                    buf.remaining().min(MAX_HEAD)
                };
                match self.fill(cx, max) {
                    Poll::Ready(Ok(0)) => return self.after_read(Poll::Ready(Ok(())), false, cx),
                    Poll::Ready(Ok(_)) => {}
                    Poll::Ready(Err(e)) => return self.after_read(Poll::Ready(Err(e)), false, cx),
                    Poll::Pending => return self.after_read(Poll::Pending, false, cx),
                }
            }
            let before = buf.filled().len();
            self.pass(buf)?;
            if buf.filled().len() > before || self.zeros > 0 {
                let _ = self.after_read(Poll::Ready(Ok(())), true, cx);
                return Poll::Ready(Ok(()));
            }
            // Everything passed was dropped (the fragments of a message too long): read on.
        }
    }
}

impl Backpressured {
    /// Bookkeeping after a socket read: progress, departure, the waker for an eviction.
    fn after_read(
        &mut self,
        r: Poll<std::io::Result<()>>,
        got: bool,
        cx: &Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        match &r {
            Poll::Ready(Ok(())) if got => {
                if self.slot.ws.load(Ordering::SeqCst) {
                    self.slot.touch();
                }
            }
            Poll::Ready(_) => self.slot.depart(),
            Poll::Pending => {
                // So that an eviction wakes a reader waiting on the socket.
                *lock(&self.slot.reader) = Some(cx.waker().clone());
                if self.killed() {
                    return Self::aborted();
                }
            }
        }
        r
    }
}

impl AsyncWrite for Backpressured {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.killed() {
            return Self::aborted();
        }
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.wrote(r, cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        if self.killed() {
            return Self::aborted();
        }
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wrote(r, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        // A TCP stream's flush does nothing (it says nothing of room in the socket), so it
        // neither blocks nor unblocks the reader.
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Binds `listen` for [`accept_loop`].
pub(super) async fn bind(listen: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(listen).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reply budget's accounting: a heavy call reserves `MAX_RESPONSE_BYTES`, its reply
    /// replaces the reservation, written bytes are taken off, and a reply finished after its
    /// connection was given back is not counted (it is never written).
    #[tokio::test]
    async fn reply_bytes_are_counted_until_written_or_given_back() {
        let reg = Registry::new(ConnectionLimits::default());
        let total = || reg.unwritten.load(Ordering::SeqCst);
        let held = reg.admit(IpAddr::from([127, 0, 0, 1])).expect("admitted");
        let slot = held.0.clone();
        let mut ticket = admit(slot.clone(), true).await.ok().expect("a turn");
        assert_eq!(total(), MAX_RESPONSE_BYTES as usize);
        ticket.settle(1_000);
        drop(ticket);
        assert_eq!(total(), 1_000);
        slot.wrote(600);
        assert_eq!(total(), 400);
        let mut late = admit(slot.clone(), true).await.ok().expect("a turn");
        drop(held);
        assert_eq!(total(), MAX_RESPONSE_BYTES as usize);
        late.settle(5_000);
        drop(late);
        assert_eq!(total(), 0);
    }

    #[test]
    fn loopback_hosts() {
        for h in [
            "localhost",
            "127.0.0.1:9944",
            "localhost:1",
            "[::1]:80",
            "127.3.2.1",
        ] {
            assert!(loopback_host(h), "{h}");
        }
        for h in [
            "evil.example",
            "evil.example:9944",
            "10.0.0.1:1",
            "[::2]:1",
            "",
        ] {
            assert!(!loopback_host(h), "{h}");
        }
    }
}
