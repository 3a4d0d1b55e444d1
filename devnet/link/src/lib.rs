#![doc = include_str!("../README.md")]

mod error;
mod profile;
mod relay;
mod rng;

pub use error::LinkError;
pub use profile::Profile;
pub use relay::{DIAL_TIMEOUT, Relay, Tally, Upstream};
