//! The strategies' rows: how a node of each kind picks and weights its peers. Every row is
//! sorted by uid with distinct uids, as the buffer API of the consensus crate requires.

use deepnode_consensus::{Uid, Weight};

use crate::rng::Rng;

/// The largest raw weight: a strategy's favourite peer gets it.
pub(crate) const MAX_WEIGHT: Weight = Weight::MAX;

/// Top `k` peers of node `i` by a noisy quality estimate, weights proportional to it.
pub(crate) fn honest_row(
    i: usize,
    quality: &[f64],
    active: &[Uid],
    k: usize,
    noise: f64,
    sample: usize,
    rng: &mut Rng,
) -> Vec<(Uid, Weight)> {
    let me = i as Uid;
    let examine = sample.max(k.saturating_mul(2));
    let candidates: Vec<Uid> = if sample == 0 || examine >= active.len() {
        active.iter().copied().filter(|&j| j != me).collect()
    } else {
        let mut c: Vec<Uid> = (0..examine)
            .map(|_| active[rng.below(active.len())])
            .filter(|&j| j != me)
            .collect();
        c.sort_unstable();
        c.dedup();
        c
    };
    let mut est: Vec<(f64, Uid)> = candidates
        .into_iter()
        .map(|j| (quality[j as usize] + noise * rng.normal(), j))
        .collect();
    let keep = k.min(est.len());
    if keep == 0 {
        return Vec::new();
    }
    let by_estimate = |a: &(f64, Uid), b: &(f64, Uid)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
    if keep < est.len() {
        est.select_nth_unstable_by(keep - 1, by_estimate);
        est.truncate(keep);
    }
    proportional(est)
}

/// Scales positive scores to u16 weights (largest = 65535, every kept peer at least 1).
fn proportional(mut scored: Vec<(f64, Uid)>) -> Vec<(Uid, Weight)> {
    let top = scored.iter().map(|e| e.0).fold(0.0f64, f64::max);
    scored.sort_unstable_by_key(|e| e.1);
    scored
        .into_iter()
        .map(|(s, j)| {
            let w = if top > 0.0 {
                (f64::from(MAX_WEIGHT) * s.max(0.0) / top).round()
            } else {
                1.0
            };
            (j, w.clamp(1.0, f64::from(MAX_WEIGHT)) as Weight)
        })
        .collect()
}

pub(crate) fn copier_row(
    i: usize,
    ranking: &[Uid],
    incentive: &[f64],
    active: &[Uid],
    k: usize,
    rng: &mut Rng,
) -> Vec<(Uid, Weight)> {
    if ranking.is_empty() {
        return random_row(i, active, k, rng);
    }
    let top: Vec<(f64, Uid)> = ranking
        .iter()
        .copied()
        .filter(|&j| j as usize != i)
        .take(k)
        .map(|j| (incentive[j as usize], j))
        .collect();
    proportional(top)
}

pub(crate) fn random_row(i: usize, active: &[Uid], k: usize, rng: &mut Rng) -> Vec<(Uid, Weight)> {
    let me = i as Uid;
    let others = active.len() - usize::from(active.contains(&me));
    let k = k.min(others);
    let mut picked: Vec<Uid> = Vec::with_capacity(k);
    if k.saturating_mul(2) >= others {
        // Dense: a partial shuffle of the candidates.
        let mut c: Vec<Uid> = active.iter().copied().filter(|&j| j != me).collect();
        for s in 0..k {
            let r = s + rng.below(c.len() - s);
            c.swap(s, r);
        }
        picked.extend_from_slice(&c[..k]);
        picked.sort_unstable();
    } else {
        while picked.len() < k {
            for _ in picked.len()..k {
                let j = active[rng.below(active.len())];
                if j != me {
                    picked.push(j);
                }
            }
            picked.sort_unstable();
            picked.dedup();
        }
    }
    picked
        .into_iter()
        .map(|j| (j, (1 + rng.below(usize::from(MAX_WEIGHT))) as Weight))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_sorted_unique_and_sized() {
        let mut rng = Rng::new(3);
        let active: Vec<Uid> = (0..50).collect();
        let quality: Vec<f64> = (0..50).map(|j| j as f64 / 50.0).collect();
        let h = honest_row(7, &quality, &active, 5, 0.0, 0, &mut rng);
        assert_eq!(
            h.iter().map(|e| e.0).collect::<Vec<_>>(),
            vec![45, 46, 47, 48, 49]
        );
        assert_eq!(h[4].1, MAX_WEIGHT);
        for k in [1, 10, 30, 49, 80] {
            let r = random_row(7, &active, k, &mut rng);
            assert_eq!(r.len(), k.min(49));
            assert!(r.windows(2).all(|w| w[0].0 < w[1].0));
            assert!(r.iter().all(|e| e.0 != 7 && e.1 > 0));
        }
        let sampled = honest_row(7, &quality, &active, 4, 0.1, 10, &mut rng);
        assert_eq!(sampled.len(), 4);
        assert!(sampled.windows(2).all(|w| w[0].0 < w[1].0));
    }
}
