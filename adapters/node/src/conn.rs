//! One session with a peer, both ways: it serves the peer's requests with the local
//! [`Model`] and carries this node's requests to the peer. Messages travel as chunks
//! ([`deepnode_wire::ChunkHeader`]) that the writer interleaves round-robin, so a large backward
//! does not hold up a small forward.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use deepnode_wire::{
    CHUNK_HEADER_LEN, ChunkHeader, DType, FIRST, HEADER_LEN, Header, Kind, LAST, Limits,
    MAX_CHUNK_DATA, Modality, REPLY, Shape, Status, WireError,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};
use tokio::time::Instant;

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
    /// Requests refused with a status (or whose model failed), forwards and backwards alike.
    pub refused: AtomicU64,
    /// Connections and sessions closed at once because a session limit was reached (or, with
    /// [`ServeConfig::admit_at_handshake`], the peer was not admitted).
    pub sessions_refused: AtomicU64,
    /// Errors of the listening socket's `accept` (e.g. out of file descriptors).
    pub accept_errors: AtomicU64,
}

/// What a node serves and how much at once. Every limit holds against hostile peers: past it
/// a request is refused, a message dropped or a session closed, never an unbounded wait.
#[derive(Clone)]
pub struct ServeConfig {
    /// Shapes and sizes accepted, requests and responses alike.
    pub limits: Limits,
    /// Requests served at once for one account, over all its sessions; past it, Busy. A
    /// request holds its permit until its reply is written.
    pub per_peer: usize,
    /// Requests served at once in total (shared by every connection through
    /// [`ServeConfig::global`]); past it, Busy.
    pub global: Arc<Semaphore>,
    /// Partly received messages one session may have open at once; past it, the connection is
    /// closed (a peer that opens messages and never finishes them).
    pub max_open_messages: usize,
    /// Bytes of partly received requests one session may hold (each counted at its declared
    /// size when its first chunk arrives); a request past it is refused (Busy) and dropped.
    /// Keep it at least `limits.max_payload`, or the largest requests are always refused.
    pub max_open_bytes: usize,
    /// Bytes of partly received requests over all sessions of a node; past it, as above.
    pub max_open_bytes_total: usize,
    /// A message still unfinished this long after its first chunk is dropped (a forward is
    /// answered DeadlineExpired).
    pub message_timeout: Duration,
    /// Accepted connections (in the handshake or in session) at once; past it, a new
    /// connection is closed at once.
    pub max_sessions: usize,
    /// Accepted connections at once from one IP address; past it, as above. Nodes that share
    /// an address (a devnet on loopback) each hold one, so it bounds such a network's size.
    pub max_sessions_per_address: usize,
    /// Accepted sessions at once of one account; past it, the new session is closed after its
    /// handshake.
    pub max_sessions_per_account: usize,
    /// Whether an accepted session of an account that [`Admission`] refuses is closed after its
    /// handshake (requests are checked anyway, as admission may change).
    pub admit_at_handshake: bool,
    /// A session that received nothing this long while none of this node's requests on it
    /// wait is closed.
    pub idle_timeout: Duration,
    /// Messages queued for one session's writer (replies, refusals and this node's
    /// requests); a full queue makes the reader wait, up to [`ServeConfig::send_timeout`].
    pub max_queued: usize,
    /// A reply that cannot be queued, or a write that makes no progress, for this long closes
    /// the session (a peer that never reads).
    pub send_timeout: Duration,
    /// Requests run on the model at once, each on a blocking thread; the others wait for one,
    /// holding their permits, and one whose deadline passes meanwhile is answered
    /// DeadlineExpired. More than the machine's cores only adds threads (and the allocator's
    /// per-thread memory) that take turns on the same cores.
    pub model_threads: usize,
    /// Counts served and refused requests (shared by every connection of a node).
    pub counters: Arc<Counters>,
}

/// A serving limit that cannot work ([`ServeConfig::check`]): the field and what it must be.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field} {rule}")]
pub struct LimitError {
    /// The [`ServeConfig`] field, e.g. `max_sessions`.
    pub field: &'static str,
    /// What it must be, e.g. `must be at least 1`.
    pub rule: String,
}

impl ServeConfig {
    /// Requests served at once per account by default (the CLI's).
    pub const DEFAULT_PER_PEER: usize = 8;
    /// Requests served at once in total by default (the CLI's).
    pub const DEFAULT_TOTAL: usize = 64;

    /// Checks that every limit can work: counts and timeouts above zero, a session's open
    /// bytes at least the largest payload (else the largest requests are always refused) and
    /// the node's at least a session's.
    pub fn check(&self) -> Result<(), LimitError> {
        let fail = |field, rule: &str| {
            Err(LimitError {
                field,
                rule: rule.to_owned(),
            })
        };
        let counts = [
            ("per_peer", self.per_peer),
            ("global", self.global.available_permits()),
            ("max_open_messages", self.max_open_messages),
            ("max_sessions", self.max_sessions),
            ("max_sessions_per_address", self.max_sessions_per_address),
            ("max_sessions_per_account", self.max_sessions_per_account),
            ("max_queued", self.max_queued),
            ("model_threads", self.model_threads),
        ];
        for (field, n) in counts {
            if n == 0 {
                return fail(field, "must be at least 1");
            }
        }
        let times = [
            ("message_timeout", self.message_timeout),
            ("idle_timeout", self.idle_timeout),
            ("send_timeout", self.send_timeout),
        ];
        for (field, t) in times {
            if t.is_zero() {
                return fail(field, "must be more than 0");
            }
        }
        let payload = usize::try_from(self.limits.max_payload).unwrap_or(usize::MAX);
        if self.max_open_bytes < payload {
            let rule = format!("must be at least the largest payload, {payload} bytes");
            return fail("max_open_bytes", &rule);
        }
        if self.max_open_bytes_total < self.max_open_bytes {
            return fail("max_open_bytes_total", "must be at least max_open_bytes");
        }
        Ok(())
    }

    /// `limits`, at most `per_peer` requests at once per account and `total` in all, and the
    /// defaults of the other limits: 64 open messages per session, open bytes up to 64 MiB
    /// per session and 256 MiB in all, unfinished messages dropped after 30 s, 512 accepted
    /// connections, 64 per address, 4 sessions per account, admission at the handshake, idle
    /// sessions closed after 120 s, 64 queued messages per session, a 10 s send timeout, as
    /// many requests on the model at once as the machine has cores; fresh counters.
    pub fn new(limits: Limits, per_peer: usize, total: usize) -> ServeConfig {
        ServeConfig {
            limits,
            per_peer,
            global: Arc::new(Semaphore::new(total)),
            max_open_messages: 64,
            max_open_bytes: 64 << 20,
            max_open_bytes_total: 256 << 20,
            message_timeout: Duration::from_secs(30),
            max_sessions: 512,
            max_sessions_per_address: 64,
            max_sessions_per_account: 4,
            admit_at_handshake: true,
            idle_timeout: Duration::from_secs(120),
            max_queued: 64,
            send_timeout: Duration::from_secs(10),
            model_threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            counters: Arc::default(),
        }
    }
}

/// A node's state behind its session and byte limits, shared by all its sessions.
pub(crate) struct Shared {
    table: Mutex<Table>,
    /// Bytes of unfinished messages, over all sessions.
    open_bytes: Arc<Semaphore>,
    open_bytes_max: usize,
    /// Turns on the model ([`ServeConfig::model_threads`]).
    model: Arc<Semaphore>,
}

#[derive(Default)]
struct Table {
    /// Accepted connections, in the handshake or in session.
    accepted: usize,
    by_address: HashMap<IpAddr, usize>,
    accounts: HashMap<AccountKey, Account>,
    /// Sessions running, accepted and dialed.
    sessions: usize,
}

struct Account {
    /// Accepted sessions of the account.
    accepted: usize,
    /// Sessions of the account, accepted and dialed.
    sessions: usize,
    /// The account's request permits, shared by its sessions.
    permits: Arc<Semaphore>,
}

impl Shared {
    pub(crate) fn new(config: &ServeConfig) -> Arc<Shared> {
        let max = config.max_open_bytes_total.min(Semaphore::MAX_PERMITS);
        Arc::new(Shared {
            table: Mutex::new(Table::default()),
            open_bytes: Arc::new(Semaphore::new(max)),
            open_bytes_max: max,
            model: Arc::new(Semaphore::new(config.model_threads.max(1))),
        })
    }

    /// A slot for a connection accepted from `ip`, or `None` when the node or the address is
    /// at its limit.
    pub(crate) fn address_slot(
        self: &Arc<Self>,
        ip: IpAddr,
        config: &ServeConfig,
    ) -> Option<AddressSlot> {
        let mut t = self.table.lock().ok()?;
        let n = t.by_address.get(&ip).copied().unwrap_or(0);
        if t.accepted >= config.max_sessions || n >= config.max_sessions_per_address {
            return None;
        }
        t.accepted += 1;
        t.by_address.insert(ip, n + 1);
        Some(AddressSlot {
            shared: Arc::clone(self),
            ip,
        })
    }

    /// Registers a session of `peer` (`accepted`: the peer dialed); `None` when the account
    /// is at its limit of accepted sessions.
    pub(crate) fn account_slot(
        self: &Arc<Self>,
        peer: AccountKey,
        accepted: bool,
        config: &ServeConfig,
    ) -> Option<AccountSlot> {
        let mut t = self.table.lock().ok()?;
        let a = t.accounts.entry(peer).or_insert_with(|| Account {
            accepted: 0,
            sessions: 0,
            permits: Arc::new(Semaphore::new(config.per_peer)),
        });
        if accepted && a.accepted >= config.max_sessions_per_account {
            return None;
        }
        a.accepted += usize::from(accepted);
        a.sessions += 1;
        let permits = Arc::clone(&a.permits);
        t.sessions += 1;
        Some(AccountSlot {
            shared: Arc::clone(self),
            peer,
            accepted,
            permits,
        })
    }

    /// Sessions running now, accepted and dialed.
    pub(crate) fn sessions(&self) -> usize {
        self.table.lock().map_or(0, |t| t.sessions)
    }

    /// Bytes of unfinished messages held now.
    pub(crate) fn open_bytes(&self) -> usize {
        self.open_bytes_max - self.open_bytes.available_permits()
    }
}

/// An accepted connection's place in the node's limits, given back when dropped.
pub(crate) struct AddressSlot {
    shared: Arc<Shared>,
    ip: IpAddr,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        if let Ok(mut t) = self.shared.table.lock() {
            t.accepted = t.accepted.saturating_sub(1);
            if let Some(n) = t.by_address.get_mut(&self.ip) {
                *n -= 1;
                if *n == 0 {
                    t.by_address.remove(&self.ip);
                }
            }
        }
    }
}

/// A session's place in its account's limits, given back when dropped.
pub(crate) struct AccountSlot {
    shared: Arc<Shared>,
    peer: AccountKey,
    accepted: bool,
    permits: Arc<Semaphore>,
}

impl Drop for AccountSlot {
    fn drop(&mut self) {
        if let Ok(mut t) = self.shared.table.lock() {
            t.sessions = t.sessions.saturating_sub(1);
            if let Some(a) = t.accounts.get_mut(&self.peer) {
                a.sessions = a.sessions.saturating_sub(1);
                a.accepted = a.accepted.saturating_sub(usize::from(self.accepted));
            }
            // An account is forgotten once it has no session and no request in flight (each
            // holds its permits); until then a new session shares the same permits.
            let mine = &self.permits;
            t.accounts.retain(|_, a| {
                a.sessions > 0
                    || Arc::strong_count(&a.permits)
                        > 1 + usize::from(Arc::ptr_eq(&a.permits, mine))
            });
        }
    }
}

/// What a session holds in its node's limits.
pub(crate) struct Slots {
    /// Set for an accepted session.
    pub(crate) _address: Option<AddressSlot>,
    pub(crate) account: AccountSlot,
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

/// Requests awaiting a reply, each with the dtype and shape its response must have (none
/// for raw requests); `None` once the session is over, so new requests fail at once.
type Pending = Arc<Mutex<Option<HashMap<u64, Waiting>>>>;

/// A request awaiting its reply.
struct Waiting {
    tx: oneshot::Sender<Result<Tensor, NodeError>>,
    expect: Option<(DType, Shape)>,
}

/// A message waiting to be sent: the concatenation of `parts` (a header, inputs, gradient),
/// moved in whole so that no byte is copied before it is sealed.
struct Outgoing {
    id: u64,
    reply: bool,
    parts: [Vec<u8>; 3],
    /// The request permits of a reply, given back once it is written (or dropped).
    hold: Option<Permits>,
}

/// A served request's permits: its account's and the node's.
type Permits = (OwnedSemaphorePermit, OwnedSemaphorePermit);

impl Outgoing {
    fn new(id: u64, reply: bool, header: &Header, body: [Vec<u8>; 2]) -> Outgoing {
        let mut h = [0u8; HEADER_LEN];
        header.encode(&mut h);
        let [inputs, grad] = body;
        Outgoing {
            id,
            reply,
            parts: [h.to_vec(), inputs, grad],
            hold: None,
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
    /// Starts serving `session` with `model` under `admission` and `config`, holding `slots`
    /// in the node's limits (`shared`) until it ends; the returned handle sends this node's
    /// requests over the same session. The session ends when the peer closes it, breaks the
    /// protocol, stays idle, stops reading, `closing` turns true (the node shuts down), or
    /// every handle is dropped.
    pub(crate) fn start(
        session: Session,
        model: Arc<dyn Model>,
        admission: Arc<dyn Admission>,
        (config, shared, slots): (ServeConfig, Arc<Shared>, Slots),
        closing: watch::Receiver<bool>,
    ) -> Arc<Connection> {
        let (tx, rx) = mpsc::channel(config.max_queued.max(1));
        let conn = Arc::new(Connection {
            peer: session.peer,
            out: tx.clone(),
            pending: Arc::new(Mutex::new(Some(HashMap::new()))),
            next_id: AtomicU64::new(1),
            dim: model.dim(),
            limits: config.limits,
        });
        let (ended_tx, ended) = watch::channel(false);
        tokio::spawn(write_loop(
            session.writer,
            rx,
            [closing.clone(), ended],
            config.send_timeout,
        ));
        let reader = Reader {
            peer: session.peer,
            out: tx,
            pending: Arc::clone(&conn.pending),
            model,
            admission,
            per_peer: Arc::clone(&slots.account.permits),
            session_bytes: Arc::new(Semaphore::new(
                config.max_open_bytes.min(Semaphore::MAX_PERMITS),
            )),
            shared,
            config,
            open: HashMap::new(),
            _slots: slots,
        };
        let pending = Arc::clone(&conn.pending);
        tokio::spawn(async move {
            let _ = reader.run(session.reader, closing).await;
            // The session is over: every waiting request fails now, not at its deadline, and
            // the writer stops.
            if let Ok(mut p) = pending.lock() {
                *p = None;
            }
            ended_tx.send_replace(true);
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

/// Sends queued messages as chunks, one chunk per message in turn, sealing a few chunks
/// before each write. Stops when either of `stop` turns true, every sender is gone, or a write
/// makes no progress for `send_timeout`.
async fn write_loop(
    mut writer: Box<dyn FrameWrite>,
    mut rx: mpsc::Receiver<Outgoing>,
    stop: [watch::Receiver<bool>; 2],
    send_timeout: Duration,
) {
    let [mut closing, mut ended] = stop;
    let mut active: VecDeque<(Outgoing, usize)> = VecDeque::new();
    loop {
        if *closing.borrow() || *ended.borrow() {
            return;
        }
        if active.is_empty() && writer.buffered() == 0 {
            tokio::select! {
                m = rx.recv() => match m {
                    Some(m) => active.push_back((m, 0)),
                    None => return,
                },
                _ = closing.wait_for(|c| *c) => return,
                _ = ended.wait_for(|c| *c) => return,
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
                    r = tokio::time::timeout(send_timeout, writer.send_in_place(frame)) => {
                        if !matches!(r, Ok(Ok(()))) {
                            return;
                        }
                    },
                    _ = closing.wait_for(|c| *c) => return,
                    _ = ended.wait_for(|c| *c) => return,
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
                r = tokio::time::timeout(send_timeout, writer.flush()) => {
                    if !matches!(r, Ok(Ok(()))) {
                        return;
                    }
                },
                _ = closing.wait_for(|c| *c) => return,
                _ = ended.wait_for(|c| *c) => return,
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

struct Reader {
    peer: AccountKey,
    out: mpsc::Sender<Outgoing>,
    pending: Pending,
    model: Arc<dyn Model>,
    admission: Arc<dyn Admission>,
    /// The account's request permits (shared by its sessions).
    per_peer: Arc<Semaphore>,
    /// Bytes of this session's unfinished requests.
    session_bytes: Arc<Semaphore>,
    shared: Arc<Shared>,
    config: ServeConfig,
    open: HashMap<(u64, bool), Open>,
    /// Dropped last: the session's place in the node's limits.
    _slots: Slots,
}

impl Reader {
    async fn run(
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

    /// Reads a message's header and decides, before any body byte, whether to keep it.
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
                    let status = if matches!(e, WireError::Version(_)) {
                        Status::BadVersion
                    } else {
                        Status::Malformed
                    };
                    self.config.counters.refused.fetch_add(1, Ordering::Relaxed);
                    self.reply_error(id, Modality::Tensor, status).await?;
                }
                return Ok(Open::discarded());
            }
        };
        let mut bytes = None;
        if reply {
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
                    } else if self.config.limits.check(&header).is_err() {
                        Err(NodeError::Protocol("invalid response header".into()))
                    } else {
                        Ok(())
                    })
                }
                (Some(_), _) => Some(Err(NodeError::Protocol("invalid response header".into()))),
            };
            match refusal {
                Some(Ok(())) => {}
                Some(Err(e)) => {
                    self.resolve(id, Err(e));
                    return Ok(Open::discarded());
                }
                None => return Ok(Open::discarded()),
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
                self.refused(header, status).await?;
                return Ok(Open::discarded());
            }
            // The declared bytes, reserved before they arrive (the buffers below).
            let n = u32::try_from(header.payload_len).unwrap_or(u32::MAX);
            let reserved = (
                Arc::clone(&self.session_bytes).try_acquire_many_owned(n),
                Arc::clone(&self.shared.open_bytes).try_acquire_many_owned(n),
            );
            let (Ok(a), Ok(b)) = reserved else {
                self.refused(header, Status::Busy).await?;
                return Ok(Open::discarded());
            };
            bytes = Some((a, b));
        }
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

    async fn complete(
        &mut self,
        reply: bool,
        h: Header,
        body: Vec<u8>,
        grad: Vec<u8>,
    ) -> Result<(), NodeError> {
        if reply {
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
            return Ok(());
        }
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

    fn resolve(&self, id: u64, result: Result<Tensor, NodeError>) {
        let waiting = match self.pending.lock().as_deref_mut() {
            Ok(Some(p)) => p.remove(&id),
            _ => None,
        };
        if let Some(w) = waiting {
            let _ = w.tx.send(result);
        }
    }

    /// Counts request `h` refused with `status` and answers it when it is a forward.
    async fn refused(&self, h: Header, status: Status) -> Result<(), NodeError> {
        self.config.counters.refused.fetch_add(1, Ordering::Relaxed);
        if h.kind == Kind::Forward {
            self.reply_error(h.request_id, h.modality, status).await?;
        }
        Ok(())
    }

    /// Queues an Error reply; a queue that stays full past the send timeout ends the session.
    async fn reply_error(
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
