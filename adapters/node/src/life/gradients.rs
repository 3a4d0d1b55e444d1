//! The gradients a node without a trainer sends its peers: those of the disagreement loss.

use std::collections::HashMap;

use deepnode_consensus::Uid;

use super::RunConfig;
use super::dial::Peer;
use crate::Tensor;
use crate::query::Answer;

/// Sends every answering peer `dL/df_j = f_j - mean` of `L = 1/2 sum_j |f_j - mean|^2`
/// (the mean over the answers taken as a constant), fire and forget. Only finite answers of
/// the batch's shape `[B, S, D]` enter the mean; the others get no gradient.
pub(super) async fn send_gradients(
    cfg: &RunConfig,
    peers: &HashMap<Uid, Peer>,
    x: &Tensor,
    answers: &[(Uid, Answer)],
) {
    let (b, s) = cfg.batch;
    let dims = [b, s, cfg.serve.limits.dim];
    let len = dims.iter().map(|&d| d as usize).product::<usize>();
    let outs: Vec<(Uid, Vec<f32>)> = answers
        .iter()
        .filter_map(|(j, a)| match a {
            Answer::Peer(t) if t.shape.dims() == dims && t.is_finite() => Some((*j, t.to_f32())),
            _ => None,
        })
        .filter(|o| o.1.len() == len)
        .collect();
    if outs.is_empty() {
        return;
    }
    let mut mean = vec![0f32; len];
    for (_, o) in &outs {
        for (m, v) in mean.iter_mut().zip(o) {
            *m += v / outs.len() as f32;
        }
    }
    for (j, o) in outs {
        let grad: Vec<f32> = o.iter().zip(&mean).map(|(v, m)| v - m).collect();
        if let (Some(p), Ok(g)) = (peers.get(&j), Tensor::from_f32(&dims, &grad)) {
            let _ = p.conn.backward(cfg.modality, x, &g, cfg.timeout).await;
        }
    }
}
