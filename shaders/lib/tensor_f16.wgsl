// A tensor stored as IEEE f16, two elements per u32 (element i lives in word i/2), read with
// unpack2x16float and written with round-to-nearest-even. get2 and set2 take an even i.
@group(0) @binding($binding) var<storage, $access> $name: array<u32>;
fn $name_get(i: u32) -> f32 { return unpack2x16float($name[i >> 1u])[i & 1u]; }
fn $name_get2(i: u32) -> vec2<f32> { return unpack2x16float($name[i >> 1u]); }
//---- read_write
fn $name_set2(i: u32, value: vec2<f32>, key: vec2<u32>) {
    $name[i >> 1u] = $round(value.x, i, key) | ($round(value.y, i + 1u, key) << 16u);
}
