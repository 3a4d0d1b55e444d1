//! Bond rows that the epoch rewrites in place: `Vec` (alloc) or [`BoundedRow`] (no allocator).

use deepnode_types::{BoundedRow, Uid};

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
