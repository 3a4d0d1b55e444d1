//! Step 8 (SPEC.md §5): bond rows that the epoch rewrites in place (`Vec` with alloc, or
//! [`BoundedRow`] with no allocator), the bond rules and the bond column sums `C_j`.

use deepnode_types::{BondMode, BoundedRow, Departed, Params, Uid, Weight};

use crate::prefetch::{AHEAD, PREFETCH_MIN, fetch_rows_ahead, head, prefetch};
use crate::rows::{RowsRef, live, live_iter};
use crate::{Error, Scalar};

/// A row of bonds `(uid j, B_ij)`, sorted by uid, that the epoch grows and rewrites in place
/// (no allocation once a row has the room: a steady-state epoch allocates nothing).
pub trait BondRowMut<N> {
    /// The entries.
    fn entries(&self) -> &[(Uid, N)];
    /// The entries, for rewriting in place.
    fn entries_mut(&mut self) -> &mut [(Uid, N)];
    /// The most entries the row can hold (`usize::MAX` when unbounded).
    fn capacity(&self) -> usize;
    /// Sets the length to `len`, dropping entries past it or appending copies of `fill`;
    /// returns false, changing nothing, when `len` exceeds [`BondRowMut::capacity`].
    fn resize(&mut self, len: usize, fill: (Uid, N)) -> bool;
}

#[cfg(feature = "alloc")]
impl<N: Copy> BondRowMut<N> for alloc::vec::Vec<(Uid, N)> {
    fn entries(&self) -> &[(Uid, N)] {
        self
    }
    fn entries_mut(&mut self) -> &mut [(Uid, N)] {
        self
    }
    fn capacity(&self) -> usize {
        usize::MAX
    }
    fn resize(&mut self, len: usize, fill: (Uid, N)) -> bool {
        alloc::vec::Vec::resize(self, len, fill);
        true
    }
}

impl<N: Copy, const K: usize> BondRowMut<N> for BoundedRow<(Uid, N), K> {
    fn entries(&self) -> &[(Uid, N)] {
        self
    }
    fn entries_mut(&mut self) -> &mut [(Uid, N)] {
        self
    }
    fn capacity(&self) -> usize {
        K
    }
    fn resize(&mut self, len: usize, fill: (Uid, N)) -> bool {
        self.0.resize(len, fill).is_ok()
    }
}

/// Step 8 for a run of rows (`bonds` and `factors` hold the run's rows): each bond row is
/// merged with `w_ij s_i` (from `f_i` in `factors`); the kept entries are added onto `sums`
/// (length `n`), row after row, as the column sums `C_j = sum_k B_kj` of the run.
pub(crate) fn update_bonds<N, W, B>(
    params: &Params<N>,
    rows: RowsRef<'_, W>,
    bonds: &mut [B],
    factors: &[N],
    rank: &[N],
    sums: &mut [N],
) -> Result<(), Error>
where
    N: Scalar,
    W: AsRef<[(Uid, Weight)]>,
    B: BondRowMut<N>,
{
    let mask = params.mask_self_weights;
    for (k, &f) in factors.iter().enumerate() {
        let i = rows.first.wrapping_add(k);
        let row = rows.row(i);
        // The next row's first columns, up to a whole sparse row (the merge itself does not
        // prefetch along a row).
        for &(j, _) in head(rows.row(i.wrapping_add(1)), 4 * AHEAD) {
            prefetch(sums, j);
        }
        if sums.len() > PREFETCH_MIN {
            fetch_rows_ahead(rows, bonds, k);
        }
        let Some(b) = bonds.get_mut(k) else { break };
        if rows.absent(i) {
            update_absent_row(params, b, i, sums)?;
            continue;
        }
        let columns = Columns { rank, sums };
        update_bond_row(params.bonds, b, row, i, N::unpack_factor(f), mask, columns)?;
    }
    Ok(())
}

/// Step 8 for an absent row `i`: the bond rule with no new entries (cumulative keeps each
/// bond, EMA scales it by `1 - alpha`), then under [`Departed::Decay`] each bond is scaled by
/// `1 - rate`; zeros are dropped. Under [`Departed::Decay`] the kept bonds are added to their
/// column sums `C_j`; under [`Departed::Withhold`] they are left out of them.
pub(crate) fn update_absent_row<N: Scalar, B: BondRowMut<N>>(
    params: &Params<N>,
    bonds: &mut B,
    i: usize,
    sums: &mut [N],
) -> Result<(), Error> {
    let entries = bonds.entries_mut();
    let mut kept = 0usize;
    for k in 0..entries.len() {
        let Some(&(u, b)) = entries.get(k) else {
            break;
        };
        let v = mix(params.bonds, b, N::ZERO, || N::ZERO);
        let v = match params.departed {
            Departed::Withhold => v,
            Departed::Decay { rate } => N::ONE.sub(rate).mul(v),
        };
        match params.departed {
            Departed::Decay { .. } => kept = keep(i, entries, kept, (u, v), sums)?,
            Departed::Withhold => {
                if v > N::ZERO {
                    if let Some(slot) = entries.get_mut(kept) {
                        *slot = (u, v);
                    }
                    kept = kept.wrapping_add(1);
                }
            }
        }
    }
    bonds.resize(kept, (0, N::ZERO));
    Ok(())
}

/// The slot of uid `j`; uids were checked against `n`, so this fails only on a broken
/// invariant, reported rather than hidden.
pub(crate) fn at<N>(buf: &mut [N], j: Uid) -> Result<&mut N, Error> {
    let n = buf.len();
    usize::try_from(j)
        .ok()
        .and_then(|k| buf.get_mut(k))
        .ok_or(Error::UidOutOfRange {
            what: "weights",
            row: 0,
            uid: j,
            n,
        })
}

/// Whether a bond row and a run of weights hold the same uids, in the same slots.
#[inline]
pub(crate) fn same_uids<N>(bonds: &[(Uid, N)], row: &[(Uid, Weight)]) -> bool {
    bonds.len() == row.len()
        && bonds
            .iter()
            .zip(row)
            .fold(true, |same, (&(a, _), &(b, _))| same & (a == b))
}

/// Step 8 for row `i`: merges the bond row with this epoch's `w_ij s_i`, in place.
/// Cumulative adds; EMA mixes with `w_ij s_i / r_j`. Entries at 0 are dropped; the kept ones
/// are added to their column sums, in uid order (each column still adds row after row, so
/// the sums are the same bit for bit however a row is merged).
///
/// Three ways, none allocating once the row has the room: an empty row is written forward; a
/// row whose uids do not change is updated forward in its slots; a row that gains uids is
/// first grown to the union's length and then filled from its end, so each old entry is read
/// before its slot is overwritten.
pub(crate) fn update_bond_row<N: Scalar, B: BondRowMut<N>>(
    mode: BondMode<N>,
    bonds: &mut B,
    row: &[(Uid, Weight)],
    i: usize,
    f: N::Factor,
    mask: bool,
    columns: Columns<'_, N>,
) -> Result<(), Error> {
    let Columns { rank, sums } = columns;
    let value = |w: Weight| N::apply(f, u64::from(w));
    let fresh = || {
        live_iter(row, i, mask)
            .map(move |&(j, w)| (j, value(w)))
            .filter(|&(_, v)| v > N::ZERO)
    };
    let old_len = bonds.entries().len();
    if old_len == 0 {
        // A row without bonds (every row of a first epoch): written forward. It gets at most
        // one entry per weight, and the checks saw the non-zero ones fit its capacity.
        let room = row.len().min(bonds.capacity());
        if !bonds.resize(room, (0, N::ZERO)) {
            return Err(Error::RowTooLong {
                what: "bonds",
                row: i,
                len: room,
                max: bonds.capacity(),
            });
        }
        let entries = bonds.entries_mut();
        let mut kept = 0usize;
        for (j, v) in fresh() {
            let e = (j, mix(mode, N::ZERO, v, || rank_of(rank, j)));
            kept = keep(i, entries, kept, e, sums)?;
        }
        bonds.resize(kept, (0, N::ZERO));
        return Ok(());
    }
    let (before, after) = live(row, i, mask);
    if after.is_empty() && same_uids(bonds.entries(), before) {
        // The steady state: the bond row holds exactly the row's uids, so entry k of one is
        // entry k of the other. Every value is updated in its slot (one loop per bond rule),
        // then the zeros, if any, are dropped.
        let entries = bonds.entries_mut();
        let all_kept = match mode {
            BondMode::Cumulative | BondMode::Yuma { .. } | BondMode::Yuma3 { .. } => {
                update_in_slots(entries, before, sums, |_, b, w| b.add_nonneg(value(w)))
            }
            BondMode::Ema { .. } => update_in_slots(entries, before, sums, |u, b, w| {
                mix(mode, b, value(w), || rank_of(rank, u))
            }),
        };
        if !all_kept {
            let mut kept = 0usize;
            for k in 0..old_len {
                if let Some(&e) = entries.get(k)
                    && e.1 > N::ZERO
                {
                    if let Some(slot) = entries.get_mut(kept) {
                        *slot = e;
                    }
                    kept = kept.wrapping_add(1);
                }
            }
            bonds.resize(kept, (0, N::ZERO));
        }
        return Ok(());
    }
    let len = union_len(bonds.entries(), row, i, mask, value);
    let too_long = |max| Error::RowTooLong {
        what: "bonds",
        row: i,
        len,
        max,
    };
    if len == old_len {
        // No new uid (a steady state): every entry stays in its slot; one forward pass.
        let entries = bonds.entries_mut();
        let mut fresh = fresh().peekable();
        let mut kept = 0usize;
        for k in 0..len {
            let Some(&(u, b)) = entries.get(k) else {
                break;
            };
            let e = match fresh.next_if(|&(j, _)| j == u) {
                Some((j, v)) => (j, mix(mode, b, v, || rank_of(rank, j))),
                None => (u, mix(mode, b, N::ZERO, || N::ZERO)),
            };
            kept = keep(i, entries, kept, e, sums)?;
        }
        bonds.resize(kept, (0, N::ZERO));
        return Ok(());
    }
    if !bonds.resize(len, (0, N::ZERO)) {
        return Err(too_long(bonds.capacity()));
    }
    let entries = bonds.entries_mut();
    // New uids: merged backward. An old entry above every remaining new uid only decays
    // (EMA) or stays (`mix` reads `r_j` only where the fresh value is positive).
    let a = merge_backward(
        entries,
        old_len,
        len,
        live_iter(row, i, mask)
            .rev()
            .map(|&(j, w)| (j, value(w)))
            .filter(|&(_, v)| v > N::ZERO),
        |j, old, v| mix(mode, old, v, || rank_of(rank, j)),
    )
    .ok_or(too_long(len))?;
    // Now w == a: the old entries below every new uid are already in their slots.
    let mut kept = 0usize;
    for k in 0..len {
        let Some(&(u, b)) = entries.get(k) else {
            break;
        };
        let e = if k < a {
            (u, mix(mode, b, N::ZERO, || N::ZERO))
        } else {
            (u, b)
        };
        kept = keep(i, entries, kept, e, sums)?;
    }
    bonds.resize(kept, (0, N::ZERO));
    Ok(())
}

/// Step 8 on a bond row that holds exactly its weights' uids (`entries[k]` and `row[k]` share
/// uid `j`): `B_ij` becomes `new(j, B_ij, weight_ij)` in its slot and, where above 0, is added
/// to its column sum `C_j` (uids were checked against `n`). Returns whether every new value is
/// above 0 (the caller drops the others). Not inlined: the loop keeps its operands in
/// registers.
#[inline(never)]
pub(crate) fn update_in_slots<N: Scalar>(
    entries: &mut [(Uid, N)],
    row: &[(Uid, Weight)],
    sums: &mut [N],
    new: impl Fn(Uid, N, Weight) -> N,
) -> bool {
    let mut all = true;
    for (e, &(_, w)) in entries.iter_mut().zip(row) {
        let (u, b) = *e;
        let v = new(u, b, w);
        e.1 = v;
        let above = v > N::ZERO;
        all &= above;
        if above && let Some(c) = usize::try_from(u).ok().and_then(|j| sums.get_mut(j)) {
            *c = c.add_nonneg(v);
        }
    }
    all
}

/// Stores a merged entry of row `row` at slot `kept` (never past the slot it was read from)
/// unless it is 0, adds it to its column sum `C_j`, and returns the next free slot. Rows are done in uid
/// order, so each `C_j` adds its rows in the same order whichever way a row was merged.
#[inline(always)]
pub(crate) fn keep<N: Scalar>(
    row: usize,
    entries: &mut [(Uid, N)],
    kept: usize,
    (j, v): (Uid, N),
    sums: &mut [N],
) -> Result<usize, Error> {
    if v > N::ZERO {
        let c = at(sums, j)?;
        *c = c.add_nonneg(v);
        let max = entries.len();
        *entries.get_mut(kept).ok_or(Error::RowTooLong {
            what: "bonds",
            row,
            len: kept.saturating_add(1),
            max,
        })? = (j, v);
        return Ok(kept.saturating_add(1));
    }
    Ok(kept)
}

/// The backward half of an in-place merge of a bond row with fresh entries. The row's old
/// entries are in `entries[..old_len]` and the row has been grown to `len` (the union's
/// length). `fresh_rev` yields the fresh entries from the highest uid down; each is written as
/// `combine(j, B_ij or 0, v)` and each old entry above it as `combine(u, B_iu, 0)`, from slot
/// `len - 1` down, so every old entry is read before its slot is written (`w - a` counts the
/// fresh uids still to place). Returns `a`: the old entries in `[0, a)` lie below every fresh
/// uid, untouched and in their slots. `None`: `len` was too short for the union.
#[inline(always)]
fn merge_backward<N: Scalar>(
    entries: &mut [(Uid, N)],
    old_len: usize,
    len: usize,
    fresh_rev: impl Iterator<Item = (Uid, N)>,
    mut combine: impl FnMut(Uid, N, N) -> N,
) -> Option<usize> {
    let (mut a, mut w) = (old_len, len);
    for (j, v) in fresh_rev {
        let mut old = N::ZERO;
        while let Some(top) = a.checked_sub(1) {
            let Some(&(u, b)) = entries.get(top) else {
                break;
            };
            if u < j {
                break;
            }
            a = top;
            if u == j {
                old = b;
                break;
            }
            put_back(entries, &mut w, (u, combine(u, b, N::ZERO)))?;
        }
        put_back(entries, &mut w, (j, combine(j, old, v)))?;
    }
    Some(a)
}

/// Writes `e` one slot below `*w` and moves `w` down to it; `None` if there is no such slot.
fn put_back<N>(entries: &mut [(Uid, N)], w: &mut usize, e: (Uid, N)) -> Option<()> {
    *w = w.checked_sub(1)?;
    *entries.get_mut(*w)? = e;
    Some(())
}

/// What the bond update reads and writes per column: `r_j` (read by the EMA rule) and the
/// running column sums `C_j`.
pub(crate) struct Columns<'a, N> {
    pub(crate) rank: &'a [N],
    pub(crate) sums: &'a mut [N],
}

/// `r_j` for a uid checked against `n`. Only EMA reads it, and only where `w_ij s_i > 0`,
/// which makes `r_j > 0`; a uid out of range (a broken invariant) reads 0, which [`mix`] turns
/// into a zero share, and the same uid then fails the column-sum slot in `put`.
pub(crate) fn rank_of<N: Scalar>(rank: &[N], j: Uid) -> N {
    usize::try_from(j)
        .ok()
        .and_then(|k| rank.get(k).copied())
        .unwrap_or(N::ZERO)
}

/// The new bond value from the old one and this epoch's `w_ij s_i` (0 where absent). `r_j`
/// is read only by the EMA rule, and only where `fresh > 0`: it is a random access into an
/// `n`-long array, the costliest load of the bond update.
#[inline(always)]
pub(crate) fn mix<N: Scalar>(mode: BondMode<N>, old: N, fresh: N, r: impl FnOnce() -> N) -> N {
    match mode {
        // The Yuma rules never reach the paper's bond update (the epoch runs Yuma's passes).
        BondMode::Cumulative | BondMode::Yuma { .. } | BondMode::Yuma3 { .. } => {
            old.add_nonneg(fresh)
        }
        BondMode::Ema { alpha } => {
            // r_j >= w_ij s_i > 0 wherever fresh > 0, so the division is by a positive r_j.
            let r = if fresh > N::ZERO { r() } else { N::ZERO };
            let part = if fresh > N::ZERO && r > N::ZERO {
                fresh.div(r)
            } else {
                N::ZERO
            };
            N::ONE.sub(alpha).mul(old).add(alpha.mul(part))
        }
    }
}

/// Entries in the union of a bond row and the weights that bring a non-zero `w_ij s_i`.
pub(crate) fn union_len<N: Scalar>(
    bonds: &[(Uid, N)],
    row: &[(Uid, Weight)],
    i: usize,
    mask: bool,
    fresh: impl Fn(Weight) -> N,
) -> usize {
    let mut count = bonds.len();
    let mut b = bonds.iter().peekable();
    for &(j, w) in live_iter(row, i, mask) {
        if fresh(w) <= N::ZERO {
            continue;
        }
        while b.next_if(|&&(u, _)| u < j).is_some() {}
        if b.next_if(|&&(u, _)| u == j).is_none() {
            count = count.saturating_add(1);
        }
    }
    count
}

/// Merges a bond row with `fresh` entries (uids strictly increasing, values above 0) in
/// place: each uid of the union becomes `combine(j, B_ij, fresh_j)`, a missing side read as
/// 0; entries at 0 afterwards are dropped. No allocation once the row has the room of the
/// union (the Yuma rules; the paper's rules have their own faster merge,
/// [`update_bond_row`]). The row is grown to the union's length and filled from its end, so
/// each old entry is read before its slot is written.
pub(crate) fn merge_row<N, B, F>(
    bonds: &mut B,
    row: usize,
    fresh: F,
    mut combine: impl FnMut(Uid, N, N) -> N,
) -> Result<(), Error>
where
    N: Scalar,
    B: BondRowMut<N>,
    F: DoubleEndedIterator<Item = (Uid, N)> + Clone,
{
    let old_len = bonds.entries().len();
    let mut len = old_len;
    {
        let mut old = bonds.entries().iter().peekable();
        for (j, _) in fresh.clone() {
            while old.next_if(|&&(u, _)| u < j).is_some() {}
            if old.next_if(|&&(u, _)| u == j).is_none() {
                len = len.saturating_add(1);
            }
        }
    }
    let too_long = |max| Error::RowTooLong {
        what: "bonds",
        row,
        len,
        max,
    };
    if !bonds.resize(len, (0, N::ZERO)) {
        return Err(too_long(bonds.capacity()));
    }
    let entries = bonds.entries_mut();
    let a =
        merge_backward(entries, old_len, len, fresh.rev(), &mut combine).ok_or(too_long(len))?;
    // The old entries below every fresh uid are in their slots: [0, a).
    let mut kept = 0usize;
    for k in 0..len {
        let Some(&(u, b)) = entries.get(k) else {
            break;
        };
        let v = if k < a { combine(u, b, N::ZERO) } else { b };
        if v > N::ZERO {
            if let Some(slot) = entries.get_mut(kept) {
                *slot = (u, v);
            }
            kept = kept.saturating_add(1);
        }
    }
    bonds.resize(kept, (0, N::ZERO));
    Ok(())
}
