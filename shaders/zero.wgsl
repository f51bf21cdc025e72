// zero: a gradient cleared before the backward kernels accumulate into it (llm.c's rule:
// gradients start at zero and every backward adds). Works on the raw words, so one kernel
// serves every storage type: the all-zero bit pattern is +0.0 in f32, bf16 and f16 alike.
//   words (n) u32 at off   the tensor's words: n elements of f32, or n/2 words of packed 16-bit
// Each thread clears WORDS_PER_THREAD words strided by the whole grid (neighbouring threads
// still write neighbouring words): a thread per word spends more on starting threads than on
// the stores, on CPU adapters most of all.

@group(0) @binding(0) var<storage, read_write> words: array<u32>;

struct Params { n: u32, off: u32, _pad0: u32, _pad1: u32 }
@group(0) @binding(1) var<uniform> p: Params;

const WORDS_PER_THREAD: u32 = {{WORDS_PER_THREAD}}u;

@compute @workgroup_size(64)
fn zero(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let threads = nwg.x * nwg.y * 64u;
    let thread = gid.x + gid.y * nwg.x * 64u;
    for (var k = 0u; k < WORDS_PER_THREAD; k++) {
        let i = thread + k * threads;
        if (i < p.n) { words[p.off + i] = 0u; }
    }
}
