// Softmax and cross-entropy fused: per-position loss and, in the same pass, dlogits.
//   logits  (rows, padded_vocab) f32  read, then overwritten with dlogits when write_grad != 0
//   targets (first_row + rows) u32, from first_row
//   losses  (first_row + rows) f32, from first_row: -log softmax(logits[.., :vocab])[target]
// The logits may be a chunk of the batch's rows (the head computed a chunk at a time):
// logits row r is the batch's row first_row + r. Columns vocab..padded_vocab are the padding
// rows of the embedding (see ModelConfig::padded_vocab): never in the softmax, and their
// dlogits are 0, so the padding gets no gradient.
// dlogits = (softmax(logits) - onehot(target)) * grad_scale, with grad_scale = 1/rows for a
// mean loss. Stable for any finite logits: exp only ever sees values <= 0.
#include "lib/rows.wgsl"

@group(0) @binding(0) var<storage, read_write> logits: array<f32>;
@group(0) @binding(1) var<storage, read> targets: array<u32>;
@group(0) @binding(2) var<storage, read_write> losses: array<f32>;

struct Params { rows: u32, vocab: u32, padded_vocab: u32, grad_scale: f32, write_grad: u32, first_row: u32, _pad0: u32, _pad1: u32 }
@group(0) @binding(3) var<uniform> p: Params;

@compute @workgroup_size(ROW_GROUP)
fn cross_entropy_forward_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                                  @builtin(local_invocation_index) lid: u32) {
    let valid = row_of(wg, nwg, lid) < p.rows;
    let row = min(row_of(wg, nwg, lid), p.rows - 1u);
    let lane = row_lane(lid);
    let base = row * p.padded_vocab;
    var top = ROW_LOWEST;
    for (var j = lane; j < p.vocab; j += ROW_THREADS) { top = max(top, logits[base + j]); }
    top = row_max(top, lid);
    let target_id = targets[p.first_row + row];
    // read before the barrier in row_sum: after it, other threads overwrite the row
    let target_logit = logits[base + target_id];
    var sums: RowSlots;
    for (var k = 0u; k < SLOTS_PER_THREAD; k++) {
        var s = 0.0;
        for (var j = row_slot(lane, k); j < p.vocab; j += ROW_SLOTS) { s += exp(logits[base + j] - top); }
        sums[k] = s;
    }
    let log_sum = top + log(row_sum_slots(sums, lid));
    if (!valid) { return; }
    if (lane == 0u) { losses[p.first_row + row] = log_sum - target_logit; }
    if (p.write_grad != 0u) {
        for (var j = lane; j < p.padded_vocab; j += ROW_THREADS) {
            var dlogit = 0.0;
            if (j < p.vocab) { dlogit = (exp(logits[base + j] - log_sum) - select(0.0, 1.0, j == target_id)) * p.grad_scale; }
            logits[base + j] = dlogit;
        }
    }
}
