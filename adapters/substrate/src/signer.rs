//! The node's ed25519 key as a Substrate signer: its account is the public key itself
//! (`AccountId32`), so the metagraph's owner keys are the keys peers authenticate with.

use ed25519_dalek::{Signer as _, SigningKey};
use subxt::config::SubstrateConfig;
use subxt::transactions::Signer;
use subxt::utils::{AccountId32, MultiSignature};

/// Signs extrinsics with an ed25519 key (`MultiSignature::Ed25519`).
pub struct Ed25519Signer(pub SigningKey);

impl Signer<SubstrateConfig> for Ed25519Signer {
    fn account_id(&self) -> AccountId32 {
        AccountId32(self.0.verifying_key().to_bytes())
    }

    fn sign(&self, payload: &[u8]) -> MultiSignature {
        MultiSignature::Ed25519(self.0.sign(payload).to_bytes())
    }
}
