// Token + position embedding: out[b,t,:] = wte[tokens[b,t],:] + wpe[t,:].
//   tokens  (B*T) u32
//   params  {{PARAM}}     wte (V,C) at wte_off, wpe (maxT,C) at wpe_off
//   out     (B,T,C) {{ACT}}
//   dout    (B,T,C) f32   backward input
//   dparams {{GRAD}}      backward: dwte (V,C) at dwte_off +=, dwpe (maxT,C) at dwpe_off +=
//                         (dwte also receives the tied head's share)
//   bucket_start (V+1) u32, bucket_pos (B*T) u32: the positions holding each token, sorted on
//   the CPU with the batch, so dwte needs no atomics and sums in a fixed order.
#include "lib/round.wgsl"

@group(0) @binding(0) var<storage, read> tokens: array<u32>;
#tensor params 1 read {{PARAM}}
#tensor out 2 read_write {{ACT}}
@group(0) @binding(3) var<storage, read> dout: array<f32>;
#tensor dparams 4 read_write {{GRAD}}
@group(0) @binding(5) var<storage, read> bucket_start: array<u32>;
@group(0) @binding(6) var<storage, read> bucket_pos: array<u32>;

struct Params {
    batch: u32, t: u32, c: u32, vocab: u32,
    wte_off: u32, wpe_off: u32, dwte_off: u32, dwpe_off: u32,
}
@group(0) @binding(7) var<uniform> p: Params;

fn thread_index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 { return gid.x + gid.y * nwg.x * 64u; }

@compute @workgroup_size(64)
fn embedding_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = 2u * thread_index(gid, nwg);
    if (i >= p.batch * p.t * p.c) { return; }
    let pos = i / p.c;
    let ch = i % p.c;
    let wte = params_get2(p.wte_off + tokens[pos] * p.c + ch);
    let wpe = params_get2(p.wpe_off + (pos % p.t) * p.c + ch);
    out_set2(i, wte + wpe, vec2<u32>(0u));
}

@compute @workgroup_size(64)
fn wte_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = 2u * thread_index(gid, nwg);
    if (i >= p.vocab * p.c) { return; }
    let token = i / p.c;
    let ch = i % p.c;
    var acc = vec2<f32>(0.0);
    for (var j = bucket_start[token]; j < bucket_start[token + 1u]; j++) {
        let base = bucket_pos[j] * p.c + ch;
        acc += vec2<f32>(dout[base], dout[base + 1u]);
    }
    let dst = p.dwte_off + i;
    dparams_set2(dst, dparams_get2(dst) + acc, vec2<u32>(0u));
}

@compute @workgroup_size(64)
fn wpe_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = 2u * thread_index(gid, nwg);
    if (i >= p.t * p.c) { return; }
    var acc = vec2<f32>(0.0);
    for (var b = 0u; b < p.batch; b++) {
        let base = b * p.t * p.c + i;
        acc += vec2<f32>(dout[base], dout[base + 1u]);
    }
    let dst = p.dwpe_off + i;
    dparams_set2(dst, dparams_get2(dst) + acc, vec2<u32>(0u));
}
