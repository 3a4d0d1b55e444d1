#![doc = include_str!("../README.md")]

#[cfg(feature = "rpc")]
mod client;
mod extrinsic;
mod id;
pub mod metagraph;
mod refusal;
mod wallet;

#[cfg(feature = "rpc")]
pub use client::{Client, MAX_REQUEST_BYTES, READ_RETRIES, RpcError};
pub use extrinsic::{Call, Extrinsic, MAX_ENDPOINT_BYTES, MAX_EXTRINSIC_BYTES};
pub use id::{AccountId, H256, ParseIdError};
pub use metagraph::{MetagraphView, NeuronView, StatsBits};
pub use refusal::{EndpointError, MalformedError, TX_ERROR_BASE, TxError, tx_error_code};
pub use wallet::{MAX_WALLET_BYTES, Wallet, WalletError};
