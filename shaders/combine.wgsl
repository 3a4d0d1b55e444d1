// Kernel: combine the selected peers' responses, G(x) = sum_s g_s(x) f_s(x) (Shazeer et al.
// 2017, eq. 1, summed over the k kept experts only).
// Mirrors: reference::combine.
//
// Bindings (group 0):
//   binding 0: params    uniform      Params
//   binding 1: gates     storage read [rows, k]
//   binding 2: responses storage read [rows, k, d_out], response of the peer in slot s
//   binding 3: mixed     storage rw   [rows, d_out]
//
// Dispatch: (ceil(d_out / 64), rows, 1); invocation (t, r) sums over s = 0..k in order.

struct Params {
    rows: u32,
    k: u32,
    d_out: u32,
    pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> gates: array<f32>;
@group(0) @binding(2) var<storage, read> responses: array<f32>;
@group(0) @binding(3) var<storage, read_write> mixed: array<f32>;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let t = gid.x;
    let r = gid.y;
    if (t >= params.d_out || r >= params.rows) {
        return;
    }
    var acc = 0.0;
    for (var s = 0u; s < params.k; s = s + 1u) {
        let slot = r * params.k + s;
        acc = acc + gates[slot] * responses[slot * params.d_out + t];
    }
    mixed[r * params.d_out + t] = acc;
}
