#![doc = include_str!("../README.md")]

pub mod bench;
mod block;
mod chain;
mod error;
mod genesis;
#[cfg(feature = "rpc")]
pub mod rpc;
mod state;
mod store;
mod verify;
pub mod view;

pub use block::{Block, Event, Header, Receipts};
pub use chain::{Chain, Committed, Sealed};
pub use deepnode_ledger_client::{
    AccountId, Call, EndpointError, Extrinsic, H256, MAX_ENDPOINT_BYTES, MAX_EXTRINSIC_BYTES,
    MAX_WALLET_BYTES, MalformedError, ParseIdError, TxError, Wallet, WalletError,
};
#[cfg(feature = "rpc")]
pub use deepnode_ledger_client::{Client, RpcError};
#[cfg(feature = "rpc")]
pub use error::ServerError;
pub use error::{Corruption, Damage, GenesisError, LedgerError, Record, UsageError, VerifyFailure};
pub use genesis::parse_genesis;
#[cfg(feature = "rpc")]
pub use rpc::RpcServer;
pub use state::{
    ACTIVITY_CUTOFF_EPOCHS, Account, ChainConfig, Genesis, LedgerState, Neuron, NeuronStats,
    default_params,
};
pub use store::{DB_FILE, Store};
pub use verify::{VerifyReport, verify};
