//! The consensus curve `c(t)` as the consensus crate computes it
//! ([`deepnode_consensus::consensus_of`]), sampled where an epoch puts trust.

use deepnode_consensus::{Params, Scalar, consensus_of};

/// `(t_k, c(t_k))` for `k = 0..=m` (`m >= 1`), with `t_k` the trust of a node connected to by
/// `k` of `m` equal-stake voters: `k` shares of `1/m`, added one by one as the epoch adds
/// them, so each point is what an epoch on such a network outputs.
pub fn consensus_curve<N: Scalar>(params: &Params<N>, m: u32) -> Vec<(f64, f64)> {
    let m = m.max(1);
    let share = N::share(1, u128::from(m));
    let mut t = N::ZERO;
    (0..=m)
        .map(|k| {
            if k > 0 {
                t = t.add(share);
            }
            (t.to_f64(), consensus_of(params, t).to_f64())
        })
        .collect()
}

/// The slope of the curve at `t = k / m` by a central difference over `t +- 1/m`.
pub fn slope_at(curve: &[(f64, f64)], k: usize) -> Option<f64> {
    let (a, b) = (curve.get(k.checked_sub(1)?)?, curve.get(k + 1)?);
    Some((b.1 - a.1) / (b.0 - a.0))
}

#[cfg(test)]
mod tests {
    use deepnode_consensus::{Fx, State, Uid, epoch};

    use super::*;

    /// The curve equals an epoch's trust and consensus on the network it describes: target
    /// `k` weighted by `k` of `m` unit-stake voters.
    fn equals_an_epoch<N: Scalar>() {
        let m = 7u32;
        let params = Params::<N>::default();
        let n = 2 * m as usize + 1;
        let mut stake = vec![1u64; m as usize];
        stake.resize(n, 0);
        let weights = (0..m)
            .map(|i| ((i + 1)..=m).map(|k| ((m + k) as Uid, 1u16)).collect())
            .collect();
        let state = State {
            params,
            stake,
            weights,
            bonds: Vec::new(),
            block: 0,
            last_update: Vec::new(),
        };
        let out = epoch(&state).unwrap();
        for (k, &(t, c)) in consensus_curve(&params, m).iter().enumerate() {
            let uid = m as usize + k;
            assert_eq!(t, out.trust[uid].to_f64(), "t_{k}");
            assert_eq!(c, out.consensus[uid].to_f64(), "c_{k}");
        }
    }

    #[test]
    fn curve_equals_an_epoch_fixed() {
        equals_an_epoch::<Fx>();
    }

    #[test]
    fn curve_equals_an_epoch_float() {
        equals_an_epoch::<f64>();
    }
}
