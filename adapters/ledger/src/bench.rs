//! `deepnode-bench ledger`: sustained extrinsics per second with signature checks, the time
//! to produce a block of 1,000 extrinsics, and an epoch at `n` nodes inside the ledger. Runs
//! on a throwaway data directory under the system temp dir.

use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use deepnode_ledger_client::{AccountId, Call, Extrinsic, H256, Wallet};
use parity_scale_codec::Encode;

use crate::block::Event;
use crate::chain::Chain;
use crate::error::{LedgerError, UsageError, VerifyFailure};
use crate::state::Genesis;

/// The measured figures.
#[derive(Clone, Debug)]
pub struct BenchReport {
    /// Extrinsics in the throughput run.
    pub extrinsics: usize,
    /// Wall time to decode, verify, apply and commit them (blocks of 1,000).
    pub throughput_time: Duration,
    /// Of which in `produce_block` (state root, fsync'd commit).
    pub commit_time: Duration,
    /// Decode + verify + apply of 1,000 transfers.
    pub block_apply: Duration,
    /// `produce_block` of those 1,000.
    pub block_produce: Duration,
    /// Nodes and weights per row in the epoch run.
    pub nodes: u32,
    /// Weights per row.
    pub k: u32,
    /// `end_block` running the epoch (conversion, consensus crate, write-back, controller).
    pub epoch: Duration,
    /// `produce_block` of the epoch block (epoch, state root, commit).
    pub epoch_block: Duration,
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let per_s = self.extrinsics as f64 / self.throughput_time.as_secs_f64();
        writeln!(
            f,
            "throughput: {} signed transfers (decode + ed25519 verify + apply + commit, blocks of 1,000) in {:.3} s = {:.0} extrinsics/s (commits {:.3} s)",
            self.extrinsics,
            self.throughput_time.as_secs_f64(),
            per_s,
            self.commit_time.as_secs_f64()
        )?;
        writeln!(
            f,
            "block of 1,000 extrinsics: apply {:.1} ms + produce/commit {:.1} ms = {:.1} ms",
            ms(self.block_apply),
            ms(self.block_produce),
            ms(self.block_apply + self.block_produce)
        )?;
        write!(
            f,
            "epoch at {} nodes, {} weights per row: {:.1} ms in end_block; epoch block produced and committed in {:.1} ms",
            self.nodes,
            self.k,
            ms(self.epoch),
            ms(self.epoch_block)
        )
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A temp data dir removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Result<TempDir, LedgerError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let p = std::env::temp_dir().join(format!(
            "deepnode-ledger-bench-{tag}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&p)?;
        Ok(TempDir(p))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // Best effort: a leftover temp dir is harmless.
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn wallet(i: u32) -> Wallet {
    let mut seed = [0u8; 32];
    seed[..4].copy_from_slice(&i.to_le_bytes());
    seed[31] = 0xbe;
    Wallet::from_seed(seed)
}

/// Runs all three measurements.
pub fn run(extrinsics: usize, nodes: u32, k: u32) -> Result<BenchReport, LedgerError> {
    if extrinsics == 0 || nodes == 0 {
        return Err(UsageError::ZeroBench.into());
    }
    let (throughput_time, commit_time) = throughput(extrinsics)?;
    let (block_apply, block_produce) = block_of(1000)?;
    let (epoch, epoch_block) = epoch_at(nodes, k.min(nodes))?;
    Ok(BenchReport {
        extrinsics,
        throughput_time,
        commit_time,
        block_apply,
        block_produce,
        nodes,
        k: k.min(nodes),
        epoch,
        epoch_block,
    })
}

/// Signed transfers from 100 accounts, pre-signed (signing is the wallet's cost).
fn transfers(chain_id: &H256, count: usize) -> Vec<Vec<u8>> {
    let senders: Vec<Wallet> = (0..100).map(wallet).collect();
    let to = AccountId([7; 32]);
    (0..count)
        .map(|i| {
            let w = &senders[i % senders.len()];
            let nonce = (i / senders.len()) as u64;
            Extrinsic::sign(w.key(), chain_id, nonce, Call::Transfer { to, amount: 1 }).encode()
        })
        .collect()
}

fn endowed(count: u32) -> Genesis {
    let mut g = Genesis::default();
    g.config.max_nodes = count.max(1);
    g.config.tempo = 1_000_000;
    g.endowments = (0..count.max(100))
        .map(|i| (wallet(i).account(), 1 << 50))
        .collect();
    g
}

fn throughput(count: usize) -> Result<(Duration, Duration), LedgerError> {
    let dir = TempDir::new("tps")?;
    let mut chain = Chain::open(&dir.0, Some(&endowed(100)))?;
    let txs = transfers(&chain.genesis_hash(), count);
    let mut commit = Duration::ZERO;
    let start = Instant::now();
    for (i, tx) in txs.iter().enumerate() {
        chain.submit(tx)?;
        if (i + 1) % 1000 == 0 || i + 1 == txs.len() {
            let t = Instant::now();
            chain.produce_block(0)?;
            commit += t.elapsed();
        }
    }
    Ok((start.elapsed(), commit))
}

fn block_of(count: usize) -> Result<(Duration, Duration), LedgerError> {
    let dir = TempDir::new("block")?;
    let mut chain = Chain::open(&dir.0, Some(&endowed(100)))?;
    let txs = transfers(&chain.genesis_hash(), count);
    let start = Instant::now();
    for tx in &txs {
        chain.submit(tx)?;
    }
    let apply = start.elapsed();
    let t = Instant::now();
    chain.produce_block(0)?;
    Ok((apply, t.elapsed()))
}

fn epoch_at(n: u32, k: u32) -> Result<(Duration, Duration), LedgerError> {
    let dir = TempDir::new("epoch")?;
    let mut g = endowed(n);
    g.config.tempo = 3;
    g.config.max_block_extrinsics = n.saturating_mul(2).max(1000);
    let mut chain = Chain::open(&dir.0, Some(&g))?;
    let id = chain.genesis_hash();
    // Block 1: every node registers and stakes; block 2: every node sets k weights on a
    // deterministic pseudo-random set of peers; block 3 runs the epoch.
    for i in 0..n {
        let w = wallet(i);
        chain.submit_verified(Extrinsic::sign(w.key(), &id, 0, Call::Register))?;
        let amount = 1_000 + u64::from(i % 97) * 10;
        chain.submit_verified(Extrinsic::sign(
            w.key(),
            &id,
            1,
            Call::AddStake { uid: i, amount },
        ))?;
    }
    chain.produce_block(0)?;
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for i in 0..n {
        let mut row: Vec<(u32, u16)> = Vec::with_capacity(k as usize);
        let start = (x % u64::from(n)) as u32;
        for j in 0..k {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            row.push(((start + j) % n, 1 + (x % 65_535) as u16));
        }
        let w = wallet(i);
        chain.submit_verified(Extrinsic::sign(
            w.key(),
            &id,
            2,
            Call::SetWeights {
                uid: i,
                weights: row,
            },
        ))?;
    }
    chain.produce_block(0)?;
    // The pool is empty: the epoch block starts from the committed state.
    let mut probe = chain.state().clone();
    probe.block += 1;
    let t = Instant::now();
    let events = probe.end_block();
    let epoch = t.elapsed();
    if !matches!(events.as_slice(), [Event::Epoch { .. }]) {
        return Err(LedgerError::Verify {
            block: probe.block,
            reason: VerifyFailure::NoEpoch(events),
        });
    }
    let t = Instant::now();
    chain.produce_block(0)?;
    Ok((epoch, t.elapsed()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_bench_runs_every_part() {
        let r = run(300, 16, 4).expect("bench");
        assert_eq!((r.nodes, r.k, r.extrinsics), (16, 4, 300));
        assert!(r.epoch > Duration::ZERO && r.throughput_time >= r.commit_time);
        assert!(r.to_string().contains("extrinsics/s"));
    }
}
