//! A JSON-RPC client for the ledger over plain HTTP (the server is loopback only, so the client
//! carries no TLS), used by the wallet commands, the client node and the tests.

use std::time::{Duration, Instant};

use jsonrpsee_core::client::ClientT;
use jsonrpsee_core::params::ArrayParams;
use jsonrpsee_core::rpc_params;
use jsonrpsee_http_client::{HttpClient, HttpClientBuilder};
use serde_json::Value;

use crate::extrinsic::{Call, Extrinsic, MAX_EXTRINSIC_BYTES};
use crate::id::{AccountId, H256, ParseIdError};
use crate::metagraph::MetagraphView;

/// The largest HTTP or WebSocket request body the ledger's server accepts: twice a maximal
/// extrinsic in hex, so an oversized extrinsic reaches the ledger and gets its own error.
pub const MAX_REQUEST_BYTES: u32 = 4 * MAX_EXTRINSIC_BYTES as u32 + 4096;

/// Why a JSON-RPC exchange failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RpcError {
    /// The server refused the call: its error code and message.
    #[error("{message} (code {code})")]
    Refused {
        /// The JSON-RPC error code (a refused extrinsic's is [`crate::tx_error_code`]).
        code: i32,
        /// The server's message.
        message: String,
    },
    /// The call did not complete (connection, timeout, a reply that is not JSON-RPC).
    #[error("{0}")]
    Client(jsonrpsee_core::client::Error),
    /// A reply lacks a field the method promises.
    #[error("{method}: no {field}")]
    MissingField {
        /// The method called.
        method: &'static str,
        /// The field.
        field: &'static str,
    },
    /// A reply's hash or account is not 32 bytes of hex.
    #[error("{0}")]
    BadId(ParseIdError),
    /// A reply is not of the method's documented shape.
    #[error("{method}: unexpected reply: {reason}")]
    BadReply {
        /// The method called.
        method: &'static str,
        /// What did not fit.
        reason: String,
    },
    /// An extrinsic was not committed within the wait.
    #[error("{hash} not committed after {timeout:?}")]
    NotCommitted {
        /// The extrinsic.
        hash: H256,
        /// How long it was waited for.
        timeout: Duration,
    },
}

/// Times a read is sent again after its connection failed.
pub const READ_RETRIES: u32 = 3;
/// The wait before the first repeat; it doubles before each next.
const RETRY_WAIT: Duration = Duration::from_millis(100);
/// The methods that change the chain: never repeated by [`Client::call`].
const WRITES: [&str; 1] = ["ledger_submit"];

/// A connection to the ledger's RPC endpoint.
pub struct Client {
    http: HttpClient,
}

/// A refused call keeps the server's error code and message.
fn rpc(e: jsonrpsee_core::client::Error) -> RpcError {
    match e {
        jsonrpsee_core::client::Error::Call(obj) => RpcError::Refused {
            code: obj.code(),
            message: obj.message().to_string(),
        },
        other => RpcError::Client(other),
    }
}

/// Parses a reply's hash.
fn id(v: &Value) -> Result<H256, RpcError> {
    v.as_str()
        .unwrap_or_default()
        .parse()
        .map_err(RpcError::BadId)
}

impl Client {
    /// A client of `url` (e.g. `http://127.0.0.1:9944`).
    pub fn new(url: &str) -> Result<Client, RpcError> {
        let http = HttpClientBuilder::default()
            .max_request_size(MAX_REQUEST_BYTES.saturating_mul(2))
            .request_timeout(Duration::from_secs(30))
            .build(url)
            .map_err(rpc)?;
        Ok(Client { http })
    }

    /// Calls `method` with positional `params`. A read whose connection failed (reset,
    /// refused, closed before the reply) is sent again, up to [`READ_RETRIES`] times after a
    /// growing wait: on a real network a kept-alive connection breaks now and then, and a read
    /// can be repeated. A submit is never repeated here: its reply may be what was lost.
    pub async fn call(&self, method: &str, params: ArrayParams) -> Result<Value, RpcError> {
        let mut wait = RETRY_WAIT;
        let mut tries = 0;
        loop {
            match self.http.request(method, params.clone()).await {
                Err(jsonrpsee_core::client::Error::Transport(_))
                    if tries < READ_RETRIES && !WRITES.contains(&method) =>
                {
                    tries += 1;
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
                r => return r.map_err(rpc),
            }
        }
    }

    /// The chain id extrinsics sign.
    pub async fn genesis_hash(&self) -> Result<H256, RpcError> {
        id(&self.call("ledger_genesisHash", rpc_params![]).await?)
    }

    /// The next nonce of `who`, counting extrinsics already in the pool.
    pub async fn pending_nonce(&self, who: AccountId) -> Result<u64, RpcError> {
        let v = self
            .call("ledger_account", rpc_params![who.to_string()])
            .await?;
        v["pending_nonce"].as_u64().ok_or(RpcError::MissingField {
            method: "ledger_account",
            field: "pending_nonce",
        })
    }

    /// The metagraph of the committed state.
    pub async fn metagraph(&self) -> Result<MetagraphView, RpcError> {
        let v = self.call("ledger_metagraph", rpc_params![]).await?;
        serde_json::from_value(v).map_err(|e| RpcError::BadReply {
            method: "ledger_metagraph",
            reason: e.to_string(),
        })
    }

    /// Neuron `uid`'s committed weights row `(uid, weight)`, ascending by uid.
    pub async fn weights(
        &self,
        uid: deepnode_consensus::Uid,
    ) -> Result<Vec<(deepnode_consensus::Uid, deepnode_consensus::Weight)>, RpcError> {
        let v = self.call("ledger_weights", rpc_params![uid]).await?;
        serde_json::from_value(v).map_err(|e| RpcError::BadReply {
            method: "ledger_weights",
            reason: e.to_string(),
        })
    }

    /// Submits an encoded extrinsic (hex); returns its hash. Accepted means pending: it is
    /// durable only once its block is committed ([`Client::wait_committed`]).
    pub async fn submit_hex(&self, hex: String) -> Result<H256, RpcError> {
        id(&self.call("ledger_submit", rpc_params![hex]).await?["hash"])
    }

    /// Signs `call` with `key` at the signer's next nonce and submits it.
    pub async fn send(
        &self,
        key: &ed25519_dalek::SigningKey,
        call: Call,
    ) -> Result<H256, RpcError> {
        let genesis = self.genesis_hash().await?;
        let nonce = self.pending_nonce(AccountId::from(key)).await?;
        self.submit_hex(Extrinsic::sign(key, &genesis, nonce, call).to_hex())
            .await
    }

    /// Waits until extrinsic `hash` is in a committed block; returns that block's number.
    pub async fn wait_committed(&self, hash: &H256, timeout: Duration) -> Result<u64, RpcError> {
        let start = Instant::now();
        loop {
            let v = self
                .call("ledger_extrinsic", rpc_params![hash.to_string()])
                .await?;
            if let Some(b) = v["block"].as_u64() {
                return Ok(b);
            }
            if start.elapsed() > timeout {
                return Err(RpcError::NotCommitted {
                    hash: *hash,
                    timeout,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
