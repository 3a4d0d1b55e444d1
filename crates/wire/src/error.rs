//! Why bytes are not a valid header, or a header breaks a node's limits.

use core::fmt;

use crate::{MAX_NDIM, VERSION};

/// Why bytes are not a valid header, or a valid header breaks a node's limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WireError {
    /// The first four bytes are not [`MAGIC`](crate::MAGIC).
    BadMagic,
    /// The header speaks another wire version.
    Version(u16),
    /// A kind, modality, dtype or status byte that names nothing.
    UnknownCode {
        /// Which field.
        field: &'static str,
        /// The value found.
        value: u16,
    },
    /// A reserved byte is not zero, or a dimension beyond `ndim` is not zero.
    Reserved,
    /// `ndim` above [`MAX_NDIM`].
    TooManyDims(u8),
    /// The declared payload length differs from the size of the declared shape(s).
    LengthMismatch {
        /// Bytes declared.
        declared: u64,
        /// Bytes the shape and dtype(s) need (saturating at `u64::MAX`).
        expected: u64,
    },
    /// The payload is over the node's cap.
    TooLarge {
        /// Bytes declared.
        len: u64,
        /// The cap.
        max: u64,
    },
    /// The shape breaks the node's limits for this kind and modality.
    BadShape,
    /// A chunk header's flags or reserved bytes are invalid.
    BadChunk,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::BadMagic => f.write_str("not a DeepNode message (bad magic)"),
            WireError::Version(v) => write!(f, "wire version {v}, expected {VERSION}"),
            WireError::UnknownCode { field, value } => write!(f, "unknown {field} code {value}"),
            WireError::Reserved => f.write_str("a reserved field is not zero"),
            WireError::TooManyDims(n) => write!(f, "{n} dimensions, at most {MAX_NDIM}"),
            WireError::LengthMismatch { declared, expected } => write!(
                f,
                "payload length {declared} does not match the shape ({expected} bytes)"
            ),
            WireError::TooLarge { len, max } => {
                write!(f, "payload of {len} bytes over the cap of {max}")
            }
            WireError::BadShape => f.write_str("shape outside this node's limits"),
            WireError::BadChunk => f.write_str("invalid chunk header"),
        }
    }
}

impl core::error::Error for WireError {}
