//! Runs steady epochs of one backend on a synthetic network, for a profiler:
//! `valgrind --tool=callgrind target/release/examples/profile_epoch float 2048 2048 3`
//! (backend, n, k, epochs after one warm-up; the warm-up is the cold, first-epoch path).

use deepnode_consensus::{Fx, OutputBuffers, Scalar, epoch_in_place};
use deepnode_testkit::synthetic::network;
use deepnode_types::FromRatio;

fn run<N: Scalar + FromRatio>(n: usize, k: usize, epochs: usize) {
    let state = network::<N>(n, k, 7);
    let mut bonds = vec![Vec::new(); n];
    let mut out = OutputBuffers::<N>::new(n);
    for _ in 0..=epochs {
        let loss = epoch_in_place(
            &state.params,
            &state.stake,
            &state.weights,
            &mut bonds,
            out.outputs(),
        );
        std::hint::black_box(loss.expect("a valid synthetic network"));
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num =
        |i: usize, default: usize| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(default);
    let (n, k, epochs) = (num(1, 2048), num(2, 2048), num(3, 3));
    match args.first().map(String::as_str) {
        Some("fixed") => run::<Fx>(n, k, epochs),
        _ => run::<f64>(n, k, epochs),
    }
}
