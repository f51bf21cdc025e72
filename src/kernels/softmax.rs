//! softmax (shaders/softmax.wgsl): row-wise softmax of scale * inp with an optional causal
//! mask, statistics in f32, and its backward.
//!
//!   inp (rows, len) any storage, out (rows, len) any storage
//!   backward: probs (rows, len) = the forward's out, grad (rows, len) f32 (dout in, dinp out)

use anyhow::{bail, Result};

use super::{row_reduction, row_variants, TensorRef};
use crate::gpu::{Dispatch, Gpu, ShaderSpec};
use crate::precision::Store;

crate::uniform! {
    /// `Params` of shaders/softmax.wgsl.
    pub struct SoftmaxParams {
        rows: u32, len: u32, scale: f32, causal_t: u32,
        in_off: u32, out_off: u32, key_step: u32, key_tensor: u32,
    }
}

/// `rows` rows of `len` values, softmax of `scale` times them. Masking: `causal_t = T` makes
/// row r (query position r % T) see columns j <= r % T; 0 = none.
#[derive(Clone, Copy, Debug)]
pub struct SoftmaxShape {
    pub rows: u32,
    pub len: u32,
    pub scale: f32,
    pub causal_t: u32,
}

impl SoftmaxShape {
    fn params(&self, in_off: u32, out_off: u32) -> SoftmaxParams {
        SoftmaxParams { rows: self.rows, len: self.len, scale: self.scale, causal_t: self.causal_t, in_off, out_off, ..Default::default() }
    }
}

pub fn softmax_forward(gpu: &Gpu, out: TensorRef, inp: TensorRef, s: &SoftmaxShape) -> Result<Dispatch> {
    let pair_out = s.len.is_multiple_of(2) && out.offset.is_multiple_of(2);
    if out.store.is_packed() && !pair_out {
        bail!("softmax into 16-bit storage needs even rows (len {})", s.len);
    }
    let rows_by = row_reduction(gpu);
    let spec = rows_by.apply(spec("softmax_forward", inp.read_name(), out.store.wgsl_name(), pair_out));
    let params = s.params(inp.offset, out.offset);
    gpu.dispatch("softmax", &spec, &[(0, inp.buffer), (1, out.buffer)], 4, &params, gpu.row_grid(s.rows, rows_by.threads))
}

/// grad (f32, in place): dinp_j = scale * y_j * (dout_j - sum_k y_k dout_k). In place, as
/// llm.c's CUDA softmax backward: the gradient it transforms has no other reader.
pub fn softmax_backward(gpu: &Gpu, grad: TensorRef, probs: TensorRef, s: &SoftmaxShape) -> Result<Dispatch> {
    if grad.store != Store::F32 {
        bail!("softmax_backward works on an f32 gradient");
    }
    let rows_by = row_reduction(gpu);
    let spec = rows_by.apply(spec("softmax_backward", "f32", probs.read_name(), true));
    let params = s.params(grad.offset, probs.offset);
    gpu.dispatch("softmax", &spec, &[(2, probs.buffer), (3, grad.buffer)], 4, &params, gpu.row_grid(s.rows, rows_by.threads))
}

fn spec(entry: &'static str, inp: &str, out: &str, pair_out: bool) -> ShaderSpec {
    ShaderSpec::new("softmax.wgsl", entry).define("IN", inp).define("OUT", out).flag("PAIR_OUT", pair_out)
}

pub fn variants() -> Vec<ShaderSpec> {
    let mut out = Vec::new();
    for store in Store::ALL {
        out.extend(row_variants(spec("softmax_forward", "f32", store.wgsl_name(), true)));
        out.extend(row_variants(spec("softmax_backward", "f32", store.for_reading().wgsl_name(), true)));
    }
    out.extend(row_variants(spec("softmax_forward", "bf16", "f32", false)));
    out
}

/// CPU reference of `softmax_forward` in f64.
pub fn softmax_forward_cpu(out: &mut [f32], inp: &[f32], s: &SoftmaxShape) {
    let (rows, len, scale, causal_t) = (s.rows as usize, s.len as usize, s.scale, s.causal_t as usize);
    for r in 0..rows {
        let visible = if causal_t == 0 { len } else { len.min(r % causal_t + 1) };
        let x = &inp[r * len..(r + 1) * len];
        let max = x[..visible].iter().map(|&v| scale as f64 * v as f64).fold(f64::MIN, f64::max);
        let sum: f64 = x[..visible].iter().map(|&v| (scale as f64 * v as f64 - max).exp()).sum();
        for j in 0..len {
            out[r * len + j] = if j < visible { ((scale as f64 * x[j] as f64 - max).exp() / sum) as f32 } else { 0.0 };
        }
    }
}

/// CPU reference of `softmax_backward`: returns dinp for dout.
pub fn softmax_backward_cpu(grad: &mut [f32], probs: &[f32], s: &SoftmaxShape) {
    let (rows, len, scale, causal_t) = (s.rows as usize, s.len as usize, s.scale, s.causal_t as usize);
    for r in 0..rows {
        let visible = if causal_t == 0 { len } else { len.min(r % causal_t + 1) };
        let row = r * len..(r + 1) * len;
        let (y, g) = (&probs[row.clone()], &mut grad[row]);
        let dot: f64 = (0..visible).map(|j| y[j] as f64 * g[j] as f64).sum();
        for j in 0..len {
            g[j] = if j < visible { (scale as f64 * y[j] as f64 * (g[j] as f64 - dot)) as f32 } else { 0.0 };
        }
    }
}
