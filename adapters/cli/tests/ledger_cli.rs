//! The ledger through the real `deepnode` binary: wallets, transactions and the metagraph
//! against a running node; an epoch equal to `deepnode epoch`; kill -9 under load.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use deepnode_ledger::view::epoch_input_json;
use deepnode_ledger::{AccountId, Call, Chain, Client, Extrinsic, Genesis, H256, Wallet};
use jsonrpsee::rpc_params;
use serde_json::Value;

fn deepnode(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_deepnode"))
        .args(args)
        .output()
        .expect("the deepnode binary runs")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A `deepnode ledger run` child and the URL it printed.
struct NodeProc {
    child: Child,
    url: String,
}

impl NodeProc {
    fn spawn(data: &Path, genesis: &Path, block_ms: u64) -> NodeProc {
        let mut child = Command::new(env!("CARGO_BIN_EXE_deepnode"))
            .args(["ledger", "run", "--listen", "127.0.0.1:0", "--block-ms"])
            .arg(block_ms.to_string())
            .arg("--data")
            .arg(data)
            .arg("--genesis")
            .arg(genesis)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn the node");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("first line");
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        NodeProc {
            url: format!("http://{addr}"),
            child,
        }
    }

    /// SIGKILL: no chance to flush or clean up.
    fn kill9(mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().expect("reaped");
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        // Already dead after kill9; otherwise stop it so no test leaks a process.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn genesis_file(dir: &Path, json: &Value) -> std::path::PathBuf {
    let p = dir.join("genesis.json");
    std::fs::write(&p, json.to_string()).expect("genesis");
    p
}

#[test]
fn wallet_tx_and_metagraph_through_the_binary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("alice.key");
    let key_s = key.to_str().expect("utf-8 path");
    let account = ok(&deepnode(&["wallet", "new", key_s])).trim().to_string();
    assert_eq!(ok(&deepnode(&["wallet", "show", key_s])).trim(), account);
    let text = std::fs::read_to_string(&key).expect("key file");
    let secret: Value = serde_json::from_str(&text).expect("json");
    let secret = secret["secret"].as_str().expect("secret").to_string();
    assert!(!account.contains(&secret), "the secret is never printed");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let again = deepnode(&["wallet", "new", key_s]);
    assert_eq!(again.status.code(), Some(2), "never overwrites a key file");

    let g = genesis_file(
        dir.path(),
        &serde_json::json!({"tempo": 10, "weights_rate_limit": 1,
        "endowments": [[account, 5000]]}),
    );
    let node = NodeProc::spawn(&dir.path().join("data"), &g, 100);
    let tx = |args: &[&str]| {
        let mut full = vec!["tx", "--wallet", key_s, "--rpc", &node.url, "--wait"];
        full.extend_from_slice(args);
        deepnode(&full)
    };
    ok(&tx(&["register"]));
    ok(&tx(&["stake", "0", "1200"]));
    ok(&tx(&[
        "serve",
        "0",
        "127.0.0.1:7000",
        "--modality",
        "tensor",
    ]));
    let unknown = tx(&["serve", "0", "127.0.0.1:7000", "--modality", "smell"]);
    assert_eq!(unknown.status.code(), Some(2), "not a modality");
    ok(&tx(&["weights", "0", "0:100"]));
    let refused = tx(&["stake", "0", "999999"]);
    assert_eq!(refused.status.code(), Some(1));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("insufficient balance") && err.lines().count() == 1,
        "{err}"
    );
    let bad = tx(&["weights", "0", "zero"]);
    assert_eq!(bad.status.code(), Some(2));
    let table = ok(&deepnode(&["metagraph", "--rpc", &node.url]));
    assert!(
        table.contains("consensus") && table.contains("127.0.0.1:7000"),
        "{table}"
    );
    assert!(
        table.contains("modality") && table.contains("tensor  127.0.0.1:7000"),
        "{table}"
    );
    let row = table
        .lines()
        .find(|l| l.trim_start().starts_with("0 "))
        .expect("uid 0 row");
    assert!(
        row.split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u64>().ok())
            >= Some(1200)
    );
    // Columns are right-aligned under their headers.
    let header = table.lines().find(|l| l.contains("stake")).expect("header");
    let end_of = |line: &str, nth: usize| {
        let token = line.split_whitespace().nth(nth).expect("field");
        line.find(token).map(|at| at + token.len())
    };
    for field in [0, 1, 2, 8] {
        assert_eq!(end_of(header, field), end_of(row, field), "{table}");
    }
}

/// The ledger's epoch equals `deepnode epoch` on the same state, bit for bit.
#[test]
fn ledger_epoch_equals_deepnode_epoch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wallets: Vec<Wallet> = (1..=5u8).map(|b| Wallet::from_seed([b; 32])).collect();
    let mut g = Genesis::default();
    g.config.tempo = 2;
    g.endowments = wallets.iter().map(|w| (w.account(), 1_000_000)).collect();
    let mut chain = Chain::open(&dir.path().join("data"), Some(&g)).expect("open");
    let id = chain.genesis_hash();
    let mut submit = |w: &Wallet, nonce: u64, call: Call| {
        let ext = Extrinsic::sign(w.key(), &id, nonce, call);
        chain.submit_verified(ext).expect("accepted");
    };
    for (i, w) in wallets.iter().enumerate() {
        let uid = i as u32;
        submit(w, 0, Call::Register);
        submit(
            w,
            1,
            Call::AddStake {
                uid,
                amount: 1_000 * (uid as u64 + 1) * (uid as u64 + 3),
            },
        );
    }
    // Four honest nodes agree on 0..3; node 4 scores only itself.
    for (i, w) in wallets.iter().enumerate() {
        let uid = i as u32;
        let weights = if uid == 4 {
            vec![(4, 60_000)]
        } else {
            vec![(0, 100), (1, 300), (2, 200 + 17 * uid as u16), (3, 50)]
        };
        submit(w, 2, Call::SetWeights { uid, weights });
    }
    chain.produce_block(1).expect("block 1");
    let input = epoch_input_json(&chain);
    let path = dir.path().join("state.json");
    std::fs::write(&path, input.to_string()).expect("state file");
    let cli: Value =
        serde_json::from_str(&ok(&deepnode(&["epoch", path.to_str().expect("utf-8")])))
            .expect("epoch JSON");
    chain.produce_block(2).expect("block 2 runs the epoch");
    let s = chain.state();
    assert_eq!(s.epochs, 1);
    let bits = |name: &str, i: usize| cli["bits"][name][i].as_str().expect("bits").to_string();
    for (i, n) in s.neurons.iter().enumerate() {
        let l = &n.last;
        for (name, x) in [
            ("rank", l.rank),
            ("trust", l.trust),
            ("consensus", l.consensus),
            ("incentive", l.incentive),
            ("dividends", l.dividends),
        ] {
            assert_eq!(x.to_bits().to_string(), bits(name, i), "{name}[{i}]");
        }
        assert_eq!(cli["stake"][i], n.stake, "stake[{i}]");
        assert_eq!(cli["emission"][i], l.emission, "emission[{i}]");
        let row: Vec<Value> = s.bonds[i]
            .iter()
            .map(|&(u, v)| serde_json::json!([u, v.to_bits().to_string()]))
            .collect();
        assert_eq!(Value::Array(row), cli["bits"]["bonds"][i], "bonds[{i}]");
    }
    let minted: u64 = s.neurons.iter().map(|n| n.last.emission).sum();
    assert!(minted > 0);
}

/// Loads a running node over RPC, kills it with SIGKILL mid-load, restarts it, and checks
/// that every block and extrinsic it reported as committed is still there; then
/// `deepnode ledger verify` replays the chain. Two rounds.
#[test]
fn kill_9_under_load_loses_nothing_committed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let senders: Vec<Wallet> = (1..=4u8).map(|b| Wallet::from_seed([b; 32])).collect();
    let g = genesis_file(
        dir.path(),
        &serde_json::json!({"tempo": 5, "endowments": senders.iter()
            .map(|w| serde_json::json!([w.account().to_string(), 1_000_000_000u64])).collect::<Vec<_>>()}),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    // (block number, hash) of heads seen, and (extrinsic, block) seen committed.
    let mut heads: Vec<(u64, String)> = Vec::new();
    let mut committed: Vec<(H256, u64)> = Vec::new();
    for round in 0..2u64 {
        let node = NodeProc::spawn(&data, &g, 40);
        let client = Client::new(&node.url).expect("client");
        rt.block_on(async {
            // Everything seen before the previous crash is still there after the restart.
            check(&client, &heads, &committed).await;
            let id = client.genesis_hash().await.expect("genesis");
            let mut pending: Vec<H256> = Vec::new();
            let start = Instant::now();
            let mut sent = 0u64;
            // Load for a while, then kill at an arbitrary point with submissions in flight.
            while start.elapsed() < Duration::from_millis(1500 + 300 * round) {
                for w in &senders {
                    let nonce = client.pending_nonce(w.account()).await.expect("nonce");
                    let to = AccountId([sent as u8; 32]);
                    let ext = Extrinsic::sign(
                        w.key(),
                        &id,
                        nonce,
                        Call::Transfer {
                            to,
                            amount: 1 + sent % 7,
                        },
                    );
                    pending.push(client.submit_hex(ext.to_hex()).await.expect("accepted"));
                    sent += 1;
                }
                let head = client
                    .call("ledger_head", rpc_params![])
                    .await
                    .expect("head");
                heads.push((
                    head["number"].as_u64().expect("n"),
                    head["hash"].as_str().expect("h").to_string(),
                ));
                let mut still = Vec::new();
                for h in pending.drain(..) {
                    let at = client
                        .call("ledger_extrinsic", rpc_params![h.to_string()])
                        .await
                        .expect("lookup");
                    match at["block"].as_u64() {
                        Some(b) => committed.push((h, b)),
                        None => still.push(h),
                    }
                }
                pending = still;
            }
            assert!(committed.len() > 20, "load was committed before the kill");
        });
        node.kill9();
    }
    let node = NodeProc::spawn(&data, &g, 40);
    let client = Client::new(&node.url).expect("client");
    rt.block_on(check(&client, &heads, &committed));
    node.kill9();
    let out = deepnode(&["ledger", "verify", "--data", data.to_str().expect("utf-8")]);
    assert!(ok(&out).starts_with("ok: "), "verify output");
}

async fn check(client: &Client, heads: &[(u64, String)], committed: &[(H256, u64)]) {
    for (n, hash) in heads {
        let b = client
            .call("ledger_block", rpc_params![*n])
            .await
            .expect("block");
        assert_eq!(
            b["header"]["hash"].as_str(),
            Some(hash.as_str()),
            "block {n} survived"
        );
    }
    for (h, block) in committed {
        let at = client
            .call("ledger_extrinsic", rpc_params![h.to_string()])
            .await
            .expect("lookup");
        assert_eq!(at["block"].as_u64(), Some(*block), "extrinsic {h} survived");
    }
}

/// Through the binary: a damaged or empty database, a refused genesis and a FIFO wallet each
/// end in one line on stderr, the right exit code and no file changed or left behind.
#[test]
fn damaged_files_and_bad_inputs_give_one_line_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("chain");
    let data_s = data.to_str().expect("utf-8 path");
    drop(Chain::open(&data, None).expect("a chain"));
    let db = data.join(deepnode_ledger::DB_FILE);
    let bytes = std::fs::read(&db).expect("read");
    let one_line = |out: &Output, code: i32, needle: &str| {
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(code), "stderr: {err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert!(err.contains(needle), "{needle} in {err}");
    };
    for cut in [4096, bytes.len() / 2, 0] {
        std::fs::write(&db, &bytes[..cut]).expect("truncate");
        for args in [
            &["ledger", "verify", "--data", data_s][..],
            &["ledger", "run", "--listen", "127.0.0.1:0", "--data", data_s][..],
        ] {
            one_line(&deepnode(args), 1, "ledger.redb");
            assert_eq!(
                std::fs::read(&db).expect("read").len(),
                cut,
                "file unchanged"
            );
        }
    }
    let genesis = genesis_file(
        dir.path(),
        &serde_json::json!({"controller": {"step": 1, "cap": 2, "floor": 3, "relax_after": 1}}),
    );
    let fresh = dir.path().join("fresh");
    let out = deepnode(&[
        "ledger",
        "run",
        "--listen",
        "127.0.0.1:0",
        "--data",
        fresh.to_str().expect("utf-8"),
        "--genesis",
        genesis.to_str().expect("utf-8"),
    ]);
    one_line(&out, 2, "floor 3 is above its cap 2");
    assert!(!fresh.join(deepnode_ledger::DB_FILE).exists());
    let fifo = dir.path().join("fifo.key");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo")
            .success()
    );
    let out = deepnode(&["wallet", "show", fifo.to_str().expect("utf-8")]);
    one_line(&out, 2, "not a regular file");
}
