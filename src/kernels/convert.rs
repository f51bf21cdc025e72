//! convert (shaders/convert.wgsl): dst = round(src) between storage types, and the CPU
//! reference of the bit tricks in shaders/lib/round.wgsl and shaders/lib/pcg.wgsl.
//!
//!   src (n) any storage, dst (n) any storage (RTN, or SR for bf16_sr)

use anyhow::{bail, Result};

use super::{pair_groups, TensorRef, ALL_STORES};
use crate::gpu::{Dispatch, Gpu, ShaderSpec};

crate::uniform! {
    /// `Params` of shaders/convert.wgsl.
    pub struct ConvertParams {
        n: u32, src_off: u32, dst_off: u32, key_step: u32,
        key_tensor: u32, _pad0: u32, _pad1: u32, _pad2: u32,
    }
}

/// dst[i] = round(src[i]) for i < n; SR bits keyed by (key[0] = step, key[1] = tensor ^ seed).
pub fn convert(gpu: &Gpu, dst: TensorRef, src: TensorRef, n: u32, key: [u32; 2]) -> Result<Dispatch> {
    let pair_dst = n.is_multiple_of(2) && dst.offset.is_multiple_of(2);
    if dst.store.is_packed() && !pair_dst {
        bail!("convert into 16-bit storage needs an even count and offset (n {n}, offset {})", dst.offset);
    }
    let spec = ShaderSpec::new("convert.wgsl", "convert")
        .define("SRC", src.read_name())
        .define("DST", dst.store.wgsl_name())
        .flag("PAIR_DST", pair_dst);
    let params = ConvertParams { n, src_off: src.offset, dst_off: dst.offset, key_step: key[0], key_tensor: key[1], ..Default::default() };
    gpu.dispatch("convert", &spec, &[(0, src.buffer), (1, dst.buffer)], 2, &params, gpu.grid(pair_groups(n as usize)))
}

pub fn variants() -> Vec<ShaderSpec> {
    let mut out = Vec::new();
    for src in ALL_STORES {
        for dst in ALL_STORES {
            out.push(
                ShaderSpec::new("convert.wgsl", "convert")
                    .define("SRC", src.for_reading().wgsl_name())
                    .define("DST", dst.wgsl_name())
                    .flag("PAIR_DST", true),
            );
        }
    }
    out.push(ShaderSpec::new("convert.wgsl", "convert").define("SRC", "bf16").define("DST", "f32").flag("PAIR_DST", false));
    out
}

/// pcg3d as in shaders/lib/pcg.wgsl.
pub fn pcg3d(v: [u32; 3]) -> [u32; 3] {
    let mut v = v.map(|x| x.wrapping_mul(1664525).wrapping_add(1013904223));
    let mix = |v: &mut [u32; 3]| {
        v[0] = v[0].wrapping_add(v[1].wrapping_mul(v[2]));
        v[1] = v[1].wrapping_add(v[2].wrapping_mul(v[0]));
        v[2] = v[2].wrapping_add(v[0].wrapping_mul(v[1]));
    };
    mix(&mut v);
    v = v.map(|x| x ^ (x >> 16));
    mix(&mut v);
    v
}

/// The random bits of element `index` under key (step, tensor ^ seed).
pub fn random_bits(index: u32, key: [u32; 2]) -> u32 {
    pcg3d([index, key[0], key[1]])[0]
}

/// f32 -> bf16 bits, round to nearest even (NaN kept NaN), as `bf16_bits_rtn`.
pub fn bf16_bits_rtn(x: f32) -> u16 {
    let bits = x.to_bits();
    if bits & 0x7fff_ffff > 0x7f80_0000 {
        return ((bits >> 16) | 0x40) as u16;
    }
    (bits.wrapping_add(0x7fff + ((bits >> 16) & 1)) >> 16) as u16
}

/// f32 -> bf16 bits with stochastic rounding from `random` (Inf/NaN unchanged), as `bf16_bits_sr`.
pub fn bf16_bits_sr(x: f32, random: u32) -> u16 {
    let bits = x.to_bits();
    if bits & 0x7f80_0000 == 0x7f80_0000 {
        return bf16_bits_rtn(x);
    }
    (bits.wrapping_add(random & 0xffff) >> 16) as u16
}

pub fn bf16_bits_to_f32(b: u16) -> f32 {
    f32::from_bits((b as u32) << 16)
}

/// The value x takes when stored as bf16 with SR at element `index` under `key`.
pub fn bf16_sr(x: f32, index: u32, key: [u32; 2]) -> f32 {
    bf16_bits_to_f32(bf16_bits_sr(x, random_bits(index, key)))
}
