//! convert (shaders/convert.wgsl): dst = round(src) between storage types. Its CPU
//! reference is `Store::round` (src/precision.rs), with the bit tricks of
//! shaders/lib/round.wgsl and shaders/lib/pcg.wgsl.
//!
//!   src (n) any storage, dst (n) any storage (RTN, or SR for bf16_sr)

use anyhow::{bail, Result};

use super::{pair_groups, TensorRef};
use crate::gpu::{Dispatch, Gpu, ShaderSpec};
use crate::precision::Store;

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
    for src in Store::ALL {
        for dst in Store::ALL {
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
