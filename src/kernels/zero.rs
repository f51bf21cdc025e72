//! zero (shaders/zero.wgsl): clears a gradient before the backward kernels accumulate into
//! it. Every backward adds to its gradient outputs (`+=`, llm.c's rule); the model zeroes the
//! parameter gradients once per step and a scratch activation gradient before each reuse.
//!
//!   t (n) any storage, from an even offset when 16-bit (pairs share a word)

use anyhow::{bail, Result};

use super::{bind_piece, block_pieces, Block, TensorRef};
use crate::gpu::{Dispatch, Gpu, ShaderSpec};

crate::uniform! {
    /// `Params` of shaders/zero.wgsl.
    pub struct ZeroParams { n: u32, off: u32, _pad0: u32, _pad1: u32 }
}

/// t[0..n) = 0.
pub fn zero(gpu: &Gpu, t: TensorRef, n: u32) -> Result<Dispatch> {
    let (off, words) = if t.store.is_packed() {
        if !n.is_multiple_of(2) || !t.offset.is_multiple_of(2) {
            bail!("zero of a 16-bit tensor needs an even length and offset (length {n}, offset {})", t.offset);
        }
        (t.offset / 2, n / 2)
    } else {
        (t.offset, n)
    };
    let params = ZeroParams { n: words, off, ..Default::default() };
    gpu.dispatch("zero", &spec(), &[(0, t.buffer)], 1, &params, gpu.grid(words.div_ceil(64 * WORDS_PER_THREAD)))
}

/// block[0..n) = 0 (the parameter gradients): one dispatch, or one per piece of a block
/// larger than a binding.
pub fn zero_block(gpu: &Gpu, block: Block, n: u32) -> Result<Vec<Dispatch>> {
    let pieces = block_pieces(&gpu.limits, n);
    if pieces.len() == 1 {
        return Ok(vec![zero(gpu, block.at(0), n)?]);
    }
    let mut out = Vec::new();
    for &piece in &pieces {
        let bound = bind_piece(gpu, block.buffer, block.store, piece, pieces.len())?;
        let words = if block.store.is_packed() { piece.len.div_ceil(2) } else { piece.len };
        let params = ZeroParams { n: words, off: 0, ..Default::default() };
        out.push(gpu.dispatch_bound("zero", &spec(), &[(0, bound)], 1, &params, gpu.grid(words.div_ceil(64 * WORDS_PER_THREAD)))?);
    }
    Ok(out)
}

/// Words each thread clears (a thread per word costs more in thread starts than in stores).
const WORDS_PER_THREAD: u32 = 16;

fn spec() -> ShaderSpec {
    ShaderSpec::new("zero.wgsl", "zero").define("WORDS_PER_THREAD", WORDS_PER_THREAD)
}

pub fn variants() -> Vec<ShaderSpec> {
    vec![spec()]
}

/// CPU reference.
pub fn zero_cpu(t: &mut [f32]) {
    t.fill(0.0);
}
