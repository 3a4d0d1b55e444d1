//! The runner: it owns a node's state (its peers, scores, trainer thread and status) and
//! runs one tick of the loop at a time.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use deepnode_consensus::Uid;
use deepnode_ledger_client::{MetagraphView, Wallet};
use deepnode_rng::{GAMMA, SplitMix64};
use deepnode_wire::Modality;
use tokio::sync::watch;

use super::admission::MetagraphAdmission;
#[cfg(feature = "adversarial")]
use super::adversary;
use super::dial::Peers;
use super::training::TrainerThread;
use super::{Listen, RunConfig, Scoring, Status, fan, gradients, registration, scoring};
use crate::access::LedgerAccess;
use crate::transport::AccountKey;
use crate::{Counters, Model, Node, NodeError, NoiseTcp, Tensor, Trainer};

/// Runs a node until `stop` turns true: registers `wallet` if needed, holds `cfg.stake`, serves
/// `model` on `cfg.listen` and that endpoint on the ledger, then every `cfg.query_every`
/// refreshes the metagraph (dialing new or moved peers, dropping gone ones) and queries peers:
/// with a `trainer` (on a thread of its own), one training step (the peers its gate asks,
/// their gradients sent back); without, up to `cfg.k` peers with random inputs, each answering
/// peer getting the gradient of the disagreement loss `1/2 sum_j |f_j - mean|^2`. Scores
/// accumulate as `cfg.scoring` says and become a weights row whenever the ledger's rate limit
/// allows. Reports on `status` after each tick. Returns `Ok(())` once `stop` turns true or its
/// sender is dropped; fails with [`NodeError::ListenerStopped`] if the listener ever stops (the
/// socket no longer listens), as peers can then no longer reach the node. `ledger` is the
/// chain (the embedded ledger or a Substrate chain), acting for `wallet`'s key, the key peers
/// authenticate this node by.
pub async fn run(
    ledger: &impl LedgerAccess,
    wallet: &Wallet,
    model: Arc<dyn Model>,
    trainer: Option<Box<dyn Trainer>>,
    cfg: RunConfig,
    status: watch::Sender<Status>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), NodeError> {
    let started = Instant::now();
    cfg.serve.check()?;
    let genesis = ledger.genesis_hash().await?;
    let transport = NoiseTcp::new(wallet.key().clone(), genesis, cfg.timeout)?;
    let me = transport.account();
    let admission = Arc::new(MetagraphAdmission::new(cfg.stake_floor));
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
    let uid = registration::join(ledger, wallet, &cfg, &addr.to_string()).await?;
    let trainer = trainer.map(TrainerThread::start).transpose()?;
    let mut runner = Runner {
        ledger,
        counters: Arc::clone(&cfg.serve.counters),
        rng: SplitMix64::new(cfg.seed ^ u64::from(uid).wrapping_mul(GAMMA)),
        cfg,
        model,
        node,
        admission,
        me,
        uid,
        trainer,
        peers: Peers::default(),
        scores: HashMap::new(),
        committed: None,
        status: Status {
            uid: Some(uid),
            ..Status::default()
        },
    };
    let mut ticker = tokio::time::interval(runner.cfg.query_every);
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
        let Ok(mg) = runner.ledger.metagraph().await else {
            continue;
        };
        runner.tick(&mg).await?;
        runner.status.t = started.elapsed().as_secs_f64();
        status.send_replace(runner.status.clone());
    }
}

/// A node's state between ticks, owned by its loop.
struct Runner<'a, L> {
    ledger: &'a L,
    cfg: RunConfig,
    /// The model this node serves (and answers its trainer's own slot with).
    model: Arc<dyn Model>,
    node: Arc<Node>,
    admission: Arc<MetagraphAdmission>,
    counters: Arc<Counters>,
    /// This node's account and uid.
    me: AccountKey,
    uid: Uid,
    trainer: Option<TrainerThread>,
    peers: Peers,
    /// Scores since the last row committed.
    scores: HashMap<Uid, f64>,
    /// The SplitMix64 stream of the query inputs and the peer drawn for each query.
    rng: SplitMix64,
    /// The block of the last row this node saw committed.
    committed: Option<u64>,
    status: Status,
}

impl<L: LedgerAccess> Runner<'_, L> {
    /// One tick on metagraph `mg`: admission and peers follow it, peers are queried (one
    /// training step, or random inputs and the disagreement gradients), and a weights row is
    /// submitted when due.
    async fn tick(&mut self, mg: &MetagraphView) -> Result<(), NodeError> {
        let (uid, modality) = (self.uid, self.cfg.modality);
        self.admission.update(mg);
        self.status.block = mg.block;
        // A row this node saw committed counts even when the metagraph read is older than
        // it (the read raced the commit): submitting again would only meet the rate limit.
        self.status.weights_block = mg
            .nodes
            .get(uid as usize)
            .and_then(|n| n.weights_block)
            .max(self.committed);
        let me = (self.me, uid);
        self.peers
            .refresh(&self.node, mg, me, modality, self.cfg.timeout)
            .await;
        self.status.peers = mg
            .nodes
            .iter()
            .filter(|n| n.uid != uid as usize && !n.endpoint.is_empty())
            .filter(|n| n.modality.as_deref() == Some(modality.name()))
            .count();
        self.status.peers_up = self.peers.up();
        if let Some(t) = &self.trainer {
            let p = t
                .step(
                    &self.cfg,
                    &self.model,
                    uid,
                    &mut self.peers,
                    &mut self.status,
                )
                .await?;
            self.status.progress(p);
        } else if let Some((x, answers)) =
            fan::query(&self.cfg, &mut self.peers, &self.scores, &mut self.rng).await?
        {
            for (j, a) in &answers {
                self.status.count(*j, Some(a));
            }
            scoring::usefulness(&self.cfg.scoring, &answers, &mut self.scores);
            gradients::send_gradients(&self.cfg, &self.peers.connected, &x, &answers).await;
        }
        #[cfg(feature = "adversarial")]
        adversary::policy_scores(&self.cfg.scoring, mg, uid, &mut self.scores);
        let due = self
            .status
            .weights_block
            .is_none_or(|b| mg.block >= b.saturating_add(mg.weights_rate_limit));
        // The trainer's scores cover everything since the last row.
        if due
            && self.cfg.scoring == Scoring::Trainer
            && let Some(t) = &self.trainer
        {
            for (j, v) in t.take_scores().await? {
                *self.scores.entry(j).or_insert(0.0) += v;
            }
        }
        if due && !self.scores.is_empty() && self.cfg.scoring != Scoring::Nothing {
            self.set_row(mg).await;
        }
        self.status.served = self.counters.served.load(Ordering::Relaxed);
        self.status.refused = self.counters.refused.load(Ordering::Relaxed);
        Ok(())
    }

    /// Submits the scores as a weights row; a committed row starts the scores afresh.
    async fn set_row(&mut self, mg: &MetagraphView) {
        let st = &mut self.status;
        match scoring::set_weights(self.ledger, mg, self.uid, &self.scores).await {
            Ok(Ok(block)) => {
                st.last_row_error = None;
                st.rows_set += 1;
                st.weights_block = Some(block);
                self.committed = Some(block);
                self.scores.clear();
            }
            // Not enough scores for a row yet: nothing was sent.
            Ok(Err(e)) => st.last_row_error = Some(e.to_string()),
            Err(e) => {
                st.rows_refused += 1;
                st.last_row_error = Some(e.to_string());
            }
        }
    }
}

/// Shuts its node down when dropped.
struct ShutdownOnDrop(Arc<Node>);

impl Drop for ShutdownOnDrop {
    fn drop(&mut self) {
        self.0.shutdown();
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
