//! The rows of an epoch's input as the passes read them: a run of consecutive rows, and the
//! live entries of a row (all, or all but the node's own with `mask_self_weights`).

use deepnode_types::{Uid, Weight};

use crate::epoch::Activity;

/// A run of consecutive rows of the epoch's input: rows `first..first + stake.len()`.
/// `weights` is the whole list (shorter than `n` when the last rows are empty) and `stake`
/// the run's own stakes.
pub(crate) struct RowsRef<'a, W> {
    /// The uid of the run's first row.
    pub(crate) first: usize,
    /// Every weights row of the epoch (indexed by uid).
    pub(crate) weights: &'a [W],
    /// `stake_i` of the run's rows.
    pub(crate) stake: &'a [u64],
    /// The rows' last updates (indexed by uid).
    pub(crate) activity: Activity<'a>,
    /// `params.activity_cutoff`.
    pub(crate) cutoff: u64,
}

// Copy without the `W: Copy` bound a derive would add (only references are copied).
impl<W> Clone for RowsRef<'_, W> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<W> Copy for RowsRef<'_, W> {}

impl<'a, W: AsRef<[(Uid, Weight)]>> RowsRef<'a, W> {
    /// Weights row `i` (a uid; empty when missing).
    #[inline(always)]
    pub(crate) fn row(&self, i: usize) -> &'a [(Uid, Weight)] {
        self.weights.get(i).map_or(&[][..], AsRef::as_ref)
    }

    /// Whether row `i` (a uid) is absent ([`Activity::absent`]).
    #[inline(always)]
    pub(crate) fn absent(&self, i: usize) -> bool {
        self.activity.absent(self.cutoff, i)
    }
}

/// The row's entries that count, as two runs: all (and an empty run), or the entries before
/// and after `(i, _)` when self weights are masked. Rows are sorted by uid, so the masked
/// self entry is found by binary search.
#[inline]
pub(crate) fn live(row: &[(Uid, Weight)], i: usize, mask: bool) -> (&[Entry], &[Entry]) {
    let own = if mask {
        Uid::try_from(i)
            .ok()
            .and_then(|i| row.binary_search_by_key(&i, |e| e.0).ok())
    } else {
        None
    };
    match own {
        Some(k) => (
            row.get(..k).unwrap_or_default(),
            row.get(k.saturating_add(1)..).unwrap_or_default(),
        ),
        None => (row, &[][..]),
    }
}

/// One entry of a weights row.
pub(crate) type Entry = (Uid, Weight);

/// A row's live entries as two runs ([`live`]).
pub(crate) type LiveRuns<'a> = (&'a [Entry], &'a [Entry]);

/// The live entries of a row, in uid order.
#[inline]
pub(crate) fn live_iter(
    row: &[(Uid, Weight)],
    i: usize,
    mask: bool,
) -> impl DoubleEndedIterator<Item = &(Uid, Weight)> {
    let (before, after) = live(row, i, mask);
    before.iter().chain(after)
}

/// `sum_j weight_ij` over the live entries (< 2^48 for rows of at most 2^32 entries).
#[inline]
pub(crate) fn row_sum(row: &[(Uid, Weight)], i: usize, mask: bool) -> u64 {
    let (before, after) = live(row, i, mask);
    let sum = |part: &[(Uid, Weight)]| part.iter().map(|&(_, w)| u64::from(w)).sum::<u64>();
    sum(before).saturating_add(sum(after))
}
