// GELU, tanh form: y = x/2 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3))).
//   inp  (n) {{ACT}}  pre-activation, saved by the forward
//   out  (n) {{ACT}}
//   grad (n) f32      backward: dout in, dinp out (in place)
#include "lib/round.wgsl"
#include "lib/gelu.wgsl"

#tensor inp 0 read {{ACT}}
#tensor out 1 read_write {{ACT}}
@group(0) @binding(2) var<storage, read_write> grad: array<f32>;

struct Params { n: u32, in_off: u32, out_off: u32, _pad: u32 }
@group(0) @binding(3) var<uniform> p: Params;


@compute @workgroup_size(64)
fn gelu_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = 2u * (gid.x + gid.y * nwg.x * 64u);
    if (i >= p.n) { return; }
    let x = inp_get2(p.in_off + i);
    out_set2(p.out_off + i, gelu(x), vec2<u32>(0u));
}

@compute @workgroup_size(64)
fn gelu_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = 2u * (gid.x + gid.y * nwg.x * 64u);
    if (i >= p.n) { return; }
    let x = inp_get2(p.in_off + i);
    let t = gelu_tanh(x);
    let dtanh = (1.0 - t * t) * GELU_SCALE * (1.0 + 3.0 * 0.044715 * x * x);
    let local_grad = 0.5 * (1.0 + t) + 0.5 * x * dtanh;
    grad[i] *= local_grad.x;
    grad[i + 1u] *= local_grad.y;
}
