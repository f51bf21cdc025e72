// Row kernels: a workgroup of ROW_GROUP threads handles ROWS_PER_GROUP rows, ROW_THREADS
// threads to a row. On a CPU adapter one thread per row is fastest (no barriers; lanes run
// rows side by side); on GPUs a row is shared by a few threads. The kernel's Rust side picks
// ROW_THREADS for the adapter. Rows past the end compute on the last row and write nothing:
// barriers (and subgroup operations) need every thread of the workgroup.
// With ROW_SUBGROUP, a row's threads are exactly one subgroup (ROW_THREADS = the adapter's
// fixed subgroup size) and the reductions are subgroup operations instead of barriers.
#if ROW_SUBGROUP
#include "lib/subgroups.wgsl"
#endif
const ROW_GROUP: u32 = 64u;
const ROW_THREADS: u32 = {{ROW_THREADS}}u;
const ROWS_PER_GROUP: u32 = ROW_GROUP / ROW_THREADS;
var<workgroup> row_scratch: array<f32, ROW_GROUP>;

fn row_of(wg: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wg.x + wg.y * nwg.x) * ROWS_PER_GROUP + lid / ROW_THREADS;
}

fn row_lane(lid: u32) -> u32 { return lid % ROW_THREADS; }

#if ROW_SUBGROUP
// Sum over the subgroup (= lid's row); every thread gets the total.
fn row_sum(x: f32, lid: u32) -> f32 {
    return subgroupAdd(x);
}

fn row_max(x: f32, lid: u32) -> f32 {
    return subgroupMax(x);
}
#else
// Sum over the ROW_THREADS threads sharing lid's row; every thread gets the total.
fn row_sum(x: f32, lid: u32) -> f32 {
    if (ROW_THREADS == 1u) { return x; }
    row_scratch[lid] = x;
    workgroupBarrier();
    for (var stride = ROW_THREADS / 2u; stride > 0u; stride >>= 1u) {
        if (lid % ROW_THREADS < stride) { row_scratch[lid] += row_scratch[lid + stride]; }
        workgroupBarrier();
    }
    let total = row_scratch[lid - lid % ROW_THREADS];
    workgroupBarrier();
    return total;
}

fn row_max(x: f32, lid: u32) -> f32 {
    if (ROW_THREADS == 1u) { return x; }
    row_scratch[lid] = x;
    workgroupBarrier();
    for (var stride = ROW_THREADS / 2u; stride > 0u; stride >>= 1u) {
        if (lid % ROW_THREADS < stride) { row_scratch[lid] = max(row_scratch[lid], row_scratch[lid + stride]); }
        workgroupBarrier();
    }
    let top = row_scratch[lid - lid % ROW_THREADS];
    workgroupBarrier();
    return top;
}
#endif

// Lowest finite f32: the start of a max-reduction (WGSL has no -inf literal).
const ROW_LOWEST: f32 = -3.4028234e38;
