//! The link crate's errors.

/// Why a profile or a relay cannot work.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// A profile's value is out of range; names the key.
    #[error("link.{key}: {why}")]
    Profile {
        /// The profile's key.
        key: &'static str,
        /// What is wrong with its value.
        why: &'static str,
    },
    /// The relay's listener could not be bound.
    #[error("relay: {0}")]
    Io(#[from] std::io::Error),
}
