//! The GPT on the GPU: its buffers, and forward / backward / update as lists of dispatches
//! built once and replayed every step. `gpt_forward` and `gpt_backward` read top to bottom
//! as the list of layers, like llm.c's.

use anyhow::Result;

use super::config::ModelConfig;
use super::params::{ParamLayout, RawState};
use crate::data::Batch;
use crate::gpu::{Dispatch, Gpu};
use crate::kernels::adamw::{adamw_params, adamw_update, AdamwBuffers, AdamwConfig};
use crate::kernels::attention::{attention_backward, attention_forward, AttentionShape};
use crate::kernels::cross_entropy::cross_entropy_forward_backward;
use crate::kernels::embedding::{embedding_backward, embedding_forward, token_buckets, EmbeddingShape, EmbeddingTables};
use crate::kernels::gelu::gelu_backward;
use crate::kernels::layernorm::{layernorm_backward, layernorm_forward, LayerNormAffine, LayerNormStats};
use crate::kernels::matmul::{matmul_backward, matmul_forward, matmul_gelu_forward};
use crate::kernels::reduce::{sum, sum_squares, sumsq_groups};
use crate::kernels::{Block, TensorRef};
use crate::precision::{Precision, Store};
use crate::Failure;

/// Slots of the small `stats` buffer each model keeps on the GPU.
pub const STAT_TRAIN_LOSS: usize = 0;
pub const STAT_GRAD_SUMSQ: usize = 1;
pub const STAT_EVAL_LOSS: usize = 2;
pub const STATS_LEN: usize = 4;

/// Saved activations of one block (act storage unless noted).
struct BlockActs {
    ln1: wgpu::Buffer,      // (B,T,C)
    ln1_mean: wgpu::Buffer, // (B,T) f32
    ln1_rstd: wgpu::Buffer, // (B,T) f32
    qkv: wgpu::Buffer,      // (B,T,3C)
    att: wgpu::Buffer,      // (B,NH,T,T)
    atty: wgpu::Buffer,     // (B,T,C)
    res2: wgpu::Buffer,     // (B,T,C) residual after attention
    ln2: wgpu::Buffer,      // (B,T,C)
    ln2_mean: wgpu::Buffer, // (B,T) f32
    ln2_rstd: wgpu::Buffer, // (B,T) f32
    fch: wgpu::Buffer,      // (B,T,4C)
    fch_gelu: wgpu::Buffer, // (B,T,4C)
    res3: wgpu::Buffer,     // (B,T,C) residual after the MLP: the next block's input
}

/// GPU memory by role, in bytes, counted from the buffers actually allocated.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct MemoryBytes {
    pub parameters: u64,
    pub master: u64,
    pub gradients: u64,
    pub optimizer_state: u64,
    pub activations: u64,
    pub scratch: u64,
    pub total: u64,
}

impl MemoryBytes {
    /// Parameters, fp32 master, gradients and Adam state: what training keeps per parameter.
    pub fn training_state(&self) -> u64 {
        self.parameters + self.master + self.gradients + self.optimizer_state
    }
}

/// Sizes a model needs, checked against the adapter before anything is allocated.
struct Planner<'a> {
    gpu: &'a Gpu,
    plan: Vec<(String, u64)>,
}

impl Planner<'_> {
    fn need(&mut self, label: impl Into<String>, store: Store, elements: usize) -> u64 {
        let bytes = store.buffer_bytes(elements);
        self.plan.push((label.into(), bytes));
        bytes
    }

    fn check(&self) -> Result<(), Failure> {
        let limit = self.gpu.limits.max_storage_buffer_binding_size.min(self.gpu.limits.max_buffer_size);
        if let Some((label, bytes)) = self.plan.iter().find(|(_, b)| *b > limit) {
            return Err(Failure::BadInput(format!(
                "the model does not fit this adapter: buffer '{label}' needs {bytes} bytes ({:.1} MiB), over max_storage_buffer_binding_size = {limit} bytes ({:.1} MiB). Use a smaller --batch, --ctx or model.",
                *bytes as f64 / 1048576.0,
                limit as f64 / 1048576.0
            )));
        }
        Ok(())
    }
}

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

/// Views whole buffers as tensors of one storage type.
fn tensor_of<'a>(store: Store) -> impl Fn(&'a wgpu::Buffer) -> TensorRef<'a> {
    move |buffer| TensorRef::new(buffer, store)
}

pub struct GptGpu {
    pub cfg: ModelConfig,
    pub batch: u32,
    pub precision: Precision,
    pub layout: ParamLayout,
    pub memory: MemoryBytes,
    pub params: wgpu::Buffer,
    pub grads: wgpu::Buffer,
    pub m: wgpu::Buffer,
    pub v: wgpu::Buffer,
    pub master: Option<wgpu::Buffer>,
    pub stats: wgpu::Buffer,
    pub logits: wgpu::Buffer,
    tokens: wgpu::Buffer,
    targets: wgpu::Buffer,
    bucket_start: wgpu::Buffer,
    bucket_pos: wgpu::Buffer,
    dresidual: wgpu::Buffer,
    forward: Vec<Dispatch>,
    loss: Vec<Dispatch>,
    eval_loss: Vec<Dispatch>,
    backward: Vec<Dispatch>,
    update: Vec<Dispatch>,
    adamw: AdamwConfig,
}

impl GptGpu {
    /// Allocates the model for `batch` sequences and builds every dispatch. The weights start
    /// at `init` rounded to the parameter storage (all modes start from the same point when
    /// `init` is bf16-representable).
    pub fn new(gpu: &Gpu, cfg: ModelConfig, batch: u32, precision: Precision, init: &[f32]) -> Result<GptGpu> {
        cfg.validate()?;
        let layout = ParamLayout::new(&cfg);
        let n = layout.total;
        let (b, t, d, v, nh) = (batch as usize, cfg.ctx as usize, cfg.d as usize, cfg.vocab as usize, cfg.n_head as usize);
        let bt = b * t;
        let (ps, gs, ss, act, f) =
            (precision.param_store(), precision.grad_store(), precision.state_store(), precision.act_store(), Store::F32);

        let mut plan = Planner { gpu, plan: Vec::new() };
        let mut mem = MemoryBytes {
            parameters: plan.need("parameters", ps, n),
            gradients: plan.need("gradients", gs, n),
            optimizer_state: plan.need("adam m", ss, n) * 2,
            master: if precision.has_master() { plan.need("master weights", f, n) } else { 0 },
            ..Default::default()
        };
        let per_block = [
            ("ln1", act, bt * d),
            ("qkv", act, bt * 3 * d),
            ("att", act, b * nh * t * t),
            ("atty", act, bt * d),
            ("res2", act, bt * d),
            ("ln2", act, bt * d),
            ("fch", act, bt * 4 * d),
            ("fch_gelu", act, bt * 4 * d),
            ("res3", act, bt * d),
            ("ln stats", f, 4 * bt),
        ];
        for (name, store, len) in per_block {
            mem.activations += plan.need(name, store, len) * cfg.n_layer as u64;
        }
        for (name, store, len) in
            [("encoded", act, bt * d), ("ln_f", act, bt * d), ("ln_f stats", f, 2 * bt), ("logits", f, bt * v), ("losses", f, bt)]
        {
            mem.activations += plan.need(name, store, len);
        }
        for (name, len) in [
            ("preatt / datt", b * nh * t * t),
            ("dresidual", bt * d),
            ("dln / datty", bt * d),
            ("dfch / dqkv", bt * 4 * d),
            ("partials", sumsq_groups(n as u32) as usize),
        ] {
            mem.scratch += plan.need(name, f, len);
        }
        plan.check()?;
        mem.total = mem.parameters + mem.master + mem.gradients + mem.optimizer_state + mem.activations + mem.scratch;

        let buf = |label: &str, store: Store, len: usize| gpu.storage_buffer(label, store.buffer_bytes(len));
        let rounded: Vec<f32> = init.iter().map(|&x| ps.round_rtn(x)).collect();
        let params = gpu.buffer_from("parameters", &ps.encode(&rounded))?;
        let grads = buf("gradients", gs, n)?;
        let m = buf("adam m", ss, n)?;
        let v_state = buf("adam v", ss, n)?;
        let master = if precision.has_master() { Some(gpu.buffer_from("master weights", &f.encode(&rounded))?) } else { None };
        let stats = buf("stats", f, STATS_LEN)?;
        let tokens = buf("tokens", f, bt)?;
        let targets = buf("targets", f, bt)?;
        let bucket_start = buf("bucket start", f, v + 1)?;
        let bucket_pos = buf("bucket positions", f, bt)?;
        let encoded = buf("encoded", act, bt * d)?;
        let mut blocks = Vec::new();
        for _ in 0..cfg.n_layer {
            blocks.push(BlockActs {
                ln1: buf("ln1", act, bt * d)?,
                ln1_mean: buf("ln1 mean", f, bt)?,
                ln1_rstd: buf("ln1 rstd", f, bt)?,
                qkv: buf("qkv", act, bt * 3 * d)?,
                att: buf("att", act, b * nh * t * t)?,
                atty: buf("atty", act, bt * d)?,
                res2: buf("res2", act, bt * d)?,
                ln2: buf("ln2", act, bt * d)?,
                ln2_mean: buf("ln2 mean", f, bt)?,
                ln2_rstd: buf("ln2 rstd", f, bt)?,
                fch: buf("fch", act, bt * 4 * d)?,
                fch_gelu: buf("fch_gelu", act, bt * 4 * d)?,
                res3: buf("res3", act, bt * d)?,
            });
        }
        let lnf = buf("ln_f", act, bt * d)?;
        let (lnf_mean, lnf_rstd) = (buf("ln_f mean", f, bt)?, buf("ln_f rstd", f, bt)?);
        let logits = buf("logits", f, bt * v)?;
        let losses = buf("losses", f, bt)?;
        // Scratch buffers whose contents are never live at the same time share memory: the
        // forward's scores and the backward's attention gradient; the gradients into the
        // MLP's hidden layer and into qkv; the gradients into a layernorm's output and into
        // the attention output (datty is consumed before dln is next written).
        let preatt = buf("preatt / datt", f, b * nh * t * t)?;
        let datt = preatt.clone();
        let dresidual = buf("dresidual", f, bt * d)?;
        let dln = buf("dln / datty", f, bt * d)?;
        let datty = dln.clone();
        let dfch = buf("dfch / dqkv", f, bt * 4 * d)?;
        let dqkv = dfch.clone();
        let partials = buf("partials", f, sumsq_groups(n as u32) as usize)?;

        let (bt32, d32, v32) = (bt as u32, cfg.d, cfg.vocab);
        let p = |offset: u32| TensorRef { buffer: &params, store: ps, offset };
        let g = |offset: u32| TensorRef { buffer: &grads, store: gs, offset };
        let (pb, gb) = (Block::new(&params, ps), Block::new(&grads, gs));
        let affine = |block, weight, bias| LayerNormAffine { block, weight, bias };
        let a = tensor_of(act);
        let fl = tensor_of(f);
        let l = &layout;
        let attn = AttentionShape { b: batch, t: cfg.ctx, c: cfg.d, nh: cfg.n_head };
        let emb = EmbeddingShape { batch, t: cfg.ctx, c: cfg.d, vocab: cfg.vocab };
        let block_input = |i: usize| {
            if i == 0 {
                &encoded
            } else {
                &blocks[i - 1].res3
            }
        };
        let last = block_input(blocks.len());
        let lnf_stats = LayerNormStats { mean: &lnf_mean, rstd: &lnf_rstd };

        // gpt_forward
        let mut forward = vec![embedding_forward(gpu, a(&encoded), &tokens, EmbeddingTables { block: pb, wte: l.wte, wpe: l.wpe }, &emb)?];
        for (i, (o, x)) in l.blocks.iter().zip(&blocks).enumerate() {
            let input = block_input(i);
            let ln1 = LayerNormStats { mean: &x.ln1_mean, rstd: &x.ln1_rstd };
            let ln2 = LayerNormStats { mean: &x.ln2_mean, rstd: &x.ln2_rstd };
            forward.push(layernorm_forward(gpu, a(&x.ln1), &ln1, a(input), affine(pb, o.ln1_w, o.ln1_b), bt32, d32)?);
            forward.push(matmul_forward(gpu, a(&x.qkv), a(&x.ln1), p(o.qkv_w), Some(p(o.qkv_b)), None, bt32, d32, 3 * d32)?);
            forward.extend(attention_forward(gpu, a(&x.atty), fl(&preatt), a(&x.att), a(&x.qkv), &attn)?);
            forward.push(matmul_forward(
                gpu,
                a(&x.res2),
                a(&x.atty),
                p(o.attn_proj_w),
                Some(p(o.attn_proj_b)),
                Some(a(input)),
                bt32,
                d32,
                d32,
            )?);
            forward.push(layernorm_forward(gpu, a(&x.ln2), &ln2, a(&x.res2), affine(pb, o.ln2_w, o.ln2_b), bt32, d32)?);
            forward.push(matmul_gelu_forward(gpu, a(&x.fch_gelu), a(&x.fch), a(&x.ln2), p(o.fc_w), Some(p(o.fc_b)), bt32, d32, 4 * d32)?);
            forward.push(matmul_forward(
                gpu,
                a(&x.res3),
                a(&x.fch_gelu),
                p(o.fc_proj_w),
                Some(p(o.fc_proj_b)),
                Some(a(&x.res2)),
                bt32,
                4 * d32,
                d32,
            )?);
        }
        forward.push(layernorm_forward(gpu, a(&lnf), &lnf_stats, a(last), affine(pb, l.lnf_w, l.lnf_b), bt32, d32)?);
        forward.push(matmul_forward(gpu, fl(&logits), a(&lnf), p(l.wte), None, None, bt32, d32, v32)?);

        let mean_scale = 1.0 / bt as f32;
        let loss = vec![
            cross_entropy_forward_backward(gpu, &logits, &targets, &losses, bt32, v32, mean_scale, true)?,
            sum(gpu, &losses, bt32, &stats, STAT_TRAIN_LOSS as u32, mean_scale)?,
        ];
        let eval_loss = vec![
            cross_entropy_forward_backward(gpu, &logits, &targets, &losses, bt32, v32, mean_scale, false)?,
            sum(gpu, &losses, bt32, &stats, STAT_EVAL_LOSS as u32, mean_scale)?,
        ];

        // gpt_backward (dresidual is cleared before it; layernorm backward accumulates into it)
        let mut backward = matmul_backward(gpu, fl(&dln), g(l.wte), None, fl(&logits), a(&lnf), p(l.wte), bt32, d32, v32)?;
        backward.extend(layernorm_backward(
            gpu,
            &dresidual,
            affine(gb, l.lnf_w, l.lnf_b),
            &dln,
            a(last),
            p(l.lnf_w),
            &lnf_stats,
            bt32,
            d32,
        )?);
        for (i, (o, x)) in l.blocks.iter().zip(&blocks).enumerate().rev() {
            let input = block_input(i);
            let ln1 = LayerNormStats { mean: &x.ln1_mean, rstd: &x.ln1_rstd };
            let ln2 = LayerNormStats { mean: &x.ln2_mean, rstd: &x.ln2_rstd };
            backward.extend(matmul_backward(
                gpu,
                fl(&dfch),
                g(o.fc_proj_w),
                Some(g(o.fc_proj_b)),
                fl(&dresidual),
                a(&x.fch_gelu),
                p(o.fc_proj_w),
                bt32,
                4 * d32,
                d32,
            )?);
            backward.push(gelu_backward(gpu, fl(&dfch), a(&x.fch), bt32 * 4 * d32)?);
            backward.extend(matmul_backward(
                gpu,
                fl(&dln),
                g(o.fc_w),
                Some(g(o.fc_b)),
                fl(&dfch),
                a(&x.ln2),
                p(o.fc_w),
                bt32,
                d32,
                4 * d32,
            )?);
            backward.extend(layernorm_backward(
                gpu,
                &dresidual,
                affine(gb, o.ln2_w, o.ln2_b),
                &dln,
                a(&x.res2),
                p(o.ln2_w),
                &ln2,
                bt32,
                d32,
            )?);
            backward.extend(matmul_backward(
                gpu,
                fl(&datty),
                g(o.attn_proj_w),
                Some(g(o.attn_proj_b)),
                fl(&dresidual),
                a(&x.atty),
                p(o.attn_proj_w),
                bt32,
                d32,
                d32,
            )?);
            backward.extend(attention_backward(gpu, fl(&dqkv), fl(&datt), fl(&datty), a(&x.qkv), a(&x.att), &attn)?);
            backward.extend(matmul_backward(
                gpu,
                fl(&dln),
                g(o.qkv_w),
                Some(g(o.qkv_b)),
                fl(&dqkv),
                a(&x.ln1),
                p(o.qkv_w),
                bt32,
                d32,
                3 * d32,
            )?);
            backward.extend(layernorm_backward(
                gpu,
                &dresidual,
                affine(gb, o.ln1_w, o.ln1_b),
                &dln,
                a(input),
                p(o.ln1_w),
                &ln1,
                bt32,
                d32,
            )?);
        }
        backward.extend(embedding_backward(
            gpu,
            EmbeddingTables { block: gb, wte: l.wte, wpe: l.wpe },
            &dresidual,
            &bucket_start,
            &bucket_pos,
            &emb,
        )?);

        let mut update = sum_squares(gpu, g(0), n as u32, &partials, &stats, STAT_GRAD_SUMSQ as u32)?;
        let bufs = AdamwBuffers { param: &params, grad: &grads, m: &m, v: &v_state, master: master.as_ref(), stats: &stats };
        update.push(adamw_update(gpu, precision, &bufs, n as u32, l.n_decay as u32)?);
        // the views borrow the buffers, which move into the model below
        drop((a, fl));

        Ok(GptGpu {
            cfg,
            batch,
            precision,
            memory: mem,
            params,
            grads,
            m,
            v: v_state,
            master,
            stats,
            logits,
            tokens,
            targets,
            bucket_start,
            bucket_pos,
            dresidual,
            forward,
            loss,
            eval_loss,
            backward,
            update,
            adamw: AdamwConfig::default(),
            layout,
        })
    }

    pub fn num_params(&self) -> usize {
        self.layout.total
    }

    /// Training-state bytes per parameter, from the allocated buffers.
    pub fn state_bytes_per_param(&self) -> f64 {
        self.memory.training_state() as f64 / self.num_params() as f64
    }

    /// Copies a batch (and its per-token buckets for the embedding backward) to the GPU.
    pub fn upload_batch(&self, gpu: &Gpu, batch: &Batch) {
        let (start, pos) = token_buckets(&batch.inputs, self.cfg.vocab as usize);
        gpu.upload(&self.tokens, 0, bytemuck::cast_slice(&batch.inputs));
        gpu.upload(&self.targets, 0, bytemuck::cast_slice(&batch.targets));
        gpu.upload(&self.bucket_start, 0, bytemuck::cast_slice(&start));
        gpu.upload(&self.bucket_pos, 0, bytemuck::cast_slice(&pos));
    }

    /// Records one training step (forward, loss, backward, clip + AdamW) into `encoder`, for
    /// update number `step` with learning rate `lr`. The batch must be uploaded first.
    pub fn record_step(&self, gpu: &Gpu, encoder: &mut wgpu::CommandEncoder, lr: f32, step: u32, seed: u32, timing: StepTiming) {
        self.set_update_params(gpu, lr, step, seed);
        encoder.clear_buffer(&self.dresidual, 0, None);
        let dispatches: Vec<&Dispatch> = self.step_dispatches().collect();
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

    /// One training step as several command buffers of at most `chunk` dispatches, so a
    /// renderer sharing the queue can slip its frames in between (submit them one at a time).
    /// With `timestamps`, the step's start and end land in queries 0 and 1.
    pub fn step_encoders(
        &self,
        gpu: &Gpu,
        lr: f32,
        step: u32,
        seed: u32,
        timestamps: Option<&wgpu::QuerySet>,
        chunk: usize,
    ) -> Vec<wgpu::CommandEncoder> {
        self.set_update_params(gpu, lr, step, seed);
        let dispatches: Vec<&Dispatch> = self.step_dispatches().collect();
        let parts: Vec<&[&Dispatch]> = dispatches.chunks(chunk.max(1)).collect();
        let last = parts.len() - 1;
        parts
            .iter()
            .enumerate()
            .map(|(i, part)| {
                let mut encoder = gpu.device.create_command_encoder(&Default::default());
                if i == 0 {
                    encoder.clear_buffer(&self.dresidual, 0, None);
                }
                let writes = timestamps.filter(|_| i == 0 || i == last).map(|set| (set, (i == 0).then_some(0), (i == last).then_some(1)));
                record_pass(&mut encoder, "train step", part, writes);
                encoder
            })
            .collect()
    }

    fn set_update_params(&self, gpu: &Gpu, lr: f32, step: u32, seed: u32) {
        let n = self.layout.total as u32;
        let adamw = self.update.last().expect("the update ends with AdamW");
        adamw.set_params(&gpu.queue, &adamw_params(&self.adamw, n, self.layout.n_decay as u32, lr, step, seed));
    }

    /// The forward pass and the mean loss into stats[STAT_EVAL_LOSS], without gradients, as
    /// command buffers of at most `chunk` dispatches.
    pub fn eval_encoders(&self, gpu: &Gpu, chunk: usize) -> Vec<wgpu::CommandEncoder> {
        let dispatches: Vec<&Dispatch> = self.forward.iter().chain(&self.eval_loss).collect();
        dispatches
            .chunks(chunk.max(1))
            .map(|part| {
                let mut encoder = gpu.device.create_command_encoder(&Default::default());
                record_pass(&mut encoder, "eval", part, None);
                encoder
            })
            .collect()
    }

    /// Records only the forward (logits for sampling).
    pub fn record_forward(&self, encoder: &mut wgpu::CommandEncoder) {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("forward"), timestamp_writes: None });
        for d in &self.forward {
            d.record(&mut pass);
        }
    }

    /// Records forward, loss and backward without the update (gradients for tests).
    pub fn record_gradients(&self, encoder: &mut wgpu::CommandEncoder) {
        encoder.clear_buffer(&self.dresidual, 0, None);
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("gradients"), timestamp_writes: None });
        for d in self.forward.iter().chain(&self.loss).chain(&self.backward).chain(&self.update[..self.update.len() - 1]) {
            d.record(&mut pass);
        }
    }

    /// Every dispatch of a training step, in order, with its kernel family (for profiles).
    pub fn step_dispatches(&self) -> impl Iterator<Item = &Dispatch> {
        self.forward.iter().chain(&self.loss).chain(&self.backward).chain(&self.update)
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

    /// The raw bytes of the weights, Adam state and master weights, for a checkpoint.
    pub fn read_raw(&self, gpu: &Gpu) -> Result<RawState> {
        let n = self.layout.total;
        let read = |buffer: &wgpu::Buffer, store: Store| gpu.read_bytes(buffer, 0, store.buffer_bytes(n));
        Ok(RawState {
            params: read(&self.params, self.precision.param_store())?,
            m: read(&self.m, self.precision.state_store())?,
            v: read(&self.v, self.precision.state_store())?,
            master: self.master.as_ref().map(|b| read(b, Store::F32)).transpose()?,
        })
    }

    /// The byte sizes of the raw state's parts: parameters, Adam m, Adam v, fp32 master (0
    /// without one), as [`GptGpu::copy_raw`] lays them out one after the other.
    pub fn raw_sizes(&self) -> [u64; 4] {
        let n = self.layout.total;
        let (p, s) = (self.precision.param_store(), self.precision.state_store());
        let master = if self.master.is_some() { Store::F32.buffer_bytes(n) } else { 0 };
        [p.buffer_bytes(n), s.buffer_bytes(n), s.buffer_bytes(n), master]
    }

    /// Records copies of the raw state into `dst` (at least the sum of [`GptGpu::raw_sizes`]
    /// bytes), parameters, m, v and master one after the other: a snapshot taken after the
    /// work already submitted, without waiting for it.
    pub fn copy_raw(&self, encoder: &mut wgpu::CommandEncoder, dst: &wgpu::Buffer) {
        let sizes = self.raw_sizes();
        let mut offset = 0;
        for (source, size) in [Some(&self.params), Some(&self.m), Some(&self.v), self.master.as_ref()].into_iter().zip(sizes) {
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
        match (&self.master, &raw.master) {
            (Some(buffer), Some(bytes)) => {
                check("master weights", bytes, Store::F32)?;
                gpu.upload(buffer, 0, bytes);
            }
            (None, None) => {}
            _ => anyhow::bail!("master weights present in only one of model and checkpoint"),
        }
        Ok(())
    }

    pub fn read_stats(&self, gpu: &Gpu) -> Result<[f32; STATS_LEN]> {
        let v = gpu.read_f32(&self.stats, STATS_LEN)?;
        Ok([v[0], v[1], v[2], v[3]])
    }
}
