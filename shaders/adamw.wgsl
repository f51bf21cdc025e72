// One AdamW step (PyTorch's order) over every parameter in one dispatch, two per thread.
//   param  (n) {{PARAM}}  the weights the forward reads; written with the mode's rounding
//   grad   (n) {{GRAD}}
//   m, v   (n) {{STATE}}  first and second moments
//   master (n) f32        fp32 master weights (mixed precision only); param is then its
//                         round-to-nearest bf16 copy
//   stats  f32            stats[1] = sum of squared gradients, for global-norm clipping
// Elements [0, n_decay) are 2-D weights and get weight decay. The whole update runs in f32
// from the upcast values; the unrounded new m and v drive the step, then p, m, v are rounded
// to storage, each with its own SR bits (tensor ids SR_PARAM, SR_M, SR_V, set by
// src/kernels/adamw.rs) when stored as bf16_sr.
#include "lib/round.wgsl"

#tensor param 0 read_write {{PARAM}}
#tensor grad 1 read {{GRAD}}
#tensor m 2 read_write {{STATE}}
#tensor v 3 read_write {{STATE}}
#if MASTER
@group(0) @binding(4) var<storage, read_write> master: array<f32>;
#endif
@group(0) @binding(5) var<storage, read> stats: array<f32>;

struct Params {
    n: u32, n_decay: u32, lr: f32, beta1: f32,
    beta2: f32, eps: f32, weight_decay: f32, bias_correction1: f32,
    bias_correction2: f32, max_norm: f32, step: u32, seed: u32,
}
@group(0) @binding(6) var<uniform> p: Params;

@compute @workgroup_size(64)
fn adamw_update(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = 2u * (gid.x + gid.y * nwg.x * 64u);
    if (i >= p.n) { return; }
    var clip = 1.0;
    if (p.max_norm > 0.0) { clip = min(1.0, p.max_norm / (sqrt(stats[1]) + 1e-6)); }
    let g = grad_get2(i) * clip;
#if MASTER
    var w = vec2<f32>(master[i], master[i + 1u]);
#else
    var w = param_get2(i);
#endif
    let decay = vec2<f32>(select(1.0, 1.0 - p.lr * p.weight_decay, i < p.n_decay),
                          select(1.0, 1.0 - p.lr * p.weight_decay, i + 1u < p.n_decay));
    w *= decay;
    let m_new = p.beta1 * m_get2(i) + (1.0 - p.beta1) * g;
    let v_new = p.beta2 * v_get2(i) + (1.0 - p.beta2) * g * g;
    let step_size = p.lr / p.bias_correction1;
    w -= step_size * m_new / (sqrt(v_new) / sqrt(p.bias_correction2) + p.eps);
#if MASTER
    master[i] = w.x;
    master[i + 1u] = w.y;
#endif
    param_set2(i, w, vec2<u32>(p.step, {{SR_PARAM}}u ^ p.seed));
    m_set2(i, m_new, vec2<u32>(p.step, {{SR_M}}u ^ p.seed));
    v_set2(i, v_new, vec2<u32>(p.step, {{SR_V}}u ^ p.seed));
}
