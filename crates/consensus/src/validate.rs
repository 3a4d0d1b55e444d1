//! Input checks: those shared by the epoch and by ledgers that accept rows, and the epoch's
//! own checks of shapes and rows, all run before any bond is written.

use deepnode_types::{BondMode, Departed, Params, Uid, Weight};

use crate::bonds::{BondRowMut, same_uids, union_len};
use crate::epoch::{Activity, Outputs};
use crate::{Error, Scalar};

/// Checks every parameter's range (SPEC.md table): `rho > 0`, `kappa` and `self_share`
/// in `[0, 1]`, `trust_threshold` in `[0, 1)`, EMA `alpha` in `(0, 1]`. NaN is out of range.
pub fn check_params<N: Scalar>(params: &Params<N>) -> Result<(), Error> {
    let unit = |x: N| x >= N::ZERO && x <= N::ONE;
    if !(params.rho > N::ZERO && params.rho <= N::MAX) {
        return Err(Error::ParamOutOfRange {
            name: "rho",
            range: "(0, max]",
        });
    }
    if !unit(params.kappa) {
        return Err(Error::ParamOutOfRange {
            name: "kappa",
            range: "[0, 1]",
        });
    }
    if !unit(params.self_share) {
        return Err(Error::ParamOutOfRange {
            name: "self_share",
            range: "[0, 1]",
        });
    }
    if !(params.trust_threshold >= N::ZERO && params.trust_threshold < N::ONE) {
        return Err(Error::ParamOutOfRange {
            name: "trust_threshold",
            range: "[0, 1)",
        });
    }
    if let BondMode::Ema { alpha } = params.bonds
        && !(alpha > N::ZERO && alpha <= N::ONE)
    {
        return Err(Error::ParamOutOfRange {
            name: "alpha",
            range: "(0, 1]",
        });
    }
    if let Departed::Decay { rate } = params.departed
        && !(rate > N::ZERO && rate <= N::ONE)
    {
        return Err(Error::ParamOutOfRange {
            name: "rate",
            range: "(0, 1]",
        });
    }
    check_yuma_params(params.bonds)
}

/// The Yuma rules' parameters: `bonds_moving_average` and `bonds_penalty` in `[0, 1]`; with
/// liquid alpha, `0 <= alpha_low <= alpha_high <= 1` and `steepness >= 0`.
fn check_yuma_params<N: Scalar>(bonds: BondMode<N>) -> Result<(), Error> {
    let unit = |x: N| x >= N::ZERO && x <= N::ONE;
    let (average, penalty, liquid) = match bonds {
        BondMode::Cumulative | BondMode::Ema { .. } => return Ok(()),
        BondMode::Yuma {
            bonds_moving_average,
            bonds_penalty,
        } => (bonds_moving_average, bonds_penalty, None),
        BondMode::Yuma3 {
            bonds_moving_average,
            bonds_penalty,
            liquid_alpha,
        } => (bonds_moving_average, bonds_penalty, liquid_alpha),
    };
    let out = |name| Error::ParamOutOfRange {
        name,
        range: "[0, 1]",
    };
    if !unit(average) {
        return Err(out("bonds_moving_average"));
    }
    if !unit(penalty) {
        return Err(out("bonds_penalty"));
    }
    if let Some(l) = liquid {
        if !unit(l.alpha_low) {
            return Err(out("alpha_low"));
        }
        if !(unit(l.alpha_high) && l.alpha_high >= l.alpha_low) {
            return Err(Error::ParamOutOfRange {
                name: "alpha_high",
                range: "[alpha_low, 1]",
            });
        }
        if !(l.steepness >= N::ZERO && l.steepness <= N::MAX) {
            return Err(Error::ParamOutOfRange {
                name: "steepness",
                range: "[0, max]",
            });
        }
    }
    Ok(())
}

/// Checks that a row's uids are `< n`, strictly increasing (so unique).
pub(crate) fn check_row(
    what: &'static str,
    row: usize,
    uids: impl Iterator<Item = Uid>,
    n: usize,
) -> Result<(), Error> {
    let mut last: Option<Uid> = None;
    for uid in uids {
        if usize::try_from(uid).map_or(true, |u| u >= n) {
            return Err(Error::UidOutOfRange { what, row, uid, n });
        }
        match last {
            Some(prev) if prev == uid => return Err(Error::DuplicateUid { what, row, uid }),
            Some(prev) if prev > uid => return Err(Error::UnsortedRow { what, row }),
            _ => {}
        }
        last = Some(uid);
    }
    Ok(())
}

/// Checks a weights row as a ledger receives it from node `owner` of `n`: uids in range and
/// unique (any order), at most `max_len` entries, and at least `min_allowed_weights` non-zero
/// entries (a masked self weight does not count).
///
/// Linear in the row's length when its uids are strictly increasing (how nodes, the simulator
/// and the epoch hold rows); an unsorted row is checked for duplicates without allocating, in
/// time quadratic in its length (bounded by `max_len`).
pub fn validate_row<N: Scalar>(
    params: &Params<N>,
    owner: usize,
    row: &[(Uid, Weight)],
    n: usize,
    max_len: usize,
) -> Result<(), Error> {
    if row.len() > max_len.min(n) {
        return Err(Error::RowTooLong {
            what: "weights",
            row: owner,
            len: row.len(),
            max: max_len.min(n),
        });
    }
    let sorted = row.windows(2).all(|w| matches!(w, [a, b] if a.0 < b.0));
    for (k, &(uid, _)) in row.iter().enumerate() {
        if usize::try_from(uid).map_or(true, |u| u >= n) {
            return Err(Error::UidOutOfRange {
                what: "weights",
                row: owner,
                uid,
                n,
            });
        }
        if !sorted && row.iter().take(k).any(|&(u, _)| u == uid) {
            return Err(Error::DuplicateUid {
                what: "weights",
                row: owner,
                uid,
            });
        }
    }
    check_min_weights(params, owner, row)
}

/// The `min_allowed_weights` rule alone: `row` (of node `owner`) has at least
/// `params.min_allowed_weights` non-zero entries, not counting a self weight when
/// `mask_self_weights` is set. Linear in the row's length. [`validate_row`] applies it last.
pub fn check_min_weights<N: Scalar>(
    params: &Params<N>,
    owner: usize,
    row: &[(Uid, Weight)],
) -> Result<(), Error> {
    let is_self = |u: Uid| params.mask_self_weights && usize::try_from(u) == Ok(owner);
    let nonzero = row.iter().filter(|&&(u, w)| w > 0 && !is_self(u)).count();
    if u32::try_from(nonzero).is_ok_and(|c| c >= params.min_allowed_weights) {
        Ok(())
    } else {
        Err(Error::TooFewWeights {
            nonzero,
            min: params.min_allowed_weights,
        })
    }
}

/// The consensus curve of SPEC.md: `c(t) = sigmoid(rho (t - kappa))`, the consensus of a
/// node whose trust is `t`. The epoch computes `c_j` with exactly this curve, two columns at a
/// time ([`Scalar::sigmoid_pair`], the same bits).
pub fn consensus_of<N: Scalar>(params: &Params<N>, trust: N) -> N {
    consensus_arg(params, trust).sigmoid()
}

/// [`consensus_of`] for two trusts at once.
pub(crate) fn consensus_of_pair<N: Scalar>(params: &Params<N>, trust: [N; 2]) -> [N; 2] {
    N::sigmoid_pair(trust.map(|t| consensus_arg(params, t)))
}

/// The sigmoid's argument `rho (t - kappa)`.
fn consensus_arg<N: Scalar>(params: &Params<N>, trust: N) -> N {
    params.rho.mul(trust.sub(params.kappa))
}

/// Whether a weights row's uids are strictly increasing and below `n` (one branch-free pass;
/// [`check_row`] then gives the exact error), and `sum_j weight_ij` over the whole row.
///
/// Strictly increasing uids are below `n` when the last one is, so each entry costs one
/// comparison, with its predecessor.
#[inline(always)]
pub(crate) fn uids_ok_and_sum(row: &[(Uid, Weight)], n: usize) -> (bool, u64) {
    let last_ok = row
        .last()
        .is_none_or(|&(u, _)| usize::try_from(u).is_ok_and(|u| u < n));
    let mut increasing = true;
    let mut prev = -1i64;
    let mut sum = 0u64;
    for &(u, w) in row {
        increasing &= i64::from(u) > prev;
        prev = i64::from(u);
        // Below 2^48 for rows of at most 2^32 entries.
        sum = sum.wrapping_add(u64::from(w));
    }
    (last_ok & increasing, sum)
}

/// Bond row `i`: uids below `n`, strictly increasing, values in `[0, N::MAX]`; a bounded row
/// must hold the union of its old entries and the new ones (counting every non-zero weight of
/// a staked row is an upper bound that needs no shares yet; a zero-stake row brings none).
/// `row` has passed its own check.
pub(crate) fn check_bonds<N: Scalar, B: BondRowMut<N>>(
    params: &Params<N>,
    i: usize,
    b: &B,
    row: &[(Uid, Weight)],
    stake: u64,
    n: usize,
) -> Result<(), Error> {
    let entries = b.entries();
    if same_uids(entries, row) {
        // The steady state: the row's uids, already checked, and the union is the row itself
        // (at most its capacity). Only the values are left.
        let ok = entries
            .iter()
            .fold(true, |ok, &(_, v)| ok & (v >= N::ZERO) & (v <= N::MAX));
        if !ok
            && let Some(&(uid, _)) = entries
                .iter()
                .find(|&&(_, v)| !(v >= N::ZERO && v <= N::MAX))
        {
            return Err(Error::InvalidBond { row: i, uid });
        }
        return Ok(());
    }
    let mut ok = true;
    let mut next = 0u64;
    let n64 = u64::try_from(n).unwrap_or(u64::MAX);
    for &(u, v) in entries {
        let u = u64::from(u);
        ok &= (u >= next) & (u < n64) & (v >= N::ZERO) & (v <= N::MAX);
        next = u.wrapping_add(1);
    }
    if !ok {
        check_row("bonds", i, entries.iter().map(|&(u, _)| u), n)?;
        if let Some(&(uid, _)) = entries
            .iter()
            .find(|&&(_, v)| !(v >= N::ZERO && v <= N::MAX))
        {
            return Err(Error::InvalidBond { row: i, uid });
        }
    }
    if b.capacity() == usize::MAX {
        return Ok(());
    }
    let staked = stake > 0;
    let len = union_len(entries, row, i, params.mask_self_weights, |w| {
        if staked && w > 0 { N::ONE } else { N::ZERO }
    });
    if len > b.capacity() {
        return Err(Error::RowTooLong {
            what: "bonds",
            row: i,
            len,
            max: b.capacity(),
        });
    }
    Ok(())
}

/// The checks that need no pass over the rows: `n > 0`, parameters, row and buffer counts.
/// The rows themselves are checked in the first pass of [`epoch_in_place`], before any bond
/// is written.
pub(crate) fn check_shapes<N: Scalar, W: AsRef<[(Uid, Weight)]>, B: BondRowMut<N>>(
    params: &Params<N>,
    stake: &[u64],
    weights: &[W],
    activity: Activity<'_>,
    bonds: &[B],
    out: &Outputs<'_, N>,
) -> Result<(), Error> {
    let n = stake.len();
    if n == 0 {
        return Err(Error::NoNodes);
    }
    check_params(params)?;
    if weights.len() > n {
        return Err(Error::TooManyRows {
            what: "weights",
            rows: weights.len(),
            n,
        });
    }
    let updates = activity.last_update.len();
    if updates != 0 && updates != n {
        return Err(Error::BufferLength {
            name: "last_update",
            len: updates,
            n,
        });
    }
    if bonds.len() != n {
        return Err(Error::BufferLength {
            name: "bonds",
            len: bonds.len(),
            n,
        });
    }
    let lens = [
        ("rank", out.rank.len()),
        ("trust", out.trust.len()),
        ("consensus", out.consensus.len()),
        ("incentive", out.incentive.len()),
        ("dividends", out.dividends.len()),
        ("minted", out.minted.len()),
        ("stake", out.stake.len()),
    ];
    if let Some(&(name, len)) = lens.iter().find(|&&(_, len)| len != n) {
        return Err(Error::BufferLength { name, len, n });
    }
    let len = out.scratch.len();
    if len < n {
        return Err(Error::BufferLength {
            name: "scratch",
            len,
            n,
        });
    }
    Ok(())
}
