//! The seam between a node's life and a model that learns from its peers: [`Trainer`]. The
//! training adapter implements it (its gating layer picks the peers, its Fisher scores become
//! the weights row); the node only carries tensors.

use deepnode_consensus::Uid;

use crate::{NodeError, Tensor};

/// What a training step asks of the network: one batch of inputs, sent to these peers.
#[derive(Clone, Debug, PartialEq)]
pub struct Ask {
    /// The batch as it travels (TEXT: i64 bytes `[B, S]`).
    pub inputs: Tensor,
    /// The peers the gate chose, by uid (the node's own uid is answered by its own model).
    pub uids: Vec<Uid>,
}

/// A learner's progress, for status lines and logs.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Progress {
    /// Training steps taken.
    pub steps: u64,
    /// The last training batch's loss (nats per token).
    pub loss: Option<f64>,
    /// The last validation losses, by name (e.g. `peers`, `student`, `alone`).
    pub valid: Vec<(String, f64)>,
}

/// A model that trains on its peers' answers. The node calls [`Trainer::ask`], sends the
/// inputs to the chosen peers (under its deadline; failed peers answer `None`), hands the
/// answers to [`Trainer::learn`] and sends each returned gradient `dL/df_j(x)` back to peer
/// `j` as a Backward. Calls are blocking (the node runs them off its network threads).
pub trait Trainer: Send + 'static {
    /// The next batch and the peers its gate asks; `me` is this node's uid.
    fn ask(&mut self, me: Uid) -> Result<Ask, NodeError>;
    /// Trains on the answers to the last [`Trainer::ask`] (`None`: no usable answer; the
    /// trainer's stand-in fills the slot) and returns `(uid, dL/df_j(x))` for the peers that
    /// answered.
    fn learn(
        &mut self,
        answers: Vec<(Uid, Option<Tensor>)>,
    ) -> Result<Vec<(Uid, Tensor)>, NodeError>;
    /// Each peer's score since the last call (e.g. its Fisher score), then starts afresh.
    fn take_scores(&mut self) -> Vec<(Uid, f64)>;
    /// Steps and losses so far.
    fn progress(&self) -> Progress;
}
