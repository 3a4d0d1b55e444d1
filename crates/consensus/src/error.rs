//! The one error type of the crate.

use core::fmt;

use deepnode_types::Uid;

/// Why an epoch (or a row check) refused its input. Nothing is modified when it is returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// `stake` is empty: an epoch needs `n >= 1` nodes.
    NoNodes,
    /// More weight or bond rows than nodes.
    TooManyRows {
        /// `"weights"` or `"bonds"`.
        what: &'static str,
        /// Rows given.
        rows: usize,
        /// `n`.
        n: usize,
    },
    /// A row names a uid `>= n`.
    UidOutOfRange {
        /// `"weights"` or `"bonds"`.
        what: &'static str,
        /// The row (its owner's uid).
        row: usize,
        /// The offending uid.
        uid: Uid,
        /// `n`.
        n: usize,
    },
    /// A row names the same uid twice.
    DuplicateUid {
        /// `"weights"` or `"bonds"`.
        what: &'static str,
        /// The row.
        row: usize,
        /// The repeated uid.
        uid: Uid,
    },
    /// A row given to the buffer API is not sorted by uid (the `Vec` API sorts for you).
    UnsortedRow {
        /// `"weights"` or `"bonds"`.
        what: &'static str,
        /// The row.
        row: usize,
    },
    /// A row has more entries than its bound (`n`, or a bounded row's capacity).
    RowTooLong {
        /// `"weights"` or `"bonds"`.
        what: &'static str,
        /// The row.
        row: usize,
        /// Its length (for bonds: after this epoch's update).
        len: usize,
        /// The bound.
        max: usize,
    },
    /// A submitted row has fewer non-zero entries than `min_allowed_weights`.
    TooFewWeights {
        /// Non-zero entries in the row.
        nonzero: usize,
        /// `min_allowed_weights`.
        min: u32,
    },
    /// A bond value is negative or not finite.
    InvalidBond {
        /// The row.
        row: usize,
        /// The uid of the entry.
        uid: Uid,
    },
    /// A parameter is outside its range.
    ParamOutOfRange {
        /// The parameter's name in SPEC.md.
        name: &'static str,
        /// The allowed range.
        range: &'static str,
    },
    /// A caller-provided output buffer does not have length `n`.
    BufferLength {
        /// The buffer.
        name: &'static str,
        /// Its length.
        len: usize,
        /// `n`.
        n: usize,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::NoNodes => write!(f, "no nodes: stake is empty (n = 0)"),
            Error::TooManyRows { what, rows, n } => {
                write!(f, "{what}: {rows} rows for n = {n} nodes")
            }
            Error::UidOutOfRange { what, row, uid, n } => {
                write!(f, "{what} row {row}: uid {uid} out of range (n = {n})")
            }
            Error::DuplicateUid { what, row, uid } => {
                write!(f, "{what} row {row}: duplicate uid {uid}")
            }
            Error::UnsortedRow { what, row } => write!(f, "{what} row {row}: not sorted by uid"),
            Error::RowTooLong {
                what,
                row,
                len,
                max,
            } => {
                write!(f, "{what} row {row}: {len} entries, at most {max} allowed")
            }
            Error::TooFewWeights { nonzero, min } => write!(
                f,
                "weights row has {nonzero} non-zero entries, min_allowed_weights is {min}"
            ),
            Error::InvalidBond { row, uid } => {
                write!(
                    f,
                    "bonds row {row}: value for uid {uid} is negative or not finite"
                )
            }
            Error::ParamOutOfRange { name, range } => write!(f, "param {name} must be in {range}"),
            Error::BufferLength { name, len, n } => {
                write!(f, "output buffer {name} has length {len}, expected n = {n}")
            }
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {}
