//! Criterion benchmarks of one epoch, fixed and float, for n in {256, 1024, 4096} and k
//! weights per row in {32, 256, n}. Throughput is in non-zero weights, so criterion reports
//! weights per second (ns per weight = 1e9 / that).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use deepnode_consensus::{Fx, Params, Scalar, State, canonicalize, epoch};
use deepnode_types::FromRatio;

/// A reproducible random network: `n` nodes, `k` distinct peers per row (xorshift).
fn network<N: Scalar + FromRatio>(n: usize, k: usize) -> State<N> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let stake = (0..n).map(|_| next() % 1_000_000_000_000).collect();
    let weights = (0..n)
        .map(|i| {
            let row: Vec<(u32, u16)> = if k >= n {
                (0..n as u32)
                    .map(|j| (j, (next() % 65535) as u16 + 1))
                    .collect()
            } else {
                let mut uids: Vec<u32> = Vec::with_capacity(k);
                while uids.len() < k {
                    let j = (next() % n as u64) as u32;
                    if !uids.contains(&j) {
                        uids.push(j);
                    }
                }
                uids.into_iter()
                    .map(|j| (j, (next() % 65535) as u16 + 1))
                    .collect()
            };
            canonicalize("weights", i, &row, n).expect("distinct uids")
        })
        .collect();
    State {
        params: Params::default(),
        stake,
        weights,
        bonds: Vec::new(),
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("epoch");
    group.sample_size(10);
    for n in [256usize, 1024, 4096] {
        for k in [32usize, 256, n] {
            if k > n || (k == n && n != 4096 && k == 256) {
                continue;
            }
            group.throughput(Throughput::Elements((n * k.min(n)) as u64));
            let fixed = network::<Fx>(n, k);
            group.bench_with_input(
                BenchmarkId::new(format!("fixed/k={k}"), n),
                &fixed,
                |b, s| b.iter(|| epoch(s).expect("valid")),
            );
            let float = network::<f64>(n, k);
            group.bench_with_input(
                BenchmarkId::new(format!("float/k={k}"), n),
                &float,
                |b, s| b.iter(|| epoch(s).expect("valid")),
            );
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
