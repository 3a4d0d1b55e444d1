#![doc = include_str!("../README.md")]

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

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use conn::{Admission, AdmitAll, Connection, Counters, ServeConfig, now_ms};
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
    closing: watch::Sender<bool>,
}

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
            config,
            closing: watch::Sender::new(false),
        }
    }

    /// Stops accepting peers and closes every session of this node, accepted or dialed.
    pub fn shutdown(&self) {
        self.closing.send_replace(true);
    }

    /// Accepts peers on `addr` (port 0 picks one) in a background task; returns the bound
    /// address and the task. A peer whose handshake fails is dropped; others are unaffected.
    pub async fn listen(
        self: &Arc<Self>,
        addr: SocketAddr,
    ) -> Result<(SocketAddr, JoinHandle<()>), NodeError> {
        let listener = TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let node = Arc::clone(self);
        let mut closing = self.closing.subscribe();
        let task = tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    _ = closing.wait_for(|c| *c) => return,
                };
                let Ok((stream, _)) = accepted else { return };
                let node = Arc::clone(&node);
                tokio::spawn(async move {
                    if let Ok(session) = node.transport.accept(stream).await {
                        node.start(session);
                    }
                });
            }
        });
        Ok((local, task))
    }

    /// Dials the peer at `addr`, which must prove it holds `account`.
    pub async fn dial(
        &self,
        addr: SocketAddr,
        account: AccountKey,
    ) -> Result<Arc<Connection>, NodeError> {
        let session = self.transport.dial(addr, account).await?;
        Ok(self.start(session))
    }

    fn start(&self, session: transport::Session) -> Arc<Connection> {
        Connection::start(
            session,
            Arc::clone(&self.model),
            Arc::clone(&self.admission),
            self.config.clone(),
            self.closing.subscribe(),
        )
    }
}
