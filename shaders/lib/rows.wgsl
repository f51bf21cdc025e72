// Row kernels: a workgroup of ROW_GROUP threads handles ROWS_PER_GROUP rows, ROW_THREADS
// threads to a row. On a CPU adapter one thread per row is fastest (no barriers; lanes run
// rows side by side); on GPUs a row is shared by a few threads. The kernel's Rust side picks
// ROW_THREADS for the adapter. Rows past the end compute on the last row and write nothing:
// barriers (and subgroup operations) need every thread of the workgroup.
// With ROW_SUBGROUP, a row's threads are exactly one subgroup (ROW_THREADS = the adapter's
// fixed subgroup size) and the reductions are subgroup operations instead of barriers.
//
// Sums over a row have one order, whatever ROW_THREADS and with or without subgroups, so the
// tuned choice never changes a bit: element j goes to slot j % ROW_SLOTS, each slot adds its
// elements in increasing j, and the slots are added as a fixed pairwise tree (slot s +=
// slot s + stride for stride = ROW_SLOTS/2, ..., 1). A thread owns the slots lane + k *
// ROW_THREADS (k < SLOTS_PER_THREAD): the tree's wide strides are its own, the rest cross
// threads. A caller fills a thread's slots as
//     var acc: RowSlots;
//     for (var k = 0u; k < SLOTS_PER_THREAD; k++) {
//         var s = 0.0;
//         for (var j = row_slot(lane, k); j < len; j += ROW_SLOTS) { s += x(j); }
//         acc[k] = s;
//     }
//     let total = row_sum_slots(acc, lid);
// (Maxima need no such care: max is exact in any order.)
#if ROW_SUBGROUP
#include "lib/subgroups.wgsl"
#endif
const ROW_GROUP: u32 = 64u;
const ROW_THREADS: u32 = {{ROW_THREADS}}u;
const ROWS_PER_GROUP: u32 = ROW_GROUP / ROW_THREADS;
var<workgroup> row_scratch: array<f32, ROW_GROUP>;
const ROW_SLOTS: u32 = 64u;
const SLOTS_PER_THREAD: u32 = ROW_SLOTS / ROW_THREADS;
alias RowSlots = array<f32, SLOTS_PER_THREAD>;

// The k-th slot of a row's thread `lane`.
fn row_slot(lane: u32, k: u32) -> u32 { return lane + k * ROW_THREADS; }

// The sum of a row's slots in the canonical order; every thread of the row gets it.
fn row_sum_slots(acc: RowSlots, lid: u32) -> f32 {
    var a = acc;
    for (var stride = SLOTS_PER_THREAD / 2u; stride > 0u; stride >>= 1u) {
        for (var k = 0u; k < stride; k++) { a[k] += a[k + stride]; }
    }
    return row_sum(a[0], lid);
}

fn row_of(wg: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wg.x + wg.y * nwg.x) * ROWS_PER_GROUP + lid / ROW_THREADS;
}

fn row_lane(lid: u32) -> u32 { return lid % ROW_THREADS; }

#if ROW_SUBGROUP
// Sum over the subgroup (= lid's row) in the tree order of the barrier version below: at
// each stride, lane s adds lane s ^ stride's value, which for s < stride is the tree's
// slot s + stride (and for the others the same two values, added the other way round: the
// same bits), so every lane ends with the tree's total. subgroupAdd's order is the driver's.
fn row_sum(x: f32, lid: u32) -> f32 {
    var total = x;
    for (var stride = ROW_THREADS / 2u; stride > 0u; stride >>= 1u) {
        total += subgroupShuffleXor(total, stride);
    }
    return total;
}

fn row_max(x: f32, lid: u32) -> f32 {
    return subgroupMax(x);
}
#else
// Sum over the ROW_THREADS threads sharing lid's row as a pairwise tree; every thread gets
// the total.
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
