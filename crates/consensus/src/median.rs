//! Yuma's consensus (SPEC.md §10 step Y3): the stake-weighted median of each column of the
//! normalised weights at quantile `kappa`, without transposing the rows.
//!
//! For column `j`, every voter `i` (a row with active stake `a_i > 0`) gives a score: its
//! normalised weight `w_ij`, or 0 where its row has no live entry for `j`. With `P = sum a_i`
//! and `m = P - kappa`, the consensus is the smallest score `x` whose voters at or below it
//! hold more than `m`: `c_j = min { x : sum_{i : w_ij <= x} a_i > m }` (the column's largest
//! score when no `x` qualifies, i.e. `kappa = 0`). This is the value subtensor's
//! `weighted_median` returns, stated without its pivot order.
//!
//! The search is a bisection on the keys of the value grid ([`Scalar::order_key`]), all
//! columns at once: one pass over the rows per step, at most 65 steps for a fixed-point backend
//! and 62 for float, each halving every open column's interval. The count `sum a_i` over the
//! scores at or below a probe is exact on the fixed path (sums of shares never round), so the
//! result is exact. The search runs from the column's smallest score to its largest; the
//! count changes only at scores, so the smallest key satisfying the condition is a score.

use crate::Scalar;
use crate::rows::LiveRuns;

/// The caller's `n`-long buffers for [`weighted_median`].
pub(crate) struct MedianBuffers<'a, N> {
    /// On return: `c_j`.
    pub(crate) consensus: &'a mut [N],
    /// Working space.
    pub(crate) base: &'a mut [N],
    /// Working space.
    pub(crate) high: &'a mut [N],
    /// Working space.
    pub(crate) count: &'a mut [N],
}

/// One voter as [`weighted_median`] reads it: its active stake `a_i > 0`, its row factor and
/// its live entries (two runs, see `crate::rows::live`).
pub(crate) struct Voter<'a, N: Scalar> {
    /// `a_i`.
    pub(crate) stake: N,
    /// The row's factor `1 / S_i` ([`Scalar::factor`] of 1).
    pub(crate) factor: N::Factor,
    /// The live entries.
    pub(crate) entries: LiveRuns<'a>,
}

/// `c_j` for every column into `buf.consensus`. `voters()` yields the voters in uid order
/// (each pass asks again); `kappa` is in `[0, 1]`. A voter's score for `(j, w)` is
/// `N::apply(factor, w)`.
pub(crate) fn weighted_median<'v, N, I>(kappa: N, voters: impl Fn() -> I, buf: MedianBuffers<'_, N>)
where
    N: Scalar + 'v,
    I: Iterator<Item = Voter<'v, N>>,
{
    let MedianBuffers {
        consensus,
        base,
        high,
        count,
    } = buf;
    // Per column: the voters' stake (in `base`), their entries (counted in `count`), the
    // largest and smallest scores (`high`, and `consensus` as the low end); P and the voters.
    base.fill(N::ZERO);
    high.fill(N::ZERO);
    count.fill(N::ZERO);
    consensus.fill(N::MAX);
    let (mut total, mut voters_seen) = (N::ZERO, N::ZERO);
    for v in voters() {
        let (a, f) = (v.stake, v.factor);
        total = total.add(a);
        voters_seen = voters_seen.add(N::ONE);
        for &(j, w) in v.entries.0.iter().chain(v.entries.1) {
            let Ok(j) = usize::try_from(j) else { continue };
            let x = N::apply(f, u64::from(w));
            if let (Some(s), Some(c)) = (base.get_mut(j), count.get_mut(j)) {
                *s = s.add(a);
                *c = c.add(N::ONE);
            }
            if let Some(h) = high.get_mut(j)
                && x > *h
            {
                *h = x;
            }
            if let Some(l) = consensus.get_mut(j)
                && x < *l
            {
                *l = x;
            }
        }
    }
    // A voter without an entry in a column scores 0 there (counts of voters and entries are
    // small integers, exact on both backends).
    for (l, &c) in consensus.iter_mut().zip(count.iter()) {
        if c < voters_seen || voters_seen <= N::ZERO {
            *l = N::ZERO;
        }
    }
    let minority = total.sub(kappa);
    if minority >= total {
        // kappa = 0: no score holds more than everything; the largest one is the consensus.
        consensus.copy_from_slice(high);
        return;
    }
    // base_j = the stake of the voters without an entry in column j (they score 0).
    for b in base.iter_mut() {
        *b = total.sub(*b);
    }
    // Bisection: the answer's key lies in [low, high] (`consensus` holds `low`, the smallest
    // score); the count at the largest score is P > m, so `high` always qualifies, and below
    // the smallest score the count is 0, so the answer is a score even when m < 0.
    let mid = |lo: N, hi: N| {
        let (lo, hi) = (lo.order_key(), hi.order_key());
        lo.saturating_add(hi.saturating_sub(lo) / 2)
    };
    loop {
        let open = consensus
            .iter()
            .zip(high.iter())
            .any(|(lo, hi)| lo.order_key() < hi.order_key());
        if !open {
            break;
        }
        count.fill(N::ZERO);
        for v in voters() {
            let (a, f) = (v.stake, v.factor);
            for &(j, w) in v.entries.0.iter().chain(v.entries.1) {
                let Ok(j) = usize::try_from(j) else { continue };
                let (Some(&lo), Some(&hi)) = (consensus.get(j), high.get(j)) else {
                    continue;
                };
                if lo.order_key() < hi.order_key()
                    && N::apply(f, u64::from(w)).order_key() <= mid(lo, hi)
                    && let Some(c) = count.get_mut(j)
                {
                    *c = c.add(a);
                }
            }
        }
        for (((lo, hi), &b), &c) in consensus
            .iter_mut()
            .zip(high.iter_mut())
            .zip(base.iter())
            .zip(count.iter())
        {
            if lo.order_key() >= hi.order_key() {
                continue;
            }
            let m = mid(*lo, *hi);
            if b.add(c) > minority {
                *hi = N::of_order_key(m);
            } else {
                *lo = N::of_order_key(m.saturating_add(1));
            }
        }
    }
}
