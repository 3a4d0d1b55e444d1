//! Input checks shared by the epoch and by ledgers that accept rows.

use deepnode_types::{BondMode, Departed, Params, Uid, Weight};

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
