#![doc = include_str!("../README.md")]

pub mod bench;
mod block;
mod chain;
mod error;
mod extrinsic;
#[doc(hidden)]
pub mod fuzzing;
mod genesis;
#[cfg(feature = "rpc")]
pub mod rpc;
mod state;
mod store;
pub mod view;
mod wallet;

pub use block::{Block, Event, Header, Receipts};
pub use chain::{Chain, Committed, Sealed, VerifyReport, verify};
#[cfg(feature = "rpc")]
pub use error::RpcError;
pub use error::{
    Corruption, Damage, EndpointError, GenesisError, LedgerError, MalformedError, ParseIdError,
    Record, TxError, UsageError, VerifyFailure, WalletError,
};
pub use extrinsic::{AccountId, Call, Extrinsic, H256, MAX_ENDPOINT_BYTES, MAX_EXTRINSIC_BYTES};
pub use genesis::parse_genesis;
#[cfg(feature = "rpc")]
pub use rpc::{Client, LedgerNode};
pub use state::{
    ACTIVITY_CUTOFF_EPOCHS, Account, ChainConfig, Genesis, LedgerState, Neuron, NeuronStats,
    default_params,
};
pub use store::{DB_FILE, Store};
pub use wallet::{MAX_WALLET_BYTES, Wallet};
