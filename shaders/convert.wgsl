// Elementwise storage conversion: dst = round(src), two elements per thread.
//   src (n) {{SRC}} at src_off
//   dst (n) {{DST}} at dst_off, written with the rounding of its storage type (RTN or SR; the
//           SR bits are those of element dst_off + i under key (key_step, key_tensor))
#include "lib/round.wgsl"

#tensor src 0 read {{SRC}}
#tensor dst 1 read_write {{DST}}

struct Params { n: u32, src_off: u32, dst_off: u32, key_step: u32, key_tensor: u32, _pad0: u32, _pad1: u32, _pad2: u32 }
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(64)
fn convert(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = 2u * (gid.x + gid.y * nwg.x * 64u);
    if (i >= p.n) { return; }
    let last = p.n - 1u;
    let v = vec2<f32>(src_get(p.src_off + i), src_get(p.src_off + min(i + 1u, last)));
#if PAIR_DST
    dst_set2(p.dst_off + i, v, vec2<u32>(p.key_step, p.key_tensor));
#else
    dst_set(p.dst_off + i, v.x);
    if (i + 1u < p.n) { dst_set(p.dst_off + i + 1u, v.y); }
#endif
}
