//! This node's requests over a session: a forward awaits its reply, a backward is fire and
//! forget; a reply is matched to its request and checked against what was asked for.

use std::sync::atomic::Ordering;
use std::time::Duration;

use deepnode_wire::{DType, Header, Kind, Modality, Shape};
use tokio::sync::oneshot;

use super::reader::Reader;
use super::writer::Outgoing;
use super::{Connection, Waiting, now_ms};
use crate::{NodeError, Tensor};

impl Connection {
    /// Sends `inputs` of `modality` to the peer's model and waits at most `timeout` for its
    /// `[B, S, D]` response (checked against this node's limits).
    pub async fn forward(
        &self,
        modality: Modality,
        inputs: &Tensor,
        timeout: Duration,
    ) -> Result<Tensor, NodeError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let deadline = deadline_after(timeout);
        let header = Header::request(
            Kind::Forward,
            modality,
            inputs.dtype,
            inputs.shape,
            id,
            deadline,
        )
        .ok_or(NodeError::Tensor("too large"))?;
        let (b, s) = match (modality, inputs.shape.dims()) {
            (Modality::Image, &[b, ..]) => (b, 1),
            (_, &[b, s, ..]) => (b, s),
            _ => return Err(NodeError::Tensor("inputs need at least two dimensions")),
        };
        let expect = Shape::new(&[b, s, self.limits.dim]).map(|s| (DType::F32, s));
        let msg = Outgoing::new(id, false, &header, [inputs.bytes.clone(), Vec::new()]);
        self.request(id, msg, expect, timeout).await
    }

    /// Sends the gradient `grad` (`[B, S, D]`) of this node's loss with respect to the peer's
    /// response to `inputs`, fire and forget: the peer drops it past `timeout`.
    pub async fn backward(
        &self,
        modality: Modality,
        inputs: &Tensor,
        grad: &Tensor,
        timeout: Duration,
    ) -> Result<(), NodeError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let header = Header::backward(
            modality,
            inputs.dtype,
            inputs.shape,
            grad.dtype,
            self.dim,
            id,
            deadline_after(timeout),
        )
        .ok_or(NodeError::Tensor("too large"))?;
        if grad.shape.dims().get(2) != Some(&self.dim) {
            return Err(NodeError::Tensor("gradient is not [B, S, D]"));
        }
        self.limits.check(&header)?;
        let msg = Outgoing::new(
            id,
            false,
            &header,
            [inputs.bytes.clone(), grad.bytes.clone()],
        );
        tokio::time::timeout(timeout, self.out.send(msg))
            .await
            .map_err(|_| NodeError::Timeout)?
            .map_err(|_| NodeError::Closed)
    }

    /// Sends raw bytes as request `id` (a header, then a body, possibly malformed) and waits
    /// at most `timeout` for the reply; for tests of hostile callers.
    #[doc(hidden)]
    pub async fn request_raw(
        &self,
        id: u64,
        data: Vec<u8>,
        timeout: Duration,
    ) -> Result<Tensor, NodeError> {
        let msg = Outgoing {
            id,
            reply: false,
            parts: [data, Vec::new(), Vec::new()],
            hold: None,
        };
        self.request(id, msg, None, timeout).await
    }

    /// Sends request `msg` (id `id`) and waits at most `timeout` for the reply, which must be
    /// finite and of `expect`'s dtype and shape when given ([`NodeError::BadAnswer`]).
    async fn request(
        &self,
        id: u64,
        msg: Outgoing,
        expect: Option<(DType, Shape)>,
        timeout: Duration,
    ) -> Result<Tensor, NodeError> {
        let (tx, rx) = oneshot::channel();
        match self.pending.lock().as_deref_mut() {
            Ok(Some(p)) => p.insert(id, Waiting { tx, expect }),
            _ => return Err(NodeError::Closed),
        };
        let result = tokio::time::timeout(timeout, async {
            self.out.send(msg).await.map_err(|_| NodeError::Closed)?;
            rx.await.map_err(|_| NodeError::Closed)?
        })
        .await
        .unwrap_or(Err(NodeError::Timeout));
        if let Ok(Some(p)) = self.pending.lock().as_deref_mut() {
            p.remove(&id);
        }
        result
    }
}

fn deadline_after(timeout: Duration) -> u64 {
    now_ms().saturating_add(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX))
}

impl Reader {
    /// Whether the reply to request `id`, of header `header`, is kept: a request of this node
    /// waits for it and it is an Error, or a Response of the dtype and shape asked for within
    /// the limits. A reply that fails the check fails its request at once.
    pub(super) fn reply_wanted(&self, id: u64, header: &Header) -> bool {
        let expect = match self.pending.lock().as_deref() {
            Ok(Some(p)) => p.get(&id).map(|w| w.expect),
            _ => None,
        };
        let refusal = match (expect, header.kind) {
            (None, _) => None,
            (Some(_), Kind::Error) => Some(Ok(())),
            (Some(e), Kind::Response) => {
                Some(if e.is_some_and(|e| e != (header.dtype, header.shape)) {
                    Err(NodeError::BadAnswer("not the shape or dtype asked for"))
                } else if self.config.limits.check(header).is_err() {
                    Err(NodeError::Protocol("invalid response header".into()))
                } else {
                    Ok(())
                })
            }
            (Some(_), _) => Some(Err(NodeError::Protocol("invalid response header".into()))),
        };
        match refusal {
            Some(Ok(())) => true,
            Some(Err(e)) => {
                self.resolve(id, Err(e));
                false
            }
            None => false,
        }
    }

    /// Hands a received reply to its waiting request: a finite tensor for a Response (when
    /// its shape was asked for), the peer's status for an Error.
    pub(super) fn complete_reply(&self, h: Header, body: Vec<u8>) {
        let expect = match self.pending.lock().as_deref() {
            Ok(Some(p)) => p.get(&h.request_id).map(|w| w.expect),
            _ => None,
        };
        let result = match h.kind {
            Kind::Response => Tensor::new(h.dtype, h.shape, body).and_then(|t| {
                if expect.flatten().is_some() && !t.is_finite() {
                    Err(NodeError::BadAnswer("holds NaN or infinity"))
                } else {
                    Ok(t)
                }
            }),
            _ => Err(NodeError::Refused(h.status)),
        };
        self.resolve(h.request_id, result);
    }

    /// Fails or answers request `id` of this node, if it still waits.
    pub(super) fn resolve(&self, id: u64, result: Result<Tensor, NodeError>) {
        let waiting = match self.pending.lock().as_deref_mut() {
            Ok(Some(p)) => p.remove(&id),
            _ => None,
        };
        if let Some(w) = waiting {
            let _ = w.tx.send(result);
        }
    }
}
