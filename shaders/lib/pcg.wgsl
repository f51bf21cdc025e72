// Per-thread random bits: the PCG hash and its 3-D form pcg3d
// (Jarzynski & Olano, "Hash Functions for GPU Rendering", JCGT 2020).
// The bits for element i of tensor t at step s are pcg3d(vec3(i, s, t ^ seed)).x, a pure
// function of (seed, tensor, step, index): a run is reproducible whatever the dispatch shape.

fn pcg_hash(v: u32) -> u32 {
    let state = v * 747796405u + 2891336453u;
    let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
    return (word >> 22u) ^ word;
}

fn pcg3d(seed: vec3<u32>) -> vec3<u32> {
    var v = seed * 1664525u + 1013904223u;
    v.x += v.y * v.z;
    v.y += v.z * v.x;
    v.z += v.x * v.y;
    v ^= v >> vec3<u32>(16u);
    v.x += v.y * v.z;
    v.y += v.z * v.x;
    v.z += v.x * v.y;
    return v;
}

// key = (step, tensor_id ^ seed)
fn random_bits(index: u32, key: vec2<u32>) -> u32 {
    return pcg3d(vec3<u32>(index, key.x, key.y)).x;
}
