//! Text generation: the GPU forward pass gives the logits, the CPU draws the next byte.
//! [`Generation`] keeps one token in flight at a time, so it can wait (CLI) or be advanced
//! once per frame (browser).

use std::cell::RefCell;

use anyhow::Result;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::data::Batch;
use crate::gpu::readback::Readback;
use crate::gpu::Gpu;
use crate::model::config::ModelConfig;
use crate::model::gpt::GptGpu;
use crate::model::params::RawState;
use crate::precision::Precision;

#[derive(Clone, Copy, Debug)]
pub struct SampleOptions {
    pub tokens: usize,
    /// 0 picks the most likely byte every time
    pub temperature: f32,
    /// keep only the k most likely bytes (0 = all)
    pub top_k: usize,
    pub seed: u64,
}

/// A batch-1 inference model holding a run's weights, and the buffer its logits come back in.
pub struct Sampler {
    model: GptGpu,
    /// vocab f32: the logits of the last position of the window
    logits_readback: RefCell<Readback<()>>,
}

impl Sampler {
    /// A sampler holding the weights of a checkpoint.
    pub fn new(gpu: &Gpu, cfg: ModelConfig, precision: Precision, raw: &RawState) -> Result<Sampler> {
        let sampler = Sampler::empty(gpu, cfg, precision)?;
        sampler.model.write_raw(gpu, raw)?;
        Ok(sampler)
    }

    /// A sampler for a training run's model; [`Sampler::copy_weights_from`] loads its weights.
    pub fn empty(gpu: &Gpu, cfg: ModelConfig, precision: Precision) -> Result<Sampler> {
        let layout = crate::model::params::ParamLayout::new(&cfg);
        let model = GptGpu::without_fidelity(gpu, cfg, 1, precision, &vec![0.0; layout.total])?;
        let logits_readback = RefCell::new(Readback::new(gpu, "sample logits readback", cfg.vocab as u64 * 4));
        Ok(Sampler { model, logits_readback })
    }

    /// Takes the current weights of `source` (same configuration and precision), copied on
    /// the GPU after the work already submitted: no readback, so a browser can do it too.
    pub fn copy_weights_from(&self, gpu: &Gpu, source: &GptGpu) {
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(&source.params, 0, &self.model.params, 0, self.model.params.size());
        gpu.queue.submit([encoder.finish()]);
    }

    /// Continues `prompt` (token ids) by `opts.tokens` tokens, waiting for the GPU.
    pub fn generate(&self, gpu: &Gpu, prompt: &[u32], opts: &SampleOptions) -> Result<Vec<u32>> {
        let mut generation = Generation::new(prompt, opts);
        loop {
            if let Some(ids) = generation.advance(gpu, self, true)? {
                return Ok(ids);
            }
        }
    }

    /// Submits the forward pass over the last `ctx` tokens of `context`, its last logits
    /// row going to the readback buffer.
    fn submit_forward(&self, gpu: &Gpu, context: &[u32]) {
        let (t, v) = (self.model.cfg.ctx as usize, self.model.cfg.vocab as u64);
        let window = &context[context.len().saturating_sub(t)..];
        let mut inputs = window.to_vec();
        // positions after the window do not affect it (causal attention): pad with zeros
        inputs.resize(t, 0);
        self.model.upload_batch(gpu, &Batch { inputs, targets: vec![0; t] });
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        let offset = self.model.record_forward_to(&mut encoder, (window.len() - 1) as u32);
        let mut readback = self.logits_readback.borrow_mut();
        encoder.copy_buffer_to_buffer(&self.model.logits, offset, &readback.buffer, 0, v * 4);
        gpu.queue.submit([encoder.finish()]);
        readback.request(());
    }
}

/// Text being generated one token per forward pass; a browser advances it once per frame.
pub struct Generation {
    context: Vec<u32>,
    out: Vec<u32>,
    rng: StdRng,
    opts: SampleOptions,
}

impl Generation {
    pub fn new(prompt: &[u32], opts: &SampleOptions) -> Generation {
        Generation {
            context: if prompt.is_empty() { vec![0] } else { prompt.to_vec() },
            out: Vec::with_capacity(opts.tokens),
            rng: StdRng::seed_from_u64(opts.seed),
            opts: *opts,
        }
    }

    /// The tokens drawn so far.
    pub fn drawn(&self) -> &[u32] {
        &self.out
    }

    /// Draws the token whose logits have come back and submits the next forward pass; the
    /// generated ids once all are drawn. With `wait`, waits for the GPU, else returns
    /// `None` at once while a forward pass is still running.
    pub fn advance(&mut self, gpu: &Gpu, sampler: &Sampler, wait: bool) -> Result<Option<Vec<u32>>> {
        let mut readback = sampler.logits_readback.borrow_mut();
        if readback.pending().is_some() {
            let Some(((), bytes)) = readback.take(gpu, wait, "sampling")? else {
                return Ok(None);
            };
            let next = pick(bytemuck::cast_slice(&bytes), &self.opts, &mut self.rng);
            self.out.push(next);
            self.context.push(next);
        }
        drop(readback);
        if self.out.len() >= self.opts.tokens {
            return Ok(Some(self.out.clone()));
        }
        sampler.submit_forward(gpu, &self.context);
        Ok(None)
    }
}

/// Draws from softmax(logits / temperature) over the top k, or takes the argmax.
fn pick(logits: &[f32], opts: &SampleOptions, rng: &mut StdRng) -> u32 {
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    if opts.temperature <= 0.0 {
        return order[0] as u32;
    }
    if opts.top_k > 0 {
        order.truncate(opts.top_k);
    }
    let max = logits[order[0]] as f64;
    let weights: Vec<f64> = order.iter().map(|&i| ((logits[i] as f64 - max) / opts.temperature as f64).exp()).collect();
    let mut r = rng.random::<f64>() * weights.iter().sum::<f64>();
    for (k, w) in weights.iter().enumerate() {
        r -= w;
        if r <= 0.0 {
            return order[k] as u32;
        }
    }
    order[order.len() - 1] as u32
}
