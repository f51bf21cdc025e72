// Per-thread random bits: the 3-D PCG hash pcg3d
// (Jarzynski & Olano, "Hash Functions for GPU Rendering", JCGT 2020).
// The bits for element i of tensor t at step s are pcg3d(vec3(i, s, t ^ seed)).x, a pure
// function of (seed, tensor, step, index): a run is reproducible whatever the dispatch shape.

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
