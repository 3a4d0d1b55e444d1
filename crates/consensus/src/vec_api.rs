//! The allocating API: any row order in, canonical rows out.

use alloc::borrow::Cow;
use alloc::vec;
use alloc::vec::Vec;

use deepnode_types::{EpochOutput, Params, State, Uid, Weight};

use crate::epoch::{Activity, Outputs, epoch_in_place_at};
#[cfg(doc)]
use crate::epoch_in_place;
use crate::{Error, Scalar};

/// Sorts a row by uid; rejects a row longer than `n` or with a repeated uid. `what` names
/// the row kind and `row` its owner in the error.
pub fn canonicalize<V: Copy>(
    what: &'static str,
    row: usize,
    entries: &[(Uid, V)],
    n: usize,
) -> Result<Vec<(Uid, V)>, Error> {
    if entries.len() > n {
        return Err(Error::RowTooLong {
            what,
            row,
            len: entries.len(),
            max: n,
        });
    }
    let mut sorted = entries.to_vec();
    sorted.sort_unstable_by_key(|&(u, _)| u);
    if let Some(w) = sorted
        .windows(2)
        .find(|w| matches!(w, [a, b] if a.0 == b.0))
    {
        let uid = w.first().map_or(0, |e| e.0);
        return Err(Error::DuplicateUid { what, row, uid });
    }
    Ok(sorted)
}

/// Runs one epoch of SPEC.md on `state` and returns every output, bonds included.
///
/// Rows may be in any uid order and fewer than `n` (missing rows are empty). The input is not
/// modified. Bit-exact on every platform for [`deepnode_types::Fx`]. `state.block` and
/// `state.last_update` decide which rows are absent ([`epoch_in_place_at`]).
pub fn epoch<N: Scalar>(state: &State<N>) -> Result<EpochOutput<N>, Error> {
    epoch_with(state, |params, stake, weights, activity, bonds, out| {
        epoch_in_place_at(params, stake, weights, activity, bonds, out)
    })
}

/// A row of weights as [`epoch_with`] passes it on: borrowed when already canonical.
pub(crate) type WeightsRow<'a> = Cow<'a, [(Uid, Weight)]>;

/// [`epoch`] with `run` in place of [`epoch_in_place_at`]: canonical rows in, every output out.
pub(crate) fn epoch_with<N: Scalar>(
    state: &State<N>,
    run: impl FnOnce(
        &Params<N>,
        &[u64],
        &[WeightsRow<'_>],
        Activity<'_>,
        &mut [Vec<(Uid, N)>],
        Outputs<'_, N>,
    ) -> Result<N, Error>,
) -> Result<EpochOutput<N>, Error> {
    let n = state.stake.len();
    if n == 0 {
        return Err(Error::NoNodes);
    }
    if state.weights.len() > n {
        return Err(Error::TooManyRows {
            what: "weights",
            rows: state.weights.len(),
            n,
        });
    }
    if state.bonds.len() > n {
        return Err(Error::TooManyRows {
            what: "bonds",
            rows: state.bonds.len(),
            n,
        });
    }
    // Rows already sorted (as ledgers store them) are borrowed, not copied.
    let weights = state
        .weights
        .iter()
        .enumerate()
        .map(|(i, r)| {
            if r.len() <= n && r.windows(2).all(|w| matches!(w, [a, b] if a.0 < b.0)) {
                Ok(Cow::Borrowed(r.as_slice()))
            } else {
                canonicalize("weights", i, r, n).map(Cow::Owned)
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut bonds = state
        .bonds
        .iter()
        .enumerate()
        .map(|(i, r)| canonicalize("bonds", i, r, n))
        .collect::<Result<Vec<_>, _>>()?;
    bonds.resize(n, Vec::new());

    let mut out = OutputBuffers::new(n);
    let activity = Activity {
        block: state.block,
        last_update: &state.last_update,
    };
    let loss = run(
        &state.params,
        &state.stake,
        &weights,
        activity,
        &mut bonds,
        out.outputs(),
    )?;
    let OutputBuffers {
        rank,
        trust,
        consensus,
        incentive,
        dividends,
        minted,
        stake,
        scratch: _,
    } = out;
    Ok(EpochOutput {
        rank,
        trust,
        consensus,
        incentive,
        dividends,
        loss,
        minted,
        stake,
        bonds,
    })
}

/// Owned buffers of length `n` for every output of [`epoch_in_place`], for callers that run
/// epoch after epoch on the same memory (the simulator, benchmarks).
#[derive(Clone, Debug, PartialEq)]
pub struct OutputBuffers<N> {
    /// Rank `r_j`.
    pub rank: Vec<N>,
    /// Trust `t_j`.
    pub trust: Vec<N>,
    /// Consensus `c_j`.
    pub consensus: Vec<N>,
    /// Incentive `i_j`.
    pub incentive: Vec<N>,
    /// Dividends `d_i`.
    pub dividends: Vec<N>,
    /// Units minted to each node.
    pub minted: Vec<u64>,
    /// Stake after minting.
    pub stake: Vec<u64>,
    /// Working space: `4n` entries, so that Yuma's median selects every column by blocks (see
    /// [`Outputs::scratch`]).
    pub scratch: Vec<N>,
}

impl<N: Scalar> OutputBuffers<N> {
    /// Zeroed buffers for `n` nodes.
    pub fn new(n: usize) -> Self {
        OutputBuffers {
            rank: vec![N::ZERO; n],
            trust: vec![N::ZERO; n],
            consensus: vec![N::ZERO; n],
            incentive: vec![N::ZERO; n],
            dividends: vec![N::ZERO; n],
            minted: vec![0; n],
            stake: vec![0; n],
            scratch: vec![N::ZERO; n.saturating_mul(4)],
        }
    }

    /// The buffers as the [`Outputs`] of one [`epoch_in_place`] call.
    pub fn outputs(&mut self) -> Outputs<'_, N> {
        Outputs {
            rank: &mut self.rank,
            trust: &mut self.trust,
            consensus: &mut self.consensus,
            incentive: &mut self.incentive,
            dividends: &mut self.dividends,
            minted: &mut self.minted,
            stake: &mut self.stake,
            scratch: &mut self.scratch,
        }
    }
}
