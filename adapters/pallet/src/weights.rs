//! Weights of the calls and of the epoch, from this crate's frame-benchmarking benchmarks
//! (`src/benchmarking.rs`) measured natively on the development machine (see the README's
//! weights table and how to regenerate it).
//!
//! `n` is the number of registered nodes and `k` the entries per row (the larger of the
//! weights and bonds rows, averaged and rounded up); `l` is a submitted row's length.
//! Reads and writes are counted from the code and charged at the runtime's `DbWeight`.

#![deny(
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::float_arithmetic
)]

use core::marker::PhantomData;

use frame_support::traits::Get;
use frame_support::weights::Weight;
use frame_support::weights::constants::RocksDbWeight;

/// The weight of each call and of the epoch, for a runtime to bound its blocks.
pub trait WeightInfo {
    /// `register` with `n` nodes of `k` entries per row (worst case: a full set, the
    /// evicted uid named in every row).
    fn register(n: u32, k: u32) -> Weight;
    /// `add_stake`.
    fn add_stake() -> Weight;
    /// `remove_stake`.
    fn remove_stake() -> Weight;
    /// `set_weights` with a row of `l` entries (worst case: unsorted).
    fn set_weights(l: u32) -> Weight;
    /// `serve` (worst case: a 256-byte endpoint).
    fn serve() -> Weight;
    /// The epoch over `n` nodes with `k` entries per weights and bonds row.
    fn epoch(n: u32, k: u32) -> Weight;
}

/// Measured times in picoseconds (the larger of two runs of `src/measure.rs`, release build,
/// thread CPU time, median of 15 runs per point; slopes fitted by least squares, the base raised
/// until the formula is at or above every measured point). `(base, per n, per n*k)` unless noted.
mod measured {
    pub const REGISTER: (u64, u64, u64) = (1_370_000_000, 5_193_000, 61_000);
    pub const ADD_STAKE: u64 = 31_900_000;
    pub const REMOVE_STAKE: u64 = 33_500_000;
    /// `(base, per l, per l^2)`: an unsorted row is checked for duplicates in `O(l^2)`.
    pub const SET_WEIGHTS: (u64, u64, u64) = (54_300_000, 244_000, 731);
    pub const SERVE: u64 = 9_800_000;
    pub const EPOCH: (u64, u64, u64) = (800_600_000, 7_640_000, 163_000);
}

/// Weights for a runtime whose storage is `T::DbWeight`.
pub struct SubstrateWeight<T>(PhantomData<T>);

/// `base + per_n * n + per_nk * n * k` picoseconds of compute (no proof size), saturating.
fn linear(c: (u64, u64, u64), n: u32, k: u32) -> Weight {
    let nk = u64::from(n).saturating_mul(u64::from(k));
    let t =
        c.0.saturating_add(c.1.saturating_mul(u64::from(n)))
            .saturating_add(c.2.saturating_mul(nk));
    Weight::from_parts(t, 0)
}

macro_rules! impl_weights {
    ($db:ty) => {
        fn register(n: u32, k: u32) -> Weight {
            let n64 = u64::from(n);
            // NodeCount, 2 counters, n neurons, n weights rows, n bonds rows, the old owner's
            // and the stake account's balances; the new neuron, every row, 2 counters, 2
            // balances.
            linear(measured::REGISTER, n, k).saturating_add(<$db>::get().reads_writes(
                n64.saturating_mul(3).saturating_add(5),
                n64.saturating_mul(2).saturating_add(5),
            ))
        }
        fn add_stake() -> Weight {
            Weight::from_parts(measured::ADD_STAKE, 0)
                .saturating_add(<$db>::get().reads_writes(3, 3))
        }
        fn remove_stake() -> Weight {
            Weight::from_parts(measured::REMOVE_STAKE, 0)
                .saturating_add(<$db>::get().reads_writes(3, 3))
        }
        fn set_weights(l: u32) -> Weight {
            // base + per_l * l + per_l2 * l * l: `linear` with n = k = l.
            linear(measured::SET_WEIGHTS, l, l).saturating_add(<$db>::get().reads_writes(5, 3))
        }
        fn serve() -> Weight {
            Weight::from_parts(measured::SERVE, 0).saturating_add(<$db>::get().reads_writes(1, 1))
        }
        fn epoch(n: u32, k: u32) -> Weight {
            let n64 = u64::from(n);
            // 8 values, n neurons, n weights rows, n bonds rows; n neurons, n bonds rows, 5
            // values and the stake account.
            linear(measured::EPOCH, n, k).saturating_add(<$db>::get().reads_writes(
                n64.saturating_mul(3).saturating_add(8),
                n64.saturating_mul(2).saturating_add(6),
            ))
        }
    };
}

impl<T: frame_system::Config> WeightInfo for SubstrateWeight<T> {
    impl_weights!(T::DbWeight);
}

/// For tests and runtimes without their own `DbWeight`: RocksDB's.
impl WeightInfo for () {
    impl_weights!(RocksDbWeight);
}
