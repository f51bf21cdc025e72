// A read-only view of an f32 tensor's buffer four elements to a load, for staging tiles with
// wide loads. Bound beside the tensor's own binding (the same buffer); `$name_get4(i)` wants
// i a multiple of 4 (buffers are sized to a multiple of 16 bytes, so the last quad exists).
@group(0) @binding($binding) var<storage, read> $name: array<vec4<f32>>;
fn $name_get4(i: u32) -> vec4<f32> { return $name[i >> 2u]; }
