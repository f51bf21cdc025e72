//! The GPT on the GPU: `gpt_forward`, `gpt_loss`, `gpt_backward` and `gpt_update` read top
//! to bottom as the list of layer calls, like llm.c's; each builds its dispatches once, and a
//! step replays them. The buffers they work on are made in `buffers.rs`.

use anyhow::Result;

pub use super::buffers::MemoryBytes;
use super::buffers::{allocate, Activations, Allocator, Inputs, ModelBuffers};
pub use super::buffers::{binding_limit, MemoryPlan, PlannedBuffer, Role};
use super::config::{ModelConfig, TrainConfig};
use super::params::{ParamLayout, RawState};
use crate::data::Batch;
use crate::gpu::{Dispatch, Gpu};
use crate::kernels::adamw::{adamw_params, adamw_update, fidelity_sums, AdamwBuffers, AdamwConfig, AdamwStep, AdamwUpdate};
use crate::kernels::attention::{attention_backward, attention_forward, AttentionShape};
use crate::kernels::cross_entropy::{cross_entropy_forward_backward, Logits};
use crate::kernels::embedding::{embedding_backward, embedding_forward, token_buckets, EmbeddingShape, EmbeddingTables};
use crate::kernels::gelu::gelu_backward;
use crate::kernels::layernorm::{layernorm_backward, layernorm_forward, LayerNormAffine, LayerNormSaved, LayerNormShape};
use crate::kernels::matmul::{matmul_backward, matmul_forward, matmul_gelu_forward, matmul_residual_forward, Linear, LinearShape};
use crate::kernels::reduce::{sum, sum_squares};
use crate::kernels::zero::{zero, zero_block};
use crate::kernels::{Block, TensorRef};
use crate::precision::{KeptExtra, Precision, Store};

/// Slots of the small `stats` buffer each model keeps on the GPU.
pub const STAT_TRAIN_LOSS: usize = 0;
pub const STAT_GRAD_SUMSQ: usize = 1;
pub const STAT_EVAL_LOSS: usize = 2;
/// The update's fidelity sums (see `kernels::adamw::Fidelity`): four slots from here.
pub const STAT_FIDELITY: usize = 4;
pub const STATS_LEN: usize = 8;

/// How a training step is timed with timestamp queries.
#[derive(Clone, Copy)]
pub enum StepTiming<'a> {
    Off,
    /// the whole step: queries 0 and 1
    Pass(&'a wgpu::QuerySet),
    /// each dispatch in a pass of its own: queries 2i and 2i+1 (for profiles)
    PerDispatch(&'a wgpu::QuerySet),
}

/// One compute pass over `dispatches`, with optional (query set, start index, end index).
fn record_pass(
    encoder: &mut wgpu::CommandEncoder,
    label: &str,
    dispatches: &[&Dispatch],
    timestamps: Option<(&wgpu::QuerySet, Option<u32>, Option<u32>)>,
) {
    let timestamp_writes = timestamps.map(|(query_set, beginning_of_pass_write_index, end_of_pass_write_index)| {
        wgpu::ComputePassTimestampWrites { query_set, beginning_of_pass_write_index, end_of_pass_write_index }
    });
    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some(label), timestamp_writes });
    for d in dispatches {
        d.record(&mut pass);
    }
}

/// Everything a layer call needs: the shapes, the parameter and gradient blocks, and views
/// of the buffers in their storage types.
struct Net<'a> {
    gpu: &'a Gpu,
    layout: &'a ParamLayout,
    /// B*T rows, C channels, V vocabulary, Vp rows of the embedding (V and its padding)
    bt: u32,
    d: u32,
    vocab: u32,
    padded_vocab: u32,
    attn: AttentionShape,
    emb: EmbeddingShape,
    params: Block<'a>,
    grads: Block<'a>,
    act: Store,
    x: &'a Activations,
    io: &'a Inputs,
}

impl<'a> Net<'a> {
    /// An activation buffer in activation storage.
    fn a(&self, buffer: &'a wgpu::Buffer) -> TensorRef<'a> {
        TensorRef::new(buffer, self.act)
    }
    /// A scratch or logits buffer, in f32.
    fn f(&self, buffer: &'a wgpu::Buffer) -> TensorRef<'a> {
        TensorRef::new(buffer, Store::F32)
    }
    /// A linear layer's weight and bias at these offsets of `block` (parameters or gradients).
    fn linear(&self, block: Block<'a>, weight: u32, bias: u32) -> Linear<'a> {
        Linear::new(block.at(weight), block.at(bias))
    }
    /// A linear layer from C = `c` to OC = `oc` channels over the B*T rows.
    fn shape(&self, c: u32, oc: u32) -> LinearShape {
        LinearShape { bt: self.bt, c, oc }
    }
    fn affine(&self, block: Block<'a>, weight: u32, bias: u32) -> LayerNormAffine<'a> {
        LayerNormAffine { block, weight, bias }
    }
    fn rows(&self) -> LayerNormShape {
        LayerNormShape { n: self.bt, c: self.d }
    }
    /// The final LayerNorm's input (the last block's output) and statistics.
    fn lnf_saved(&self) -> LayerNormSaved<'a> {
        let x = self.x;
        LayerNormSaved { inp: self.a(x.block_input(x.blocks.len())), mean: &x.lnf_mean, rstd: &x.lnf_rstd }
    }
    /// Clears a whole f32 scratch gradient before a backward accumulates into it.
    fn zero(&self, buffer: &'a wgpu::Buffer) -> Result<Dispatch> {
        zero(self.gpu, self.f(buffer), (buffer.size() / 4) as u32)
    }
}

/// The forward pass, layer by layer: embedding, then per block LayerNorm, qkv, attention,
/// projection (+ residual), LayerNorm, MLP up with GELU, MLP down (+ residual); then the final
/// LayerNorm. The head follows a chunk of rows at a time (`gpt_head_forward`).
fn gpt_forward(net: &Net) -> Result<Vec<Dispatch>> {
    let (gpu, l, x, d, (a, f)) = (net.gpu, net.layout, net.x, net.d, (|b| net.a(b), |b| net.f(b)));
    let (params, rows) = (net.params, net.rows());
    let tables = EmbeddingTables { block: params, wte: l.wte, wpe: l.wpe };
    let mut out = vec![embedding_forward(gpu, a(&x.encoded), &net.io.tokens, tables, &net.emb)?];
    for (i, (w, b)) in l.blocks.iter().zip(&x.blocks).enumerate() {
        let input = a(x.block_input(i));
        out.push(layernorm_forward(gpu, a(&b.ln1), &b.ln1_saved(input), net.affine(params, w.ln1_w, w.ln1_b), rows)?);
        out.push(matmul_forward(gpu, a(&b.qkv), a(&b.ln1), net.linear(params, w.qkv_w, w.qkv_b), net.shape(d, 3 * d))?);
        out.extend(attention_forward(gpu, a(&b.atty), f(&x.preatt), a(&b.att), a(&b.qkv), &net.attn)?);
        let proj = net.linear(params, w.attn_proj_w, w.attn_proj_b);
        out.push(matmul_residual_forward(gpu, a(&b.res2), input, a(&b.atty), proj, net.shape(d, d))?);
        out.push(layernorm_forward(gpu, a(&b.ln2), &b.ln2_saved(net.act), net.affine(params, w.ln2_w, w.ln2_b), rows)?);
        let fc = net.linear(params, w.fc_w, w.fc_b);
        out.push(matmul_gelu_forward(gpu, a(&b.fch_gelu), a(&b.fch), a(&b.ln2), fc, net.shape(d, 4 * d))?);
        let fc_proj = net.linear(params, w.fc_proj_w, w.fc_proj_b);
        out.push(matmul_residual_forward(gpu, a(&b.res3), a(&b.res2), a(&b.fch_gelu), fc_proj, net.shape(4 * d, d))?);
    }
    out.push(layernorm_forward(gpu, a(&x.lnf), &net.lnf_saved(), net.affine(params, l.lnf_w, l.lnf_b), rows)?);
    Ok(out)
}

/// The head over rows [first, first + rows) of the batch: their logits through the tied
/// embedding, into the logits buffer (which holds one chunk of rows: a step's logits, B*T*Vp,
/// need never exist at once). The padding rows of wte give padding columns of 0.
fn gpt_head_forward(net: &Net, chunk: HeadChunk) -> Result<Dispatch> {
    let (l, x, d) = (net.layout, net.x, net.d);
    let lnf = net.a(&x.lnf).at(chunk.first * d);
    let shape = LinearShape { bt: chunk.rows, c: d, oc: net.padded_vocab };
    matmul_forward(net.gpu, net.f(&x.logits), lnf, Linear::without_bias(net.params.at(l.wte)), shape)
}

/// The chunk's losses into losses[first..], and its logits become dlogits (training) or stay
/// (evaluation) as `after` says.
fn gpt_head_loss(net: &Net, chunk: HeadChunk, after: Logits) -> Result<Dispatch> {
    let (x, io) = (net.x, net.io);
    cross_entropy_forward_backward(net.gpu, &x.logits, &io.targets, &x.losses, chunk.first, chunk.rows, net.vocab, net.padded_vocab, after)
}

/// The head's backward over the chunk: dlnf[rows] += dlogits . wte, dwte += dlogits^T . lnf[rows]
/// (the padding columns of dlogits are 0: the padding rows of dwte stay 0).
fn gpt_head_backward(net: &Net, chunk: HeadChunk) -> Result<Vec<Dispatch>> {
    let (l, x, d) = (net.layout, net.x, net.d);
    let (dlnf, lnf) = (net.f(&x.dln).at(chunk.first * d), net.a(&x.lnf).at(chunk.first * d));
    let (head, dhead) = (net.params.at(l.wte), Linear::without_bias(net.grads.at(l.wte)));
    let shape = LinearShape { bt: chunk.rows, c: d, oc: net.padded_vocab };
    matmul_backward(net.gpu, dlnf, dhead, net.f(&x.logits), lnf, head, shape)
}

/// The mean of the batch's losses into `out[slot]`.
fn gpt_loss_mean(net: &Net, out: &wgpu::Buffer, slot: usize) -> Result<Dispatch> {
    sum(net.gpu, net.f(&net.x.losses), net.bt, out, slot as u32, 1.0 / net.bt as f32)
}

/// The training loss's mean of each of `micro_batches` micro-batches (micro-batch `i` into
/// `micro_losses[i]`, or with one micro-batch straight into the stats); with several, the
/// mean of their losses into the stats afterwards.
fn gpt_train_loss(net: &Net, micro_batches: u32, micro_losses: &wgpu::Buffer) -> Result<(Vec<Dispatch>, Vec<Dispatch>)> {
    if micro_batches == 1 {
        return Ok((vec![gpt_loss_mean(net, &net.io.stats, STAT_TRAIN_LOSS)?], Vec::new()));
    }
    let per_micro = (0..micro_batches as usize).map(|i| gpt_loss_mean(net, micro_losses, i)).collect::<Result<_>>()?;
    let mean = sum(net.gpu, net.f(micro_losses), micro_batches, &net.io.stats, STAT_TRAIN_LOSS as u32, 1.0 / micro_batches as f32)?;
    Ok((per_micro, vec![mean]))
}

/// Rows [first, first + rows) of the batch, whose logits the head computes at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadChunk {
    pub first: u32,
    pub rows: u32,
}

/// The most bytes of logits the head computes at once: what any WebGPU adapter can bind.
/// Every model whose batch's logits fit takes one chunk; the chunks do not depend on the
/// adapter, so a run repeats bit for bit anywhere.
pub const LOGITS_CHUNK_BYTES: u64 = 128 << 20;

/// Rows per chunk of the head for `bt` rows of a head of `padded_vocab` columns: all of them
/// when their f32 logits fit `cap_bytes`, else a multiple of 64 rows that do.
pub fn head_rows(bt: u32, padded_vocab: u32, cap_bytes: u64) -> u32 {
    let row_bytes = padded_vocab as u64 * 4;
    if bt as u64 * row_bytes <= cap_bytes {
        return bt;
    }
    ((cap_bytes / row_bytes) as u32 / 64 * 64).clamp(64.min(bt), bt)
}

/// The chunks of `bt` rows, `rows` at a time (the last may be shorter).
pub fn head_chunks(bt: u32, rows: u32) -> Vec<HeadChunk> {
    (0..bt).step_by(rows.max(1) as usize).map(|first| HeadChunk { first, rows: rows.min(bt - first) }).collect()
}

/// Clears the scratch gradients the head's backward and the final LayerNorm's add into
/// (dlnf and dresidual) before a backward.
fn gpt_backward_start(net: &Net) -> Result<Vec<Dispatch>> {
    Ok(vec![net.zero(&net.x.dresidual)?, net.zero(&net.x.dln)?])
}

/// The backward pass from the final LayerNorm (the head's is `gpt_head_backward`, a chunk at a
/// time), the forward's layers in reverse: the final LayerNorm, then per block (last first)
/// MLP down, GELU, MLP up, LayerNorm, projection, attention, qkv, LayerNorm; then the
/// embeddings. As in llm.c, every backward adds into its gradients (`+=`): the parameter
/// gradients are zeroed once per update (`gpt_zero_grads`, so the micro-batches of an update
/// add up), dresidual and dlnf at the start of each backward (`gpt_backward_start`), and a
/// scratch gradient shared between layers before each layer that accumulates into it. GELU
/// and softmax transform their gradient in place.
fn gpt_backward(net: &Net) -> Result<Vec<Dispatch>> {
    let (gpu, l, x, d, (a, f)) = (net.gpu, net.layout, net.x, net.d, (|b| net.a(b), |b| net.f(b)));
    let (params, grads, rows) = (net.params, net.grads, net.rows());
    let (dres, dln, datty, datt, dfch, dqkv) = (&x.dresidual, &x.dln, &x.dln, &x.preatt, &x.dfch, &x.dfch);
    let mut out = Vec::new();
    let lnf = (net.affine(grads, l.lnf_w, l.lnf_b), net.affine(params, l.lnf_w, l.lnf_b));
    out.extend(layernorm_backward(gpu, dres, lnf.0, dln, &net.lnf_saved(), lnf.1, rows)?);
    for (i, (w, b)) in l.blocks.iter().zip(&x.blocks).enumerate().rev() {
        let input = a(x.block_input(i));
        let (fc_proj, dfc_proj) = (params.at(w.fc_proj_w), net.linear(grads, w.fc_proj_w, w.fc_proj_b));
        out.push(net.zero(dfch)?);
        out.extend(matmul_backward(gpu, f(dfch), dfc_proj, f(dres), a(&b.fch_gelu), fc_proj, net.shape(4 * d, d))?);
        out.push(gelu_backward(gpu, f(dfch), a(&b.fch), net.bt * 4 * d)?);
        let (fc, dfc) = (params.at(w.fc_w), net.linear(grads, w.fc_w, w.fc_b));
        out.push(net.zero(dln)?);
        out.extend(matmul_backward(gpu, f(dln), dfc, f(dfch), a(&b.ln2), fc, net.shape(d, 4 * d))?);
        let ln2 = (net.affine(grads, w.ln2_w, w.ln2_b), net.affine(params, w.ln2_w, w.ln2_b));
        out.extend(layernorm_backward(gpu, dres, ln2.0, dln, &b.ln2_saved(net.act), ln2.1, rows)?);
        let (proj, dproj) = (params.at(w.attn_proj_w), net.linear(grads, w.attn_proj_w, w.attn_proj_b));
        out.push(net.zero(datty)?);
        out.extend(matmul_backward(gpu, f(datty), dproj, f(dres), a(&b.atty), proj, net.shape(d, d))?);
        out.push(net.zero(dqkv)?);
        out.extend(attention_backward(gpu, f(dqkv), f(datt), f(datty), a(&b.qkv), a(&b.att), &net.attn)?);
        let (qkv, dqkv_layer) = (params.at(w.qkv_w), net.linear(grads, w.qkv_w, w.qkv_b));
        out.push(net.zero(dln)?);
        out.extend(matmul_backward(gpu, f(dln), dqkv_layer, f(dqkv), a(&b.ln1), qkv, net.shape(d, 3 * d))?);
        let ln1 = (net.affine(grads, w.ln1_w, w.ln1_b), net.affine(params, w.ln1_w, w.ln1_b));
        out.extend(layernorm_backward(gpu, dres, ln1.0, dln, &b.ln1_saved(input), ln1.1, rows)?);
    }
    let dtables = EmbeddingTables { block: grads, wte: l.wte, wpe: l.wpe };
    out.extend(embedding_backward(gpu, dtables, dres, &net.io.bucket_start, &net.io.bucket_pos, &net.emb)?);
    Ok(out)
}

/// Clears the parameter gradients before the first backward of an update.
fn gpt_zero_grads(net: &Net) -> Result<Vec<Dispatch>> {
    zero_block(net.gpu, net.grads, net.layout.total as u32)
}

/// One chunk of the head: its logits, its loss with dlogits (training) or without
/// (evaluation), and its backward.
struct HeadDispatches {
    forward: Dispatch,
    train_loss: Dispatch,
    eval_loss: Dispatch,
    backward: Vec<Dispatch>,
}

/// The update: the global gradient norm (for clipping), AdamW over the whole block, and
/// when measured the sums of its fidelity into the stats.
struct Update {
    grad_norm: Vec<Dispatch>,
    adamw: AdamwUpdate,
    fidelity: Vec<Dispatch>,
}

fn gpt_update(net: &Net, precision: Precision, bufs: &AdamwBuffers) -> Result<Update> {
    let (gpu, n, stats) = (net.gpu, net.layout.total as u32, &net.io.stats);
    Ok(Update {
        grad_norm: sum_squares(gpu, net.grads, n, &net.x.partials, stats, STAT_GRAD_SUMSQ as u32)?,
        adamw: adamw_update(gpu, precision, bufs, n, net.layout.n_decay as u32)?,
        fidelity: match bufs.fidelity {
            Some(sums) => fidelity_sums(gpu, sums, n, stats, STAT_FIDELITY as u32)?,
            None => Vec::new(),
        },
    })
}

pub struct GptGpu {
    pub cfg: ModelConfig,
    /// sequences the model runs at once (one micro-batch)
    pub batch: u32,
    /// micro-batches per update, whose gradients add up
    pub micro_batches: u32,
    pub precision: Precision,
    pub layout: ParamLayout,
    pub memory: MemoryBytes,
    pub params: wgpu::Buffer,
    pub grads: wgpu::Buffer,
    pub m: wgpu::Buffer,
    pub v: wgpu::Buffer,
    /// master weights (mixed) or compensation (bf16-kahan): `precision.extra()`
    pub extra: Option<wgpu::Buffer>,
    pub stats: wgpu::Buffer,
    pub logits: wgpu::Buffer,
    /// the rows of each chunk of the head
    pub head_chunks: Vec<HeadChunk>,
    /// every buffer, kept so the dispatches can be built again (`rebuild_dispatches`)
    bufs: ModelBuffers<wgpu::Buffer>,
    dispatches: Dispatches,
    adamw_config: AdamwConfig,
}

/// Every dispatch of the model, built from its buffers with the kernel choices known when
/// built.
struct Dispatches {
    zero_grads: Vec<Dispatch>,
    forward: Vec<Dispatch>,
    /// the head, a chunk of rows at a time
    head: Vec<HeadDispatches>,
    backward_start: Vec<Dispatch>,
    /// per micro-batch: the mean of its losses
    loss: Vec<Dispatch>,
    /// with several micro-batches: the mean of their losses
    loss_mean: Vec<Dispatch>,
    eval_loss: Dispatch,
    backward: Vec<Dispatch>,
    update: Update,
}

impl GptGpu {
    /// Allocates the model for `batch` sequences and builds every dispatch, the update
    /// measuring its fidelity (stats[STAT_FIDELITY..]). The weights start at `init` rounded to
    /// the parameter storage (all modes start from the same point when `init` is
    /// bf16-representable).
    pub fn new(gpu: &Gpu, cfg: ModelConfig, batch: u32, precision: Precision, init: &[f32]) -> Result<GptGpu> {
        GptGpu::build(gpu, cfg, batch, 1, precision, init, true, None)
    }

    /// [`GptGpu::new`] without the fidelity measurement (for sampling, and for measuring its
    /// cost).
    pub fn without_fidelity(gpu: &Gpu, cfg: ModelConfig, batch: u32, precision: Precision, init: &[f32]) -> Result<GptGpu> {
        GptGpu::build(gpu, cfg, batch, 1, precision, init, false, None)
    }

    /// [`GptGpu::new`] with the head computed `head_rows` rows at a time (to test chunks on a
    /// small model; models choose by [`LOGITS_CHUNK_BYTES`]).
    pub fn with_head_rows(gpu: &Gpu, cfg: ModelConfig, batch: u32, precision: Precision, init: &[f32], head_rows: u32) -> Result<GptGpu> {
        GptGpu::build(gpu, cfg, batch, 1, precision, init, true, Some(head_rows))
    }

    /// The model a run of schedule `train` trains: it runs `train.micro_batch()` sequences at
    /// once, `train.grad_accum` times per update; with `fidelity`, the update measures it.
    pub fn for_training(
        gpu: &Gpu,
        cfg: ModelConfig,
        train: &TrainConfig,
        precision: Precision,
        init: &[f32],
        fidelity: bool,
    ) -> Result<GptGpu> {
        train.validate()?;
        GptGpu::build(gpu, cfg, train.micro_batch(), train.grad_accum, precision, init, fidelity, None)
    }

    #[allow(clippy::too_many_arguments)]
    fn build(
        gpu: &Gpu,
        cfg: ModelConfig,
        batch: u32,
        micro_batches: u32,
        precision: Precision,
        init: &[f32],
        fidelity: bool,
        head_rows: Option<u32>,
    ) -> Result<GptGpu> {
        cfg.validate()?;
        let layout = ParamLayout::new(&cfg);
        let ps = precision.param_store();
        let mut alloc = Allocator::new(gpu);
        let bufs = allocate(&mut alloc, &cfg, batch, micro_batches, precision, fidelity, head_rows)?;
        // the weights (and a master copy) start at `init` rounded; the compensation at zero
        let rounded: Vec<f32> = init.iter().map(|&x| ps.round_rtn(x)).collect();
        gpu.upload(&bufs.params, 0, &ps.encode(&rounded));
        if let (Some(KeptExtra::Master), Some(master)) = (precision.extra(), &bufs.extra) {
            gpu.upload(master, 0, &Store::F32.encode(&rounded));
        }
        let dispatches = Dispatches::build(gpu, &cfg, &layout, batch, micro_batches, precision, &bufs)?;
        let (memory, stats, logits) = (alloc.memory, bufs.io.stats.clone(), bufs.x.logits.clone());
        Ok(GptGpu {
            cfg,
            batch,
            micro_batches,
            precision,
            memory,
            params: bufs.params.clone(),
            grads: bufs.grads.clone(),
            m: bufs.m.clone(),
            v: bufs.v.clone(),
            extra: bufs.extra.clone(),
            stats,
            logits,
            head_chunks: head_chunks(batch * cfg.ctx, bufs.x.logits_rows),
            bufs,
            dispatches,
            adamw_config: AdamwConfig::default(),
            layout,
        })
    }

    /// Builds every dispatch again over the same buffers, with the kernel choices known now:
    /// how a run takes up a choice the tuner measured in its background (at a step boundary;
    /// no choice changes a bit of any result).
    pub fn rebuild_dispatches(&mut self, gpu: &Gpu) -> Result<()> {
        self.dispatches = Dispatches::build(gpu, &self.cfg, &self.layout, self.batch, self.micro_batches, self.precision, &self.bufs)?;
        Ok(())
    }

    /// The trained parameters (not the embedding's padding rows).
    pub fn num_params(&self) -> usize {
        self.cfg.num_params() as usize
    }
}

impl Dispatches {
    fn build(
        gpu: &Gpu,
        cfg: &ModelConfig,
        layout: &ParamLayout,
        batch: u32,
        micro_batches: u32,
        precision: Precision,
        bufs: &ModelBuffers<wgpu::Buffer>,
    ) -> Result<Dispatches> {
        let ModelBuffers { params, grads, m, v, extra, fidelity_sums, x, io, micro_losses } = bufs;
        let bt = batch as usize * cfg.ctx as usize;
        let ps = precision.param_store();
        let net = Net {
            gpu,
            layout,
            bt: bt as u32,
            d: cfg.d,
            vocab: cfg.vocab,
            padded_vocab: cfg.padded_vocab(),
            attn: AttentionShape { b: batch, t: cfg.ctx, c: cfg.d, nh: cfg.n_head },
            emb: EmbeddingShape { batch, t: cfg.ctx, c: cfg.d, vocab: cfg.vocab },
            params: Block::new(params, ps),
            grads: Block::new(grads, precision.grad_store()),
            act: precision.act_store(),
            x,
            io,
        };
        let zero_grads = gpt_zero_grads(&net)?;
        let forward = gpt_forward(&net)?;
        // dlogits scaled to the mean over the whole batch: the micro-batches' gradients add up
        let to_gradient = Logits::ToGradient { scale: 1.0 / (bt as f32 * micro_batches as f32) };
        let head_chunks = head_chunks(bt as u32, x.logits_rows);
        let head = head_chunks
            .iter()
            .map(|&c| {
                Ok(HeadDispatches {
                    forward: gpt_head_forward(&net, c)?,
                    train_loss: gpt_head_loss(&net, c, to_gradient)?,
                    eval_loss: gpt_head_loss(&net, c, Logits::Kept)?,
                    backward: gpt_head_backward(&net, c)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let backward_start = gpt_backward_start(&net)?;
        let (loss, loss_mean) = gpt_train_loss(&net, micro_batches, micro_losses)?;
        let eval_loss = gpt_loss_mean(&net, &io.stats, STAT_EVAL_LOSS)?;
        let backward = gpt_backward(&net)?;
        let (extra_ref, fidelity) = (extra.as_ref(), fidelity_sums.as_ref());
        let adamw_bufs = AdamwBuffers { param: params, grad: grads, m, v, extra: extra_ref, stats: &io.stats, fidelity };
        let update = gpt_update(&net, precision, &adamw_bufs)?;
        Ok(Dispatches { zero_grads, forward, head, backward_start, loss, loss_mean, eval_loss, backward, update })
    }
}

impl GptGpu {
    /// Training-state bytes per parameter, from the allocated buffers.
    pub fn state_bytes_per_param(&self) -> f64 {
        self.memory.training_state() as f64 / self.num_params() as f64
    }

    /// Copies a batch (and its per-token buckets for the embedding backward) to the GPU.
    pub fn upload_batch(&self, gpu: &Gpu, batch: &Batch) {
        let (start, pos) = token_buckets(&batch.inputs, self.cfg.vocab as usize);
        gpu.upload(&self.bufs.io.tokens, 0, bytemuck::cast_slice(&batch.inputs));
        gpu.upload(&self.bufs.io.targets, 0, bytemuck::cast_slice(&batch.targets));
        gpu.upload(&self.bufs.io.bucket_start, 0, bytemuck::cast_slice(&start));
        gpu.upload(&self.bufs.io.bucket_pos, 0, bytemuck::cast_slice(&pos));
    }

    /// Records one training step (forward, loss, backward, clip + AdamW) into `encoder`, for
    /// update number `step` with learning rate `lr`, on a model of one micro-batch (several
    /// need an upload between them: [`GptGpu::micro_step_encoders`]). The batch must be
    /// uploaded first.
    pub fn record_step(&self, gpu: &Gpu, encoder: &mut wgpu::CommandEncoder, lr: f32, step: u32, seed: u32, timing: StepTiming) {
        assert_eq!(self.micro_batches, 1, "record_step records a step of one micro-batch");
        self.set_update_params(gpu, lr, step, seed);
        let dispatches = self.step_dispatches();
        match timing {
            StepTiming::Off => record_pass(encoder, "train step", &dispatches, None),
            StepTiming::Pass(set) => record_pass(encoder, "train step", &dispatches, Some((set, Some(0), Some(1)))),
            StepTiming::PerDispatch(set) => {
                for (i, d) in dispatches.iter().enumerate() {
                    let i = i as u32;
                    record_pass(encoder, d.name, &[d], Some((set, Some(2 * i), Some(2 * i + 1))));
                }
            }
        }
    }

    /// Micro-batch `micro` of training step `step` (update number `step` with learning rate
    /// `lr`) as command buffers of at most `chunk` dispatches, so a renderer sharing the queue
    /// can slip its frames in between (submit them one at a time, micro-batch after
    /// micro-batch, each after uploading its batch). The first clears the gradients, the last
    /// makes the update. With `timestamps`, the step's start and end land in queries 0 and 1.
    #[allow(clippy::too_many_arguments)]
    pub fn micro_step_encoders(
        &self,
        gpu: &Gpu,
        micro: u32,
        lr: f32,
        step: u32,
        seed: u32,
        timestamps: Option<&wgpu::QuerySet>,
        chunk: usize,
    ) -> Vec<wgpu::CommandEncoder> {
        if micro == 0 {
            self.set_update_params(gpu, lr, step, seed);
        }
        let dispatches = self.micro_dispatches(micro);
        let parts: Vec<&[&Dispatch]> = dispatches.chunks(chunk.max(1)).collect();
        let last = parts.len() - 1;
        let (starts, ends) = (micro == 0, micro + 1 == self.micro_batches);
        parts
            .iter()
            .enumerate()
            .map(|(i, part)| {
                let mut encoder = gpu.device.create_command_encoder(&Default::default());
                let (begin, end) = ((starts && i == 0).then_some(0), (ends && i == last).then_some(1));
                let writes = timestamps.filter(|_| begin.is_some() || end.is_some()).map(|set| (set, begin, end));
                record_pass(&mut encoder, "train step", part, writes);
                encoder
            })
            .collect()
    }

    fn set_update_params(&self, gpu: &Gpu, lr: f32, step: u32, seed: u32) {
        let n = self.layout.total as u32;
        let params = adamw_params(&self.adamw_config, n, self.layout.n_decay as u32, AdamwStep { lr, step, seed });
        self.dispatches.update.adamw.set_params(&gpu.queue, &params);
    }

    /// The forward pass and the mean loss into stats[STAT_EVAL_LOSS], without gradients, as
    /// command buffers of at most `chunk` dispatches.
    pub fn eval_encoders(&self, gpu: &Gpu, chunk: usize) -> Vec<wgpu::CommandEncoder> {
        let head = self.dispatches.head.iter().flat_map(|h| [&h.forward, &h.eval_loss]);
        let dispatches: Vec<&Dispatch> = self.dispatches.forward.iter().chain(head).chain([&self.dispatches.eval_loss]).collect();
        dispatches
            .chunks(chunk.max(1))
            .map(|part| {
                let mut encoder = gpu.device.create_command_encoder(&Default::default());
                record_pass(&mut encoder, "eval", part, None);
                encoder
            })
            .collect()
    }

    /// Records the forward and the head's chunk that holds row `row` of the batch (logits for
    /// sampling); returns the row's byte offset in the logits buffer.
    pub fn record_forward_to(&self, encoder: &mut wgpu::CommandEncoder, row: u32) -> u64 {
        let i = self.head_chunks.iter().position(|c| row < c.first + c.rows).expect("a row of the batch");
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("forward"), timestamp_writes: None });
        for d in self.dispatches.forward.iter().chain([&self.dispatches.head[i].forward]) {
            d.record(&mut pass);
        }
        (row - self.head_chunks[i].first) as u64 * self.cfg.padded_vocab() as u64 * 4
    }

    /// Records forward, loss and backward without the update (gradients for tests), on a
    /// model of one micro-batch.
    pub fn record_gradients(&self, encoder: &mut wgpu::CommandEncoder) {
        assert_eq!(self.micro_batches, 1, "record_gradients records one micro-batch");
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("gradients"), timestamp_writes: None });
        for d in self.micro_gradients(0).into_iter().chain(&self.dispatches.update.grad_norm) {
            d.record(&mut pass);
        }
    }

    /// The dispatches of micro-batch `micro` of a training step, in order: the first clears
    /// the gradients; each runs forward, loss and backward; the last makes the update.
    pub fn micro_dispatches(&self, micro: u32) -> Vec<&Dispatch> {
        let mut out = self.micro_gradients(micro);
        if micro + 1 == self.micro_batches {
            out.extend(
                self.dispatches
                    .loss_mean
                    .iter()
                    .chain(&self.dispatches.update.grad_norm)
                    .chain(&self.dispatches.update.adamw.dispatches)
                    .chain(&self.dispatches.update.fidelity),
            );
        }
        out
    }

    /// Micro-batch `micro`'s gradients (the first clears them): the forward, then the head a
    /// chunk at a time — logits, loss and dlogits, the head's backward — then the loss's mean
    /// and the rest of the backward.
    fn micro_gradients(&self, micro: u32) -> Vec<&Dispatch> {
        let mut out: Vec<&Dispatch> = Vec::new();
        if micro == 0 {
            out.extend(&self.dispatches.zero_grads);
        }
        out.extend(self.dispatches.forward.iter().chain(&self.dispatches.backward_start));
        for h in &self.dispatches.head {
            out.extend([&h.forward, &h.train_loss].into_iter().chain(&h.backward));
        }
        out.extend([&self.dispatches.loss[micro as usize]].into_iter().chain(&self.dispatches.backward));
        out
    }

    /// Every dispatch of a training step, in order, with its kernel family (for profiles).
    pub fn step_dispatches(&self) -> Vec<&Dispatch> {
        (0..self.micro_batches).flat_map(|i| self.micro_dispatches(i)).collect()
    }

    /// Reads a buffer of this model back as f32 values (decoding 16-bit storage).
    pub fn read_tensor(&self, gpu: &Gpu, buffer: &wgpu::Buffer, store: Store, n: usize) -> Result<Vec<f32>> {
        Ok(store.decode(&gpu.read_bytes(buffer, 0, store.buffer_bytes(n))?, n))
    }

    pub fn read_params(&self, gpu: &Gpu) -> Result<Vec<f32>> {
        self.read_tensor(gpu, &self.params, self.precision.param_store(), self.layout.total)
    }

    pub fn read_grads(&self, gpu: &Gpu) -> Result<Vec<f32>> {
        self.read_tensor(gpu, &self.grads, self.precision.grad_store(), self.layout.total)
    }

    /// The storage of the kept extra weights (master or compensation), if the mode has them.
    fn extra_store(&self) -> Option<Store> {
        self.precision.extra().map(|e| e.store())
    }

    /// The raw bytes of the weights, Adam state and extra weights, for a checkpoint.
    pub fn read_raw(&self, gpu: &Gpu) -> Result<RawState> {
        let n = self.layout.total;
        let read = |buffer: &wgpu::Buffer, store: Store| gpu.read_bytes(buffer, 0, store.buffer_bytes(n));
        Ok(RawState {
            params: read(&self.params, self.precision.param_store())?,
            m: read(&self.m, self.precision.state_store())?,
            v: read(&self.v, self.precision.state_store())?,
            extra: match (&self.extra, self.extra_store()) {
                (Some(buffer), Some(store)) => Some(read(buffer, store)?),
                _ => None,
            },
        })
    }

    /// The byte sizes of the raw state's parts: parameters, Adam m, Adam v, the extra
    /// weights (0 without), as [`GptGpu::copy_raw`] lays them out one after the other.
    pub fn raw_sizes(&self) -> [u64; 4] {
        let n = self.layout.total;
        let (p, s) = (self.precision.param_store(), self.precision.state_store());
        let extra = self.extra_store().map_or(0, |e| e.buffer_bytes(n));
        [p.buffer_bytes(n), s.buffer_bytes(n), s.buffer_bytes(n), extra]
    }

    /// Records copies of the raw state into `dst` (at least the sum of [`GptGpu::raw_sizes`]
    /// bytes), parameters, m, v and the extra weights one after the other: a snapshot taken after the
    /// work already submitted, without waiting for it.
    pub fn copy_raw(&self, encoder: &mut wgpu::CommandEncoder, dst: &wgpu::Buffer) {
        let sizes = self.raw_sizes();
        let mut offset = 0;
        for (source, size) in [Some(&self.params), Some(&self.m), Some(&self.v), self.extra.as_ref()].into_iter().zip(sizes) {
            if let Some(source) = source.filter(|_| size > 0) {
                encoder.copy_buffer_to_buffer(source, 0, dst, offset, size);
            }
            offset += size;
        }
    }

    /// Restores weights and optimizer state bit for bit from a checkpoint's raw bytes.
    pub fn write_raw(&self, gpu: &Gpu, raw: &RawState) -> Result<()> {
        let n = self.layout.total;
        let check = |what: &str, bytes: &[u8], store: Store| {
            if bytes.len() as u64 != store.buffer_bytes(n) {
                anyhow::bail!("{what}: {} bytes, expected {}", bytes.len(), store.buffer_bytes(n));
            }
            Ok(())
        };
        check("parameters", &raw.params, self.precision.param_store())?;
        check("adam m", &raw.m, self.precision.state_store())?;
        check("adam v", &raw.v, self.precision.state_store())?;
        gpu.upload(&self.params, 0, &raw.params);
        gpu.upload(&self.m, 0, &raw.m);
        gpu.upload(&self.v, 0, &raw.v);
        match (&self.extra, &raw.extra, self.precision.extra()) {
            (Some(buffer), Some(bytes), Some(extra)) => {
                check(extra.label(), bytes, extra.store())?;
                gpu.upload(buffer, 0, bytes);
            }
            (None, None, _) => {}
            _ => anyhow::bail!("master weights or compensation present in only one of model and checkpoint"),
        }
        Ok(())
    }

    pub fn read_stats(&self, gpu: &Gpu) -> Result<[f32; STATS_LEN]> {
        let v = gpu.read_f32(&self.stats, STATS_LEN)?;
        Ok(std::array::from_fn(|i| v[i]))
    }
}
