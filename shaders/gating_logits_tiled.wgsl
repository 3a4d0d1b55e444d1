// Kernel: gating logits of the noisy top-k gate (Shazeer et al. 2017, eq. 4), tiled by rows
// for batches of 4 rows or more (gating_logits.wgsl, one logit per invocation, serves smaller
// ones):
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
// Dispatch: (ceil(peers / 64), ceil(rows / RT), 1). Tiled: a workgroup computes RT rows x 64
// peers; invocation j keeps its RT sums in four vec4 accumulators (rows 4q..4q+3 in the q-th),
// so each weight it reads serves RT rows, and the workgroup stages the x values of its rows,
// TK at a time, in workgroup memory (every entry read is written first: the host may skip
// zeroing it). vec4 accumulators past the tile's last row are
// skipped (a uniform branch): a tile of r rows does ceil(r / 4) vec4s' work. The dot products are still
// accumulated in the order t = 0..d, like the reference.

struct Params {
    rows: u32,
    d: u32,
    peers: u32,
    flags: u32,
}

const NOISY: u32 = 1u;
const WRITE_PARTS: u32 = 2u;
/// Threads per workgroup (along peers).
const WG: u32 = 64u;
/// Rows per workgroup: the four vec4 accumulators. Keep in step with gpu.rs (LOGIT_ROWS).
const RT: u32 = 16u;
/// Elements of the shared dimension staged per tile.
const TK: u32 = 64u;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w_gate: array<f32>;
@group(0) @binding(3) var<storage, read> w_noise: array<f32>;
@group(0) @binding(4) var<storage, read> eps: array<f32>;
@group(0) @binding(5) var<storage, read_write> logits: array<f32>;
@group(0) @binding(6) var<storage, read_write> clean: array<f32>;
@group(0) @binding(7) var<storage, read_write> noise_sd: array<f32>;

/// x[r0 + 4q + c, t0 + tt] at xs[tt * 4 + q][c] (zero outside the batch).
var<workgroup> xs: array<vec4<f32>, 256>;

fn softplus(z: f32) -> f32 {
    return select(0.0, z, z > 0.0) + log(1.0 + exp(-abs(z)));
}

/// The sums of row rr (< RT) of the tile.
fn pick(a0: vec4<f32>, a1: vec4<f32>, a2: vec4<f32>, a3: vec4<f32>, rr: u32) -> f32 {
    let c = rr % 4u;
    switch (rr / 4u) {
        case 0u: { return a0[c]; }
        case 1u: { return a1[c]; }
        case 2u: { return a2[c]; }
        default: { return a3[c]; }
    }
}

@compute @workgroup_size(64, 1, 1)
fn main(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(local_invocation_id) lid3: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let j = gid.x;
    let lid = lid3.x;
    let r0 = wid.y * RT;
    // Uniform over the workgroup: the dispatch covers only rows < params.rows.
    let nr = min(RT, params.rows - r0);
    let nq = (nr + 3u) / 4u;
    let live = j < params.peers;
    let noisy = (params.flags & NOISY) != 0u;
    var g0 = vec4<f32>(0.0);
    var g1 = vec4<f32>(0.0);
    var g2 = vec4<f32>(0.0);
    var g3 = vec4<f32>(0.0);
    var n0 = vec4<f32>(0.0);
    var n1 = vec4<f32>(0.0);
    var n2 = vec4<f32>(0.0);
    var n3 = vec4<f32>(0.0);
    for (var t0 = 0u; t0 < params.d; t0 = t0 + TK) {
        let nt = min(TK, params.d - t0);
        for (var e = lid; e < nq * 4u * TK; e = e + WG) {
            let rr = e / TK;
            let tt = e % TK;
            var v = 0.0;
            if (rr < nr && tt < nt) {
                v = x[(r0 + rr) * params.d + t0 + tt];
            }
            xs[tt * 4u + rr / 4u][rr % 4u] = v;
        }
        workgroupBarrier();
        if (live) {
            for (var tt = 0u; tt < nt; tt = tt + 1u) {
                let at = tt * 4u;
                let w = w_gate[(t0 + tt) * params.peers + j];
                g0 = g0 + xs[at] * w;
                if (nq > 1u) {
                    g1 = g1 + xs[at + 1u] * w;
                    if (nq > 2u) {
                        g2 = g2 + xs[at + 2u] * w;
                        if (nq > 3u) {
                            g3 = g3 + xs[at + 3u] * w;
                        }
                    }
                }
                if (noisy) {
                    let wn = w_noise[(t0 + tt) * params.peers + j];
                    n0 = n0 + xs[at] * wn;
                    if (nq > 1u) {
                        n1 = n1 + xs[at + 1u] * wn;
                        if (nq > 2u) {
                            n2 = n2 + xs[at + 2u] * wn;
                            if (nq > 3u) {
                                n3 = n3 + xs[at + 3u] * wn;
                            }
                        }
                    }
                }
            }
        }
        workgroupBarrier();
    }
    if (!live) {
        return;
    }
    for (var rr = 0u; rr < nr; rr = rr + 1u) {
        let out = (r0 + rr) * params.peers + j;
        let clean_logit = pick(g0, g1, g2, g3, rr);
        var sd = 0.0;
        var h = clean_logit;
        if (noisy) {
            sd = softplus(pick(n0, n1, n2, n3, rr));
            h = clean_logit + eps[out] * sd;
        }
        logits[out] = h;
        if ((params.flags & WRITE_PARTS) != 0u) {
            clean[out] = clean_logit;
            noise_sd[out] = sd;
        }
    }
}
