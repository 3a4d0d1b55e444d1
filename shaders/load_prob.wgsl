// Kernel: the smooth load estimator of Shazeer et al. 2017, appendix A (eq. 8-9):
//   P(x, i) = Phi((clean_i - kth_excluding(H(x), k, i)) / noise_sd_i)
// where kth_excluding is the k-th largest noisy logit among the other peers: the (k+1)-th
// largest overall when i is in the top k, else the k-th (-inf when k == peers, so P = 1).
// Without noise, or where noise_sd == 0, P is the hard indicator of i being selected.
// Phi(z) = 0.5 erfc(-z / sqrt(2)), erfc by the Numerical Recipes Chebyshev fit (fractional
// error < 1.2e-7), the same formula as the reference.
// Mirrors: reference::load_probability (summed over rows by reference::load_balance).
//
// Bindings (group 0):
//   binding 0: params     uniform      Params
//   binding 1: logits     storage read [rows, peers] noisy logits H
//   binding 2: clean      storage read [rows, peers]
//   binding 3: noise_sd   storage read [rows, peers]
//   binding 4: indices    storage read [rows, k] top-k of H (top_k_softmax order)
//   binding 5: thresholds storage read [rows, 2] k-th, (k+1)-th largest of H
//   binding 6: prob       storage rw   [rows, peers]
//
// Dispatch: (ceil(peers / 64), rows, 1).

struct Params {
    rows: u32,
    peers: u32,
    k: u32,
    noisy: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> clean: array<f32>;
@group(0) @binding(3) var<storage, read> noise_sd: array<f32>;
@group(0) @binding(4) var<storage, read> indices: array<u32>;
@group(0) @binding(5) var<storage, read> thresholds: array<f32>;
@group(0) @binding(6) var<storage, read_write> prob: array<f32>;

// Same total order as top_k_softmax.wgsl.
fn order_key(v: f32) -> u32 {
    let b = bitcast<u32>(v);
    let mag = b & 0x7fffffffu;
    if (mag > 0x7f800000u) {
        return 0u;
    }
    if (mag == 0u) {
        return 0x80000000u;
    }
    if ((b & 0x80000000u) != 0u) {
        return ~b;
    }
    return b | 0x80000000u;
}

fn erfc_nr(x: f32) -> f32 {
    let z = abs(x);
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418
        + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587
        + t * (-0.82215223 + t * 0.17087277))))))));
    let ans = t * exp(-z * z + poly);
    return select(2.0 - ans, ans, x >= 0.0);
}

fn normal_cdf(z: f32) -> f32 {
    return 0.5 * erfc_nr(-z * 0.70710678118654752);
}

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let j = gid.x;
    let r = gid.y;
    if (j >= params.peers || r >= params.rows) {
        return;
    }
    let at = r * params.peers + j;
    let kth = indices[r * params.k + params.k - 1u];
    let key_j = order_key(logits[at]);
    let key_kth = order_key(logits[r * params.peers + kth]);
    // j is selected iff it does not rank strictly after the k-th selected peer.
    let selected = key_j > key_kth || (key_j == key_kth && j <= kth);
    let sd = noise_sd[at];
    if (params.noisy == 0u || bitcast<u32>(sd) == 0u) {
        prob[at] = select(0.0, 1.0, selected);
        return;
    }
    let threshold = select(thresholds[r * 2u], thresholds[r * 2u + 1u], selected);
    prob[at] = normal_cdf((clean[at] - threshold) / sd);
}
