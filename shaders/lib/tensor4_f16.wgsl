// A read-only view of an f16 tensor's buffer four elements (two u32 words) to a load; see
// tensor4_f32.wgsl. `_get4(i)` wants i a multiple of 4.
@group(0) @binding({{BINDING}}) var<storage, read> {{TENSOR}}: array<vec2<u32>>;
fn {{TENSOR}}_get4(i: u32) -> vec4<f32> {
    let words = {{TENSOR}}[i >> 2u];
    return vec4<f32>(unpack2x16float(words.x), unpack2x16float(words.y));
}
