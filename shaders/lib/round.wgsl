// f32 <-> bf16 / f16 conversions on raw bits. WGSL has no bf16 type, so 16-bit values live two
// to a u32: element 2j in the low half, element 2j+1 in the high half.
#include "lib/pcg.wgsl"

fn bf16_lo(word: u32) -> f32 { return bitcast<f32>(word << 16u); }
fn bf16_hi(word: u32) -> f32 { return bitcast<f32>(word & 0xffff0000u); }
fn bf16x2_to_f32(word: u32) -> vec2<f32> { return vec2<f32>(bf16_lo(word), bf16_hi(word)); }

fn is_nan_bits(bits: u32) -> bool { return (bits & 0x7fffffffu) > 0x7f800000u; }

// Round to nearest, ties to even. NaN stays NaN (quieted, sign and top payload kept).
fn bf16_bits_rtn(x: f32, index: u32, key: vec2<u32>) -> u32 {
    let bits = bitcast<u32>(x);
    if (is_nan_bits(bits)) { return (bits >> 16u) | 0x40u; }
    return (bits + 0x7fffu + ((bits >> 16u) & 1u)) >> 16u;
}

// Stochastic rounding: add 16 random bits below the cut, then truncate. Rounds up with
// probability equal to the dropped fraction, so E[result] = x. Inf and NaN pass unchanged.
fn bf16_bits_sr(x: f32, index: u32, key: vec2<u32>) -> u32 {
    let bits = bitcast<u32>(x);
    if ((bits & 0x7f800000u) == 0x7f800000u) { return bf16_bits_rtn(x, index, key); }
    return (bits + (random_bits(index, key) & 0xffffu)) >> 16u;
}

// f32 -> f16, round to nearest even, with f16 subnormals, overflow to Inf and quiet NaN,
// bit-identical to the `half` crate (pack2x16float leaves some of these cases open).
fn f16_bits_rtn(x: f32, index: u32, key: vec2<u32>) -> u32 {
    let bits = bitcast<u32>(x);
    let sign = (bits >> 16u) & 0x8000u;
    let exp_bits = bits & 0x7f800000u;
    let man = bits & 0x007fffffu;
    if (exp_bits == 0x7f800000u) {
        return sign | 0x7c00u | select(0u, 0x200u, man != 0u) | (man >> 13u);
    }
    let half_exp = i32(exp_bits >> 23u) - 127 + 15;
    if (half_exp >= 31) { return sign | 0x7c00u; }
    if (half_exp <= 0) {
        if (14 - half_exp > 24) { return sign; }
        let full_man = man | 0x00800000u;
        let shift = u32(14 - half_exp);
        let round_bit = 1u << (shift - 1u);
        let round_up = (full_man & round_bit) != 0u && (full_man & (3u * round_bit - 1u)) != 0u;
        return sign | ((full_man >> shift) + select(0u, 1u, round_up));
    }
    let packed = sign | (u32(half_exp) << 10u) | (man >> 13u);
    let round_up = (man & 0x1000u) != 0u && (man & 0x2fffu) != 0u;
    return packed + select(0u, 1u, round_up);
}

fn f16x2_to_f32(word: u32) -> vec2<f32> { return unpack2x16float(word); }
