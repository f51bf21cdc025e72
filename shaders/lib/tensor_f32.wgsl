// A tensor stored as f32, one element per array slot. Instantiated per binding by the shader
// assembler: `$name` is the tensor's name, `$binding` its binding, `$access` read or read_write.
@group(0) @binding($binding) var<storage, $access> $name: array<f32>;
fn $name_get(i: u32) -> f32 { return $name[i]; }
fn $name_get2(i: u32) -> vec2<f32> { return vec2<f32>($name[i], $name[i + 1u]); }
//---- read_write
fn $name_set2(i: u32, value: vec2<f32>, key: vec2<u32>) { $name[i] = value.x; $name[i + 1u] = value.y; }
fn $name_set(i: u32, value: f32) { $name[i] = value; }
