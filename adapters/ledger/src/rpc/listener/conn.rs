//! Serving one connection: its requests handed to jsonrpsee's service, an upgrade to a
//! WebSocket on its first request only, its activity for the eviction rule.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use jsonrpsee::server::{HttpBody, HttpResponse, Methods, StopHandle};
use tokio::net::TcpStream;
use tower::Service;

use super::gate::ConnRef;
use super::registry::{Held, Slot};
use super::request::{allowed, bad_id, read_body, refuse};
use super::stream::Backpressured;
use super::{Builder, STOP_GRACE, lock, wait_for};

/// What serving one connection needs.
#[derive(Clone)]
pub(super) struct Conn {
    pub(super) builder: Builder,
    pub(super) methods: Methods,
    pub(super) stop: StopHandle,
    pub(super) slot: Arc<Slot>,
    /// The registration; an upgraded session keeps a clone until it ends.
    pub(super) held: Arc<Held>,
}

/// When a connection last finished a request, and how many it has in flight.
pub(super) struct Activity {
    pub(super) in_flight: AtomicUsize,
    pub(super) last: Mutex<Instant>,
}

impl Activity {
    pub(super) fn touch(&self) {
        *lock(&self.last) = Instant::now();
    }

    /// Resolves once no request has been in flight for `limit`.
    pub(super) async fn idle_for(&self, limit: Duration) {
        loop {
            let since = lock(&self.last).elapsed();
            if self.in_flight.load(Ordering::SeqCst) == 0 && since >= limit {
                return;
            }
            tokio::time::sleep(limit.saturating_sub(since).max(limit / 4)).await;
        }
    }
}

/// Counts a call as running while it lives.
pub(super) struct Executing(pub(super) Arc<Slot>);

impl Executing {
    pub(super) fn new(slot: &Arc<Slot>) -> Executing {
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
    pub(super) async fn serve(self, sock: TcpStream) {
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

    pub(super) async fn handle(
        self,
        mut req: hyper::Request<hyper::body::Incoming>,
    ) -> HttpResponse {
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
