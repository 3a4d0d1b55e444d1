//! `deepnode bench`: one epoch on a synthetic network, both backends in the same run, with
//! the float path as the baseline; peak resident memory from the kernel (Linux).
//!
//! Two ways of running an epoch are timed: `cold`, the `Vec` API on a state with no bonds
//! (every output freshly allocated, as a one-shot `deepnode epoch` does), and `steady`,
//! `epoch_in_place` on buffers kept from the previous epoch with that epoch's bonds (as the
//! ledger and the simulator run epoch after epoch).

use std::time::{Duration, Instant};

use deepnode_consensus::{Fx, OutputBuffers, Scalar, epoch, epoch_in_place};
use deepnode_sim::bench::peak_rss_mib;
use deepnode_testkit::synthetic::network;
use deepnode_types::FromRatio;

/// Runs and prints the table.
pub fn run(n: usize, k: usize, epochs: usize) -> Result<(), String> {
    if n == 0 || epochs == 0 {
        return Err("bench: --n and --epochs must be at least 1".into());
    }
    let weights = n.saturating_mul(k.min(n));
    println!(
        "epoch on n = {n}, k = {} ({weights} non-zero weights), median of {epochs}",
        k.min(n)
    );
    let float = time::<f64>(n, k, epochs)?;
    let fixed = time::<Fx>(n, k, epochs)?;
    println!(
        "{:<8} {:<7} {:>12} {:>14} {:>14}",
        "backend", "run", "ms/epoch", "ns/weight", "vs float"
    );
    for (name, t) in [("float", float), ("fixed", fixed)] {
        for (run, d, base) in [
            ("cold", t.cold, float.cold),
            ("steady", t.steady, float.steady),
        ] {
            let ns = d.as_nanos() as f64 / weights.max(1) as f64;
            println!(
                "{name:<8} {run:<7} {:>12.1} {:>14.2} {:>13.2}x",
                d.as_secs_f64() * 1e3,
                ns,
                d.as_secs_f64() / base.as_secs_f64()
            );
        }
    }
    match peak_rss_mib() {
        Some(mib) => println!("peak resident memory: {mib:.0} MiB (process, both backends)"),
        None => println!("peak resident memory: not available on this platform"),
    }
    Ok(())
}

/// Median epoch times of one backend.
#[derive(Clone, Copy)]
struct Times {
    cold: Duration,
    steady: Duration,
}

fn time<N: Scalar + FromRatio>(n: usize, k: usize, epochs: usize) -> Result<Times, String> {
    let state = network::<N>(n, k, 7);
    let fail = |e| format!("bench: {e}");
    let mut cold = Vec::with_capacity(epochs);
    for _ in 0..epochs {
        let start = Instant::now();
        let out = epoch(&state).map_err(fail)?;
        cold.push(start.elapsed());
        drop(out);
    }
    // Steady state: one warm-up epoch fills the bonds and the buffers, then each timed epoch
    // merges into the previous epoch's bonds.
    let mut bonds = vec![Vec::new(); n];
    let mut out = OutputBuffers::<N>::new(n);
    let mut steady = Vec::with_capacity(epochs);
    for round in 0..=epochs {
        let start = Instant::now();
        epoch_in_place(
            &state.params,
            &state.stake,
            &state.weights,
            &mut bonds,
            out.outputs(),
        )
        .map_err(fail)?;
        if round > 0 {
            steady.push(start.elapsed());
        }
    }
    Ok(Times {
        cold: median(cold),
        steady: median(steady),
    })
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}
