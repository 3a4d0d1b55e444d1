//! `deepnode node run` through the real binary: two node processes on a `deepnode ledger run`
//! process find each other and set weights; bad input is one line and an exit code.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use deepnode_ledger::{Client, Wallet};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_deepnode"))
}

/// Kills the child when dropped, so that no test leaks a process.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn two_node_processes_set_weights_on_a_ledger_process() {
    let dir = tempfile::tempdir().expect("tempdir");
    let wallets: Vec<_> = (1..=2u8)
        .map(|b| {
            let w = Wallet::from_seed([b; 32]);
            let path = dir.path().join(format!("node{b}.key"));
            w.save(&path).expect("save wallet");
            (w, path)
        })
        .collect();
    let endowments: Vec<_> = wallets
        .iter()
        .map(|(w, _)| serde_json::json!([w.account().to_string(), 1_000_000]))
        .collect();
    let genesis = serde_json::json!({
        "tempo": 5, "weights_rate_limit": 2, "endowments": endowments,
        "controller": {"step": 1, "cap": 1, "floor": 1, "relax_after": 16},
    });
    let genesis_path = dir.path().join("genesis.json");
    std::fs::write(&genesis_path, genesis.to_string()).expect("genesis");
    let mut ledger = Proc(
        bin()
            .args([
                "ledger",
                "run",
                "--listen",
                "127.0.0.1:0",
                "--block-ms",
                "50",
                "--data",
            ])
            .arg(dir.path().join("chain"))
            .arg("--genesis")
            .arg(&genesis_path)
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the ledger"),
    );
    let mut line = String::new();
    BufReader::new(ledger.0.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("first line");
    let url = format!(
        "http://{}",
        line.split("http://")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .expect("address")
    );
    let nodes: Vec<Proc> = wallets
        .iter()
        .map(|(_, path)| {
            Proc(
                bin()
                    .args([
                        "node",
                        "run",
                        "--rpc",
                        &url,
                        "--stake",
                        "500",
                        "--query-ms",
                        "100",
                        "--wallet",
                    ])
                    .arg(path)
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("spawn a node"),
            )
        })
        .collect();
    let client = Client::new(&url).expect("client");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let started = Instant::now();
    loop {
        let mg = rt.block_on(client.metagraph()).ok();
        if let Some(mg) = &mg
            && mg.n == 2
            && mg
                .nodes
                .iter()
                .all(|n| n.weights_block.is_some() && !n.endpoint.is_empty() && n.stake >= 500)
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no weights after 60 s: {mg:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Each node prints status lines (stdout is not a terminal: plain lines). Read while it
    // runs: a node may set its weights before its first status line.
    for mut node in nodes {
        let stdout = node.0.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut out = String::new();
            let _ = BufReader::new(stdout).read_line(&mut out);
            let _ = tx.send(out);
        });
        let out = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("a status line within 30 s");
        let _ = node.0.kill();
        assert!(out.starts_with("deepnode node: uid "), "{out}");
    }
}

#[test]
fn bad_input_is_one_line_and_an_exit_code() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = bin()
        .args(["node", "run", "--wallet"])
        .arg(dir.path().join("missing.key"))
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("deepnode: ") && err.trim().lines().count() == 1,
        "{err}"
    );

    let key = dir.path().join("a.key");
    Wallet::from_seed([3; 32]).save(&key).expect("save");
    // Nothing listens on port 9 of loopback: the ledger cannot be reached.
    let out = bin()
        .args(["node", "run", "--rpc", "http://127.0.0.1:9", "--wallet"])
        .arg(&key)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("deepnode: ledger") && err.trim().lines().count() == 1,
        "{err}"
    );
}

#[test]
fn bad_serving_limits_are_one_line_and_exit_code_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("a.key");
    Wallet::from_seed([3; 32]).save(&key).expect("save");
    for (flag, value, want) in [
        (
            "--max-sessions",
            "0",
            "deepnode: --max-sessions: must be at least 1",
        ),
        (
            "--send-timeout-ms",
            "0",
            "deepnode: --send-timeout-ms: must be more than 0",
        ),
        (
            "--max-sessions-per-account",
            "many",
            "deepnode: invalid value 'many'",
        ),
    ] {
        // Checked before the ledger is called: nothing listens on port 9.
        let out = bin()
            .args([
                "node",
                "run",
                "--rpc",
                "http://127.0.0.1:9",
                flag,
                value,
                "--wallet",
            ])
            .arg(&key)
            .output()
            .expect("runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {err}");
        assert!(
            err.starts_with(want) && err.trim().lines().count() == 1,
            "{flag} {value}: {err}"
        );
    }
}
