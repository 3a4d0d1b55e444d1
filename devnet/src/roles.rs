//! The role table: what a node of each role serves, where its weights row comes from and how
//! many peers it queries. [`node_config`] is the one place a scenario member becomes the typed
//! configuration its node process runs ([`NodeConfig`]).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::scenario::{Member, Scenario};

/// What a node does on the devnet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Trains on its own text domain through its gating layer; weights from Fisher scores.
    Learner,
    /// A learner that leaves at its group's `leave` epoch.
    Offline,
    /// Serves random tensors; sets no weights.
    Noise,
    /// Serves zeros; sets no weights.
    Lazy,
    /// Serves noise; weights only the other members of its group.
    Cabal,
    /// Serves noise; copies the last epoch's consensus as its weights.
    Copier,
    /// Serves a fixed random projection (pure Rust); weights each useful answer 1.
    Projection,
    /// Serves a bias moved by the gradients peers send (pure Rust); weights each useful
    /// answer 1.
    Echo,
}

impl Role {
    /// The role's name in tables and files.
    pub fn name(self) -> &'static str {
        match self {
            Role::Learner => "learner",
            Role::Offline => "offline",
            Role::Noise => "noise",
            Role::Lazy => "lazy",
            Role::Cabal => "cabal",
            Role::Copier => "copier",
            Role::Projection => "projection",
            Role::Echo => "echo",
        }
    }

    /// Whether nodes of this role train (and need libtorch).
    pub fn trains(self) -> bool {
        matches!(self, Role::Learner | Role::Offline)
    }

    /// Whether this role is one of the adversaries the market must not pay (noise, lazy,
    /// cabal, copier): their node processes need a `deepnode` built with the feature
    /// `adversarial`.
    pub fn adversarial(self) -> bool {
        matches!(self, Role::Noise | Role::Lazy | Role::Cabal | Role::Copier)
    }
}

/// The model a devnet node serves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum Served {
    /// Fresh random tensors on every call (`deepnode_node::Noise`, scale 1).
    Noise,
    /// Zeros (`deepnode_node::Constant`).
    Zeros,
    /// A fixed random projection (`deepnode_node::RandomProjection`).
    Projection,
    /// A bias moved by peers' gradients (`deepnode_node::EchoBias`).
    Echo,
    /// A learner's trained TEXT encoder (libtorch): a specialist of `domain`, also trained a
    /// little and evaluated on `domains` (every learner's domain), its gate choosing among
    /// `slots` uids.
    Learner {
        /// Its own text domain.
        domain: String,
        /// The domains of the network's learners, sorted, each once.
        domains: Vec<String>,
        /// Uids the gate chooses among (the number of nodes).
        slots: usize,
    },
}

/// Where a devnet node's weights row comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum Row {
    /// The trainer's Fisher scores.
    Trainer,
    /// Each useful answer counts 1.
    Usefulness,
    /// No row.
    None,
    /// Score 1 for these accounts' neurons (ed25519 public keys) and nothing for anybody else.
    Favor(Vec<[u8; 32]>),
    /// Each neuron's consensus of the last epoch.
    Consensus,
}

/// One devnet node as its process runs it. The devnet writes it as JSON and starts
/// `deepnode devnet node FILE`, which reads it back into this type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// The node's key file.
    pub wallet: PathBuf,
    /// The ledger's RPC URL.
    pub rpc: String,
    /// Where it accepts peers (port 0: any); the bound address is its endpoint.
    pub listen: std::net::SocketAddr,
    /// Where the node appends its status as JSON lines ([`deepnode_node::life::Status`]).
    pub metrics: PathBuf,
    /// Stake it holds.
    pub stake: u64,
    /// Milliseconds between its queries.
    pub query_ms: u64,
    /// The network's representation width `D`.
    pub dim: u32,
    /// Seed of its model and query inputs.
    pub seed: u64,
    /// Peers per query.
    pub k: usize,
    /// What it serves.
    pub served: Served,
    /// Where its weights row comes from.
    pub row: Row,
}

/// The role table: member `m` of `sc` as a node on the ledger at `rpc`, listening on `listen`,
/// with its key file,
/// its metrics file and the accounts of every member (in scenario order; a cabal's row names
/// the other members of its group). Learners query the gate's `k` peers; the others `2k`.
pub fn node_config(
    sc: &Scenario,
    m: &Member,
    rpc: &str,
    listen: std::net::SocketAddr,
    wallet: PathBuf,
    metrics: PathBuf,
    accounts: &[[u8; 32]],
) -> NodeConfig {
    let learner = || Served::Learner {
        domain: m.domain.clone().unwrap_or_default(),
        domains: sc.domains(),
        slots: sc.nodes(),
    };
    let (served, row) = match m.role {
        Role::Learner | Role::Offline => (learner(), Row::Trainer),
        Role::Noise => (Served::Noise, Row::None),
        Role::Lazy => (Served::Zeros, Row::None),
        Role::Cabal => (
            Served::Noise,
            Row::Favor(
                m.group
                    .iter()
                    .filter_map(|&j| accounts.get(j).copied())
                    .collect(),
            ),
        ),
        Role::Copier => (Served::Noise, Row::Consensus),
        Role::Projection => (Served::Projection, Row::Usefulness),
        Role::Echo => (Served::Echo, Row::Usefulness),
    };
    NodeConfig {
        wallet,
        rpc: rpc.to_owned(),
        listen,
        metrics,
        stake: sc.stake,
        query_ms: sc.query_ms,
        dim: sc.dim,
        seed: m.seed,
        k: if m.role.trains() { sc.k } else { 2 * sc.k },
        served,
        row,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::DEFAULT;

    #[test]
    fn the_default_scenario_maps_each_role_to_its_model_and_row() {
        let sc = Scenario::parse(DEFAULT).unwrap();
        let members = sc.members();
        let accounts: Vec<[u8; 32]> = (0..members.len()).map(|i| [i as u8; 32]).collect();
        let configs: Vec<NodeConfig> = members
            .iter()
            .map(|m| {
                node_config(
                    &sc,
                    m,
                    "http://127.0.0.1:1",
                    std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
                    PathBuf::from(format!("{}.key", m.name)),
                    PathBuf::from(format!("{}.jsonl", m.name)),
                    &accounts,
                )
            })
            .collect();
        for (m, c) in members.iter().zip(&configs) {
            assert_eq!(c.seed, m.seed);
            assert_eq!(c.stake, sc.stake);
            match m.role {
                Role::Learner | Role::Offline => {
                    assert_eq!(c.k, sc.k);
                    assert_eq!(c.row, Row::Trainer);
                    let Served::Learner {
                        domain,
                        domains,
                        slots,
                    } = &c.served
                    else {
                        panic!("{c:?}");
                    };
                    assert_eq!(Some(domain), m.domain.as_ref());
                    assert_eq!(domains, &["c", "fortunes", "python"]);
                    assert_eq!(*slots, 8);
                }
                Role::Noise => assert_eq!((&c.served, &c.row), (&Served::Noise, &Row::None)),
                Role::Lazy => assert_eq!((&c.served, &c.row), (&Served::Zeros, &Row::None)),
                Role::Cabal => {
                    let others: Vec<[u8; 32]> = m.group.iter().map(|&j| accounts[j]).collect();
                    assert_eq!(others.len(), 1);
                    assert_eq!(c.row, Row::Favor(others));
                    assert_eq!(c.k, 2 * sc.k);
                }
                Role::Copier => assert_eq!(c.row, Row::Consensus),
                Role::Projection | Role::Echo => assert_eq!(c.row, Row::Usefulness),
            }
        }
        assert!(members.iter().any(|m| m.role == Role::Cabal));
        // The file the node process reads back is the same config.
        let json = serde_json::to_string(&configs[6]).unwrap();
        assert_eq!(
            serde_json::from_str::<NodeConfig>(&json).unwrap(),
            configs[6]
        );
    }
}
