//! Yuma's consensus (SPEC.md §10 step Y3): the stake-weighted median of each column of the
//! normalised weights at quantile `kappa`, without transposing the whole matrix at once.
//!
//! For column `j`, every voter `i` (a row with active stake `a_i > 0`) gives a score: its
//! normalised weight `w_ij`, or 0 where its row has no live entry for `j`. With `P = sum a_i`
//! and `m = P - kappa`, the consensus is the smallest score `x` whose voters at or below it
//! hold more than `m`: `c_j = min { x : (P - V_j) + A_j(x) > m }` (`V_j` the stake of the
//! voters with an entry in column `j`, `A_j(x)` the stake of those scoring at most `x`, both
//! summed in row order; the column's largest score when no `x` qualifies, i.e. `kappa = 0`).
//! This is the value subtensor's `weighted_median` returns, stated without its pivot order.
//!
//! **Selection by column blocks.** The columns are taken in blocks whose entries fit the
//! caller's working space (three values per entry). One pass over the rows copies each
//! voter's `(w_ij, a_i)` for the block's columns into that column's run, in row order; each
//! run's scores are then sorted (a copy), and a binary search over them finds the smallest
//! score that qualifies, each probe summing `A_j(x)` over the run in row order. So every sum
//! is the one the definition names, term for term, and the result is the same bits on both
//! backends (on the fixed path no sum rounds; on the float path rounding is monotone, so
//! `A_j(x)` grows with `x` and the search is sound). Blocks come in column order, so each row
//! is read on from where the last block left it (a cursor per row, in the first `n` entries of
//! the working space). With `4n` entries of working space every column fits; a column with
//! more voters than the space holds is left to the bisection.
//!
//! **Bisection.** The columns left over are searched on the keys of the value grid
//! ([`Scalar::order_key`]), all at once: one pass over the rows per step, at most 65 steps
//! for a fixed-point backend and 62 for float, each halving every open column's interval.
//! The count changes only at scores, so the smallest key satisfying the condition is a score:
//! the same value as the selection.

use crate::Scalar;
use crate::rows::{Entry, LiveRuns};

/// The rows as the selection reads them: row `i` and whether its own entry `(i, _)` is left
/// out of its live entries.
pub(crate) struct RowAccess<R> {
    /// Row `i`, sorted by uid.
    pub(crate) row: R,
    /// `mask_self_weights`.
    pub(crate) mask: bool,
}

/// The caller's buffers for [`weighted_median`]: `n` entries each, `pairs` any length.
pub(crate) struct MedianBuffers<'a, N> {
    /// On return: `c_j`.
    pub(crate) consensus: &'a mut [N],
    /// Working space (per column).
    pub(crate) base: &'a mut [N],
    /// Working space (per column).
    pub(crate) high: &'a mut [N],
    /// Working space (per row, then per column).
    pub(crate) count: &'a mut [N],
    /// Working space (per row).
    pub(crate) factors: &'a mut [N],
    /// Working space for the selection: one entry per row, then three per score of a block
    /// (with `n` or fewer, every column is left to the bisection).
    pub(crate) pairs: &'a mut [N],
    /// Working space (per column).
    pub(crate) starts: &'a mut [u64],
    /// Working space (per column).
    pub(crate) ends: &'a mut [u64],
}

/// One voter as [`weighted_median`] reads it: its row, its active stake `a_i > 0`, its row
/// factor and its live entries (two runs, see `crate::rows::live`).
pub(crate) struct Voter<'a, N: Scalar> {
    /// `i`.
    pub(crate) row: usize,
    /// `a_i`.
    pub(crate) stake: N,
    /// The row's factor `1 / S_i` ([`Scalar::factor`] of 1).
    pub(crate) factor: N::Factor,
    /// The live entries (none for a row whose live weights sum to 0).
    pub(crate) entries: LiveRuns<'a>,
}

/// A column's place in the current block: not in it.
const OUTSIDE: u64 = u64::MAX;

/// `c_j` for every column into `buf.consensus`. `voters()` yields the voters in row order
/// (each pass asks again); `rows.row(i)` is row `i` whose live entries `voters()` gives (all
/// of them, or all but `(i, _)` with `rows.mask`); `kappa` is in `[0, 1]`. A voter's score
/// for `(j, w)` is `N::apply(factor, w)`.
pub(crate) fn weighted_median<'v, N, I>(
    kappa: N,
    voters: impl Fn() -> I,
    rows: RowAccess<impl Fn(usize) -> &'v [Entry]>,
    buf: MedianBuffers<'_, N>,
) where
    N: Scalar + 'v,
    I: Iterator<Item = Voter<'v, N>>,
{
    let MedianBuffers {
        consensus,
        base,
        high,
        count,
        factors,
        pairs,
        starts,
        ends,
    } = buf;
    // Per column: the voters' stake (in `base`), their entries (counted in `starts`), the
    // largest and smallest scores (`high`, and `consensus` as the low end); per voter with
    // live entries: `a_i` (in `count`) and its factor (in `factors`); P and the voters.
    base.fill(N::ZERO);
    high.fill(N::ZERO);
    count.fill(N::ZERO);
    starts.fill(0);
    consensus.fill(N::MAX);
    let (mut total, mut voters_seen) = (N::ZERO, 0u64);
    for v in voters() {
        let (a, f) = (v.stake, v.factor);
        total = total.add(a);
        voters_seen = voters_seen.saturating_add(1);
        if !v.entries.0.is_empty() || !v.entries.1.is_empty() {
            if let Some(slot) = count.get_mut(v.row) {
                *slot = a;
            }
            if let Some(slot) = factors.get_mut(v.row) {
                *slot = N::pack_factor(f);
            }
        }
        for &(j, w) in v.entries.0.iter().chain(v.entries.1) {
            let Ok(j) = usize::try_from(j) else { continue };
            let x = N::apply(f, u64::from(w));
            if let (Some(s), Some(c)) = (base.get_mut(j), starts.get_mut(j)) {
                *s = s.add(a);
                *c = c.saturating_add(1);
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
    // A voter without an entry in a column scores 0 there.
    for (l, &c) in consensus.iter_mut().zip(starts.iter()) {
        if c < voters_seen || voters_seen == 0 {
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
    select_by_blocks(
        minority,
        &rows,
        Columns {
            low: consensus,
            high,
            base,
        },
        Voters {
            stake: count,
            factors,
        },
        Blocks {
            pairs,
            starts,
            ends,
        },
    );
    bisect(minority, voters, consensus, high, base, count);
}

/// Per column: the low and high ends of the search (equal once `c_j` is found, in both) and
/// the stake of the voters scoring 0 without an entry.
struct Columns<'a, N> {
    low: &'a mut [N],
    high: &'a mut [N],
    base: &'a [N],
}

/// Per row: `a_i` (0 for a row that is not a voter with live entries) and the packed factor.
struct Voters<'a, N> {
    stake: &'a [N],
    factors: &'a [N],
}

/// The selection's working space: per row its next unread entry (as an order key), then the
/// `(score, stake)` pairs and the sorted scores; per column the start of its run and the next
/// free slot.
struct Blocks<'a, N> {
    pairs: &'a mut [N],
    starts: &'a mut [u64],
    ends: &'a mut [u64],
}

/// Finds `c_j` for every open column (`low < high`) whose voters fit the working space, block
/// by block of consecutive columns; on return those columns hold `low = high = c_j`. On entry
/// `starts` holds each column's number of entries.
fn select_by_blocks<'v, N: Scalar + 'v>(
    minority: N,
    rows: &RowAccess<impl Fn(usize) -> &'v [Entry]>,
    cols: Columns<'_, N>,
    voters: Voters<'_, N>,
    blocks: Blocks<'_, N>,
) {
    let Columns { low, high, base } = cols;
    let Blocks {
        pairs,
        starts,
        ends,
    } = blocks;
    let n = low.len();
    let Some((cursors, pairs)) = pairs.split_at_mut_checked(n) else {
        return;
    };
    let third = pairs.len() / 3;
    let capacity = u64::try_from(third).unwrap_or(u64::MAX);
    if capacity == 0 {
        return;
    }
    let (pairs, keys) = pairs.split_at_mut(third.saturating_mul(2));
    cursors.fill(N::of_order_key(0));
    // `ends` holds each column's number of entries while blocks are formed.
    ends.copy_from_slice(starts);
    let mut first = 0usize;
    while first < n {
        // The block: columns first..last; its open columns that fit get consecutive runs.
        let mut used = 0u64;
        let mut last = first;
        while let (Some(&k), Some(lo), Some(hi)) = (ends.get(last), low.get(last), high.get(last)) {
            let open = lo.order_key() < hi.order_key() && k <= capacity;
            if open && used.saturating_add(k) > capacity {
                break;
            }
            if let Some(s) = starts.get_mut(last) {
                *s = if open { used } else { OUTSIDE };
            }
            if open {
                used = used.saturating_add(k);
            }
            last = last.saturating_add(1);
        }
        if used > 0 {
            let block = Block {
                last,
                starts: &*starts,
                ends: &mut *ends,
            };
            fill_block(rows, &voters, cursors, first, block, pairs);
            for j in first..last {
                let (Some(&s), Some(&e)) = (starts.get(j), ends.get(j)) else {
                    continue;
                };
                if s == OUTSIDE {
                    continue;
                }
                let (Ok(s), Ok(e)) = (usize::try_from(s), usize::try_from(e)) else {
                    continue;
                };
                let (Some(run), Some(sorted)) = (
                    pairs.get(s.saturating_mul(2)..e.saturating_mul(2)),
                    keys.get_mut(s..e),
                ) else {
                    continue;
                };
                let (Some(lo), Some(hi), Some(&b)) = (low.get_mut(j), high.get_mut(j), base.get(j))
                else {
                    continue;
                };
                let c = select(minority, b, *lo, *hi, run, sorted);
                (*lo, *hi) = (c, c);
            }
        }
        first = last.max(first.saturating_add(1));
    }
}

/// A block's columns `..last` and their runs: `starts[j]` (or [`OUTSIDE`]) and, on return,
/// `ends[j]`.
struct Block<'a> {
    last: usize,
    starts: &'a [u64],
    ends: &'a mut [u64],
}

/// One pass over the rows: writes each voter's `(w_ij, a_i)` for the block's columns
/// `first..last` (those with a run) at the next slot of column `j`'s run, rows ascending.
/// Blocks come in column order, so each row is read on from its cursor (its entries below
/// `first` were read by earlier blocks) and its cursor moves past the block.
fn fill_block<'v, N: Scalar + 'v>(
    rows: &RowAccess<impl Fn(usize) -> &'v [Entry]>,
    voters: &Voters<'_, N>,
    cursors: &mut [N],
    first: usize,
    block: Block<'_>,
    pairs: &mut [N],
) {
    let Block { last, starts, ends } = block;
    if let (Some(s), Some(e)) = (starts.get(first..last), ends.get_mut(first..last)) {
        e.copy_from_slice(s);
    }
    let Ok(hi) = u32::try_from(last) else {
        return;
    };
    for (i, ((&a, &f), cursor)) in voters
        .stake
        .iter()
        .zip(voters.factors)
        .zip(cursors.iter_mut())
        .enumerate()
    {
        if a <= N::ZERO {
            continue;
        }
        let f = f.unpack_factor();
        let row = (rows.row)(i);
        let from = usize::try_from(cursor.order_key()).unwrap_or(usize::MAX);
        let part = row.get(from..).unwrap_or_default();
        let read = part.iter().take_while(|e| e.0 < hi).count();
        for &(j, w) in part.get(..read).unwrap_or_default() {
            let Ok(j) = usize::try_from(j) else { continue };
            if (rows.mask && j == i) || starts.get(j).is_none_or(|&s| s == OUTSIDE) {
                continue;
            }
            let Some(end) = ends.get_mut(j) else { continue };
            let Ok(slot) = usize::try_from(*end) else {
                continue;
            };
            if let Some([x, s]) = pairs
                .get_mut(slot.saturating_mul(2)..slot.saturating_mul(2).saturating_add(2))
                .and_then(|p| <&mut [N; 2]>::try_from(p).ok())
            {
                (*x, *s) = (N::apply(f, u64::from(w)), a);
            }
            *end = end.saturating_add(1);
        }
        let next = u128::try_from(from.saturating_add(read)).unwrap_or(u128::MAX);
        *cursor = N::of_order_key(next);
    }
}

/// `c_j` of one open column from its run of `(w_ij, a_i)` pairs in row order: the smallest
/// score `x` in `[low, high]` with `add(base, A(x)) > minority`, else `high`. `sorted` (as
/// long as the run) receives the scores, sorted.
fn select<N: Scalar>(minority: N, base: N, low: N, high: N, run: &[N], sorted: &mut [N]) -> N {
    let qualifies = |x: N| {
        let key = x.order_key();
        let stake = run.chunks_exact(2).fold(N::ZERO, |acc, pair| match *pair {
            [w, a] if w.order_key() <= key => acc.add(a),
            _ => acc,
        });
        base.add(stake) > minority
    };
    if qualifies(low) {
        return low;
    }
    for (k, pair) in sorted.iter_mut().zip(run.chunks_exact(2)) {
        if let Some(&w) = pair.first() {
            *k = w;
        }
    }
    sorted.sort_unstable_by_key(|x| x.order_key());
    // The first sorted score that qualifies (the count is monotone in x).
    let (mut lo, mut hi) = (0usize, sorted.len());
    while lo < hi {
        let mid = lo.saturating_add(hi.saturating_sub(lo) / 2);
        match sorted.get(mid) {
            Some(&x) if !qualifies(x) => lo = mid.saturating_add(1),
            _ => hi = mid,
        }
    }
    match sorted.get(lo) {
        Some(&x) if x.order_key() < high.order_key() => N::of_order_key(x.order_key()),
        _ => high,
    }
}

/// The bisection for the columns still open (`low < high`); `count` is working space.
fn bisect<'v, N, I>(
    minority: N,
    voters: impl Fn() -> I,
    consensus: &mut [N],
    high: &mut [N],
    base: &[N],
    count: &mut [N],
) where
    N: Scalar + 'v,
    I: Iterator<Item = Voter<'v, N>>,
{
    // The answer's key lies in [low, high] (`consensus` holds `low`, the smallest score);
    // the count at the largest score is P > m, so `high` always qualifies, and below the
    // smallest score the count is 0, so the answer is a score even when m < 0.
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
