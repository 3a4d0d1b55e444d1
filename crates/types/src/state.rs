//! Vec-backed state and outputs of one epoch.

use alloc::vec::Vec;

use crate::{Params, Uid, Weight};

/// Node `i`'s weights: `(uid j, raw weight)` entries, uids unique (any order on input).
pub type WeightRow = Vec<(Uid, Weight)>;

/// Node `i`'s bonds: `(uid j, B_ij)` entries, uids unique, values non-negative.
pub type BondRow<N> = Vec<(Uid, N)>;

/// Everything an epoch reads: SPEC.md "State of one network".
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
    /// The block (the epoch, in the simulator) at which this epoch runs; read only with
    /// `params.activity_cutoff > 0`.
    pub block: u64,
    /// `last_update[i]`: the block of node `i`'s last accepted weights row. Empty (every row
    /// present) or exactly `n` entries.
    pub last_update: Vec<u64>,
}

/// One node's outputs of an epoch (what a ledger or a pallet stores per neuron).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(
    feature = "codec",
    derive(
        parity_scale_codec::Encode,
        parity_scale_codec::Decode,
        parity_scale_codec::MaxEncodedLen
    )
)]
#[cfg_attr(feature = "scale-info", derive(scale_info::TypeInfo))]
pub struct NeuronStats<N = crate::Fx> {
    /// Rank `r`.
    pub rank: N,
    /// Trust `t`.
    pub trust: N,
    /// Consensus `c`.
    pub consensus: N,
    /// Incentive `i`.
    pub incentive: N,
    /// Dividends `d`.
    pub dividends: N,
    /// Units minted to it.
    pub emission: u64,
}

/// What an epoch produces (SPEC.md §5 steps 3 to 11), each vector of length `n`.
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

impl<N: Copy> EpochOutput<N> {
    /// Node `i`'s outputs, or `None` past the last node.
    pub fn stats(&self, i: usize) -> Option<NeuronStats<N>> {
        Some(NeuronStats {
            rank: *self.rank.get(i)?,
            trust: *self.trust.get(i)?,
            consensus: *self.consensus.get(i)?,
            incentive: *self.incentive.get(i)?,
            dividends: *self.dividends.get(i)?,
            emission: *self.minted.get(i)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec;

    use super::{EpochOutput, NeuronStats};

    #[test]
    fn stats_take_one_node_of_every_output() {
        let out = EpochOutput {
            rank: vec![0.1, 0.2],
            trust: vec![0.3, 0.4],
            consensus: vec![0.5, 0.6],
            incentive: vec![0.7, 0.8],
            dividends: vec![0.9, 1.0],
            loss: 0.0,
            minted: vec![11, 12],
            stake: vec![21, 22],
            bonds: vec![vec![], vec![]],
        };
        let expected = NeuronStats {
            rank: 0.2,
            trust: 0.4,
            consensus: 0.6,
            incentive: 0.8,
            dividends: 1.0,
            emission: 12,
        };
        assert_eq!(out.stats(1), Some(expected));
        assert_eq!(out.stats(2), None);
    }
}
