//! The same GPT on the CPU, composed from each kernel's CPU reference: the oracle the GPU
//! model's forward, gradients and optimizer step are tested against. f32 storage, f64 sums.

use super::config::ModelConfig;
use super::params::ParamLayout;
use crate::kernels::attention::{attention_backward_cpu, attention_forward_cpu, AttentionShape};
use crate::kernels::cross_entropy::cross_entropy_cpu;
use crate::kernels::embedding::{embedding_backward_cpu, embedding_forward_cpu};
use crate::kernels::gelu::{gelu_backward_cpu, gelu_forward_cpu};
use crate::kernels::layernorm::{layernorm_backward_cpu, layernorm_forward_cpu};
use crate::kernels::matmul::{matmul_backward_cpu, matmul_forward_cpu};

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
        layernorm_forward_cpu(
            &mut a.ln1,
            &mut a.ln1_mean,
            &mut a.ln1_rstd,
            &a.input,
            slice(params, o.ln1_w, d),
            slice(params, o.ln1_b, d),
            bt,
            d,
        );
        matmul_forward_cpu(&mut a.qkv, &a.ln1, slice(params, o.qkv_w, 3 * d * d), Some(slice(params, o.qkv_b, 3 * d)), bt, d, 3 * d);
        attention_forward_cpu(&mut a.atty, &mut a.att, &a.qkv, &attn);
        matmul_forward_cpu(&mut a.res2, &a.atty, slice(params, o.attn_proj_w, d * d), Some(slice(params, o.attn_proj_b, d)), bt, d, d);
        a.res2.iter_mut().zip(&a.input).for_each(|(r, x)| *r += x);
        layernorm_forward_cpu(
            &mut a.ln2,
            &mut a.ln2_mean,
            &mut a.ln2_rstd,
            &a.res2,
            slice(params, o.ln2_w, d),
            slice(params, o.ln2_b, d),
            bt,
            d,
        );
        matmul_forward_cpu(&mut a.fch, &a.ln2, slice(params, o.fc_w, 4 * d * d), Some(slice(params, o.fc_b, 4 * d)), bt, d, 4 * d);
        gelu_forward_cpu(&mut a.fch_gelu, &a.fch);
        matmul_forward_cpu(
            &mut residual,
            &a.fch_gelu,
            slice(params, o.fc_proj_w, 4 * d * d),
            Some(slice(params, o.fc_proj_b, d)),
            bt,
            4 * d,
            d,
        );
        residual.iter_mut().zip(&a.res2).for_each(|(r, x)| *r += x);
        blocks.push(a);
    }
    let (mut lnf, mut lnf_mean, mut lnf_rstd) = (vec![0.0; bt * d], vec![0.0; bt], vec![0.0; bt]);
    layernorm_forward_cpu(
        &mut lnf,
        &mut lnf_mean,
        &mut lnf_rstd,
        &residual,
        slice(params, layout.lnf_w, d),
        slice(params, layout.lnf_b, d),
        bt,
        d,
    );
    let mut logits = vec![0.0; bt * v];
    matmul_forward_cpu(&mut logits, &lnf, slice(params, layout.wte, v * d), None, bt, d, v);
    let mut losses = vec![0.0; bt];
    cross_entropy_cpu(&mut losses, None, &logits, targets, v, 1.0);
    let loss = (losses.iter().map(|&l| l as f64).sum::<f64>() / bt as f64) as f32;
    CpuForward { loss, logits, blocks, residual, lnf, lnf_mean, lnf_rstd }
}

/// Gradients of the mean loss for every parameter, in the block layout.
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
    let mut grads = vec![0.0f32; layout.total];
    // writes a gradient computed into a temporary back into the block
    let put =
        |grads: &mut Vec<f32>, offset: u32, values: &[f32]| grads[offset as usize..offset as usize + values.len()].copy_from_slice(values);

    let mut losses = vec![0.0; bt];
    let mut dlogits = vec![0.0; bt * v];
    cross_entropy_cpu(&mut losses, Some(&mut dlogits), &fwd.logits, targets, v, 1.0 / bt as f32);
    let (mut dlnf, mut dwte) = (vec![0.0; bt * d], vec![0.0; v * d]);
    matmul_backward_cpu(&mut dlnf, &mut dwte, None, &dlogits, &fwd.lnf, slice(params, layout.wte, v * d), bt, d, v);
    put(&mut grads, layout.wte, &dwte);
    let mut dres = vec![0.0; bt * d];
    let (mut dw, mut db) = (vec![0.0; d], vec![0.0; d]);
    layernorm_backward_cpu(
        &mut dres,
        &mut dw,
        &mut db,
        &dlnf,
        &fwd.residual,
        slice(params, layout.lnf_w, d),
        &fwd.lnf_mean,
        &fwd.lnf_rstd,
        bt,
        d,
    );
    put(&mut grads, layout.lnf_w, &dw);
    put(&mut grads, layout.lnf_b, &db);

    for (o, a) in layout.blocks.iter().zip(&fwd.blocks).rev() {
        let mut dfch = vec![0.0; bt * 4 * d];
        let (mut dw, mut db) = (vec![0.0; 4 * d * d], vec![0.0; d]);
        matmul_backward_cpu(&mut dfch, &mut dw, Some(&mut db), &dres, &a.fch_gelu, slice(params, o.fc_proj_w, 4 * d * d), bt, 4 * d, d);
        put(&mut grads, o.fc_proj_w, &dw);
        put(&mut grads, o.fc_proj_b, &db);
        gelu_backward_cpu(&mut dfch, &a.fch);
        let mut dln2 = vec![0.0; bt * d];
        let (mut dw, mut db) = (vec![0.0; 4 * d * d], vec![0.0; 4 * d]);
        matmul_backward_cpu(&mut dln2, &mut dw, Some(&mut db), &dfch, &a.ln2, slice(params, o.fc_w, 4 * d * d), bt, d, 4 * d);
        put(&mut grads, o.fc_w, &dw);
        put(&mut grads, o.fc_b, &db);
        let (mut dw, mut db) = (vec![0.0; d], vec![0.0; d]);
        layernorm_backward_cpu(&mut dres, &mut dw, &mut db, &dln2, &a.res2, slice(params, o.ln2_w, d), &a.ln2_mean, &a.ln2_rstd, bt, d);
        put(&mut grads, o.ln2_w, &dw);
        put(&mut grads, o.ln2_b, &db);

        let mut datty = vec![0.0; bt * d];
        let (mut dw, mut db) = (vec![0.0; d * d], vec![0.0; d]);
        matmul_backward_cpu(&mut datty, &mut dw, Some(&mut db), &dres, &a.atty, slice(params, o.attn_proj_w, d * d), bt, d, d);
        put(&mut grads, o.attn_proj_w, &dw);
        put(&mut grads, o.attn_proj_b, &db);
        let mut dqkv = vec![0.0; bt * 3 * d];
        attention_backward_cpu(&mut dqkv, &datty, &a.qkv, &a.att, &attn);
        let mut dln1 = vec![0.0; bt * d];
        let (mut dw, mut db) = (vec![0.0; 3 * d * d], vec![0.0; 3 * d]);
        matmul_backward_cpu(&mut dln1, &mut dw, Some(&mut db), &dqkv, &a.ln1, slice(params, o.qkv_w, 3 * d * d), bt, d, 3 * d);
        put(&mut grads, o.qkv_w, &dw);
        put(&mut grads, o.qkv_b, &db);
        let (mut dw, mut db) = (vec![0.0; d], vec![0.0; d]);
        layernorm_backward_cpu(&mut dres, &mut dw, &mut db, &dln1, &a.input, slice(params, o.ln1_w, d), &a.ln1_mean, &a.ln1_rstd, bt, d);
        put(&mut grads, o.ln1_w, &dw);
        put(&mut grads, o.ln1_b, &db);
    }
    let wte = layout.wte as usize;
    let (mut dwte, mut dwpe) = (grads[wte..wte + v * d].to_vec(), vec![0.0; t * d]);
    embedding_backward_cpu(&mut dwte, &mut dwpe, &dres, inputs, t, d);
    put(&mut grads, layout.wte, &dwte);
    put(&mut grads, layout.wpe, &dwpe);
    grads
}
