//! gelu (shaders/gelu.wgsl): GELU in its tanh form, and its backward.
//!
//!   inp (n) act, out (n) act; backward: inp (n) act, grad (n) f32 (dout in, dinp out)

use anyhow::{bail, Result};

use super::{check_pairs, pair_groups, TensorRef};
use crate::gpu::{Dispatch, Gpu, ShaderSpec};
use crate::precision::Store;

crate::uniform! {
    /// `Params` of shaders/gelu.wgsl.
    pub struct GeluParams { n: u32, in_off: u32, out_off: u32, _pad: u32 }
}

const GELU_SCALE: f64 = 0.797_884_560_802_865_4; // sqrt(2/pi)

pub fn gelu_forward(gpu: &Gpu, out: TensorRef, inp: TensorRef, n: u32) -> Result<Dispatch> {
    check_pairs("gelu", "element count", n, &[inp.offset, out.offset])?;
    let spec = spec("gelu_forward", out.store.wgsl_name());
    let params = GeluParams { n, in_off: inp.offset, out_off: out.offset, ..Default::default() };
    gpu.dispatch("gelu", &spec, &[(0, inp.buffer), (1, out.buffer)], 3, &params, gpu.grid(pair_groups(n as usize)))
}

/// grad (f32, from offset 0, in place) *= gelu'(inp).
pub fn gelu_backward(gpu: &Gpu, grad: TensorRef, inp: TensorRef, n: u32) -> Result<Dispatch> {
    check_pairs("gelu", "element count", n, &[inp.offset, grad.offset])?;
    if grad.store != Store::F32 || grad.offset != 0 {
        bail!("gelu_backward works on a whole f32 gradient buffer");
    }
    let spec = spec("gelu_backward", inp.read_name());
    let params = GeluParams { n, in_off: inp.offset, ..Default::default() };
    gpu.dispatch("gelu", &spec, &[(0, inp.buffer), (2, grad.buffer)], 3, &params, gpu.grid(pair_groups(n as usize)))
}

fn spec(entry: &'static str, act: &str) -> ShaderSpec {
    ShaderSpec::new("gelu.wgsl", entry).define("ACT", act)
}

pub fn variants() -> Vec<ShaderSpec> {
    Store::ALL.iter().flat_map(|s| [spec("gelu_forward", s.wgsl_name()), spec("gelu_backward", s.for_reading().wgsl_name())]).collect()
}

fn tanh_arg(x: f64) -> f64 {
    GELU_SCALE * (x + 0.044715 * x * x * x)
}

pub fn gelu_forward_cpu(out: &mut [f32], inp: &[f32]) {
    for (o, &x) in out.iter_mut().zip(inp) {
        let x = x as f64;
        *o = (0.5 * x * (1.0 + tanh_arg(x).tanh())) as f32;
    }
}

/// grad *= gelu'(inp)
pub fn gelu_backward_cpu(grad: &mut [f32], inp: &[f32]) {
    for (g, &x) in grad.iter_mut().zip(inp) {
        let x = x as f64;
        let t = tanh_arg(x).tanh();
        let dtanh = (1.0 - t * t) * GELU_SCALE * (1.0 + 3.0 * 0.044715 * x * x);
        *g = (*g as f64 * (0.5 * (1.0 + t) + 0.5 * x * dtanh)) as f32;
    }
}
