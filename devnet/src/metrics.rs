//! The metrics a node process appends to its file, one JSON line at a time, as the devnet
//! reads them.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// One line of a node's metrics file (`deepnode node run --metrics FILE`): the node's status
/// (`deepnode_node::life::Status`) at `t` seconds after its start. The one definition of the
/// format: the node CLI writes it, the devnet reads it into its records.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricsLine {
    /// Seconds since the node started.
    pub t: f64,
    /// Its uid, once registered.
    pub uid: Option<deepnode_consensus::Uid>,
    /// The ledger block last seen.
    pub block: u64,
    /// Peers of its modality with an endpoint, and those connected.
    pub peers: usize,
    /// Peers connected.
    pub peers_up: usize,
    /// Requests served.
    pub served: u64,
    /// Requests refused.
    pub refused: u64,
    /// Peer answers received.
    pub answers: u64,
    /// Peer queries that failed.
    pub failed: u64,
    /// Peer queries not sent because the peer backs off after a failure.
    #[serde(default)]
    pub skipped: u64,
    /// Rows committed.
    pub rows_set: u64,
    /// Rows the ledger refused.
    pub rows_refused: u64,
    /// Why the last row was not set.
    pub last_row_error: Option<String>,
    /// The last failed peer query, `uid J: reason`.
    #[serde(default)]
    pub last_peer_error: Option<String>,
    /// Training steps (learners).
    pub steps: u64,
    /// The last training loss.
    pub loss: Option<f64>,
    /// The last validation losses by name.
    pub valid: BTreeMap<String, f64>,
}

impl MetricsLine {
    /// Every complete line of a metrics file, in order (a torn last line is skipped; a missing
    /// file has none).
    pub fn read_all(path: &Path) -> Vec<MetricsLine> {
        std::fs::read_to_string(path)
            .map(|text| {
                text.lines()
                    .filter_map(|l| serde_json::from_str(l).ok())
                    .collect()
            })
            .unwrap_or_default()
    }
}
