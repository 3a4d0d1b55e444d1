//! Rows with a capacity fixed at compile time, for runtimes without an allocator.

use core::fmt;
use core::ops::{Deref, DerefMut};

/// A row (of weights or bonds) holding at most `K` entries, stored inline (`heapless::Vec`).
///
/// Its SCALE encoding is that of a `Vec` (compact length, then the entries), so it decodes
/// what a `Vec` encodes; decoding more than `K` entries is an error, and
/// `MaxEncodedLen` is bounded by `K`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct BoundedRow<T, const K: usize>(pub heapless::Vec<T, K>);

/// A row would exceed its capacity `K`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CapacityError {
    /// The capacity, `K`.
    pub capacity: usize,
}

impl fmt::Display for CapacityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "row holds at most {} entries", self.capacity)
    }
}

impl<T, const K: usize> BoundedRow<T, K> {
    /// An empty row.
    pub const fn new() -> Self {
        BoundedRow(heapless::Vec::new())
    }

    /// Appends `item`, or fails when the row is full.
    pub fn push(&mut self, item: T) -> Result<(), CapacityError> {
        self.0.push(item).map_err(|_| CapacityError { capacity: K })
    }
}

impl<T: Clone, const K: usize> BoundedRow<T, K> {
    /// A copy of `items`, or an error when there are more than `K`.
    pub fn from_slice(items: &[T]) -> Result<Self, CapacityError> {
        heapless::Vec::from_slice(items)
            .map(BoundedRow)
            .map_err(|_| CapacityError { capacity: K })
    }
}

impl<T, const K: usize> Deref for BoundedRow<T, K> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.0
    }
}

impl<T, const K: usize> DerefMut for BoundedRow<T, K> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.0
    }
}

impl<T, const K: usize> AsRef<[T]> for BoundedRow<T, K> {
    fn as_ref(&self) -> &[T] {
        &self.0
    }
}

#[cfg(feature = "codec")]
mod codec {
    use parity_scale_codec::{
        Compact, CompactLen, Decode, Encode, Error, Input, MaxEncodedLen, Output,
    };

    use super::BoundedRow;

    impl<T: Encode, const K: usize> Encode for BoundedRow<T, K> {
        fn size_hint(&self) -> usize {
            self.0
                .iter()
                .map(Encode::size_hint)
                .sum::<usize>()
                .saturating_add(5)
        }
        fn encode_to<O: Output + ?Sized>(&self, dest: &mut O) {
            // A length that fits in memory fits in u32 on every supported target.
            let len = u32::try_from(self.0.len()).unwrap_or(u32::MAX);
            Compact(len).encode_to(dest);
            for item in self.0.iter() {
                item.encode_to(dest);
            }
        }
    }

    impl<T: Decode, const K: usize> Decode for BoundedRow<T, K> {
        fn decode<I: Input>(input: &mut I) -> Result<Self, Error> {
            let len = Compact::<u32>::decode(input)?.0;
            if usize::try_from(len).map_or(true, |len| len > K) {
                return Err("BoundedRow: more entries than its capacity".into());
            }
            let mut row = heapless::Vec::new();
            for _ in 0..len {
                if row.push(T::decode(input)?).is_err() {
                    return Err("BoundedRow: more entries than its capacity".into());
                }
            }
            Ok(BoundedRow(row))
        }
    }

    impl<T: MaxEncodedLen, const K: usize> MaxEncodedLen for BoundedRow<T, K> {
        fn max_encoded_len() -> usize {
            let k = u32::try_from(K).unwrap_or(u32::MAX);
            Compact::<u32>::compact_len(&k).saturating_add(T::max_encoded_len().saturating_mul(K))
        }
    }
}
