// Kernel: scatter each row's k slot values into a dense row over all peers,
//   dense[r, indices[r, s]] += values[r, s]   (dense zeroed by the host first).
// Mirrors: the per-row accumulation inside reference::gate_mass, reference::fisher_scores
// and the importance of reference::load_balance.
//
// Bindings (group 0):
//   binding 0: params  uniform      Params
//   binding 1: indices storage read [rows, k] u32 (checked < peers by the host)
//   binding 2: values  storage read [rows, k]
//   binding 3: dense   storage rw   [rows, peers]
//
// Dispatch: (ceil(rows / 64), 1, 1); one invocation owns a row, so repeated indices add up
// without races.

struct Params {
    rows: u32,
    k: u32,
    peers: u32,
    pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> indices: array<u32>;
@group(0) @binding(2) var<storage, read> values: array<f32>;
@group(0) @binding(3) var<storage, read_write> dense: array<f32>;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let r = gid.x;
    if (r >= params.rows) {
        return;
    }
    for (var s = 0u; s < params.k; s = s + 1u) {
        let i = indices[r * params.k + s];
        if (i < params.peers) {
            let at = r * params.peers + i;
            dense[at] = dense[at] + values[r * params.k + s];
        }
    }
}
