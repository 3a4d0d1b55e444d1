#![doc = include_str!("../README.md")]
#![no_std]
#![deny(
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::float_arithmetic
)]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

mod fx;
mod params;
mod row;
#[cfg(feature = "alloc")]
mod state;

pub use fx::Fx;
pub use params::{BondMode, DEFAULT_EMISSION, Departed, FromRatio, LiquidAlpha, Mechanism, Params};
pub use row::{BoundedRow, CapacityError};
#[cfg(feature = "alloc")]
pub use state::{BondRow, EpochOutput, NeuronStats, State, WeightRow};

/// A node's identifier: its index in `0..n`.
pub type Uid = u32;

/// A raw weight as a node submits it; rows are normalised by their sum.
pub type Weight = u16;
