//! Reproducible synthetic networks for benchmarks: `n` nodes, `k` distinct peers per row.

use deepnode_consensus::{Params, State, Uid, Weight};
use deepnode_types::FromRatio;

use crate::Rng;

/// A network of `n` nodes whose rows hold `min(k, n)` distinct peers with weights in
/// `1..=65535`, sorted by uid; stakes below 10^12; default params; no bonds.
pub fn network<N: FromRatio + Copy>(n: usize, k: usize, seed: u64) -> State<N> {
    let mut rng = Rng::new(seed);
    let stake = (0..n).map(|_| rng.below(1_000_000_000_000)).collect();
    let weight = |rng: &mut Rng| rng.below(65535) as Weight + 1;
    let weights = (0..n)
        .map(|_| {
            if k >= n {
                (0..n as Uid).map(|j| (j, weight(&mut rng))).collect()
            } else {
                // Draw until k distinct uids (k < n); cost O(k log k), not O(n), per row.
                let mut row: Vec<(Uid, Weight)> = Vec::with_capacity(k);
                while row.len() < k {
                    let j = rng.below(n as u64) as Uid;
                    if let Err(at) = row.binary_search_by_key(&j, |e| e.0) {
                        row.insert(at, (j, weight(&mut rng)));
                    }
                }
                row
            }
        })
        .collect();
    State {
        params: Params::default(),
        stake,
        weights,
        bonds: Vec::new(),
        block: 0,
        last_update: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use deepnode_consensus::Fx;

    use super::network;

    #[test]
    fn rows_are_canonical_and_sized() {
        let s = network::<Fx>(50, 7, 1);
        assert_eq!(s.stake.len(), 50);
        for row in &s.weights {
            assert_eq!(row.len(), 7);
            assert!(row.windows(2).all(|w| w[0].0 < w[1].0));
            assert!(row.iter().all(|&(_, w)| w > 0));
        }
        assert_eq!(network::<Fx>(8, 100, 1).weights[0].len(), 8);
        assert_eq!(s, network::<Fx>(50, 7, 1));
    }
}
