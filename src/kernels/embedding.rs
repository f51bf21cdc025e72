//! embedding (shaders/embedding.wgsl): token + position embedding and its backward.
//!
//!   tokens (B*T) u32, wte (V, C) param, wpe (maxT, C) param, out (B, T, C) act
//!   backward: dout (B, T, C) f32, dwte (V, C) grad (+=), dwpe (T, C) grad (+=),
//!   bucket_start (V+1) u32 and bucket_pos (B*T) u32 from [`token_buckets`]

use anyhow::{bail, Result};

use super::{check_pairs, pair_groups, window, Block, TensorRef};
use crate::gpu::{Bound, Dispatch, Gpu, ShaderSpec};
use crate::precision::Store;

/// Sizes: B, T, C, V.
#[derive(Clone, Copy, Debug)]
pub struct EmbeddingShape {
    pub batch: u32,
    pub t: u32,
    pub c: u32,
    pub vocab: u32,
}

crate::uniform! {
    /// `Params` of shaders/embedding.wgsl.
    pub struct EmbeddingParams {
        batch: u32, t: u32, c: u32, vocab: u32,
        wte_off: u32, wpe_off: u32, dwte_off: u32, dwpe_off: u32,
    }
}

fn params(s: &EmbeddingShape, wte_off: u32, wpe_off: u32, dwte_off: u32, dwpe_off: u32) -> EmbeddingParams {
    EmbeddingParams { batch: s.batch, t: s.t, c: s.c, vocab: s.vocab, wte_off, wpe_off, dwte_off, dwpe_off }
}

/// The token and position embeddings: two tensors of one block (the parameters; the
/// gradients for the backward), bound once as `params` / `dparams`.
#[derive(Clone, Copy)]
pub struct EmbeddingTables<'a> {
    pub block: Block<'a>,
    /// wte (V, C)
    pub wte: u32,
    /// wpe (maxT, C)
    pub wpe: u32,
}

impl<'a> EmbeddingTables<'a> {
    /// The block bound for tables of this shape (whole, or the window over wte and wpe), and
    /// wte's and wpe's offsets in the binding.
    fn bind(&self, gpu: &Gpu, s: &EmbeddingShape) -> Result<(Bound<'a>, u32, u32)> {
        let (wte_end, wpe_end) = (self.wte as u64 + (s.vocab * s.c) as u64, self.wpe as u64 + (s.t * s.c) as u64);
        let (first, end) = (self.wte.min(self.wpe) as u64, wte_end.max(wpe_end));
        let (bound, shift) = window(gpu, self.block.buffer, self.block.store, first, end)?;
        Ok((bound, self.wte - shift, self.wpe - shift))
    }
}

pub fn embedding_forward(
    gpu: &Gpu,
    out: TensorRef,
    tokens: &wgpu::Buffer,
    tables: EmbeddingTables,
    s: &EmbeddingShape,
) -> Result<Dispatch> {
    check_pairs("embedding", "channel count", s.c, &[tables.wte, tables.wpe, out.offset])?;
    if out.offset != 0 {
        bail!("embedding_forward writes a whole activation buffer");
    }
    let spec = spec("embedding_forward", tables.block.at(0).read_name(), out.store.wgsl_name(), "f32");
    let (block, wte, wpe) = tables.bind(gpu, s)?;
    let bindings = [(0, Bound::whole(tokens)), (1, block), (2, Bound::whole(out.buffer))];
    let n = (s.batch * s.t * s.c) as usize;
    gpu.dispatch_bound("embedding", &spec, &bindings, 7, &params(s, wte, wpe, 0, 0), gpu.grid(pair_groups(n)))
}

/// Two dispatches: dwte += bucketed sums of dout, dwpe += sums of dout over the batch.
pub fn embedding_backward(
    gpu: &Gpu,
    dtables: EmbeddingTables,
    dout: &wgpu::Buffer,
    bucket_start: &wgpu::Buffer,
    bucket_pos: &wgpu::Buffer,
    s: &EmbeddingShape,
) -> Result<Vec<Dispatch>> {
    check_pairs("embedding", "channel count", s.c, &[dtables.wte, dtables.wpe])?;
    let grad = dtables.block.store.wgsl_name();
    let (grads, dwte, dwpe) = dtables.bind(gpu, s)?;
    let p = params(s, 0, 0, dwte, dwpe);
    let wte_spec = spec("wte_backward", "f32", "f32", grad);
    let wpe_spec = spec("wpe_backward", "f32", "f32", grad);
    let whole = Bound::whole;
    Ok(vec![
        gpu.dispatch_bound(
            "embedding",
            &wte_spec,
            &[(3, whole(dout)), (4, grads), (5, whole(bucket_start)), (6, whole(bucket_pos))],
            7,
            &p,
            gpu.grid(pair_groups((s.vocab * s.c) as usize)),
        )?,
        gpu.dispatch_bound("embedding", &wpe_spec, &[(3, whole(dout)), (4, grads)], 7, &p, gpu.grid(pair_groups((s.t * s.c) as usize)))?,
    ])
}

fn spec(entry: &'static str, param: &str, act: &str, grad: &str) -> ShaderSpec {
    ShaderSpec::new("embedding.wgsl", entry).define("PARAM", param).define("ACT", act).define("GRAD", grad)
}

pub fn variants() -> Vec<ShaderSpec> {
    let mut out = Vec::new();
    for store in Store::ALL {
        let read = store.for_reading().wgsl_name();
        out.push(spec("embedding_forward", read, store.wgsl_name(), "f32"));
        out.push(spec("wte_backward", "f32", "f32", store.wgsl_name()));
        out.push(spec("wpe_backward", "f32", "f32", store.wgsl_name()));
    }
    out
}

/// The positions of each token in a batch, grouped by token: (bucket_start (V+1), bucket_pos).
pub fn token_buckets(tokens: &[u32], vocab: usize) -> (Vec<u32>, Vec<u32>) {
    let mut start = vec![0u32; vocab + 1];
    for &t in tokens {
        start[t as usize + 1] += 1;
    }
    for v in 0..vocab {
        start[v + 1] += start[v];
    }
    let mut fill = start.clone();
    let mut pos = vec![0u32; tokens.len()];
    for (i, &t) in tokens.iter().enumerate() {
        pos[fill[t as usize] as usize] = i as u32;
        fill[t as usize] += 1;
    }
    (start, pos)
}

pub fn embedding_forward_cpu(out: &mut [f32], tokens: &[u32], wte: &[f32], wpe: &[f32], t: usize, c: usize) {
    for (pos, &tok) in tokens.iter().enumerate() {
        for j in 0..c {
            out[pos * c + j] = wte[tok as usize * c + j] + wpe[(pos % t) * c + j];
        }
    }
}

/// dwte += scattered dout, dwpe += dout summed over the batch.
pub fn embedding_backward_cpu(dwte: &mut [f32], dwpe: &mut [f32], dout: &[f32], tokens: &[u32], t: usize, c: usize) {
    for (pos, &tok) in tokens.iter().enumerate() {
        for j in 0..c {
            dwte[tok as usize * c + j] += dout[pos * c + j];
            dwpe[(pos % t) * c + j] += dout[pos * c + j];
        }
    }
}
