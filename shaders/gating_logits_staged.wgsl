// Kernel: gating logits of the noisy top-k gate (Shazeer et al. 2017, eq. 4) for batches of a
// few rows on a GPU, where one invocation per logit (gating_logits.wgsl) leaves too few weight
// reads in flight to use the memory bandwidth:
//   H(x)_j = (x W_g)_j + eps_j * softplus((x W_noise)_j)
// with softplus(z) = select(0, z, z > 0) + log(1 + exp(-|z|)) (no max(): NaN must propagate).
// Mirrors: reference::gating_logits (and, with WRITE_PARTS, the clean logits and noise
// standard deviations used by reference::load_balance).
//
// Bindings (group 0): those of gating_logits.wgsl.
//   binding 0: params   uniform      Params
//   binding 1: x        storage read [rows, d]
//   binding 2: w_gate   storage read [d, peers]
//   binding 3: w_noise  storage read [d, peers] (ignored unless params.flags & NOISY)
//   binding 4: eps      storage read [rows, peers] standard normal noise (same condition)
//   binding 5: logits   storage rw   [rows, peers] H(x)
//   binding 6: clean    storage rw   [rows, peers] (x W_g), written only with WRITE_PARTS
//   binding 7: noise_sd storage rw   [rows, peers] softplus(x W_noise), only with WRITE_PARTS
//
// Dispatch: (ceil(peers / PW), rows, 1). A workgroup computes PW logits of one row. All of its
// WG invocations load a tile of TK x PW weights of each matrix into workgroup memory (TK * PW /
// WG reads of each matrix per invocation, all in flight at once); then invocation c < PW adds
// its column's TK products from there. The dot products are still accumulated in the order t = 0..d, like the reference.

struct Params {
    rows: u32,
    d: u32,
    peers: u32,
    flags: u32,
}

const NOISY: u32 = 1u;
const WRITE_PARTS: u32 = 2u;
// Invocations per workgroup. Keep in step with gpu.rs (STAGED_PEERS for PW).
const WG: u32 = 256u;
// Peers (logits) per workgroup.
const PW: u32 = 32u;
// Elements of the shared dimension per tile.
const TK: u32 = 64u;
// Tile rows each invocation loads: TK / (WG / PW).
const LOADS: u32 = 8u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w_gate: array<f32>;
@group(0) @binding(3) var<storage, read> w_noise: array<f32>;
@group(0) @binding(4) var<storage, read> eps: array<f32>;
@group(0) @binding(5) var<storage, read_write> logits: array<f32>;
@group(0) @binding(6) var<storage, read_write> clean: array<f32>;
@group(0) @binding(7) var<storage, read_write> noise_sd: array<f32>;

// w[t0 + tt, j0 + c] at tile[tt * PW + c] (TK * PW each: 16 KiB for both, the WebGPU
// default limit). Every entry read is written first in the same tile (the host may skip
// zeroing).
var<workgroup> tile_gate: array<f32, 2048>;
var<workgroup> tile_noise: array<f32, 2048>;

fn softplus(z: f32) -> f32 {
    return select(0.0, z, z > 0.0) + log(1.0 + exp(-abs(z)));
}

@compute @workgroup_size(256, 1, 1)
fn main(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let d = params.d;
    let p = params.peers;
    let r = group.y;
    let noisy = (params.flags & NOISY) != 0u;
    // The column this invocation loads, and the first tile row.
    let c = li % PW;
    let j = group.x * PW + c;
    let first = li / PW;
    var acc_gate = 0.0;
    var acc_noise = 0.0;
    for (var t0 = 0u; t0 < d; t0 = t0 + TK) {
        for (var q = 0u; q < LOADS; q = q + 1u) {
            let tt = first + q * (WG / PW);
            let t = t0 + tt;
            var g = 0.0;
            var n = 0.0;
            if (t < d && j < p) {
                g = w_gate[t * p + j];
                if (noisy) {
                    n = w_noise[t * p + j];
                }
            }
            tile_gate[tt * PW + c] = g;
            tile_noise[tt * PW + c] = n;
        }
        workgroupBarrier();
        if (li < PW) {
            // x[r, t] is the same for every invocation (one broadcast read).
            let steps = min(TK, d - t0);
            let xr = r * d + t0;
            for (var tt = 0u; tt < steps; tt = tt + 1u) {
                acc_gate = acc_gate + x[xr + tt] * tile_gate[tt * PW + li];
            }
            if (noisy) {
                for (var tt = 0u; tt < steps; tt = tt + 1u) {
                    acc_noise = acc_noise + x[xr + tt] * tile_noise[tt * PW + li];
                }
            }
        }
        workgroupBarrier();
    }
    if (li >= PW || j >= p || r >= params.rows) {
        return;
    }
    let out = r * p + j;
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
