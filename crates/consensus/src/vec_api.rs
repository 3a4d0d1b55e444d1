//! The allocating API: any row order in, canonical rows out.

use alloc::borrow::Cow;
use alloc::vec;
use alloc::vec::Vec;

use deepnode_types::{EpochOutput, State, Uid};

use crate::epoch::{Outputs, epoch_in_place};
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

/// Runs one epoch of mechanism.md on `state` and returns every output, bonds included.
///
/// Rows may be in any uid order and fewer than `n` (missing rows are empty). The input is not
/// modified. Bit-exact on every platform for [`deepnode_types::Fx`].
pub fn epoch<N: Scalar>(state: &State<N>) -> Result<EpochOutput<N>, Error> {
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

    let mut rank = vec![N::ZERO; n];
    let mut trust = vec![N::ZERO; n];
    let mut consensus = vec![N::ZERO; n];
    let mut incentive = vec![N::ZERO; n];
    let mut dividends = vec![N::ZERO; n];
    let mut minted = vec![0u64; n];
    let mut stake = vec![0u64; n];
    let mut scratch = vec![N::ZERO; n];
    let loss = epoch_in_place(
        &state.params,
        &state.stake,
        &weights,
        &mut bonds,
        Outputs {
            rank: &mut rank,
            trust: &mut trust,
            consensus: &mut consensus,
            incentive: &mut incentive,
            dividends: &mut dividends,
            minted: &mut minted,
            stake: &mut stake,
            scratch: &mut scratch,
        },
    )?;
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
