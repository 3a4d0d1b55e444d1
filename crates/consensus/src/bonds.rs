//! Bond rows that the epoch updates in place: `Vec` (alloc) or [`BoundedRow`] (no allocator).

use deepnode_types::{BoundedRow, Uid};

/// A row of bonds `(uid j, B_ij)` the epoch can rewrite in place, sorted by uid.
pub trait BondRowMut<N> {
    /// The entries.
    fn entries(&self) -> &[(Uid, N)];
    /// The most entries the row can hold.
    fn capacity(&self) -> usize;
    /// Resizes to `len` entries (`len <= capacity()`), filling with `fill`, and returns them.
    fn resize(&mut self, len: usize, fill: (Uid, N)) -> &mut [(Uid, N)];
}

#[cfg(feature = "alloc")]
impl<N: Copy> BondRowMut<N> for alloc::vec::Vec<(Uid, N)> {
    fn entries(&self) -> &[(Uid, N)] {
        self
    }
    fn capacity(&self) -> usize {
        usize::MAX
    }
    fn resize(&mut self, len: usize, fill: (Uid, N)) -> &mut [(Uid, N)] {
        alloc::vec::Vec::resize(self, len, fill);
        self
    }
}

impl<N: Copy, const K: usize> BondRowMut<N> for BoundedRow<(Uid, N), K> {
    fn entries(&self) -> &[(Uid, N)] {
        self
    }
    fn capacity(&self) -> usize {
        K
    }
    fn resize(&mut self, len: usize, fill: (Uid, N)) -> &mut [(Uid, N)] {
        // The epoch checks `len <= K` before any row is touched; a longer request keeps K.
        let _ = self.0.resize(len.min(K), fill);
        &mut self.0
    }
}
