//! What a node serves and how much at once: the admission seam, the serving limits and the
//! counters of served and refused requests.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use deepnode_wire::Limits;
use tokio::sync::Semaphore;

use crate::transport::AccountKey;

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
