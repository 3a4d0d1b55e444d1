// Kernel: gating logits of the noisy top-k gate (Shazeer et al. 2017, eq. 4), one logit per
// invocation, for batches of under 4 rows (gating_logits_tiled.wgsl serves larger ones):
//   H(x)_j = (x W_g)_j + eps_j * softplus((x W_noise)_j)
// with softplus(z) = select(0, z, z > 0) + log(1 + exp(-|z|)) (no max(): NaN must propagate).
// Mirrors: reference::gating_logits (and, with WRITE_PARTS, the clean logits and noise
// standard deviations used by reference::load_balance).
//
// Bindings (group 0):
//   binding 0: params   uniform      Params
//   binding 1: x        storage read [rows, d]
//   binding 2: w_gate   storage read [d, peers]
//   binding 3: w_noise  storage read [d, peers] (ignored unless params.flags & NOISY)
//   binding 4: eps      storage read [rows, peers] standard normal noise (same condition)
//   binding 5: logits   storage rw   [rows, peers] H(x)
//   binding 6: clean    storage rw   [rows, peers] (x W_g), written only with WRITE_PARTS
//   binding 7: noise_sd storage rw   [rows, peers] softplus(x W_noise), only with WRITE_PARTS
//
// Dispatch: (ceil(peers / 64), rows, 1); invocation (j, r) computes one logit. The dot
// products are accumulated in the order t = 0..d, like the reference.

struct Params {
    rows: u32,
    d: u32,
    peers: u32,
    flags: u32,
}

const NOISY: u32 = 1u;
const WRITE_PARTS: u32 = 2u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w_gate: array<f32>;
@group(0) @binding(3) var<storage, read> w_noise: array<f32>;
@group(0) @binding(4) var<storage, read> eps: array<f32>;
@group(0) @binding(5) var<storage, read_write> logits: array<f32>;
@group(0) @binding(6) var<storage, read_write> clean: array<f32>;
@group(0) @binding(7) var<storage, read_write> noise_sd: array<f32>;

fn softplus(z: f32) -> f32 {
    return select(0.0, z, z > 0.0) + log(1.0 + exp(-abs(z)));
}

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let j = gid.x;
    let r = gid.y;
    if (j >= params.peers || r >= params.rows) {
        return;
    }
    let noisy = (params.flags & NOISY) != 0u;
    let x_row = r * params.d;
    var acc_gate = 0.0;
    var acc_noise = 0.0;
    for (var t = 0u; t < params.d; t = t + 1u) {
        let xv = x[x_row + t];
        acc_gate = acc_gate + xv * w_gate[t * params.peers + j];
        if (noisy) {
            acc_noise = acc_noise + xv * w_noise[t * params.peers + j];
        }
    }
    let out = r * params.peers + j;
    var sd = 0.0;
    var h = acc_gate;
    if (noisy) {
        sd = softplus(acc_noise);
        h = acc_gate + eps[out] * sd;
    }
    logits[out] = h;
    if ((params.flags & WRITE_PARTS) != 0u) {
        clean[out] = acc_gate;
        noise_sd[out] = sd;
    }
}
