//! JSON-RPC 2.0 over HTTP and WebSocket (one jsonrpsee server, one port), and the block
//! producer thread.
//!
//! | method | params | result |
//! |---|---|---|
//! | `ledger_genesisHash` | | `"0x.."`: the chain id extrinsics sign |
//! | `ledger_head` | | the last committed header |
//! | `ledger_submit` | `"0x<SCALE extrinsic>"` | `"0x<extrinsic hash>"`, or an error (below) |
//! | `ledger_extrinsic` | `"0x<hash>"` | `{"block", "index"}` once committed, else `null` |
//! | `ledger_account` | `"0x<account>"` | `{"free", "stake", "nonce", "pending_nonce"}` |
//! | `ledger_metagraph` | | per uid: key, stake, rank, trust, consensus, incentive, ... |
//! | `ledger_block` | number | header, extrinsics and receipts, or `null` |
//! | `ledger_weights` / `ledger_bonds` | uid | `[[uid, value]]` (bonds add exact bits) |
//! | `ledger_epochInput` | | the next epoch's input in the `deepnode epoch` JSON contract |
//! | `ledger_subscribeNewHeads` | | notifications `ledger_newHead` with each header |
//!
//! A refused extrinsic is an error object with code `-32000 - k` (k per [`TxError`]
//! variant, see [`tx_error_code`]) and the reason as its message; bad params are `-32602`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use deepnode_consensus::Fx;
use jsonrpsee::RpcModule;
use jsonrpsee::server::{Server, ServerConfig, ServerHandle};
use jsonrpsee::types::{ErrorObjectOwned, Params};
use parity_scale_codec::Encode;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::chain::{Call, Event};
use crate::{AccountId, Chain, Extrinsic, H256, Header, LedgerError, MAX_EXTRINSIC_BYTES, TxError};

/// The largest HTTP or WebSocket request body accepted: twice a maximal extrinsic in hex, so
/// an oversized extrinsic reaches the ledger and gets its own error.
pub const MAX_REQUEST_BYTES: u32 = 4 * MAX_EXTRINSIC_BYTES as u32 + 4096;

/// The JSON-RPC error code of a refused extrinsic.
pub fn tx_error_code(e: &TxError) -> i32 {
    -32000
        - match e {
            TxError::TooLarge { .. } => 1,
            TxError::Malformed(_) => 2,
            TxError::BadKey => 3,
            TxError::BadSignature => 4,
            TxError::BadNonce { .. } => 5,
            TxError::NoSuchNode(_) => 6,
            TxError::NotOwner(_) => 7,
            TxError::ZeroAmount => 8,
            TxError::InsufficientBalance { .. } => 9,
            TxError::InsufficientStake { .. } => 10,
            TxError::Overflow => 11,
            TxError::RegistryFull { .. } => 12,
            TxError::InvalidWeights(_) => 13,
            TxError::RateLimited { .. } => 14,
            TxError::BadEndpoint(_) => 15,
            TxError::PoolFull(_) => 16,
        }
}

fn rpc_err(e: &TxError) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(tx_error_code(e), e.to_string(), None::<()>)
}

fn invalid_params(msg: impl std::fmt::Display) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(-32602, format!("invalid params: {msg}"), None::<()>)
}

fn internal(e: &LedgerError) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(-32603, e.to_string(), None::<()>)
}

/// What the RPC handlers and the producer share.
struct Shared {
    chain: Mutex<Chain>,
    genesis: H256,
    heads: broadcast::Sender<Value>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Chain> {
        // A panic while holding the lock leaves the chain as it was before the failed call
        // (every mutation validates first); keep serving.
        self.chain.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A running ledger node: the RPC server and the block producer.
pub struct LedgerNode {
    addr: SocketAddr,
    server: ServerHandle,
    stop: Arc<AtomicBool>,
    producer: Option<std::thread::JoinHandle<Result<(), LedgerError>>>,
}

impl LedgerNode {
    /// Starts serving `chain` on `listen` (loopback only) and producing a block every
    /// `interval`. Call from within a tokio runtime.
    pub async fn start(
        chain: Chain,
        listen: SocketAddr,
        interval: Duration,
    ) -> Result<LedgerNode, LedgerError> {
        if !listen.ip().is_loopback() {
            return Err(LedgerError::Usage(format!(
                "--listen {listen}: only loopback addresses are served"
            )));
        }
        let (heads, _) = broadcast::channel(64);
        let shared = Arc::new(Shared {
            genesis: chain.genesis_hash(),
            chain: Mutex::new(chain),
            heads,
        });
        let config = ServerConfig::builder()
            .max_request_body_size(MAX_REQUEST_BYTES)
            .build();
        let server = Server::builder().set_config(config).build(listen).await?;
        let addr = server.local_addr()?;
        let module = module(shared.clone()).map_err(|e| LedgerError::Rpc(e.to_string()))?;
        let server = server.start(module);
        let stop = Arc::new(AtomicBool::new(false));
        let producer = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("block-producer".into())
                .spawn(move || produce(&shared, interval, &stop))?
        };
        Ok(LedgerNode {
            addr,
            server,
            stop,
            producer: Some(producer),
        })
    }

    /// The bound address (`http://` and `ws://` on the same port).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Waits until the producer stops on an error (a storage failure) and returns it.
    pub async fn wait_failure(&mut self) -> LedgerError {
        loop {
            if self.producer.as_ref().is_none_or(|p| p.is_finished()) {
                return match self.producer.take().map(std::thread::JoinHandle::join) {
                    Some(Ok(Err(e))) => e,
                    _ => LedgerError::Rpc("block producer stopped".into()),
                };
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops producing (after the block in progress is committed) and stops the server.
    pub async fn stop(mut self) -> Result<(), LedgerError> {
        self.stop.store(true, Ordering::SeqCst);
        let res = match self.producer.take().map(std::thread::JoinHandle::join) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(LedgerError::Rpc("block producer panicked".into())),
            None => Ok(()),
        };
        let _ = self.server.stop();
        self.server.clone().stopped().await;
        res
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn produce(shared: &Shared, interval: Duration, stop: &AtomicBool) -> Result<(), LedgerError> {
    let mut next = Instant::now() + interval;
    while !stop.load(Ordering::SeqCst) {
        let now = Instant::now();
        if now < next {
            std::thread::sleep((next - now).min(Duration::from_millis(50)));
            continue;
        }
        next += interval;
        let head = {
            let mut chain = shared.lock();
            header_json(chain.produce_block(now_ms())?)
        };
        // No subscriber is not an error.
        let _ = shared.heads.send(head);
    }
    Ok(())
}

fn fx(x: Fx) -> Value {
    json!(x.to_f64())
}

/// A header as JSON, with its hash.
pub fn header_json(h: &Header) -> Value {
    json!({
        "number": h.number,
        "hash": h.hash().to_string(),
        "parent": h.parent.to_string(),
        "state_root": h.state_root.to_string(),
        "extrinsics_root": h.extrinsics_root.to_string(),
        "timestamp_ms": h.timestamp_ms,
    })
}

fn call_json(c: &Call) -> Value {
    match c {
        Call::Register => json!({"register": {}}),
        Call::AddStake { uid, amount } => json!({"add_stake": {"uid": uid, "amount": amount}}),
        Call::RemoveStake { uid, amount } => {
            json!({"remove_stake": {"uid": uid, "amount": amount}})
        }
        Call::Transfer { to, amount } => {
            json!({"transfer": {"to": to.to_string(), "amount": amount}})
        }
        Call::SetWeights { uid, weights } => {
            json!({"set_weights": {"uid": uid, "weights": weights}})
        }
        Call::Serve { uid, endpoint } => {
            json!({"serve": {"uid": uid, "endpoint": String::from_utf8_lossy(endpoint)}})
        }
    }
}

fn event_json(e: &Event) -> Value {
    match e {
        Event::Registered {
            uid,
            owner,
            replaced,
            returned,
        } => json!({"registered": {"uid": uid, "owner": owner.to_string(),
            "replaced": replaced.map(|a| a.to_string()), "returned": returned}}),
        Event::StakeAdded { uid, amount } => json!({"stake_added": {"uid": uid, "amount": amount}}),
        Event::StakeRemoved { uid, amount } => {
            json!({"stake_removed": {"uid": uid, "amount": amount}})
        }
        Event::Transferred { from, to, amount } => json!({"transferred": {
            "from": from.to_string(), "to": to.to_string(), "amount": amount}}),
        Event::WeightsSet { uid, len } => json!({"weights_set": {"uid": uid, "len": len}}),
        Event::Served { uid } => json!({"served": {"uid": uid}}),
        Event::Epoch {
            index,
            loss,
            minted,
            min_allowed_weights,
        } => {
            json!({"epoch": {"index": index, "loss": fx(*loss), "loss_bits": loss.to_bits().to_string(),
            "minted": minted, "min_allowed_weights": min_allowed_weights}})
        }
        Event::EpochFailed { reason } => json!({"epoch_failed": {"reason": reason}}),
    }
}

/// The metagraph of a state as JSON (what `ledger_metagraph` returns).
pub fn metagraph_json(chain: &Chain) -> Value {
    let s = chain.state();
    let nodes: Vec<Value> = s
        .nodes
        .iter()
        .enumerate()
        .map(|(uid, n)| {
            let l = &n.last;
            json!({
                "uid": uid,
                "key": n.owner.to_string(),
                "stake": n.stake,
                "rank": fx(l.rank),
                "trust": fx(l.trust),
                "consensus": fx(l.consensus),
                "incentive": fx(l.incentive),
                "dividends": fx(l.dividends),
                "emission": l.emission,
                "endpoint": String::from_utf8_lossy(&n.endpoint),
                "weights_block": n.weights_block,
                "registered_at": n.registered_at,
                "bits": {
                    "rank": l.rank.to_bits().to_string(),
                    "trust": l.trust.to_bits().to_string(),
                    "consensus": l.consensus.to_bits().to_string(),
                    "incentive": l.incentive.to_bits().to_string(),
                    "dividends": l.dividends.to_bits().to_string(),
                },
            })
        })
        .collect();
    json!({
        "block": s.block,
        "epochs": s.epochs,
        "n": s.nodes.len(),
        "min_allowed_weights": s.params.min_allowed_weights,
        "tempo": s.config.tempo,
        "nodes": nodes,
    })
}

/// The next epoch's input in the `deepnode epoch` JSON contract
/// ([`deepnode_contract::render_state`]). Exact while every bond is an `f64` (always before
/// the first epoch); `params` reals are printed as the nearest `f64`.
pub fn epoch_input_json(chain: &Chain) -> Value {
    deepnode_contract::render_state(&chain.state().to_consensus_state())
}

fn block_json(chain: &Chain, number: u64) -> Result<Value, LedgerError> {
    let Some(block) = chain.store().block(number)? else {
        return Ok(Value::Null);
    };
    let receipts = chain.store().receipts(number)?.unwrap_or_default();
    let exts: Vec<Value> = block
        .extrinsics
        .iter()
        .enumerate()
        .map(|(k, e)| {
            json!({
                "hash": e.hash().to_string(),
                "signer": e.signer.to_string(),
                "nonce": e.nonce,
                "call": call_json(&e.call),
                "events": receipts.extrinsics.get(k).map_or(Vec::new(), |ev| ev.iter().map(event_json).collect()),
            })
        })
        .collect();
    Ok(json!({
        "header": header_json(&block.header),
        "extrinsics": exts,
        "end_events": receipts.end.iter().map(event_json).collect::<Vec<_>>(),
    }))
}

fn one<T: serde::de::DeserializeOwned>(p: &Params<'_>) -> Result<T, ErrorObjectOwned> {
    p.one::<T>().map_err(|e| invalid_params(e.message()))
}

fn parse<T: std::str::FromStr<Err = String>>(s: &str) -> Result<T, ErrorObjectOwned> {
    s.parse::<T>().map_err(invalid_params)
}

fn uid_row(chain: &Chain, uid: u32) -> Result<usize, ErrorObjectOwned> {
    usize::try_from(uid)
        .ok()
        .filter(|&i| i < chain.state().nodes.len())
        .ok_or_else(|| rpc_err(&TxError::NoSuchNode(uid)))
}

fn module(
    shared: Arc<Shared>,
) -> Result<RpcModule<Arc<Shared>>, jsonrpsee::core::RegisterMethodError> {
    let mut m = RpcModule::new(shared);
    m.register_method("ledger_genesisHash", |_, s, _| s.genesis.to_string())?;
    m.register_method("ledger_head", |_, s, _| header_json(s.lock().head()))?;
    m.register_method("ledger_submit", |p, s, _| {
        let hex_text: String = one(&p)?;
        let text = hex_text.strip_prefix("0x").unwrap_or(&hex_text);
        // Hex is two characters a byte: refuse by length before decoding anything.
        if text.len() / 2 > MAX_EXTRINSIC_BYTES {
            return Err(rpc_err(&TxError::TooLarge {
                len: text.len() / 2,
                max: MAX_EXTRINSIC_BYTES,
            }));
        }
        let bytes =
            hex::decode(text).map_err(|e| rpc_err(&TxError::Malformed(format!("not hex: {e}"))))?;
        // The signature is checked before taking the lock, so checks run in parallel.
        let ext = Extrinsic::decode_checked(&bytes, &s.genesis).map_err(|e| rpc_err(&e))?;
        let hash = s.lock().submit_verified(ext).map_err(|e| rpc_err(&e))?;
        Ok::<_, ErrorObjectOwned>(hash.to_string())
    })?;
    m.register_method("ledger_extrinsic", |p, s, _| {
        let hash: H256 = parse(&one::<String>(&p)?)?;
        let at = s.lock().store().locate(&hash).map_err(|e| internal(&e))?;
        Ok::<_, ErrorObjectOwned>(at.map_or(Value::Null, |(b, k)| json!({"block": b, "index": k})))
    })?;
    m.register_method("ledger_account", |p, s, _| {
        let who: AccountId = parse(&one::<String>(&p)?)?;
        let chain = s.lock();
        let acc = chain
            .state()
            .accounts
            .get(&who)
            .copied()
            .unwrap_or_default();
        let stake: u64 = chain
            .state()
            .nodes
            .iter()
            .filter(|n| n.owner == who)
            .map(|n| n.stake)
            .sum();
        Ok::<_, ErrorObjectOwned>(json!({
            "free": acc.free,
            "stake": stake,
            "nonce": acc.nonce,
            "pending_nonce": chain.pending().nonce(&who),
        }))
    })?;
    m.register_method("ledger_metagraph", |_, s, _| metagraph_json(&s.lock()))?;
    m.register_method("ledger_epochInput", |_, s, _| epoch_input_json(&s.lock()))?;
    m.register_method("ledger_block", |p, s, _| {
        let number: u64 = one(&p)?;
        block_json(&s.lock(), number).map_err(|e| internal(&e))
    })?;
    m.register_method("ledger_weights", |p, s, _| {
        let uid: u32 = one(&p)?;
        let chain = s.lock();
        let i = uid_row(&chain, uid)?;
        Ok::<_, ErrorObjectOwned>(json!(chain.state().weights[i]))
    })?;
    m.register_method("ledger_bonds", |p, s, _| {
        let uid: u32 = one(&p)?;
        let chain = s.lock();
        let i = uid_row(&chain, uid)?;
        let row: Vec<Value> = chain.state().bonds[i]
            .iter()
            .map(|&(u, v)| json!([u, fx(v), v.to_bits().to_string()]))
            .collect();
        Ok::<_, ErrorObjectOwned>(json!(row))
    })?;
    m.register_subscription(
        "ledger_subscribeNewHeads",
        "ledger_newHead",
        "ledger_unsubscribeNewHeads",
        |_, pending, s, _| async move {
            let mut rx = s.heads.subscribe();
            let sink = pending.accept().await?;
            loop {
                match rx.recv().await {
                    Ok(head) => sink.send(serde_json::value::to_raw_value(&head)?).await?,
                    // A slow subscriber skips heads rather than stalling the producer.
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return Ok(()),
                }
            }
        },
    )?;
    Ok(m)
}

/// The encoded form of an extrinsic as `ledger_submit` takes it.
pub fn submit_hex(ext: &Extrinsic) -> String {
    format!("0x{}", hex::encode(ext.encode()))
}
