//! `srgpt eval`: a model's loss on a corpus, in nats per token and in bits per byte, so that
//! models with different tokenizers compare.
//!
//! The corpus is cut into consecutive, non-overlapping windows of ctx + 1 tokens from its
//! first token (a final partial window is dropped); each window's first ctx tokens predict
//! its last ctx. `Split::All` scores the whole text tokenized in one piece (a prepared
//! folder: its train then validation tokens), `Split::Val` the validation split. Any other
//! implementation that cuts the same windows gets the same figures.

use anyhow::Result;

use crate::data::{Batch, Corpus, Tokens};
use crate::gpu::Gpu;
use crate::model::config::ModelConfig;
use crate::model::gpt::{GptGpu, STAT_EVAL_LOSS};
use crate::model::params::RawState;
use crate::precision::Precision;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Split {
    /// the validation split (the last 10% of the text)
    Val,
    /// the whole text
    All,
}

/// What `srgpt eval` prints.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct EvalResult {
    /// mean next-token cross-entropy, nats per token
    pub loss: f64,
    /// the same loss over the bytes the scored tokens decode to, in bits
    pub bits_per_byte: f64,
    /// tokens scored (windows × ctx)
    pub tokens: u64,
    /// bytes those tokens decode to
    pub bytes: u64,
    pub windows: u64,
}

/// The weights to evaluate: a checkpoint's raw state in its own mode, or f32 weights
/// (an export) evaluated in fp32.
pub enum Weights<'a> {
    Raw(Precision, &'a RawState),
    F32(&'a [f32]),
}

/// The tokens a split scores, in order: one or more token sequences read as one, so a
/// prepared corpus is scored through its memory map, never copied.
pub struct Scored {
    parts: Vec<Tokens>,
}

impl Scored {
    pub fn len(&self) -> usize {
        self.parts.iter().map(Tokens::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends tokens `start..start + n` to `out`, across the parts' boundaries.
    pub fn extend_window(&self, mut start: usize, mut n: usize, out: &mut Vec<u32>) {
        for part in &self.parts {
            if start >= part.len() {
                start -= part.len();
                continue;
            }
            let take = n.min(part.len() - start);
            part.extend_window(start, take, out);
            (start, n) = (0, n - take);
            if n == 0 {
                return;
            }
        }
    }
}

/// The tokens `split` scores.
pub fn split_tokens(corpus: &Corpus, split: Split) -> Result<Scored> {
    let parts = match split {
        Split::Val => vec![corpus.val.clone()],
        // a prepared folder holds tokens only: its train then its validation tokens
        Split::All if std::path::Path::new(&corpus.source).is_dir() => vec![corpus.train.clone(), corpus.val.clone()],
        Split::All => {
            let text = Corpus::text_of(&corpus.source)?;
            vec![Tokens::Memory(corpus.tokenizer.encode_corpus(&corpus.source, &text)?)]
        }
    };
    Ok(Scored { parts })
}

/// The loss of the model over the first `max_windows` windows of `tokens` (all, if None),
/// `batch` windows per forward pass.
pub fn evaluate(
    gpu: &Gpu,
    cfg: ModelConfig,
    weights: Weights,
    corpus: &Corpus,
    tokens: &Scored,
    batch: u32,
    max_windows: Option<u64>,
) -> Result<EvalResult> {
    let t = cfg.ctx as usize;
    let available = (tokens.len() / (t + 1)) as u64;
    let windows = max_windows.map_or(available, |m| m.min(available));
    if windows == 0 {
        return Err(crate::Failure::BadInput(format!(
            "corpus {} has {} tokens there: fewer than one window of ctx + 1 = {}",
            corpus.source,
            tokens.len(),
            t + 1
        ))
        .into());
    }
    let model_of = |b: u32| -> Result<GptGpu> {
        let layout = crate::model::params::ParamLayout::new(&cfg);
        match &weights {
            Weights::Raw(precision, raw) => {
                let model = GptGpu::without_fidelity(gpu, cfg, b, *precision, &vec![0.0; layout.total])?;
                model.write_raw(gpu, raw)?;
                Ok(model)
            }
            Weights::F32(w) => GptGpu::without_fidelity(gpu, cfg, b, Precision::Fp32, w),
        }
    };
    let full = (windows / batch as u64) as u32;
    let rest = (windows % batch as u64) as u32;
    let mut nats = 0f64;
    let mut bytes = 0u64;
    let mut next = 0usize;
    for (model_batch, count) in [(batch, full), (rest, u32::from(rest > 0))] {
        if count == 0 {
            continue;
        }
        let model = model_of(model_batch)?;
        for _ in 0..count {
            let mut b =
                Batch { inputs: Vec::with_capacity(model_batch as usize * t), targets: Vec::with_capacity(model_batch as usize * t) };
            for _ in 0..model_batch {
                tokens.extend_window(next, t, &mut b.inputs);
                tokens.extend_window(next + 1, t, &mut b.targets);
                next += t + 1;
            }
            bytes += corpus.decode(&b.targets).len() as u64;
            model.upload_batch(gpu, &b);
            for encoder in model.eval_encoders(gpu, usize::MAX) {
                gpu.queue.submit([encoder.finish()]);
            }
            let mean = model.read_stats(gpu)?[STAT_EVAL_LOSS] as f64;
            nats += mean * (model_batch as usize * t) as f64;
        }
    }
    let scored = windows * t as u64;
    Ok(EvalResult {
        loss: nats / scored as f64,
        bits_per_byte: nats / std::f64::consts::LN_2 / bytes.max(1) as f64,
        tokens: scored,
        bytes,
        windows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_reads_across_the_parts() {
        let scored = Scored { parts: vec![Tokens::Memory((0..10).collect()), Tokens::Memory(vec![]), Tokens::Memory((10..15).collect())] };
        assert_eq!(scored.len(), 15);
        for (start, n) in [(0, 15), (8, 5), (10, 5), (3, 4), (9, 1)] {
            let mut out = Vec::new();
            scored.extend_window(start, n, &mut out);
            assert_eq!(out, (start as u32..(start + n) as u32).collect::<Vec<_>>(), "window {start}+{n}");
        }
    }
}
