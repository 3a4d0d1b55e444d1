// Kernel: top-k selection per row and softmax over the k kept logits (Shazeer et al. 2017,
// G(x) = Softmax(KeepTopK(H(x), k))).
// Mirrors: reference::top_k_softmax (and, with params.want_thresholds, the k-th and (k+1)-th
// largest logits used by reference::load_balance).
//
// Bindings (group 0):
//   binding 0: params     uniform      Params
//   binding 1: logits     storage read [rows, peers]
//   binding 2: indices    storage rw   [rows, k] u32, best first
//   binding 3: gates      storage rw   [rows, k] softmax of the kept logits, same order
//   binding 4: thresholds storage rw   [rows, 2] k-th and (k+1)-th largest logit (-inf when
//                                      k == peers); written only when want_thresholds != 0
//
// Dispatch: (rows, 1, 1) workgroups of 64; one workgroup per row runs k (or k + 1) arg-max
// reductions. Order (the tie and NaN rule): logits compare by order_key, a total order on the
// bits (+0 == -0, NaN below -inf); equal keys rank the lower peer index first. Gates: a NaN
// among the kept makes the whole row NaN; else +inf entries share the mass equally; else if
// every kept logit is -inf the gates are 1/k; else exp(v - v_max) / sum, with exp(-inf) = 0.

struct Params {
    rows: u32,
    peers: u32,
    k: u32,
    want_thresholds: u32,
}

const WG: u32 = 64u;
const NONE: u32 = 0xffffffffu;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read_write> indices: array<u32>;
@group(0) @binding(3) var<storage, read_write> gates: array<f32>;
@group(0) @binding(4) var<storage, read_write> thresholds: array<f32>;

var<workgroup> red_key: array<u32, 64>;
var<workgroup> red_idx: array<u32, 64>;

// Monotone map from f32 to u32 (larger float, larger key); NaN maps to 0, below -inf.
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

// True when (ka, ia) ranks strictly before (kb, ib).
fn before(ka: u32, ia: u32, kb: u32, ib: u32) -> bool {
    return ka > kb || (ka == kb && ia < ib);
}

fn is_nan(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u;
}

fn is_pos_inf(v: f32) -> bool {
    return bitcast<u32>(v) == 0x7f800000u;
}

fn is_neg_inf(v: f32) -> bool {
    return bitcast<u32>(v) == 0xff800000u;
}

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>) {
    let row = wid.x;
    let lid = lid3.x;
    let peers = params.peers;
    let k = params.k;
    let base = row * peers;
    let want = params.want_thresholds != 0u;
    var passes = k;
    if (want && k < peers) {
        passes = k + 1u;
    }

    var prev_key = 0u;
    var prev_idx = NONE;
    var has_prev = false;
    for (var s = 0u; s < passes; s = s + 1u) {
        var best_key = 0u;
        var best_idx = NONE;
        for (var j = lid; j < peers; j = j + WG) {
            let kj = order_key(logits[base + j]);
            let eligible = !has_prev || before(prev_key, prev_idx, kj, j);
            if (eligible && before(kj, j, best_key, best_idx)) {
                best_key = kj;
                best_idx = j;
            }
        }
        red_key[lid] = best_key;
        red_idx[lid] = best_idx;
        workgroupBarrier();
        for (var stride = WG / 2u; stride > 0u; stride = stride / 2u) {
            if (lid < stride) {
                let ok = red_key[lid + stride];
                let oi = red_idx[lid + stride];
                if (before(ok, oi, red_key[lid], red_idx[lid])) {
                    red_key[lid] = ok;
                    red_idx[lid] = oi;
                }
            }
            workgroupBarrier();
        }
        prev_key = red_key[0];
        prev_idx = red_idx[0];
        has_prev = true;
        workgroupBarrier();
        if (lid == 0u) {
            if (s < k) {
                indices[row * k + s] = prev_idx;
            }
            if (want && s + 1u == k) {
                thresholds[row * 2u] = logits[base + prev_idx];
                if (k == peers) {
                    thresholds[row * 2u + 1u] = bitcast<f32>(0xff800000u);
                }
            }
            if (want && s == k) {
                thresholds[row * 2u + 1u] = logits[base + prev_idx];
            }
        }
    }

    if (lid != 0u) {
        return;
    }
    let out = row * k;
    var any_nan = false;
    var n_pos_inf = 0u;
    for (var s = 0u; s < k; s = s + 1u) {
        let v = logits[base + indices[out + s]];
        any_nan = any_nan || is_nan(v);
        if (is_pos_inf(v)) {
            n_pos_inf = n_pos_inf + 1u;
        }
    }
    if (any_nan) {
        for (var s = 0u; s < k; s = s + 1u) {
            gates[out + s] = bitcast<f32>(0x7fc00000u);
        }
        return;
    }
    if (n_pos_inf > 0u) {
        let share = 1.0 / f32(n_pos_inf);
        for (var s = 0u; s < k; s = s + 1u) {
            gates[out + s] = select(0.0, share, is_pos_inf(logits[base + indices[out + s]]));
        }
        return;
    }
    let v_max = logits[base + indices[out]];
    if (is_neg_inf(v_max)) {
        for (var s = 0u; s < k; s = s + 1u) {
            gates[out + s] = 1.0 / f32(k);
        }
        return;
    }
    var sum = 0.0;
    for (var s = 0u; s < k; s = s + 1u) {
        let v = logits[base + indices[out + s]];
        let e = select(exp(v - v_max), 0.0, is_neg_inf(v));
        gates[out + s] = e;
        sum = sum + e;
    }
    for (var s = 0u; s < k; s = s + 1u) {
        gates[out + s] = gates[out + s] / sum;
    }
}
