//! `deepnode bench`: one epoch on a synthetic network, both backends in the same run, with
//! the float path as the baseline; peak resident memory from the kernel (Linux).

use std::time::{Duration, Instant};

use deepnode_conformance::synthetic::network;
use deepnode_consensus::{Fx, Scalar, epoch};
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
        "{:<8} {:>12} {:>14} {:>14}",
        "backend", "ms/epoch", "ns/weight", "vs float"
    );
    for (name, t) in [("float", float), ("fixed", fixed)] {
        let ns = t.as_nanos() as f64 / weights.max(1) as f64;
        let ratio = t.as_secs_f64() / float.as_secs_f64();
        println!(
            "{name:<8} {:>12.1} {:>14.2} {:>13.2}x",
            t.as_secs_f64() * 1e3,
            ns,
            ratio
        );
    }
    match peak_rss_mib() {
        Some(mib) => println!("peak resident memory: {mib:.0} MiB (process, both backends)"),
        None => println!("peak resident memory: not available on this platform"),
    }
    Ok(())
}

fn time<N: Scalar + FromRatio>(n: usize, k: usize, epochs: usize) -> Result<Duration, String> {
    let state = network::<N>(n, k, 7);
    let mut times = Vec::with_capacity(epochs);
    for _ in 0..epochs {
        let start = Instant::now();
        let out = epoch(&state).map_err(|e| format!("bench: {e}"))?;
        times.push(start.elapsed());
        drop(out);
    }
    times.sort();
    Ok(times[times.len() / 2])
}

/// `VmHWM` of /proc/self/status, in MiB.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
