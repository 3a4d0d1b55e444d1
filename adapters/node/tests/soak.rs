//! A node beside hostile peers for a few seconds: a key that floods sessions, unregistered
//! keys, peers that never read their replies and peers that leave messages unfinished. Its
//! open files and memory stay bounded and its honest callers are answered about as often as
//! when it is quiet; run on a ledger, it keeps committing weights rows through the attack and
//! gives its threads and memory back after it. A test binary of its own, as it measures the
//! process; its tests run one at a time.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use deepnode_ledger::{Call, Chain, Client, Genesis, RpcServer, Wallet};
use deepnode_node::access::LedgerRpc;
use deepnode_node::life::{RunConfig, Scoring, Status, run};
use deepnode_node::transport::Session;
use deepnode_node::{
    AccountKey, Admission, AdmitAll, Connection, Node, NoiseTcp, RandomProjection, ServeConfig,
    Tensor, Transport,
};
use deepnode_node::{Model, NodeError};
use deepnode_wire::{
    CHUNK_HEADER_LEN, ChunkHeader, DType, FIRST, HEADER_LEN, Header, Kind, LAST, Limits,
    MAX_CHUNK_DATA, Modality, Shape,
};
use ed25519_dalek::SigningKey;
use tokio::sync::watch;

const DIM: u32 = 8;
/// The chain id the peers' handshakes bind (the ledger's, in the test that runs one).
static GENESIS: std::sync::RwLock<[u8; 32]> = std::sync::RwLock::new([7; 32]);
/// The tests measure the whole process: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
/// Honest callers' account seeds.
const HONEST: [u8; 4] = [10, 11, 12, 13];
/// Registered attackers: a session flooder, a peer that never reads, one that leaves
/// messages unfinished.
const FLOODER: u8 = 20;
const UNREAD: u8 = 21;
const UNFINISHED: u8 = 22;
/// A registered peer that sends bursts of requests at once (the ledger test).
const BURST: u8 = 23;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn account(seed: u8) -> AccountKey {
    key(seed).verifying_key().to_bytes()
}

/// Only the listed accounts are in the metagraph.
struct Only(Vec<AccountKey>);

impl Admission for Only {
    fn admit(&self, a: &AccountKey) -> bool {
        self.0.contains(a)
    }
}

fn config() -> ServeConfig {
    let limits = Limits {
        max_payload: 1 << 20,
        max_batch: 8,
        max_seq: 1 << 14,
        dim: DIM,
        max_features: 16,
        max_image_elems: 3 * 8 * 8,
    };
    let mut cfg = ServeConfig::new(limits, 4, 32);
    cfg.max_sessions = 64;
    cfg.max_open_bytes = 8 << 20;
    cfg.max_open_bytes_total = 16 << 20;
    cfg.message_timeout = Duration::from_secs(2);
    cfg.send_timeout = Duration::from_secs(1);
    cfg.max_queued = 16;
    cfg
}

fn transport(seed: u8) -> NoiseTcp {
    let genesis = *GENESIS.read().unwrap();
    NoiseTcp::new(key(seed), genesis, Duration::from_secs(5)).unwrap()
}

fn caller(seed: u8) -> Arc<Node> {
    Arc::new(Node::new(
        Arc::new(transport(seed)),
        Arc::new(RandomProjection::new(1, DIM)),
        Arc::new(AdmitAll),
        config(),
    ))
}

/// Open file descriptors of this process.
fn open_files() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// Threads of this process, but for the ledger's (named `ledger` and `block-producer`).
fn threads() -> usize {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| !name.starts_with("ledger") && !name.starts_with("block-producer"))
        .count()
}

/// Resident memory of this process, in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Sends one chunk; false once the session is gone.
async fn chunk(s: &mut Session, id: u64, flags: u8, data: &[u8]) -> bool {
    let mut h = [0u8; CHUNK_HEADER_LEN];
    ChunkHeader {
        request_id: id,
        len: data.len() as u16,
        flags,
    }
    .encode(&mut h);
    s.writer.push(&[&h, data]).is_ok()
        && tokio::time::timeout(Duration::from_secs(3), s.writer.flush())
            .await
            .is_ok_and(|r| r.is_ok())
}

fn header(dims: &[u32], id: u64) -> [u8; HEADER_LEN] {
    let h = Header::request(
        Kind::Forward,
        Modality::Text,
        DType::I64,
        Shape::new(dims).unwrap(),
        id,
        0,
    )
    .unwrap();
    let mut b = [0u8; HEADER_LEN];
    h.encode(&mut b);
    b
}

/// Honest callers: each asks, then waits 200 ms (a node's query tick); returns the count of
/// answers, which they add to until `stop`.
fn honest(conns: &[Arc<Connection>], stop: &Arc<AtomicBool>) -> Arc<AtomicU64> {
    let answers = Arc::new(AtomicU64::new(0));
    for c in conns {
        let (c, stop, answers) = (Arc::clone(c), Arc::clone(stop), Arc::clone(&answers));
        tokio::spawn(async move {
            let x = Tensor::from_i64(&[2, 8], &[5; 16]).unwrap();
            while !stop.load(Ordering::SeqCst) {
                if c.forward(Modality::Text, &x, Duration::from_secs(2))
                    .await
                    .is_ok()
                {
                    answers.fetch_add(1, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
    }
    answers
}

/// Honest answers per second over `window`.
async fn rate(conns: &[Arc<Connection>], window: Duration) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let answers = honest(conns, &stop);
    tokio::time::sleep(window).await;
    let n = answers.load(Ordering::SeqCst);
    stop.store(true, Ordering::SeqCst);
    n as f64 / window.as_secs_f64()
}

/// Every attacker, until `until`, on a runtime of its own.
async fn attack(addr: SocketAddr, until: Instant) {
    let mut tasks = Vec::new();
    // A registered key opens session after session and holds those left open.
    tasks.push(tokio::spawn(async move {
        let n = caller(FLOODER);
        let mut held: Vec<Arc<Connection>> = Vec::new();
        // Handshakes cost CPU on both sides (in this one process): a few a second.
        while Instant::now() < until {
            if let Ok(c) = n.dial(addr, account(2)).await {
                held.push(c);
            }
            held.retain(|c| c.is_open());
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        held.len()
    }));
    // Fresh, unregistered keys.
    tasks.push(tokio::spawn(async move {
        let mut seed = 100u8;
        while Instant::now() < until {
            let _ = transport(seed).dial(addr, account(2)).await;
            seed = seed.wrapping_add(1).max(100);
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        0
    }));
    // A peer that sends requests whose answers it never reads, reconnecting when closed.
    tasks.push(tokio::spawn(async move {
        let mut msg = header(&[8, 64], 0).to_vec();
        msg.resize(HEADER_LEN + 8 * 64 * 8, 0);
        let mut held = Vec::new();
        while Instant::now() < until {
            let Ok(mut s) = transport(UNREAD).dial(addr, account(2)).await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            for id in 1..=2000u64 {
                msg[..HEADER_LEN].copy_from_slice(&header(&[8, 64], id));
                let parts: Vec<&[u8]> = msg.chunks(MAX_CHUNK_DATA).collect();
                let last = parts.len() - 1;
                let mut ok = true;
                for (i, p) in parts.iter().enumerate() {
                    let flags = if i == 0 { FIRST } else { 0 } | if i == last { LAST } else { 0 };
                    ok &= chunk(&mut s, id, flags, p).await;
                }
                if !ok || Instant::now() >= until {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            // Its side stays open, unread, for a while.
            held.push(s);
            if held.len() > 4 {
                held.remove(0);
            }
        }
        0
    }));
    // A peer that opens 1 MiB messages, sends a little of each and never the last chunk.
    tasks.push(tokio::spawn(async move {
        let body = vec![1u8; MAX_CHUNK_DATA];
        let mut id = 0u64;
        while Instant::now() < until {
            let Ok(mut s) = transport(UNFINISHED).dial(addr, account(2)).await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            'session: for _ in 0..32 {
                id += 1;
                if !chunk(&mut s, id, FIRST, &header(&[8, 1 << 14], id)).await {
                    break;
                }
                for _ in 0..2 {
                    if Instant::now() >= until || !chunk(&mut s, id, 0, &body).await {
                        break 'session;
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        0
    }));
    for t in tasks {
        let _ = t.await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_beside_hostile_peers_stays_bounded_and_answers_honest_callers() {
    let _serial = SERIAL.lock().await;
    *GENESIS.write().unwrap() = [7; 32];
    let mut members: Vec<AccountKey> = HONEST.iter().map(|&s| account(s)).collect();
    members.extend([FLOODER, UNREAD, UNFINISHED].map(account));
    let cfg = config();
    let counters = Arc::clone(&cfg.counters);
    let server = Arc::new(Node::new(
        Arc::new(transport(2)),
        Arc::new(RandomProjection::new(3, DIM)),
        Arc::new(Only(members)),
        cfg,
    ));
    let addr = server
        .listen("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
        .0;
    let mut conns = Vec::new();
    let mut callers = Vec::new();
    for s in HONEST {
        let n = caller(s);
        conns.push(n.dial(addr, account(2)).await.unwrap());
        callers.push(n);
    }
    let quiet = rate(&conns, Duration::from_secs(3)).await;
    let (files, memory) = (open_files(), rss());

    let until = Instant::now() + Duration::from_secs(8);
    let attackers = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(attack(addr, until))
    });
    // Let the attack build up, then measure while it runs.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let sampler_stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let stop = Arc::clone(&sampler_stop);
        let server = Arc::clone(&server);
        tokio::spawn(async move {
            let (mut f, mut m, mut s, mut b) = (0, 0, 0, 0);
            while !stop.load(Ordering::SeqCst) {
                f = f.max(open_files());
                m = m.max(rss());
                s = s.max(server.sessions());
                b = b.max(server.open_bytes());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (f, m, s, b)
        })
    };
    let attacked = rate(&conns, Duration::from_secs(5)).await;
    sampler_stop.store(true, Ordering::SeqCst);
    let (most_files, most_memory, most_sessions, most_bytes) = sampler.await.unwrap();
    attackers.join().unwrap();
    eprintln!(
        "quiet {quiet:.1}/s, attacked {attacked:.1}/s; files {files} -> at most {most_files}; \
         rss {} MiB -> at most {} MiB; sessions at most {most_sessions}; open bytes at most \
         {most_bytes}; sessions refused {}",
        memory >> 20,
        most_memory >> 20,
        counters.sessions_refused.load(Ordering::SeqCst)
    );
    assert!(quiet > 10.0, "quiet {quiet}/s");
    assert!(
        attacked >= 0.8 * quiet,
        "{attacked}/s against {quiet}/s quiet"
    );
    // Both ends of every session are in this process: two files each. Held open, the
    // flooder's sessions alone would take more.
    assert!(most_files <= files + 48, "{files} -> {most_files}");
    // The honest four, and at most four of each registered attacker.
    assert!(most_sessions <= 4 + 3 * 4, "{most_sessions} sessions");
    assert!(most_bytes <= 16 << 20, "{most_bytes} open bytes");
    assert!(
        most_memory <= memory + (128 << 20),
        "rss {memory} -> {most_memory}"
    );
    assert!(counters.sessions_refused.load(Ordering::SeqCst) > 0);
    // Every honest session is still up.
    assert!(conns.iter().all(|c| c.is_open()));
}

/// The ledger's metagraph; a read that fails (a kept-alive connection the ledger closed) is
/// tried again.
async fn metagraph(client: &Client) -> deepnode_ledger::view::MetagraphView {
    for _ in 0..20 {
        if let Ok(mg) = client.metagraph().await {
            return mg;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    client.metagraph().await.unwrap()
}

/// A model that takes 10 ms a call, as a real one takes some: requests that arrive together
/// wait for it together.
struct Slow(RandomProjection);

impl Model for Slow {
    fn dim(&self) -> u32 {
        self.0.dim()
    }
    fn serves(&self, m: Modality) -> bool {
        self.0.serves(m)
    }
    fn forward(&self, m: Modality, x: &Tensor) -> Result<Tensor, NodeError> {
        std::thread::sleep(Duration::from_millis(10));
        self.0.forward(m, x)
    }
    fn backward(&self, m: Modality, x: &Tensor, g: &Tensor) -> Result<(), NodeError> {
        std::thread::sleep(Duration::from_millis(10));
        self.0.backward(m, x, g)
    }
}

/// The victim's wallet seed in the ledger test.
const VICTIM: u8 = 2;

/// Registers wallet `seed` with 1000 stake and, if given, serves `endpoint` for TEXT.
async fn neuron(client: &Client, seed: u8, endpoint: Option<SocketAddr>) {
    let wallet = Wallet::from_seed([seed; 32]);
    let wait = Duration::from_secs(30);
    let h = client.send(wallet.key(), Call::Register).await.unwrap();
    client.wait_committed(&h, wait).await.unwrap();
    let me = wallet.account().to_string();
    let mg = metagraph(client).await;
    let uid = mg.nodes.iter().find(|n| n.key == me).unwrap().uid;
    let uid = u32::try_from(uid).unwrap();
    let mut calls = vec![Call::AddStake { uid, amount: 1000 }];
    if let Some(e) = endpoint {
        calls.push(Call::Serve {
            uid,
            endpoint: e.to_string().into_bytes(),
            modality: Modality::Text.code(),
        });
    }
    for call in calls {
        let h = client.send(wallet.key(), call).await.unwrap();
        client.wait_committed(&h, wait).await.unwrap();
    }
}

/// A node run on a ledger (registered, querying the four honest peers, setting weights),
/// attacked as above for 8 s: it commits weights rows all through the attack, its honest
/// callers are answered about as often as when it is quiet, and a few seconds after the
/// attack its threads and memory are back near where they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_on_a_ledger_keeps_setting_weights_under_attack_and_recovers() {
    let _serial = SERIAL.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut g = Genesis::default();
    g.config.tempo = 10;
    g.config.weights_rate_limit = 2;
    g.params.min_allowed_weights = 1;
    g.config.controller.cap = 1;
    let seeds = [
        VICTIM, HONEST[0], HONEST[1], HONEST[2], HONEST[3], FLOODER, UNREAD, UNFINISHED, BURST,
    ];
    g.endowments = seeds
        .iter()
        .map(|&s| (Wallet::from_seed([s; 32]).account(), 1_000_000))
        .collect();
    let chain = Chain::open(dir.path(), Some(&g)).unwrap();
    // The ledger on a runtime of its own: its blocking threads are not the nodes'.
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    let (ledger_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let ledger = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("ledger")
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let every = Duration::from_millis(100);
            let node = RpcServer::start(chain, "127.0.0.1:0".parse().unwrap(), every)
                .await
                .unwrap();
            let _ = addr_tx.send(node.addr());
            let _ = stopped.await;
            node.stop().await.unwrap();
        });
    });
    let rpc = format!("http://{}", addr_rx.await.unwrap());
    let client = Client::new(&rpc).unwrap();
    *GENESIS.write().unwrap() = client.genesis_hash().await.unwrap().0;
    // The honest peers serve on the ledger (the node queries them) and call the node.
    let mut callers = Vec::new();
    for s in HONEST {
        let n = caller(s);
        let addr = n.listen("127.0.0.1:0".parse().unwrap()).await.unwrap().0;
        neuron(&client, s, Some(addr)).await;
        callers.push(n);
    }
    for s in [FLOODER, UNREAD, UNFINISHED, BURST] {
        neuron(&client, s, None).await;
    }
    // Room for 16 requests at once per account: a peer that never reads may have as many
    // waiting on the model, which takes no more threads for them than `model_threads`.
    let mut serve = config();
    serve.per_peer = 16;
    let counters = Arc::clone(&serve.counters);
    let cfg = RunConfig {
        listen: "127.0.0.1:0".parse::<SocketAddr>().unwrap().into(),
        modality: Modality::Text,
        stake: 1000,
        stake_floor: 1,
        k: 4,
        batch: (2, 8),
        query_every: Duration::from_millis(200),
        timeout: Duration::from_secs(2),
        serve,
        seed: 1,
        scoring: Scoring::Usefulness,
    };
    let (tx, status) = watch::channel(Status::default());
    let (_stop_tx, stop) = watch::channel(false);
    let access = LedgerRpc::new(&rpc, Wallet::from_seed([VICTIM; 32])).unwrap();
    let node = tokio::spawn(async move {
        let model: Arc<dyn Model> = Arc::new(Slow(RandomProjection::new(3, DIM)));
        run(
            &access,
            &Wallet::from_seed([VICTIM; 32]),
            model,
            None,
            cfg,
            tx,
            stop,
        )
        .await
    });
    let started = Instant::now();
    while !(status.borrow().rows_set >= 2 && status.borrow().peers_up == 4) {
        assert!(
            !node.is_finished(),
            "the node stopped: {:?}",
            status.borrow()
        );
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no rows: {:?}",
            status.borrow()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let victim = Wallet::from_seed([VICTIM; 32]).account().to_string();
    let endpoint = |mg: &deepnode_ledger::view::MetagraphView| {
        let n = mg.nodes.iter().find(|n| n.key == victim).unwrap();
        (n.endpoint.parse::<SocketAddr>().unwrap(), n.weights_block)
    };
    let addr = endpoint(&metagraph(&client).await).0;
    let mut conns = Vec::new();
    for n in &callers {
        conns.push(n.dial(addr, account(VICTIM)).await.unwrap());
    }
    let quiet = rate(&conns, Duration::from_secs(3)).await;
    let (threads0, memory0) = (threads(), rss());

    let until = Instant::now() + Duration::from_secs(8);
    let attackers = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(attack(addr, until))
    });
    // Bursts of 16 requests at once, every 100 ms, until the others stop.
    let burst = {
        let n = caller(BURST);
        let conn = n.dial(addr, account(VICTIM)).await.unwrap();
        tokio::spawn(async move {
            let x = Tensor::from_i64(&[2, 8], &[5; 16]).unwrap();
            while Instant::now() < until {
                let asked: Vec<_> = (0..16)
                    .map(|_| {
                        let (c, x) = (Arc::clone(&conn), x.clone());
                        tokio::spawn(async move {
                            c.forward(Modality::Text, &x, Duration::from_secs(2)).await
                        })
                    })
                    .collect();
                for a in asked {
                    let _ = a.await;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            drop(n);
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rows_before = status.borrow().rows_set;
    let block_before = endpoint(&metagraph(&client).await).1;
    let sampler_stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let stop = Arc::clone(&sampler_stop);
        tokio::spawn(async move {
            let (mut t, mut m) = (0, 0);
            while !stop.load(Ordering::SeqCst) {
                t = t.max(threads());
                m = m.max(rss());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (t, m)
        })
    };
    let attacked = rate(&conns, Duration::from_secs(5)).await;
    let rows_during = status.borrow().rows_set - rows_before;
    let block_after = endpoint(&metagraph(&client).await).1;
    sampler_stop.store(true, Ordering::SeqCst);
    let (most_threads, most_memory) = sampler.await.unwrap();
    attackers.join().unwrap();
    burst.await.unwrap();
    // The attackers' sessions close (idle, expired, their peers gone); give the runtime's
    // spare threads their keep-alive.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let (threads1, memory1) = (threads(), rss());
    let st = status.borrow().clone();
    eprintln!(
        "on a ledger: quiet {quiet:.1}/s, attacked {attacked:.1}/s; rows committed during the \
         attack {rows_during} (weights block {block_before:?} -> {block_after:?}); threads \
         {threads0} -> at most {most_threads} -> {threads1} after; rss {} MiB -> at most {} \
         MiB -> {} MiB after; sessions refused {}; status {st:?}",
        memory0 >> 20,
        most_memory >> 20,
        memory1 >> 20,
        counters.sessions_refused.load(Ordering::SeqCst)
    );
    assert!(!node.is_finished(), "the node stopped");
    assert!(rows_during >= 3, "{rows_during} rows in 5 s of attack");
    assert!(
        block_after > block_before,
        "{block_before:?} -> {block_after:?}"
    );
    assert_eq!(st.rows_refused, 0, "{st:?}");
    // Here the node's own queries and the ledger share the two cores with the attackers
    // (the test above holds the node alone to 80% of its quiet figure).
    assert!(
        attacked >= 0.5 * quiet,
        "{attacked}/s against {quiet}/s quiet"
    );
    assert!(
        most_memory <= memory0 + (128 << 20),
        "rss {memory0} -> {most_memory}"
    );
    assert!(
        most_threads <= threads0 + 8 && threads1 <= threads0 + 8,
        "threads {threads0} -> at most {most_threads} -> {threads1} after"
    );
    assert!(
        memory1 <= memory0 + (32 << 20),
        "rss {memory0} -> {memory1} after"
    );
    let _ = ledger_stop.send(());
    tokio::task::spawn_blocking(move || ledger.join().unwrap())
        .await
        .unwrap();
}
