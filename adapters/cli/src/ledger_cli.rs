//! `deepnode ledger|wallet|tx|metagraph`: the embedded ledger, its RPC server and its clients.
//! Every error of these commands becomes a [`Failure`] (its exit code: `crate::exit`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::exit::Failure;
use clap::{Args, Subcommand};
use deepnode_ledger::{
    AccountId, Call, Chain, Client, GenesisError, LedgerError, RpcServer, UsageError, Wallet,
    parse_genesis, verify,
};

/// Where the wallet commands find the ledger unless told otherwise.
const DEFAULT_RPC: &str = "http://127.0.0.1:9944";

/// `deepnode ledger ...`
#[derive(Subcommand)]
pub enum LedgerCmd {
    /// Serve the ledger: JSON-RPC on http:// and ws:// (same port), a block every interval.
    Run {
        /// The data directory (created, or resumed from its last committed block).
        #[arg(long)]
        data: PathBuf,
        /// The RPC address (loopback only; port 0 picks a free port).
        #[arg(long, default_value = "127.0.0.1:9944")]
        listen: SocketAddr,
        /// Genesis file (JSON; see the ledger README), used when DIR is new.
        #[arg(long)]
        genesis: Option<PathBuf>,
        /// Milliseconds between blocks.
        #[arg(long, default_value_t = 1000)]
        block_ms: u64,
    },
    /// Replay the chain in DIR from genesis and check every block's hashes (node stopped).
    Verify {
        /// The data directory.
        #[arg(long)]
        data: PathBuf,
    },
}

/// `deepnode wallet ...`
#[derive(Subcommand)]
pub enum WalletCmd {
    /// Create a key file (mode 0600; refuses to overwrite) and print its account.
    New {
        /// The key file to create.
        file: PathBuf,
    },
    /// Print the account (public key) of a key file; the secret is never printed.
    Show {
        /// The key file.
        file: PathBuf,
    },
}

/// `deepnode tx ...`: sign with a key file and submit.
#[derive(Args)]
pub struct TxArgs {
    /// The signer's key file.
    #[arg(long)]
    wallet: PathBuf,
    /// The ledger's RPC URL.
    #[arg(long, default_value = DEFAULT_RPC)]
    rpc: String,
    /// Wait until the extrinsic is in a committed block (without it, an accepted extrinsic is
    /// only pending: a node crash before its block is committed loses it).
    #[arg(long)]
    wait: bool,
    #[command(subcommand)]
    call: TxCmd,
}

/// One extrinsic.
#[derive(Subcommand)]
pub enum TxCmd {
    /// Register a node owned by the wallet.
    Register,
    /// Move free balance to a node's stake.
    Stake {
        /// The node.
        uid: u32,
        /// Raw units.
        amount: u64,
    },
    /// Move a node's stake back to free balance.
    Unstake {
        /// The node.
        uid: u32,
        /// Raw units.
        amount: u64,
    },
    /// Send free balance to another account.
    Transfer {
        /// The receiver (0x + 64 hex digits).
        to: String,
        /// Raw units.
        amount: u64,
    },
    /// Set a node's weights row: entries `UID:WEIGHT`.
    Weights {
        /// The node.
        uid: u32,
        /// `UID:WEIGHT` entries (weight 0..=65535).
        entries: Vec<String>,
    },
    /// Publish a node's network endpoint and the modality it serves.
    Serve {
        /// The node.
        uid: u32,
        /// E.g. 127.0.0.1:7000.
        endpoint: String,
        /// text, image, speech or tensor.
        #[arg(long, default_value = "text", value_parser = parse_modality)]
        modality: u8,
    },
}

/// `deepnode metagraph`
#[derive(Args)]
pub struct MetagraphArgs {
    /// The ledger's RPC URL.
    #[arg(long, default_value = DEFAULT_RPC)]
    rpc: String,
    /// Print the JSON of `ledger_metagraph` instead of a table.
    #[arg(long)]
    json: bool,
}

/// A command's result as the CLI's [`Failure`] (its exit code is chosen in `crate::exit`).
fn finish(res: Result<(), LedgerError>) -> Result<(), Failure> {
    res.map_err(Failure::from)
}

fn runtime() -> Result<tokio::runtime::Runtime, LedgerError> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// Runs `deepnode ledger ...`.
pub fn run_ledger(cmd: LedgerCmd) -> Result<(), Failure> {
    finish(match cmd {
        LedgerCmd::Run {
            data,
            listen,
            genesis,
            block_ms,
        } => serve(&data, listen, genesis.as_deref(), block_ms),
        LedgerCmd::Verify { data } => verify(&data).map(|r| {
            println!(
                "ok: {} blocks (head {}), {} extrinsics and {} epochs replayed; every state root matches",
                r.blocks, r.head, r.extrinsics, r.epochs
            );
        }),
    })
}

fn serve(
    data: &Path,
    listen: SocketAddr,
    genesis: Option<&Path>,
    block_ms: u64,
) -> Result<(), LedgerError> {
    if block_ms == 0 {
        return Err(UsageError::ZeroBlockMs.into());
    }
    let genesis = genesis
        .map(|p| {
            std::fs::read_to_string(p)
                .map_err(|error| GenesisError::Read {
                    path: p.to_path_buf(),
                    error,
                })
                .and_then(|t| parse_genesis(&t))
        })
        .transpose()?;
    let chain = Chain::open(data, genesis.as_ref())?;
    let head = chain.head().number;
    runtime()?.block_on(async move {
        let mut server = RpcServer::start(chain, listen, Duration::from_millis(block_ms)).await?;
        let addr = server.addr();
        println!("deepnode ledger: head {head}; listening on http://{addr} and ws://{addr}");
        use std::io::Write;
        std::io::stdout().flush()?;
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r?,
            _ = term.recv() => {}
            e = server.wait_failure() => return Err(e),
        }
        server.stop().await
    })
}

/// Runs `deepnode wallet ...`.
pub fn run_wallet(cmd: WalletCmd) -> Result<(), Failure> {
    finish(
        match cmd {
            WalletCmd::New { file } => Wallet::generate().and_then(|w| {
                w.save(&file)?;
                println!("{}", w.account());
                Ok(())
            }),
            WalletCmd::Show { file } => Wallet::load(&file).map(|w| println!("{}", w.account())),
        }
        .map_err(LedgerError::from),
    )
}

/// A modality's name to its wire code.
fn parse_modality(s: &str) -> Result<u8, String> {
    deepnode_wire::Modality::from_name(s)
        .map(deepnode_wire::Modality::code)
        .ok_or_else(|| format!("{s:?} is not text, image, speech or tensor"))
}

fn parse_entry(s: &str) -> Result<(u32, u16), LedgerError> {
    let bad = || UsageError::WeightsEntry(s.to_string());
    let (u, w) = s.split_once(':').ok_or_else(bad)?;
    Ok((u.parse().map_err(|_| bad())?, w.parse().map_err(|_| bad())?))
}

/// Runs `deepnode tx ...`: prints the extrinsic hash (and the block with `--wait`).
pub fn run_tx(args: TxArgs) -> Result<(), Failure> {
    finish((|| {
        let wallet = Wallet::load(&args.wallet)?;
        let call = match args.call {
            TxCmd::Register => Call::Register,
            TxCmd::Stake { uid, amount } => Call::AddStake { uid, amount },
            TxCmd::Unstake { uid, amount } => Call::RemoveStake { uid, amount },
            TxCmd::Transfer { to, amount } => Call::Transfer {
                to: to
                    .parse::<AccountId>()
                    .map_err(|error| UsageError::Receiver {
                        to: to.clone(),
                        error,
                    })?,
                amount,
            },
            TxCmd::Weights { uid, entries } => Call::SetWeights {
                uid,
                weights: entries
                    .iter()
                    .map(|e| parse_entry(e))
                    .collect::<Result<_, _>>()?,
            },
            TxCmd::Serve {
                uid,
                endpoint,
                modality,
            } => Call::Serve {
                uid,
                endpoint: endpoint.into_bytes(),
                modality,
            },
        };
        runtime()?.block_on(async {
            let client = Client::new(&args.rpc)?;
            let hash = client.send(wallet.key(), call).await?;
            if args.wait {
                let block = client
                    .wait_committed(&hash, Duration::from_secs(60))
                    .await?;
                println!("{hash} committed in block {block}");
            } else {
                println!(
                    "{hash} pending: accepted, not durable until its block is committed (--wait waits)"
                );
            }
            Ok(())
        })
    })())
}

/// Runs `deepnode metagraph`: a table of uid, stake, rank, trust, consensus, incentive,
/// dividends (and emission, modality, endpoint).
pub fn run_metagraph(args: MetagraphArgs) -> Result<(), Failure> {
    finish(runtime().and_then(|rt| {
        rt.block_on(async {
            let client = Client::new(&args.rpc)?;
            let m = client
                .call("ledger_metagraph", jsonrpsee::rpc_params![])
                .await?;
            if args.json {
                println!("{m}");
                return Ok(());
            }
            println!(
                "block {}  epochs {}  n {}  min_allowed_weights {}",
                m["block"], m["epochs"], m["n"], m["min_allowed_weights"]
            );
            println!(
                "{:>5} {:>16} {:>10} {:>10} {:>10} {:>10} {:>10} {:>12} {:>8}  endpoint",
                "uid",
                "stake",
                "rank",
                "trust",
                "consensus",
                "incentive",
                "dividends",
                "emission",
                "modality"
            );
            let f = |v: &serde_json::Value| v.as_f64().unwrap_or(f64::NAN);
            for n in m["nodes"].as_array().map_or(&[][..], Vec::as_slice) {
                println!(
                    "{:>5} {:>16} {:>10.6} {:>10.6} {:>10.6} {:>10.6} {:>10.6} {:>12} {:>8}  {}",
                    // `Value`'s Display ignores widths: render to strings first.
                    n["uid"].to_string(),
                    n["stake"].to_string(),
                    f(&n["rank"]),
                    f(&n["trust"]),
                    f(&n["consensus"]),
                    f(&n["incentive"]),
                    f(&n["dividends"]),
                    n["emission"].to_string(),
                    n["modality"].as_str().unwrap_or("-"),
                    n["endpoint"].as_str().unwrap_or_default()
                );
            }
            Ok(())
        })
    }))
}
