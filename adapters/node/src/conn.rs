//! One session with a peer, both ways: it serves the peer's requests with the local
//! [`Model`] and carries this node's requests to the peer. Messages travel as chunks
//! ([`deepnode_wire::ChunkHeader`]) that the writer interleaves round-robin, so a large backward
//! does not hold up a small forward.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use deepnode_wire::{
    CHUNK_HEADER_LEN, ChunkHeader, FIRST, HEADER_LEN, Header, Kind, LAST, Limits, MAX_CHUNK_DATA,
    Modality, REPLY, Status, WireError,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};

use crate::transport::{AccountKey, FrameRead, FrameWrite, Session};
use crate::{Model, NodeError, Tensor};

/// Who may call this node: checked on every request, before its body is read.
pub trait Admission: Send + Sync + 'static {
    /// Whether `account` may be served now (in the metagraph, at or above the stake floor).
    fn admit(&self, account: &AccountKey) -> bool;
}

/// Admits everyone (tests, private networks).
pub struct AdmitAll;

impl Admission for AdmitAll {
    fn admit(&self, _: &AccountKey) -> bool {
        true
    }
}

/// Requests this node served and refused, over all its connections.
#[derive(Debug, Default)]
pub struct Counters {
    /// Requests that reached the model and succeeded.
    pub served: AtomicU64,
    /// Requests refused with a status (or whose model failed).
    pub refused: AtomicU64,
}

/// What a node serves and how much at once.
#[derive(Clone)]
pub struct ServeConfig {
    /// Shapes and sizes accepted, requests and responses alike.
    pub limits: Limits,
    /// Requests served at once for one peer; past it, Busy.
    pub per_peer: usize,
    /// Requests served at once in total (shared by every connection through
    /// [`ServeConfig::global`]); past it, Busy.
    pub global: Arc<Semaphore>,
    /// Partly received messages one peer may have open at once; past it, the connection is
    /// closed (a peer that opens messages and never finishes them).
    pub max_open_messages: usize,
    /// Counts served and refused requests (shared by every connection of a node).
    pub counters: Arc<Counters>,
}

impl ServeConfig {
    /// `limits`, at most `per_peer` requests at once per peer and `total` in all, 64 open
    /// messages per peer, fresh counters.
    pub fn new(limits: Limits, per_peer: usize, total: usize) -> ServeConfig {
        ServeConfig {
            limits,
            per_peer,
            global: Arc::new(Semaphore::new(total)),
            max_open_messages: 64,
            counters: Arc::default(),
        }
    }
}

/// A live session with one peer.
pub struct Connection {
    peer: AccountKey,
    out: mpsc::Sender<Outgoing>,
    pending: Pending,
    next_id: AtomicU64,
    dim: u32,
    limits: Limits,
}

/// Requests awaiting a reply; `None` once the session is over, so new requests fail at once.
type Pending = Arc<Mutex<Option<HashMap<u64, oneshot::Sender<Result<Tensor, NodeError>>>>>>;

/// A message waiting to be sent: the concatenation of `parts` (a header, inputs, gradient),
/// moved in whole so that no byte is copied before it is sealed.
struct Outgoing {
    id: u64,
    reply: bool,
    parts: [Vec<u8>; 3],
}

impl Outgoing {
    fn new(id: u64, reply: bool, header: &Header, body: [Vec<u8>; 2]) -> Outgoing {
        let mut h = [0u8; HEADER_LEN];
        header.encode(&mut h);
        let [inputs, grad] = body;
        Outgoing {
            id,
            reply,
            parts: [h.to_vec(), inputs, grad],
        }
    }

    fn len(&self) -> usize {
        self.parts.iter().map(Vec::len).sum()
    }

    /// Where bytes `pos..pos + n` of the message can be sealed in place: a part holding all of
    /// them and, before them, room for the chunk header (bytes already sent). Returns the
    /// part and the offset of `pos` in it.
    fn in_place(&self, pos: usize, n: usize) -> Option<(usize, usize)> {
        let mut start = 0;
        for (i, part) in self.parts.iter().enumerate() {
            let end = start + part.len();
            if pos >= start + CHUNK_HEADER_LEN && pos + n <= end {
                return Some((i, pos - start));
            }
            start = end;
        }
        None
    }

    /// The slices of the message's bytes `pos..pos + n`, in order (empty slices where a part
    /// does not overlap).
    fn slices(&self, pos: usize, n: usize) -> [&[u8]; 3] {
        let mut out: [&[u8]; 3] = [&[]; 3];
        let mut start = 0;
        for (slot, part) in out.iter_mut().zip(&self.parts) {
            let end = start + part.len();
            let (a, b) = (pos.max(start), (pos + n).min(end));
            if a < b {
                *slot = part.get(a - start..b - start).unwrap_or_default();
            }
            start = end;
        }
        out
    }
}

/// Unix time in milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Connection {
    /// Starts serving `session` with `model` under `admission` and `config`; the returned
    /// handle sends this node's requests over the same session. The session ends when the peer
    /// closes it, breaks the protocol, `closing` turns true (the node shuts down), or every
    /// handle is dropped.
    pub fn start(
        session: Session,
        model: Arc<dyn Model>,
        admission: Arc<dyn Admission>,
        config: ServeConfig,
        closing: watch::Receiver<bool>,
    ) -> Arc<Connection> {
        let (tx, rx) = mpsc::channel(256);
        let conn = Arc::new(Connection {
            peer: session.peer,
            out: tx.clone(),
            pending: Arc::new(Mutex::new(Some(HashMap::new()))),
            next_id: AtomicU64::new(1),
            dim: model.dim(),
            limits: config.limits,
        });
        tokio::spawn(write_loop(session.writer, rx, closing.clone()));
        let reader = Reader {
            peer: session.peer,
            out: tx,
            pending: Arc::clone(&conn.pending),
            model,
            admission,
            per_peer: Arc::new(Semaphore::new(config.per_peer)),
            config,
            open: HashMap::new(),
        };
        let pending = Arc::clone(&conn.pending);
        tokio::spawn(async move {
            let _ = reader.run(session.reader, closing).await;
            // The session is over: every waiting request fails now, not at its deadline.
            if let Ok(mut p) = pending.lock() {
                *p = None;
            }
        });
        conn
    }

    /// The peer's account.
    pub fn peer(&self) -> AccountKey {
        self.peer
    }

    /// Whether the session is still open.
    pub fn is_open(&self) -> bool {
        !self.out.is_closed() && self.pending.lock().is_ok_and(|p| p.is_some())
    }

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
        let msg = Outgoing::new(id, false, &header, [inputs.bytes.clone(), Vec::new()]);
        self.request(id, msg, timeout).await
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
        };
        self.request(id, msg, timeout).await
    }

    /// Sends request `msg` (id `id`) and waits at most `timeout` for the reply.
    async fn request(
        &self,
        id: u64,
        msg: Outgoing,
        timeout: Duration,
    ) -> Result<Tensor, NodeError> {
        let (tx, rx) = oneshot::channel();
        match self.pending.lock().as_deref_mut() {
            Ok(Some(p)) => p.insert(id, tx),
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

/// Sends queued messages as chunks, one chunk per message in turn, sealing a few chunks
/// before each write.
async fn write_loop(
    mut writer: Box<dyn FrameWrite>,
    mut rx: mpsc::Receiver<Outgoing>,
    mut closing: watch::Receiver<bool>,
) {
    let mut active: VecDeque<(Outgoing, usize)> = VecDeque::new();
    loop {
        if *closing.borrow() {
            return;
        }
        if active.is_empty() && writer.buffered() == 0 {
            tokio::select! {
                m = rx.recv() => match m {
                    Some(m) => active.push_back((m, 0)),
                    None => return,
                },
                _ = closing.wait_for(|c| *c) => return,
            }
        }
        while let Ok(m) = rx.try_recv() {
            active.push_back((m, 0));
        }
        if let Some((mut m, pos)) = active.pop_front() {
            let len = m.len();
            let n = (len - pos).min(MAX_CHUNK_DATA);
            let mut flags = if m.reply { REPLY } else { 0 };
            if pos == 0 {
                flags |= FIRST;
            }
            if pos + n == len {
                flags |= LAST;
            }
            let mut h = [0u8; CHUNK_HEADER_LEN];
            ChunkHeader {
                request_id: m.id,
                // n <= MAX_CHUNK_DATA < 2^16.
                len: n as u16,
                flags,
            }
            .encode(&mut h);
            if let Some((part, off)) = m.in_place(pos, n) {
                // The chunk header overwrites bytes of this message already sent; the chunk
                // is sealed where it lies (the message is dropped once sent).
                let Some(frame) = m
                    .parts
                    .get_mut(part)
                    .and_then(|p| p.get_mut(off - CHUNK_HEADER_LEN..off + n))
                else {
                    return;
                };
                frame[..CHUNK_HEADER_LEN].copy_from_slice(&h);
                tokio::select! {
                    r = writer.send_in_place(frame) => if r.is_err() {
                        return;
                    },
                    _ = closing.wait_for(|c| *c) => return,
                }
            } else {
                let [a, b, c] = m.slices(pos, n);
                if writer.push(&[&h, a, b, c]).is_err() {
                    return;
                }
            }
            if flags & LAST == 0 {
                active.push_back((m, pos + n));
            }
        }
        // Write once a few frames are sealed, or at once when nothing else is waiting.
        if writer.buffered() >= FLUSH_AT || active.is_empty() {
            tokio::select! {
                r = writer.flush() => if r.is_err() {
                    return;
                },
                _ = closing.wait_for(|c| *c) => return,
            }
        }
    }
}

/// Bytes sealed before the writer writes them, unless nothing else waits.
const FLUSH_AT: usize = 2 * (CHUNK_HEADER_LEN + MAX_CHUNK_DATA);

/// A message being received, its body written straight into the buffers the model gets.
struct Open {
    header: Option<Header>,
    /// The inputs (or the response), then the gradient of a Backward: the first `split`
    /// bytes of the body go to `body`, the rest to `grad`.
    body: Vec<u8>,
    grad: Vec<u8>,
    split: usize,
    /// Refused or unwanted: its remaining chunks are read and dropped.
    discard: bool,
}

struct Reader {
    peer: AccountKey,
    out: mpsc::Sender<Outgoing>,
    pending: Pending,
    model: Arc<dyn Model>,
    admission: Arc<dyn Admission>,
    per_peer: Arc<Semaphore>,
    config: ServeConfig,
    open: HashMap<(u64, bool), Open>,
}

impl Reader {
    async fn run(
        mut self,
        mut frames: Box<dyn FrameRead>,
        mut closing: watch::Receiver<bool>,
    ) -> Result<(), NodeError> {
        loop {
            let frame = tokio::select! {
                f = frames.recv() => match f? {
                    Some(f) => f,
                    None => return Ok(()),
                },
                _ = closing.wait_for(|c| *c) => return Ok(()),
            };
            self.chunk(frame).await?;
        }
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
            let open = self.first(key.1, c.request_id, h).await;
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
                self.complete(key.1, h, open.body, open.grad).await;
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

    /// Reads a message's header and decides, before any body byte, whether to keep it.
    async fn first(&mut self, reply: bool, id: u64, bytes: &[u8; HEADER_LEN]) -> Open {
        let discard = Open {
            header: None,
            body: Vec::new(),
            grad: Vec::new(),
            split: 0,
            discard: true,
        };
        let header = match Header::decode(bytes) {
            Ok(h) => h,
            Err(e) => {
                if !reply {
                    let status = if matches!(e, WireError::Version(_)) {
                        Status::BadVersion
                    } else {
                        Status::Malformed
                    };
                    self.refuse(id, Modality::Tensor, status).await;
                }
                return discard;
            }
        };
        if reply {
            let wanted = self
                .pending
                .lock()
                .is_ok_and(|p| p.as_ref().is_some_and(|p| p.contains_key(&id)));
            let valid = match header.kind {
                Kind::Response => self.config.limits.check(&header).is_ok(),
                Kind::Error => true,
                _ => false,
            };
            if !wanted || !valid {
                if wanted {
                    self.resolve(
                        id,
                        Err(NodeError::Protocol("invalid response header".into())),
                    );
                }
                return discard;
            }
        } else {
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
                if header.kind == Kind::Forward {
                    self.refuse(id, header.modality, status).await;
                }
                return discard;
            }
        }
        // The cap was checked: the allocations are bounded by `limits.max_payload`.
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
        Open {
            header: Some(header),
            body: Vec::with_capacity(split),
            grad: Vec::with_capacity(total - split),
            split,
            discard: false,
        }
    }

    async fn complete(&mut self, reply: bool, h: Header, body: Vec<u8>, grad: Vec<u8>) {
        if reply {
            let result = match h.kind {
                Kind::Response => Tensor::new(h.dtype, h.shape, body),
                _ => Err(NodeError::Refused(h.status)),
            };
            self.resolve(h.request_id, result);
            return;
        }
        if h.deadline_ms != 0 && now_ms() > h.deadline_ms {
            if h.kind == Kind::Forward {
                self.refuse(h.request_id, h.modality, Status::DeadlineExpired)
                    .await;
            }
            return;
        }
        let permits = (
            Arc::clone(&self.per_peer).try_acquire_owned(),
            Arc::clone(&self.config.global).try_acquire_owned(),
        );
        let (Ok(p1), Ok(p2)) = permits else {
            if h.kind == Kind::Forward {
                self.refuse(h.request_id, h.modality, Status::Busy).await;
            }
            return;
        };
        let model = Arc::clone(&self.model);
        let out = self.out.clone();
        let counters = Arc::clone(&self.config.counters);
        tokio::spawn(serve(model, out, h, [body, grad], (p1, p2), counters));
    }

    fn resolve(&self, id: u64, result: Result<Tensor, NodeError>) {
        let tx = match self.pending.lock().as_deref_mut() {
            Ok(Some(p)) => p.remove(&id),
            _ => None,
        };
        if let Some(tx) = tx {
            let _ = tx.send(result);
        }
    }

    async fn refuse(&self, id: u64, modality: Modality, status: Status) {
        self.config.counters.refused.fetch_add(1, Ordering::Relaxed);
        let msg = Outgoing::new(
            id,
            true,
            &Header::error(id, modality, status),
            [Vec::new(), Vec::new()],
        );
        let _ = self.out.send(msg).await;
    }
}

/// Runs one admitted request on the model (off the async threads) and replies to a Forward.
async fn serve(
    model: Arc<dyn Model>,
    out: mpsc::Sender<Outgoing>,
    h: Header,
    [body, grad]: [Vec<u8>; 2],
    permits: (OwnedSemaphorePermit, OwnedSemaphorePermit),
    counters: Arc<Counters>,
) {
    let reply = |header: Header, body: Vec<u8>| {
        Outgoing::new(h.request_id, true, &header, [body, Vec::new()])
    };
    let inputs = Tensor::new(h.dtype, h.shape, body);
    let status_of = |e: &NodeError| match e {
        NodeError::Tensor(_) => Status::NotFinite,
        _ => Status::ModelFailed,
    };
    let result = tokio::task::spawn_blocking(move || -> Result<Option<Tensor>, NodeError> {
        let _permits = permits;
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
            Some(rh) => reply(rh, t.bytes),
            None => reply(
                Header::error(h.request_id, h.modality, Status::ModelFailed),
                Vec::new(),
            ),
        },
        (Kind::Forward, Err(e)) => reply(
            Header::error(h.request_id, h.modality, status_of(&e)),
            Vec::new(),
        ),
        _ => return,
    };
    let _ = out.send(msg).await;
}
