// A tensor stored as f32, one element per array slot. Instantiated once per `#tensor` line
// (shaders/README.md); this copy: `{{TENSOR}}`, binding {{BINDING}}, {{ACCESS}}. Element i
// is slot {{AT}} of the binding (i itself unless the binding starts inside the tensor).
@group(0) @binding({{BINDING}}) var<storage, {{ACCESS}}> {{TENSOR}}: array<f32>;
fn {{TENSOR}}_get(i: u32) -> f32 { return {{TENSOR}}[{{AT}}]; }
fn {{TENSOR}}_get2(i: u32) -> vec2<f32> { return vec2<f32>({{TENSOR}}[{{AT}}], {{TENSOR}}[{{AT}} + 1u]); }
#if WRITABLE
fn {{TENSOR}}_set2(i: u32, value: vec2<f32>, key: vec2<u32>) { {{TENSOR}}[{{AT}}] = value.x; {{TENSOR}}[{{AT}} + 1u] = value.y; }
fn {{TENSOR}}_set(i: u32, value: f32) { {{TENSOR}}[{{AT}}] = value; }
#endif
