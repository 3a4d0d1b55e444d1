//! Scores and the weights row: each useful answer, or the trainer's scores, or (feature
//! `adversarial`) a row that follows the metagraph, submitted within the ledger's rules.

use std::collections::HashMap;

use deepnode_consensus::{Fx, Params, Uid};
use deepnode_ledger_client::{Call, MetagraphView};

use super::Scoring;
use crate::NodeError;
use crate::access::LedgerAccess;
use crate::query::{Answer, RowError, weights_row};

/// Counts 1 for each useful answer (finite, not all zero) when `scoring` is
/// [`Scoring::Usefulness`].
pub(super) fn usefulness(
    scoring: &Scoring,
    answers: &[(Uid, Answer)],
    scores: &mut HashMap<Uid, f64>,
) {
    if *scoring != Scoring::Usefulness {
        return;
    }
    for (j, a) in answers {
        if let Answer::Peer(t) = a
            && t.is_finite()
            && t.to_f32().iter().any(|&x| x != 0.0)
        {
            *scores.entry(*j).or_insert(0.0) += 1.0;
        }
    }
}

/// Turns `scores` into a row and submits it: `Ok(Ok(block))`, the block that committed it;
/// `Ok(Err(_))` when no valid row can be made (nothing sent); `Err(_)` when the ledger
/// refused it or could not be reached.
pub(super) async fn set_weights(
    ledger: &impl LedgerAccess,
    mg: &MetagraphView,
    uid: Uid,
    scores: &HashMap<Uid, f64>,
) -> Result<Result<u64, RowError>, NodeError> {
    // A node never weights itself: on a ledger that masks self weights such a weight would
    // not count towards `min_allowed_weights`, and on one that does not it would buy rank.
    let params = Params::<Fx> {
        min_allowed_weights: mg.min_allowed_weights,
        mask_self_weights: true,
        ..Params::default()
    };
    let list: Vec<(Uid, f64)> = scores.iter().map(|(&j, &s)| (j, s)).collect();
    let row = match weights_row(&list, &params, uid, mg.n, mg.max_weights_len as usize) {
        Ok(row) => row,
        Err(e) => return Ok(Err(e)),
    };
    let block = ledger
        .submit(Call::SetWeights { uid, weights: row })
        .await?;
    Ok(Ok(block))
}
