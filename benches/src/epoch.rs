//! `deepnode-bench epoch`: one epoch on a synthetic network, both backends (and optionally the
//! numpy + scipy.sparse baseline of `benches/baseline/numpy_epoch.py`) in the same run, in
//! alternating rounds; peak resident memory of each phase from the kernel (Linux).
//!
//! Two ways of running an epoch are timed: `cold`, the `Vec` API on a state with no bonds
//! (every output freshly allocated, as a one-shot `deepnode epoch` does), and `steady`,
//! `epoch_in_place` on buffers kept from the previous epoch with that epoch's bonds (as the
//! ledger and the simulator run epoch after epoch).
//!
//! With `--yuma3` each round also times the same network under Yuma 3 (SPEC.md §10;
//! [`yuma3_rule`]), both backends, cold and steady, each against the paper's float epoch of
//! the same round, and with a baseline also the baseline's Yuma 3 on it (`yuma3/numpy`), its
//! outputs checked against the float Yuma 3 epoch's.

use std::io::Write;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use deepnode_consensus::{BondMode, Fx, OutputBuffers, Scalar, State, epoch, epoch_in_place};
use deepnode_testkit::synthetic::network;
use deepnode_types::FromRatio;

use crate::rss::{peak_rss_mib, reset_peak};

/// What `deepnode-bench epoch` runs.
pub struct EpochArgs {
    /// Nodes.
    pub n: usize,
    /// Non-zero weights per row (capped at `n`).
    pub k: usize,
    /// Epochs timed per backend and round (the median is kept).
    pub epochs: usize,
    /// Rounds of (float, fixed, baseline); the median over rounds is reported.
    pub rounds: usize,
    /// The numpy baseline script, run with `python3` each round when given.
    pub baseline: Option<PathBuf>,
    /// Also time `Parallel` on this many threads against one core, both backends,
    /// alternated epoch by epoch (needs the feature `parallel`).
    pub threads: Option<NonZeroUsize>,
    /// Also time the same network under Yuma 3 ([`yuma3_rule`]), both backends, each round.
    pub yuma3: bool,
}

/// The mechanism an epoch is timed under.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mechanism {
    /// The synthetic network's own rule: the paper's mechanism, cumulative bonds.
    Paper,
    /// [`yuma3_rule`].
    Yuma3,
}

/// The Yuma 3 rule `--yuma3` times: subtensor's default `bonds_moving_average` of 0.9, no
/// bonds penalty, liquid alpha off (the rule of `examples/state-yuma3.json` without liquid
/// alpha).
pub fn yuma3_rule<N: Scalar + FromRatio>() -> BondMode<N> {
    BondMode::Yuma3 {
        bonds_moving_average: N::ratio(9, 10),
        bonds_penalty: N::ZERO,
        liquid_alpha: None,
    }
}

/// The largest difference allowed between the baseline's and the float epoch's normalised
/// outputs (SPEC.md's bound between backends).
const AGREE: f64 = 1e-6;

/// The seed of the synthetic network (the same for every backend and the baseline).
const SEED: u64 = 7;

/// Runs and prints the table.
pub fn run(args: &EpochArgs) -> Result<(), String> {
    let &EpochArgs {
        n,
        k,
        epochs,
        rounds,
        ..
    } = args;
    if n == 0 || epochs == 0 || rounds == 0 {
        return Err("epoch: --n, --epochs and --rounds must be at least 1".into());
    }
    if args.threads.is_some() && !cfg!(feature = "parallel") {
        return Err("epoch: --threads needs a build with --features parallel".into());
    }
    let weights = n.saturating_mul(k.min(n));
    println!(
        "epoch on n = {n}, k = {} ({weights} non-zero weights): {rounds} round(s) of \
         (float, fixed{}{}), each the median of {epochs} epochs; load average {}",
        k.min(n),
        if args.yuma3 {
            ", yuma3/float, yuma3/fixed"
        } else {
            ""
        },
        if args.baseline.is_some() {
            ", numpy"
        } else {
            ""
        },
        load_average()
    );
    let bandwidth = copy_bandwidth();
    println!(
        "memory bandwidth (streaming copy of {} MiB, read + write bytes, best of 5): {:.1} GB/s",
        COPY_BYTES >> 20,
        bandwidth / 1e9
    );
    let workload = match &args.baseline {
        Some(_) => {
            let path =
                std::env::temp_dir().join(format!("deepnode-bench-{}.dnw", std::process::id()));
            write_workload(&network::<f64>(n, k, SEED), &path)?;
            Some(path)
        }
        None => None,
    };
    // The same network under Yuma 3 for the baseline, when both are asked for.
    let yuma3_workload = match (&workload, args.yuma3) {
        (Some(path), true) => {
            let path = path.with_extension("yuma3.dnw");
            let mut state = network::<f64>(n, k, SEED);
            state.params.bonds = yuma3_rule();
            write_workload(&state, &path)?;
            Some(path)
        }
        _ => None,
    };
    let mut float = Vec::new();
    let mut fixed = Vec::new();
    let mut numpy = Vec::new();
    let mut yuma3 = [Vec::new(), Vec::new()];
    let mut numpy_yuma3 = Vec::new();
    let mut agreement = None;
    let mut agreement_yuma3 = None;
    #[cfg_attr(
        not(feature = "parallel"),
        allow(unused_mut, reason = "filled only with the feature `parallel`")
    )]
    let mut scaling: Vec<[Pair; 2]> = Vec::new();
    let result = (|| {
        for _ in 0..rounds {
            let (t, out) = time::<f64>(n, k, epochs, Mechanism::Paper)?;
            float.push(t);
            fixed.push(time::<Fx>(n, k, epochs, Mechanism::Paper)?.0);
            if args.yuma3 {
                let (t, out) = time::<f64>(n, k, epochs, Mechanism::Yuma3)?;
                yuma3[0].push(t);
                yuma3[1].push(time::<Fx>(n, k, epochs, Mechanism::Yuma3)?.0);
                if let (Some(script), Some(path)) = (&args.baseline, &yuma3_workload) {
                    let (t, diff) = run_baseline(script, path, epochs, &out)?;
                    numpy_yuma3.push(t);
                    agreement_yuma3 = Some(diff);
                }
            }
            if let (Some(script), Some(path)) = (&args.baseline, &workload) {
                let (t, diff) = run_baseline(script, path, epochs, &out)?;
                numpy.push(t);
                agreement = Some(diff);
            }
            #[cfg(feature = "parallel")]
            if let Some(threads) = args.threads {
                scaling.push([
                    time_threads::<f64>(n, k, epochs, threads)?,
                    time_threads::<Fx>(n, k, epochs, threads)?,
                ]);
            }
        }
        Ok::<(), String>(())
    })();
    for path in workload.iter().chain(&yuma3_workload) {
        let _ = std::fs::remove_file(path);
        let _ = std::fs::remove_file(path.with_extension("out"));
    }
    result?;
    let float = Times::median(&float);
    let fixed = Times::median(&fixed);
    println!(
        "times: {} (numpy: time.thread_time)",
        if thread_cpu_ns().is_some() {
            "on-CPU time of the epoch's thread (/proc/thread-self/schedstat; wall under 50 ms)"
        } else {
            "wall time"
        }
    );
    if args.yuma3 {
        println!(
            "yuma3/*: the same network under Yuma 3 (bonds_moving_average 0.9, bonds_penalty 0, \
             no liquid alpha); vs float: against the paper's float epoch; numpy/this: against \
             the baseline's Yuma 3 (yuma3/numpy)"
        );
    }
    println!(
        "{:<11} {:<7} {:>10} {:>10} {:>9} {:>11} {:>8} {:>7} {:>9}",
        "backend",
        "run",
        "ms/epoch",
        "ns/weight",
        "vs float",
        "numpy/this",
        "GB/s",
        "of bw",
        "peak MiB"
    );
    let numpy_t = (!numpy.is_empty()).then(|| Times::median(&numpy));
    let mut rows = vec![
        ("float", float, Some(f64_bytes())),
        ("fixed", fixed, Some(fx_bytes())),
    ];
    if let Some(t) = numpy_t {
        rows.push(("numpy", t, None));
    }
    let [y_float, y_fixed] = yuma3;
    let numpy_y = (!numpy_yuma3.is_empty()).then(|| Times::median(&numpy_yuma3));
    if !y_float.is_empty() {
        rows.push(("yuma3/float", Times::median(&y_float), None));
        rows.push(("yuma3/fixed", Times::median(&y_fixed), None));
    }
    if let Some(t) = numpy_y {
        rows.push(("yuma3/numpy", t, None));
    }
    for (name, t, bytes) in rows {
        // The Yuma 3 rows against the baseline's Yuma 3 epoch.
        let numpy_t = if name.starts_with("yuma3") {
            numpy_y
        } else {
            numpy_t
        };
        for (run, d, base, np) in [
            ("cold", t.cold, float.cold, numpy_t.map(|t| t.cold)),
            ("steady", t.steady, float.steady, numpy_t.map(|t| t.steady)),
        ] {
            let secs = d.as_secs_f64();
            let ns = secs * 1e9 / weights.max(1) as f64;
            let vs_numpy = np.map_or("-".to_string(), |np| {
                format!("{:.2}x", np.as_secs_f64() / secs)
            });
            let (gbs, frac) = match bytes {
                Some(b) if run == "steady" => {
                    let rate = b * weights as f64 / secs;
                    (
                        format!("{:.1}", rate / 1e9),
                        format!("{:.0}%", 100.0 * rate / bandwidth),
                    )
                }
                _ => ("-".into(), "-".into()),
            };
            let peak = t.peak_mib.map_or("-".into(), |m| format!("{m:.0}"));
            println!(
                "{name:<11} {run:<7} {:>10.3} {:>10.2} {:>8.2}x {vs_numpy:>11} {gbs:>8} {frac:>7} {peak:>9}",
                secs * 1e3,
                ns,
                secs / base.as_secs_f64(),
            );
        }
    }
    if let (Some(threads), false) = (args.threads, scaling.is_empty()) {
        print_scaling(threads, epochs, rounds, &scaling);
    }
    for (what, diff) in [("", agreement), ("Yuma 3 ", agreement_yuma3)] {
        let Some(diff) = diff else { continue };
        println!("numpy and float {what}outputs (last steady epoch) differ by at most {diff:.1e}");
        if diff > AGREE {
            return Err(format!(
                "epoch: the baseline's {what}outputs differ from the float epoch's by {diff:e} (more than {AGREE:e}): not the same math"
            ));
        }
    }
    println!(
        "bytes per weight (steady, cumulative bonds): float {}, fixed {} (see README); load average {}",
        f64_bytes(),
        fx_bytes(),
        load_average()
    );
    if peak_rss_mib().is_none() {
        println!("peak resident memory: not available on this platform");
    }
    Ok(())
}

/// Bytes a steady float epoch moves per non-zero weight: the traffic model of
/// `epoch_in_place` (`crates/consensus/docs/memory.md`), at the entries' in-memory sizes.
/// Pass 1 reads each weight and each bond entry (checks, rank, trust); pass 2 reads each
/// weight again and reads and writes each bond entry (the update); pass 3 reads each bond entry
/// (dividends). The `n`-long column arrays
/// are not counted (at n = 4096 they stay in cache; at n = 1,000,000 they are random accesses
/// whose cost is latency more than bytes).
fn f64_bytes() -> f64 {
    model_bytes(size_of::<(u32, u16)>(), size_of::<(u32, f64)>())
}

/// As [`f64_bytes`], for [`Fx`] bonds.
fn fx_bytes() -> f64 {
    model_bytes(size_of::<(u32, u16)>(), size_of::<(u32, Fx)>())
}

fn model_bytes(weight: usize, bond: usize) -> f64 {
    (2 * weight + 4 * bond) as f64
}

/// Median epoch times of one backend in one round, and the phase's peak resident memory.
#[derive(Clone, Copy)]
struct Times {
    cold: Duration,
    steady: Duration,
    peak_mib: Option<f64>,
}

impl Times {
    fn median(rounds: &[Times]) -> Times {
        Times {
            cold: median(rounds.iter().map(|t| t.cold).collect()),
            steady: median(rounds.iter().map(|t| t.steady).collect()),
            peak_mib: rounds.iter().filter_map(|t| t.peak_mib).reduce(f64::max),
        }
    }
}

/// Times one backend under `mechanism`; returns its times and the outputs of its last steady
/// epoch.
fn time<N: Scalar + FromRatio>(
    n: usize,
    k: usize,
    epochs: usize,
    mechanism: Mechanism,
) -> Result<(Times, OutputBuffers<N>), String> {
    reset_peak();
    let mut state = network::<N>(n, k, SEED);
    if mechanism == Mechanism::Yuma3 {
        state.params.bonds = yuma3_rule();
    }
    let fail = |e| format!("epoch: {e}");
    let mut cold = Vec::with_capacity(epochs);
    for _ in 0..epochs {
        let start = Clock::now();
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
        let start = Clock::now();
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
    let times = Times {
        cold: median(cold),
        steady: median(steady),
        peak_mib: peak_rss_mib(),
    };
    Ok((times, out))
}

/// Median wall times of one backend in one round: one core against `Parallel`.
#[derive(Clone, Copy)]
struct Pair {
    cold: [Duration; 2],
    steady: [Duration; 2],
    /// The process's CPU time over the wall time of the steady epochs: the cores each side
    /// actually had (below the thread count on a busy machine).
    cores: [f64; 2],
}

/// Times one backend on one core (`epoch`, `epoch_in_place`) and on `threads` threads
/// (`Parallel::epoch`, `Parallel::epoch_in_place`), alternated epoch by epoch, by the wall
/// clock (the threads' time is what a caller waits for). The steady epochs share one set of
/// bonds and buffers, so both runners see the same rows.
#[cfg(feature = "parallel")]
fn time_threads<N: Scalar + FromRatio + Send + Sync>(
    n: usize,
    k: usize,
    epochs: usize,
    threads: NonZeroUsize,
) -> Result<Pair, String> {
    use deepnode_consensus::Parallel;

    let state = network::<N>(n, k, SEED);
    let fail = |e| format!("epoch: {e}");
    let mut par = Parallel::<N>::new(threads);
    let mut cold = [Vec::new(), Vec::new()];
    for _ in 0..epochs {
        let start = Instant::now();
        drop(epoch(&state).map_err(fail)?);
        cold[0].push(start.elapsed());
        let start = Instant::now();
        drop(par.epoch(&state).map_err(fail)?);
        cold[1].push(start.elapsed());
    }
    let mut bonds = vec![Vec::new(); n];
    let mut out = OutputBuffers::<N>::new(n);
    // Side 0: one core; side 1: the threads. Both update the same bonds and buffers.
    let mut run = |side: usize| -> Result<(), String> {
        let (params, stake, weights) = (&state.params, &state.stake, &state.weights);
        match side {
            0 => epoch_in_place(params, stake, weights, &mut bonds, out.outputs()),
            _ => par.epoch_in_place(params, stake, weights, &mut bonds, out.outputs()),
        }
        .map(drop)
        .map_err(fail)
    };
    // One warm-up epoch each (bonds, buffers, the runner's partial sums).
    run(0)?;
    run(1)?;
    let mut steady = [Vec::new(), Vec::new()];
    let mut busy = [[Duration::ZERO; 2]; 2];
    for _ in 0..epochs {
        for side in 0..2 {
            let cpu = process_cpu();
            let start = Instant::now();
            run(side)?;
            let wall = start.elapsed();
            steady[side].push(wall);
            busy[side][0] += wall;
            busy[side][1] += process_cpu().saturating_sub(cpu);
        }
    }
    Ok(Pair {
        cold: cold.map(median),
        steady: steady.map(median),
        cores: busy.map(|[wall, cpu]| cpu.as_secs_f64() / wall.as_secs_f64().max(1e-9)),
    })
}

/// The CPU time of the whole process, every thread's, finished ones included (Linux:
/// `utime + stime` of /proc/self/stat, in USER_HZ = 100 ticks per second); 0 elsewhere.
#[cfg(feature = "parallel")]
fn process_cpu() -> Duration {
    let ticks = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // Fields after the command name (which may hold spaces): state is field 3,
            // utime 14, stime 15.
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let field = |k: usize| f.get(k).and_then(|x| x.parse::<u64>().ok());
            Some(field(11)? + field(12)?)
        })
        .unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// The table of one core against `threads` threads: medians over rounds of each round's
/// median, and their ratio.
fn print_scaling(threads: NonZeroUsize, epochs: usize, rounds: usize, scaling: &[[Pair; 2]]) {
    println!(
        "one core against {threads} threads (Parallel): wall time, alternated epoch by epoch, \
         median over {rounds} round(s) of the median of {epochs} epochs; load average {}",
        load_average()
    );
    println!(
        "{:<7} {:<7} {:>12} {:>12} {:>9} {:>13}",
        "backend", "run", "1 core ms", "threads ms", "speed-up", "cores used"
    );
    for (b, name) in ["float", "fixed"].into_iter().enumerate() {
        for run in ["cold", "steady"] {
            let side = |s: usize| {
                median(
                    scaling
                        .iter()
                        .filter_map(|r| r.get(b))
                        .map(|p| {
                            if run == "cold" {
                                p.cold[s]
                            } else {
                                p.steady[s]
                            }
                        })
                        .collect(),
                )
            };
            let (one, many) = (side(0), side(1));
            let cores = if run == "steady" {
                let used = |s: usize| {
                    let mut v: Vec<f64> = scaling
                        .iter()
                        .filter_map(|r| r.get(b))
                        .map(|p| p.cores[s])
                        .collect();
                    v.sort_by(f64::total_cmp);
                    v.get(v.len() / 2).copied().unwrap_or(0.0)
                };
                format!("{:.2} / {:.2}", used(0), used(1))
            } else {
                "-".into()
            };
            println!(
                "{name:<7} {run:<7} {:>12.3} {:>12.3} {:>8.2}x {cores:>13}",
                one.as_secs_f64() * 1e3,
                many.as_secs_f64() * 1e3,
                one.as_secs_f64() / many.as_secs_f64()
            );
        }
    }
}

/// Epochs shorter than this (wall) are timed by the wall clock.
const CPU_CLOCK_MIN: Duration = Duration::from_millis(50);

/// The time an epoch takes: on-CPU time of this thread where the kernel reports it
/// (/proc/thread-self/schedstat, nanoseconds: the time other processes of a shared machine
/// hold the core is not counted) and the epoch takes at least [`CPU_CLOCK_MIN`], else wall
/// time.
struct Clock {
    wall: Instant,
    cpu: Option<u64>,
}

impl Clock {
    fn now() -> Clock {
        Clock {
            wall: Instant::now(),
            cpu: thread_cpu_ns(),
        }
    }

    fn elapsed(&self) -> Duration {
        let wall = self.wall.elapsed();
        match (self.cpu, thread_cpu_ns()) {
            // The kernel brings the count up to date at scheduler ticks and switches: short
            // intervals read as 0 there, so they keep their wall time.
            (Some(a), Some(b)) if wall >= CPU_CLOCK_MIN => {
                Duration::from_nanos(b.saturating_sub(a))
            }
            _ => wall,
        }
    }
}

/// This thread's on-CPU nanoseconds (Linux), the first field of /proc/thread-self/schedstat.
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "unknown".into())
}

/// Bytes of each buffer of the streaming copy.
const COPY_BYTES: usize = 256 << 20;

/// One core's streaming-copy bandwidth in bytes per second, counting the bytes read and the
/// bytes written (the STREAM "copy" convention), best of 5.
fn copy_bandwidth() -> f64 {
    let words = COPY_BYTES / 8;
    let src: Vec<u64> = (0..words as u64).collect();
    let mut dst = vec![0u64; words];
    let mut best = f64::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        dst.copy_from_slice(&src);
        best = best.min(start.elapsed().as_secs_f64());
        std::hint::black_box(&mut dst);
    }
    2.0 * COPY_BYTES as f64 / best
}

/// Writes `state` in the workload format of `benches/baseline/numpy_epoch.py` (its docstring
/// is the format's definition).
fn write_workload(state: &State<f64>, path: &Path) -> Result<(), String> {
    let fail = |e: std::io::Error| format!("epoch: {}: {e}", path.display());
    let n = state.stake.len();
    let nnz: usize = state.weights.iter().map(Vec::len).sum();
    let p = &state.params;
    let (mode, alpha, penalty) = match p.bonds {
        BondMode::Cumulative => (0u8, 0.0, None),
        BondMode::Ema { alpha } => (1u8, alpha, None),
        BondMode::Yuma3 {
            bonds_moving_average,
            bonds_penalty,
            liquid_alpha: None,
        } => (2u8, bonds_moving_average, Some(bonds_penalty)),
        BondMode::Yuma { .. } | BondMode::Yuma3 { .. } => {
            return Err(
                "bench: the numpy baseline runs the paper's mechanism and Yuma 3 without liquid alpha only"
                    .into(),
            );
        }
    };
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).map_err(fail)?);
    let mut buf = Vec::with_capacity(128);
    buf.extend_from_slice(b"DNW1");
    buf.extend_from_slice(&(n as u64).to_le_bytes());
    buf.extend_from_slice(&(nnz as u64).to_le_bytes());
    for x in [p.rho, p.kappa, p.self_share, p.trust_threshold] {
        buf.extend_from_slice(&x.to_le_bytes());
    }
    buf.extend_from_slice(&p.emission.to_le_bytes());
    buf.push(u8::from(p.mask_self_weights));
    buf.push(mode);
    buf.extend_from_slice(&alpha.to_le_bytes());
    if let Some(penalty) = penalty {
        buf.extend_from_slice(&penalty.to_le_bytes());
    }
    f.write_all(&buf).map_err(fail)?;
    for &s in &state.stake {
        f.write_all(&s.to_le_bytes()).map_err(fail)?;
    }
    let mut at = 0u64;
    f.write_all(&at.to_le_bytes()).map_err(fail)?;
    for row in &state.weights {
        at += row.len() as u64;
        f.write_all(&at.to_le_bytes()).map_err(fail)?;
    }
    for row in &state.weights {
        for &(j, _) in row {
            f.write_all(&j.to_le_bytes()).map_err(fail)?;
        }
    }
    for row in &state.weights {
        for &(_, w) in row {
            f.write_all(&w.to_le_bytes()).map_err(fail)?;
        }
    }
    f.flush().map_err(fail)
}

/// Runs the baseline script once (`epochs` cold and `epochs` steady epochs); returns its
/// median times and its peak resident memory, and the largest difference between its outputs
/// and the float backend's `out` (the same epoch: one warm-up, then `epochs` steady ones).
fn run_baseline(
    script: &Path,
    workload: &Path,
    epochs: usize,
    out: &OutputBuffers<f64>,
) -> Result<(Times, f64), String> {
    let outputs = workload.with_extension("out");
    let run = Command::new("python3")
        .arg(script)
        .arg(workload)
        .arg(&outputs)
        .arg(epochs.to_string())
        .output()
        .map_err(|e| format!("epoch: python3 {}: {e}", script.display()))?;
    if !run.status.success() {
        let err = String::from_utf8_lossy(&run.stderr);
        let last = err.lines().last().unwrap_or("no output");
        return Err(format!(
            "epoch: baseline {} failed: {last}",
            script.display()
        ));
    }
    let stdout = String::from_utf8_lossy(&run.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    let json: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("epoch: baseline printed {line:?}: {e}"))?;
    let secs = |key: &str| {
        json[key]
            .as_f64()
            .map(Duration::from_secs_f64)
            .ok_or_else(|| format!("epoch: baseline printed no {key}"))
    };
    let times = Times {
        cold: secs("cold_s")?,
        steady: secs("steady_s")?,
        peak_mib: json["peak_rss_mib"].as_f64(),
    };
    let bytes =
        std::fs::read(&outputs).map_err(|e| format!("epoch: {}: {e}", outputs.display()))?;
    let n = out.rank.len();
    let f64s = |k: usize| -> Vec<f64> {
        bytes
            .get(k * 8 * n..(k + 1) * 8 * n)
            .unwrap_or_default()
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap_or_default()))
            .collect()
    };
    let mut diff: f64 = 0.0;
    for (k, ours) in [
        &out.rank,
        &out.trust,
        &out.consensus,
        &out.incentive,
        &out.dividends,
    ]
    .into_iter()
    .enumerate()
    {
        let theirs = f64s(k);
        if theirs.len() != n {
            return Err(format!("epoch: {}: short outputs", outputs.display()));
        }
        for (a, b) in ours.iter().zip(&theirs) {
            let d = (a - b).abs();
            // A NaN on either side is a disagreement, not a difference to skip.
            diff = if d.is_nan() {
                f64::INFINITY
            } else {
                diff.max(d)
            };
        }
    }
    Ok((times, diff))
}
