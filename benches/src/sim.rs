//! `deepnode-bench sim`: scale figures of the simulator, wall time and peak memory of simulated
//! epochs on one core.

use std::time::{Duration, Instant};

use deepnode_sim::{
    Emission, Group, ParamsSpec, Quality, Scenario, SimError, Simulation, Strategy,
};

use crate::rss::peak_rss_mib;

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

/// Runs both sizes (1/10 of each with `quick`) and prints the table.
pub fn run(quick: bool) -> Result<(), String> {
    let scale = if quick { 10 } else { 1 };
    // (nodes, k, epochs, bound, what the bound applies to)
    let cases = [
        (
            1_000_000 / scale,
            32,
            3,
            Duration::from_secs(2),
            Bound::EveryEpoch,
        ),
        (
            10_000 / scale,
            256,
            100 / scale,
            Duration::from_secs(10),
            Bound::Total,
        ),
    ];
    println!(
        "{:>9} {:>5} {:>7} {:>12} {:>9} {:>9} {:>10} {:>10} {:>9} {:>10} {:>9}",
        "nodes",
        "k",
        "epochs",
        "weights",
        "setup s",
        "first s",
        "slowest s",
        "median s",
        "total s",
        "target",
        "peak MiB"
    );
    for (nodes, k, epochs, target, bound) in cases {
        let r: BenchResult = run_bench(nodes, k, epochs).map_err(|e| e.to_string())?;
        let (measured, label) = match bound {
            Bound::EveryEpoch => (r.slowest_epoch, "epoch"),
            Bound::Total => (r.total, "total"),
        };
        println!(
            "{:>9} {:>5} {:>7} {:>12} {:>9.2} {:>9.3} {:>10.3} {:>10.3} {:>9.3} {:>10} {:>9}",
            r.nodes,
            r.k,
            r.epochs,
            r.weights,
            r.setup.as_secs_f64(),
            r.first_epoch.as_secs_f64(),
            r.slowest_epoch.as_secs_f64(),
            r.median_epoch.as_secs_f64(),
            r.total.as_secs_f64(),
            format!(
                "{label}{}{}s",
                if measured <= target { "<" } else { ">" },
                target.as_secs()
            ),
            r.peak_rss_mib
                .map_or("n/a".to_owned(), |m| format!("{m:.0}")),
        );
    }
    println!(
        "first/slowest/median: one epoch inside deepnode_consensus::epoch_in_place (the first \
         allocates every bond row; later ones merge in place); total: the whole loop (rows, \
         epochs, metrics); target: the bound on every epoch (1M nodes) or on the total \
         (100 epochs); peak MiB: the process so far"
    );
    Ok(())
}

/// What a benchmark target bounds.
#[derive(Clone, Copy)]
enum Bound {
    /// Every epoch of the run, the first (cold) one included.
    EveryEpoch,
    /// The whole run.
    Total,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_times_the_requested_population() {
        let r = run_bench(2_000, 8, 3).unwrap();
        assert_eq!((r.nodes, r.k, r.epochs), (2_000, 8, 3));
        // Every node weights k peers (the self-weight is allowed but never chosen twice).
        assert_eq!(r.weights, 2_000 * 8);
        assert!(r.consensus <= r.total, "{r:?}");
        // Per-epoch times: the first is one of them, and none exceeds the slowest.
        assert!(r.first_epoch <= r.slowest_epoch, "{r:?}");
        assert!(r.median_epoch <= r.slowest_epoch, "{r:?}");
        assert!(r.slowest_epoch <= r.consensus, "{r:?}");
        assert!(
            r.first_epoch + r.median_epoch <= r.consensus,
            "3 epochs: {r:?}"
        );
        if cfg!(target_os = "linux") {
            assert!(r.peak_rss_mib.is_some_and(|m| m > 0.0));
        }
    }
}
