//! adamw (shaders/adamw.wgsl): one AdamW step over all parameters in one dispatch, in each
//! precision mode, with global-norm clipping read from the GPU-side gradient norm.
//!
//!   param (n) param storage, grad (n) grad storage, m, v (n) state storage,
//!   master (n) f32 (mixed only), stats f32 (stats[1] = sum of squared gradients)

use anyhow::{bail, Result};

use super::pair_groups;
use crate::gpu::{Dispatch, Gpu, ShaderSpec};
use crate::precision::Precision;

/// AdamW hyper-parameters that do not change during a run.
#[derive(Clone, Copy, Debug)]
pub struct AdamwConfig {
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    /// global-norm clipping threshold; 0 disables clipping
    pub max_norm: f32,
}

impl Default for AdamwConfig {
    fn default() -> Self {
        AdamwConfig { beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0.1, max_norm: 1.0 }
    }
}

/// The buffers one AdamW update touches.
pub struct AdamwBuffers<'a> {
    pub param: &'a wgpu::Buffer,
    pub grad: &'a wgpu::Buffer,
    pub m: &'a wgpu::Buffer,
    pub v: &'a wgpu::Buffer,
    pub master: Option<&'a wgpu::Buffer>,
    pub stats: &'a wgpu::Buffer,
}

/// Builds the update dispatch for `n` parameters, the first `n_decay` of them decayed.
/// Call [`adamw_params`] and `Dispatch::set_params` before each step.
pub fn adamw_update(gpu: &Gpu, precision: Precision, bufs: &AdamwBuffers, n: u32, n_decay: u32) -> Result<Dispatch> {
    if !n.is_multiple_of(2) {
        bail!("adamw_update works on an even parameter count (got {n})");
    }
    if precision.has_master() != bufs.master.is_some() {
        bail!("mode {precision} {} fp32 master weights", if precision.has_master() { "needs" } else { "has no" });
    }
    let spec = spec(precision);
    let mut bindings = vec![(0, bufs.param), (1, bufs.grad), (2, bufs.m), (3, bufs.v), (5, bufs.stats)];
    if let Some(master) = bufs.master {
        bindings.push((4, master));
    }
    let placeholder = adamw_params(&AdamwConfig::default(), n, n_decay, AdamwStep { lr: 0.0, step: 0, seed: 0 });
    gpu.dispatch("adamw", &spec, &bindings, 6, &placeholder, gpu.grid(pair_groups(n as usize)))
}

crate::uniform! {
    /// `Params` of shaders/adamw.wgsl.
    pub struct AdamwParams {
        n: u32, n_decay: u32, lr: f32, beta1: f32,
        beta2: f32, eps: f32, weight_decay: f32, bias_correction1: f32,
        bias_correction2: f32, max_norm: f32, step: u32, seed: u32,
    }
}

/// What changes from one update to the next: the learning rate, the update's number `step`
/// (0-based; bias corrections use t = step + 1) and the run's seed (for the SR bits).
#[derive(Clone, Copy, Debug)]
pub struct AdamwStep {
    pub lr: f32,
    pub step: u32,
    pub seed: u32,
}

/// The uniform block of one update.
pub fn adamw_params(cfg: &AdamwConfig, n: u32, n_decay: u32, at: AdamwStep) -> AdamwParams {
    let AdamwStep { lr, step, seed } = at;
    let t = step as i32 + 1;
    AdamwParams {
        n,
        n_decay,
        lr,
        beta1: cfg.beta1,
        beta2: cfg.beta2,
        eps: cfg.eps,
        weight_decay: cfg.weight_decay,
        bias_correction1: 1.0 - cfg.beta1.powi(t),
        bias_correction2: 1.0 - cfg.beta2.powi(t),
        max_norm: cfg.max_norm,
        step,
        seed,
    }
}

/// The tensor ids that key the SR bits of the three tensors AdamW writes, so that each draws
/// its own bits (shared with the shader as defines).
pub const SR_PARAM: u32 = 0;
pub const SR_M: u32 = 1;
pub const SR_V: u32 = 2;

fn spec(precision: Precision) -> ShaderSpec {
    ShaderSpec::new("adamw.wgsl", "adamw_update")
        .define("SR_PARAM", SR_PARAM)
        .define("SR_M", SR_M)
        .define("SR_V", SR_V)
        .define("PARAM", precision.param_store().wgsl_name())
        .define("GRAD", precision.grad_store().for_reading().wgsl_name())
        .define("STATE", precision.state_store().wgsl_name())
        .flag("MASTER", precision.has_master())
}

pub fn variants() -> Vec<ShaderSpec> {
    Precision::ALL.iter().map(|&p| spec(p)).collect()
}

/// The CPU state of one tensor for the reference update (values as f32; 16-bit modes hold
/// exactly representable values).
pub struct AdamwState {
    pub param: Vec<f32>,
    pub m: Vec<f32>,
    pub v: Vec<f32>,
    pub master: Option<Vec<f32>>,
}

/// CPU reference of `adamw_update`, the same f32 arithmetic in the same order, rounding
/// writes as the GPU does (SR with the same PCG bits).
pub fn adamw_update_cpu(
    precision: Precision,
    state: &mut AdamwState,
    grad: &[f32],
    sum_sq_grad: f32,
    cfg: &AdamwConfig,
    n_decay: usize,
    at: AdamwStep,
) {
    let AdamwStep { lr, step, seed } = at;
    let t = step as i32 + 1;
    let (bc1, bc2) = (1.0 - cfg.beta1.powi(t), 1.0 - cfg.beta2.powi(t));
    let clip = if cfg.max_norm > 0.0 { (cfg.max_norm / (sum_sq_grad.sqrt() + 1e-6)).min(1.0) } else { 1.0 };
    for i in 0..grad.len() {
        let g = grad[i] * clip;
        let mut w = match &state.master {
            Some(master) => master[i],
            None => state.param[i],
        };
        if i < n_decay {
            w *= 1.0 - lr * cfg.weight_decay;
        }
        let m = cfg.beta1 * state.m[i] + (1.0 - cfg.beta1) * g;
        let v = cfg.beta2 * state.v[i] + (1.0 - cfg.beta2) * g * g;
        w -= (lr / bc1) * m / (v.sqrt() / bc2.sqrt() + cfg.eps);
        if let Some(master) = &mut state.master {
            master[i] = w;
        }
        let key = |tensor: u32| [step, tensor ^ seed];
        state.param[i] = precision.param_store().round(w, i as u32, key(SR_PARAM));
        state.m[i] = precision.state_store().round(m, i as u32, key(SR_M));
        state.v[i] = precision.state_store().round(v, i as u32, key(SR_V));
    }
}
