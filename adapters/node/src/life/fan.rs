//! Querying peers without a trainer: fresh random inputs to the best-scored peers and one
//! drawn from the others.

use std::collections::HashMap;
use std::sync::Arc;

use deepnode_consensus::Uid;
use deepnode_rng::SplitMix64;
use deepnode_wire::Modality;

use super::RunConfig;
use super::dial::Peers;
use crate::query::{Answer, fan_out};
use crate::{Connection, NodeError, Tensor};

/// Random inputs of `cfg.modality`, drawn from `rng`.
fn inputs(cfg: &RunConfig, rng: &mut SplitMix64) -> Result<Tensor, NodeError> {
    let mut next = || rng.next_u64();
    let (b, s) = cfg.batch;
    let len = b as usize * s as usize;
    match cfg.modality {
        Modality::Text => Tensor::from_i64(
            &[b, s],
            &(0..len).map(|_| (next() % 256) as i64).collect::<Vec<_>>(),
        ),
        _ => {
            let x: Vec<f32> = (0..len * 16)
                .map(|_| (next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5)
                .collect();
            Tensor::from_f32(&[b, s, 16], &x)
        }
    }
}

/// Queries `k` connected peers with fresh random inputs: the `k - 1` with the highest scores
/// (then the lowest uids) and one drawn from the others; returns the inputs and the answers,
/// `None` when no peer is connected.
pub(super) async fn query(
    cfg: &RunConfig,
    Peers {
        connected: peers,
        backoff,
        ..
    }: &mut Peers,
    scores: &HashMap<Uid, f64>,
    rng: &mut SplitMix64,
) -> Result<Option<(Tensor, Vec<(Uid, Answer)>)>, NodeError> {
    let mut ranked: Vec<(Uid, f64)> = peers
        .iter()
        .filter(|(_, p)| p.conn.is_open())
        .map(|(&j, _)| (j, scores.get(&j).copied().unwrap_or(0.0)))
        .collect();
    if ranked.is_empty() {
        return Ok(None);
    }
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    // The best k - 1 by score, and one more drawn from the rest, so that every peer is tried
    // now and then and can earn a score.
    let mut chosen: Vec<Uid> = ranked
        .iter()
        .take(cfg.k.saturating_sub(1))
        .map(|e| e.0)
        .collect();
    let rest = ranked.get(chosen.len()..).unwrap_or_default();
    if let Some(len) = u64::try_from(rest.len()).ok().filter(|&l| l > 0) {
        let pick = usize::try_from(rng.next_u64() % len).unwrap_or(0);
        chosen.extend(rest.get(pick).map(|e| e.0));
    }
    let chosen: Vec<(Uid, Arc<Connection>)> = chosen
        .into_iter()
        .filter_map(|j| peers.get(&j).map(|p| (j, Arc::clone(&p.conn))))
        .collect();
    let x = inputs(cfg, rng)?;
    let (b, s) = cfg.batch;
    let dim = cfg.serve.limits.dim;
    let zeros = |_| Tensor::zeros(&[b, s, dim]);
    let answers = fan_out(&chosen, backoff, cfg.modality, &x, cfg.timeout, zeros).await?;
    Ok(Some((x, answers)))
}
