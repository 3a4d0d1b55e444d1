// Kernel: per (row, slot) Fisher quadratic form of removing the peer in that slot.
//   dF = -g f (change of the mixed input), u = A dF (A: head weights [classes, d_out]),
//   q = sum_c p_c u_c^2 - (sum_c p_c u_c)^2   (dF^T H dF, H the Fisher information of the
//   softmax cross-entropy of the head at output probabilities p).
// Mirrors: reference::fisher_terms (reference::fisher_scores = scatter + column mean of it).
//
// Bindings (group 0):
//   binding 0: params    uniform      Params
//   binding 1: gates     storage read [rows, k]
//   binding 2: responses storage read [rows, k, d_out]
//   binding 3: head      storage read [classes, d_out]
//   binding 4: probs     storage read [rows, classes]
//   binding 5: terms     storage rw   [rows, k]
//
// Dispatch: (ceil(rows * k / 64), 1, 1); invocation e = r * k + s. Sums run c = 0..classes
// and t = 0..d_out in order, like the reference.

struct Params {
    rows: u32,
    k: u32,
    d_out: u32,
    classes: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> gates: array<f32>;
@group(0) @binding(2) var<storage, read> responses: array<f32>;
@group(0) @binding(3) var<storage, read> head: array<f32>;
@group(0) @binding(4) var<storage, read> probs: array<f32>;
@group(0) @binding(5) var<storage, read_write> terms: array<f32>;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let e = gid.x;
    if (e >= params.rows * params.k) {
        return;
    }
    let r = e / params.k;
    let g = gates[e];
    let f_base = e * params.d_out;
    var mean_u = 0.0;
    var mean_u2 = 0.0;
    for (var c = 0u; c < params.classes; c = c + 1u) {
        var u = 0.0;
        let a_base = c * params.d_out;
        for (var t = 0u; t < params.d_out; t = t + 1u) {
            let df = -g * responses[f_base + t];
            u = u + head[a_base + t] * df;
        }
        let p = probs[r * params.classes + c];
        mean_u = mean_u + p * u;
        mean_u2 = mean_u2 + p * u * u;
    }
    terms[e] = mean_u2 - mean_u * mean_u;
}
