// A read-only view of an f32 tensor's buffer four elements to a load, for staging tiles with
// wide loads; bound in place of the tensor's own view. `$name_get4(i)` wants i a multiple of 4
// with all four elements in the tensor, so the quad lies inside the buffer.
@group(0) @binding($binding) var<storage, read> $name: array<vec4<f32>>;
fn $name_get4(i: u32) -> vec4<f32> { return $name[i >> 2u]; }
