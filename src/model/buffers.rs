//! The GPU model's buffers: each made once, checked against the adapter's limits and counted
//! in its role (parameters, gradients, optimizer state, activations, scratch) as it is made.

use anyhow::Result;

use super::config::ModelConfig;
use crate::gpu::Gpu;
use crate::kernels::layernorm::LayerNormSaved;
use crate::kernels::reduce::sumsq_groups;
use crate::kernels::TensorRef;
use crate::precision::Store;
use crate::Failure;

/// Saved activations of one block (act storage unless noted).
pub(super) struct BlockActs {
    pub(super) ln1: wgpu::Buffer,      // (B,T,C)
    pub(super) ln1_mean: wgpu::Buffer, // (B,T) f32
    pub(super) ln1_rstd: wgpu::Buffer, // (B,T) f32
    pub(super) qkv: wgpu::Buffer,      // (B,T,3C)
    pub(super) att: wgpu::Buffer,      // (B,NH,T,T)
    pub(super) atty: wgpu::Buffer,     // (B,T,C)
    pub(super) res2: wgpu::Buffer,     // (B,T,C) residual after attention
    pub(super) ln2: wgpu::Buffer,      // (B,T,C)
    pub(super) ln2_mean: wgpu::Buffer, // (B,T) f32
    pub(super) ln2_rstd: wgpu::Buffer, // (B,T) f32
    pub(super) fch: wgpu::Buffer,      // (B,T,4C)
    pub(super) fch_gelu: wgpu::Buffer, // (B,T,4C)
    pub(super) res3: wgpu::Buffer,     // (B,T,C) residual after the MLP: the next block's input
}

/// GPU memory by role, in bytes, counted from the buffers actually allocated.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct MemoryBytes {
    pub parameters: u64,
    pub master: u64,
    /// bf16-kahan's compensation term
    pub compensation: u64,
    pub gradients: u64,
    pub optimizer_state: u64,
    pub activations: u64,
    pub scratch: u64,
    pub total: u64,
}

impl MemoryBytes {
    /// Parameters, fp32 master or compensation, gradients and Adam state: what training keeps
    /// per parameter.
    pub fn training_state(&self) -> u64 {
        self.parameters + self.master + self.compensation + self.gradients + self.optimizer_state
    }
}

/// What a buffer holds, for the memory report.
#[derive(Clone, Copy)]
pub(super) enum Role {
    Parameters,
    Master,
    Compensation,
    Gradients,
    OptimizerState,
    Activations,
    Scratch,
    /// the batch, its buckets and the stats: small, and not counted
    Io,
}

/// Makes the model's buffers, each checked against the adapter's limits before it is made
/// and counted in its role: every size is stated once, in the call that makes the buffer.
pub(super) struct Allocator<'a> {
    pub(super) gpu: &'a Gpu,
    pub(super) memory: MemoryBytes,
}

impl Allocator<'_> {
    pub(super) fn buffer(&mut self, role: Role, label: &str, store: Store, elements: usize) -> Result<wgpu::Buffer> {
        let bytes = store.buffer_bytes(elements);
        let limit = self.gpu.limits.max_storage_buffer_binding_size.min(self.gpu.limits.max_buffer_size);
        if bytes > limit {
            return Err(Failure::BadInput(format!(
                "the model does not fit this adapter: buffer '{label}' needs {bytes} bytes ({:.1} MiB), over max_storage_buffer_binding_size = {limit} bytes ({:.1} MiB). Use a smaller --batch, --ctx or model.",
                bytes as f64 / 1048576.0,
                limit as f64 / 1048576.0
            ))
            .into());
        }
        let m = &mut self.memory;
        match role {
            Role::Parameters => m.parameters += bytes,
            Role::Master => m.master += bytes,
            Role::Compensation => m.compensation += bytes,
            Role::Gradients => m.gradients += bytes,
            Role::OptimizerState => m.optimizer_state += bytes,
            Role::Activations => m.activations += bytes,
            Role::Scratch => m.scratch += bytes,
            Role::Io => {}
        }
        if !matches!(role, Role::Io) {
            m.total += bytes;
        }
        self.gpu.storage_buffer(label, bytes)
    }

    /// A buffer holding `values` in `store`.
    pub(super) fn holding(&mut self, role: Role, label: &str, store: Store, values: &[f32]) -> Result<wgpu::Buffer> {
        let buffer = self.buffer(role, label, store, values.len())?;
        self.gpu.upload(&buffer, 0, &store.encode(values));
        Ok(buffer)
    }
}

/// The saved activations of the whole model (act storage unless noted), and the scratch
/// buffers the backward works in.
pub(super) struct Activations {
    pub(super) encoded: wgpu::Buffer, // (B,T,C) the embedding: the first block's input
    pub(super) blocks: Vec<BlockActs>,
    pub(super) lnf: wgpu::Buffer,      // (B,T,C)
    pub(super) lnf_mean: wgpu::Buffer, // (B,T) f32
    pub(super) lnf_rstd: wgpu::Buffer, // (B,T) f32
    pub(super) logits: wgpu::Buffer,   // (B,T,V) f32, overwritten by dlogits
    pub(super) losses: wgpu::Buffer,   // (B,T) f32
    // Scratch buffers whose contents are never live at the same time share memory: the
    // forward's scores and the backward's attention gradient; the gradients into the MLP's
    // hidden layer and into qkv; the gradients into a layernorm's output and into the
    // attention output (datty is consumed before dln is next written).
    pub(super) preatt: wgpu::Buffer,    // (B,NH,T,T) f32, also datt
    pub(super) dresidual: wgpu::Buffer, // (B,T,C) f32
    pub(super) dln: wgpu::Buffer,       // (B,T,C) f32, also datty
    pub(super) dfch: wgpu::Buffer,      // (B,T,4C) f32, also dqkv
    pub(super) partials: wgpu::Buffer,  // the gradient norm's partial sums, f32
}

impl Activations {
    pub(super) fn new(alloc: &mut Allocator, cfg: &ModelConfig, batch: u32, act: Store, n_params: usize) -> Result<Activations> {
        let (b, t, d, v, nh) = (batch as usize, cfg.ctx as usize, cfg.d as usize, cfg.vocab as usize, cfg.n_head as usize);
        let (bt, f) = (b * t, Store::F32);
        let mut buf = |role, label: &str, store, len| alloc.buffer(role, label, store, len);
        let (a, s) = (Role::Activations, Role::Scratch);
        let encoded = buf(a, "encoded", act, bt * d)?;
        let mut blocks = Vec::new();
        for _ in 0..cfg.n_layer {
            blocks.push(BlockActs {
                ln1: buf(a, "ln1", act, bt * d)?,
                ln1_mean: buf(a, "ln1 mean", f, bt)?,
                ln1_rstd: buf(a, "ln1 rstd", f, bt)?,
                qkv: buf(a, "qkv", act, bt * 3 * d)?,
                att: buf(a, "att", act, b * nh * t * t)?,
                atty: buf(a, "atty", act, bt * d)?,
                res2: buf(a, "res2", act, bt * d)?,
                ln2: buf(a, "ln2", act, bt * d)?,
                ln2_mean: buf(a, "ln2 mean", f, bt)?,
                ln2_rstd: buf(a, "ln2 rstd", f, bt)?,
                fch: buf(a, "fch", act, bt * 4 * d)?,
                fch_gelu: buf(a, "fch_gelu", act, bt * 4 * d)?,
                res3: buf(a, "res3", act, bt * d)?,
            });
        }
        Ok(Activations {
            encoded,
            blocks,
            lnf: buf(a, "ln_f", act, bt * d)?,
            lnf_mean: buf(a, "ln_f mean", f, bt)?,
            lnf_rstd: buf(a, "ln_f rstd", f, bt)?,
            logits: buf(a, "logits", f, bt * v)?,
            losses: buf(a, "losses", f, bt)?,
            preatt: buf(s, "preatt / datt", f, b * nh * t * t)?,
            dresidual: buf(s, "dresidual", f, bt * d)?,
            dln: buf(s, "dln / datty", f, bt * d)?,
            dfch: buf(s, "dfch / dqkv", f, bt * 4 * d)?,
            partials: buf(s, "partials", f, sumsq_groups(n_params as u32) as usize)?,
        })
    }

    /// The residual stream entering block `i` (the output of the blocks before it).
    pub(super) fn block_input(&self, i: usize) -> &wgpu::Buffer {
        if i == 0 {
            &self.encoded
        } else {
            &self.blocks[i - 1].res3
        }
    }
}

impl BlockActs {
    /// The first LayerNorm's input (the block's input) and statistics.
    pub(super) fn ln1_saved<'a>(&'a self, input: TensorRef<'a>) -> LayerNormSaved<'a> {
        LayerNormSaved { inp: input, mean: &self.ln1_mean, rstd: &self.ln1_rstd }
    }
    /// The second LayerNorm's input (after attention's residual) and statistics.
    pub(super) fn ln2_saved(&self, act: Store) -> LayerNormSaved<'_> {
        LayerNormSaved { inp: TensorRef::new(&self.res2, act), mean: &self.ln2_mean, rstd: &self.ln2_rstd }
    }
}

/// The batch on the GPU: token ids, targets, and the per-token buckets of the embedding
/// backward; plus the small stats buffer (losses, gradient norm).
pub(super) struct Inputs {
    pub(super) tokens: wgpu::Buffer,       // (B,T) u32
    pub(super) targets: wgpu::Buffer,      // (B,T) u32
    pub(super) bucket_start: wgpu::Buffer, // (V+1) u32
    pub(super) bucket_pos: wgpu::Buffer,   // (B,T) u32
    pub(super) stats: wgpu::Buffer,        // (STATS_LEN) f32
}
