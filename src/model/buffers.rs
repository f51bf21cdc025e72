//! The GPU model's buffers: each made once, checked against the adapter's limits and counted
//! in its role (parameters, gradients, optimizer state, activations, scratch) as it is made.
//! The same code, with nothing made, is the memory plan (`srgpt plan`): every size is stated
//! once, in the call that makes (or plans) the buffer.

use anyhow::Result;
use serde::Serialize;

use super::config::ModelConfig;
use super::params::ParamLayout;
pub use crate::gpu::binding_limit;
use crate::gpu::Gpu;
use crate::kernels::adamw::fidelity_groups;
use crate::kernels::layernorm::LayerNormSaved;
use crate::kernels::reduce::sumsq_groups;
use crate::kernels::TensorRef;
use crate::precision::{KeptExtra, Precision, Store};
use crate::Failure;

/// Saved activations of one block (act storage unless noted).
pub(super) struct BlockActs<B = wgpu::Buffer> {
    pub(super) ln1: B,      // (B,T,C)
    pub(super) ln1_mean: B, // (B,T) f32
    pub(super) ln1_rstd: B, // (B,T) f32
    pub(super) qkv: B,      // (B,T,3C)
    pub(super) att: B,      // (B,NH,T,T)
    pub(super) atty: B,     // (B,T,C)
    pub(super) res2: B,     // (B,T,C) residual after attention
    pub(super) ln2: B,      // (B,T,C)
    pub(super) ln2_mean: B, // (B,T) f32
    pub(super) ln2_rstd: B, // (B,T) f32
    pub(super) fch: B,      // (B,T,4C)
    pub(super) fch_gelu: B, // (B,T,4C)
    pub(super) res3: B,     // (B,T,C) residual after the MLP: the next block's input
}

/// GPU memory by role, in bytes, counted from the buffers actually allocated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
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

impl Role {
    pub fn name(&self) -> &'static str {
        match self {
            Role::Parameters => "parameters",
            Role::Master => "master weights",
            Role::Compensation => "compensation",
            Role::Gradients => "gradients",
            Role::OptimizerState => "optimizer state",
            Role::Activations => "activations",
            Role::Scratch => "scratch",
            Role::Io => "batch and stats",
        }
    }

    /// A block of the whole model's tensors (weights, gradients, optimizer state, master or
    /// compensation): kernels bind it in windows, so only max_buffer_size bounds it, while
    /// each window — a tensor, or a piece of a whole-block kernel — must fit one binding.
    pub fn is_block(&self) -> bool {
        matches!(self, Role::Parameters | Role::Master | Role::Compensation | Role::Gradients | Role::OptimizerState)
    }
}

/// Where the allocator's buffers go: made on the GPU, or only written down (a plan).
pub(super) trait Sink {
    type Buffer;
    fn limits(&self) -> &wgpu::Limits;
    /// Whether a buffer over the binding limit is refused at once (a plan lists them all).
    fn refuses_over_limit(&self) -> bool;
    fn make(&mut self, role: Role, label: &str, bytes: u64) -> Result<Self::Buffer>;
    /// Takes note of a binding that was checked (a plan lists it).
    fn note(&mut self, _binding: PlannedBuffer) {}
}

impl Sink for &Gpu {
    type Buffer = wgpu::Buffer;
    fn limits(&self) -> &wgpu::Limits {
        &self.limits
    }
    fn refuses_over_limit(&self) -> bool {
        true
    }
    fn make(&mut self, role: Role, label: &str, bytes: u64) -> Result<wgpu::Buffer> {
        if role.is_block() {
            self.block_buffer(label, bytes)
        } else {
            self.storage_buffer(label, bytes)
        }
    }
}

/// One buffer of a memory plan, or (with `binding_only`) the largest window a kernel binds
/// of a block: what must fit one binding.
#[derive(Clone, Debug, Serialize)]
pub struct PlannedBuffer {
    pub label: String,
    pub role: Role,
    pub bytes: u64,
    pub binding_only: bool,
}

impl PlannedBuffer {
    /// Whether an adapter with `limits` can make it (a block) or bind it (anything else).
    pub fn fits(&self, limits: &wgpu::Limits) -> bool {
        let limit = if self.role.is_block() && !self.binding_only { limits.max_buffer_size } else { binding_limit(limits) };
        self.bytes <= limit
    }
}

/// The buffers a model would make on an adapter with these limits, none made.
pub(super) struct Planner {
    pub(super) limits: wgpu::Limits,
    pub(super) buffers: Vec<PlannedBuffer>,
}

impl Sink for Planner {
    type Buffer = ();
    fn limits(&self) -> &wgpu::Limits {
        &self.limits
    }
    fn refuses_over_limit(&self) -> bool {
        false
    }
    fn note(&mut self, binding: PlannedBuffer) {
        self.buffers.push(binding);
    }
    fn make(&mut self, role: Role, label: &str, bytes: u64) -> Result<()> {
        self.buffers.push(PlannedBuffer { label: label.to_string(), role, bytes, binding_only: false });
        Ok(())
    }
}

/// Makes the model's buffers, each checked against the adapter's limits before it is made
/// and counted in its role: every size is stated once, in the call that makes the buffer.
pub(super) struct Allocator<S: Sink> {
    pub(super) sink: S,
    pub(super) memory: MemoryBytes,
}

impl<S: Sink> Allocator<S> {
    pub(super) fn new(sink: S) -> Allocator<S> {
        Allocator { sink, memory: MemoryBytes::default() }
    }

    /// Checks that a kernel can bind `elements` of a block of `role` in `store` at once (the
    /// span named `label`); a plan lists it.
    pub(super) fn binding(&mut self, role: Role, label: &str, store: Store, elements: usize) -> Result<()> {
        let planned = PlannedBuffer { label: label.to_string(), role, bytes: store.buffer_bytes(elements), binding_only: true };
        if !planned.fits(self.sink.limits()) && self.sink.refuses_over_limit() {
            let limit = binding_limit(self.sink.limits());
            return Err(Failure::BadInput(format!(
                "the model does not fit this adapter: a kernel binds {label} of the {} at once, {} bytes ({:.1} MiB), over max_storage_buffer_binding_size = {limit} bytes ({:.1} MiB). Use a 16-bit mode or a smaller model; `srgpt plan` shows every buffer.",
                role.name(),
                planned.bytes,
                planned.bytes as f64 / 1048576.0,
                limit as f64 / 1048576.0
            ))
            .into());
        }
        self.sink.note(planned);
        Ok(())
    }

    pub(super) fn buffer(&mut self, role: Role, label: &str, store: Store, elements: usize) -> Result<S::Buffer> {
        let bytes = store.buffer_bytes(elements);
        let limit = if role.is_block() { self.sink.limits().max_buffer_size } else { binding_limit(self.sink.limits()) };
        if bytes > limit && self.sink.refuses_over_limit() {
            if role.is_block() {
                return Err(Failure::BadInput(format!(
                    "the model does not fit this adapter: buffer '{label}' needs {bytes} bytes ({:.1} MiB), over max_buffer_size = {limit} bytes ({:.1} MiB). Use a smaller model; `srgpt plan` shows every buffer.",
                    bytes as f64 / 1048576.0,
                    limit as f64 / 1048576.0
                ))
                .into());
            }
            return Err(Failure::BadInput(format!(
                "the model does not fit this adapter: buffer '{label}' needs {bytes} bytes ({:.1} MiB), over max_storage_buffer_binding_size = {limit} bytes ({:.1} MiB). Use a smaller --batch (or more --grad-accum micro-batches), --ctx or model; `srgpt plan` shows every buffer.",
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
        self.sink.make(role, label, bytes)
    }
}

/// Every buffer of a model: weights, gradients, optimizer state and the kept extra weights,
/// the fidelity sums, the activations and scratch, the batch.
pub(super) struct ModelBuffers<B> {
    pub(super) params: B,
    pub(super) grads: B,
    pub(super) m: B,
    pub(super) v: B,
    /// master weights (mixed) or compensation (bf16-kahan): `precision.extra()`
    pub(super) extra: Option<B>,
    pub(super) fidelity_sums: Option<B>,
    pub(super) x: Activations<B>,
    pub(super) io: Inputs<B>,
    /// (micro_batches) f32: each micro-batch's mean loss
    pub(super) micro_losses: B,
}

/// The buffers of `cfg` running `batch` sequences at once, `micro_batches` times per update,
/// in `precision`'s storage; with `fidelity`, the update's fidelity sums.
pub(super) fn allocate<S: Sink>(
    alloc: &mut Allocator<S>,
    cfg: &ModelConfig,
    batch: u32,
    micro_batches: u32,
    precision: Precision,
    fidelity: bool,
    head_rows: Option<u32>,
) -> Result<ModelBuffers<S::Buffer>> {
    let n = ParamLayout::new(cfg).total;
    let bt = batch as usize * cfg.ctx as usize;
    let (ps, gs, ss, act, f) =
        (precision.param_store(), precision.grad_store(), precision.state_store(), precision.act_store(), Store::F32);
    let fidelity_len = 4 * fidelity_groups(alloc.sink.limits(), n as u32) as usize;
    // the most a kernel binds of a block at once (the kernels over the whole block bind it
    // in pieces that fit by construction): the embedding's wte and wpe, or the largest weight
    let layout = ParamLayout::new(cfg);
    let (wte, wpe) = (layout.wte as usize, layout.wpe as usize);
    // (the head binds wte with its padding rows, which lie between the two)
    let (wte_end, wpe_end) = (wte + (cfg.padded_vocab() * cfg.d) as usize, wpe + (cfg.ctx * cfg.d) as usize);
    let embedding = wte_end.max(wpe_end) - wte.min(wpe);
    let weight = layout.tensors.iter().filter(|t| t.shape.len() == 2).max_by_key(|t| t.len).expect("a model has weights");
    let spans = [("wte and wpe (the embedding reads both)".to_string(), embedding), (format!("'{}'", weight.name), weight.len)];
    // (the optimizer state and the master weights or compensation are read by AdamW alone,
    // which binds them in pieces)
    for (role, store) in [(Role::Parameters, ps), (Role::Gradients, gs)] {
        for (label, elements) in &spans {
            alloc.binding(role, label, store, *elements)?;
        }
    }
    Ok(ModelBuffers {
        params: alloc.buffer(Role::Parameters, "parameters", ps, n)?,
        grads: alloc.buffer(Role::Gradients, "gradients", gs, n)?,
        m: alloc.buffer(Role::OptimizerState, "adam m", ss, n)?,
        v: alloc.buffer(Role::OptimizerState, "adam v", ss, n)?,
        extra: match precision.extra() {
            Some(KeptExtra::Master) => Some(alloc.buffer(Role::Master, "master weights", f, n)?),
            Some(KeptExtra::Compensation) => Some(alloc.buffer(Role::Compensation, "compensation", Store::Bf16, n)?),
            None => None,
        },
        fidelity_sums: if fidelity { Some(alloc.buffer(Role::Scratch, "fidelity sums", f, fidelity_len)?) } else { None },
        x: Activations::new(alloc, cfg, batch, act, n, head_rows)?,
        io: Inputs {
            tokens: alloc.buffer(Role::Io, "tokens", f, bt)?,
            targets: alloc.buffer(Role::Io, "targets", f, bt)?,
            bucket_start: alloc.buffer(Role::Io, "bucket start", f, cfg.vocab as usize + 1)?,
            bucket_pos: alloc.buffer(Role::Io, "bucket positions", f, bt)?,
            stats: alloc.buffer(Role::Io, "stats", f, super::gpt::STATS_LEN)?,
        },
        micro_losses: alloc.buffer(Role::Io, "micro-batch losses", f, micro_batches as usize)?,
    })
}

/// A model's memory on an adapter with `limits`, from the same allocation as the model's,
/// with nothing made: the bytes by role, and every buffer.
#[derive(Clone, Debug, Serialize)]
pub struct MemoryPlan {
    pub memory: MemoryBytes,
    pub buffers: Vec<PlannedBuffer>,
}

impl MemoryPlan {
    pub fn new(
        cfg: &ModelConfig,
        batch: u32,
        micro_batches: u32,
        precision: Precision,
        fidelity: bool,
        limits: &wgpu::Limits,
    ) -> Result<MemoryPlan> {
        cfg.validate()?;
        let mut alloc = Allocator::new(Planner { limits: limits.clone(), buffers: Vec::new() });
        allocate(&mut alloc, cfg, batch, micro_batches, precision, fidelity, None)?;
        Ok(MemoryPlan { memory: alloc.memory, buffers: alloc.sink.buffers })
    }

    /// The buffers an adapter with `limits` cannot make, and the bindings it cannot bind.
    pub fn over_limit(&self, limits: &wgpu::Limits) -> Vec<&PlannedBuffer> {
        self.buffers.iter().filter(|b| !b.fits(limits)).collect()
    }

    /// The largest buffer, and the largest binding of a block.
    pub fn largest(&self) -> (Option<&PlannedBuffer>, Option<&PlannedBuffer>) {
        let largest = |bindings: bool| self.buffers.iter().filter(|b| b.binding_only == bindings).max_by_key(|b| b.bytes);
        (largest(false), largest(true))
    }

    /// The bytes of the buffers with label `label` (e.g. the logits).
    pub fn bytes_of(&self, label: &str) -> u64 {
        self.buffers.iter().filter(|b| b.label == label).map(|b| b.bytes).sum()
    }
}

/// The saved activations of the whole model (act storage unless noted), and the scratch
/// buffers the backward works in.
pub(super) struct Activations<B = wgpu::Buffer> {
    pub(super) encoded: B, // (B,T,C) the embedding: the first block's input
    pub(super) blocks: Vec<BlockActs<B>>,
    pub(super) lnf: B,      // (B,T,C)
    pub(super) lnf_mean: B, // (B,T) f32
    pub(super) lnf_rstd: B, // (B,T) f32
    pub(super) logits: B,   // (logits_rows,Vp) f32: a chunk of the head's rows, overwritten by dlogits
    pub(super) logits_rows: u32,
    pub(super) losses: B, // (B,T) f32
    // Scratch buffers whose contents are never live at the same time share memory: the
    // forward's scores and the backward's attention gradient; the gradients into the MLP's
    // hidden layer and into qkv; the gradients into a layernorm's output and into the
    // attention output (datty is consumed before dln is next written).
    pub(super) preatt: B,    // (B,NH,T,T) f32, also datt
    pub(super) dresidual: B, // (B,T,C) f32
    pub(super) dln: B,       // (B,T,C) f32, also datty
    pub(super) dfch: B,      // (B,T,4C) f32, also dqkv
    pub(super) partials: B,  // the gradient norm's partial sums, f32
}

impl<B> Activations<B> {
    fn new<S: Sink<Buffer = B>>(
        alloc: &mut Allocator<S>,
        cfg: &ModelConfig,
        batch: u32,
        act: Store,
        n_params: usize,
        head_rows: Option<u32>,
    ) -> Result<Activations<B>> {
        let (b, t, d, vp, nh) = (batch as usize, cfg.ctx as usize, cfg.d as usize, cfg.padded_vocab() as usize, cfg.n_head as usize);
        let (bt, f) = (b * t, Store::F32);
        let logits_rows = head_rows.unwrap_or_else(|| super::gpt::head_rows(bt as u32, cfg.padded_vocab(), super::gpt::LOGITS_CHUNK_BYTES));
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
            logits: buf(a, "logits", f, logits_rows as usize * vp)?,
            logits_rows,
            losses: buf(a, "losses", f, bt)?,
            preatt: buf(s, "preatt / datt", f, b * nh * t * t)?,
            dresidual: buf(s, "dresidual", f, bt * d)?,
            dln: buf(s, "dln / datty", f, bt * d)?,
            dfch: buf(s, "dfch / dqkv", f, bt * 4 * d)?,
            partials: buf(s, "partials", f, sumsq_groups(n_params as u32) as usize)?,
        })
    }

    /// The residual stream entering block `i` (the output of the blocks before it).
    pub(super) fn block_input(&self, i: usize) -> &B {
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
pub(super) struct Inputs<B = wgpu::Buffer> {
    pub(super) tokens: B,       // (B,T) u32
    pub(super) targets: B,      // (B,T) u32
    pub(super) bucket_start: B, // (V+1) u32
    pub(super) bucket_pos: B,   // (B,T) u32
    pub(super) stats: B,        // (STATS_LEN) f32
}
