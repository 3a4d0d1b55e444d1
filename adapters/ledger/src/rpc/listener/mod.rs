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

mod conn;
mod gate;
mod registry;
mod request;
mod stream;
mod ws;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use jsonrpsee::server::{Methods, StopHandle};
use tokio::net::TcpListener;
use tokio::sync::Notify;

use conn::Conn;
pub(in crate::rpc) use gate::GateLayer;
use registry::Registry;

/// WebSocket messages of one connection read and not yet run (waiting or running) past which
/// the server reads nothing more from it.
pub const MAX_QUEUED_CALLS: usize = 4;

/// How long a heavy read waits for reply bytes to free before it gets
/// [`SERVER_BUSY`](crate::rpc::SERVER_BUSY).
pub const BUSY_WAIT: Duration = Duration::from_secs(5);

/// How long a stopping server lets open connections finish before closing them.
pub const STOP_GRACE: Duration = Duration::from_secs(1);

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

/// Binds `listen` for [`accept_loop`].
pub(super) async fn bind(listen: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(listen).await
}
