//! The exact bytes of every JSON-RPC reply on a small fixed chain, against a golden file.
//!
//! The golden file (`tests/golden/replies.txt`) pins the wire format: key order, number
//! formatting and nulls, whatever types build the replies. Regenerate only on purpose
//! with `DEEPNODE_BLESS=1 cargo test -p deepnode-ledger --test replies`.
#![cfg(feature = "rpc")]

use std::path::PathBuf;
use std::time::Duration;

use deepnode_ledger::{AccountId, Call, Chain, Extrinsic, Genesis, RpcServer, Wallet};
use parity_scale_codec::Encode;

mod common;
use common::post;

fn wallet(b: u8) -> Wallet {
    Wallet::from_seed([b; 32])
}

/// Four blocks with fixed timestamps: every call, a refused-then-evicting registration, an
/// epoch with bonds.
fn build(dir: &std::path::Path) -> Chain {
    let mut g = Genesis::default();
    g.config.tempo = 2;
    g.config.max_nodes = 3;
    g.config.immunity_period = 1;
    g.config.weights_rate_limit = 1;
    g.endowments = (1..=4).map(|b| (wallet(b).account(), 1_000_000)).collect();
    let mut chain = Chain::open(dir, Some(&g)).expect("open");
    let id = chain.genesis_hash();
    let mut nonces = [0u64; 5];
    let mut send = |chain: &mut Chain, b: u8, call: Call| {
        let n = &mut nonces[usize::from(b)];
        let ext = Extrinsic::sign(wallet(b).key(), &id, *n, call);
        chain.submit_verified(ext).expect("accepted");
        *n += 1;
    };
    for b in 1..=3u8 {
        let uid = u32::from(b - 1);
        send(&mut chain, b, Call::Register);
        send(
            &mut chain,
            b,
            Call::AddStake {
                uid,
                amount: 1_000 * u64::from(b),
            },
        );
    }
    send(&mut chain, 1, Call::RemoveStake { uid: 0, amount: 10 });
    send(
        &mut chain,
        2,
        Call::Transfer {
            to: AccountId([9; 32]),
            amount: 77,
        },
    );
    send(
        &mut chain,
        3,
        Call::Serve {
            uid: 2,
            endpoint: b"127.0.0.1:7000".to_vec(),
            modality: 3,
        },
    );
    chain.produce_block(1_000).expect("block 1");
    for b in 1..=3u8 {
        let weights = vec![(0, 100), (1, 300 + u16::from(b)), (2, u16::from(b))];
        send(
            &mut chain,
            b,
            Call::SetWeights {
                uid: u32::from(b - 1),
                weights,
            },
        );
    }
    chain.produce_block(2_000).expect("block 2: epoch");
    send(&mut chain, 4, Call::Register);
    chain.produce_block(3_000).expect("block 3: eviction");
    chain.produce_block(4_000).expect("block 4: epoch");
    chain
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_reply_is_byte_identical_to_the_golden_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let chain = build(dir.path());
    let (a, x) = (wallet(1).account(), AccountId([9; 32]));
    let late = Extrinsic::sign(wallet(2).key(), &chain.genesis_hash(), 4, Call::Register);
    let replay = Extrinsic::sign(wallet(2).key(), &chain.genesis_hash(), 0, Call::Register);
    let first = Extrinsic::sign(wallet(1).key(), &chain.genesis_hash(), 0, Call::Register);
    let hex = |e: &Extrinsic| format!("0x{}", hex::encode(e.encode()));
    // No block is produced while the test runs: the interval is an hour.
    let node = RpcServer::start(
        chain,
        "127.0.0.1:0".parse().expect("addr"),
        Duration::from_secs(3600),
    )
    .await
    .expect("start");
    let addr = node.addr();
    let calls: Vec<(&str, String)> = vec![
        ("ledger_genesisHash", "[]".into()),
        ("ledger_head", "[]".into()),
        ("ledger_block", "[0]".into()),
        ("ledger_block", "[1]".into()),
        ("ledger_block", "[2]".into()),
        ("ledger_block", "[3]".into()),
        ("ledger_block", "[4]".into()),
        ("ledger_block", "[5]".into()),
        ("ledger_block", "[\"x\"]".into()),
        ("ledger_extrinsic", format!("[\"{}\"]", first.hash())),
        ("ledger_extrinsic", format!("[\"{}\"]", late.hash())),
        ("ledger_extrinsic", "[\"0x12\"]".into()),
        ("ledger_account", format!("[\"{a}\"]")),
        ("ledger_account", format!("[\"{x}\"]")),
        ("ledger_account", format!("[\"{}\"]", AccountId([8; 32]))),
        ("ledger_account", "[\"zz\"]".into()),
        ("ledger_metagraph", "[]".into()),
        ("ledger_epochInput", "[]".into()),
        ("ledger_weights", "[0]".into()),
        ("ledger_weights", "[2]".into()),
        ("ledger_weights", "[7]".into()),
        ("ledger_bonds", "[0]".into()),
        ("ledger_bonds", "[1]".into()),
        ("ledger_bonds", "[9]".into()),
        ("ledger_submit", "[\"0xzz\"]".into()),
        ("ledger_submit", "[\"0x00\"]".into()),
        ("ledger_submit", format!("[\"{}\"]", hex(&replay))),
        ("ledger_submit", format!("[\"{}\"]", hex(&late))),
        ("ledger_account", format!("[\"{}\"]", wallet(2).account())),
        ("ledger_nope", "[]".into()),
    ];
    let mut out = String::new();
    for (k, (method, params)) in calls.iter().enumerate() {
        let body = format!(r#"{{"jsonrpc":"2.0","id":{k},"method":"{method}","params":{params}}}"#);
        out.push_str(&format!("{method} {params}\n{}\n", post(addr, &body)));
    }
    node.stop().await.expect("stop");
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/replies.txt");
    if std::env::var_os("DEEPNODE_BLESS").is_some() {
        std::fs::write(&path, &out).expect("write golden");
    }
    let golden = std::fs::read_to_string(&path).expect("golden file (DEEPNODE_BLESS=1 writes it)");
    for (k, (want, got)) in golden.lines().zip(out.lines()).enumerate() {
        assert_eq!(got, want, "line {} of {}", k + 1, path.display());
    }
    assert_eq!(golden.lines().count(), out.lines().count(), "reply count");
}
