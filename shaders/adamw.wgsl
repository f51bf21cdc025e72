// One AdamW step (PyTorch's order) over every parameter, two per thread: in one dispatch, or
// where the block is larger than one binding may be, in pieces [first, first + n) bound as
// windows of the buffers (the SR bits and the decay keyed by the element's index in the
// whole block, so the pieces write the same bits).
//   param  (n) {{PARAM}}  the weights the forward reads; written with the mode's rounding
//   grad   (n) {{GRAD}}
//   m, v   (n) {{STATE}}  first and second moments
//   master (n) f32        MASTER (mixed): fp32 master weights; param is their RTN bf16 copy
//   comp   (n) bf16       KAHAN (bf16-kahan): compensation c; the kept weight is param + c
//   stats  f32            stats[1] = sum of squared gradients, for global-norm clipping
//   fidelity (4, groups) f32  FIDELITY: per workgroup, sums of applied * intended and
//                         intended^2, and counts of moving and of lost elements (one row each)
// n is even. Elements [0, n_decay) are 2-D weights and get weight decay. The whole update runs in f32
// from the upcast values; the unrounded new m and v drive the step, then p, m, v are rounded
// to storage, each with its own SR bits (tensor ids SR_PARAM, SR_M, SR_V, set by
// src/kernels/adamw.rs) when stored as bf16_sr.
//
// The kept weight w is what the mode keeps of a parameter: param itself, the master copy, or
// param + comp. The intended change is AdamW's step from w (decay included) in f32; the
// applied change is how w moved once written back. Their ratio shows how much of each update
// survives rounding.
#include "lib/round.wgsl"
#include "lib/workgroup.wgsl"

#tensor param 0 read_write {{PARAM}} from=p.first
#tensor grad 1 read {{GRAD}} from=p.first
#tensor m 2 read_write {{STATE}} from=p.first
#tensor v 3 read_write {{STATE}} from=p.first
#if MASTER
@group(0) @binding(4) var<storage, read_write> master: array<f32>;
#endif
#if KAHAN
#tensor comp 4 read_write bf16 from=p.first
#endif
@group(0) @binding(5) var<storage, read> stats: array<f32>;
#if FIDELITY
@group(0) @binding(7) var<storage, read_write> fidelity: array<f32>;
#endif

// n: elements of this piece, from element `first` of the block; its workgroups' fidelity sums
// go to columns [group_first, ...) of the `groups` columns of all the pieces.
struct Params {
    n: u32, n_decay: u32, lr: f32, beta1: f32,
    beta2: f32, eps: f32, weight_decay: f32, bias_correction1: f32,
    bias_correction2: f32, max_norm: f32, step: u32, seed: u32,
    first: u32, group_first: u32, groups: u32, _pad0: u32,
}
@group(0) @binding(6) var<uniform> p: Params;

// The kept weights of elements i and i + 1.
fn kept(i: u32) -> vec2<f32> {
#if MASTER
    return vec2<f32>(master[i - p.first], master[i - p.first + 1u]);
#else
#if KAHAN
    return param_get2(i) + comp_get2(i);
#else
    return param_get2(i);
#endif
#endif
}

// Writes the new kept weights w (param rounded as the mode rounds; master or compensation
// beside it) and returns the kept weights as written.
fn write_kept(i: u32, w: vec2<f32>) -> vec2<f32> {
    let key = vec2<u32>(p.step, {{SR_PARAM}}u ^ p.seed);
    param_set2(i, w, key);
#if MASTER
    master[i - p.first] = w.x;
    master[i - p.first + 1u] = w.y;
    return w;
#else
#if KAHAN
    // c' = RTN(w - p'): the part of w that bf16 p' could not hold
    let p_new = param_get2(i);
    comp_set2(i, w - p_new, key);
    return p_new + comp_get2(i);
#else
    return param_get2(i);
#endif
#endif
}

// One AdamW update of elements i and i + 1 of the block; returns their (applied * intended, intended^2,
// moving, lost) when the fidelity is measured.
fn update_pair(i: u32) -> vec4<f32> {
    var clip = 1.0;
    if (p.max_norm > 0.0) { clip = min(1.0, p.max_norm / (sqrt(stats[1]) + 1e-6)); }
    let g = grad_get2(i) * clip;
    let w_old = kept(i);
    let decay = vec2<f32>(select(1.0, 1.0 - p.lr * p.weight_decay, i < p.n_decay),
                          select(1.0, 1.0 - p.lr * p.weight_decay, i + 1u < p.n_decay));
    let m_new = p.beta1 * m_get2(i) + (1.0 - p.beta1) * g;
    let v_new = p.beta2 * v_get2(i) + (1.0 - p.beta2) * g * g;
    let step_size = p.lr / p.bias_correction1;
    let adam_step = step_size * m_new / (sqrt(v_new) / sqrt(p.bias_correction2) + p.eps);
    let w_new = w_old * decay - adam_step;
    let w_kept = write_kept(i, w_new);
    m_set2(i, m_new, vec2<u32>(p.step, {{SR_M}}u ^ p.seed));
    v_set2(i, v_new, vec2<u32>(p.step, {{SR_V}}u ^ p.seed));
    let intended = w_old * (decay - 1.0) - adam_step;
    let applied = w_kept - w_old;
    let moving = select(vec2<f32>(0.0), vec2<f32>(1.0), intended != vec2<f32>(0.0));
    let lost = select(vec2<f32>(0.0), moving, applied == vec2<f32>(0.0));
    return vec4<f32>(dot(applied, intended), dot(intended, intended), moving.x + moving.y, lost.x + lost.y);
}

// Each thread updates PAIRS pairs, strided by the whole grid, so that a workgroup's fidelity
// sum (barriers, dear on CPU adapters) covers 64 * PAIRS pairs.
const PAIRS: u32 = {{PAIRS}}u;

@compute @workgroup_size(64)
fn adamw_update(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let threads = nwg.x * nwg.y * 64u;
    let thread = gid.x + gid.y * nwg.x * 64u;
    var fid = vec4<f32>(0.0);
    for (var k = 0u; k < PAIRS; k++) {
        let i = 2u * (thread + k * threads);
        if (i < p.n) { fid += update_pair(p.first + i); }
    }
#if FIDELITY
    // a fixed-order sum over the workgroup (every thread takes part: barriers need them all)
    let total = wg_sum4(fid, lid);
    if (lid == 0u) {
        let group = p.group_first + wg.x + wg.y * nwg.x;
        for (var k = 0u; k < 4u; k++) { fidelity[k * p.groups + group] = total[k]; }
    }
#endif
}
