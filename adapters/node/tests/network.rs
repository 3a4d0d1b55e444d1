//! Nodes on a real ledger (in-process, JSON-RPC on loopback): they register, serve their
//! endpoints, find each other in the metagraph, exchange forward and backward tensors and set
//! weights that the ledger accepts.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deepnode_consensus::Uid;
use deepnode_ledger::{Chain, Client, Genesis, RpcServer, Wallet};
use deepnode_node::access::LedgerRpc;
use deepnode_node::life::{Listen, RunConfig, Scoring, Status, run};
use deepnode_node::{
    Ask, Constant, EchoBias, Model, NodeError, Noise, Progress, RandomProjection, ServeConfig,
    Tensor, Trainer,
};
use deepnode_wire::{Limits, Modality};
use tokio::sync::watch;

const DIM: u32 = 16;

struct Net {
    ledger: RpcServer,
    client: Client,
    _dir: tempfile::TempDir,
}

async fn ledger(nodes: u8) -> Net {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut g = Genesis::default();
    g.config.tempo = 5;
    g.config.weights_rate_limit = 2;
    g.params.min_allowed_weights = 1;
    // The default controller may raise min_allowed_weights to 64, more than a small network
    // has peers; here it stays at 1.
    g.config.controller.cap = 1;
    g.endowments = (1..=nodes)
        .map(|b| (Wallet::from_seed([b; 32]).account(), 1_000_000))
        .collect();
    let chain = Chain::open(dir.path(), Some(&g)).expect("open");
    let ledger = RpcServer::start(
        chain,
        "127.0.0.1:0".parse().expect("addr"),
        Duration::from_millis(50),
    )
    .await
    .expect("ledger");
    let client = Client::new(&format!("http://{}", ledger.addr())).expect("client");
    Net {
        ledger,
        client,
        _dir: dir,
    }
}

/// Node `b`'s access to the ledger at `rpc`.
fn access(rpc: &str, b: u8) -> LedgerRpc {
    LedgerRpc::new(rpc, Wallet::from_seed([b; 32])).expect("ledger client")
}

/// Node `b` (wallet seed `[b; 32]`) running on the ledger at `rpc` until `stop`, its status on
/// `tx`.
fn spawn_node(
    rpc: &str,
    b: u8,
    model: Arc<dyn Model>,
    trainer: Option<Box<dyn Trainer>>,
    cfg: RunConfig,
    tx: watch::Sender<Status>,
    stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<Result<(), NodeError>> {
    let ledger = access(rpc, b);
    tokio::spawn(async move {
        run(
            &ledger,
            &Wallet::from_seed([b; 32]),
            model,
            trainer,
            cfg,
            tx,
            stop,
        )
        .await
    })
}

fn config(_rpc: &str, seed: u64) -> RunConfig {
    let limits = Limits {
        max_payload: 1 << 20,
        max_batch: 8,
        max_seq: 64,
        dim: DIM,
        max_features: 16,
        max_image_elems: 3 * 8 * 8,
    };
    RunConfig {
        listen: "127.0.0.1:0".parse::<SocketAddr>().expect("addr").into(),
        modality: Modality::Text,
        stake: 1000,
        stake_floor: 1,
        k: 4,
        batch: (2, 8),
        query_every: Duration::from_millis(60),
        timeout: Duration::from_secs(2),
        serve: ServeConfig::new(limits, 8, 64),
        seed,
        scoring: Scoring::Usefulness,
    }
}

/// Starts `n` nodes (wallets 1..=n; with more than two, even ones echo a learned bias) and runs
/// them until every
/// node has an accepted weights row and answered queries, or `limit` passes.
async fn network(n: u8, limit: Duration) {
    let net = ledger(n).await;
    let rpc = format!("http://{}", net.ledger.addr());
    let (stop_tx, stop) = watch::channel(false);
    let mut statuses = Vec::new();
    let mut echoes = Vec::new();
    let mut tasks = Vec::new();
    for b in 1..=n {
        let model: Arc<dyn Model> = if b % 2 == 0 && n > 2 {
            let e = Arc::new(EchoBias::new(DIM, 0.1));
            echoes.push(Arc::clone(&e));
            e
        } else {
            Arc::new(RandomProjection::new(u64::from(b), DIM))
        };
        let (tx, rx) = watch::channel(Status::default());
        statuses.push(rx);
        let cfg = config(&rpc, u64::from(b));
        let stop = stop.clone();
        tasks.push(spawn_node(&rpc, b, model, None, cfg, tx, stop));
    }
    let started = Instant::now();
    let done = |s: &Status| {
        s.weights_block.is_some()
            && s.answers > 0
            && s.served > 0
            && s.peers_up + 1 == usize::from(n)
    };
    while !statuses.iter().all(|s| done(&s.borrow())) {
        assert!(
            started.elapsed() < limit,
            "not every node got there in {limit:?}: {:#?}",
            statuses
                .iter()
                .map(|s| s.borrow().clone())
                .collect::<Vec<_>>()
        );
        for t in &tasks {
            assert!(!t.is_finished(), "a node stopped early");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop_tx.send(true).expect("stop");
    for t in tasks {
        t.await.expect("join").expect("node ran cleanly");
    }
    // The ledger holds every node's row, each naming only other registered nodes.
    let mg = net.client.metagraph().await.expect("metagraph");
    assert_eq!(mg.n, usize::from(n));
    for node in &mg.nodes {
        assert!(
            node.weights_block.is_some(),
            "uid {} set no weights",
            node.uid
        );
        assert!(!node.endpoint.is_empty());
        assert!(
            node.stake >= 1000,
            "stake {} below what the node added",
            node.stake
        );
    }
    // Gradients reached the echo models: their bias moved off zero.
    for e in echoes {
        assert!(
            e.bias().iter().any(|&b| b != 0.0),
            "no gradient reached an echo model"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_find_each_other_and_set_weights() {
    network(2, Duration::from_secs(40)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_nodes_find_each_other_and_set_weights() {
    network(8, Duration::from_secs(60)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_moves_is_redialed_at_its_new_endpoint() {
    let net = ledger(3).await;
    let rpc = format!("http://{}", net.ledger.addr());
    let start = |b: u8, listen: &str, stop: watch::Receiver<bool>| {
        let (tx, rx) = watch::channel(Status::default());
        let mut cfg = config(&rpc, u64::from(b));
        cfg.listen = listen.parse::<SocketAddr>().expect("addr").into();
        let model: Arc<dyn Model> = Arc::new(RandomProjection::new(u64::from(b), DIM));
        let task = spawn_node(&rpc, b, model, None, cfg, tx, stop);
        (task, rx)
    };
    let (stop_all, stop) = watch::channel(false);
    let (_t1, s1) = start(1, "127.0.0.1:0", stop.clone());
    let (_t2, s2) = start(2, "127.0.0.1:0", stop.clone());
    let (stop_3, stop3) = watch::channel(false);
    let (t3, s3) = start(3, "127.0.0.1:0", stop3);
    let wait = |what: &'static str, cond: Box<dyn Fn() -> bool + Send>| async move {
        let started = Instant::now();
        while !cond() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "timed out waiting: {what}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let (a, b, c) = (s1.clone(), s2.clone(), s3.clone());
    wait(
        "all three connected",
        Box::new(move || [&a, &b, &c].iter().all(|s| s.borrow().peers_up == 2)),
    )
    .await;
    // Uids follow registration order, so node 3 is found by its key.
    let key3 = Wallet::from_seed([3; 32]).account().to_string();
    let endpoint3 = || async {
        let mg = net.client.metagraph().await.expect("metagraph");
        mg.nodes
            .into_iter()
            .find(|n| n.key == key3)
            .expect("node 3 registered")
            .endpoint
    };
    let before = endpoint3().await;

    // Node 3 stops: its peers see the connection close and drop it.
    stop_3.send(true).expect("stop");
    t3.await.expect("join").expect("ran cleanly");
    let (a, b) = (s1.clone(), s2.clone());
    wait(
        "the others drop it",
        Box::new(move || [&a, &b].iter().all(|s| s.borrow().peers_up == 1)),
    )
    .await;

    // It comes back at another address (another loopback IP, so never the old port) and
    // serves the new endpoint: the others redial it there.
    let (_stop_3b, stop3b) = watch::channel(false);
    let (_t3b, s3b) = start(3, "127.0.0.2:0", stop3b);
    let started = Instant::now();
    while endpoint3().await == before {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the new endpoint was never served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (a, b, c) = (s1.clone(), s2.clone(), s3b.clone());
    wait(
        "redialed at the new endpoint",
        Box::new(move || {
            [&a, &b].iter().all(|s| s.borrow().peers_up == 2) && c.borrow().served > 0
        }),
    )
    .await;
    assert!(
        endpoint3().await.starts_with("127.0.0.2:"),
        "served at its new address"
    );
    stop_all.send(true).expect("stop");
}

/// A pure-Rust [`Trainer`]: asks every uid below `n` with fixed text inputs, scores each
/// peer by its answers' mean absolute value, and sends back `dL/df_j = f_j` (the gradient of
/// `1/2 |f_j|^2`).
struct ToyTrainer {
    n: Uid,
    steps: u64,
    scores: Vec<(Uid, f64)>,
}

impl Trainer for ToyTrainer {
    fn ask(&mut self, _me: Uid) -> Result<Ask, NodeError> {
        Ok(Ask {
            inputs: Tensor::from_i64(&[2, 8], &[7; 16])?,
            uids: (0..self.n).collect(),
        })
    }

    fn learn(
        &mut self,
        answers: Vec<(Uid, Option<Tensor>)>,
    ) -> Result<Vec<(Uid, Tensor)>, NodeError> {
        self.steps += 1;
        let mut grads = Vec::new();
        for (j, a) in answers {
            if let Some(t) = a {
                let v = t.to_f32();
                let mean = v.iter().map(|x| f64::from(x.abs())).sum::<f64>() / v.len() as f64;
                self.scores.push((j, mean + 1.0));
                grads.push((j, t));
            }
        }
        Ok(grads)
    }

    fn take_scores(&mut self) -> Vec<(Uid, f64)> {
        std::mem::take(&mut self.scores)
    }

    fn progress(&self) -> Progress {
        Progress {
            steps: self.steps,
            loss: Some(1.0 / (1.0 + self.steps as f64)),
            valid: Vec::new(),
        }
    }
}

/// A trainer scoring peers, a cabal member favouring one account and a copier of consensus:
/// each sets rows the ledger accepts, and the trainer's gradients reach an echo model.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trainer_favour_and_copier_rows_are_accepted() {
    let net = ledger(4).await;
    let rpc = format!("http://{}", net.ledger.addr());
    let (stop_tx, stop) = watch::channel(false);
    let echo = Arc::new(EchoBias::new(DIM, 0.1));
    let key = |b: u8| Wallet::from_seed([b; 32]).account().0;
    let mut statuses = Vec::new();
    for b in 1..=4u8 {
        let mut cfg = config(&rpc, u64::from(b));
        let mut trainer: Option<Box<dyn Trainer>> = None;
        let model: Arc<dyn Model> = match b {
            1 => {
                cfg.scoring = Scoring::Trainer;
                // It also asks uid 4, which nobody holds: a failure with its reason.
                trainer = Some(Box::new(ToyTrainer {
                    n: 5,
                    steps: 0,
                    scores: Vec::new(),
                }));
                Arc::new(RandomProjection::new(1, DIM))
            }
            2 => {
                cfg.scoring = Scoring::Favor(vec![key(3)]);
                Arc::new(Noise::new(2, DIM, 1.0))
            }
            3 => {
                cfg.scoring = Scoring::CopyConsensus;
                Arc::new(Constant::new(DIM, 0.0))
            }
            _ => echo.clone(),
        };
        let (tx, rx) = watch::channel(Status::default());
        statuses.push(rx);
        let stop = stop.clone();
        spawn_node(&rpc, b, model, trainer, cfg, tx, stop);
    }
    let started = Instant::now();
    // The trainer keeps stepping between rows (it is not lost when no row is due).
    // Node 0 trains.
    let done = |i: usize, s: &Status| s.rows_set >= 2 && (i != 0 || s.steps >= 30);
    while !statuses
        .iter()
        .enumerate()
        .all(|(i, s)| done(i, &s.borrow()))
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "not every node set two rows: {:#?}",
            statuses
                .iter()
                .map(|s| s.borrow().clone())
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for s in &statuses {
        assert_eq!(s.borrow().rows_refused, 0, "{:?}", s.borrow());
    }
    let trainer = statuses[0].borrow().clone();
    assert!(trainer.steps >= 30);
    assert!(trainer.answers > 0);
    assert!(trainer.failed > 0);
    assert_eq!(
        trainer.last_peer_error.as_deref(),
        Some("uid 4: not connected")
    );
    assert!(
        echo.bias().iter().any(|&b| b != 0.0),
        "the trainer's gradients reached the echo model"
    );
    // The cabal member's row holds exactly its favourite; the copier's row follows consensus.
    let mg = net.client.metagraph().await.expect("metagraph");
    let uid_of = |b: u8| {
        let k = Wallet::from_seed([b; 32]).account().to_string();
        mg.nodes
            .iter()
            .find(|n| n.key == k)
            .expect("registered")
            .uid
    };
    let row = net
        .client
        .weights(Uid::try_from(uid_of(2)).expect("uid"))
        .await
        .expect("weights");
    assert_eq!(row.len(), 1);
    assert_eq!(row[0].0 as usize, uid_of(3));
    stop_tx.send(true).expect("stop");
}

/// A random projection that records the modality of every request it serves.
struct Recording(RandomProjection, Mutex<Vec<Modality>>);

impl Model for Recording {
    fn dim(&self) -> u32 {
        self.0.dim()
    }
    fn serves(&self, modality: Modality) -> bool {
        self.0.serves(modality)
    }
    fn forward(&self, modality: Modality, inputs: &Tensor) -> Result<Tensor, NodeError> {
        self.1.lock().expect("lock").push(modality);
        self.0.forward(modality, inputs)
    }
    fn backward(
        &self,
        modality: Modality,
        inputs: &Tensor,
        grad: &Tensor,
    ) -> Result<(), NodeError> {
        self.1.lock().expect("lock").push(modality);
        self.0.backward(modality, inputs, grad)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_query_only_peers_serving_their_modality() {
    // Nodes 1 and 2 serve and query text, 3 and 4 tensors; every model would answer either.
    let net = ledger(4).await;
    let rpc = format!("http://{}", net.ledger.addr());
    let modality = |b: u8| {
        if b <= 2 {
            Modality::Text
        } else {
            Modality::Tensor
        }
    };
    let (stop_all, stop) = watch::channel(false);
    let (mut statuses, mut models, mut tasks) = (Vec::new(), Vec::new(), Vec::new());
    for b in 1..=4u8 {
        let model = Arc::new(Recording(
            RandomProjection::new(u64::from(b), DIM),
            Mutex::default(),
        ));
        models.push(Arc::clone(&model));
        let (tx, rx) = watch::channel(Status::default());
        statuses.push(rx);
        let mut cfg = config(&rpc, u64::from(b));
        cfg.modality = modality(b);
        let stop = stop.clone();
        tasks.push(spawn_node(&rpc, b, model, None, cfg, tx, stop));
    }
    // Each node finds its one peer of the same modality, queries it and is queried by it.
    let started = Instant::now();
    let done = |s: &Status| s.peers == 1 && s.peers_up == 1 && s.answers >= 3 && s.served >= 3;
    while !statuses.iter().all(|s| done(&s.borrow())) {
        let now: Vec<Status> = statuses.iter().map(|s| s.borrow().clone()).collect();
        assert!(
            now.iter().all(|s| s.peers <= 1 && s.peers_up <= 1),
            "a node counted or connected a peer of another modality: {now:#?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "not every node found its peer: {now:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The ledger shows what each serves; no node ever dialed one of the other modality.
    let mg = net.client.metagraph().await.expect("metagraph");
    for b in 1..=4u8 {
        let key = Wallet::from_seed([b; 32]).account().to_string();
        let n = mg.nodes.iter().find(|n| n.key == key).expect("registered");
        assert_eq!(n.modality.as_deref(), Some(modality(b).name()));
    }
    stop_all.send(true).expect("stop");
    for t in tasks {
        t.await.expect("join").expect("node ran cleanly");
    }
    // Once stopped, a node may have seen its peer leave first: its status says nothing more.
    for (b, m) in (1..=4u8).zip(&models) {
        let seen = m.1.lock().expect("lock").clone();
        assert!(!seen.is_empty(), "node {b} was never queried");
        assert!(
            seen.iter().all(|&x| x == modality(b)),
            "node {b} ({:?}) served {seen:?}",
            modality(b)
        );
    }
}

/// Answers every forward with `f(batch, seq)`, whatever the inputs: a hostile peer.
struct Bad(fn(u32, u32) -> Tensor);

impl Model for Bad {
    fn dim(&self) -> u32 {
        DIM
    }
    fn serves(&self, _: Modality) -> bool {
        true
    }
    fn forward(&self, _: Modality, x: &Tensor) -> Result<Tensor, NodeError> {
        let d = x.shape.dims();
        Ok((self.0)(d[0], d[1]))
    }
    fn backward(&self, _: Modality, _: &Tensor, _: &Tensor) -> Result<(), NodeError> {
        Ok(())
    }
}

/// Registers wallet `b`, stakes 1000 and serves `endpoint` for TEXT; returns its uid.
async fn neuron(client: &Client, b: u8, endpoint: &str) -> Uid {
    let wallet = Wallet::from_seed([b; 32]);
    let wait = Duration::from_secs(30);
    let h = client
        .send(wallet.key(), deepnode_ledger::Call::Register)
        .await
        .expect("register");
    client.wait_committed(&h, wait).await.expect("registered");
    let key = wallet.account().to_string();
    let mg = client.metagraph().await.expect("metagraph");
    let uid = mg.nodes.iter().find(|n| n.key == key).expect("neuron").uid;
    let uid = Uid::try_from(uid).expect("uid");
    for call in [
        deepnode_ledger::Call::AddStake { uid, amount: 1000 },
        deepnode_ledger::Call::Serve {
            uid,
            endpoint: endpoint.as_bytes().to_vec(),
            modality: Modality::Text.code(),
        },
    ] {
        let h = client.send(wallet.key(), call).await.expect("send");
        client.wait_committed(&h, wait).await.expect("committed");
    }
    uid
}

/// Beside peers that answer NaN or the wrong shape and an endpoint that never finishes a
/// handshake: honest gradients still flow (the echo model's bias moves and stays finite), the
/// bad peers get no weight, queries are never held up by the dial, and a TEXT node refuses
/// an IMAGE request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_answers_and_a_tarpit_leave_training_rows_and_queries_alone() {
    let net = ledger(6).await;
    let rpc = format!("http://{}", net.ledger.addr());
    // Wallet 5: a registered neuron whose endpoint accepts TCP and never speaks.
    let tarpit = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let tarpit_addr = tarpit.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = tarpit.accept().await {
            held.push(s);
        }
    });
    let tarpit_uid = neuron(&net.client, 5, &tarpit_addr.to_string()).await;
    let (stop_tx, stop) = watch::channel(false);
    let echo = Arc::new(EchoBias::new(DIM, 0.1));
    let mut statuses = Vec::new();
    for b in [1u8, 2, 3, 4, 6] {
        let model: Arc<dyn Model> = match b {
            2 => echo.clone(),
            3 => Arc::new(Bad(|b, s| {
                Tensor::from_f32(&[b, s, DIM], &vec![f32::NAN; (b * s * DIM) as usize])
                    .expect("nan")
            })),
            4 => Arc::new(Bad(|b, s| {
                Tensor::from_f32(&[b, s + 1, DIM], &vec![1.0; (b * (s + 1) * DIM) as usize])
                    .expect("wide")
            })),
            _ => Arc::new(RandomProjection::new(u64::from(b), DIM)),
        };
        let (tx, rx) = watch::channel(Status::default());
        statuses.push(rx);
        let mut cfg = config(&rpc, u64::from(b));
        // Node 1's dials (and queries) may take 10 s: the tarpit's would, awaited.
        cfg.timeout = Duration::from_secs(if b == 1 { 10 } else { 3 });
        let stop = stop.clone();
        spawn_node(&rpc, b, model, None, cfg, tx, stop);
    }
    // The longest time between two of node 1's ticks.
    let mut ticks = statuses[0].clone();
    let gaps = tokio::spawn(async move {
        let (mut last, mut most) = (None::<Instant>, Duration::ZERO);
        while ticks.changed().await.is_ok() {
            let now = Instant::now();
            if let Some(l) = last {
                most = most.max(now - l);
            }
            last = Some(now);
        }
        most
    });
    let started = Instant::now();
    let done = |s: &Status| s.rows_set >= 2 && s.answers >= 20;
    while !(done(&statuses[0].borrow()) && echo.bias().iter().any(|&b| b != 0.0)) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no rows or no gradients: {:#?}, bias {:?}",
            statuses[0].borrow(),
            echo.bias()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        echo.bias().iter().all(|b| b.is_finite()),
        "{:?}",
        echo.bias()
    );
    let st = statuses[0].borrow().clone();
    assert!(st.failed > 0 && st.skipped > 0, "{st:?}");
    // Node 1's row names no bad peer and not the tarpit.
    let mg = net.client.metagraph().await.expect("metagraph");
    let uid_of = |b: u8| {
        let k = Wallet::from_seed([b; 32]).account().to_string();
        let n = mg.nodes.iter().find(|n| n.key == k).expect("registered");
        (Uid::try_from(n.uid).expect("uid"), n.endpoint.clone())
    };
    let row = net.client.weights(uid_of(1).0).await.expect("weights");
    assert!(row.iter().any(|e| e.0 == uid_of(6).0), "{row:?}");
    for bad in [uid_of(3).0, uid_of(4).0, tarpit_uid] {
        assert!(row.iter().all(|e| e.0 != bad), "uid {bad} in {row:?}");
    }
    // A TEXT node refuses an IMAGE request (from a registered, staked account).
    let transport = deepnode_node::NoiseTcp::new(
        Wallet::from_seed([5; 32]).key().clone(),
        net.client.genesis_hash().await.expect("genesis").0,
        Duration::from_secs(3),
    )
    .expect("transport");
    let caller = deepnode_node::Node::new(
        Arc::new(transport),
        Arc::new(RandomProjection::new(5, DIM)),
        Arc::new(deepnode_node::AdmitAll),
        config(&rpc, 5).serve,
    );
    let addr = uid_of(1).1.parse().expect("endpoint");
    let conn = caller
        .dial(addr, Wallet::from_seed([1; 32]).account().0)
        .await
        .expect("dial");
    let text = Tensor::from_i64(&[1, 4], &[1, 2, 3, 4]).expect("text");
    let image = Tensor::from_f32(&[1, 3, 8, 8], &[0.5; 192]).expect("image");
    let second = Duration::from_secs(5);
    assert!(conn.forward(Modality::Text, &text, second).await.is_ok());
    let e = conn
        .forward(Modality::Image, &image, second)
        .await
        .expect_err("image refused");
    assert!(
        matches!(
            e,
            NodeError::Refused(deepnode_wire::Status::UnservedModality)
        ),
        "{e}"
    );
    stop_tx.send(true).expect("stop");
    let most = tokio::time::timeout(Duration::from_secs(30), gaps)
        .await
        .expect("node 1 stopped")
        .expect("join");
    // A dial that stalls for its whole 10 s timeout never holds up a tick (the ledger's
    // replies alone can take a second or two on a loaded machine).
    assert!(most < Duration::from_secs(5), "a tick took {most:?}");
}

/// A node whose listening socket stops listening (here shut down through a duplicate of it,
/// as a service manager that handed it over could) stops with `ListenerStopped`: peers could
/// no longer reach it, and it says so rather than run on unreachable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_fails_when_its_listener_stops() {
    let net = ledger(1).await;
    let rpc = format!("http://{}", net.ledger.addr());
    let socket = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = socket.local_addr().expect("addr");
    // The same socket, as a stream only so that std can shut it down.
    let handle =
        std::net::TcpStream::from(std::os::fd::OwnedFd::from(socket.try_clone().expect("dup")));
    let mut cfg = config(&rpc, 1);
    cfg.listen = Listen::Socket(Arc::new(socket));
    let (tx, mut status) = watch::channel(Status::default());
    let (_stop_tx, stop) = watch::channel(false);
    let model: Arc<dyn Model> = Arc::new(RandomProjection::new(1, DIM));
    let task = spawn_node(&rpc, 1, model, None, cfg, tx, stop);
    // Registered and serving that socket's address.
    tokio::time::timeout(
        Duration::from_secs(30),
        status.wait_for(|s| s.uid.is_some()),
    )
    .await
    .expect("the node joined within 30 s")
    .expect("status");
    let mg = net.client.metagraph().await.expect("metagraph");
    assert_eq!(mg.nodes[0].endpoint, addr.to_string());
    handle
        .shutdown(std::net::Shutdown::Both)
        .expect("shut the socket down");
    let ended = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("run returned within 10 s of its listener stopping")
        .expect("join");
    assert!(
        matches!(ended, Err(NodeError::ListenerStopped(_))),
        "{ended:?}"
    );
}
