//! Step 11 (SPEC.md §5): each node's emission `delta_i`, the units minted and the new stake.

use deepnode_types::Params;

use crate::Scalar;

/// Step 11: `delta_i = lambda i_i + (1 - lambda) d_i`; `minted_i = floor(emission delta_i)`
/// (any excess over `emission` taken back); `stake_i += minted_i`.
pub(crate) fn mint<N: Scalar>(
    params: &Params<N>,
    stake: &[u64],
    incentive: &[N],
    dividends: &[N],
    minted: &mut [u64],
    new_stake: &mut [u64],
) {
    let keep = params.self_share;
    let pass = N::ONE.sub(keep);
    for (((m, &old), &inc), &div) in minted.iter_mut().zip(stake).zip(incentive).zip(dividends) {
        let delta = keep.mul(inc).add(pass.mul(div));
        // A stake at u64::MAX takes no more: what does not fit is not minted.
        *m = delta
            .of_units(params.emission)
            .min(u64::MAX.saturating_sub(old));
    }
    take_back_excess(minted, params.emission);
    for ((new, &old), &m) in new_stake.iter_mut().zip(stake).zip(&*minted) {
        *new = old.saturating_add(m);
    }
}

/// Makes `sum minted <= emission` hold whatever the backend's rounding: the excess (never any
/// on the fixed path, where every step rounds down; a few units of float rounding otherwise)
/// is taken back from the largest mintings, the lowest uid first among equals.
pub(crate) fn take_back_excess(minted: &mut [u64], emission: u64) {
    let total = minted
        .iter()
        .fold(0u128, |acc, &m| acc.saturating_add(u128::from(m)));
    let mut excess = total.saturating_sub(u128::from(emission));
    while excess > 0 {
        let Some(top) = minted.iter_mut().reduce(|a, b| if *b > *a { b } else { a }) else {
            break;
        };
        if *top == 0 {
            break;
        }
        let take = u64::try_from(excess).unwrap_or(u64::MAX).min(*top);
        *top = top.saturating_sub(take);
        excess = excess.saturating_sub(u128::from(take));
    }
}
