//! A node's life on a network: register and serve its endpoint on the ledger, keep one
//! connection to every peer of the metagraph, query peers, score them, send them gradients,
//! and set weights within the ledger's rules.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use deepnode_consensus::{Fx, Params, Uid};
use deepnode_ledger_client::{Call, MetagraphView, Wallet};
use deepnode_wire::Modality;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::access::LedgerAccess;
use crate::query::{Answer, Backoff, RowError, fan_out, weights_row};
use crate::transport::AccountKey;
use crate::{
    Admission, Connection, Model, Node, NodeError, NoiseTcp, Progress, ServeConfig, Tensor, Trainer,
};

/// Where a node's weights row comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum Scoring {
    /// Each useful answer (finite, not all zero) counts 1: the default of a node that does not
    /// train.
    Usefulness,
    /// The trainer's scores ([`Trainer::take_scores`], e.g. Fisher scores).
    Trainer,
    /// Score 1 for these accounts' neurons and nothing for anybody else (a cabal's row; an
    /// adversary of the devnet and the tests: feature `adversarial`).
    #[cfg(feature = "adversarial")]
    Favor(Vec<AccountKey>),
    /// Each neuron's consensus `C_j` as of the last metagraph (a weight copier; feature
    /// `adversarial`).
    #[cfg(feature = "adversarial")]
    CopyConsensus,
    /// No row at all (a node that does not validate).
    Nothing,
}

/// Where a node accepts peers.
#[derive(Clone, Debug)]
pub enum Listen {
    /// Bind this address (port 0 picks one).
    Addr(SocketAddr),
    /// A socket already bound and listening (handed over by a service manager, or bound
    /// before privileges were dropped); the node accepts on a duplicate of it.
    Socket(Arc<std::net::TcpListener>),
}

impl From<SocketAddr> for Listen {
    fn from(addr: SocketAddr) -> Listen {
        Listen::Addr(addr)
    }
}

/// How a node runs.
#[derive(Clone)]
pub struct RunConfig {
    /// Where to accept peers; the bound address is served on the ledger.
    pub listen: Listen,
    /// The modality of this node's queries, served on the ledger with its endpoint; it queries
    /// only peers that serve the same.
    pub modality: Modality,
    /// Stake to hold on this node's neuron (added from the wallet's balance when below).
    pub stake: u64,
    /// Callers whose neurons hold less stake are refused.
    pub stake_floor: u64,
    /// Peers per query.
    pub k: usize,
    /// Batch `[B, S]` of each query (TEXT: random bytes; TENSOR: random features of width 16).
    pub batch: (u32, u32),
    /// Time between queries.
    pub query_every: Duration,
    /// Deadline of each query and of each dial.
    pub timeout: Duration,
    /// Limits and concurrency of serving.
    pub serve: ServeConfig,
    /// Seed of the query inputs.
    pub seed: u64,
    /// Where the weights row comes from.
    pub scoring: Scoring,
}

/// What a running node reports (the CLI's status line).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Status {
    /// This node's uid, once registered.
    pub uid: Option<Uid>,
    /// The ledger block last seen.
    pub block: u64,
    /// Peers in the metagraph with an endpoint, serving this node's modality.
    pub peers: usize,
    /// Of those, peers with an open connection.
    pub peers_up: usize,
    /// Requests this node served.
    pub served: u64,
    /// Requests this node refused (or whose model failed).
    pub refused: u64,
    /// Peer answers this node received.
    pub answers: u64,
    /// Peer queries that failed (stand-in used).
    pub failed: u64,
    /// Peer queries not sent because the peer backs off after a failure (stand-in used).
    pub skipped: u64,
    /// The last failed peer query: `uid J: reason` (a peer that keeps failing shows here).
    pub last_peer_error: Option<String>,
    /// Block of this node's last accepted weights row.
    pub weights_block: Option<u64>,
    /// Why the last weights row was not set, if it was not.
    pub last_row_error: Option<String>,
    /// Weights rows submitted and committed.
    pub rows_set: u64,
    /// Weights rows submitted and refused by the ledger.
    pub rows_refused: u64,
    /// The trainer's progress, when the node trains.
    pub progress: Option<Progress>,
}

/// Admits callers whose account owns a neuron with at least `floor` stake, as of the last
/// metagraph the node read.
pub struct MetagraphAdmission {
    floor: u64,
    stake: RwLock<HashMap<AccountKey, u64>>,
}

impl MetagraphAdmission {
    /// Nobody admitted until [`MetagraphAdmission::update`].
    pub fn new(floor: u64) -> MetagraphAdmission {
        MetagraphAdmission {
            floor,
            stake: RwLock::default(),
        }
    }

    /// Takes each account's largest neuron stake from `mg`.
    pub fn update(&self, mg: &MetagraphView) {
        let mut map = HashMap::new();
        for n in &mg.nodes {
            if let Ok(key) = parse_key(&n.key) {
                let s = map.entry(key).or_insert(0u64);
                *s = (*s).max(n.stake);
            }
        }
        if let Ok(mut m) = self.stake.write() {
            *m = map;
        }
    }
}

impl Admission for MetagraphAdmission {
    fn admit(&self, account: &AccountKey) -> bool {
        self.stake
            .read()
            .is_ok_and(|m| m.get(account).is_some_and(|&s| s >= self.floor))
    }
}

fn parse_key(hex: &str) -> Result<AccountKey, NodeError> {
    hex.parse::<deepnode_ledger_client::AccountId>()
        .map(|a| a.0)
        .map_err(|e| NodeError::Ledger(format!("metagraph key {hex}: {e}")))
}

/// Shuts its node down when dropped.
struct ShutdownOnDrop(Arc<Node>);

impl Drop for ShutdownOnDrop {
    fn drop(&mut self) {
        self.0.shutdown();
    }
}

/// A connected peer.
struct Peer {
    key: AccountKey,
    endpoint: String,
    conn: Arc<Connection>,
}

/// Runs a node until `stop` turns true: registers `wallet` if needed, holds `cfg.stake`, serves
/// `model` on `cfg.listen` and that endpoint on the ledger, then every `cfg.query_every`
/// refreshes the metagraph (dialing new or moved peers, dropping gone ones) and queries peers:
/// with a `trainer`, one training step (the peers its gate asks, their gradients sent back);
/// without, up to `cfg.k` peers with random inputs, each answering peer getting the gradient
/// of the disagreement loss `1/2 sum_j |f_j - mean|^2`. Scores accumulate as `cfg.scoring`
/// says and become a weights row whenever the ledger's rate limit allows. Reports on
/// `status`. Returns `Ok(())` once `stop` turns true or its sender is dropped; fails with
/// [`NodeError::ListenerStopped`] if the listener ever stops (the socket no longer listens),
/// as peers can then no longer reach the node. `ledger` is the chain (the embedded ledger or
/// a Substrate chain), acting for `wallet`'s key, the key peers authenticate this node by.
pub async fn run(
    ledger: &impl LedgerAccess,
    wallet: &Wallet,
    model: Arc<dyn Model>,
    mut trainer: Option<Box<dyn Trainer>>,
    cfg: RunConfig,
    status: watch::Sender<Status>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), NodeError> {
    cfg.serve.check()?;
    let genesis = ledger.genesis_hash().await?;
    let transport = NoiseTcp::new(wallet.key().clone(), genesis, cfg.timeout)?;
    let me = transport.account();
    let admission = Arc::new(MetagraphAdmission::new(cfg.stake_floor));
    let counters = Arc::clone(&cfg.serve.counters);
    let served: Arc<dyn Model> = Arc::new(OneModality(Arc::clone(&model), cfg.modality));
    let node = Arc::new(Node::new(
        Arc::new(transport),
        served,
        admission.clone(),
        cfg.serve.clone(),
    ));
    // However run ends (stop, error), the node stops serving and closes its sessions.
    let _shutdown = ShutdownOnDrop(Arc::clone(&node));
    let (addr, mut listener) = match &cfg.listen {
        Listen::Addr(a) => node.listen(*a).await?,
        Listen::Socket(s) => node.listen_on(s.try_clone()?)?,
    };
    let uid = join(ledger, wallet, &cfg, &addr.to_string()).await?;
    // The block of the last row this node saw committed.
    let mut committed: Option<u64> = None;
    let mut st = Status {
        uid: Some(uid),
        ..Status::default()
    };
    let mut peers: HashMap<Uid, Peer> = HashMap::new();
    let mut dialing: HashMap<Uid, Dialing> = HashMap::new();
    let mut backoff: HashMap<Uid, Backoff> = HashMap::new();
    let mut scores: HashMap<Uid, f64> = HashMap::new();
    let mut rng = cfg.seed ^ u64::from(uid).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut ticker = tokio::time::interval(cfg.query_every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            // A dropped sender can never say stop: stop now rather than spin.
            changed = stop.changed() => if changed.is_err() {
                return Ok(());
            },
            // The listener ends only when the node shuts down, or when its socket no longer
            // listens: peers can then no longer reach this node.
            ended = &mut listener => {
                let why = match ended {
                    Ok(Err(e)) => e.to_string(),
                    Ok(Ok(())) => "closed".to_owned(),
                    Err(e) => format!("its task failed: {e}"),
                };
                return Err(NodeError::ListenerStopped(why));
            }
        }
        if *stop.borrow() {
            return Ok(());
        }
        // A failed read (the ledger busy, a closed keep-alive connection) skips this tick.
        let Ok(mg) = ledger.metagraph().await else {
            continue;
        };
        admission.update(&mg);
        st.block = mg.block;
        // A row this node saw committed counts even when the metagraph read is older than
        // it (the read raced the commit): submitting again would only meet the rate limit.
        st.weights_block = mg
            .nodes
            .get(uid as usize)
            .and_then(|n| n.weights_block)
            .max(committed);
        refresh(
            &node,
            &mg,
            (me, uid),
            cfg.modality,
            (&mut peers, &mut dialing),
            &mut backoff,
            cfg.timeout,
        )
        .await;
        st.peers = mg
            .nodes
            .iter()
            .filter(|n| n.uid != uid as usize && !n.endpoint.is_empty())
            .filter(|n| n.modality.as_deref() == Some(cfg.modality.name()))
            .count();
        st.peers_up = peers.values().filter(|p| p.conn.is_open()).count();
        if let Some(t) = trainer.take() {
            let (t, answered) = train(t, &cfg, &model, uid, &peers, &mut backoff).await?;
            st.answers += answered.0;
            st.failed += answered.1;
            st.skipped += answered.2;
            if answered.3.is_some() {
                st.last_peer_error = answered.3;
            }
            st.progress = Some(t.progress());
            trainer = Some(t);
        } else if let Some((x, answers)) =
            query(&cfg, &peers, &mut backoff, &scores, &mut rng).await?
        {
            for (j, a) in &answers {
                match a {
                    Answer::Peer(t) => {
                        st.answers += 1;
                        let useful = t.is_finite() && t.to_f32().iter().any(|&x| x != 0.0);
                        if useful && cfg.scoring == Scoring::Usefulness {
                            *scores.entry(*j).or_insert(0.0) += 1.0;
                        }
                    }
                    Answer::StandIn(_, NodeError::BackingOff) => st.skipped += 1,
                    Answer::StandIn(_, e) => {
                        st.failed += 1;
                        st.last_peer_error = failure(*j, e).or(st.last_peer_error.take());
                    }
                }
            }
            send_gradients(&cfg, &peers, &x, &answers).await;
        }
        policy_scores(&cfg.scoring, &mg, uid, &mut scores);
        let due = st
            .weights_block
            .is_none_or(|b| mg.block >= b.saturating_add(mg.weights_rate_limit));
        // The trainer's scores cover everything since the last row.
        if due
            && cfg.scoring == Scoring::Trainer
            && let Some(t) = trainer.take()
        {
            let (t, fresh) = blocking(t, |t| Ok(t.take_scores())).await?;
            for (j, v) in fresh {
                *scores.entry(j).or_insert(0.0) += v;
            }
            trainer = Some(t);
        }
        if due && !scores.is_empty() && cfg.scoring != Scoring::Nothing {
            match set_weights(ledger, &mg, uid, &scores).await {
                Ok(Ok(block)) => {
                    st.last_row_error = None;
                    st.rows_set += 1;
                    st.weights_block = Some(block);
                    committed = Some(block);
                    scores.clear();
                }
                // Not enough scores for a row yet: nothing was sent.
                Ok(Err(e)) => st.last_row_error = Some(e.to_string()),
                Err(e) => {
                    st.rows_refused += 1;
                    st.last_row_error = Some(e.to_string());
                }
            }
        }
        st.served = counters.served.load(Ordering::Relaxed);
        st.refused = counters.refused.load(Ordering::Relaxed);
        status.send_replace(st.clone());
    }
}

/// Registers (if the account owns no neuron), tops the stake up to `cfg.stake` and serves
/// `endpoint` with `cfg.modality`; each step waits for its block. Returns the uid.
async fn join(
    ledger: &impl LedgerAccess,
    wallet: &Wallet,
    cfg: &RunConfig,
    endpoint: &str,
) -> Result<Uid, NodeError> {
    let me = wallet.account().to_string();
    let find = |mg: &MetagraphView| {
        mg.nodes
            .iter()
            .find(|n| n.key == me)
            .map(|n| (n.uid, n.stake, (n.endpoint.clone(), n.modality.clone())))
    };
    let mut mg = ledger.metagraph().await?;
    if find(&mg).is_none() {
        ledger.submit(Call::Register).await?;
        mg = ledger.metagraph().await?;
    }
    let (uid, stake, served) =
        find(&mg).ok_or_else(|| NodeError::Ledger("registration did not take effect".into()))?;
    let uid = Uid::try_from(uid).map_err(|_| NodeError::Ledger("uid out of range".into()))?;
    if stake < cfg.stake {
        let call = Call::AddStake {
            uid,
            amount: cfg.stake - stake,
        };
        ledger.submit(call).await?;
    }
    if served != (endpoint.to_owned(), Some(cfg.modality.name().to_owned())) {
        let call = Call::Serve {
            uid,
            endpoint: endpoint.as_bytes().to_vec(),
            modality: cfg.modality.code(),
        };
        ledger.submit(call).await?;
    }
    Ok(uid)
}

/// A dial under way: the peer's key and endpoint, and the task.
type Dialing = (
    AccountKey,
    String,
    JoinHandle<Result<Arc<Connection>, NodeError>>,
);

/// Takes in the dials that finished (a connected peer, or a failure that backs the peer
/// off), starts dials in the background to the metagraph peers that serve `modality` and are
/// neither connected nor being dialed (or whose key or endpoint changed, or whose connection
/// closed), each under `timeout`, and drops peers gone from the metagraph or that serve
/// another modality now. Never waits on a dial: a peer that stalls its handshake delays no
/// query. `(me, uid)` is this node.
async fn refresh(
    node: &Arc<Node>,
    mg: &MetagraphView,
    (me, uid): (AccountKey, Uid),
    modality: Modality,
    (peers, dialing): (&mut HashMap<Uid, Peer>, &mut HashMap<Uid, Dialing>),
    backoff: &mut HashMap<Uid, Backoff>,
    timeout: Duration,
) {
    let mut wanted = HashMap::new();
    for n in &mg.nodes {
        let (Ok(j), Ok(key)) = (Uid::try_from(n.uid), parse_key(&n.key)) else {
            continue;
        };
        let same_modality = n.modality.as_deref() == Some(modality.name());
        if j != uid && key != me && same_modality && n.endpoint.parse::<SocketAddr>().is_ok() {
            wanted.insert(j, (key, n.endpoint.clone()));
        }
    }
    let done: Vec<Uid> = dialing
        .iter()
        .filter(|(_, d)| d.2.is_finished())
        .map(|(j, _)| *j)
        .collect();
    for j in done {
        let Some((key, endpoint, task)) = dialing.remove(&j) else {
            continue;
        };
        let b = backoff
            .entry(j)
            .or_insert_with(|| Backoff::new(Duration::from_millis(200), Duration::from_secs(30)));
        // The task is finished: this returns at once.
        match task.await {
            Ok(Ok(conn)) => {
                b.succeeded();
                peers.insert(
                    j,
                    Peer {
                        key,
                        endpoint,
                        conn,
                    },
                );
            }
            _ => b.failed(Instant::now()),
        }
    }
    let current = |j: &Uid, key: &AccountKey, endpoint: &String| {
        wanted
            .get(j)
            .is_some_and(|(k, e)| k == key && e == endpoint)
    };
    // A session that closed (the peer left, idled out, or refused this node after the
    // handshake) backs its peer off, so a peer that keeps refusing is not redialed each tick.
    let now = Instant::now();
    peers.retain(|j, p| {
        let open = p.conn.is_open();
        if !open {
            backoff
                .entry(*j)
                .or_insert_with(|| {
                    Backoff::new(Duration::from_millis(200), Duration::from_secs(30))
                })
                .failed(now);
        }
        current(j, &p.key, &p.endpoint) && open
    });
    dialing.retain(|j, d| {
        let keep = current(j, &d.0, &d.1);
        if !keep {
            d.2.abort();
        }
        keep
    });
    for (j, (key, endpoint)) in wanted {
        if peers.contains_key(&j)
            || dialing.contains_key(&j)
            || !backoff.get(&j).is_none_or(|b| b.ready(now))
        {
            continue;
        }
        let node = Arc::clone(node);
        let addr: Result<SocketAddr, _> = endpoint.parse();
        let task = tokio::spawn(async move {
            match addr {
                Ok(a) => tokio::time::timeout(timeout, node.dial(a, key))
                    .await
                    .unwrap_or(Err(NodeError::Timeout)),
                Err(_) => Err(NodeError::Protocol("bad endpoint".into())),
            }
        });
        dialing.insert(j, (key, endpoint, task));
    }
}

/// A model served for one modality only: requests of any other are refused.
struct OneModality(Arc<dyn Model>, Modality);

impl Model for OneModality {
    fn dim(&self) -> u32 {
        self.0.dim()
    }
    fn serves(&self, modality: Modality) -> bool {
        modality == self.1 && self.0.serves(modality)
    }
    fn forward(&self, modality: Modality, inputs: &Tensor) -> Result<Tensor, NodeError> {
        self.0.forward(modality, inputs)
    }
    fn backward(
        &self,
        modality: Modality,
        inputs: &Tensor,
        grad: &Tensor,
    ) -> Result<(), NodeError> {
        self.0.backward(modality, inputs, grad)
    }
}

/// The next draw of the SplitMix64 stream `state`.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Random inputs of `cfg.modality`, drawn from `rng`.
fn inputs(cfg: &RunConfig, rng: &mut u64) -> Result<Tensor, NodeError> {
    let mut next = || splitmix(rng);
    let (b, s) = cfg.batch;
    let len = b as usize * s as usize;
    match cfg.modality {
        Modality::Text => Tensor::from_i64(
            &[b, s],
            &(0..len).map(|_| (next() % 256) as i64).collect::<Vec<_>>(),
        ),
        _ => {
            let x: Vec<f32> = (0..len * 16)
                .map(|_| (next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5)
                .collect();
            Tensor::from_f32(&[b, s, 16], &x)
        }
    }
}

/// Queries `k` connected peers with fresh random inputs: the `k - 1` with the highest scores
/// (then the lowest uids) and one drawn from the others; returns the inputs and the answers,
/// `None` when no peer is connected.
async fn query(
    cfg: &RunConfig,
    peers: &HashMap<Uid, Peer>,
    backoff: &mut HashMap<Uid, Backoff>,
    scores: &HashMap<Uid, f64>,
    rng: &mut u64,
) -> Result<Option<(Tensor, Vec<(Uid, Answer)>)>, NodeError> {
    let mut ranked: Vec<(Uid, f64)> = peers
        .iter()
        .filter(|(_, p)| p.conn.is_open())
        .map(|(&j, _)| (j, scores.get(&j).copied().unwrap_or(0.0)))
        .collect();
    if ranked.is_empty() {
        return Ok(None);
    }
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    // The best k - 1 by score, and one more drawn from the rest, so that every peer is tried
    // now and then and can earn a score.
    let mut chosen: Vec<Uid> = ranked
        .iter()
        .take(cfg.k.saturating_sub(1))
        .map(|e| e.0)
        .collect();
    let rest = ranked.get(chosen.len()..).unwrap_or_default();
    if let Some(len) = u64::try_from(rest.len()).ok().filter(|&l| l > 0) {
        let pick = usize::try_from(splitmix(rng) % len).unwrap_or(0);
        chosen.extend(rest.get(pick).map(|e| e.0));
    }
    let chosen: Vec<(Uid, Arc<Connection>)> = chosen
        .into_iter()
        .filter_map(|j| peers.get(&j).map(|p| (j, Arc::clone(&p.conn))))
        .collect();
    let x = inputs(cfg, rng)?;
    let (b, s) = cfg.batch;
    let dim = cfg.serve.limits.dim;
    let zeros = |_| Tensor::zeros(&[b, s, dim]);
    let answers = fan_out(&chosen, backoff, cfg.modality, &x, cfg.timeout, zeros).await?;
    Ok(Some((x, answers)))
}

/// Sends every answering peer `dL/df_j = f_j - mean` of `L = 1/2 sum_j |f_j - mean|^2`
/// (the mean over the answers taken as a constant), fire and forget. Only finite answers of
/// the batch's shape `[B, S, D]` enter the mean; the others get no gradient.
async fn send_gradients(
    cfg: &RunConfig,
    peers: &HashMap<Uid, Peer>,
    x: &Tensor,
    answers: &[(Uid, Answer)],
) {
    let (b, s) = cfg.batch;
    let dims = [b, s, cfg.serve.limits.dim];
    let len = dims.iter().map(|&d| d as usize).product::<usize>();
    let outs: Vec<(Uid, Vec<f32>)> = answers
        .iter()
        .filter_map(|(j, a)| match a {
            Answer::Peer(t) if t.shape.dims() == dims && t.is_finite() => Some((*j, t.to_f32())),
            _ => None,
        })
        .filter(|o| o.1.len() == len)
        .collect();
    if outs.is_empty() {
        return;
    }
    let mut mean = vec![0f32; len];
    for (_, o) in &outs {
        for (m, v) in mean.iter_mut().zip(o) {
            *m += v / outs.len() as f32;
        }
    }
    for (j, o) in outs {
        let grad: Vec<f32> = o.iter().zip(&mean).map(|(v, m)| v - m).collect();
        if let (Some(p), Ok(g)) = (peers.get(&j), Tensor::from_f32(&dims, &grad)) {
            let _ = p.conn.backward(cfg.modality, x, &g, cfg.timeout).await;
        }
    }
}

/// Turns `scores` into a row and submits it: `Ok(Ok(block))`, the block that committed it;
/// `Ok(Err(_))` when no valid row can be made (nothing sent); `Err(_)` when the ledger
/// refused it or could not be reached.
async fn set_weights(
    ledger: &impl LedgerAccess,
    mg: &MetagraphView,
    uid: Uid,
    scores: &HashMap<Uid, f64>,
) -> Result<Result<u64, RowError>, NodeError> {
    // A node never weights itself: on a ledger that masks self weights such a weight would
    // not count towards `min_allowed_weights`, and on one that does not it would buy rank.
    let params = Params::<Fx> {
        min_allowed_weights: mg.min_allowed_weights,
        mask_self_weights: true,
        ..Params::default()
    };
    let list: Vec<(Uid, f64)> = scores.iter().map(|(&j, &s)| (j, s)).collect();
    let row = match weights_row(&list, &params, uid, mg.n, mg.max_weights_len as usize) {
        Ok(row) => row,
        Err(e) => return Ok(Err(e)),
    };
    let block = ledger
        .submit(Call::SetWeights { uid, weights: row })
        .await?;
    Ok(Ok(block))
}

/// Runs `f` on `t` on a blocking thread (training is CPU work; the network threads stay
/// free to serve) and hands `t` back.
async fn blocking<R: Send + 'static>(
    mut t: Box<dyn Trainer>,
    f: impl FnOnce(&mut dyn Trainer) -> Result<R, NodeError> + Send + 'static,
) -> Result<(Box<dyn Trainer>, R), NodeError> {
    let joined = tokio::task::spawn_blocking(move || {
        let r = f(t.as_mut());
        (t, r)
    })
    .await
    .map_err(|e| NodeError::Model(format!("trainer thread: {e}")))?;
    Ok((joined.0, joined.1?))
}

/// One training step: the trainer's batch goes to the peers its gate chose (this node's own
/// slot answered by its own model; peers not connected answer nothing), the answers train
/// it, and the gradients it returns go back to their peers, fire and forget. Returns the
/// trainer and (answers, failures, peers skipped while backing off, the last failure as
/// `uid J: reason`).
async fn train(
    t: Box<dyn Trainer>,
    cfg: &RunConfig,
    model: &Arc<dyn Model>,
    uid: Uid,
    peers: &HashMap<Uid, Peer>,
    backoff: &mut HashMap<Uid, Backoff>,
) -> Result<(Box<dyn Trainer>, (u64, u64, u64, Option<String>)), NodeError> {
    let (t, ask) = blocking(t, move |t| t.ask(uid)).await?;
    let asked: Vec<(Uid, Arc<Connection>)> = ask
        .uids
        .iter()
        .filter_map(|j| peers.get(j).map(|p| (*j, Arc::clone(&p.conn))))
        .collect();
    // A failed peer's slot is the trainer's to fill (it gets `None`): the stand-in here is
    // never read.
    let unread = |_| Tensor::zeros(&[1, 1, 1]);
    let fanned = fan_out(
        &asked,
        backoff,
        cfg.modality,
        &ask.inputs,
        cfg.timeout,
        unread,
    )
    .await?;
    let mut answers: Vec<(Uid, Option<Tensor>)> = Vec::with_capacity(ask.uids.len());
    let mut tally = (0, 0, 0, None);
    for j in &ask.uids {
        let answer = if *j == uid {
            model.forward(cfg.modality, &ask.inputs).ok()
        } else {
            match fanned.iter().find(|(u, _)| u == j).map(|(_, a)| a) {
                Some(Answer::Peer(t)) => {
                    tally.0 += 1;
                    Some(t.clone())
                }
                Some(Answer::StandIn(_, NodeError::BackingOff)) => {
                    tally.2 += 1;
                    None
                }
                Some(Answer::StandIn(_, e)) => {
                    tally.1 += 1;
                    tally.3 = failure(*j, e).or(tally.3.take());
                    None
                }
                None => {
                    tally.1 += 1;
                    tally.3 = Some(format!("uid {j}: not connected"));
                    None
                }
            }
        };
        answers.push((*j, answer));
    }
    let (t, grads) = blocking(t, move |t| t.learn(answers)).await?;
    for (j, g) in grads {
        if let Some(p) = peers.get(&j) {
            let _ = p
                .conn
                .backward(cfg.modality, &ask.inputs, &g, cfg.timeout)
                .await;
        }
    }
    Ok((t, tally))
}

/// A failed query as the status shows it, `uid J: reason`; `None` for a peer skipped while it
/// backs off (its reason was shown when it failed).
fn failure(j: Uid, e: &NodeError) -> Option<String> {
    (!matches!(e, NodeError::BackingOff)).then(|| format!("uid {j}: {e}"))
}

/// Scores that follow the metagraph rather than answers: a cabal's favourites, a copier's
/// consensus (feature `adversarial`; without it, no scoring follows the metagraph).
#[cfg(feature = "adversarial")]
fn policy_scores(scoring: &Scoring, mg: &MetagraphView, me: Uid, scores: &mut HashMap<Uid, f64>) {
    let others = mg.nodes.iter().filter_map(|n| {
        let j = Uid::try_from(n.uid).ok().filter(|&j| j != me)?;
        Some((j, n))
    });
    match scoring {
        Scoring::Favor(keys) => {
            scores.clear();
            for (j, n) in others {
                if parse_key(&n.key).is_ok_and(|k| keys.contains(&k)) {
                    scores.insert(j, 1.0);
                }
            }
        }
        Scoring::CopyConsensus => {
            scores.clear();
            scores.extend(others.map(|(j, n)| (j, n.consensus)));
        }
        Scoring::Usefulness | Scoring::Trainer | Scoring::Nothing => {}
    }
}

/// Without the feature `adversarial` no scoring follows the metagraph.
#[cfg(not(feature = "adversarial"))]
fn policy_scores(_: &Scoring, _: &MetagraphView, _: Uid, _: &mut HashMap<Uid, f64>) {}

#[cfg(test)]
mod tests {
    use deepnode_ledger_client::{MetagraphView, NeuronView, StatsBits};

    use super::*;

    fn neuron(uid: usize, key: [u8; 32], stake: u64) -> NeuronView {
        NeuronView {
            bits: StatsBits {
                consensus: "0".into(),
                dividends: "0".into(),
                incentive: "0".into(),
                rank: "0".into(),
                trust: "0".into(),
            },
            consensus: 0.0,
            dividends: 0.0,
            emission: 0,
            endpoint: String::new(),
            incentive: 0.0,
            modality: None,
            key: deepnode_ledger_client::AccountId(key).to_string(),
            rank: 0.0,
            registered_at: 0,
            stake,
            trust: 0.0,
            uid,
            weights_block: None,
        }
    }

    #[test]
    fn admission_follows_the_metagraph_and_the_stake_floor() {
        let a = MetagraphAdmission::new(100);
        let mut mg = MetagraphView {
            block: 1,
            epochs: 0,
            max_weights_len: 8,
            min_allowed_weights: 1,
            n: 3,
            nodes: vec![
                neuron(0, [1; 32], 50),
                neuron(1, [1; 32], 150),
                neuron(2, [2; 32], 99),
            ],
            tempo: 10,
            weights_rate_limit: 1,
        };
        assert!(!a.admit(&[1; 32]), "nobody before the first metagraph");
        a.update(&mg);
        // An account counts with its largest neuron.
        assert!(a.admit(&[1; 32]));
        assert!(!a.admit(&[2; 32]), "under the floor");
        assert!(!a.admit(&[3; 32]), "not in the metagraph");
        // Deregistered: gone at the next refresh.
        mg.nodes.truncate(1);
        a.update(&mg);
        assert!(!a.admit(&[1; 32]));
    }
}
