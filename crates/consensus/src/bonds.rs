//! Bond rows that the epoch rewrites: `Vec` (alloc) or [`BoundedRow`] (no allocator).

use deepnode_types::{BoundedRow, Uid};

/// Where a rebuilt bond row's entries go, in uid order.
pub trait RowSink<N> {
    /// Appends an entry. The epoch never appends more than the row's capacity.
    fn put(&mut self, entry: (Uid, N));
}

/// A row of bonds `(uid j, B_ij)`, sorted by uid, that the epoch can rebuild.
pub trait BondRowMut<N> {
    /// The sink a rebuild writes into.
    type Sink: RowSink<N>;
    /// The entries.
    fn entries(&self) -> &[(Uid, N)];
    /// The most entries the row can hold (`usize::MAX` when unbounded).
    fn capacity(&self) -> usize;
    /// Replaces the row by what `build` writes, given the old entries; `hint` bounds the new
    /// length.
    fn rebuild<F: FnOnce(&[(Uid, N)], &mut Self::Sink)>(&mut self, hint: usize, build: F);
}

#[cfg(feature = "alloc")]
impl<N> RowSink<N> for alloc::vec::Vec<(Uid, N)> {
    fn put(&mut self, entry: (Uid, N)) {
        self.push(entry);
    }
}

#[cfg(feature = "alloc")]
impl<N> BondRowMut<N> for alloc::vec::Vec<(Uid, N)> {
    type Sink = alloc::vec::Vec<(Uid, N)>;
    fn entries(&self) -> &[(Uid, N)] {
        self
    }
    fn capacity(&self) -> usize {
        usize::MAX
    }
    fn rebuild<F: FnOnce(&[(Uid, N)], &mut Self::Sink)>(&mut self, hint: usize, build: F) {
        let old = core::mem::take(self);
        let mut new = alloc::vec::Vec::with_capacity(hint);
        build(&old, &mut new);
        *self = new;
    }
}

impl<N, const K: usize> RowSink<N> for heapless::Vec<(Uid, N), K> {
    fn put(&mut self, entry: (Uid, N)) {
        // The epoch checks that every row's union fits in K before any row is rebuilt.
        let _ = self.push(entry);
    }
}

impl<N, const K: usize> BondRowMut<N> for BoundedRow<(Uid, N), K> {
    type Sink = heapless::Vec<(Uid, N), K>;
    fn entries(&self) -> &[(Uid, N)] {
        self
    }
    fn capacity(&self) -> usize {
        K
    }
    fn rebuild<F: FnOnce(&[(Uid, N)], &mut Self::Sink)>(&mut self, _hint: usize, build: F) {
        let old = core::mem::take(&mut self.0);
        let mut new = heapless::Vec::new();
        build(&old, &mut new);
        self.0 = new;
    }
}
