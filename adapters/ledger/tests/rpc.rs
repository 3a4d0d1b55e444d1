//! Through the real JSON-RPC server on loopback: each kind of bad extrinsic is refused with a
//! clear error and changes nothing; good ones are committed; heads stream over WebSocket.
#![cfg(feature = "rpc")]

use std::time::Duration;

use deepnode_ledger::rpc::tx_error_code;
use deepnode_ledger::{
    AccountId, Call, Chain, Client, Extrinsic, Genesis, H256, MAX_EXTRINSIC_BYTES, MalformedError,
    RpcServer, TxError, Wallet,
};
use jsonrpsee::core::client::SubscriptionClientT;
use jsonrpsee::rpc_params;
use jsonrpsee_ws_client::WsClientBuilder;
use parity_scale_codec::Encode;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);

fn wallet(b: u8) -> Wallet {
    Wallet::from_seed([b; 32])
}

struct Net {
    node: RpcServer,
    client: Client,
    genesis: H256,
    _dir: tempfile::TempDir,
}

async fn start() -> Net {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut g = Genesis::default();
    g.config.tempo = 1000;
    g.config.weights_rate_limit = 1000;
    g.params.min_allowed_weights = 2;
    g.endowments = (1..=3).map(|b| (wallet(b).account(), 1_000_000)).collect();
    let chain = Chain::open(dir.path(), Some(&g)).expect("open");
    let genesis = chain.genesis_hash();
    let node = RpcServer::start(
        chain,
        "127.0.0.1:0".parse().expect("addr"),
        Duration::from_millis(50),
    )
    .await
    .expect("start");
    let client = Client::new(&format!("http://{}", node.addr())).expect("client");
    Net {
        node,
        client,
        genesis,
        _dir: dir,
    }
}

/// What a refused extrinsic must not change: every account and the metagraph's nodes.
async fn snapshot(c: &Client) -> (Vec<Value>, Value) {
    let mut accounts = Vec::new();
    for b in 1..=3 {
        let who = wallet(b).account().to_string();
        accounts.push(
            c.call("ledger_account", rpc_params![who])
                .await
                .expect("account"),
        );
    }
    let nodes = c
        .call("ledger_metagraph", rpc_params![])
        .await
        .expect("metagraph")["nodes"]
        .clone();
    (accounts, nodes)
}

async fn refused(net: &Net, hex: String, code: i32, needle: &str) {
    let before = snapshot(&net.client).await;
    let err = net
        .client
        .submit_hex(hex)
        .await
        .expect_err("must be refused")
        .to_string();
    assert!(
        err.contains(&format!("code {code}")) && err.contains(needle),
        "expected code {code} and {needle:?}, got {err}"
    );
    // Let a block or two pass: nothing refused may surface later either.
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        snapshot(&net.client).await,
        before,
        "state changed after: {err}"
    );
}

fn code(e: TxError) -> i32 {
    tx_error_code(&e)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_extrinsics_are_refused_with_no_state_change() {
    let net = start().await;
    let (a, b) = (wallet(1), wallet(2));
    let c = &net.client;
    for w in [&a, &b] {
        let h = c.send(w.key(), Call::Register).await.expect("register");
        c.wait_committed(&h, WAIT).await.expect("committed");
    }
    let h = c
        .send(
            a.key(),
            Call::AddStake {
                uid: 0,
                amount: 500,
            },
        )
        .await
        .expect("stake");
    c.wait_committed(&h, WAIT).await.expect("committed");
    let g = net.genesis;
    let next = |w: &Wallet| c.pending_nonce(w.account());

    // Forged signature: b's call claimed by a.
    let mut forged = Extrinsic::sign(b.key(), &g, next(&a).await.expect("nonce"), Call::Register);
    forged.signer = a.account();
    refused(
        &net,
        forged.to_hex(),
        code(TxError::BadSignature),
        "bad signature",
    )
    .await;
    // A flipped bit in an otherwise good signature.
    let mut flipped = Extrinsic::sign(a.key(), &g, next(&a).await.expect("nonce"), Call::Register);
    flipped.signature[5] ^= 1;
    refused(
        &net,
        flipped.to_hex(),
        code(TxError::BadSignature),
        "bad signature",
    )
    .await;
    // Signed for another chain.
    let other = Extrinsic::sign(a.key(), &H256([9; 32]), 2, Call::Register);
    refused(
        &net,
        other.to_hex(),
        code(TxError::BadSignature),
        "bad signature",
    )
    .await;

    // Replay of a committed extrinsic, and a nonce from the future.
    let first = Extrinsic::sign(a.key(), &g, 0, Call::Register);
    refused(
        &net,
        first.to_hex(),
        code(TxError::BadNonce {
            expected: 0,
            got: 0,
        }),
        "expected 2, got 0",
    )
    .await;
    let ahead = Extrinsic::sign(a.key(), &g, 7, Call::Register);
    refused(
        &net,
        ahead.to_hex(),
        code(TxError::BadNonce {
            expected: 0,
            got: 0,
        }),
        "wrong nonce",
    )
    .await;

    // b acting for a's node (uid 0) with every per-node call.
    let nb = next(&b).await.expect("nonce");
    for call in [
        Call::AddStake { uid: 0, amount: 1 },
        Call::RemoveStake { uid: 0, amount: 1 },
        Call::SetWeights {
            uid: 0,
            weights: vec![(0, 1), (1, 1)],
        },
        Call::Serve {
            uid: 0,
            endpoint: b"127.0.0.1:1".to_vec(),
            modality: 0,
        },
    ] {
        let ext = Extrinsic::sign(b.key(), &g, nb, call);
        refused(
            &net,
            ext.to_hex(),
            code(TxError::NotOwner(0)),
            "owned by another account",
        )
        .await;
    }

    // A modality code the wire format does not define, on a's own node.
    let serve = Call::Serve {
        uid: 0,
        endpoint: b"127.0.0.1:1".to_vec(),
        modality: 4,
    };
    let ext = Extrinsic::sign(a.key(), &g, next(&a).await.expect("nonce"), serve);
    refused(
        &net,
        ext.to_hex(),
        code(TxError::BadModality(4)),
        "unknown modality code 4",
    )
    .await;

    // Malformed SCALE: truncated, trailing byte, unknown call index, not hex.
    let good =
        Extrinsic::sign(a.key(), &g, next(&a).await.expect("nonce"), Call::Register).encode();
    let malformed = code(TxError::Malformed(MalformedError::NotHex(
        hex::FromHexError::OddLength,
    )));
    let hexed = |b: &[u8]| format!("0x{}", hex::encode(b));
    refused(&net, hexed(&good[..good.len() - 1]), malformed, "malformed").await;
    let mut trailing = good.clone();
    trailing.push(0);
    refused(&net, hexed(&trailing), malformed, "malformed").await;
    let mut bad_index = good.clone();
    bad_index[40] = 0xee; // signer (32) + nonce (8), then the call's variant index
    refused(&net, hexed(&bad_index), malformed, "malformed").await;
    refused(&net, "0xzz".into(), malformed, "not hex").await;

    // Oversized: a weights row past the extrinsic size bound.
    let huge = Call::SetWeights {
        uid: 0,
        weights: (0..12_000).map(|u| (u, 1)).collect(),
    };
    let big = Extrinsic::sign(a.key(), &g, next(&a).await.expect("nonce"), huge);
    assert!(big.encode().len() > MAX_EXTRINSIC_BYTES);
    refused(
        &net,
        big.to_hex(),
        code(TxError::TooLarge { len: 0, max: 0 }),
        "at most 65536",
    )
    .await;

    // Invalid weights: uid out of range, duplicate uid, too few (min_allowed_weights = 2).
    let invalid = code(TxError::InvalidWeights(deepnode_consensus::Error::NoNodes));
    let na = next(&a).await.expect("nonce");
    for (row, needle) in [
        (vec![(0, 1), (5, 1)], "out of range"),
        (vec![(1, 1), (1, 2)], "duplicate uid"),
        (vec![(1, 1), (0, 0)], "min_allowed_weights is 2"),
    ] {
        let ext = Extrinsic::sign(
            a.key(),
            &g,
            na,
            Call::SetWeights {
                uid: 0,
                weights: row,
            },
        );
        refused(&net, ext.to_hex(), invalid, needle).await;
    }
    // A valid row is accepted once; the second within the rate limit is refused.
    let h = c
        .send(
            a.key(),
            Call::SetWeights {
                uid: 0,
                weights: vec![(0, 1), (1, 3)],
            },
        )
        .await
        .expect("valid weights");
    c.wait_committed(&h, WAIT).await.expect("committed");
    let again = Extrinsic::sign(
        a.key(),
        &g,
        next(&a).await.expect("nonce"),
        Call::SetWeights {
            uid: 0,
            weights: vec![(0, 1), (1, 3)],
        },
    );
    refused(
        &net,
        again.to_hex(),
        code(TxError::RateLimited { last: 0, next: 0 }),
        "rate limit",
    )
    .await;

    // Spending more than the free balance.
    let broke = Extrinsic::sign(
        b.key(),
        &g,
        next(&b).await.expect("nonce"),
        Call::Transfer {
            to: a.account(),
            amount: 2_000_000,
        },
    );
    refused(
        &net,
        broke.to_hex(),
        code(TxError::InsufficientBalance { have: 0, need: 0 }),
        "insufficient balance",
    )
    .await;

    let w = c
        .call("ledger_weights", rpc_params![0])
        .await
        .expect("weights");
    assert_eq!(w, serde_json::json!([[0, 1], [1, 3]]));
    net.node.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_heads_stream_over_websocket_and_blocks_are_readable() {
    let net = start().await;
    let ws = WsClientBuilder::default()
        .build(format!("ws://{}", net.node.addr()))
        .await
        .expect("ws");
    let mut sub = ws
        .subscribe::<Value, _>(
            "ledger_subscribeNewHeads",
            rpc_params![],
            "ledger_unsubscribeNewHeads",
        )
        .await
        .expect("subscribe");
    let a = wallet(3);
    let h = net
        .client
        .send(
            a.key(),
            Call::Transfer {
                to: AccountId([5; 32]),
                amount: 10,
            },
        )
        .await
        .expect("send");
    let mut last = 0;
    for _ in 0..3 {
        let head = tokio::time::timeout(WAIT, sub.next())
            .await
            .expect("a head in time")
            .expect("open")
            .expect("json");
        let n = head["number"].as_u64().expect("number");
        assert!(n > last, "heads increase");
        last = n;
    }
    let at = net
        .client
        .wait_committed(&h, WAIT)
        .await
        .expect("committed");
    let block = net
        .client
        .call("ledger_block", rpc_params![at])
        .await
        .expect("block");
    let ext = &block["extrinsics"][0];
    assert_eq!(ext["hash"], h.to_string());
    assert_eq!(ext["call"]["transfer"]["amount"], 10);
    assert_eq!(ext["events"][0]["transferred"]["amount"], 10);
    let acc = net
        .client
        .call(
            "ledger_account",
            rpc_params![AccountId([5; 32]).to_string()],
        )
        .await
        .expect("account");
    assert_eq!(acc["free"], 10);
    assert_eq!(
        net.client
            .call("ledger_block", rpc_params![1_000_000])
            .await
            .expect("none"),
        Value::Null
    );
    net.node.stop().await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_loopback_listen_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let chain = Chain::open(dir.path(), None).expect("open");
    let res = RpcServer::start(
        chain,
        "0.0.0.0:0".parse().expect("addr"),
        Duration::from_secs(1),
    )
    .await;
    assert!(res.is_err_and(|e| e.to_string().contains("loopback")));
}

/// An accepted extrinsic is pending (not durable) until its block is
/// committed, and the reply says so; `wait_committed` waits for the committed block.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_says_pending_until_committed() {
    let net = start().await;
    let ext = Extrinsic::sign(wallet(1).key(), &net.genesis, 0, Call::Register);
    let reply = net
        .client
        .call("ledger_submit", rpc_params![ext.to_hex()])
        .await
        .expect("accepted");
    assert_eq!(reply["status"], "pending", "{reply}");
    assert_eq!(reply["hash"], ext.hash().to_string());
    let block = net
        .client
        .wait_committed(&ext.hash(), WAIT)
        .await
        .expect("committed");
    let at = net
        .client
        .call("ledger_extrinsic", rpc_params![ext.hash().to_string()])
        .await
        .expect("located");
    assert_eq!(at["block"], block);
    net.node.stop().await.expect("stop");
}
