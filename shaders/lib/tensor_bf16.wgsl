// A tensor stored as bf16, two elements per u32 (element i lives in word i/2). `{{ROUND}}` is
// the rounding used on writes (bf16_bits_rtn or bf16_bits_sr). get2 and set2 take an even i.
@group(0) @binding({{BINDING}}) var<storage, {{ACCESS}}> {{TENSOR}}: array<u32>;
fn {{TENSOR}}_get(i: u32) -> f32 {
    let word = {{TENSOR}}[{{AT}} >> 1u];
    return bitcast<f32>(select(word << 16u, word & 0xffff0000u, (i & 1u) == 1u));
}
fn {{TENSOR}}_get2(i: u32) -> vec2<f32> { return bf16x2_to_f32({{TENSOR}}[{{AT}} >> 1u]); }
#if WRITABLE
fn {{TENSOR}}_set2(i: u32, value: vec2<f32>, key: vec2<u32>) {
    {{TENSOR}}[{{AT}} >> 1u] = {{ROUND}}(value.x, i, key) | ({{ROUND}}(value.y, i + 1u, key) << 16u);
}
#endif
