//! The session's reader: frames are split into chunks, chunks gathered into messages (each
//! kept or discarded on its header, dropped past the message timeout), and a finished message
//! handed to the serving side (a request) or to the waiting request (a reply).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use deepnode_wire::{
    CHUNK_HEADER_LEN, ChunkHeader, FIRST, HEADER_LEN, Header, Kind, LAST, REPLY, Status,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::time::Instant;

use super::writer::Outgoing;
use super::{Admission, Pending, ServeConfig, Shared, Slots};
use crate::transport::{AccountKey, FrameRead};
use crate::{Model, NodeError};

/// A message being received, its body written straight into the buffers the model gets.
pub(super) struct Open {
    header: Option<Header>,
    /// The inputs (or the response), then the gradient of a Backward: the first `split`
    /// bytes of the body go to `body`, the rest to `grad`.
    body: Vec<u8>,
    grad: Vec<u8>,
    split: usize,
    /// Refused or unwanted: its remaining chunks are read and dropped.
    discard: bool,
    /// When its first chunk arrived.
    started: Instant,
    /// Its declared bytes in the session's and the node's budgets (a request's).
    _bytes: Option<(OwnedSemaphorePermit, OwnedSemaphorePermit)>,
}

impl Open {
    fn discarded() -> Open {
        Open {
            header: None,
            body: Vec::new(),
            grad: Vec::new(),
            split: 0,
            discard: true,
            started: Instant::now(),
            _bytes: None,
        }
    }
}

/// What reads one session: its messages being received and what serving them needs.
pub(super) struct Reader {
    pub(super) peer: AccountKey,
    pub(super) out: mpsc::Sender<Outgoing>,
    pub(super) pending: Pending,
    pub(super) model: Arc<dyn Model>,
    pub(super) admission: Arc<dyn Admission>,
    /// The account's request permits (shared by its sessions).
    pub(super) per_peer: Arc<Semaphore>,
    /// Bytes of this session's unfinished requests.
    pub(super) session_bytes: Arc<Semaphore>,
    pub(super) shared: Arc<Shared>,
    pub(super) config: ServeConfig,
    pub(super) open: HashMap<(u64, bool), Open>,
    /// Dropped last: the session's place in the node's limits.
    pub(super) _slots: Slots,
}

impl Reader {
    /// Reads the session until the peer closes it, breaks the protocol, stays idle, stops
    /// reading (the writer stopped) or `closing` turns true.
    pub(super) async fn run(
        mut self,
        mut frames: Box<dyn FrameRead>,
        mut closing: watch::Receiver<bool>,
    ) -> Result<(), NodeError> {
        let every = self
            .config
            .message_timeout
            .min(self.config.idle_timeout)
            .div_f64(4.0)
            .max(Duration::from_millis(10));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut heard = Instant::now();
        let out = self.out.clone();
        loop {
            let frame = tokio::select! {
                f = frames.recv() => match f? {
                    Some(f) => Some(f),
                    None => return Ok(()),
                },
                _ = closing.wait_for(|c| *c) => return Ok(()),
                // The writer stopped (the peer does not read, or the socket failed).
                _ = out.closed() => return Err(NodeError::Closed),
                _ = tick.tick() => None,
            };
            let Some(frame) = frame else {
                self.expire().await?;
                let waiting = self
                    .pending
                    .lock()
                    .is_ok_and(|p| p.as_ref().is_some_and(|p| !p.is_empty()));
                if waiting || !self.open.is_empty() {
                    heard = Instant::now();
                } else if heard.elapsed() >= self.config.idle_timeout {
                    return Err(NodeError::Timeout);
                }
                continue;
            };
            heard = Instant::now();
            self.chunk(frame).await?;
        }
    }

    /// Drops the buffers of messages unfinished past the message timeout; an expired forward
    /// is answered DeadlineExpired. Their remaining chunks are read and dropped.
    async fn expire(&mut self) -> Result<(), NodeError> {
        let timeout = self.config.message_timeout;
        let expired: Vec<(u64, bool)> = self
            .open
            .iter()
            .filter(|(_, o)| !o.discard && o.started.elapsed() >= timeout)
            .map(|(k, _)| *k)
            .collect();
        for key in expired {
            let Some(open) = self.open.insert(key, Open::discarded()) else {
                continue;
            };
            match (key.1, open.header) {
                (false, Some(h)) => {
                    self.refused(h, Status::DeadlineExpired).await?;
                }
                (true, _) => self.resolve(key.0, Err(NodeError::Timeout)),
                _ => {}
            }
        }
        Ok(())
    }

    async fn chunk(&mut self, frame: &[u8]) -> Result<(), NodeError> {
        let (head, data) = frame
            .split_first_chunk::<CHUNK_HEADER_LEN>()
            .ok_or_else(|| NodeError::Protocol("frame shorter than a chunk header".into()))?;
        let c = ChunkHeader::decode(head)?;
        if usize::from(c.len) != data.len() {
            return Err(NodeError::Protocol(
                "chunk length does not match its frame".into(),
            ));
        }
        let key = (c.request_id, c.flags & REPLY != 0);
        if c.flags & FIRST != 0 {
            if self.open.contains_key(&key) || self.open.len() >= self.config.max_open_messages {
                return Err(NodeError::Protocol(
                    "too many open messages, or a reused id".into(),
                ));
            }
            let (h, rest) = data
                .split_first_chunk::<HEADER_LEN>()
                .ok_or_else(|| NodeError::Protocol("first chunk shorter than a header".into()))?;
            let open = self.first(key.1, c.request_id, h).await?;
            self.open.insert(key, open);
            self.append(key, rest)?;
        } else {
            self.append(key, data)?;
        }
        if c.flags & LAST != 0 {
            let open = self
                .open
                .remove(&key)
                .ok_or_else(|| NodeError::Protocol("last chunk of no message".into()))?;
            if let (false, Some(h)) = (open.discard, open.header) {
                let len = open.body.len() + open.grad.len();
                if u64::try_from(len).ok() != Some(h.payload_len) {
                    return Err(NodeError::Protocol(
                        "message shorter than its header says".into(),
                    ));
                }
                self.complete(key.1, h, open.body, open.grad).await?;
            }
        }
        Ok(())
    }

    fn append(&mut self, key: (u64, bool), data: &[u8]) -> Result<(), NodeError> {
        let open = self
            .open
            .get_mut(&key)
            .ok_or_else(|| NodeError::Protocol("chunk of no open message".into()))?;
        if open.discard {
            return Ok(());
        }
        let declared = open.header.map_or(0, |h| h.payload_len);
        let len = (open.body.len() + open.grad.len()).saturating_add(data.len());
        if u64::try_from(len).map_or(true, |l| l > declared) {
            return Err(NodeError::Protocol(
                "message longer than its header says".into(),
            ));
        }
        let (first, rest) =
            data.split_at(open.split.saturating_sub(open.body.len()).min(data.len()));
        open.body.extend_from_slice(first);
        open.grad.extend_from_slice(rest);
        Ok(())
    }

    /// Reads a message's header and decides, before any body byte, whether to keep it: a
    /// reply when a request of this node waits for it, a request when it is admitted.
    async fn first(
        &mut self,
        reply: bool,
        id: u64,
        bytes: &[u8; HEADER_LEN],
    ) -> Result<Open, NodeError> {
        let header = match Header::decode(bytes) {
            Ok(h) => h,
            Err(e) => {
                if !reply {
                    self.undecodable(id, &e).await?;
                }
                return Ok(Open::discarded());
            }
        };
        let bytes = if reply {
            if !self.reply_wanted(id, &header) {
                return Ok(Open::discarded());
            }
            None
        } else {
            match self.admit(header).await? {
                Some(bytes) => Some(bytes),
                None => return Ok(Open::discarded()),
            }
        };
        // The cap was checked: the allocations are bounded by `limits.max_payload` (a
        // request's also by the open-bytes budgets, a response's by the shape asked for).
        let total = usize::try_from(header.payload_len).unwrap_or(0);
        let split = match header.kind {
            Kind::Backward => header
                .shape
                .bytes(header.dtype)
                .and_then(|b| usize::try_from(b).ok())
                .unwrap_or(total)
                .min(total),
            _ => total,
        };
        Ok(Open {
            header: Some(header),
            body: Vec::with_capacity(split),
            grad: Vec::with_capacity(total - split),
            split,
            discard: false,
            started: Instant::now(),
            _bytes: bytes,
        })
    }

    /// Hands a received message on: a reply to its waiting request, a request to the model.
    async fn complete(
        &mut self,
        reply: bool,
        h: Header,
        body: Vec<u8>,
        grad: Vec<u8>,
    ) -> Result<(), NodeError> {
        if reply {
            self.complete_reply(h, body);
            Ok(())
        } else {
            self.complete_request(h, body, grad).await
        }
    }
}
