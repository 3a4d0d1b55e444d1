//! A FRAME runtime running `pallet-deepnode`: the market on a chain run by existing Substrate
//! software (chopsticks, `polkadot-omni-node`), beside the embedded ledger.
//!
//! Pallets: System, Timestamp, Aura (slots of [`SLOT_DURATION_MS`]), Balances (`u128`),
//! TransactionPayment (a fee of one unit per byte), Sudo (dev chains) and DeepNode. Runtime
//! APIs: the standard set a client needs (Core, Metadata, BlockBuilder, transaction queue,
//! offchain, session keys, Aura, account nonce, transaction payment, genesis builder) and
//! [`runtime_api::DeepNodeApi`], the metagraph in one call. Genesis presets: [`genesis`].
//!
//! Built with `std` it is an ordinary library (the native tests); built with
//! `scripts/runtime-wasm.sh` (no `std`, `--cfg substrate_runtime`, `wasm32v1-none`) it is
//! the wasm blob a client executes.

#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

pub mod genesis;
pub mod runtime_api;

use frame::deps::frame_support;
use frame::deps::sp_consensus_aura::sr25519::AuthorityId as AuraId;
use frame::prelude::*;
use frame::runtime::prelude::*;

/// The runtime's name and versions; `spec_version` changes with every change of its logic.
#[runtime_version]
pub const VERSION: RuntimeVersion = RuntimeVersion {
    spec_name: alloc::borrow::Cow::Borrowed("deepnode"),
    impl_name: alloc::borrow::Cow::Borrowed("deepnode"),
    authoring_version: 1,
    spec_version: 1,
    impl_version: 1,
    apis: RUNTIME_API_VERSIONS,
    transaction_version: 1,
    system_version: 1,
};

/// Milliseconds per Aura slot: one block per slot.
pub const SLOT_DURATION_MS: u64 = 6_000;

/// What a signed transaction is checked against, in order; fees are charged before
/// dispatch and the unused weight reclaimed last.
pub type TxExtension = (
    frame_system::CheckNonZeroSender<Runtime>,
    frame_system::CheckSpecVersion<Runtime>,
    frame_system::CheckTxVersion<Runtime>,
    frame_system::CheckGenesis<Runtime>,
    frame_system::CheckEra<Runtime>,
    frame_system::CheckNonce<Runtime>,
    frame_system::CheckWeight<Runtime>,
    pallet_transaction_payment::ChargeTransactionPayment<Runtime>,
    frame_system::WeightReclaim<Runtime>,
);

mod construct;
pub use construct::*;

parameter_types! {
    /// The runtime's version, as frame-system reports it.
    pub const Version: RuntimeVersion = VERSION;
}

#[derive_impl(frame_system::config_preludes::SolochainDefaultConfig)]
impl frame_system::Config for Runtime {
    type Block = Block;
    type Version = Version;
    type AccountData = pallet_balances::AccountData<Balance>;
}

impl pallet_timestamp::Config for Runtime {
    type Moment = u64;
    type OnTimestampSet = Aura;
    type MinimumPeriod = ConstU64<{ SLOT_DURATION_MS / 2 }>;
    type WeightInfo = ();
}

impl pallet_aura::Config for Runtime {
    type AuthorityId = AuraId;
    type MaxAuthorities = ConstU32<32>;
    type DisabledValidators = ();
    type AllowMultipleBlocksPerSlot = ConstBool<false>;
    type SlotDuration = pallet_aura::MinimumPeriodTimesTwo<Runtime>;
}

#[derive_impl(pallet_balances::config_preludes::TestDefaultConfig)]
impl pallet_balances::Config for Runtime {
    type Balance = Balance;
    type ExistentialDeposit = ConstU128<EXISTENTIAL_DEPOSIT>;
    type AccountStore = System;
}

#[derive_impl(pallet_transaction_payment::config_preludes::TestDefaultConfig)]
impl pallet_transaction_payment::Config for Runtime {
    type OnChargeTransaction = pallet_transaction_payment::FungibleAdapter<Balances, ()>;
    type WeightToFee = NoFee<Balance>;
    type LengthToFee = FixedFee<1, Balance>;
}

#[derive_impl(pallet_sudo::config_preludes::TestDefaultConfig)]
impl pallet_sudo::Config for Runtime {}

parameter_types! {
    /// The account holding all stake derives from this id.
    pub const DeepNodePalletId: frame_support::PalletId = frame_support::PalletId(*b"deepnode");
}

/// The market's chain rules: an epoch every [`TEMPO`] blocks over at most [`MAX_NODES`]
/// nodes with rows of at most [`MAX_WEIGHTS_LEN`] entries.
impl pallet_deepnode::Config for Runtime {
    type Currency = Balances;
    type PalletId = DeepNodePalletId;
    type MaxNodes = ConstU32<MAX_NODES>;
    type MaxWeightsLen = ConstU32<MAX_WEIGHTS_LEN>;
    type Tempo = ConstU64<TEMPO>;
    type ImmunityPeriod = ConstU64<IMMUNITY_PERIOD>;
    type WeightsRateLimit = ConstU64<WEIGHTS_RATE_LIMIT>;
    type WeightInfo = ();
}

/// Balances in raw units.
pub type Balance = u128;
/// The least balance an account may hold.
pub const EXISTENTIAL_DEPOSIT: Balance = 1;
/// Blocks per epoch.
pub const TEMPO: u64 = 10;
/// Most registered nodes.
pub const MAX_NODES: u32 = 1024;
/// Most entries in a weights row.
pub const MAX_WEIGHTS_LEN: u32 = 64;
/// Blocks after registration during which a node cannot be replaced.
pub const IMMUNITY_PERIOD: u64 = 10;
/// A node may set weights at most once per this many blocks.
pub const WEIGHTS_RATE_LIMIT: u64 = 2;

/// An account: the public key of an sr25519 (or ed25519, ecdsa) signer.
pub type AccountId = <Runtime as frame_system::Config>::AccountId;
/// A transaction counter.
pub type Nonce = <Runtime as frame_system::Config>::Nonce;
/// The block type, with its signed extrinsics.
pub type Block = frame::runtime::types_common::BlockOf<Runtime, TxExtension>;
/// The header type.
pub type Header = HeaderFor<Runtime>;
/// The extrinsic type.
pub type UncheckedExtrinsic = ExtrinsicFor<Runtime>;
