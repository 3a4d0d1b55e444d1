//! Vec-backed state and outputs of one epoch.

use alloc::vec::Vec;

use crate::{Params, Uid, Weight};

/// Node `i`'s weights: `(uid j, raw weight)` entries, uids unique (any order on input).
pub type WeightRow = Vec<(Uid, Weight)>;

/// Node `i`'s bonds: `(uid j, B_ij)` entries, uids unique, values non-negative.
pub type BondRow<N> = Vec<(Uid, N)>;

/// Everything an epoch reads: mechanism.md "State of one network".
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(
    feature = "codec",
    derive(parity_scale_codec::Encode, parity_scale_codec::Decode)
)]
pub struct State<N> {
    /// Mechanism parameters.
    pub params: Params<N>,
    /// `stake[i]`, raw units; its length is `n`.
    pub stake: Vec<u64>,
    /// `weights[i]`, at most `n` rows; a missing row is empty.
    pub weights: Vec<WeightRow>,
    /// `bonds[i]`, at most `n` rows; a missing row is empty.
    pub bonds: Vec<BondRow<N>>,
}

/// What an epoch produces (mechanism.md steps 3 to 11), each vector of length `n`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(
    feature = "codec",
    derive(parity_scale_codec::Encode, parity_scale_codec::Decode)
)]
pub struct EpochOutput<N> {
    /// Rank `r_j = sum_i w_ij s_i`.
    pub rank: Vec<N>,
    /// Trust `t_j = sum_i [w_ij > threshold] s_i`.
    pub trust: Vec<N>,
    /// Consensus `c_j = sigmoid(rho (t_j - kappa))`.
    pub consensus: Vec<N>,
    /// Incentive `i_j = r_j c_j / sum_k r_k c_k` (all 0 when the sum is 0).
    pub incentive: Vec<N>,
    /// Dividends `d_i = sum_j beta_ij i_j`.
    pub dividends: Vec<N>,
    /// Consensus loss `L = -sum_j r_j (c_j - 1/2)`.
    pub loss: N,
    /// Units minted to each node this epoch.
    pub minted: Vec<u64>,
    /// Stake after minting.
    pub stake: Vec<u64>,
    /// Bonds after this epoch's update, rows sorted by uid.
    pub bonds: Vec<BondRow<N>>,
}
