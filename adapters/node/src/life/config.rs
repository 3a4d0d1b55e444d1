//! How a node runs: where it listens, what it queries, where its weights row comes from.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use deepnode_wire::Modality;

use crate::ServeConfig;
#[cfg(feature = "adversarial")]
use crate::transport::AccountKey;

/// Where a node's weights row comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum Scoring {
    /// Each useful answer (finite, not all zero) counts 1: the default of a node that does not
    /// train.
    Usefulness,
    /// The trainer's scores ([`Trainer::take_scores`](crate::Trainer::take_scores), e.g. Fisher
    /// scores).
    Trainer,
    /// Score 1 for these accounts' neurons and nothing for anybody else (a cabal's row; an
    /// adversary of the devnet and the tests: feature `adversarial`).
    #[cfg(feature = "adversarial")]
    Favor(Vec<AccountKey>),
    /// Each neuron's consensus `C_j` as of the last metagraph (a weight copier; feature
    /// `adversarial`).
    #[cfg(feature = "adversarial")]
    CopyConsensus,
    /// No row at all (a node that does not validate).
    Nothing,
}

/// Where a node accepts peers.
#[derive(Clone, Debug)]
pub enum Listen {
    /// Bind this address (port 0 picks one).
    Addr(SocketAddr),
    /// A socket already bound and listening (handed over by a service manager, or bound
    /// before privileges were dropped); the node accepts on a duplicate of it.
    Socket(Arc<std::net::TcpListener>),
}

impl From<SocketAddr> for Listen {
    fn from(addr: SocketAddr) -> Listen {
        Listen::Addr(addr)
    }
}

/// How a node runs.
#[derive(Clone)]
pub struct RunConfig {
    /// Where to accept peers; the bound address is served on the ledger.
    pub listen: Listen,
    /// The modality of this node's queries, served on the ledger with its endpoint; it queries
    /// only peers that serve the same.
    pub modality: Modality,
    /// Stake to hold on this node's neuron (added from the wallet's balance when below).
    pub stake: u64,
    /// Callers whose neurons hold less stake are refused.
    pub stake_floor: u64,
    /// Peers per query.
    pub k: usize,
    /// Batch `[B, S]` of each query (TEXT: random bytes; TENSOR: random features of width 16).
    pub batch: (u32, u32),
    /// Time between queries.
    pub query_every: Duration,
    /// Deadline of each query and of each dial.
    pub timeout: Duration,
    /// Limits and concurrency of serving.
    pub serve: ServeConfig,
    /// Seed of the query inputs.
    pub seed: u64,
    /// Where the weights row comes from.
    pub scoring: Scoring,
}
