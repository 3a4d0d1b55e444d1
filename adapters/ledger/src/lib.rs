#![doc = include_str!("../README.md")]

pub mod bench;
mod chain;
mod client;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod genesis;
mod node;
pub mod rpc;
mod state;
mod store;
mod wallet;

pub use chain::{
    AccountId, Block, Call, Event, Extrinsic, H256, Header, MAX_ENDPOINT_BYTES,
    MAX_EXTRINSIC_BYTES, Receipts,
};
pub use client::Client;
pub use error::{LedgerError, TxError};
pub use genesis::parse_genesis;
pub use node::{Chain, VerifyReport, verify};
pub use rpc::LedgerNode;
pub use state::{Account, ChainConfig, Genesis, LedgerState, Node, NodeStats};
pub use store::{DB_FILE, Store};
pub use wallet::Wallet;
