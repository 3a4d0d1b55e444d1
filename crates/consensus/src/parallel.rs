//! The epoch on several threads (feature `parallel`, hosts only): the passes of
//! [`epoch_in_place`] over a split of the rows that depends on the input alone.

use core::num::NonZeroUsize;
use std::thread;
use std::vec::Vec;

use deepnode_types::{Departed, EpochOutput, Params, State, Uid, Weight};

use crate::bonds::BondRowMut;
use crate::bonds::update_bonds;
use crate::dividends::{Paid, column_factors, pay_dividends};
use crate::epoch::{Activity, Outputs, total_stake};
#[cfg(doc)]
use crate::epoch_in_place;
use crate::incentive::{consensus_columns, incentive_sums, normalise_incentive};
use crate::mint::mint;
use crate::rank::rank_and_trust;
use crate::rows::RowsRef;
use crate::validate::check_shapes;
use crate::yuma::{is_yuma, yuma_epoch};
use crate::{Error, Scalar};

/// Row chunks of a parallel epoch: a constant, so that no result depends on the thread count
/// (and at most this many threads work at once).
pub const CHUNKS: usize = 4;

/// The epoch on up to [`CHUNKS`] threads, with the memory it reuses from epoch to epoch.
///
/// The rows are cut into [`CHUNKS`] runs of consecutive uids, balanced by their entries
/// (`1 + weights + bonds` per row: the input alone decides the cut, never the thread count).
/// Each pass of [`epoch_in_place`] runs chunk by chunk, the chunks shared among the threads;
/// a chunk adds its rows, in uid order, onto its own column sums (`r_j`, `t_j`, then the bond
/// column sums `C_j`), and the chunks' sums are then added column by column in chunk order:
/// `r_j = ((R0_j + R1_j) + R2_j) + R3_j`. Column-wise steps (consensus, incentive, `g_j`)
/// run on column ranges, dividends on row chunks, minting and the two sums over columns
/// (`sum x_j`, the loss) on one thread in column order.
///
/// **Determinism.** The result never depends on the thread count: every sum has the same
/// terms in the same grouping whatever the threads. For [`crate::Fx`] it is also bit for bit
/// that of [`epoch_in_place`]: every regrouped sum adds non-negative terms with saturation,
/// whose result `min(MAX, exact sum)` does not depend on the grouping. For `f64` the grouping
/// by chunks differs from the row-by-row sum of [`epoch_in_place`], so the two may differ in
/// the last bits: each regrouped column sum has non-negative terms, so the two groupings
/// differ by at most `2 (m - 1) eps` of the sum, for `m` rows and `eps = 2^-53` (about
/// `1e-12` relative at `m = 4096`), far inside the `1e-6` bound between backends.
///
/// **Memory.** Besides the outputs, `2 (CHUNKS - 1) n` scalars of partial column sums, kept
/// here and reused by the next epoch of the same `n`; no other allocation grows with the
/// input (a few `Vec`s of [`CHUNKS`] entries per pass, and the threads).
///
/// **Errors.** The same as [`epoch_in_place`]'s, the first failing row in uid order: every
/// chunk checks its rows before any chunk touches a bond.
#[derive(Debug)]
pub struct Parallel<N> {
    threads: NonZeroUsize,
    partials: Vec<N>,
}

impl<N: Scalar + Send + Sync> Parallel<N> {
    /// An epoch runner on `threads` threads (the calling thread is one of them; more than
    /// [`CHUNKS`] are never used at once).
    pub fn new(threads: NonZeroUsize) -> Self {
        Parallel {
            threads,
            partials: Vec::new(),
        }
    }

    /// The thread count given to [`Parallel::new`].
    pub fn threads(&self) -> NonZeroUsize {
        self.threads
    }

    /// [`epoch_in_place`] on the threads of `self`: the same arguments, buffers and errors,
    /// the results described on [`Parallel`].
    pub fn epoch_in_place<W, B>(
        &mut self,
        params: &Params<N>,
        stake: &[u64],
        weights: &[W],
        bonds: &mut [B],
        out: Outputs<'_, N>,
    ) -> Result<N, Error>
    where
        W: AsRef<[(Uid, Weight)]> + Sync,
        B: BondRowMut<N> + Send + Sync,
    {
        self.epoch_in_place_at(params, stake, weights, Activity::ALL_PRESENT, bonds, out)
    }

    /// [`crate::epoch_in_place_at`] on the threads of `self`: the same arguments, buffers and
    /// errors, the results described on [`Parallel`].
    pub fn epoch_in_place_at<W, B>(
        &mut self,
        params: &Params<N>,
        stake: &[u64],
        weights: &[W],
        activity: Activity<'_>,
        bonds: &mut [B],
        out: Outputs<'_, N>,
    ) -> Result<N, Error>
    where
        W: AsRef<[(Uid, Weight)]> + Sync,
        B: BondRowMut<N> + Send + Sync,
    {
        check_shapes(params, stake, weights, activity, bonds, &out)?;
        if is_yuma(params) {
            // Yuma's passes run on the calling thread (the same results as `epoch_in_place`).
            return yuma_epoch(params, stake, weights, activity, bonds, out);
        }
        let n = stake.len();
        let Outputs {
            rank,
            trust,
            consensus,
            incentive,
            dividends,
            minted,
            stake: new_stake,
            scratch,
        } = out;
        // One slot per column or row is all this path uses.
        let scratch = scratch.get_mut(..n).unwrap_or_default();
        let workers = self.threads.get().min(CHUNKS);
        let bounds = chunk_bounds(weights, bonds);
        let total = total_stake(stake);
        self.partials
            .resize(n.saturating_mul(2 * (CHUNKS - 1)), N::ZERO);
        let rows = |c: usize| {
            let (lo, hi) = range(&bounds, c);
            RowsRef {
                first: lo,
                weights,
                stake: stake.get(lo..hi).unwrap_or_default(),
                activity,
                cutoff: params.activity_cutoff,
            }
        };

        // 1-4 by row chunks; chunk 0 adds onto `rank` and `trust`, chunk c onto pair c.
        {
            let mut sums: Vec<(&mut [N], &mut [N])> = Vec::with_capacity(CHUNKS);
            sums.push((&mut *rank, &mut *trust));
            sums.extend(
                self.partials
                    .chunks_mut(n.saturating_mul(2))
                    .map(|p| p.split_at_mut(n)),
            );
            let jobs: Vec<_> = split_rows(&mut *dividends, &bounds)
                .into_iter()
                .zip(sums)
                .enumerate()
                .map(|(c, (factors, (r, t)))| (c, factors, r, t))
                .collect();
            let bonds = &*bonds;
            let done = run(workers, jobs, |(c, factors, r, t)| {
                r.fill(N::ZERO);
                t.fill(N::ZERO);
                let (lo, hi) = range(&bounds, c);
                let b = bonds.get(lo..hi).unwrap_or_default();
                rank_and_trust(params, total, rows(c), b, factors, &mut (r, t))
            });
            done.into_iter().collect::<Result<Vec<()>, Error>>()?;
        }

        // Chunk sums in chunk order, then 5-6, by column ranges.
        {
            let partials = &self.partials;
            let jobs = split_columns(
                workers,
                n,
                [&mut *rank, &mut *trust, &mut *consensus, &mut *incentive],
            );
            run(workers, jobs, |(lo, [r, t, c, i])| {
                for pair in partials.chunks(n.saturating_mul(2)) {
                    let (pr, pt) = pair.split_at(n);
                    add_onto(r, pr.get(lo..).unwrap_or_default());
                    add_onto(t, pt.get(lo..).unwrap_or_default());
                }
                consensus_columns(params, t, r, c, i);
            });
        }
        // 7, in column order on one thread.
        let (x_sum, loss) = incentive_sums(rank, consensus, incentive);

        // 8 by row chunks (f_i in `dividends`); chunk 0 sums its columns in `scratch`, chunk c
        // in pair c's first half.
        {
            let mut sums: Vec<&mut [N]> = Vec::with_capacity(CHUNKS);
            sums.push(&mut *scratch);
            sums.extend(
                self.partials
                    .chunks_mut(n.saturating_mul(2))
                    .map(|p| p.split_at_mut(n).0),
            );
            let factors = &*dividends;
            let rank = &*rank;
            let jobs: Vec<_> = split_rows(bonds, &bounds)
                .into_iter()
                .zip(sums)
                .enumerate()
                .collect();
            let done = run(workers, jobs, |(c, (b, s))| {
                s.fill(N::ZERO);
                let (lo, hi) = range(&bounds, c);
                let f = factors.get(lo..hi).unwrap_or_default();
                update_bonds(params, rows(c), b, f, rank, s)
            });
            done.into_iter().collect::<Result<Vec<()>, Error>>()?;
        }

        // Chunk sums of C_j in chunk order, i_j = x_j / sum x, g_j = i_j / C_j (in
        // `scratch`, over C_j), by column ranges.
        {
            let partials = &self.partials;
            let jobs = split_columns(workers, n, [&mut *scratch, &mut *incentive]);
            run(workers, jobs, |(lo, [col, inc])| {
                for pair in partials.chunks(n.saturating_mul(2)) {
                    let (sums, _) = pair.split_at(n);
                    add_onto(col, sums.get(lo..).unwrap_or_default());
                }
                normalise_incentive(inc, x_sum);
                column_factors(col, inc);
            });
        }

        // 9-10 by row chunks.
        {
            let g = &*scratch;
            let bonds = &*bonds;
            let jobs: Vec<_> = split_rows(&mut *dividends, &bounds)
                .into_iter()
                .enumerate()
                .collect();
            run(workers, jobs, |(c, d)| {
                let (lo, hi) = range(&bounds, c);
                let paid = Paid {
                    rows: rows(c),
                    withhold: params.departed == Departed::Withhold,
                };
                pay_dividends(paid, bonds.get(lo..hi).unwrap_or_default(), g, d);
            });
        }

        // 11 on one thread.
        mint(params, stake, incentive, dividends, minted, new_stake);
        Ok(loss)
    }

    /// [`crate::epoch`] on the threads of `self`: rows in any order, every output returned;
    /// the results described on [`Parallel`].
    pub fn epoch(&mut self, state: &State<N>) -> Result<EpochOutput<N>, Error> {
        crate::vec_api::epoch_with(state, |params, stake, weights, activity, bonds, out| {
            self.epoch_in_place_at(params, stake, weights, activity, bonds, out)
        })
    }
}

/// The first row of each chunk, and `n` last: chunk `c` is rows `bounds[c]..bounds[c + 1]`.
/// A row costs `1 + len(weights_i) + len(bonds_i)`; chunk `c` starts at the first row whose
/// cost before it reaches `c / CHUNKS` of the total. Non-decreasing, at most `n`.
fn chunk_bounds<N, W, B>(weights: &[W], bonds: &[B]) -> [usize; CHUNKS + 1]
where
    W: AsRef<[(Uid, Weight)]>,
    B: BondRowMut<N>,
{
    let n = bonds.len();
    let cost = |i: usize, b: &B| {
        let w = weights.get(i).map_or(0, |r| r.as_ref().len());
        1u128
            .saturating_add(w as u128)
            .saturating_add(b.entries().len() as u128)
    };
    let total = bonds
        .iter()
        .enumerate()
        .fold(0u128, |acc, (i, b)| acc.saturating_add(cost(i, b)));
    // CHUNKS and c are small, total < 2^100: no overflow.
    let target = |c: usize| {
        total
            .saturating_mul(c as u128)
            .checked_div(CHUNKS as u128)
            .unwrap_or(0)
    };
    let mut bounds = [n; CHUNKS + 1];
    if let Some(b) = bounds.first_mut() {
        *b = 0;
    }
    let mut c = 1usize;
    let mut before = 0u128;
    for (i, b) in bonds.iter().enumerate() {
        while c < CHUNKS && before >= target(c) {
            if let Some(slot) = bounds.get_mut(c) {
                *slot = i;
            }
            c = c.saturating_add(1);
        }
        before = before.saturating_add(cost(i, b));
    }
    bounds
}

/// Rows `lo..hi` of chunk `c`.
fn range(bounds: &[usize; CHUNKS + 1], c: usize) -> (usize, usize) {
    let lo = bounds.get(c).copied().unwrap_or(0);
    let hi = bounds.get(c.wrapping_add(1)).copied().unwrap_or(lo);
    (lo, hi)
}

/// `buf` cut into the [`CHUNKS`] row chunks of `bounds` (non-decreasing, at most
/// `buf.len()`, so every cut is in range).
fn split_rows<'a, T>(buf: &'a mut [T], bounds: &[usize; CHUNKS + 1]) -> Vec<&'a mut [T]> {
    let mut parts = Vec::with_capacity(CHUNKS);
    let mut rest = buf;
    for c in 0..CHUNKS {
        let (lo, hi) = range(bounds, c);
        let len = hi.saturating_sub(lo).min(rest.len());
        let (part, tail) = rest.split_at_mut(len);
        parts.push(part);
        rest = tail;
    }
    parts
}

/// `K` column buffers of length `n` cut into `workers` ranges of consecutive columns, each
/// with its first column.
fn split_columns<T, const K: usize>(
    workers: usize,
    n: usize,
    bufs: [&mut [T]; K],
) -> Vec<(usize, [&mut [T]; K])> {
    let step = n.div_ceil(workers.max(1)).max(1);
    let mut iters = bufs.map(|b| b.chunks_mut(step));
    let mut jobs = Vec::with_capacity(workers);
    let mut lo = 0usize;
    loop {
        let parts = iters.each_mut().map(Iterator::next);
        if parts.iter().any(Option::is_none) {
            break;
        }
        let parts = parts.map(Option::unwrap_or_default);
        jobs.push((lo, parts));
        lo = lo.saturating_add(step);
    }
    jobs
}

/// `dst_j += src_j` (the column sums of a later chunk onto those of the earlier ones).
fn add_onto<N: Scalar>(dst: &mut [N], src: &[N]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = d.add(s);
    }
}

/// Runs `f` on every job, the jobs cut into `workers` runs of consecutive jobs, each run on
/// its own thread (the first on the calling thread); returns the results in job order.
fn run<J: Send, R: Send>(workers: usize, jobs: Vec<J>, f: impl Fn(J) -> R + Sync) -> Vec<R> {
    let per = jobs.len().div_ceil(workers.max(1)).max(1);
    let mut groups: Vec<Vec<J>> = Vec::with_capacity(workers);
    let mut jobs = jobs.into_iter().peekable();
    while jobs.peek().is_some() {
        groups.push(jobs.by_ref().take(per).collect());
    }
    let f = &f;
    thread::scope(|s| {
        let mut groups = groups.into_iter();
        let mine = groups.next();
        let handles: Vec<_> = groups
            .map(|g| s.spawn(move || g.into_iter().map(f).collect::<Vec<R>>()))
            .collect();
        let mut out: Vec<R> = mine.map_or_else(Vec::new, |g| g.into_iter().map(f).collect());
        for h in handles {
            // A worker's panic (a bug: the epoch's functions do not panic) goes on here.
            out.extend(h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
        }
        out
    })
}
