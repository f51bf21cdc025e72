//! cross_entropy (shaders/cross_entropy.wgsl): softmax + cross-entropy + dlogits in one pass.
//!
//!   logits (rows, padded_vocab) f32 (overwritten by dlogits): the batch's rows from first_row;
//!   targets (first_row + rows) u32, losses (first_row + rows) f32
//!
//! Only the first `vocab` columns are tokens: the rest are the embedding's padding rows,
//! outside the softmax, and their dlogits are 0.

use anyhow::Result;

use super::{row_reduction, row_variants};
use crate::gpu::{Dispatch, Gpu, ShaderSpec};

crate::uniform! {
    /// `Params` of shaders/cross_entropy.wgsl.
    pub struct CrossEntropyParams { rows: u32, vocab: u32, padded_vocab: u32, grad_scale: f32, write_grad: u32, first_row: u32, _pad0: u32, _pad1: u32 }
}

/// What the loss kernel leaves in the logits buffer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Logits {
    /// evaluation: the logits stay
    Kept,
    /// training: they become dlogits = (softmax - onehot) * scale, in place (the logits have
    /// no other reader)
    ToGradient { scale: f32 },
}

/// losses[first_row + r] = -log softmax(logits[r][..vocab])[targets[first_row + r]] for the
/// `rows` rows of the logits (each `padded_vocab` long) (a chunk of the batch's from `first_row`, or all of them from 0), and
/// dlogits as `after` says.
#[allow(clippy::too_many_arguments)]
pub fn cross_entropy_forward_backward(
    gpu: &Gpu,
    logits: &wgpu::Buffer,
    targets: &wgpu::Buffer,
    losses: &wgpu::Buffer,
    first_row: u32,
    rows: u32,
    vocab: u32,
    padded_vocab: u32,
    after: Logits,
) -> Result<Dispatch> {
    debug_assert!(vocab <= padded_vocab);
    let (grad_scale, write_grad) = match after {
        Logits::Kept => (0.0, 0),
        Logits::ToGradient { scale } => (scale, 1),
    };
    let params = CrossEntropyParams { rows, vocab, padded_vocab, grad_scale, write_grad, first_row, ..Default::default() };
    let rows_by = row_reduction(gpu);
    let spec = rows_by.apply(spec());
    gpu.dispatch("cross_entropy", &spec, &[(0, logits), (1, targets), (2, losses)], 3, &params, gpu.row_grid(rows, rows_by.threads))
}

fn spec() -> ShaderSpec {
    ShaderSpec::new("cross_entropy.wgsl", "cross_entropy_forward_backward")
}

pub fn variants() -> Vec<ShaderSpec> {
    row_variants(spec())
}

/// CPU reference in f64: fills losses, and dlogits when given (rows of `padded_vocab`, the
/// padding columns 0).
pub fn cross_entropy_cpu(
    losses: &mut [f32],
    dlogits: Option<&mut [f32]>,
    logits: &[f32],
    targets: &[u32],
    vocab: usize,
    padded_vocab: usize,
    grad_scale: f32,
) {
    let rows = targets.len();
    let mut lse = vec![0.0f64; rows];
    for r in 0..rows {
        let x = &logits[r * padded_vocab..r * padded_vocab + vocab];
        let max = x.iter().fold(f64::MIN, |m, &v| m.max(v as f64));
        lse[r] = max + x.iter().map(|&v| (v as f64 - max).exp()).sum::<f64>().ln();
        losses[r] = (lse[r] - x[targets[r] as usize] as f64) as f32;
    }
    if let Some(d) = dlogits {
        for r in 0..rows {
            for j in 0..padded_vocab {
                let i = r * padded_vocab + j;
                let p = (logits[i] as f64 - lse[r]).exp();
                let onehot = if j == targets[r] as usize { 1.0 } else { 0.0 };
                d[i] = if j < vocab { ((p - onehot) * grad_scale as f64) as f32 } else { 0.0 };
            }
        }
    }
}
