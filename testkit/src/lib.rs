#![doc = include_str!("../README.md")]

#[doc(hidden)]
pub mod fuzzing;
mod rng;
pub mod synthetic;

pub use rng::Rng;
