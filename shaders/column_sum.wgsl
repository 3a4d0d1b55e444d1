// Kernel: column sums of a dense [rows, peers] matrix, out[j] = sum_r dense[r, j], in the
// order r = 0..rows.
// Mirrors: the sum over rows inside reference::gate_mass, reference::fisher_scores and
// reference::load_balance (importance_i = sum_x g_i(x), load_i = sum_x P(x, i)).
//
// Bindings (group 0):
//   binding 0: params uniform      Params
//   binding 1: dense  storage read [rows, peers]
//   binding 2: sums   storage rw   [peers]
//
// Dispatch: (ceil(peers / 64), 1, 1).

struct Params {
    rows: u32,
    peers: u32,
    pad0: u32,
    pad1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> dense: array<f32>;
@group(0) @binding(2) var<storage, read_write> sums: array<f32>;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let j = gid.x;
    if (j >= params.peers) {
        return;
    }
    var acc = 0.0;
    for (var r = 0u; r < params.rows; r = r + 1u) {
        acc = acc + dense[r * params.peers + j];
    }
    sums[j] = acc;
}
