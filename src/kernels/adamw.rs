//! adamw (shaders/adamw.wgsl): one AdamW step over all parameters in one dispatch (or one per
//! piece of a block larger than a binding, with the same bits), in each precision mode, with
//! global-norm clipping read from the GPU-side gradient norm.
//!
//!   param (n) param storage, grad (n) grad storage, m, v (n) state storage,
//!   extra (n): master f32 (mixed) or compensation bf16 (bf16-kahan),
//!   stats f32 (stats[1] = sum of squared gradients),
//!   fidelity (4, groups) f32 when measured: per workgroup, sum applied * intended, sum
//!   intended^2, elements moving, elements lost (see `Fidelity`)

use anyhow::{bail, Result};

use super::reduce::sum;
use super::{bind_piece, block_pieces, pair_groups, BlockPiece, TensorRef};
use crate::gpu::{grid_for, Bound, Dispatch, Gpu, ShaderSpec};
use crate::precision::{KeptExtra, Precision, Store};

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
    /// the mode's master weights or compensation
    pub extra: Option<&'a wgpu::Buffer>,
    pub stats: &'a wgpu::Buffer,
    /// per-workgroup update-fidelity sums, (4, [`fidelity_groups`]) f32, when measured
    pub fidelity: Option<&'a wgpu::Buffer>,
}

/// An update's dispatches: one per piece of the block (see [`block_pieces`]).
pub struct AdamwUpdate {
    pub dispatches: Vec<Dispatch>,
    pieces: Vec<BlockPiece>,
    /// workgroups of all the pieces: the columns of the fidelity sums
    groups: u32,
    grids: Vec<[u32; 3]>,
}

impl AdamwUpdate {
    /// Sets the uniform block of every piece from the update's ([`adamw_params`]).
    pub fn set_params(&self, queue: &wgpu::Queue, update: &AdamwParams) {
        let mut group_first = 0;
        for ((d, piece), [x, y, z]) in self.dispatches.iter().zip(&self.pieces).zip(&self.grids) {
            let params = AdamwParams { n: piece.len, first: piece.first, group_first, groups: self.groups, ..*update };
            d.set_params(queue, &params);
            group_first += x * y * z;
        }
    }
}

/// Builds the update dispatches for `n` parameters, the first `n_decay` of them decayed.
/// Call [`adamw_params`] and `AdamwUpdate::set_params` before each step.
pub fn adamw_update(gpu: &Gpu, precision: Precision, bufs: &AdamwBuffers, n: u32, n_decay: u32) -> Result<AdamwUpdate> {
    if !n.is_multiple_of(2) {
        bail!("adamw_update works on an even parameter count (got {n})");
    }
    if precision.extra().is_some() != bufs.extra.is_some() {
        let what = precision.extra().map_or("master weights or compensation", |e| e.label());
        bail!("mode {precision} {} {what}", if precision.extra().is_some() { "needs" } else { "has no" });
    }
    let spec = spec(precision, bufs.fidelity.is_some());
    let pieces = block_pieces(&gpu.limits, n);
    let grids: Vec<[u32; 3]> = pieces.iter().map(|piece| gpu.grid(update_groups(piece.len))).collect();
    let placeholder = adamw_params(&AdamwConfig::default(), n, n_decay, AdamwStep { lr: 0.0, step: 0, seed: 0 });
    let mut dispatches = Vec::new();
    for (&piece, &grid) in pieces.iter().zip(&grids) {
        let bind = |buffer, store| bind_piece(gpu, buffer, store, piece, pieces.len());
        let (ps, gs, ss) = (precision.param_store(), precision.grad_store(), precision.state_store());
        let mut bindings = vec![(0, bind(bufs.param, ps)?), (1, bind(bufs.grad, gs)?), (2, bind(bufs.m, ss)?), (3, bind(bufs.v, ss)?)];
        bindings.push((5, Bound::whole(bufs.stats)));
        if let (Some(extra), Some(kept)) = (bufs.extra, precision.extra()) {
            bindings.push((4, bind(extra, kept.store())?));
        }
        if let Some(fidelity) = bufs.fidelity {
            bindings.push((7, Bound::whole(fidelity)));
        }
        dispatches.push(gpu.dispatch_bound("adamw", &spec, &bindings, 6, &placeholder, grid)?);
    }
    let groups = grids.iter().map(|[x, y, z]| x * y * z).sum();
    let update = AdamwUpdate { dispatches, pieces, groups, grids };
    update.set_params(&gpu.queue, &placeholder);
    Ok(update)
}

crate::uniform! {
    /// `Params` of shaders/adamw.wgsl.
    pub struct AdamwParams {
        n: u32, n_decay: u32, lr: f32, beta1: f32,
        beta2: f32, eps: f32, weight_decay: f32, bias_correction1: f32,
        bias_correction2: f32, max_norm: f32, step: u32, seed: u32,
        first: u32, group_first: u32, groups: u32, _pad0: u32,
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
        // one piece of the whole block; `AdamwUpdate::set_params` sets each piece's
        first: 0,
        group_first: 0,
        groups: 0,
        _pad0: 0,
    }
}

/// The tensor ids that key the SR bits of the three tensors AdamW writes, so that each draws
/// its own bits (shared with the shader as defines).
pub const SR_PARAM: u32 = 0;
pub const SR_M: u32 = 1;
pub const SR_V: u32 = 2;

/// Pairs of elements each thread updates: a workgroup covers 64 * PAIRS_PER_THREAD pairs,
/// so its fidelity sum (a pass of barriers) is paid once per 1024 parameters.
const PAIRS_PER_THREAD: u32 = 8;

/// 64-thread workgroups for an update of `n` parameters.
pub fn update_groups(n: u32) -> u32 {
    pair_groups(n as usize).div_ceil(PAIRS_PER_THREAD)
}

/// Workgroups of the update over `n` parameters on an adapter with `limits` (all its
/// pieces'): the columns of the fidelity sums.
pub fn fidelity_groups(limits: &wgpu::Limits, n: u32) -> u32 {
    block_pieces(limits, n).iter().map(|piece| grid_for(limits, update_groups(piece.len)).iter().product::<u32>()).sum()
}

/// The four fidelity sums into stats[first..first + 4], each one workgroup summing its row of
/// the per-workgroup sums in a fixed order.
pub fn fidelity_sums(gpu: &Gpu, fidelity: &wgpu::Buffer, n: u32, stats: &wgpu::Buffer, first: u32) -> Result<Vec<Dispatch>> {
    let groups = fidelity_groups(&gpu.limits, n);
    (0..4).map(|k| sum(gpu, TensorRef::new(fidelity, Store::F32).at(k * groups), groups, stats, first + k, 1.0)).collect()
}

fn spec(precision: Precision, fidelity: bool) -> ShaderSpec {
    ShaderSpec::new("adamw.wgsl", "adamw_update")
        .define("SR_PARAM", SR_PARAM)
        .define("SR_M", SR_M)
        .define("SR_V", SR_V)
        .define("PAIRS", PAIRS_PER_THREAD)
        .define("PARAM", precision.param_store().wgsl_name())
        .define("GRAD", precision.grad_store().for_reading().wgsl_name())
        .define("STATE", precision.state_store().wgsl_name())
        .flag("MASTER", precision.extra() == Some(KeptExtra::Master))
        .flag("KAHAN", precision.extra() == Some(KeptExtra::Compensation))
        .flag("FIDELITY", fidelity)
}

pub fn variants() -> Vec<ShaderSpec> {
    Precision::ALL.iter().flat_map(|&p| [spec(p, false), spec(p, true)]).collect()
}

/// The CPU state of one tensor for the reference update (values as f32; 16-bit modes hold
/// exactly representable values).
pub struct AdamwState {
    pub param: Vec<f32>,
    pub m: Vec<f32>,
    pub v: Vec<f32>,
    /// master weights (mixed) or compensation (bf16-kahan)
    pub extra: Option<Vec<f32>>,
}

/// How much of an update survived rounding: over the elements, with intended = AdamW's
/// change of the kept weight (decay included, in f32) and applied = the kept weight's actual
/// change once written back.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Fidelity {
    /// sum of applied * intended
    pub applied_dot_intended: f64,
    /// sum of intended^2
    pub intended_sq: f64,
    /// elements whose intended change is not zero
    pub moving: f64,
    /// of those, elements whose kept weight did not change
    pub lost: f64,
}

impl Fidelity {
    /// From the four stats slots the GPU fills.
    pub fn from_sums(sums: &[f32]) -> Fidelity {
        Fidelity { applied_dot_intended: sums[0] as f64, intended_sq: sums[1] as f64, moving: sums[2] as f64, lost: sums[3] as f64 }
    }

    /// sum applied * intended / sum intended^2: 1 when every update lands (in expectation with
    /// SR), below 1 when rounding drops updates.
    pub fn update_ratio(&self) -> Option<f64> {
        (self.intended_sq > 0.0).then(|| self.applied_dot_intended / self.intended_sq)
    }

    /// The share of moving elements whose kept weight did not change.
    pub fn lost_fraction(&self) -> Option<f64> {
        (self.moving > 0.0).then(|| self.lost / self.moving)
    }
}

/// CPU reference of `adamw_update`, the same f32 arithmetic in the same order, rounding
/// writes as the GPU does (SR with the same PCG bits); returns the update's fidelity sums.
pub fn adamw_update_cpu(
    precision: Precision,
    state: &mut AdamwState,
    grad: &[f32],
    sum_sq_grad: f32,
    cfg: &AdamwConfig,
    n_decay: usize,
    at: AdamwStep,
) -> Fidelity {
    let AdamwStep { lr, step, seed } = at;
    let t = step as i32 + 1;
    let (bc1, bc2) = (1.0 - cfg.beta1.powi(t), 1.0 - cfg.beta2.powi(t));
    let clip = if cfg.max_norm > 0.0 { (cfg.max_norm / (sum_sq_grad.sqrt() + 1e-6)).min(1.0) } else { 1.0 };
    let mut fidelity = Fidelity::default();
    for i in 0..grad.len() {
        let g = grad[i] * clip;
        let w_old = match (precision.extra(), &state.extra) {
            (Some(KeptExtra::Master), Some(master)) => master[i],
            (Some(KeptExtra::Compensation), Some(comp)) => state.param[i] + comp[i],
            (None, _) => state.param[i],
            (Some(extra), None) => panic!("{precision} needs its {} in the reference state", extra.label()),
        };
        let decay = if i < n_decay { 1.0 - lr * cfg.weight_decay } else { 1.0 };
        let m = cfg.beta1 * state.m[i] + (1.0 - cfg.beta1) * g;
        let v = cfg.beta2 * state.v[i] + (1.0 - cfg.beta2) * g * g;
        let adam_step = (lr / bc1) * m / (v.sqrt() / bc2.sqrt() + cfg.eps);
        let w = w_old * decay - adam_step;
        let key = |tensor: u32| [step, tensor ^ seed];
        state.param[i] = precision.param_store().round(w, i as u32, key(SR_PARAM));
        let w_kept = match (precision.extra(), &mut state.extra) {
            (Some(KeptExtra::Master), Some(master)) => {
                master[i] = w;
                w
            }
            (Some(KeptExtra::Compensation), Some(comp)) => {
                comp[i] = Store::Bf16.round_rtn(w - state.param[i]);
                state.param[i] + comp[i]
            }
            (None, _) => state.param[i],
            (Some(extra), None) => panic!("{precision} needs its {} in the reference state", extra.label()),
        };
        state.m[i] = precision.state_store().round(m, i as u32, key(SR_M));
        state.v[i] = precision.state_store().round(v, i as u32, key(SR_V));
        let (intended, applied) = (w_old * (decay - 1.0) - adam_step, w_kept - w_old);
        fidelity.applied_dot_intended += (applied * intended) as f64;
        fidelity.intended_sq += (intended * intended) as f64;
        if intended != 0.0 {
            fidelity.moving += 1.0;
            fidelity.lost += (applied == 0.0) as u8 as f64;
        }
    }
    fidelity
}
