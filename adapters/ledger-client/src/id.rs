//! The 32-byte ids: [`H256`] (block, state and extrinsic hashes) and [`AccountId`] (an ed25519
//! public key), with their `0x` hex text form.

use core::fmt;
use core::str::FromStr;

use blake2::{Blake2b256, Digest};
use ed25519_dalek::SigningKey;
use parity_scale_codec::{Decode, Encode};

/// A 32-byte BLAKE2b-256 digest (block, state and extrinsic hashes).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Encode, Decode)]
pub struct H256(pub [u8; 32]);

impl H256 {
    /// BLAKE2b-256 of `bytes`.
    pub fn digest(bytes: &[u8]) -> H256 {
        H256(Blake2b256::digest(bytes).into())
    }
}

/// An account: an ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Encode, Decode)]
pub struct AccountId(pub [u8; 32]);

/// Why a text is not a 32-byte id ([`AccountId`], [`H256`]).
#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseIdError {
    /// Not 64 hex digits after an optional `0x`.
    #[error("expected 32 bytes as hex: {0}")]
    Hex(hex::FromHexError),
}

// `hex::FromHexError` compares a char and indices only, so its `PartialEq` is an equivalence
// (it just does not derive `Eq`).
impl Eq for ParseIdError {}

macro_rules! hex_display {
    ($t:ty) => {
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "0x{}", hex::encode(self.0))
            }
        }
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }
        impl FromStr for $t {
            type Err = ParseIdError;
            /// 64 hex digits, with or without `0x`.
            fn from_str(s: &str) -> Result<Self, ParseIdError> {
                let mut out = [0u8; 32];
                hex::decode_to_slice(s.strip_prefix("0x").unwrap_or(s), &mut out)
                    .map_err(ParseIdError::Hex)?;
                Ok(Self(out))
            }
        }
    };
}
hex_display!(H256);
hex_display!(AccountId);

impl From<&SigningKey> for AccountId {
    fn from(key: &SigningKey) -> AccountId {
        AccountId(key.verifying_key().to_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_forms_parse_back() {
        let a = AccountId::from(&SigningKey::from_bytes(&[9; 32]));
        assert_eq!(a.to_string().parse::<AccountId>(), Ok(a));
        assert!("0x12".parse::<AccountId>().is_err());
        let h = H256::digest(b"deepnode");
        assert_eq!(h.to_string().parse::<H256>(), Ok(h));
    }
}
