#![doc = include_str!("../README.md")]
#![no_std]
#![deny(
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::float_arithmetic
)]

#[cfg(feature = "std")]
extern crate std;

mod chunk;
mod codes;
mod error;
mod header;
mod layout;
mod limits;

pub use chunk::{ChunkHeader, FIRST, LAST, REPLY};
pub use codes::{DType, Kind, Modality, Status};
pub use error::WireError;
pub use header::{Header, Shape};
pub use limits::Limits;

/// The first four bytes of every header.
pub const MAGIC: [u8; 4] = *b"DNOD";
/// The wire version this crate speaks; a header of another version is refused.
pub const VERSION: u16 = 1;
/// Bytes of an encoded [`Header`].
pub const HEADER_LEN: usize = 56;
/// Bytes of an encoded [`ChunkHeader`].
pub const CHUNK_HEADER_LEN: usize = 12;
/// The largest Noise transport message (65,535 bytes) less its 16-byte AEAD tag.
pub const MAX_PLAINTEXT: usize = 65_535 - 16;
/// The most body bytes one chunk carries.
pub const MAX_CHUNK_DATA: usize = MAX_PLAINTEXT - CHUNK_HEADER_LEN;
/// At most this many dimensions.
pub const MAX_NDIM: usize = 4;
