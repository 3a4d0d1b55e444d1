#![doc = include_str!("../README.md")]

pub mod access;
mod conn;
mod error;
pub mod life;
mod model;
mod query;
mod tensor;
mod trainer;
pub mod transport;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use conn::{Admission, AdmitAll, Connection, Counters, LimitError, ServeConfig, now_ms};
use conn::{Shared, Slots};
pub use error::NodeError;
pub use model::{Constant, EchoBias, Model, Noise, RandomProjection};
pub use query::{Answer, Backoff, RowError, fan_out, weights_row};
pub use tensor::Tensor;
pub use trainer::{Ask, Progress, Trainer};
pub use transport::{AccountKey, NoiseTcp, Transport};

/// A node's serving side and its dialer: one transport, one model, one admission policy.
pub struct Node {
    transport: Arc<dyn Transport>,
    model: Arc<dyn Model>,
    admission: Arc<dyn Admission>,
    config: ServeConfig,
    shared: Arc<Shared>,
    closing: watch::Sender<bool>,
}

/// The first wait after a failed `accept`; it doubles up to [`ACCEPT_BACKOFF_MAX`].
const ACCEPT_BACKOFF: Duration = Duration::from_millis(5);
/// The longest wait after failed `accept`s.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

impl Node {
    /// A node serving `model` over `transport` to the callers `admission` lets in.
    pub fn new(
        transport: Arc<dyn Transport>,
        model: Arc<dyn Model>,
        admission: Arc<dyn Admission>,
        config: ServeConfig,
    ) -> Node {
        Node {
            transport,
            model,
            admission,
            shared: Shared::new(&config),
            config,
            closing: watch::Sender::new(false),
        }
    }

    /// Stops accepting peers and closes every session of this node, accepted or dialed.
    pub fn shutdown(&self) {
        self.closing.send_replace(true);
    }

    /// Sessions running now, accepted and dialed.
    pub fn sessions(&self) -> usize {
        self.shared.sessions()
    }

    /// Bytes of unfinished requests held now, over all sessions.
    pub fn open_bytes(&self) -> usize {
        self.shared.open_bytes()
    }

    /// Accepts peers on `addr` (port 0 picks one) in a background task; returns the bound
    /// address and the task (see [`Node::listen_on`]).
    pub async fn listen(
        self: &Arc<Self>,
        addr: SocketAddr,
    ) -> Result<(SocketAddr, JoinHandle<std::io::Result<()>>), NodeError> {
        let listener = TcpListener::bind(addr).await?;
        self.accept_on(listener)
    }

    /// Accepts peers on `listener`, a socket already bound and listening (handed over by a
    /// service manager, or bound before privileges were dropped), in a background task;
    /// returns its address and the task. Call within a tokio runtime.
    ///
    /// A peer whose handshake fails, or that a session limit refuses, is dropped; others are
    /// unaffected. A failed `accept` (out of file descriptors or memory, a connection reset
    /// before it was taken) is logged and retried after a growing wait. The task ends with
    /// `Ok(())` when the node shuts down, and with the error when the socket no longer
    /// listens (`EINVAL`: it was shut down), which no retry can mend.
    pub fn listen_on(
        self: &Arc<Self>,
        listener: std::net::TcpListener,
    ) -> Result<(SocketAddr, JoinHandle<std::io::Result<()>>), NodeError> {
        listener.set_nonblocking(true)?;
        self.accept_on(TcpListener::from_std(listener)?)
    }

    fn accept_on(
        self: &Arc<Self>,
        listener: TcpListener,
    ) -> Result<(SocketAddr, JoinHandle<std::io::Result<()>>), NodeError> {
        let local = listener.local_addr()?;
        let node = Arc::clone(self);
        let mut closing = self.closing.subscribe();
        let task = tokio::spawn(async move {
            let mut wait = Duration::ZERO;
            loop {
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    _ = closing.wait_for(|c| *c) => return Ok(()),
                };
                let (stream, from) = match accepted {
                    Ok(a) => {
                        if !wait.is_zero() {
                            eprintln!("node {local}: accepting again");
                            wait = Duration::ZERO;
                        }
                        a
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
                        eprintln!("node {local}: the socket no longer listens ({e})");
                        return Err(e);
                    }
                    Err(e) => {
                        node.config
                            .counters
                            .accept_errors
                            .fetch_add(1, Ordering::Relaxed);
                        if wait.is_zero() {
                            eprintln!("node {local}: accept failed ({e}); retrying");
                        }
                        wait = (wait * 2).clamp(ACCEPT_BACKOFF, ACCEPT_BACKOFF_MAX);
                        tokio::select! {
                            _ = tokio::time::sleep(wait) => {}
                            _ = closing.wait_for(|c| *c) => return Ok(()),
                        }
                        continue;
                    }
                };
                let Some(slot) = node.shared.address_slot(from.ip(), &node.config) else {
                    node.refused_session();
                    continue;
                };
                let node = Arc::clone(&node);
                tokio::spawn(async move {
                    let Ok(session) = node.transport.accept(stream).await else {
                        return;
                    };
                    if node.config.admit_at_handshake && !node.admission.admit(&session.peer) {
                        node.refused_session();
                        return;
                    }
                    let Some(account) = node.shared.account_slot(session.peer, true, &node.config)
                    else {
                        node.refused_session();
                        return;
                    };
                    node.start(
                        session,
                        Slots {
                            _address: Some(slot),
                            account,
                        },
                    );
                });
            }
        });
        Ok((local, task))
    }

    fn refused_session(&self) {
        self.config
            .counters
            .sessions_refused
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Dials the peer at `addr`, which must prove it holds `account`.
    pub async fn dial(
        &self,
        addr: SocketAddr,
        account: AccountKey,
    ) -> Result<Arc<Connection>, NodeError> {
        let session = self.transport.dial(addr, account).await?;
        let account = self
            .shared
            .account_slot(session.peer, false, &self.config)
            .ok_or(NodeError::Closed)?;
        Ok(self.start(
            session,
            Slots {
                _address: None,
                account,
            },
        ))
    }

    fn start(&self, session: transport::Session, slots: Slots) -> Arc<Connection> {
        Connection::start(
            session,
            Arc::clone(&self.model),
            Arc::clone(&self.admission),
            (self.config.clone(), Arc::clone(&self.shared), slots),
            self.closing.subscribe(),
        )
    }
}
