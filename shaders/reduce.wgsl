// Deterministic reductions (fixed order, no atomics), so a run repeats bit for bit.
//   inp      (n) {{IN}} at in_off          sumsq_partial: sum of squares per chunk
//            (rows, cols) {{IN}} at in_off column_sum: its input, e.g. dout of a linear layer
//   partials (groups) f32                  sumsq_partial writes from out_off, sum_final reads from in_off
//   stats    (slots) f32                   sum_final writes scale * sum into stats[out_index]
//   cols_out (cols) {{OUT}} at out_off     column_sum adds into it, e.g. dbias (a gradient)
#include "lib/round.wgsl"
#include "lib/workgroup.wgsl"

#tensor inp 0 read {{IN}}
@group(0) @binding(1) var<storage, read_write> partials: array<f32>;
@group(0) @binding(2) var<storage, read_write> stats: array<f32>;
#tensor cols_out 3 read_write {{OUT}}

struct Params {
    n: u32, chunk: u32, rows: u32, cols: u32,
    in_off: u32, out_off: u32, out_index: u32, scale: f32,
}
@group(0) @binding(4) var<uniform> p: Params;

@compute @workgroup_size(ROW_WG)
fn sumsq_partial(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let group = wg_row(wg, nwg);
    let start = group * p.chunk;
    let end = min(start + p.chunk, p.n);
    var acc = 0.0;
    for (var i = start + lid; i < end; i += ROW_WG) {
        let x = inp_get(p.in_off + i);
        acc += x * x;
    }
    acc = wg_sum(acc, lid);
    if (lid == 0u && start < p.n) { partials[p.out_off + group] = acc; }
}

@compute @workgroup_size(ROW_WG)
fn sum_final(@builtin(local_invocation_index) lid: u32) {
    var acc = 0.0;
    for (var i = lid; i < p.n; i += ROW_WG) { acc += partials[p.in_off + i]; }
    acc = wg_sum(acc, lid);
    if (lid == 0u) { stats[p.out_index] = acc * p.scale; }
}

// One workgroup per pair of columns: out[c], out[c+1] += sum over rows.
@compute @workgroup_size(ROW_WG)
fn column_sum(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let col = 2u * wg_row(wg, nwg);
    if (col >= p.cols) { return; }
    var acc = vec2<f32>(0.0);
    for (var r = lid; r < p.rows; r += ROW_WG) {
        let i = p.in_off + r * p.cols + col;
        acc += vec2<f32>(inp_get(i), inp_get(i + 1u));
    }
    let total = vec2<f32>(wg_sum(acc.x, lid), wg_sum(acc.y, lid));
    if (lid == 0u) { cols_out_set2(p.out_off + col, cols_out_get2(p.out_off + col) + total, vec2<u32>(0u, 0u)); }
}
