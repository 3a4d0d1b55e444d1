//! The training benchmarks of `docs/benchmarks.md`: ms per training step of the default model
//! with k = 2, 4, 8 peer responses, forward requests served per second, and Fisher scores in
//! torch against deepnode-gating's CPU reference on the same batch. `DEEPNODE_BENCH_QUICK=1`: fewer rounds.

use std::time::Instant;

use deepnode_node::Model;
use deepnode_torch::convert::{to_tch, tokens_to_node};
use deepnode_torch::data::TextCorpus;
use deepnode_torch::{EncoderConfig, LocalConfig, LocalModel, ServeConfig, TorchModel};
use deepnode_wire::Modality;
use tch::Tensor;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rounds = if std::env::var_os("DEEPNODE_BENCH_QUICK").is_some() {
        10
    } else {
        50
    };
    let (batch, seq) = (8usize, 32usize);
    let corpus = TextCorpus::system_shard(0, 4)?;
    let peers: Vec<TorchModel> = (0..8)
        .map(|j| TorchModel::new(10 + j, EncoderConfig::default(), ServeConfig::default()))
        .collect::<Result<_, _>>()?;
    println!("batch {batch} x seq {seq}, D = 32, 8 peers, one libtorch thread, {rounds} rounds");
    for k in [2, 4, 8] {
        let mut node = LocalModel::new(LocalConfig {
            k,
            ..LocalConfig::default()
        })?;
        let (mut local, mut remote) = (0f64, 0f64);
        for step in 0..rounds + 2 {
            let b = corpus.train_batch(batch, seq, step as u64);
            let start = Instant::now();
            let report = node.step(&b, &mut |j, x| peers[j].forward(Modality::Text, x).ok())?;
            let mid = Instant::now();
            let inputs = tokens_to_node(&b.narrow(1, 0, seq as i64))?;
            for (j, g) in &report.grads {
                peers[*j].backward(Modality::Text, &inputs, g)?;
            }
            // Two warm-up steps.
            if step >= 2 {
                local += (mid - start).as_secs_f64();
                remote += mid.elapsed().as_secs_f64();
            }
        }
        println!(
            "k = {k}: step {:.2} ms (route, peer forwards, loss, backward, Adam, Fisher, \
             student); peers' backward {:.2} ms",
            1e3 * local / rounds as f64,
            1e3 * remote / rounds as f64
        );
    }

    let inputs = tokens_to_node(&corpus.train_batch(batch, seq, 1).narrow(1, 0, seq as i64))?;
    let n = rounds * 20;
    let start = Instant::now();
    for _ in 0..n {
        peers[0].forward(Modality::Text, &inputs)?;
    }
    let per_s = n as f64 / start.elapsed().as_secs_f64();
    println!(
        "forward requests served: {per_s:.0}/s ([{batch}, {seq}] bytes to [{batch}, {seq}, 32])"
    );

    let node = LocalModel::new(LocalConfig::default())?;
    let b = corpus.train_batch(batch, seq, 7);
    let routed = node.route(&b, true)?;
    let wire = tokens_to_node(&routed.inputs)?;
    let responses: Vec<Tensor> = peers
        .iter()
        .map(|p| to_tch(&p.forward(Modality::Text, &wire)?).map_err(Into::into))
        .collect::<Result<_, Box<dyn std::error::Error>>>()?;
    let loss = node.loss(&routed, &responses)?;
    let start = Instant::now();
    let mut torch = Vec::new();
    for _ in 0..rounds {
        torch = node.fisher_torch(&routed, &loss)?;
    }
    let t_torch = start.elapsed().as_secs_f64() / rounds as f64;
    let start = Instant::now();
    let mut gating = Vec::new();
    for _ in 0..rounds {
        gating = node.fisher_gating(&routed, &loss)?;
    }
    let t_gating = start.elapsed().as_secs_f64() / rounds as f64;
    let worst = gating
        .iter()
        .zip(&torch)
        .map(|(g, t)| (f64::from(*g) - t).abs() / t.abs().max(1e-12))
        .fold(0.0, f64::max);
    println!(
        "Fisher scores, {} positions: torch (f64, from the definition) {:.2} ms, deepnode-gating \
         CPU reference {:.2} ms (incl. copies); max relative difference {worst:.1e}",
        batch * seq,
        1e3 * t_torch,
        1e3 * t_gating
    );
    Ok(())
}
