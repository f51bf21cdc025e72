//! attention: causal multi-head self-attention, composed from the matmul and softmax kernels.
//! The batched matmul reads each head straight out of the fused qkv tensor through strides,
//! so no permute kernels are needed.
//!
//!   qkv (B, T, 3C) act: q | k | v, head h at channels h*HS..(h+1)*HS of each (HS = C / NH)
//!   preatt (B, NH, T, T) f32 scratch, att (B, NH, T, T) act (saved), out (B, T, C) act
//!   backward: dout (B, T, C) f32, datt (B, NH, T, T) f32 scratch, dqkv (B, T, 3C) f32 (+=)

use anyhow::Result;

use super::matmul::{Layout, Mat, Matmul, MatmulShape};
use super::softmax::{softmax_backward, softmax_forward, SoftmaxShape};
use super::TensorRef;
use crate::gpu::{Dispatch, Gpu};

#[derive(Clone, Copy, Debug)]
pub struct AttentionShape {
    pub b: u32,
    pub t: u32,
    pub c: u32,
    pub nh: u32,
}

impl AttentionShape {
    fn hs(&self) -> u32 {
        self.c / self.nh
    }
    fn scale(&self) -> f32 {
        1.0 / (self.hs() as f32).sqrt()
    }
    /// per-head (T, HS) views into a (B, T, width) tensor, channel offset `at`
    fn heads(&self, width: u32, at: u32) -> Layout {
        Layout::rows(width).at(at).batched(self.t * width, self.hs())
    }
    /// per-head (T, T) views into a (B, NH, T, T) tensor
    fn scores(&self) -> Layout {
        Layout::rows(self.t).batched(self.nh * self.t * self.t, self.t * self.t)
    }
    fn per_head(&self, m: u32, n: u32, k: u32) -> MatmulShape {
        MatmulShape::new(m, n, k).batch(self.b * self.nh, self.nh)
    }
    /// the causal softmax over every head's (T, T) scores, of `scale` times them
    fn softmax(&self, scale: f32) -> SoftmaxShape {
        SoftmaxShape { rows: self.b * self.nh * self.t, len: self.t, scale, causal_t: self.t }
    }
}

/// preatt = q.k^T / sqrt(HS); att = causal softmax(preatt); out = att.v
pub fn attention_forward(
    gpu: &Gpu,
    out: TensorRef,
    preatt: TensorRef,
    att: TensorRef,
    qkv: TensorRef,
    s: &AttentionShape,
) -> Result<Vec<Dispatch>> {
    let (t, c, hs) = (s.t, s.c, s.hs());
    let scores = Matmul::new(
        s.per_head(t, t, hs).trans(false, true).alpha(s.scale()),
        Mat::new(qkv, s.heads(3 * c, 0)),
        Mat::new(qkv, s.heads(3 * c, c)),
        Mat::new(preatt, s.scores()),
    );
    let weighted =
        Matmul::new(s.per_head(t, hs, t), Mat::new(att, s.scores()), Mat::new(qkv, s.heads(3 * c, 2 * c)), Mat::new(out, s.heads(c, 0)));
    Ok(as_attention(vec![scores.dispatch(gpu)?, softmax_forward(gpu, att, preatt, &s.softmax(1.0))?, weighted.dispatch(gpu)?]))
}

/// datt = dout.v^T (scratch), dv += att^T.dout, dscores = softmax backward (scaled, in
/// datt), dq += dscores.k, dk += dscores^T.q: dqkv is accumulated.
pub fn attention_backward(
    gpu: &Gpu,
    dqkv: TensorRef,
    datt: TensorRef,
    dout: TensorRef,
    qkv: TensorRef,
    att: TensorRef,
    s: &AttentionShape,
) -> Result<Vec<Dispatch>> {
    let (t, c, hs) = (s.t, s.c, s.hs());
    let datt_mm = Matmul::new(
        s.per_head(t, t, hs).trans(false, true),
        Mat::new(dout, s.heads(c, 0)),
        Mat::new(qkv, s.heads(3 * c, 2 * c)),
        Mat::new(datt, s.scores()),
    );
    let mut dv = Matmul::new(
        s.per_head(t, hs, t).trans(true, false),
        Mat::new(att, s.scores()),
        Mat::new(dout, s.heads(c, 0)),
        Mat::new(dqkv, s.heads(3 * c, 2 * c)),
    );
    let mut dq =
        Matmul::new(s.per_head(t, hs, t), Mat::new(datt, s.scores()), Mat::new(qkv, s.heads(3 * c, c)), Mat::new(dqkv, s.heads(3 * c, 0)));
    let mut dk = Matmul::new(
        s.per_head(t, hs, t).trans(true, false),
        Mat::new(datt, s.scores()),
        Mat::new(qkv, s.heads(3 * c, 0)),
        Mat::new(dqkv, s.heads(3 * c, c)),
    );
    for gradient in [&mut dv, &mut dq, &mut dk] {
        gradient.accumulate = true;
    }
    Ok(as_attention(vec![
        datt_mm.dispatch(gpu)?,
        dv.dispatch(gpu)?,
        softmax_backward(gpu, datt, att, &s.softmax(s.scale()))?,
        dq.dispatch(gpu)?,
        dk.dispatch(gpu)?,
    ]))
}

/// Profiles count these dispatches as attention, not as the families they reuse.
fn as_attention(mut dispatches: Vec<Dispatch>) -> Vec<Dispatch> {
    dispatches.iter_mut().for_each(|d| d.name = "attention");
    dispatches
}

/// CPU reference of the forward (f64 accumulation); fills att (B, NH, T, T) and out (B, T, C).
pub fn attention_forward_cpu(out: &mut [f32], att: &mut [f32], qkv: &[f32], s: &AttentionShape) {
    let (b, t, c, nh, hs) = (s.b as usize, s.t as usize, s.c as usize, s.nh as usize, s.hs() as usize);
    let scale = s.scale() as f64;
    for bi in 0..b {
        for h in 0..nh {
            for i in 0..t {
                let q = &qkv[(bi * t + i) * 3 * c + h * hs..][..hs];
                let row = &mut att[((bi * nh + h) * t + i) * t..][..t];
                let mut scores = vec![0.0f64; i + 1];
                for (j, sc) in scores.iter_mut().enumerate() {
                    let k = &qkv[(bi * t + j) * 3 * c + c + h * hs..][..hs];
                    *sc = scale * q.iter().zip(k).map(|(&x, &y)| x as f64 * y as f64).sum::<f64>();
                }
                let max = scores.iter().cloned().fold(f64::MIN, f64::max);
                let sum: f64 = scores.iter().map(|x| (x - max).exp()).sum();
                for j in 0..t {
                    row[j] = if j <= i { ((scores[j] - max).exp() / sum) as f32 } else { 0.0 };
                }
                for e in 0..hs {
                    let acc: f64 = (0..=i).map(|j| row[j] as f64 * qkv[(bi * t + j) * 3 * c + 2 * c + h * hs + e] as f64).sum();
                    out[(bi * t + i) * c + h * hs + e] = acc as f32;
                }
            }
        }
    }
}

/// CPU reference of the backward: dqkv (B, T, 3C) accumulated (+=).
pub fn attention_backward_cpu(dqkv: &mut [f32], dout: &[f32], qkv: &[f32], att: &[f32], s: &AttentionShape) {
    let (b, t, c, nh, hs) = (s.b as usize, s.t as usize, s.c as usize, s.nh as usize, s.hs() as usize);
    let scale = s.scale() as f64;
    for bi in 0..b {
        for h in 0..nh {
            for i in 0..t {
                let row = &att[((bi * nh + h) * t + i) * t..][..t];
                let dy = &dout[(bi * t + i) * c + h * hs..][..hs];
                let datt: Vec<f64> =
                    (0..=i).map(|j| (0..hs).map(|e| dy[e] as f64 * qkv[(bi * t + j) * 3 * c + 2 * c + h * hs + e] as f64).sum()).collect();
                for j in 0..=i {
                    for e in 0..hs {
                        dqkv[(bi * t + j) * 3 * c + 2 * c + h * hs + e] += (row[j] as f64 * dy[e] as f64) as f32;
                    }
                }
                let dot: f64 = (0..=i).map(|j| row[j] as f64 * datt[j]).sum();
                for j in 0..=i {
                    let ds = scale * row[j] as f64 * (datt[j] - dot);
                    for e in 0..hs {
                        let qi = (bi * t + i) * 3 * c + h * hs + e;
                        let kj = (bi * t + j) * 3 * c + c + h * hs + e;
                        dqkv[qi] += (ds * qkv[kj] as f64) as f32;
                        dqkv[kj] += (ds * qkv[qi] as f64) as f32;
                    }
                }
            }
        }
    }
}
