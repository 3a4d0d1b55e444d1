//! The adversarial rows (feature `adversarial`, for the devnet and the tests): a cabal that
//! weights its own members, a copier that weights the last consensus.

use std::collections::HashMap;

use deepnode_consensus::Uid;
use deepnode_ledger_client::MetagraphView;

use super::Scoring;
use super::admission::parse_key;

/// Scores that follow the metagraph rather than answers: a cabal's favourites, a copier's
/// consensus. Other scorings leave `scores` as they are.
pub(super) fn policy_scores(
    scoring: &Scoring,
    mg: &MetagraphView,
    me: Uid,
    scores: &mut HashMap<Uid, f64>,
) {
    let others = mg.nodes.iter().filter_map(|n| {
        let j = Uid::try_from(n.uid).ok().filter(|&j| j != me)?;
        Some((j, n))
    });
    match scoring {
        Scoring::Favor(keys) => {
            scores.clear();
            for (j, n) in others {
                if parse_key(&n.key).is_ok_and(|k| keys.contains(&k)) {
                    scores.insert(j, 1.0);
                }
            }
        }
        Scoring::CopyConsensus => {
            scores.clear();
            scores.extend(others.map(|(j, n)| (j, n.consensus)));
        }
        Scoring::Usefulness | Scoring::Trainer | Scoring::Nothing => {}
    }
}
