// A sum across one workgroup of ROW_WG threads, for the kernels that give a workgroup to a
// column or a block (layernorm's dweight and dbias, the reductions of reduce.wgsl, AdamW's
// fidelity sums). Call from uniform control flow.
const ROW_WG: u32 = 64u;
var<workgroup> wg_scratch: array<f32, ROW_WG>;

fn wg_sum(x: f32, lid: u32) -> f32 {
    wg_scratch[lid] = x;
    workgroupBarrier();
    for (var stride = ROW_WG / 2u; stride > 0u; stride >>= 1u) {
        if (lid < stride) { wg_scratch[lid] += wg_scratch[lid + stride]; }
        workgroupBarrier();
    }
    let total = wg_scratch[0];
    workgroupBarrier();
    return total;
}

// wg_sum of four values at once (one pass of barriers, not four).
var<workgroup> wg_scratch4: array<vec4<f32>, ROW_WG>;

fn wg_sum4(x: vec4<f32>, lid: u32) -> vec4<f32> {
    wg_scratch4[lid] = x;
    workgroupBarrier();
    for (var stride = ROW_WG / 2u; stride > 0u; stride >>= 1u) {
        if (lid < stride) { wg_scratch4[lid] += wg_scratch4[lid + stride]; }
        workgroupBarrier();
    }
    let total = wg_scratch4[0];
    workgroupBarrier();
    return total;
}

// Rows beyond 65535 workgroups spill into the y dimension of the dispatch.
fn wg_row(wg: vec3<u32>, nwg: vec3<u32>) -> u32 { return wg.x + wg.y * nwg.x; }
