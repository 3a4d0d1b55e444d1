//! One session with a peer, both ways: it serves the peer's requests with the local
//! [`Model`] and carries this node's requests to the peer. Messages travel as chunks
//! ([`deepnode_wire::ChunkHeader`]) that the writer interleaves round-robin, so a large backward
//! does not hold up a small forward.
//!
//! The session's jobs, one per file: the serving limits and counters (`config`), the node's
//! table of sessions (`slots`), the writer (`writer`), the reader that gathers chunks into
//! messages (`reader`), serving the peer's requests (`serve`) and this node's requests and
//! their replies (`request`).

mod config;
mod reader;
mod request;
mod serve;
mod slots;
mod writer;

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use deepnode_wire::{DType, Limits, Shape};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};

pub use config::{Admission, AdmitAll, Counters, LimitError, ServeConfig};
use reader::Reader;
pub(crate) use slots::{Shared, Slots};
use writer::{Outgoing, write_loop};

use crate::transport::{AccountKey, Session};
use crate::{Model, NodeError, Tensor};

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
}
