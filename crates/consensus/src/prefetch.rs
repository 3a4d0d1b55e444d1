//! Cache hints for the scattered column updates and the rows ahead (x86-64 only; they read
//! and write nothing, so no result depends on them).

use deepnode_types::{Uid, Weight};

use crate::bonds::BondRowMut;
use crate::rows::RowsRef;

/// How many entries ahead of its update a column is prefetched.
pub(crate) const AHEAD: usize = 16;

/// Buffers of at most this many entries are not prefetched (32,768 f64: 256 KiB, well
/// inside one core's L2).
pub(crate) const PREFETCH_MIN: usize = 1 << 15;

/// The first `count` entries of a row (none for a missing row).
#[inline]
pub(crate) fn head(row: &[(Uid, Weight)], count: usize) -> &[(Uid, Weight)] {
    row.get(..count).unwrap_or(row)
}

/// Asks the cache for `buf[j]` ahead of a scattered read-modify-write (x86-64: PREFETCHT0;
/// elsewhere nothing). A hint only: it reads and writes nothing, so no result depends on it.
///
/// Only for buffers of more than [`PREFETCH_MIN`] entries: smaller ones stay in the core's
/// cache, where the hint costs instructions and saves nothing.
#[inline(always)]
pub(crate) fn prefetch<T>(buf: &[T], j: Uid) {
    if let Ok(k) = usize::try_from(j) {
        prefetch_at(buf, k);
    }
}

/// How many rows ahead a row's first cache lines are fetched, where `n` exceeds
/// [`PREFETCH_MIN`] (rows are separate allocations, whose first lines the hardware prefetcher
/// does not see coming). 8 ran fastest of 2, 4 and 8 at 1,000,000 x 32, both backends.
pub(crate) const ROWS_AHEAD: usize = 8;

/// Lines of a row fetched ahead (512 bytes: a whole row of 32 bond entries; the hardware
/// prefetcher follows a longer one).
pub(crate) const ROW_LINES: usize = 8;

/// Asks the cache for the first [`ROW_LINES`] cache lines of `row` (x86-64: PREFETCHT0;
/// elsewhere nothing). A hint only, like [`prefetch`].
#[inline(always)]
pub(crate) fn prefetch_row<T>(row: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        let bytes = core::mem::size_of_val(row).min(ROW_LINES * 64);
        let start: *const u8 = row.as_ptr().cast();
        for off in (0..bytes).step_by(64) {
            // SAFETY: PREFETCHT0 is a hint: it cannot fault and reads and writes no memory;
            // the address is inside `row` anyway (`off < size_of_val(row)`).
            #[allow(unsafe_code)]
            unsafe {
                core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(
                    start.wrapping_add(off).cast(),
                );
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = row;
}

/// [`prefetch_row`] of the weights and bond rows [`ROWS_AHEAD`] after row `k` of a run.
#[inline(always)]
pub(crate) fn fetch_rows_ahead<N, W, B>(rows: RowsRef<'_, W>, bonds: &[B], k: usize)
where
    W: AsRef<[(Uid, Weight)]>,
    B: BondRowMut<N>,
{
    let k = k.wrapping_add(ROWS_AHEAD);
    prefetch_row(rows.row(rows.first.wrapping_add(k)));
    if let Some(b) = bonds.get(k) {
        prefetch_row(b.entries());
    }
}

/// [`prefetch`] of `buf[k]`.
#[inline(always)]
pub(crate) fn prefetch_at<T>(buf: &[T], k: usize) {
    #[cfg(target_arch = "x86_64")]
    if buf.len() > PREFETCH_MIN
        && let Some(x) = buf.get(k)
    {
        let p: *const T = x;
        // SAFETY: PREFETCHT0 is a hint: it cannot fault, reads and writes no memory, and `p`
        // points into `buf` anyway.
        #[allow(unsafe_code)]
        unsafe {
            core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast());
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (buf, k);
}
