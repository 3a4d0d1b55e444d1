//! Steps 5 to 7 (SPEC.md §5): consensus `c_j`, incentive `i_j` and the consensus loss `L`,
//! column by column.

use deepnode_types::Params;

use crate::Scalar;
use crate::validate::{consensus_of, consensus_of_pair};

/// Steps 5 and 6 column by column: `c_j = sigmoid(rho (t_j - kappa))` and `x_j = r_j c_j`
/// (into `incentive`, normalised by [`normalise_incentive`]). Each column on its own.
pub(crate) fn consensus_columns<N: Scalar>(
    params: &Params<N>,
    trust: &[N],
    rank: &[N],
    consensus: &mut [N],
    incentive: &mut [N],
) {
    // Two columns at a time: their sigmoids' multiply chains overlap (the same bits).
    let (c2, c_rest) = consensus.as_chunks_mut::<2>();
    let (t2, t_rest) = trust.as_chunks::<2>();
    for (c, &t) in c2.iter_mut().zip(t2) {
        *c = consensus_of_pair(params, t);
    }
    for (c, &t) in c_rest.iter_mut().zip(t_rest) {
        *c = consensus_of(params, t);
    }
    for ((i, &c), &r) in incentive.iter_mut().zip(consensus.iter()).zip(rank) {
        *i = r.mul(c);
    }
}

/// `sum_j x_j` and the loss `L = sum_j r_j (1/2 - c_j)` (step 7), added in column order.
pub(crate) fn incentive_sums<N: Scalar>(rank: &[N], consensus: &[N], incentive: &[N]) -> (N, N) {
    let half = N::ratio(1, 2);
    let mut x_sum = N::ZERO;
    let mut loss = N::ZERO;
    for ((&x, &c), &r) in incentive.iter().zip(consensus).zip(rank) {
        x_sum = x_sum.add(x);
        loss = loss.add(r.mul(half.sub(c)));
    }
    (x_sum, loss)
}

/// `i_j = x_j / sum x` (all 0 when the sum is 0). Each column on its own.
pub(crate) fn normalise_incentive<N: Scalar>(incentive: &mut [N], x_sum: N) {
    for i in incentive.iter_mut() {
        // x_sum > 0 on this branch, and 0 <= x_j <= x_sum.
        *i = if x_sum > N::ZERO {
            i.div(x_sum)
        } else {
            N::ZERO
        };
    }
}
