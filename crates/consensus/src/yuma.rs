//! Yuma consensus (SPEC.md §10), subtensor's original Yuma and Yuma 3, over the same
//! caller-provided buffers as the paper's epoch ([`crate::epoch_in_place`] runs it when
//! `params.bonds` is a Yuma rule).
//!
//! Passes over the rows, in uid order: (1) checks, active stake, column stake and largest
//! scores; (2) the median's bisection steps ([`crate::median`]); (3) clipping, rank and, for
//! the original Yuma, the column sums of the old bonds and of the bond deltas; (4) the bond
//! update; (5) dividends (and, for the original Yuma, the column maxima); the last pass
//! stores the bonds on the u16 grid and writes validator trust. Every column buffer is one of
//! the outputs or `scratch` (`n` entries suffice); no allocation.

use deepnode_types::{BondMode, LiquidAlpha, Params, Uid, Weight};

use crate::bonds::{BondRowMut, at, merge_row};
use crate::epoch::{Activity, Outputs};
use crate::incentive::normalise_incentive;
use crate::median::{MedianBuffers, RowAccess, Voter, weighted_median};
use crate::mint::mint;
use crate::rows::{LiveRuns, RowsRef, live, row_sum};
use crate::validate::{check_bonds, check_row, uids_ok_and_sum};
use crate::{Error, Scalar};

/// The u16 grid on which subtensor stores bonds: `q(x) = floor(65535 x) / 65535`.
const U16_GRID: u64 = 65_535;

/// The Yuma rule's parameters, read once from [`BondMode`].
#[derive(Clone, Copy)]
struct Rule<N> {
    /// `1 - bonds_moving_average`: the weight of the new value without liquid alpha.
    alpha: N,
    penalty: N,
    /// `None` for the original Yuma; `Some(liquid alpha)` for Yuma 3.
    yuma3: Option<Option<LiquidAlpha<N>>>,
}

impl<N: Scalar> Rule<N> {
    fn of(mode: BondMode<N>) -> Option<Rule<N>> {
        match mode {
            BondMode::Cumulative | BondMode::Ema { .. } => None,
            BondMode::Yuma {
                bonds_moving_average,
                bonds_penalty,
            } => Some(Rule {
                alpha: N::ONE.sub(bonds_moving_average),
                penalty: bonds_penalty,
                yuma3: None,
            }),
            BondMode::Yuma3 {
                bonds_moving_average,
                bonds_penalty,
                liquid_alpha,
            } => Some(Rule {
                alpha: N::ONE.sub(bonds_moving_average),
                penalty: bonds_penalty,
                yuma3: Some(liquid_alpha),
            }),
        }
    }
}

/// Whether `params` run Yuma (a Yuma bond rule) rather than the paper's epoch.
pub(crate) fn is_yuma<N: Scalar>(params: &Params<N>) -> bool {
    Rule::of(params.bonds).is_some()
}

/// The rows as Yuma reads them: row `i` votes with `a_i = stake_i / T` (`T` the stake of
/// the present rows; 0 for an absent row), and has live weights only with stake above 0 (a
/// node without stake holds no validator permit in subtensor).
struct Rows<'a, W> {
    rows: RowsRef<'a, W>,
    mask: bool,
    present_stake: u128,
}

impl<W: AsRef<[(Uid, Weight)]>> Rows<'_, W> {
    /// `a_i`.
    fn active<N: Scalar>(&self, i: usize) -> N {
        let x = self.rows.stake.get(i).copied().unwrap_or(0);
        if x == 0 || self.present_stake == 0 || self.rows.absent(i) {
            N::ZERO
        } else {
            N::share(x, self.present_stake)
        }
    }

    /// Row `i`'s factor `1 / S_i` and live entries, or `None` when it has no stake or its live
    /// weights sum to 0.
    fn live<N: Scalar>(&self, i: usize) -> Option<(N::Factor, LiveRuns<'_>)> {
        if self.rows.stake.get(i).copied().unwrap_or(0) == 0 {
            return None;
        }
        let row = self.rows.row(i);
        let sum = row_sum(row, i, self.mask);
        (sum > 0).then(|| (N::ONE.factor(sum), live(row, i, self.mask)))
    }
}

/// `x` on the u16 grid: `floor(65535 x) / 65535` for `x` clamped to `[0, 1]`.
#[inline]
fn on_u16_grid<N: Scalar>(x: N) -> N {
    N::share(x.of_units(U16_GRID), u128::from(U16_GRID))
}

/// The weight behind bonds: `w - penalty (w - clip)` (`w` itself for penalty 0, the clipped
/// weight for penalty 1).
#[inline]
fn for_bonds<N: Scalar>(w: N, clipped: N, penalty: N) -> N {
    w.sub(penalty.mul(w.sub(clipped)))
}

/// `min(w, c_j)`.
#[inline]
fn clip<N: Scalar>(w: N, c: N) -> N {
    if c < w { c } else { w }
}

/// `c_j` for a uid checked against `n` (0 for a broken invariant).
#[inline]
fn column<N: Scalar>(buf: &[N], j: Uid) -> N {
    usize::try_from(j)
        .ok()
        .and_then(|k| buf.get(k).copied())
        .unwrap_or(N::ZERO)
}

/// Yuma 3's liquid alpha for one entry (SPEC.md §10 step Y8).
fn liquid<N: Scalar>(l: LiquidAlpha<N>, c: N, w: N, b: N) -> N {
    let unit = |x: N| {
        if x < N::ZERO {
            N::ZERO
        } else if x > N::ONE {
            N::ONE
        } else {
            x
        }
    };
    let x = if w >= b {
        unit(w.sub(c))
    } else {
        unit(b.sub(w))
    };
    let z = l.steepness.mul(x.sub(N::ratio(1, 2)));
    let a = l
        .alpha_low
        .add(z.sigmoid().mul(l.alpha_high.sub(l.alpha_low)));
    if a < l.alpha_low {
        l.alpha_low
    } else if a > l.alpha_high {
        l.alpha_high
    } else {
        a
    }
}

/// One Yuma epoch (SPEC.md §10). Shapes and params were checked by the caller; every row is
/// checked here before the first bond is written. Returns 0 (Yuma has no consensus loss).
pub(crate) fn yuma_epoch<N, W, B>(
    params: &Params<N>,
    stake: &[u64],
    weights: &[W],
    activity: Activity<'_>,
    bonds: &mut [B],
    out: Outputs<'_, N>,
) -> Result<N, Error>
where
    N: Scalar,
    W: AsRef<[(Uid, Weight)]>,
    B: BondRowMut<N>,
{
    let Some(rule) = Rule::of(params.bonds) else {
        return Ok(N::ZERO);
    };
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
    let n = stake.len();
    let rows = RowsRef {
        first: 0,
        weights,
        stake,
        activity,
        cutoff: params.activity_cutoff,
    };
    // Y1. Checks (before any bond is written) and the stake of the present rows.
    let mut present_stake = 0u128;
    for (i, (b, &x)) in bonds.iter().zip(stake).enumerate() {
        let row = rows.row(i);
        if !uids_ok_and_sum(row, n).0 {
            check_row("weights", i, row.iter().map(|&(u, _)| u), n)?;
        }
        check_bonds(params, i, b, row, x, n)?;
        if !rows.absent(i) {
            present_stake = present_stake.saturating_add(u128::from(x));
        }
    }
    let yuma = Rows {
        rows,
        mask: params.mask_self_weights,
        present_stake,
    };

    // Y2-Y3. Consensus: the stake-weighted median of each column.
    let voters = || {
        (0..n).filter_map(|i| {
            let a: N = yuma.active(i);
            if a <= N::ZERO {
                return None;
            }
            let (factor, entries) = yuma
                .live::<N>(i)
                .unwrap_or((N::ONE.factor(1), (&[][..], &[][..])));
            Some(Voter {
                row: i,
                stake: a,
                factor,
                entries,
            })
        })
    };
    // The rows again, for the median's selection (it keeps each voter's factor; `voters` gives
    // no entries for a row whose live weights sum to 0, and the median skips such a row).
    let access = RowAccess {
        row: |i: usize| yuma.rows.row(i),
        mask: yuma.mask,
    };
    weighted_median(
        params.kappa,
        voters,
        access,
        MedianBuffers {
            consensus: &mut *consensus,
            base: &mut *rank,
            high: &mut *incentive,
            count: &mut *trust,
            factors: &mut *dividends,
            pairs: &mut *scratch,
            starts: &mut *minted,
            ends: &mut *new_stake,
        },
    );
    let scratch = scratch.get_mut(..n).unwrap_or_default();

    // Y4-Y6. Clipped weights and rank r_j = sum_i a_i min(w_ij, c_j); for the original Yuma
    // also the column sums of the old bonds (in `scratch`) and of dB_ij = a_i w'_ij (in
    // `dividends`).
    rank.fill(N::ZERO);
    let original = rule.yuma3.is_none();
    if original {
        scratch.fill(N::ZERO);
        dividends.fill(N::ZERO);
    }
    for i in 0..n {
        let a: N = yuma.active(i);
        if let Some((f, entries)) = yuma.live::<N>(i) {
            for &(j, w) in entries.0.iter().chain(entries.1) {
                let x = N::apply(f, u64::from(w));
                let clipped = clip(x, column(consensus, j));
                if a > N::ZERO {
                    let r = at(rank, j)?;
                    *r = r.add(a.mul(clipped));
                    if original {
                        let d = at(dividends, j)?;
                        *d = d.add(a.mul(for_bonds(x, clipped, rule.penalty)));
                    }
                }
            }
        }
        if original && let Some(b) = bonds.get(i) {
            for &(j, v) in b.entries() {
                let s = at(scratch, j)?;
                *s = s.add(v);
            }
        }
    }
    let total_rank = rank.iter().fold(N::ZERO, |acc, &r| acc.add(r));
    incentive.copy_from_slice(rank);
    normalise_incentive(incentive, total_rank);

    // Y7-Y10. Bonds and dividends.
    match rule.yuma3 {
        None => original_bonds(
            &yuma, rule, bonds, consensus, incentive, dividends, scratch, trust,
        )?,
        Some(liquid_alpha) => yuma3_bonds(
            &yuma,
            rule,
            liquid_alpha,
            bonds,
            consensus,
            incentive,
            dividends,
            scratch,
        )?,
    }
    validator_trust(&yuma, consensus, trust);
    let total = dividends.iter().fold(N::ZERO, |acc, &d| acc.add(d));
    normalise_incentive(dividends, total);

    // Y11. Emission: the paper's step 11.
    mint(params, stake, incentive, dividends, minted, new_stake);
    Ok(N::ZERO)
}

/// Validator trust `vt_i = sum_j min(w_ij, c_j)` over row `i`'s live weights.
fn validator_trust<N: Scalar, W: AsRef<[(Uid, Weight)]>>(
    yuma: &Rows<'_, W>,
    consensus: &[N],
    trust: &mut [N],
) {
    for (i, t) in trust.iter_mut().enumerate() {
        *t = yuma.live::<N>(i).map_or(N::ZERO, |(f, entries)| {
            entries
                .0
                .iter()
                .chain(entries.1)
                .fold(N::ZERO, |acc, &(j, w)| {
                    acc.add(clip(N::apply(f, u64::from(w)), column(consensus, j)))
                })
        });
    }
}

/// Row `i`'s fresh bond entries `(j, value(w_ij, min(w_ij, c_j)))` over its live weights,
/// those above 0 (none for a row without live weights).
fn fresh<'r, N: Scalar + 'r, W: AsRef<[(Uid, Weight)]>>(
    yuma: &'r Rows<'_, W>,
    i: usize,
    consensus: &'r [N],
    value: impl Fn(N, N) -> N + Clone + 'r,
) -> impl DoubleEndedIterator<Item = (Uid, N)> + Clone + 'r {
    let (f, entries) = match yuma.live::<N>(i) {
        Some(l) => (Some(l.0), l.1),
        None => (None, (&[][..], &[][..])),
    };
    entries
        .0
        .iter()
        .chain(entries.1)
        .filter_map(move |&(j, w)| {
            let x = N::apply(f?, u64::from(w));
            let v = value(x, clip(x, column(consensus, j)));
            (v > N::ZERO).then_some((j, v))
        })
}

/// The original Yuma's bonds and dividends (SPEC.md §10 steps Y8o-Y10o). On entry
/// `delta_sums` holds `sum_i dB_ij` and `old_sums` `sum_i B_ij`; `spare` is free. On return
/// `dividends` holds `d_i` (not yet normalised) and the bonds are stored.
#[allow(
    clippy::too_many_arguments,
    reason = "the epoch's buffers, each with its role"
)]
fn original_bonds<N, W, B>(
    yuma: &Rows<'_, W>,
    rule: Rule<N>,
    bonds: &mut [B],
    consensus: &[N],
    incentive: &[N],
    delta_sums: &mut [N],
    old_sums: &mut [N],
    spare: &mut [N],
) -> Result<(), Error>
where
    N: Scalar,
    W: AsRef<[(Uid, Weight)]>,
    B: BondRowMut<N>,
{
    let keep = N::ONE.sub(rule.alpha);
    // ema_ij = alpha dB_ij / sum_k dB_kj + (1 - alpha) B_ij / sum_k B_kj, summed per column
    // into `spare`.
    spare.fill(N::ZERO);
    for (i, b) in bonds.iter_mut().enumerate() {
        let a: N = yuma.active(i);
        let value = move |x: N, clipped: N| a.mul(for_bonds(x, clipped, rule.penalty));
        let (deltas, olds) = (&*delta_sums, &*old_sums);
        merge_row(b, i, fresh(yuma, i, consensus, value), |j, old, new| {
            let new = if new > N::ZERO {
                new.div(column(deltas, j))
            } else {
                N::ZERO
            };
            let sum = column(olds, j);
            let old = if old > N::ZERO && sum > N::ZERO {
                old.div(sum)
            } else {
                N::ZERO
            };
            rule.alpha.mul(new).add(keep.mul(old))
        })?;
        for &(j, v) in b.entries() {
            let s = at(spare, j)?;
            *s = s.add(v);
        }
    }
    // d_i = sum_j (ema_ij / sum_k ema_kj) I_j; M_j = max_i ema_ij (in `old_sums`).
    old_sums.fill(N::ZERO);
    for (i, b) in bonds.iter().enumerate() {
        let mut d = N::ZERO;
        for &(j, v) in b.entries() {
            d = d.add(v.div(column(spare, j)).mul(column(incentive, j)));
            let m = at(old_sums, j)?;
            if v > *m {
                *m = v;
            }
        }
        if let Some(slot) = delta_sums.get_mut(i) {
            *slot = d;
        }
    }
    // Stored: each column max-upscaled, on the u16 grid.
    for (i, b) in bonds.iter_mut().enumerate() {
        if yuma.rows.stake.get(i).copied().unwrap_or(0) == 0 {
            b.resize(0, (0, N::ZERO));
            continue;
        }
        let maxima = &*old_sums;
        store(b, |j, v| on_u16_grid(v.div(column(maxima, j))));
    }
    Ok(())
}

/// Yuma 3's bonds and dividends (SPEC.md §10 steps Y8-Y10). `sums` is free on entry. On
/// return `dividends` holds `D_i` (not yet normalised) and the bonds are stored.
#[allow(
    clippy::too_many_arguments,
    reason = "the epoch's buffers, each with its role"
)]
fn yuma3_bonds<N, W, B>(
    yuma: &Rows<'_, W>,
    rule: Rule<N>,
    liquid_alpha: Option<LiquidAlpha<N>>,
    bonds: &mut [B],
    consensus: &[N],
    incentive: &[N],
    dividends: &mut [N],
    sums: &mut [N],
) -> Result<(), Error>
where
    N: Scalar,
    W: AsRef<[(Uid, Weight)]>,
    B: BondRowMut<N>,
{
    // Liquid alpha applies when on and some consensus is above 0.
    let liquid_alpha = liquid_alpha.filter(|_| consensus.iter().any(|&c| c > N::ZERO));
    sums.fill(N::ZERO);
    for (i, b) in bonds.iter_mut().enumerate() {
        let value = move |x: N, clipped: N| for_bonds(x, clipped, rule.penalty);
        merge_row(b, i, fresh(yuma, i, consensus, value), |j, old, w| {
            let a = match liquid_alpha {
                Some(l) => liquid(l, column(consensus, j), w, old),
                None => rule.alpha,
            };
            let v = N::ONE.sub(a).mul(old).add(a.mul(w));
            if v > N::ONE { N::ONE } else { v }
        })?;
        for &(j, v) in b.entries() {
            let s = at(sums, j)?;
            *s = s.add(v);
        }
    }
    // D_i = a_i sum_j (B_ij / sum_k B_kj) I_j; the bonds are then stored on the u16 grid.
    for (i, (b, d)) in bonds.iter_mut().zip(dividends.iter_mut()).enumerate() {
        let a: N = yuma.active(i);
        let held = b.entries().iter().fold(N::ZERO, |acc, &(j, v)| {
            acc.add(v.div(column(sums, j)).mul(column(incentive, j)))
        });
        *d = held.mul(a);
        if yuma.rows.stake.get(i).copied().unwrap_or(0) == 0 {
            b.resize(0, (0, N::ZERO));
            continue;
        }
        store(b, |_, v| on_u16_grid(v));
    }
    Ok(())
}

/// Rewrites each entry of a bond row as `to(j, B_ij)`, dropping those at 0.
fn store<N: Scalar, B: BondRowMut<N>>(b: &mut B, to: impl Fn(Uid, N) -> N) {
    let entries = b.entries_mut();
    let mut kept = 0usize;
    for k in 0..entries.len() {
        let Some(&(j, v)) = entries.get(k) else {
            break;
        };
        let v = to(j, v);
        if v > N::ZERO {
            if let Some(slot) = entries.get_mut(kept) {
                *slot = (j, v);
            }
            kept = kept.saturating_add(1);
        }
    }
    b.resize(kept, (0, N::ZERO));
}

#[cfg(test)]
mod tests {
    use super::*;
    use deepnode_types::Fx;

    #[test]
    fn the_u16_grid_floors() {
        // floor(65535 / 4) = 16383.
        assert_eq!(
            on_u16_grid(Fx::from_ratio(1, 4)),
            Fx::from_ratio(16_383, 65_535)
        );
        // 1/3 on the Fx grid lies below 21845 / 65535.
        assert_eq!(
            on_u16_grid(Fx::from_ratio(1, 3)),
            Fx::from_ratio(21_844, 65_535)
        );
        assert_eq!(on_u16_grid(Fx::ONE), Fx::ONE);
        assert_eq!(on_u16_grid(Fx::ZERO), Fx::ZERO);
    }

    #[test]
    fn liquid_alpha_stays_between_its_bounds() {
        let l = LiquidAlpha {
            alpha_low: 0.1f64,
            alpha_high: 0.3,
            steepness: 10.0,
        };
        // The subtensor tests' first epoch: weight 1 at consensus 1, no bond: 0.1 + 0.2 s(-5).
        let a = liquid(l, 1.0, 1.0, 0.0);
        assert!((a - 0.101_338_6).abs() < 1e-6, "{a}");
        for (c, w, b) in [(0.0, 1.0, 0.0), (1.0, 0.0, 1.0), (0.5, 0.5, 0.5)] {
            let a = liquid(l, c, w, b);
            assert!((0.1..=0.3).contains(&a), "{a}");
        }
    }
}
