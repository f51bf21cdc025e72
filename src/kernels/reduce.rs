//! reduce (shaders/reduce.wgsl): deterministic sums — the squared norm of all gradients, the
//! mean loss, and column sums (a linear layer's bias gradient).
//!
//!   block (n) any storage -> partials (groups) f32 -> stats[out_index] f32
//!   column_sum: inp (rows, cols) any storage -> cols_out (cols) any storage

use anyhow::{bail, Result};

use super::{bind_piece, block_pieces, window, Block, TensorRef};
use crate::gpu::{Bound, Dispatch, Gpu, ShaderSpec};
use crate::precision::Store;

crate::uniform! {
    /// `Params` of shaders/reduce.wgsl (each entry point reads the fields it needs).
    pub struct ReduceParams { n: u32, chunk: u32, rows: u32, cols: u32, in_off: u32, out_off: u32, out_index: u32, scale: f32 }
}

/// Elements each workgroup of `sumsq_partial` sums.
pub const SUMSQ_CHUNK: u32 = 4096;

/// Number of partial sums `sum_squares` needs room for.
pub fn sumsq_groups(n: u32) -> u32 {
    n.div_ceil(SUMSQ_CHUNK)
}

/// stats[out_index] = sum of block[i]^2 over the block's n elements (a partial sum per
/// SUMSQ_CHUNK elements, in one dispatch or one per piece of a block larger than a binding,
/// then their sum; `partials` holds `sumsq_groups(n)` f32).
pub fn sum_squares(
    gpu: &Gpu,
    block: Block,
    n: u32,
    partials: &wgpu::Buffer,
    stats: &wgpu::Buffer,
    out_index: u32,
) -> Result<Vec<Dispatch>> {
    let spec = ShaderSpec::new("reduce.wgsl", "sumsq_partial").define("IN", block.at(0).read_name()).define("OUT", "f32");
    let pieces = block_pieces(&gpu.limits, n);
    let mut out = Vec::new();
    for &piece in &pieces {
        let bound = bind_piece(gpu, block.buffer, block.store, piece, pieces.len())?;
        // a piece's partial sums follow the pieces before it: the same sums as in one piece
        let out_off = piece.first / SUMSQ_CHUNK;
        let params = ReduceParams { n: piece.len, chunk: SUMSQ_CHUNK, out_off, scale: 1.0, ..Default::default() };
        let bindings = [(0, bound), (1, Bound::whole(partials))];
        out.push(gpu.dispatch_bound("reduce", &spec, &bindings, 4, &params, gpu.grid(sumsq_groups(piece.len)))?);
    }
    out.push(sum(gpu, TensorRef::new(partials, Store::F32), sumsq_groups(n), stats, out_index, 1.0)?);
    Ok(out)
}

/// stats[out_index] = scale * sum of values (n) f32, in one workgroup.
pub fn sum(gpu: &Gpu, values: TensorRef, n: u32, stats: &wgpu::Buffer, out_index: u32, scale: f32) -> Result<Dispatch> {
    if values.store != Store::F32 {
        bail!("sum reads f32 values");
    }
    let spec = ShaderSpec::new("reduce.wgsl", "sum_final").define("IN", "f32").define("OUT", "f32");
    let params = ReduceParams { n, out_index, scale, in_off: values.offset, ..Default::default() };
    gpu.dispatch("reduce", &spec, &[(1, values.buffer), (2, stats)], 4, &params, [1, 1, 1])
}

/// out (cols) = sum over rows of inp (rows, cols); cols even.
pub fn column_sum(gpu: &Gpu, out: TensorRef, inp: TensorRef, rows: u32, cols: u32) -> Result<Dispatch> {
    if !cols.is_multiple_of(2) || !out.offset.is_multiple_of(2) {
        bail!("column_sum needs an even column count and offset (cols {cols})");
    }
    let spec = ShaderSpec::new("reduce.wgsl", "column_sum").define("IN", inp.read_name()).define("OUT", out.store.wgsl_name());
    let (bound, shift) = window(gpu, out.buffer, out.store, out.offset as u64, (out.offset + cols) as u64)?;
    let params = ReduceParams { rows, cols, in_off: inp.offset, out_off: out.offset - shift, ..Default::default() };
    gpu.dispatch_bound("reduce", &spec, &[(0, Bound::whole(inp.buffer)), (3, bound)], 4, &params, gpu.grid(cols / 2))
}

pub fn variants() -> Vec<ShaderSpec> {
    let mut out = vec![ShaderSpec::new("reduce.wgsl", "sum_final").define("IN", "f32").define("OUT", "f32")];
    for store in Store::ALL {
        let read = store.for_reading().wgsl_name();
        out.push(ShaderSpec::new("reduce.wgsl", "sumsq_partial").define("IN", read).define("OUT", "f32"));
        out.push(ShaderSpec::new("reduce.wgsl", "column_sum").define("IN", "f32").define("OUT", store.wgsl_name()));
        out.push(ShaderSpec::new("reduce.wgsl", "column_sum").define("IN", read).define("OUT", "f32"));
    }
    out
}

/// CPU reference: sum of squares in f64.
pub fn sum_squares_cpu(values: &[f32]) -> f64 {
    values.iter().map(|&x| x as f64 * x as f64).sum()
}
