//! Scale figures of the simulator: wall time and peak memory of simulated epochs on one core.

use std::time::{Duration, Instant};

use crate::SimError;
use crate::engine::Simulation;
use crate::scenario::{Emission, Group, ParamsSpec, Quality, Scenario, Strategy};

/// One measured configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchResult {
    /// Nodes.
    pub nodes: u32,
    /// Weights per row.
    pub k: u32,
    /// Epochs run.
    pub epochs: u32,
    /// Non-zero weights submitted in the last epoch.
    pub weights: usize,
    /// Building the population and the first rows.
    pub setup: Duration,
    /// Time inside `deepnode_consensus::epoch_in_place`, all epochs.
    pub consensus: Duration,
    /// The first epoch inside the crate (it allocates every bond row).
    pub first_epoch: Duration,
    /// The slowest epoch inside the crate.
    pub slowest_epoch: Duration,
    /// The median epoch inside the crate.
    pub median_epoch: Duration,
    /// The whole loop (rows, epoch, metrics), all epochs.
    pub total: Duration,
    /// Peak resident memory of the process so far (Linux `VmHWM`), in MiB.
    pub peak_rss_mib: Option<f64>,
}

/// The benchmark population: `nodes` honest nodes of quality U(0, 1), each weighting `k`
/// peers chosen from a sample of `2k`; rows are estimated once (refresh 0); float backend.
pub fn bench_scenario(nodes: u32, k: u32, epochs: u32) -> Scenario {
    Scenario {
        name: format!("bench-{nodes}x{k}"),
        epochs,
        seed: 7,
        params: ParamsSpec::default(),
        emission: Emission::Fixed(1_000_000_000),
        controller: None,
        groups: vec![Group {
            name: "honest".into(),
            count: nodes,
            stake: 1_000_000,
            quality: Quality::Uniform {
                low: 0.0,
                high: 1.0,
            },
            strategy: Strategy::Honest {
                top_k: k,
                noise: 0.1,
                sample: k.saturating_mul(2),
                refresh: 0,
            },
            active_at_start: true,
        }],
        events: Vec::new(),
    }
}

/// Runs [`bench_scenario`] and times it.
pub fn run_bench(nodes: u32, k: u32, epochs: u32) -> Result<BenchResult, SimError> {
    let start = Instant::now();
    let mut sim = Simulation::<f64>::new(bench_scenario(nodes, k, epochs))?;
    sim.prepare();
    let setup = start.elapsed();
    let start = Instant::now();
    sim.run(|_| {})?;
    let total = start.elapsed();
    let weights = sim.state().weights.iter().map(Vec::len).sum();
    let mut times = sim.epoch_times().to_vec();
    let first_epoch = times.first().copied().unwrap_or_default();
    times.sort();
    Ok(BenchResult {
        first_epoch,
        slowest_epoch: times.last().copied().unwrap_or_default(),
        median_epoch: times.get(times.len() / 2).copied().unwrap_or_default(),
        nodes,
        k,
        epochs,
        weights,
        setup,
        consensus: sim.epoch_time(),
        total,
        peak_rss_mib: peak_rss_mib(),
    })
}

/// `VmHWM` of /proc/self/status, in MiB (None off Linux).
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
