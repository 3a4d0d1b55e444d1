//! Serving the peer's requests: admission and limits checked on a request's header before its
//! body is read, the model run on a bounded number of blocking threads, the reply queued with
//! the request's permits.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use deepnode_wire::{Header, Kind, Modality, Status, WireError};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use super::reader::Reader;
use super::writer::{Outgoing, Permits};
use super::{Counters, now_ms};
use crate::{Model, NodeError, Tensor};

impl Reader {
    /// Refuses a request whose header does not decode (BadVersion or Malformed).
    pub(super) async fn undecodable(&self, id: u64, e: &WireError) -> Result<(), NodeError> {
        let status = if matches!(e, WireError::Version(_)) {
            Status::BadVersion
        } else {
            Status::Malformed
        };
        self.config.counters.refused.fetch_add(1, Ordering::Relaxed);
        self.reply_error(id, Modality::Tensor, status).await
    }

    /// Decides on request `header` before its body: refused (and answered, for a forward)
    /// when it is not a forward or backward, the peer is not admitted, the modality is not
    /// served, the header breaks the limits or its declared bytes do not fit the open-bytes
    /// budgets; else the reserved bytes.
    pub(super) async fn admit(
        &mut self,
        header: Header,
    ) -> Result<Option<(OwnedSemaphorePermit, OwnedSemaphorePermit)>, NodeError> {
        let status = if !matches!(header.kind, Kind::Forward | Kind::Backward) {
            Some(Status::Malformed)
        } else if !self.admission.admit(&self.peer) {
            Some(Status::Unauthorized)
        } else if !self.model.serves(header.modality) {
            Some(Status::UnservedModality)
        } else {
            match self.config.limits.check(&header) {
                Ok(()) => None,
                Err(WireError::TooLarge { .. }) => Some(Status::TooLarge),
                Err(_) => Some(Status::BadShape),
            }
        };
        if let Some(status) = status {
            self.refused(header, status).await?;
            return Ok(None);
        }
        // The declared bytes, reserved before they arrive (the buffers below).
        let n = u32::try_from(header.payload_len).unwrap_or(u32::MAX);
        let reserved = (
            Arc::clone(&self.session_bytes).try_acquire_many_owned(n),
            Arc::clone(&self.shared.open_bytes).try_acquire_many_owned(n),
        );
        let (Ok(a), Ok(b)) = reserved else {
            self.refused(header, Status::Busy).await?;
            return Ok(None);
        };
        Ok(Some((a, b)))
    }

    /// Runs a received request on the model, unless its deadline passed or the account or the
    /// node is at its limit of requests at once (Busy).
    pub(super) async fn complete_request(
        &mut self,
        h: Header,
        body: Vec<u8>,
        grad: Vec<u8>,
    ) -> Result<(), NodeError> {
        if h.deadline_ms != 0 && now_ms() > h.deadline_ms {
            return self.refused(h, Status::DeadlineExpired).await;
        }
        let permits = (
            Arc::clone(&self.per_peer).try_acquire_owned(),
            Arc::clone(&self.config.global).try_acquire_owned(),
        );
        let (Ok(p1), Ok(p2)) = permits else {
            return self.refused(h, Status::Busy).await;
        };
        let model = Arc::clone(&self.model);
        let out = self.out.clone();
        let counters = Arc::clone(&self.config.counters);
        let send_timeout = self.config.send_timeout;
        let turns = Arc::clone(&self.shared.model);
        tokio::spawn(serve(
            model,
            out,
            h,
            [body, grad],
            (p1, p2),
            (counters, send_timeout, turns),
        ));
        Ok(())
    }

    /// Counts request `h` refused with `status` and answers it when it is a forward.
    pub(super) async fn refused(&self, h: Header, status: Status) -> Result<(), NodeError> {
        self.config.counters.refused.fetch_add(1, Ordering::Relaxed);
        if h.kind == Kind::Forward {
            self.reply_error(h.request_id, h.modality, status).await?;
        }
        Ok(())
    }

    /// Queues an Error reply; a queue that stays full past the send timeout ends the session.
    pub(super) async fn reply_error(
        &self,
        id: u64,
        modality: Modality,
        status: Status,
    ) -> Result<(), NodeError> {
        let msg = Outgoing::new(
            id,
            true,
            &Header::error(id, modality, status),
            [Vec::new(), Vec::new()],
        );
        match tokio::time::timeout(self.config.send_timeout, self.out.send(msg)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(NodeError::Closed),
            Err(_) => Err(NodeError::Timeout),
        }
    }
}

/// Runs one admitted request on the model (off the async threads, once one of `turns` is
/// free) and replies to a Forward; the permits are held until the reply is written.
async fn serve(
    model: Arc<dyn Model>,
    out: mpsc::Sender<Outgoing>,
    h: Header,
    [body, grad]: [Vec<u8>; 2],
    permits: Permits,
    (counters, send_timeout, turns): (Arc<Counters>, Duration, Arc<Semaphore>),
) {
    let reply = |header: Header, body: Vec<u8>, hold: Permits| {
        let mut m = Outgoing::new(h.request_id, true, &header, [body, Vec::new()]);
        m.hold = Some(hold);
        m
    };
    let inputs = Tensor::new(h.dtype, h.shape, body);
    let status_of = |e: &NodeError| match e {
        NodeError::Tensor(_) => Status::NotFinite,
        _ => Status::ModelFailed,
    };
    // Its turn on the model: a bounded number of blocking threads, whatever the load.
    let turn = turns.acquire_owned().await;
    let expired = h.deadline_ms != 0 && now_ms() > h.deadline_ms;
    if turn.is_err() || expired {
        counters.refused.fetch_add(1, Ordering::Relaxed);
        if h.kind == Kind::Forward {
            let status = Status::DeadlineExpired;
            let m = reply(
                Header::error(h.request_id, h.modality, status),
                Vec::new(),
                permits,
            );
            let _ = tokio::time::timeout(send_timeout, out.send(m)).await;
        }
        return;
    }
    let result = tokio::task::spawn_blocking(move || -> Result<Option<Tensor>, NodeError> {
        let inputs = inputs?;
        if !inputs.is_finite() {
            return Err(NodeError::Tensor("inputs hold NaN or infinity"));
        }
        match h.kind {
            Kind::Forward => model.forward(h.modality, &inputs).map(Some),
            _ => {
                let dim = h.grad_dim().unwrap_or(0);
                let dims = [h.shape.dims()[0], h.shape.dims()[1], dim];
                let shape = deepnode_wire::Shape::new(&dims).ok_or(NodeError::Tensor("shape"))?;
                let grad = Tensor::new(h.grad_dtype.unwrap_or(h.dtype), shape, grad)?;
                if !grad.is_finite() {
                    return Err(NodeError::Tensor("gradient holds NaN or infinity"));
                }
                model.backward(h.modality, &inputs, &grad).map(|()| None)
            }
        }
    })
    .await
    .unwrap_or_else(|e| Err(NodeError::Model(format!("model panicked: {e}"))));
    drop(turn);
    let counter = if result.is_ok() {
        &counters.served
    } else {
        &counters.refused
    };
    counter.fetch_add(1, Ordering::Relaxed);
    let msg = match (h.kind, result) {
        (Kind::Forward, Ok(Some(t))) => match Header::request(
            Kind::Response,
            h.modality,
            t.dtype,
            t.shape,
            h.request_id,
            0,
        ) {
            Some(rh) => reply(rh, t.bytes, permits),
            None => reply(
                Header::error(h.request_id, h.modality, Status::ModelFailed),
                Vec::new(),
                permits,
            ),
        },
        (Kind::Forward, Err(e)) => reply(
            Header::error(h.request_id, h.modality, status_of(&e)),
            Vec::new(),
            permits,
        ),
        _ => return,
    };
    // A peer that does not read: the reply (and its permits) is dropped after the timeout,
    // and the writer, stuck as long, ends the session.
    let _ = tokio::time::timeout(send_timeout, out.send(msg)).await;
}
