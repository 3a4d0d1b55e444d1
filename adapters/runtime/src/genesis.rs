//! Genesis presets: the JSON patches of `RuntimeGenesisConfig` that a chain spec starts
//! from. `development`: every well-known dev account (Alice..Ferdie and their stashes)
//! funded, Alice the one Aura authority and the sudo key. `local_testnet`: Alice and Bob
//! the Aura authorities, Alice..Ferdie funded, Alice sudo. The market's genesis (mechanism
//! parameters, controller policy) is the pallet's default in both.

use alloc::vec;
use alloc::vec::Vec;
use frame::deps::frame_support::build_struct_json_patch;
use frame::deps::sp_consensus_aura::sr25519::AuthorityId as AuraId;
use frame::deps::sp_genesis_builder::{self, PresetId};
use frame::runtime::prelude::Sr25519Keyring;
use serde_json::Value;

use crate::{AccountId, AuraConfig, Balance, BalancesConfig, RuntimeGenesisConfig, SudoConfig};

/// Each funded account's balance: 2^60 raw units.
pub const ENDOWMENT: Balance = 1 << 60;

fn patch(authorities: &[Sr25519Keyring], funded: Vec<AccountId>) -> Value {
    build_struct_json_patch!(RuntimeGenesisConfig {
        balances: BalancesConfig {
            balances: funded.into_iter().map(|a| (a, ENDOWMENT)).collect()
        },
        aura: AuraConfig {
            authorities: authorities
                .iter()
                .map(|k| AuraId::from(k.public()))
                .collect(),
        },
        sudo: SudoConfig {
            key: Some(Sr25519Keyring::Alice.to_account_id())
        },
    })
}

/// The development preset's patch.
pub fn development() -> Value {
    patch(
        &[Sr25519Keyring::Alice],
        Sr25519Keyring::iter().map(|k| k.to_account_id()).collect(),
    )
}

/// The local testnet preset's patch.
pub fn local_testnet() -> Value {
    let funded = [
        Sr25519Keyring::Alice,
        Sr25519Keyring::Bob,
        Sr25519Keyring::Charlie,
        Sr25519Keyring::Dave,
        Sr25519Keyring::Eve,
        Sr25519Keyring::Ferdie,
    ];
    patch(
        &[Sr25519Keyring::Alice, Sr25519Keyring::Bob],
        funded.iter().map(|k| k.to_account_id()).collect(),
    )
}

/// The JSON of preset `id`, or `None` for an unknown name.
pub fn preset(id: &PresetId) -> Option<Vec<u8>> {
    let patch = match id.as_ref() {
        sp_genesis_builder::DEV_RUNTIME_PRESET => development(),
        sp_genesis_builder::LOCAL_TESTNET_RUNTIME_PRESET => local_testnet(),
        _ => return None,
    };
    serde_json::to_vec(&patch).ok()
}

/// The presets' names.
pub fn preset_names() -> Vec<PresetId> {
    vec![
        PresetId::from(sp_genesis_builder::DEV_RUNTIME_PRESET),
        PresetId::from(sp_genesis_builder::LOCAL_TESTNET_RUNTIME_PRESET),
    ]
}
