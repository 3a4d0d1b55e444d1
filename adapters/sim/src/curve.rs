//! The consensus curve `c(t)` as the consensus crate computes it: one epoch on a probe network
//! in which target `k` is connected to by `k` of `m` equal-stake voters, so `t_k = k / m`.

use deepnode_conformance::contract::FromJson;
use deepnode_consensus::{Params, State, Uid, epoch};

use crate::SimError;

/// `(t_k, c_k)` for `k = 0..=m`, from one call of `deepnode_consensus::epoch` with `params`
/// (trust threshold set to 0, so that any weight connects). `m >= 1`.
pub fn consensus_curve<N: FromJson>(
    params: &Params<N>,
    m: u32,
) -> Result<Vec<(f64, f64)>, SimError> {
    let m = m.max(1);
    let voters = m as usize;
    let n = voters + voters + 1;
    let mut stake = vec![1u64; voters];
    stake.resize(n, 0);
    // Voter i weights every target k > i: target k has exactly k voters.
    let weights = (0..m)
        .map(|i| ((i + 1)..=m).map(|k| ((m + k) as Uid, 1u16)).collect())
        .collect();
    let state = State {
        params: Params {
            trust_threshold: N::ratio(0, 1),
            ..*params
        },
        stake,
        weights,
        bonds: Vec::new(),
    };
    let out = epoch(&state).map_err(|source| SimError::Epoch { epoch: 0, source })?;
    Ok((0..=m)
        .map(|k| {
            let uid = (m + k) as usize;
            (out.trust[uid].to_json(), out.consensus[uid].to_json())
        })
        .collect())
}

/// The slope of the curve at `t = k / m` by a central difference over `t +- 1/m`.
pub fn slope_at(curve: &[(f64, f64)], k: usize) -> Option<f64> {
    let (a, b) = (curve.get(k.checked_sub(1)?)?, curve.get(k + 1)?);
    Some((b.1 - a.1) / (b.0 - a.0))
}
