//! What a running node reports: the CLI's status line, and one line of its metrics file.

use std::collections::BTreeMap;

use deepnode_consensus::Uid;
use serde::{Deserialize, Serialize};

use crate::{Answer, NodeError, Progress};

/// What a running node reports, after each tick of its loop: the CLI's status line, and as
/// JSON (serde) one line of the metrics file (`deepnode node run --metrics FILE`) that the
/// devnet reads back. The one definition of that format; a line holds every field but
/// `weights_block` (the ledger's metagraph is the record of rows).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// Seconds since the node started, as of this status.
    pub t: f64,
    /// This node's uid, once registered.
    pub uid: Option<Uid>,
    /// The ledger block last seen.
    pub block: u64,
    /// Peers in the metagraph with an endpoint, serving this node's modality.
    pub peers: usize,
    /// Of those, peers with an open connection.
    pub peers_up: usize,
    /// Requests this node served.
    pub served: u64,
    /// Requests this node refused (or whose model failed).
    pub refused: u64,
    /// Peer answers this node received.
    pub answers: u64,
    /// Peer queries that failed (stand-in used).
    pub failed: u64,
    /// Peer queries not sent because the peer backs off after a failure (stand-in used).
    #[serde(default)]
    pub skipped: u64,
    /// Weights rows submitted and committed.
    pub rows_set: u64,
    /// Weights rows submitted and refused by the ledger.
    pub rows_refused: u64,
    /// Why the last weights row was not set, if it was not.
    pub last_row_error: Option<String>,
    /// The last failed peer query: `uid J: reason` (a peer that keeps failing shows here).
    #[serde(default)]
    pub last_peer_error: Option<String>,
    /// Block of this node's last accepted weights row (not in the metrics line).
    #[serde(skip)]
    pub weights_block: Option<u64>,
    /// Training steps taken (a node that trains; 0 otherwise).
    pub steps: u64,
    /// The last training batch's loss (nats per token), when the node trains.
    pub loss: Option<f64>,
    /// The last validation losses by name (e.g. `peers`, `student`, `alone`).
    pub valid: BTreeMap<String, f64>,
}

impl Status {
    /// Counts peer `j`'s answer to a query: an answer, a query skipped while the peer backs
    /// off, or a failure (`None`: the peer was asked but is not connected), the last failure
    /// shown as `uid J: reason`.
    pub(super) fn count(&mut self, j: Uid, answer: Option<&Answer>) {
        match answer {
            Some(Answer::Peer(_)) => self.answers += 1,
            Some(Answer::StandIn(_, NodeError::BackingOff)) => self.skipped += 1,
            Some(Answer::StandIn(_, e)) => {
                self.failed += 1;
                self.last_peer_error = Some(format!("uid {j}: {e}"));
            }
            None => {
                self.failed += 1;
                self.last_peer_error = Some(format!("uid {j}: not connected"));
            }
        }
    }

    /// Takes in the trainer's progress (validation losses by name; the last of a name counts).
    pub(super) fn progress(&mut self, p: Progress) {
        self.steps = p.steps;
        self.loss = p.loss;
        self.valid = p.valid.into_iter().collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_is_one_metrics_line_in_the_devnets_field_order() {
        let mut s = Status {
            t: 1.5,
            uid: Some(3),
            served: 7,
            skipped: 2,
            weights_block: Some(9),
            last_peer_error: Some("uid 1: timed out".into()),
            ..Status::default()
        };
        s.progress(Progress {
            steps: 4,
            loss: Some(2.5),
            valid: vec![("peers".into(), 2.0), ("alone".into(), 3.0)],
        });
        let line = serde_json::to_string(&s).unwrap();
        assert_eq!(
            line,
            "{\"t\":1.5,\"uid\":3,\"block\":0,\"peers\":0,\"peers_up\":0,\"served\":7,\
             \"refused\":0,\"answers\":0,\"failed\":0,\"skipped\":2,\"rows_set\":0,\
             \"rows_refused\":0,\"last_row_error\":null,\"last_peer_error\":\"uid 1: timed out\",\
             \"steps\":4,\"loss\":2.5,\"valid\":{\"alone\":3.0,\"peers\":2.0}}"
        );
        let back: Status = serde_json::from_str(&line).unwrap();
        assert_eq!(
            back,
            Status {
                weights_block: None,
                ..s
            }
        );
        // Lines without the later fields still read.
        let old = "{\"t\":1.0,\"uid\":null,\"block\":2,\"peers\":0,\"peers_up\":0,\"served\":0,\
                   \"refused\":0,\"answers\":0,\"failed\":0,\"rows_set\":0,\"rows_refused\":0,\
                   \"last_row_error\":null,\"steps\":0,\"loss\":null,\"valid\":{}}";
        let old: Status = serde_json::from_str(old).unwrap();
        assert_eq!((old.block, old.skipped, old.last_peer_error), (2, 0, None));
    }

    #[test]
    fn answers_skips_and_failures_are_counted() {
        let mut s = Status::default();
        let t = crate::Tensor::zeros(&[1, 1, 1]).unwrap();
        s.count(1, Some(&Answer::Peer(t.clone())));
        s.count(2, Some(&Answer::StandIn(t.clone(), NodeError::BackingOff)));
        s.count(3, Some(&Answer::StandIn(t, NodeError::Timeout)));
        assert_eq!((s.answers, s.skipped, s.failed), (1, 1, 1));
        assert!(
            s.last_peer_error
                .as_deref()
                .is_some_and(|e| e.starts_with("uid 3: "))
        );
        s.count(4, None);
        assert_eq!(s.failed, 2);
        assert_eq!(s.last_peer_error.as_deref(), Some("uid 4: not connected"));
    }
}
