//! Querying many peers: per-peer exponential backoff, fan-out under one deadline with
//! stand-ins for the peers that fail, and the epoch's scores turned into a weights row.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use deepnode_consensus::{Params, Scalar, Uid, Weight, validate_row};
use deepnode_wire::Modality;

use crate::{Connection, NodeError, Tensor};

/// Exponential backoff of one peer: each failure doubles the wait before the next try (from
/// `base` up to `max`), each success halves it; under `base` the peer is tried at once.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    wait: Duration,
    until: Option<Instant>,
    base: Duration,
    max: Duration,
}

impl Backoff {
    /// A peer never failed yet.
    pub fn new(base: Duration, max: Duration) -> Backoff {
        Backoff {
            wait: Duration::ZERO,
            until: None,
            base,
            max,
        }
    }

    /// Whether the peer may be tried at `now`.
    pub fn ready(&self, now: Instant) -> bool {
        self.until.is_none_or(|t| now >= t)
    }

    /// The current wait after a failure.
    pub fn wait(&self) -> Duration {
        self.wait
    }

    /// Records a failure at `now`.
    pub fn failed(&mut self, now: Instant) {
        self.wait = (self.wait * 2).clamp(self.base, self.max);
        self.until = Some(now + self.wait);
    }

    /// Records a success: the wait halves (to zero under `base`).
    pub fn succeeded(&mut self) {
        self.wait /= 2;
        if self.wait < self.base {
            self.wait = Duration::ZERO;
            self.until = None;
        }
    }
}

/// One peer's answer in a fan-out.
#[derive(Debug)]
pub enum Answer {
    /// The peer's response.
    Peer(Tensor),
    /// The peer failed (or was backing off); this is the stand-in used in its slot.
    StandIn(Tensor, NodeError),
}

impl Answer {
    /// The tensor in the slot, the peer's or the stand-in's.
    pub fn tensor(&self) -> &Tensor {
        match self {
            Answer::Peer(t) | Answer::StandIn(t, _) => t,
        }
    }
}

/// Sends `inputs` to every peer of `peers` at once and waits at most `timeout` for all; a
/// peer that fails, is backing off or misses the deadline gets `stand_in(uid)` in its slot
/// (zeros `[B, S, D]`, or the caller's distilled student). The backoffs of the peers asked
/// are updated; a peer skipped while it backs off ([`NodeError::BackingOff`]) keeps its wait,
/// so it is asked again once the wait is over.
pub async fn fan_out(
    peers: &[(Uid, Arc<Connection>)],
    backoff: &mut HashMap<Uid, Backoff>,
    modality: Modality,
    inputs: &Tensor,
    timeout: Duration,
    stand_in: impl Fn(Uid) -> Result<Tensor, NodeError>,
) -> Result<Vec<(Uid, Answer)>, NodeError> {
    let now = Instant::now();
    let calls: Vec<_> = peers
        .iter()
        .map(|(uid, conn)| {
            let ready = backoff.get(uid).is_none_or(|b| b.ready(now));
            let conn = Arc::clone(conn);
            let inputs = inputs.clone();
            let uid = *uid;
            tokio::spawn(async move {
                if !ready {
                    return (uid, Err(NodeError::BackingOff));
                }
                (uid, conn.forward(modality, &inputs, timeout).await)
            })
        })
        .collect();
    let mut out = Vec::with_capacity(calls.len());
    for call in calls {
        let (uid, result) = call.await.map_err(|e| NodeError::Model(e.to_string()))?;
        let b = backoff
            .entry(uid)
            .or_insert_with(|| Backoff::new(Duration::from_millis(100), Duration::from_secs(60)));
        out.push((
            uid,
            match result {
                Ok(t) => {
                    b.succeeded();
                    Answer::Peer(t)
                }
                Err(NodeError::BackingOff) => {
                    Answer::StandIn(stand_in(uid)?, NodeError::BackingOff)
                }
                Err(e) => {
                    b.failed(Instant::now());
                    Answer::StandIn(stand_in(uid)?, e)
                }
            },
        ));
    }
    Ok(out)
}

/// Why scores could not become a row.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RowError {
    /// Fewer peers with a positive, finite score than the ledger's `min_allowed_weights`.
    #[error("{have} peers with a positive score, the ledger wants at least {need}")]
    TooFewScores {
        /// Peers with a usable score.
        have: usize,
        /// `min_allowed_weights`.
        need: u32,
    },
    /// The consensus crate refused the row (never expected; names the rule).
    #[error("row refused: {0}")]
    Refused(deepnode_consensus::Error),
}

/// Turns per-peer scores accumulated over an epoch into the `u16` row node `owner` submits:
/// the `max_len` highest positive, finite scores (ties to the lower uid), scaled so the
/// largest is 65,535 and none rounds to 0, sorted by uid, and accepted by
/// [`validate_row`] under the ledger's `params` and `max_len` for a network of `n` nodes.
/// Self scores are dropped when `params.mask_self_weights`.
pub fn weights_row<N: Scalar>(
    scores: &[(Uid, f64)],
    params: &Params<N>,
    owner: Uid,
    n: usize,
    max_len: usize,
) -> Result<Vec<(Uid, Weight)>, RowError> {
    let mut kept: Vec<(Uid, f64)> = scores
        .iter()
        .copied()
        .filter(|&(u, s)| {
            s.is_finite()
                && s > 0.0
                && (u as usize) < n
                && !(params.mask_self_weights && u == owner)
        })
        .collect();
    kept.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    kept.dedup_by_key(|e| e.0);
    kept.truncate(max_len.min(n));
    if kept.len() < params.min_allowed_weights as usize {
        return Err(RowError::TooFewScores {
            have: kept.len(),
            need: params.min_allowed_weights,
        });
    }
    let top = kept.first().map_or(1.0, |e| e.1);
    let mut row: Vec<(Uid, Weight)> = kept
        .into_iter()
        .map(|(u, s)| {
            (
                u,
                ((s / top) * f64::from(Weight::MAX))
                    .round()
                    .clamp(1.0, f64::from(Weight::MAX)) as Weight,
            )
        })
        .collect();
    row.sort_unstable_by_key(|e| e.0);
    validate_row(params, owner as usize, &row, n, max_len).map_err(RowError::Refused)?;
    Ok(row)
}

#[cfg(test)]
mod tests {
    use deepnode_consensus::Fx;

    use super::*;

    #[test]
    fn backoff_doubles_on_failure_and_halves_on_success() {
        let t0 = Instant::now();
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(800));
        assert!(b.ready(t0));
        for want in [100, 200, 400, 800, 800] {
            b.failed(t0);
            assert_eq!(b.wait(), Duration::from_millis(want));
        }
        assert!(!b.ready(t0) && b.ready(t0 + Duration::from_millis(800)));
        b.succeeded();
        assert_eq!(b.wait(), Duration::from_millis(400));
        b.succeeded();
        b.succeeded();
        b.succeeded();
        assert_eq!(b.wait(), Duration::ZERO);
        assert!(b.ready(t0));
    }

    #[test]
    fn scores_become_a_row_the_ledger_accepts() {
        let params = Params::<Fx> {
            min_allowed_weights: 2,
            mask_self_weights: true,
            ..Params::default()
        };
        let scores = [
            (4, 0.5),
            (1, 2.0),
            (3, f64::NAN),
            (0, 1.0),
            (2, 9.0),
            (7, 1.0),
            (9, 3.0),
        ];
        // Owner 2 is masked, 9 is out of range (n = 8), NaN dropped; top 3 of the rest.
        let row = weights_row(&scores, &params, 2, 8, 3).unwrap();
        assert_eq!(row, vec![(0, 32768), (1, 65535), (7, 32768)]);
        let e = weights_row(&[(1, 1.0)], &params, 2, 8, 3).unwrap_err();
        assert_eq!(e, RowError::TooFewScores { have: 1, need: 2 });
        // A tiny score next to a large one still counts (never rounds to 0).
        let row = weights_row(&[(0, 1e-12), (1, 1.0)], &params, 2, 8, 8).unwrap();
        assert_eq!(row, vec![(0, 1), (1, 65535)]);
    }
}
