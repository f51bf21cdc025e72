// A tensor stored as IEEE f16, two elements per u32 (element i lives in word i/2), read with
// unpack2x16float and written with round-to-nearest-even. get2 and set2 take an even i.
@group(0) @binding({{BINDING}}) var<storage, {{ACCESS}}> {{TENSOR}}: array<u32>;
fn {{TENSOR}}_get(i: u32) -> f32 { return unpack2x16float({{TENSOR}}[{{AT}} >> 1u])[i & 1u]; }
fn {{TENSOR}}_get2(i: u32) -> vec2<f32> { return unpack2x16float({{TENSOR}}[{{AT}} >> 1u]); }
#if WRITABLE
fn {{TENSOR}}_set2(i: u32, value: vec2<f32>, key: vec2<u32>) {
    {{TENSOR}}[{{AT}} >> 1u] = {{ROUND}}(value.x, i, key) | ({{ROUND}}(value.y, i + 1u, key) << 16u);
}
#endif
