//! The accept loop: jsonrpsee's tower service served over hyper with the ledger's connection
//! rules ([`Limits`]), so that a few slow or idle clients cannot take the whole connection
//! budget (issue 15, item 2) and a web page cannot drive the RPC (item 10).
//!
//! - At most [`Limits::max_connections`] connections, and [`Limits::max_per_ip`] from one
//!   address; past either, the connection is closed at once.
//! - At most [`Limits::max_ws_sessions`] WebSocket sessions: the rest of the connection
//!   budget is a reserve for plain HTTP requests (`deepnode tx`, `ledger_submit`); an upgrade
//!   past the cap gets HTTP 429.
//! - Request headers must arrive within [`Limits::header_timeout`] (hyper's
//!   `header_read_timeout`), and an HTTP connection with no request in flight for as long is
//!   closed (an idle keep-alive, or one that never sends a byte); an HTTP request,
//!   body included, must be read and answered within [`Limits::request_timeout`], else 408
//!   and the connection closes.
//! - A WebSocket that answers no ping for [`Limits::ws_inactive`] is closed (jsonrpsee's
//!   `PingConfig`).
//! - Nothing more is read from a connection while a write to it is blocked
//!   ([`Backpressured`]): a client that sends requests but does not read the replies stops
//!   being read once its socket is full, instead of having the server queue work and replies
//!   for it without bound (jsonrpsee 0.26 spawns a task for every WebSocket message it reads,
//!   whether or not the replies before it could be sent).
//! - `Host` must name a loopback host (`localhost`, `127.*`, `[::1]`) and an `Origin`, if
//!   sent, must be a loopback origin, else HTTP 403: a browser page elsewhere cannot call it.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use jsonrpsee::server::{HttpBody, HttpResponse, Methods, StopHandle, TowerServiceBuilder};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower::Service;

/// The connection rules of the RPC server (see the module docs). `Default` is what
/// `deepnode ledger run` uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Open connections in all.
    pub max_connections: usize,
    /// Open connections from one IP address.
    pub max_per_ip: usize,
    /// Open WebSocket sessions; `max_connections - max_ws_sessions` is kept for HTTP.
    pub max_ws_sessions: usize,
    /// Time to receive a request's headers (and between requests on a kept-alive connection).
    pub header_timeout: Duration,
    /// Time to read an HTTP request's body and answer it.
    pub request_timeout: Duration,
    /// A WebSocket that answers no ping for this long is closed.
    pub ws_inactive: Duration,
}

impl Default for Limits {
    /// 512 connections, 64 per IP, 384 WebSocket sessions (128 kept for HTTP), headers in
    /// 10 s, a request in 30 s, WebSockets closed after 60 s without a pong.
    fn default() -> Limits {
        Limits {
            max_connections: 512,
            max_per_ip: 64,
            max_ws_sessions: 384,
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            ws_inactive: Duration::from_secs(60),
        }
    }
}

/// The jsonrpsee service factory the loop builds one service per request from.
pub(super) type Builder =
    TowerServiceBuilder<tower::layer::util::Identity, tower::layer::util::Identity>;

/// Connections open per IP address; an entry lives while its count is non-zero.
#[derive(Default)]
struct PerIp(Mutex<HashMap<IpAddr, usize>>);

/// One connection's place in [`PerIp`], given back on drop.
struct IpSlot {
    table: Arc<PerIp>,
    ip: IpAddr,
}

impl PerIp {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        // Counts are updated in one statement each; a poisoned map is still consistent.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn try_take(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<IpSlot> {
        let mut map = self.lock();
        let n = map.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            table: self.clone(),
            ip,
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut map = self.table.lock();
        if let Some(n) = map.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// Accepts connections on `listener` until `stop` says so, serving each under `limits`.
pub(super) async fn accept_loop(
    listener: TcpListener,
    builder: Builder,
    methods: Methods,
    stop: StopHandle,
    limits: Limits,
) {
    let limits = Arc::new(limits);
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let ws_sessions = Arc::new(Semaphore::new(limits.max_ws_sessions));
    let per_ip = Arc::new(PerIp::default());
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
        let Some(ip_slot) = per_ip.try_take(remote.ip(), limits.max_per_ip) else {
            continue; // dropping the socket closes it
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            continue;
        };
        let conn = Conn {
            builder: builder.clone(),
            methods: methods.clone(),
            stop: stop.clone(),
            limits: limits.clone(),
            ws_sessions: ws_sessions.clone(),
        };
        tokio::spawn(async move {
            conn.serve(sock).await;
            drop((permit, ip_slot));
        });
    }
}

/// What serving one connection needs.
#[derive(Clone)]
struct Conn {
    builder: Builder,
    methods: Methods,
    stop: StopHandle,
    limits: Arc<Limits>,
    ws_sessions: Arc<Semaphore>,
}

/// When a connection last finished a request, and how many it has in flight.
struct Activity {
    in_flight: AtomicUsize,
    last: Mutex<Instant>,
}

impl Activity {
    fn touch(&self) {
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    /// Resolves once no request has been in flight for `limit`.
    async fn idle_for(&self, limit: Duration) {
        loop {
            let since = self
                .last
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .elapsed();
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

/// The `Host` / `Origin` rule (module docs).
fn allowed<B>(req: &hyper::Request<B>) -> bool {
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
    host_ok && origin_ok
}

impl Conn {
    async fn serve(self, sock: TcpStream) {
        let _ = sock.set_nodelay(true);
        let stop = self.stop.clone();
        let header_timeout = self.limits.header_timeout;
        // hyper's header timeout starts with a request's first byte (and the HTTP/1-or-2
        // sniffing before it waits for bytes without one), so a connection that sends
        // nothing is closed here: no request in flight for `header_timeout`.
        let activity = Arc::new(Activity {
            in_flight: AtomicUsize::new(0),
            last: Mutex::new(Instant::now()),
        });
        let seen = activity.clone();
        let svc = tower::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
            let this = self.clone();
            let seen = seen.clone();
            async move {
                seen.in_flight.fetch_add(1, Ordering::SeqCst);
                let reply = this.handle(req).await;
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
            TokioIo::new(Backpressured::new(sock)),
            hyper_util::service::TowerToHyperService::new(svc),
        );
        tokio::pin!(conn);
        tokio::select! {
            _ = conn.as_mut() => {}
            () = activity.idle_for(header_timeout) => {} // dropping the connection closes it
            () = stop.shutdown() => {
                conn.as_mut().graceful_shutdown();
                let _ = conn.await;
            }
        }
    }

    async fn handle(self, req: hyper::Request<hyper::body::Incoming>) -> HttpResponse {
        if !allowed(&req) {
            return refuse(
                hyper::StatusCode::FORBIDDEN,
                "Host and Origin must be loopback",
            );
        }
        let mut svc = self.builder.build(self.methods, self.stop);
        if jsonrpsee::server::ws::is_upgrade_request(&req) {
            let Ok(permit) = self.ws_sessions.try_acquire_owned() else {
                return refuse(
                    hyper::StatusCode::TOO_MANY_REQUESTS,
                    "Too many WebSocket sessions. Please try again later.",
                );
            };
            // Resolves when the session ends (or the upgrade fails): the permit lives as long.
            let closed = svc.on_session_closed();
            tokio::spawn(async move {
                closed.await;
                drop(permit);
            });
            return svc.call(req).await.unwrap_or_else(|_| {
                refuse(hyper::StatusCode::INTERNAL_SERVER_ERROR, "internal error")
            });
        }
        match tokio::time::timeout(self.limits.request_timeout, svc.call(req)).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(_)) => refuse(hyper::StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
            Err(_) => refuse(hyper::StatusCode::REQUEST_TIMEOUT, "request timeout"),
        }
    }
}

/// A connection's stream that reads nothing while a write to it is blocked (the peer's
/// receive window and the socket's send buffer are full): the reader is woken by the next
/// write that goes through. So a peer that does not read its replies cannot make the server
/// take in more of its requests. Such a WebSocket peer keeps its session (and its connection
/// slots) until it closes: the ping rule does not close it, as jsonrpsee's send task stays
/// in the blocked write.
pub(super) struct Backpressured {
    inner: TcpStream,
    write_blocked: bool,
    reader: Option<Waker>,
}

impl Backpressured {
    pub(super) fn new(inner: TcpStream) -> Backpressured {
        Backpressured {
            inner,
            write_blocked: false,
            reader: None,
        }
    }

    /// Records whether the last write was blocked; wakes a waiting reader when it was not.
    fn wrote<T>(&mut self, r: Poll<T>) -> Poll<T> {
        self.write_blocked = r.is_pending();
        if !self.write_blocked
            && let Some(reader) = self.reader.take()
        {
            reader.wake();
        }
        r
    }
}

impl AsyncRead for Backpressured {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.write_blocked {
            self.reader = Some(cx.waker().clone());
            return Poll::Pending;
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Backpressured {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.wrote(r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wrote(r)
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
