//! What a signer sends: calls and signed extrinsics (SCALE), and their hex text form. This is
//! the one definition of the format: the ledger decodes and applies what this module encodes.

use deepnode_consensus::{Uid, Weight};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use parity_scale_codec::{Decode, DecodeAll, Encode};

use crate::id::{AccountId, H256};
use crate::refusal::{MalformedError, TxError};

/// Largest encoded extrinsic accepted, in bytes (a dense row of 4096 weights is 24 KiB).
pub const MAX_EXTRINSIC_BYTES: usize = 64 * 1024;
pub use deepnode_rules::MAX_ENDPOINT_BYTES;
/// Domain tag that starts every signed payload (versioned: a new format gets a new tag).
const SIGNING_DOMAIN: &[u8] = b"deepnode-ledger/extrinsic/v1";

/// What an extrinsic asks for. Every call that names a `uid` must be signed by the node's
/// owner.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum Call {
    /// Register a new node owned by the signer (the ledger's docs say which uid it gets).
    Register,
    /// Move `amount` from the signer's free balance to node `uid`'s stake.
    AddStake {
        /// The node.
        uid: Uid,
        /// Raw units.
        amount: u64,
    },
    /// Move `amount` from node `uid`'s stake back to the signer's free balance.
    RemoveStake {
        /// The node.
        uid: Uid,
        /// Raw units.
        amount: u64,
    },
    /// Move `amount` of free balance to account `to`.
    Transfer {
        /// The receiver.
        to: AccountId,
        /// Raw units.
        amount: u64,
    },
    /// Replace node `uid`'s weights row (validated, rate limited).
    SetWeights {
        /// The node.
        uid: Uid,
        /// `(uid, raw weight)` entries, any order, uids unique.
        weights: Vec<(Uid, Weight)>,
    },
    /// Publish node `uid`'s network endpoint (UTF-8, at most [`MAX_ENDPOINT_BYTES`]) and the
    /// modality it serves.
    Serve {
        /// The node.
        uid: Uid,
        /// E.g. `"127.0.0.1:7000"`.
        endpoint: Vec<u8>,
        /// A `deepnode_wire::Modality` code (0 text, 1 image, 2 speech, 3 tensor).
        modality: u8,
    },
}

/// A signed call: `signature` covers the chain's genesis hash, `signer`, `nonce` and `call`.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Extrinsic {
    /// The account acting.
    pub signer: AccountId,
    /// The signer's next nonce (0 for a fresh account).
    pub nonce: u64,
    /// What to do.
    pub call: Call,
    /// ed25519 over [`Extrinsic::payload`].
    pub signature: [u8; 64],
}

impl Extrinsic {
    /// The signed bytes: a domain tag, the genesis hash (no replay across chains), then the
    /// SCALE encoding of `(signer, nonce, call)`.
    pub fn payload(genesis: &H256, signer: &AccountId, nonce: u64, call: &Call) -> Vec<u8> {
        let mut out = Vec::with_capacity(SIGNING_DOMAIN.len() + 32 + 48);
        out.extend_from_slice(SIGNING_DOMAIN);
        out.extend_from_slice(&genesis.0);
        (signer, nonce, call).encode_to(&mut out);
        out
    }

    /// Signs `call` with `key` for the chain whose genesis hash is `genesis`.
    pub fn sign(key: &SigningKey, genesis: &H256, nonce: u64, call: Call) -> Extrinsic {
        let signer = AccountId::from(key);
        let signature = key
            .sign(&Extrinsic::payload(genesis, &signer, nonce, &call))
            .to_bytes();
        Extrinsic {
            signer,
            nonce,
            call,
            signature,
        }
    }

    /// Checks the signature (strict ed25519: no malleable or small-order forms).
    pub fn verify(&self, genesis: &H256) -> Result<(), TxError> {
        let key = VerifyingKey::from_bytes(&self.signer.0).map_err(|_| TxError::BadKey)?;
        let payload = Extrinsic::payload(genesis, &self.signer, self.nonce, &self.call);
        key.verify_strict(&payload, &Signature::from_bytes(&self.signature))
            .map_err(|_| TxError::BadSignature)
    }

    /// Decodes exactly one extrinsic from `bytes` (no trailing bytes) and checks its size
    /// and signature. Stateless: nonce and call are checked when it is applied.
    pub fn decode_checked(bytes: &[u8], genesis: &H256) -> Result<Extrinsic, TxError> {
        if bytes.len() > MAX_EXTRINSIC_BYTES {
            return Err(TxError::TooLarge {
                len: bytes.len(),
                max: MAX_EXTRINSIC_BYTES,
            });
        }
        let ext = Extrinsic::decode_all(&mut &bytes[..])
            .map_err(|e| TxError::Malformed(MalformedError::Scale(e)))?;
        ext.verify(genesis)?;
        Ok(ext)
    }

    /// BLAKE2b-256 of the encoding: the extrinsic's id.
    pub fn hash(&self) -> H256 {
        H256::digest(&self.encode())
    }

    /// The text form `ledger_submit` takes: `0x` and the SCALE encoding in hex.
    pub fn to_hex(&self) -> String {
        format!("0x{}", hex::encode(self.encode()))
    }

    /// Reads [`Extrinsic::to_hex`]'s form (the `0x` is optional) and checks it as
    /// [`Extrinsic::decode_checked`] does. The length is checked before any decoding: hex is
    /// two characters a byte.
    pub fn from_hex(text: &str, genesis: &H256) -> Result<Extrinsic, TxError> {
        let text = text.strip_prefix("0x").unwrap_or(text);
        if text.len() / 2 > MAX_EXTRINSIC_BYTES {
            return Err(TxError::TooLarge {
                len: text.len() / 2,
                max: MAX_EXTRINSIC_BYTES,
            });
        }
        let bytes = hex::decode(text).map_err(|e| TxError::Malformed(MalformedError::NotHex(e)))?;
        Extrinsic::decode_checked(&bytes, genesis)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> SigningKey {
        SigningKey::from_bytes(&[b; 32])
    }

    #[test]
    fn signed_extrinsic_round_trips_and_verifies() {
        let g = H256([7; 32]);
        let ext = Extrinsic::sign(
            &key(1),
            &g,
            3,
            Call::SetWeights {
                uid: 2,
                weights: vec![(0, 5), (1, 9)],
            },
        );
        let bytes = ext.encode();
        assert_eq!(Extrinsic::decode_checked(&bytes, &g), Ok(ext.clone()));
        assert_eq!(
            Extrinsic::decode_checked(&bytes, &H256([8; 32])),
            Err(TxError::BadSignature),
            "another chain's extrinsic does not verify"
        );
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(matches!(
            Extrinsic::decode_checked(&trailing, &g),
            Err(TxError::Malformed(_))
        ));
        assert_eq!(Extrinsic::from_hex(&ext.to_hex(), &g), Ok(ext.clone()));
        assert!(matches!(
            Extrinsic::from_hex("0xzz", &g),
            Err(TxError::Malformed(MalformedError::NotHex(_)))
        ));
        let mut tampered = ext;
        tampered.nonce = 4;
        assert_eq!(tampered.verify(&g), Err(TxError::BadSignature));
    }
}
