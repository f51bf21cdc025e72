// Row-wise softmax of scale * inp, f32 statistics, with an optional causal mask.
//   inp   (rows, len) {{IN}}   at in_off
//   out   (rows, len) {{OUT}}  at out_off
//   probs (rows, len) {{OUT}}  the forward's output, read by the backward, at out_off
//   grad  (rows, len) f32      dout in, dinp out (in place), at in_off
// Causal (causal_t = T > 0): row r is query position r % T and sees columns j <= r % T; the
// masked columns are written as 0 and get 0 gradient.
#include "lib/round.wgsl"
#include "lib/rows.wgsl"

#tensor inp 0 read {{IN}}
#tensor out 1 read_write {{OUT}}
#tensor probs 2 read {{OUT}}
@group(0) @binding(3) var<storage, read_write> grad: array<f32>;

struct Params {
    rows: u32, len: u32, scale: f32, causal_t: u32,
    in_off: u32, out_off: u32, key_step: u32, key_tensor: u32,
}
@group(0) @binding(4) var<uniform> p: Params;

fn visible_len(row: u32) -> u32 {
    if (p.causal_t == 0u) { return p.len; }
    return min(p.len, row % p.causal_t + 1u);
}

@compute @workgroup_size(ROW_GROUP)
fn softmax_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
    let valid = row_of(wg, nwg, lid) < p.rows;
    let row = min(row_of(wg, nwg, lid), p.rows - 1u);
    let lane = row_lane(lid);
    let visible = visible_len(row);
    let in_base = p.in_off + row * p.len;
    var top = ROW_LOWEST;
    for (var j = lane; j < visible; j += ROW_THREADS) { top = max(top, p.scale * inp_get(in_base + j)); }
    top = row_max(top, lid);
    var sums: RowSlots;
    for (var k = 0u; k < SLOTS_PER_THREAD; k++) {
        var s = 0.0;
        for (var j = row_slot(lane, k); j < visible; j += ROW_SLOTS) { s += exp(p.scale * inp_get(in_base + j) - top); }
        sums[k] = s;
    }
    let inv_sum = 1.0 / row_sum_slots(sums, lid);
    if (!valid) { return; }

    let out_base = p.out_off + row * p.len;
    let key = vec2<u32>(p.key_step, p.key_tensor);
#if PAIR_OUT
    for (var j = 2u * lane; j < p.len; j += 2u * ROW_THREADS) {
        let x = vec2<f32>(inp_get(in_base + j), inp_get(in_base + j + 1u));
        let e = exp(p.scale * x - top) * inv_sum;
        out_set2(out_base + j, select(vec2<f32>(0.0), e, vec2<u32>(j, j + 1u) < vec2<u32>(visible)), key);
    }
#else
    for (var j = lane; j < p.len; j += ROW_THREADS) {
        let e = exp(p.scale * inp_get(in_base + j) - top) * inv_sum;
        out_set(out_base + j, select(0.0, e, j < visible));
    }
#endif
}

// dinp_j = scale * y_j * (dout_j - sum_k y_k dout_k), written over dout.
@compute @workgroup_size(ROW_GROUP)
fn softmax_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    let valid = row_of(wg, nwg, lid) < p.rows;
    let row = min(row_of(wg, nwg, lid), p.rows - 1u);
    let lane = row_lane(lid);
    let visible = visible_len(row);
    let y_base = p.out_off + row * p.len;
    let g_base = p.in_off + row * p.len;
    var dots: RowSlots;
    for (var k = 0u; k < SLOTS_PER_THREAD; k++) {
        var s = 0.0;
        for (var j = row_slot(lane, k); j < visible; j += ROW_SLOTS) { s += probs_get(y_base + j) * grad[g_base + j]; }
        dots[k] = s;
    }
    let dot = row_sum_slots(dots, lid);
    if (!valid) { return; }
    for (var j = lane; j < p.len; j += ROW_THREADS) {
        let d = p.scale * probs_get(y_base + j) * (grad[g_base + j] - dot);
        grad[g_base + j] = select(0.0, d, j < visible);
    }
}
