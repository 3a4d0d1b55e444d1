//! Rows per second of the gating forward pass and of the Fisher scores, GPU kernels against
//! the CPU reference in the same run, over peers in {64, 1024, 4096}, d in {256, 1024} and
//! k in {2, 8} (`DEEPNODE_BENCH_QUICK=1`: peers in {64, 1024}, d = 256); the per-call cost
//! (weights uploaded each call, resident, many callers batched) and, in the full grid, the bytes
//! per second of the largest resident gate. Small flat samples so
//! the whole grid finishes in minutes on a software adapter (lavapipe).

use std::time::Duration;

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use deepnode_gating::{
    FisherHead, GateInput, GateRows, Gpu, LogitsKernel, Noise, reference, standard_normal,
};

/// Rows per batch: enough to fill the device, small enough for the CPU reference.
const ROWS: usize = 64;
/// Classes of the output head in the Fisher benchmark.
const CLASSES: usize = 16;

/// `DEEPNODE_BENCH_QUICK=1`: the small grid.
fn quick() -> bool {
    std::env::var("DEEPNODE_BENCH_QUICK").is_ok_and(|v| v == "1")
}

fn grid() -> Vec<(usize, usize, usize)> {
    let (peers, ds): (&[usize], &[usize]) = if quick() {
        (&[64, 1024], &[256])
    } else {
        (&[64, 1024, 4096], &[256, 1024])
    };
    let mut out = Vec::new();
    for &p in peers {
        for &d in ds {
            for k in [2, 8] {
                out.push((p, d, k));
            }
        }
    }
    out
}

fn uniform(seed: u64, len: usize, scale: f32) -> Vec<f32> {
    standard_normal(seed, len)
        .into_iter()
        .map(|v| v * scale)
        .collect()
}

fn benches(c: &mut Criterion) {
    let mut gpu = Gpu::new().expect("the benchmark needs a wgpu adapter (e.g. lavapipe)");
    eprintln!(
        "device: {} ({:?})",
        gpu.adapter_info().name,
        gpu.adapter_info().backend
    );
    let mut group = c.benchmark_group("gating_forward");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_secs(1));
    group.throughput(Throughput::Elements(ROWS as u64));
    for (peers, d, k) in grid() {
        let x = uniform(1, ROWS * d, 1.0);
        let w_gate = uniform(2, d * peers, 0.05);
        let w_noise = uniform(3, d * peers, 0.05);
        let eps = standard_normal(4, ROWS * peers);
        let input = GateInput {
            x: &x,
            w_gate: &w_gate,
            noise: Some(Noise {
                w_noise: &w_noise,
                eps: &eps,
            }),
            rows: ROWS,
            d,
            peers,
        };
        let id = format!("p{peers}_d{d}_k{k}");
        group.bench_function(BenchmarkId::new("gpu", &id), |b| {
            b.iter(|| gpu.gating_forward(&input, k).unwrap())
        });
        group.bench_function(BenchmarkId::new("cpu", &id), |b| {
            b.iter(|| reference::gating_forward(&input, k).unwrap())
        });
    }
    group.finish();

    // Per-call cost: the same noisy forward pass with the gate weights uploaded on every call
    // (`gating_forward`) and kept on the device (`gating_forward_resident`), in the same run.
    // One row is the per-call overhead; ROWS rows a batch.
    let mut group = c.benchmark_group("per_call");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(20)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_secs(2));
    let (peers, d, k) = (1024, 256, 2);
    let w_gate = uniform(2, d * peers, 0.05);
    let w_noise = uniform(3, d * peers, 0.05);
    let gate = gpu
        .upload_gate(&w_gate, Some(&w_noise), d, peers)
        .expect("valid shapes");
    for rows in [1, ROWS] {
        let x = uniform(1, rows * d, 1.0);
        let eps = standard_normal(4, rows * peers);
        let input = GateInput {
            x: &x,
            w_gate: &w_gate,
            noise: Some(Noise {
                w_noise: &w_noise,
                eps: &eps,
            }),
            rows,
            d,
            peers,
        };
        let id = format!("p{peers}_d{d}_k{k}_rows{rows}");
        group.bench_function(BenchmarkId::new("upload_each_call", &id), |b| {
            b.iter(|| gpu.gating_forward(&input, k).unwrap())
        });
        group.bench_function(BenchmarkId::new("resident", &id), |b| {
            b.iter(|| {
                gpu.gating_forward_resident(&gate, &x, Some(&eps), rows, k)
                    .unwrap()
            })
        });
    }
    // ROWS callers of one row each: one call per caller, or all in one submission.
    let x = uniform(1, ROWS * d, 1.0);
    let eps = standard_normal(4, ROWS * peers);
    let batches: Vec<GateRows<'_>> = (0..ROWS)
        .map(|r| GateRows {
            x: &x[r * d..(r + 1) * d],
            eps: Some(&eps[r * peers..(r + 1) * peers]),
            rows: 1,
        })
        .collect();
    let id = format!("p{peers}_d{d}_k{k}_{ROWS}x1");
    group.bench_function(BenchmarkId::new("resident_call_each", &id), |b| {
        b.iter(|| {
            for one in &batches {
                gpu.gating_forward_resident(&gate, one.x, one.eps, 1, k)
                    .unwrap();
            }
        })
    });
    group.bench_function(BenchmarkId::new("batched", &id), |b| {
        b.iter(|| gpu.gating_forward_batched(&gate, &batches, k).unwrap())
    });
    group.finish();

    // The logits kernels against each other, same run: the resident forward pass (k = 2,
    // noisy) with each kernel forced, and the automatic choice.
    let mut group = c.benchmark_group("logits_kernel");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_secs(1));
    let k = 2;
    for (peers, d) in grid()
        .into_iter()
        .filter(|&(_, _, k)| k == 2)
        .map(|(p, d, _)| (p, d))
    {
        let w_gate = uniform(2, d * peers, 0.05);
        let w_noise = uniform(3, d * peers, 0.05);
        let gate = gpu
            .upload_gate(&w_gate, Some(&w_noise), d, peers)
            .expect("valid shapes");
        for rows in [1, 16, ROWS, 256] {
            let x = uniform(1, rows * d, 1.0);
            let eps = standard_normal(4, rows * peers);
            group.throughput(Throughput::Elements(rows as u64));
            let id = format!("p{peers}_d{d}_rows{rows}");
            for kernel in LogitsKernel::ALL {
                gpu.set_logits_kernel(kernel);
                group.bench_function(BenchmarkId::new(format!("{kernel:?}"), &id), |b| {
                    b.iter(|| {
                        gpu.gating_forward_resident(&gate, &x, Some(&eps), rows, k)
                            .unwrap()
                    })
                });
            }
        }
    }
    gpu.set_logits_kernel(LogitsKernel::Auto);
    group.finish();

    // Streaming: the largest gate (4,096 peers, d = 1,024, noisy: 33.5 MB of weights) on
    // resident weights, in bytes that must cross memory per call (both weight matrices once,
    // x, eps and the selection read back). Skipped in the quick grid (minutes on lavapipe).
    if !quick() {
        let mut group = c.benchmark_group("stream");
        group
            .sampling_mode(SamplingMode::Flat)
            .sample_size(20)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2));
        let (peers, d, k) = (4096, 1024, 2);
        let w_gate = uniform(2, d * peers, 0.05);
        let w_noise = uniform(3, d * peers, 0.05);
        let gate = gpu
            .upload_gate(&w_gate, Some(&w_noise), d, peers)
            .expect("valid shapes");
        for rows in [1, 16, ROWS, 256, 1024] {
            let x = uniform(1, rows * d, 1.0);
            let eps = standard_normal(4, rows * peers);
            let bytes = 4 * (2 * d * peers + rows * (d + peers + 2 * k));
            group.throughput(Throughput::Bytes(bytes as u64));
            let id = format!("p{peers}_d{d}_k{k}_rows{rows}");
            group.bench_function(BenchmarkId::new("resident", &id), |b| {
                b.iter(|| {
                    gpu.gating_forward_resident(&gate, &x, Some(&eps), rows, k)
                        .unwrap()
                })
            });
            // The logits kernel alone (GPU timestamps), where the adapter has them: device
            // time without the per-call cost, against the same byte count as the call.
            if gpu
                .logits_kernel_time(&gate, &x, Some(&eps), rows, 1)
                .is_ok()
            {
                group.bench_function(BenchmarkId::new("kernel_only", &id), |b| {
                    b.iter_custom(|iters| {
                        let repeats = u32::try_from(iters).unwrap_or(u32::MAX);
                        gpu.logits_kernel_time(&gate, &x, Some(&eps), rows, repeats)
                            .unwrap()
                    })
                });
            }
        }
        group.finish();
    }

    let mut group = c.benchmark_group("fisher_scores");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_secs(1));
    group.throughput(Throughput::Elements(ROWS as u64));
    for (peers, d, k) in grid() {
        let sel = reference::top_k_softmax(&uniform(5, ROWS * peers, 1.0), ROWS, peers, k).unwrap();
        let responses = uniform(6, ROWS * k * d, 1.0);
        let weights = uniform(7, CLASSES * d, 0.05);
        let probs = vec![1.0 / CLASSES as f32; ROWS * CLASSES];
        let head = FisherHead {
            weights: &weights,
            probs: &probs,
            classes: CLASSES,
        };
        let id = format!("p{peers}_d{d}_k{k}");
        group.bench_function(BenchmarkId::new("gpu", &id), |b| {
            b.iter(|| gpu.fisher_scores(&sel, &responses, d, &head).unwrap())
        });
        group.bench_function(BenchmarkId::new("cpu", &id), |b| {
            b.iter(|| reference::fisher_scores(&sel, &responses, d, &head).unwrap())
        });
    }
    group.finish();
}

criterion_group!(gating, benches);
criterion_main!(gating);
