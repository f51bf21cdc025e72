//! The same GPT on the CPU, composed from each kernel's CPU reference: the oracle the GPU
//! model's forward, gradients and optimizer step are tested against. f32 storage, f64 sums.

use super::config::ModelConfig;
use super::params::ParamLayout;
use crate::kernels::attention::{attention_backward_cpu, attention_forward_cpu, AttentionShape};
use crate::kernels::cross_entropy::cross_entropy_cpu;
use crate::kernels::embedding::{embedding_backward_cpu, embedding_forward_cpu};
use crate::kernels::gelu::{gelu_backward_cpu, gelu_forward_cpu};
use crate::kernels::layernorm::{layernorm_backward_cpu, layernorm_forward_cpu};
use crate::kernels::matmul::{matmul_backward_cpu, matmul_forward_cpu, LinearShape};

/// One block's saved activations.
struct BlockActs {
    input: Vec<f32>,
    ln1: Vec<f32>,
    ln1_mean: Vec<f32>,
    ln1_rstd: Vec<f32>,
    qkv: Vec<f32>,
    att: Vec<f32>,
    atty: Vec<f32>,
    res2: Vec<f32>,
    ln2: Vec<f32>,
    ln2_mean: Vec<f32>,
    ln2_rstd: Vec<f32>,
    fch: Vec<f32>,
    fch_gelu: Vec<f32>,
}

/// Everything the backward needs from the forward.
pub struct CpuForward {
    pub loss: f32,
    pub logits: Vec<f32>,
    blocks: Vec<BlockActs>,
    residual: Vec<f32>,
    lnf: Vec<f32>,
    lnf_mean: Vec<f32>,
    lnf_rstd: Vec<f32>,
}

fn slice(params: &[f32], offset: u32, len: usize) -> &[f32] {
    &params[offset as usize..offset as usize + len]
}

/// The gradients of a weight (`w_len` values at `weight`) and of the bias that follows it in
/// the block (`b_len` values at `bias`), both writable.
fn weight_and_bias(grads: &mut [f32], weight: u32, w_len: usize, bias: u32, b_len: usize) -> (&mut [f32], &mut [f32]) {
    let (before, from_bias) = grads.split_at_mut(bias as usize);
    (&mut before[weight as usize..weight as usize + w_len], &mut from_bias[..b_len])
}

pub fn gpt_forward_cpu(
    cfg: &ModelConfig,
    layout: &ParamLayout,
    params: &[f32],
    inputs: &[u32],
    targets: &[u32],
    batch: usize,
) -> CpuForward {
    let (t, d, v) = (cfg.ctx as usize, cfg.d as usize, cfg.vocab as usize);
    let bt = batch * t;
    let attn = AttentionShape { b: batch as u32, t: cfg.ctx, c: cfg.d, nh: cfg.n_head };
    let linear = |c: usize, oc: usize| LinearShape { bt: bt as u32, c: c as u32, oc: oc as u32 };
    let mut residual = vec![0.0; bt * d];
    embedding_forward_cpu(&mut residual, inputs, slice(params, layout.wte, v * d), slice(params, layout.wpe, t * d), t, d);
    let mut blocks = Vec::new();
    for o in &layout.blocks {
        let mut a = BlockActs {
            input: residual.clone(),
            ln1: vec![0.0; bt * d],
            ln1_mean: vec![0.0; bt],
            ln1_rstd: vec![0.0; bt],
            qkv: vec![0.0; bt * 3 * d],
            att: vec![0.0; batch * cfg.n_head as usize * t * t],
            atty: vec![0.0; bt * d],
            res2: vec![0.0; bt * d],
            ln2: vec![0.0; bt * d],
            ln2_mean: vec![0.0; bt],
            ln2_rstd: vec![0.0; bt],
            fch: vec![0.0; bt * 4 * d],
            fch_gelu: vec![0.0; bt * 4 * d],
        };
        let (ln1_w, ln1_b) = (slice(params, o.ln1_w, d), slice(params, o.ln1_b, d));
        layernorm_forward_cpu(&mut a.ln1, (&mut a.ln1_mean, &mut a.ln1_rstd), &a.input, ln1_w, ln1_b, d);
        let (qkv_w, qkv_b) = (slice(params, o.qkv_w, 3 * d * d), slice(params, o.qkv_b, 3 * d));
        matmul_forward_cpu(&mut a.qkv, &a.ln1, qkv_w, Some(qkv_b), linear(d, 3 * d));
        attention_forward_cpu(&mut a.atty, &mut a.att, &a.qkv, &attn);
        let (proj_w, proj_b) = (slice(params, o.attn_proj_w, d * d), slice(params, o.attn_proj_b, d));
        matmul_forward_cpu(&mut a.res2, &a.atty, proj_w, Some(proj_b), linear(d, d));
        a.res2.iter_mut().zip(&a.input).for_each(|(r, x)| *r += x);
        let (ln2_w, ln2_b) = (slice(params, o.ln2_w, d), slice(params, o.ln2_b, d));
        layernorm_forward_cpu(&mut a.ln2, (&mut a.ln2_mean, &mut a.ln2_rstd), &a.res2, ln2_w, ln2_b, d);
        let (fc_w, fc_b) = (slice(params, o.fc_w, 4 * d * d), slice(params, o.fc_b, 4 * d));
        matmul_forward_cpu(&mut a.fch, &a.ln2, fc_w, Some(fc_b), linear(d, 4 * d));
        gelu_forward_cpu(&mut a.fch_gelu, &a.fch);
        let (fc_proj_w, fc_proj_b) = (slice(params, o.fc_proj_w, 4 * d * d), slice(params, o.fc_proj_b, d));
        matmul_forward_cpu(&mut residual, &a.fch_gelu, fc_proj_w, Some(fc_proj_b), linear(4 * d, d));
        residual.iter_mut().zip(&a.res2).for_each(|(r, x)| *r += x);
        blocks.push(a);
    }
    let (mut lnf, mut lnf_mean, mut lnf_rstd) = (vec![0.0; bt * d], vec![0.0; bt], vec![0.0; bt]);
    let (lnf_w, lnf_b) = (slice(params, layout.lnf_w, d), slice(params, layout.lnf_b, d));
    layernorm_forward_cpu(&mut lnf, (&mut lnf_mean, &mut lnf_rstd), &residual, lnf_w, lnf_b, d);
    let mut logits = vec![0.0; bt * v];
    matmul_forward_cpu(&mut logits, &lnf, slice(params, layout.wte, v * d), None, linear(d, v));
    let mut losses = vec![0.0; bt];
    cross_entropy_cpu(&mut losses, None, &logits, targets, v, v, 1.0);
    let loss = (losses.iter().map(|&l| l as f64).sum::<f64>() / bt as f64) as f32;
    CpuForward { loss, logits, blocks, residual, lnf, lnf_mean, lnf_rstd }
}

/// Gradients of the mean loss for every parameter, in the block layout. As on the GPU, the
/// gradients start at zero and every backward adds into them.
pub fn gpt_backward_cpu(
    cfg: &ModelConfig,
    layout: &ParamLayout,
    params: &[f32],
    fwd: &CpuForward,
    inputs: &[u32],
    targets: &[u32],
    batch: usize,
) -> Vec<f32> {
    let (t, d, v) = (cfg.ctx as usize, cfg.d as usize, cfg.vocab as usize);
    let bt = batch * t;
    let attn = AttentionShape { b: batch as u32, t: cfg.ctx, c: cfg.d, nh: cfg.n_head };
    let linear = |c: usize, oc: usize| LinearShape { bt: bt as u32, c: c as u32, oc: oc as u32 };
    let mut grads = vec![0.0f32; layout.total];

    let mut losses = vec![0.0; bt];
    let mut dlogits = vec![0.0; bt * v];
    cross_entropy_cpu(&mut losses, Some(&mut dlogits), &fwd.logits, targets, v, v, 1.0 / bt as f32);
    let mut dlnf = vec![0.0; bt * d];
    let wte = slice(params, layout.wte, v * d);
    let dwte = &mut grads[layout.wte as usize..][..v * d];
    matmul_backward_cpu(&mut dlnf, dwte, None, &dlogits, &fwd.lnf, wte, linear(d, v));
    let mut dres = vec![0.0; bt * d];
    let lnf_w = slice(params, layout.lnf_w, d);
    let lnf_stats = (&fwd.lnf_mean[..], &fwd.lnf_rstd[..]);
    let dlnf_affine = weight_and_bias(&mut grads, layout.lnf_w, d, layout.lnf_b, d);
    layernorm_backward_cpu(&mut dres, dlnf_affine, &dlnf, &fwd.residual, lnf_w, lnf_stats, d);

    for (o, a) in layout.blocks.iter().zip(&fwd.blocks).rev() {
        let mut dfch = vec![0.0; bt * 4 * d];
        let (dw, db) = weight_and_bias(&mut grads, o.fc_proj_w, 4 * d * d, o.fc_proj_b, d);
        matmul_backward_cpu(&mut dfch, dw, Some(db), &dres, &a.fch_gelu, slice(params, o.fc_proj_w, 4 * d * d), linear(4 * d, d));
        gelu_backward_cpu(&mut dfch, &a.fch);
        let mut dln2 = vec![0.0; bt * d];
        let (dw, db) = weight_and_bias(&mut grads, o.fc_w, 4 * d * d, o.fc_b, 4 * d);
        matmul_backward_cpu(&mut dln2, dw, Some(db), &dfch, &a.ln2, slice(params, o.fc_w, 4 * d * d), linear(d, 4 * d));
        let ln2_stats = (&a.ln2_mean[..], &a.ln2_rstd[..]);
        let dln2_affine = weight_and_bias(&mut grads, o.ln2_w, d, o.ln2_b, d);
        layernorm_backward_cpu(&mut dres, dln2_affine, &dln2, &a.res2, slice(params, o.ln2_w, d), ln2_stats, d);

        let mut datty = vec![0.0; bt * d];
        let (dw, db) = weight_and_bias(&mut grads, o.attn_proj_w, d * d, o.attn_proj_b, d);
        matmul_backward_cpu(&mut datty, dw, Some(db), &dres, &a.atty, slice(params, o.attn_proj_w, d * d), linear(d, d));
        let mut dqkv = vec![0.0; bt * 3 * d];
        attention_backward_cpu(&mut dqkv, &datty, &a.qkv, &a.att, &attn);
        let mut dln1 = vec![0.0; bt * d];
        let (dw, db) = weight_and_bias(&mut grads, o.qkv_w, 3 * d * d, o.qkv_b, 3 * d);
        matmul_backward_cpu(&mut dln1, dw, Some(db), &dqkv, &a.ln1, slice(params, o.qkv_w, 3 * d * d), linear(d, 3 * d));
        let ln1_stats = (&a.ln1_mean[..], &a.ln1_rstd[..]);
        let dln1_affine = weight_and_bias(&mut grads, o.ln1_w, d, o.ln1_b, d);
        layernorm_backward_cpu(&mut dres, dln1_affine, &dln1, &a.input, slice(params, o.ln1_w, d), ln1_stats, d);
    }
    let (dwte, dwpe) = weight_and_bias(&mut grads, layout.wte, v * d, layout.wpe, t * d);
    embedding_backward_cpu(dwte, dwpe, &dres, inputs, t, d);
    grads
}
