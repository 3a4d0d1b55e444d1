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

mod bonds;
mod controller;
mod dividends;
mod epoch;
mod error;
mod exp;
mod incentive;
mod median;
mod mint;
#[cfg(feature = "parallel")]
mod parallel;
mod prefetch;
mod rank;
mod rows;
mod scalar;
mod validate;
#[cfg(feature = "alloc")]
mod vec_api;
mod yuma;

pub use bonds::BondRowMut;
pub use controller::{ControllerPolicy, ControllerState, row_room};
pub use deepnode_types::{
    BondMode, BoundedRow, Departed, Fx, LiquidAlpha, Mechanism, Params, Uid, Weight,
};
#[cfg(feature = "alloc")]
pub use deepnode_types::{EpochOutput, State};
pub use epoch::{Activity, Outputs, epoch_in_place, epoch_in_place_at};
pub use error::Error;
#[cfg(feature = "parallel")]
pub use parallel::{CHUNKS, Parallel};
pub use scalar::Scalar;
pub use validate::{check_min_weights, check_params, consensus_of, validate_row};
#[cfg(feature = "alloc")]
pub use vec_api::{OutputBuffers, canonicalize, epoch};
