//! layernorm (shaders/layernorm.wgsl): LayerNorm over channels with weight and bias, eps 1e-5.
//!
//!   inp (N, C) act, weight (C) param, bias (C) param, out (N, C) act, mean/rstd (N) f32
//!   backward: dout (N, C) f32, dinp (N, C) f32 (+=), dweight/dbias (C) grad (+=)
//!   weight and bias are two tensors of one block (the parameters; the gradients for
//!   dweight and dbias), bound once as `params` / `dparams`

use anyhow::{bail, Result};

use super::{check_pairs, row_reduction, row_variants, window, Block, RowReduction, TensorRef};
use crate::gpu::{Bound, Dispatch, Gpu, ShaderSpec};
use crate::precision::Store;

crate::uniform! {
    /// `Params` of shaders/layernorm.wgsl.
    pub struct LayerNormParams {
        rows: u32, c: u32, in_off: u32, out_off: u32,
        w_off: u32, b_off: u32, dw_off: u32, db_off: u32,
    }
}

/// A LayerNorm's weight and bias, (C) each: two tensors of one block.
#[derive(Clone, Copy)]
pub struct LayerNormAffine<'a> {
    pub block: Block<'a>,
    pub weight: u32,
    pub bias: u32,
}

/// The forward's input and the row statistics it computes, (N) f32 each: what the backward
/// needs of the forward.
impl<'a> LayerNormAffine<'a> {
    /// The block bound for a LayerNorm of `c` channels (whole, or the window over its weight
    /// and bias), and the weight's and bias's offsets in the binding.
    fn bind(&self, gpu: &Gpu, c: u32) -> Result<(Bound<'a>, u32, u32)> {
        let (first, last) = (self.weight.min(self.bias) as u64, self.weight.max(self.bias) as u64);
        let (bound, shift) = window(gpu, self.block.buffer, self.block.store, first, last + c as u64)?;
        Ok((bound, self.weight - shift, self.bias - shift))
    }
}

pub struct LayerNormSaved<'a> {
    pub inp: TensorRef<'a>,
    pub mean: &'a wgpu::Buffer,
    pub rstd: &'a wgpu::Buffer,
}

/// N rows of C channels.
#[derive(Clone, Copy, Debug)]
pub struct LayerNormShape {
    pub n: u32,
    pub c: u32,
}

/// out = (inp - mean) * rstd * weight + bias; mean and rstd saved.
pub fn layernorm_forward(
    gpu: &Gpu,
    out: TensorRef,
    saved: &LayerNormSaved,
    affine: LayerNormAffine,
    s: LayerNormShape,
) -> Result<Dispatch> {
    layernorm_forward_with(gpu, row_reduction(gpu), out, saved, affine, s)
}

/// [`layernorm_forward`] with a given row reduction (for measuring the choices).
pub fn layernorm_forward_with(
    gpu: &Gpu,
    rows_by: RowReduction,
    out: TensorRef,
    saved: &LayerNormSaved,
    affine: LayerNormAffine,
    s: LayerNormShape,
) -> Result<Dispatch> {
    let inp = saved.inp;
    check_pairs("layernorm", "channel count", s.c, &[out.offset, affine.weight, affine.bias])?;
    if inp.store.for_reading() != out.store.for_reading() {
        bail!("layernorm_forward reads and writes one activation storage type");
    }
    let spec = rows_by.apply(spec("layernorm_forward", out.store.wgsl_name(), affine.block.at(0).read_name(), "f32"));
    let (block, w_off, b_off) = affine.bind(gpu, s.c)?;
    let params = LayerNormParams { rows: s.n, c: s.c, in_off: inp.offset, out_off: out.offset, w_off, b_off, ..Default::default() };
    let whole = Bound::whole;
    let bindings = [(0, whole(inp.buffer)), (1, block), (2, whole(out.buffer)), (3, whole(saved.mean)), (4, whole(saved.rstd))];
    gpu.dispatch_bound("layernorm", &spec, &bindings, 8, &params, gpu.row_grid(s.n, rows_by.threads))
}

/// Two dispatches: dinp += row by row, then dweight and dbias += column by column.
pub fn layernorm_backward(
    gpu: &Gpu,
    dinp: &wgpu::Buffer,
    daffine: LayerNormAffine,
    dout: &wgpu::Buffer,
    saved: &LayerNormSaved,
    affine: LayerNormAffine,
    s: LayerNormShape,
) -> Result<Vec<Dispatch>> {
    check_pairs("layernorm", "channel count", s.c, &[daffine.weight, daffine.bias])?;
    let (inp, weight) = (saved.inp, affine.block.at(affine.weight));
    let (block, w_off, _) = affine.bind(gpu, s.c)?;
    let (grads, dw_off, db_off) = daffine.bind(gpu, s.c)?;
    let params = LayerNormParams { rows: s.n, c: s.c, in_off: inp.offset, w_off, dw_off, db_off, ..Default::default() };
    let rows_by = row_reduction(gpu);
    let whole = Bound::whole;
    let input_spec = rows_by.apply(spec("layernorm_backward_input", inp.read_name(), weight.read_name(), "f32"));
    let (mean, rstd, dout, dinp) = (whole(saved.mean), whole(saved.rstd), whole(dout), whole(dinp));
    let input = [(0, whole(inp.buffer)), (1, block), (3, mean), (4, rstd), (5, dout), (6, dinp)];
    let params_spec = rows_by.apply(spec("layernorm_backward_params", inp.read_name(), "f32", daffine.block.store.wgsl_name()));
    let param_bindings = [(0, whole(inp.buffer)), (3, mean), (4, rstd), (5, dout), (7, grads)];
    Ok(vec![
        gpu.dispatch_bound("layernorm", &input_spec, &input, 8, &params, gpu.row_grid(s.n, rows_by.threads))?,
        gpu.dispatch_bound("layernorm", &params_spec, &param_bindings, 8, &params, gpu.grid(s.c / 2))?,
    ])
}

/// inp and out share one storage define (ACT): activations are stored alike throughout.
fn spec(entry: &'static str, act: &str, param: &str, grad: &str) -> ShaderSpec {
    ShaderSpec::new("layernorm.wgsl", entry).define("ACT", act).define("PARAM", param).define("GRAD", grad)
}

pub fn variants() -> Vec<ShaderSpec> {
    let mut out = Vec::new();
    for store in Store::ALL {
        let read = store.for_reading().wgsl_name();
        out.extend(row_variants(spec("layernorm_forward", store.wgsl_name(), read, "f32")));
        out.extend(row_variants(spec("layernorm_backward_input", read, read, "f32")));
        out.extend(row_variants(spec("layernorm_backward_params", read, "f32", store.wgsl_name())));
    }
    out
}

/// CPU reference of the forward (f64 statistics); N = inp.len() / C.
pub fn layernorm_forward_cpu(out: &mut [f32], stats: (&mut [f32], &mut [f32]), inp: &[f32], weight: &[f32], bias: &[f32], c: usize) {
    let (mean, rstd) = stats;
    for r in 0..inp.len() / c {
        let x = &inp[r * c..(r + 1) * c];
        let mu = x.iter().map(|&v| v as f64).sum::<f64>() / c as f64;
        let var = x.iter().map(|&v| (v as f64 - mu).powi(2)).sum::<f64>() / c as f64;
        let rs = 1.0 / (var + 1e-5).sqrt();
        for j in 0..c {
            out[r * c + j] = (((x[j] as f64 - mu) * rs) * weight[j] as f64 + bias[j] as f64) as f32;
        }
        mean[r] = mu as f32;
        rstd[r] = rs as f32;
    }
}

/// CPU reference of the backward: dinp, dweight and dbias accumulated (+=); N = inp.len() / C.
pub fn layernorm_backward_cpu(
    dinp: &mut [f32],
    daffine: (&mut [f32], &mut [f32]),
    dout: &[f32],
    inp: &[f32],
    weight: &[f32],
    stats: (&[f32], &[f32]),
    c: usize,
) {
    let ((dweight, dbias), (mean, rstd)) = (daffine, stats);
    let mut dw = vec![0.0f64; c];
    let mut db = vec![0.0f64; c];
    for r in 0..inp.len() / c {
        let (mu, rs) = (mean[r] as f64, rstd[r] as f64);
        let xhat: Vec<f64> = (0..c).map(|j| (inp[r * c + j] as f64 - mu) * rs).collect();
        let dnorm: Vec<f64> = (0..c).map(|j| dout[r * c + j] as f64 * weight[j] as f64).collect();
        let mean_dnorm = dnorm.iter().sum::<f64>() / c as f64;
        let mean_dnorm_xhat = dnorm.iter().zip(&xhat).map(|(a, b)| a * b).sum::<f64>() / c as f64;
        for j in 0..c {
            dinp[r * c + j] += (rs * (dnorm[j] - mean_dnorm - xhat[j] * mean_dnorm_xhat)) as f32;
            dw[j] += dout[r * c + j] as f64 * xhat[j];
            db[j] += dout[r * c + j] as f64;
        }
    }
    for j in 0..c {
        dweight[j] += dw[j] as f32;
        dbias[j] += db[j] as f32;
    }
}
