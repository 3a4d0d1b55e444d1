//! The JSON-RPC server: one function per method over the shared chain, and [`RpcServer`],
//! which runs the server and the block producer.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use deepnode_consensus::{Uid, Weight};
use deepnode_ledger_client::{AccountId, Extrinsic, H256, ParseIdError, TxError};
use jsonrpsee::core::middleware::RpcServiceBuilder;
use jsonrpsee::core::{RegisterMethodError, SubscriptionResult};
use jsonrpsee::server::{
    BatchRequestConfig, PendingSubscriptionSink, PingConfig, Server, ServerConfig, ServerHandle,
    SubscriptionMessage, stop_channel,
};
use jsonrpsee::types::{ErrorObjectOwned, Extensions, Params};
use tokio::sync::broadcast;

use super::listener::{ConnectionLimits, GateLayer, accept_loop, bind};
use super::producer::produce;
use super::shared::{Json, Shared, lock};
use super::wire::{
    MAX_BATCH_LEN, MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES, MESSAGE_BUFFER, tx_error_code,
};
use crate::chain::Chain;
use crate::error::{LedgerError, ServerError, UsageError};
use crate::state::LedgerState;
use crate::view::{
    AccountView, BlockView, ExtrinsicAt, HeaderView, Submitted, bonds_view, epoch_input_of,
    metagraph_view,
};

/// A running RPC server over a chain, with its block producer.
pub struct RpcServer {
    addr: SocketAddr,
    server: ServerHandle,
    stop: Arc<AtomicBool>,
    producer: Option<std::thread::JoinHandle<Result<(), LedgerError>>>,
}

impl RpcServer {
    /// Starts serving `chain` on `listen` (loopback only) and producing a block every
    /// `interval`, under the default [`ConnectionLimits`]. Call from within a tokio runtime.
    pub async fn start(
        chain: Chain,
        listen: SocketAddr,
        interval: Duration,
    ) -> Result<RpcServer, LedgerError> {
        Self::start_with_limits(chain, listen, interval, ConnectionLimits::default()).await
    }

    /// [`RpcServer::start`] under the connection rules `limits`.
    pub async fn start_with_limits(
        chain: Chain,
        listen: SocketAddr,
        interval: Duration,
        limits: ConnectionLimits,
    ) -> Result<RpcServer, LedgerError> {
        if !listen.ip().is_loopback() {
            return Err(UsageError::NotLoopback(listen).into());
        }
        let (heads, _) = broadcast::channel(64);
        let shared = Arc::new(Shared::new(chain, heads));
        let config = ServerConfig::builder()
            .max_request_body_size(MAX_REQUEST_BYTES)
            .max_response_body_size(MAX_RESPONSE_BYTES)
            .set_batch_request_config(BatchRequestConfig::Limit(MAX_BATCH_LEN))
            .set_message_buffer_capacity(MESSAGE_BUFFER)
            // The accept loop enforces the connection limits; this only must not bind first.
            .max_connections(u32::try_from(limits.max_connections).unwrap_or(u32::MAX))
            .enable_ws_ping(
                PingConfig::new()
                    .ping_interval(limits.ws_inactive / 3)
                    .inactive_limit(limits.ws_inactive)
                    .max_failures(1),
            )
            .build();
        let builder = Server::builder()
            .set_config(config)
            .set_rpc_middleware(RpcServiceBuilder::new().layer(GateLayer))
            .to_service_builder();
        let listener = bind(listen).await?;
        let addr = listener.local_addr()?;
        let module = module(shared.clone()).map_err(ServerError::Register)?;
        let (stop_handle, server) = stop_channel();
        tokio::spawn(accept_loop(
            listener,
            builder,
            module.into(),
            stop_handle,
            limits,
        ));
        let stop = Arc::new(AtomicBool::new(false));
        let producer = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("block-producer".into())
                .spawn(move || produce(&shared, interval, &stop))?
        };
        Ok(RpcServer {
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
                    _ => ServerError::ProducerStopped.into(),
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
            Some(Err(_)) => Err(ServerError::ProducerPanicked.into()),
            None => Ok(()),
        };
        let _ = self.server.stop();
        self.server.clone().stopped().await;
        res
    }
}

/// A method's reply: its result, or a JSON-RPC error object.
type Reply<T> = Result<T, ErrorObjectOwned>;

/// The context every method gets.
type Ctx = Arc<Shared>;

fn module(shared: Ctx) -> Result<jsonrpsee::RpcModule<Ctx>, RegisterMethodError> {
    let mut m = jsonrpsee::RpcModule::new(shared);
    m.register_method("ledger_genesisHash", genesis_hash)?;
    m.register_method("ledger_head", head)?;
    m.register_method("ledger_extrinsic", extrinsic)?;
    m.register_method("ledger_account", account)?;
    // On tokio's blocking threads: the heavy reads (building and copying large replies) and
    // `ledger_submit`, which may wait on the chain's lock while a block is committed; the
    // runtime's workers stay free to accept and answer requests.
    m.register_blocking_method("ledger_submit", |p, s, e| submit(p, &s, &e))?;
    m.register_blocking_method("ledger_metagraph", |p, s, e| metagraph(p, &s, &e))?;
    m.register_blocking_method("ledger_epochInput", |p, s, e| epoch_input(p, &s, &e))?;
    m.register_blocking_method("ledger_block", |p, s, e| block(p, &s, &e))?;
    m.register_blocking_method("ledger_weights", |p, s, e| weights(p, &s, &e))?;
    m.register_blocking_method("ledger_bonds", |p, s, e| bonds(p, &s, &e))?;
    m.register_subscription(
        "ledger_subscribeNewHeads",
        "ledger_newHead",
        "ledger_unsubscribeNewHeads",
        |_, pending, s, _| subscribe_new_heads(pending, s),
    )?;
    Ok(m)
}

/// `ledger_genesisHash`.
fn genesis_hash(_: Params<'_>, s: &Ctx, _: &Extensions) -> Reply<String> {
    Ok(s.genesis.to_string())
}

/// `ledger_head`.
fn head(_: Params<'_>, s: &Ctx, _: &Extensions) -> Reply<HeaderView> {
    Ok(HeaderView::from(&s.snapshot().head))
}

/// `ledger_submit`: the signature is checked before taking the lock, so checks run in
/// parallel; only nonce and call are checked under it. The reply says `pending`: accepted,
/// not durable until its block is committed.
fn submit(p: Params<'_>, s: &Ctx, _: &Extensions) -> Reply<Submitted> {
    let text: String = param(&p)?;
    let ext = Extrinsic::from_hex(&text, &s.genesis).map_err(|e| refused(&e))?;
    let signer = ext.signer;
    let hash = {
        let mut chain = s.lock();
        let hash = chain.submit_verified(ext).map_err(|e| refused(&e))?;
        lock(&s.pool_nonces).insert(signer, chain.pending_nonce(&signer));
        hash
    };
    Ok(Submitted {
        hash: hash.to_string(),
        status: "pending",
    })
}

/// `ledger_extrinsic`.
fn extrinsic(p: Params<'_>, s: &Ctx, _: &Extensions) -> Reply<Option<ExtrinsicAt>> {
    let hash: H256 = id_param(&p)?;
    let at = s.store.locate(&hash).map_err(|e| internal(&e))?;
    Ok(at.map(|(block, index)| ExtrinsicAt { block, index }))
}

/// `ledger_account`.
fn account(p: Params<'_>, s: &Ctx, _: &Extensions) -> Reply<AccountView> {
    let who: AccountId = id_param(&p)?;
    // The pool's nonce first: `publish` replaces the snapshot before it clears the pool's
    // nonces, so a cleared entry means the snapshot read next already counts them.
    let pooled = lock(&s.pool_nonces).get(&who).copied();
    let snap = s.snapshot();
    let committed = snap.state.nonce(&who);
    Ok(AccountView::new(
        &snap.state,
        &who,
        pooled.map_or(committed, |n| n.max(committed)),
    ))
}

/// `ledger_metagraph`: serialized once per committed block.
fn metagraph(_: Params<'_>, s: &Ctx, _: &Extensions) -> Reply<Json> {
    let snap = s.snapshot();
    cached(&snap.metagraph, || Json::of(&metagraph_view(&snap.state)))
}

/// `ledger_epochInput`: serialized once per committed block.
fn epoch_input(_: Params<'_>, s: &Ctx, _: &Extensions) -> Reply<Json> {
    let snap = s.snapshot();
    cached(&snap.epoch_input, || Json::of(&epoch_input_of(&snap.state)))
}

/// The value of `cell`, made by `make` the first time (concurrent first readers wait for
/// it rather than make it again).
fn cached(cell: &OnceLock<Option<Json>>, make: impl FnOnce() -> Option<Json>) -> Reply<Json> {
    cell.get_or_init(make)
        .clone()
        .ok_or_else(|| ErrorObjectOwned::owned(-32603, "reply not serializable", None::<()>))
}

/// `ledger_block`: `null` for a block not (yet) committed.
fn block(p: Params<'_>, s: &Ctx, _: &Extensions) -> Reply<Option<BlockView>> {
    let number: u64 = param(&p)?;
    let Some(block) = s.store.block(number).map_err(|e| internal(&e))? else {
        return Ok(None);
    };
    let receipts = s.store.receipts(number).map_err(|e| internal(&e))?;
    Ok(Some(BlockView::new(&block, &receipts.unwrap_or_default())))
}

/// `ledger_weights`.
fn weights(p: Params<'_>, s: &Ctx, _: &Extensions) -> Reply<Vec<(Uid, Weight)>> {
    with_neuron(&p, s, |state, i| state.weights[i].clone())
}

/// `ledger_bonds`.
fn bonds(p: Params<'_>, s: &Ctx, _: &Extensions) -> Reply<Vec<(Uid, f64, String)>> {
    with_neuron(&p, s, |state, i| bonds_view(&state.bonds[i]))
}

/// `ledger_subscribeNewHeads`: a slow subscriber skips heads rather than stalling the
/// producer.
async fn subscribe_new_heads(pending: PendingSubscriptionSink, s: Arc<Ctx>) -> SubscriptionResult {
    let mut rx = s.heads.subscribe();
    let sink = pending.accept().await?;
    loop {
        match rx.recv().await {
            Ok(head) => {
                let msg: SubscriptionMessage = serde_json::value::to_raw_value(&head)?.into();
                sink.send(msg).await?;
            }
            Err(broadcast::error::RecvError::Lagged(_)) => {}
            Err(broadcast::error::RecvError::Closed) => return Ok(()),
        }
    }
}

/// The one positional parameter.
fn param<T: serde::de::DeserializeOwned>(p: &Params<'_>) -> Reply<T> {
    p.one::<T>().map_err(|e| invalid_params(e.message()))
}

/// The one positional parameter, a 32-byte id in hex.
fn id_param<T: std::str::FromStr<Err = ParseIdError>>(p: &Params<'_>) -> Reply<T> {
    param::<String>(p)?.parse::<T>().map_err(invalid_params)
}

/// Reads the uid parameter and runs `f` on the committed state and that neuron's index;
/// an unknown uid is refused as [`TxError::NoSuchNode`].
fn with_neuron<T>(
    p: &Params<'_>,
    s: &Shared,
    f: impl FnOnce(&LedgerState, usize) -> T,
) -> Reply<T> {
    let uid: Uid = param(p)?;
    let snap = s.snapshot();
    let state = &snap.state;
    let i = usize::try_from(uid)
        .ok()
        .filter(|&i| i < state.neurons.len())
        .ok_or_else(|| refused(&TxError::NoSuchNode(uid)))?;
    Ok(f(state, i))
}

fn refused(e: &TxError) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(tx_error_code(e), e.to_string(), None::<()>)
}

fn invalid_params(msg: impl std::fmt::Display) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(-32602, format!("invalid params: {msg}"), None::<()>)
}

fn internal(e: &LedgerError) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(-32603, e.to_string(), None::<()>)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// Reads are served from the last committed snapshot, not under the chain's lock (which
    /// the producer holds while it seals and installs a block), so a read completes while the lock is
    /// held.
    #[test]
    fn reads_do_not_wait_on_the_chain_lock() {
        let dir = tempfile::tempdir().expect("tempdir");
        let chain = Chain::open(dir.path(), None).expect("open");
        let (heads, _) = broadcast::channel(1);
        let ctx: Ctx = Arc::new(Shared::new(chain, heads));
        let held = ctx.lock();
        let (tx, rx) = mpsc::channel();
        let reader = {
            let ctx = ctx.clone();
            std::thread::spawn(move || {
                let ext = Extensions::new();
                let who = format!("[\"{}\"]", AccountId([1; 32]));
                let ok = head(Params::new(None), &ctx, &ext).is_ok()
                    && metagraph(Params::new(None), &ctx, &ext).is_ok()
                    && epoch_input(Params::new(None), &ctx, &ext).is_ok()
                    && account(Params::new(Some(&who)), &ctx, &ext).is_ok()
                    && block(Params::new(Some("[0]")), &ctx, &ext).is_ok();
                let _ = tx.send(ok);
            })
        };
        let got = rx.recv_timeout(Duration::from_secs(10));
        drop(held);
        reader.join().expect("reader");
        assert_eq!(got, Ok(true), "reads completed while the chain was locked");
    }
}
