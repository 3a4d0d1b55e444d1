//! Criterion benchmarks of one epoch, fixed and float, for n in {256, 1024, 4096} and k
//! weights per row in {32, 256, n}. Throughput is in non-zero weights, so criterion reports
//! weights per second (ns per weight = 1e9 / that).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use deepnode_consensus::{Fx, epoch};
use deepnode_testkit::synthetic::network;

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("epoch");
    group.sample_size(10);
    for n in [256usize, 1024, 4096] {
        let mut ks = vec![32usize, 256, n];
        ks.dedup();
        for k in ks {
            group.throughput(Throughput::Elements((n * k.min(n)) as u64));
            let fixed = network::<Fx>(n, k, 7);
            group.bench_with_input(
                BenchmarkId::new(format!("fixed/k={k}"), n),
                &fixed,
                |b, s| b.iter(|| epoch(s).expect("valid")),
            );
            let float = network::<f64>(n, k, 7);
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
