//! The native measurement behind `weights.rs`: each frame-benchmarking benchmark of
//! `benchmarking.rs`, run on the mock runtime over a grid of components, timed around its call
//! only (the `Recording` that frame-benchmarking's runner uses, in the thread's CPU time), with the
//! median of several runs per point and a least-squares fit of the weight's terms. Run by hand
//! (release build, idle machine):
//!
//! ```text
//! cargo test --release --features std,runtime-benchmarks -- --ignored --nocapture measure_weights
//! ```

use std::time::Duration;

use cpu_time::ThreadTime;

use frame_benchmarking::{BenchmarkParameter, Recording};

use crate::mock::{Rules, Test, new_test_ext};

/// Times the span between the benchmark's `start` and `stop` in this thread's CPU time.
#[derive(Default)]
struct Timer {
    started: Option<ThreadTime>,
    elapsed: Duration,
}

impl Recording for Timer {
    fn start(&mut self) {
        self.started = Some(ThreadTime::now());
    }
    fn stop(&mut self) {
        if let Some(t) = self.started.take() {
            self.elapsed = t.elapsed();
        }
    }
}

/// Median nanoseconds of `runs` runs of benchmark `name`, each on a fresh mock chain capped at
/// `max_nodes` nodes and `max_len` entries per row.
fn median_ns(name: &str, c: &[(BenchmarkParameter, u32)], max_nodes: u32, runs: usize) -> f64 {
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let rules = Rules {
                max_nodes,
                max_weights_len: max_nodes,
                ..Rules::default()
            };
            let mut timer = Timer::default();
            new_test_ext(&rules).execute_with(|| {
                crate::benchmarking::benchmarks::instance::<Test>(name, &mut timer, c)
                    .expect("benchmark runs")
            });
            timer.elapsed.as_secs_f64() * 1e9
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// Least squares `y ~ X b` by the normal equations (3 unknowns at most), Gaussian elimination.
fn fit(rows: &[Vec<f64>], y: &[f64]) -> Vec<f64> {
    let m = rows[0].len();
    let mut a = vec![vec![0.0; m + 1]; m];
    for (r, &yi) in rows.iter().zip(y) {
        for i in 0..m {
            for j in 0..m {
                a[i][j] += r[i] * r[j];
            }
            a[i][m] += r[i] * yi;
        }
    }
    for i in 0..m {
        let p = (i..m)
            .max_by(|&x, &z| a[x][i].abs().total_cmp(&a[z][i].abs()))
            .expect("rows");
        a.swap(i, p);
        for r in 0..m {
            if r != i {
                let f = a[r][i] / a[i][i];
                let pivot = a[i].clone();
                for (x, p) in a[r].iter_mut().zip(&pivot).skip(i) {
                    *x -= f * p;
                }
            }
        }
    }
    (0..m).map(|i| a[i][m] / a[i][i]).collect()
}

/// The fitted slopes (at least 0), with the smallest intercept that puts the formula at or
/// above every measured point: a weight must not undercharge.
fn upper(rows: &[Vec<f64>], y: &[f64]) -> Vec<f64> {
    let mut b = fit(rows, y);
    for s in b.iter_mut().skip(1) {
        *s = s.max(0.0);
    }
    let base = rows
        .iter()
        .zip(y)
        .map(|(r, yi)| yi - r.iter().zip(&b).skip(1).map(|(x, s)| x * s).sum::<f64>())
        .fold(0.0, f64::max);
    b[0] = base;
    b
}

fn param(which: BenchmarkParameter, v: u32) -> (BenchmarkParameter, u32) {
    (which, v)
}

/// Entries per row: `k`, at most `n`.
fn kf(k: f64, n: f64) -> f64 {
    k.min(n)
}

#[test]
#[ignore = "a measurement: run by hand in release (see the module docs)"]
fn measure_weights() {
    use BenchmarkParameter::{k, l, n};
    const RUNS: usize = 15;
    println!("| benchmark | components | median time |");
    println!("|---|---|---|");
    for name in ["add_stake", "remove_stake", "serve"] {
        let t = median_ns(name, &[], 8, RUNS);
        println!("| {name} | | {:.1} us |", t / 1e3);
    }
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for len in [1u32, 256, 1024, 2048, 4096] {
        let t = median_ns("set_weights", &[param(l, len)], 4096, RUNS);
        println!("| set_weights | l = {len} | {:.1} us |", t / 1e3);
        let lf = f64::from(len);
        x.push(vec![1.0, lf, lf * lf]);
        y.push(t);
    }
    println!(
        "set_weights (ns): base, per l, per l^2 = {:?}",
        upper(&x, &y)
    );
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for nodes in [64u32, 256, 1024] {
        for kk in [1u32, 16, 64] {
            let t = median_ns("register", &[param(k, kk)], nodes, RUNS);
            println!(
                "| register (full set) | n = {nodes}, k = {kk} | {:.1} us |",
                t / 1e3
            );
            let (nf, kf) = (f64::from(nodes), f64::from(kk));
            x.push(vec![1.0, nf, nf * kf]);
            y.push(t);
        }
    }
    println!("register (ns): base, per n, per n*k = {:?}", upper(&x, &y));
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for nodes in [64u32, 256, 1024, 4096] {
        for kk in [1u32, 16, 64, 256] {
            let c = [param(n, nodes), param(k, kk.min(nodes))];
            let t = median_ns("epoch", &c, 4096, RUNS);
            println!("| epoch | n = {nodes}, k = {kk} | {:.1} us |", t / 1e3);
            let (nf, kf) = (f64::from(nodes), f64::from(kk.min(nodes)));
            x.push(vec![1.0, nf, nf * kf]);
            y.push(t);
        }
    }
    let e = upper(&x, &y);
    println!("epoch (ns): base, per n, per n*k = {e:?}");
    // The largest n whose epoch, compute plus RocksDB reads (3n + 8, 25 us) and writes (2n + 6,
    // 100 us), fits a 2 s block.
    for kk in [16.0, 64.0, 256.0] {
        let cost = |nf: f64| {
            e[0] + e[1] * nf
                + e[2] * nf * kf(kk, nf)
                + 25e3 * (3.0 * nf + 8.0)
                + 100e3 * (2.0 * nf + 6.0)
        };
        let nmax = (1..=65_536u32)
            .take_while(|&v| cost(f64::from(v)) <= 2e9)
            .last()
            .unwrap_or(0);
        println!("2 s block: k = {kk}: n <= {nmax}");
    }
    let dense = |nf: f64| {
        e[0] + e[1] * nf + e[2] * nf * nf + 25e3 * (3.0 * nf + 8.0) + 100e3 * (2.0 * nf + 6.0)
    };
    let nmax = (1..=65_536u32)
        .take_while(|&v| dense(f64::from(v)) <= 2e9)
        .last()
        .unwrap_or(0);
    println!("2 s block: dense rows (k = n): n <= {nmax}");
}
