//! The node on a Substrate chain running the DeepNode runtime. The chain test needs a chain:
//! `scripts/chain.sh cargo test -p deepnode-substrate -- --include-ignored` starts the runtime
//! under chopsticks and sets `DEEPNODE_CHAIN`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use deepnode_ledger_client::{Call, Wallet};
use deepnode_node::access::LedgerAccess;
use deepnode_node::life::{RunConfig, Scoring, Status, run};
use deepnode_node::{Model, RandomProjection, ServeConfig};
use deepnode_substrate::{ChainError, SubstrateChain};
use deepnode_wire::{Limits, Modality};
use tokio::sync::watch;

const DIM: u32 = 8;

#[tokio::test]
async fn an_unreachable_chain_is_one_line() {
    let wallet = Wallet::from_seed([1; 32]);
    let Err(e) = SubstrateChain::connect("ws://127.0.0.1:1", &wallet).await else {
        panic!("nothing listens on port 1");
    };
    assert!(matches!(e, ChainError::Unreachable { .. }), "{e:?}");
    let line = e.to_string();
    assert!(
        line.starts_with("chain ws://127.0.0.1:1 unreachable: "),
        "{line}"
    );
    assert!(!line.contains('\n'), "{line}");
}

fn config(seed: u64) -> RunConfig {
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
        query_every: Duration::from_millis(200),
        timeout: Duration::from_secs(2),
        serve: ServeConfig::new(limits, 8, 64),
        seed,
        scoring: Scoring::Usefulness,
    }
}

/// An unfunded key is refused in one line; funded by Alice, two nodes register, stake, serve,
/// find each other through the metagraph API, query each other and each get a weights row
/// into the pallet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a chain: scripts/chain.sh sets DEEPNODE_CHAIN"]
async fn two_nodes_on_the_chain_register_serve_and_set_weights() {
    let url = std::env::var("DEEPNODE_CHAIN").expect("DEEPNODE_CHAIN (scripts/chain.sh)");
    let seeds = [[41u8; 32], [42u8; 32]];
    let chain = SubstrateChain::connect(&url, &Wallet::from_seed(seeds[0]))
        .await
        .expect("connect");
    let e = chain
        .submit(Call::Register)
        .await
        .expect_err("no funds yet");
    let line = e.to_string();
    assert!(line.contains("has no funds on the chain"), "{line}");
    let alice = subxt_signer::sr25519::dev::alice();
    for seed in seeds {
        let who = Wallet::from_seed(seed).account();
        chain
            .transfer(&alice, who, 1 << 40)
            .await
            .expect("Alice funds the node");
        assert_eq!(chain.free_balance(who).await.expect("balance"), 1 << 40);
    }
    let (stop_tx, stop) = watch::channel(false);
    let mut statuses = Vec::new();
    let mut tasks = Vec::new();
    for (i, seed) in seeds.into_iter().enumerate() {
        let access = SubstrateChain::connect(&url, &Wallet::from_seed(seed))
            .await
            .expect("connect");
        let (tx, rx) = watch::channel(Status::default());
        statuses.push(rx);
        let stop = stop.clone();
        let model: Arc<dyn Model> = Arc::new(RandomProjection::new(i as u64, DIM));
        tasks.push(tokio::spawn(async move {
            run(
                &access,
                &Wallet::from_seed(seed),
                model,
                None,
                config(i as u64),
                tx,
                stop,
            )
            .await
        }));
    }
    let started = Instant::now();
    while !statuses.iter().all(|s| s.borrow().rows_set >= 1) {
        for t in &tasks {
            assert!(
                !t.is_finished(),
                "a node stopped: {:?}",
                statuses
                    .iter()
                    .map(|s| s.borrow().clone())
                    .collect::<Vec<_>>()
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no rows after 120 s: {:?}",
            statuses
                .iter()
                .map(|s| s.borrow().clone())
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop_tx.send(true).expect("stop");
    for t in tasks {
        t.await.expect("joined").expect("the node ran cleanly");
    }
    let m = chain.metagraph().await.expect("metagraph").view();
    for seed in seeds {
        let key = Wallet::from_seed(seed).account().to_string();
        let node = m.nodes.iter().find(|n| n.key == key).expect("registered");
        // The stake the node added, and whatever epochs minted to it since.
        assert!(node.stake >= 1000, "{node:?}");
        assert!(node.endpoint.starts_with("127.0.0.1:"), "{node:?}");
        assert_eq!(node.modality.as_deref(), Some("text"));
        assert!(node.weights_block.is_some(), "{node:?}");
    }
}
