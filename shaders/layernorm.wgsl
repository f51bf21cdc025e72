// LayerNorm over the last dimension, eps 1e-5, statistics in f32.
//   inp    (N, C) {{ACT}}                 at in_off
//   params {{PARAM}}                      weight (C) at w_off, bias (C) at b_off
//   out    (N, C) {{ACT}}                 at out_off
//   mean, rstd (N) f32                    saved for the backward
//   dout   (N, C) f32                     backward input
//   dinp   (N, C) f32                     backward: += the input gradient
//   dparams {{GRAD}}                      backward: += dweight (C) at dw_off, dbias (C) at db_off
#include "lib/round.wgsl"
#include "lib/rows.wgsl"
#include "lib/workgroup.wgsl"

#tensor inp 0 read {{ACT}}
#tensor params 1 read {{PARAM}}
#tensor out 2 read_write {{ACT}}
@group(0) @binding(3) var<storage, read_write> mean: array<f32>;
@group(0) @binding(4) var<storage, read_write> rstd: array<f32>;
@group(0) @binding(5) var<storage, read> dout: array<f32>;
@group(0) @binding(6) var<storage, read_write> dinp: array<f32>;
#tensor dparams 7 read_write {{GRAD}}

struct Params {
    rows: u32, c: u32, in_off: u32, out_off: u32,
    w_off: u32, b_off: u32, dw_off: u32, db_off: u32,
}
@group(0) @binding(8) var<uniform> p: Params;

// C is even, so each thread writes whole pairs.
@compute @workgroup_size(ROW_GROUP)
fn layernorm_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let valid = row_of(wg, nwg, lid) < p.rows;
    let row = min(row_of(wg, nwg, lid), p.rows - 1u);
    let lane = row_lane(lid);
    let base = p.in_off + row * p.c;
    var sums: RowSlots;
    for (var k = 0u; k < SLOTS_PER_THREAD; k++) {
        var s = 0.0;
        for (var j = row_slot(lane, k); j < p.c; j += ROW_SLOTS) { s += inp_get(base + j); }
        sums[k] = s;
    }
    let mu = row_sum_slots(sums, lid) / f32(p.c);
    var squares: RowSlots;
    for (var k = 0u; k < SLOTS_PER_THREAD; k++) {
        var s = 0.0;
        for (var j = row_slot(lane, k); j < p.c; j += ROW_SLOTS) { let d = inp_get(base + j) - mu; s += d * d; }
        squares[k] = s;
    }
    let rs = inverseSqrt(row_sum_slots(squares, lid) / f32(p.c) + 1e-5);
    if (!valid) { return; }
    for (var j = 2u * lane; j < p.c; j += 2u * ROW_THREADS) {
        let x = vec2<f32>(inp_get(base + j), inp_get(base + j + 1u));
        let w = params_get2(p.w_off + j);
        let b = params_get2(p.b_off + j);
        out_set2(p.out_off + row * p.c + j, (x - mu) * rs * w + b, vec2<u32>(0u));
    }
    if (lane == 0u) { mean[row] = mu; rstd[row] = rs; }
}

// dinp += rstd * (dnorm - mean(dnorm) - xhat * mean(dnorm * xhat)), dnorm = dout * weight.
@compute @workgroup_size(ROW_GROUP)
fn layernorm_backward_input(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                            @builtin(local_invocation_index) lid: u32) {
    let valid = row_of(wg, nwg, lid) < p.rows;
    let row = min(row_of(wg, nwg, lid), p.rows - 1u);
    let lane = row_lane(lid);
    let base = p.in_off + row * p.c;
    let g_base = row * p.c;
    let mu = mean[row];
    let rs = rstd[row];
    var sums_dnorm: RowSlots;
    var sums_dnorm_xhat: RowSlots;
    for (var k = 0u; k < SLOTS_PER_THREAD; k++) {
        var s = 0.0;
        var s_xhat = 0.0;
        for (var j = row_slot(lane, k); j < p.c; j += ROW_SLOTS) {
            let dnorm = dout[g_base + j] * params_get(p.w_off + j);
            s += dnorm;
            s_xhat += dnorm * (inp_get(base + j) - mu) * rs;
        }
        sums_dnorm[k] = s;
        sums_dnorm_xhat[k] = s_xhat;
    }
    let mean_dnorm = row_sum_slots(sums_dnorm, lid) / f32(p.c);
    let mean_dnorm_xhat = row_sum_slots(sums_dnorm_xhat, lid) / f32(p.c);
    if (!valid) { return; }
    for (var j = lane; j < p.c; j += ROW_THREADS) {
        let dnorm = dout[g_base + j] * params_get(p.w_off + j);
        let xhat = (inp_get(base + j) - mu) * rs;
        dinp[g_base + j] += rs * (dnorm - mean_dnorm - xhat * mean_dnorm_xhat);
    }
}

// One workgroup per channel pair: dweight += sum_rows dout * xhat, dbias += sum_rows dout.
@compute @workgroup_size(ROW_WG)
fn layernorm_backward_params(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                             @builtin(local_invocation_index) lid: u32) {
    let col = 2u * wg_row(wg, nwg);
    if (col >= p.c) { return; }
    var dw = vec2<f32>(0.0);
    var db = vec2<f32>(0.0);
    for (var r = lid; r < p.rows; r += ROW_WG) {
        let g = vec2<f32>(dout[r * p.c + col], dout[r * p.c + col + 1u]);
        let i = p.in_off + r * p.c + col;
        let xhat = (vec2<f32>(inp_get(i), inp_get(i + 1u)) - mean[r]) * rstd[r];
        dw += g * xhat;
        db += g;
    }
    let dw_total = vec2<f32>(wg_sum(dw.x, lid), wg_sum(dw.y, lid));
    let db_total = vec2<f32>(wg_sum(db.x, lid), wg_sum(db.y, lid));
    if (lid == 0u) {
        dparams_set2(p.dw_off + col, dparams_get2(p.dw_off + col) + dw_total, vec2<u32>(0u));
        dparams_set2(p.db_off + col, dparams_get2(p.db_off + col) + db_total, vec2<u32>(0u));
    }
}
