//! Text generation: the GPU forward pass gives the logits, the CPU draws the next byte.

use anyhow::Result;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::data::{Batch, Corpus};
use crate::gpu::Gpu;
use crate::model::config::ModelConfig;
use crate::model::gpt::GptGpu;
use crate::precision::Precision;
use crate::train::checkpoint::RawState;

pub struct SampleOptions {
    pub tokens: usize,
    /// 0 picks the most likely byte every time
    pub temperature: f32,
    /// keep only the k most likely bytes (0 = all)
    pub top_k: usize,
    pub seed: u64,
}

/// A batch-1 inference model holding a run's weights.
pub struct Sampler {
    model: GptGpu,
}

impl Sampler {
    pub fn new(gpu: &Gpu, cfg: ModelConfig, precision: Precision, raw: &RawState) -> Result<Sampler> {
        let layout = crate::model::params::ParamLayout::new(&cfg);
        let model = GptGpu::new(gpu, cfg, 1, precision, &vec![0.0; layout.total])?;
        model.write_raw(gpu, raw)?;
        Ok(Sampler { model })
    }

    /// Continues `prompt` (token ids) by `opts.tokens` tokens.
    pub fn generate(&self, gpu: &Gpu, prompt: &[u32], opts: &SampleOptions) -> Result<Vec<u32>> {
        let (t, v) = (self.model.cfg.ctx as usize, self.model.cfg.vocab as usize);
        let mut rng = StdRng::seed_from_u64(opts.seed);
        let mut context: Vec<u32> = if prompt.is_empty() { vec![0] } else { prompt.to_vec() };
        let mut out = Vec::with_capacity(opts.tokens);
        for _ in 0..opts.tokens {
            let window = &context[context.len().saturating_sub(t)..];
            let mut inputs = window.to_vec();
            // positions after the window do not affect it (causal attention): pad with zeros
            inputs.resize(t, 0);
            self.model.upload_batch(gpu, &Batch { inputs, targets: vec![0; t] });
            let mut encoder = gpu.device.create_command_encoder(&Default::default());
            self.model.record_forward(&mut encoder);
            gpu.queue.submit([encoder.finish()]);
            let row = window.len() - 1;
            let bytes = gpu.read_bytes(&self.model.logits, (row * v * 4) as u64, (v * 4) as u64)?;
            let next = pick(bytemuck::cast_slice(&bytes), opts, &mut rng);
            out.push(next);
            context.push(next);
        }
        Ok(out)
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

/// Convenience for the CLI: text in, text out.
pub fn sample_text(gpu: &Gpu, corpus: &Corpus, sampler: &Sampler, prompt: &str, opts: &SampleOptions) -> Result<Vec<u8>> {
    let ids = corpus.encode(prompt)?;
    Ok(corpus.decode(&sampler.generate(gpu, &ids, opts)?))
}
