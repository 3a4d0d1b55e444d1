//! The RPC middleware ([`Gate`]): a connection's calls one at a time, heavy reads within the
//! reply-byte budgets, the calls of a client that left answered unrun, bad ids refused.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use jsonrpsee::core::middleware::{Batch, BatchEntry, Notification, RpcServiceT};
use jsonrpsee::server::MethodResponse;
use jsonrpsee::types::{ErrorObjectOwned, Id, Request};
use tokio::sync::OwnedSemaphorePermit;

use super::super::wire::{MAX_RESPONSE_BYTES, SERVER_BUSY};
use super::conn::Executing;
use super::registry::Slot;
use super::{BUSY_WAIT, lock, take, wait_for};

/// The methods whose replies may be large; they reserve reply bytes before they run.
pub(super) const HEAVY: [&str; 5] = [
    "ledger_metagraph",
    "ledger_epochInput",
    "ledger_block",
    "ledger_weights",
    "ledger_bonds",
];

/// Puts a connection's [`Slot`] in its requests' extensions, for the [`Gate`].
#[derive(Clone)]
pub(super) struct ConnRef(pub(super) Arc<Slot>);

/// Makes [`Gate`]s.
#[derive(Clone, Copy, Debug, Default)]
pub(in crate::rpc) struct GateLayer;

impl<S> tower::Layer<S> for GateLayer {
    type Service = Gate<S>;

    fn layer(&self, inner: S) -> Gate<S> {
        Gate { inner }
    }
}

/// The RPC middleware that runs a connection's calls one at a time, within the reply-byte
/// budgets, and drops the calls of a client that left (module docs).
#[derive(Clone)]
pub(in crate::rpc) struct Gate<S> {
    pub(super) inner: S,
}

/// A call's admission: its turn, its place in the queue and its reservation, given back on
/// drop.
pub(super) struct Ticket {
    pub(super) slot: Arc<Slot>,
    pub(super) _turn: Option<OwnedSemaphorePermit>,
    pub(super) _heavy: Option<OwnedSemaphorePermit>,
    pub(super) reserved: usize,
}

impl Ticket {
    /// The reply of `len` bytes replaces the reservation.
    pub(super) fn settle(&mut self, len: usize) {
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
pub(super) enum Refusal {
    /// Its client left.
    Departed,
    /// No reply bytes freed within [`BUSY_WAIT`].
    Busy,
}

impl Refusal {
    pub(super) fn error(&self) -> ErrorObjectOwned {
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
pub(super) async fn admit(slot: Arc<Slot>, heavy: bool) -> Result<Ticket, Refusal> {
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
pub(super) fn invalid_request() -> MethodResponse {
    MethodResponse::error(
        Id::Null,
        ErrorObjectOwned::from(jsonrpsee::types::ErrorCode::InvalidRequest),
    )
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::super::ConnectionLimits;
    use super::super::registry::Registry;

    use super::*;

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
}
