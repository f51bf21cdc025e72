// A read-only view of an f32 tensor's buffer four elements to a load, for staging tiles with
// wide loads; bound in place of the tensor's own view. `_get4(i)` wants i a multiple of 4
// with all four elements in the tensor, so the quad lies inside the buffer.
@group(0) @binding({{BINDING}}) var<storage, read> {{TENSOR}}: array<vec4<f32>>;
fn {{TENSOR}}_get4(i: u32) -> vec4<f32> { return {{TENSOR}}[i >> 2u]; }
