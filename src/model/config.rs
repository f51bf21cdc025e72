//! Model and training configuration: the presets (README.md, "The model and the precision modes") and their validation.

use serde::{Deserialize, Serialize};

use crate::Failure;

/// The GPT's shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub n_layer: u32,
    pub n_head: u32,
    /// channels (d)
    pub d: u32,
    /// context length (T)
    pub ctx: u32,
    pub vocab: u32,
}

/// The optimisation schedule.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// sequences per update
    pub batch: u32,
    pub lr: f32,
    pub warmup: u32,
    pub steps: u32,
    /// micro-batches per update: the batch runs through the model in this many pieces of
    /// batch / grad_accum sequences, their gradients adding up before the one update
    #[serde(default = "one")]
    pub grad_accum: u32,
}

fn one() -> u32 {
    1
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Preset {
    pub name: &'static str,
    pub n_layer: u32,
    pub n_head: u32,
    pub d: u32,
    pub ctx: u32,
    pub train: TrainConfig,
}

/// A preset's schedule with one micro-batch per update.
const fn schedule(batch: u32, lr: f32, warmup: u32, steps: u32) -> TrainConfig {
    TrainConfig { batch, lr, warmup, steps, grad_accum: 1 }
}

/// The shapes of `gpt2` and `gpt2-medium` are GPT-2's 124M and 350M models (Radford et al.
/// 2019, as released on the Hugging Face hub; with GPT-2's 50,257-token vocabulary). Their
/// schedules are for fine-tuning from those weights (`--init`): a small peak learning rate.
pub const PRESETS: [Preset; 5] = [
    Preset { name: "tiny", n_layer: 2, n_head: 4, d: 64, ctx: 64, train: schedule(32, 3e-3, 30, 600) },
    Preset { name: "small", n_layer: 4, n_head: 4, d: 128, ctx: 128, train: schedule(16, 1e-3, 100, 2000) },
    Preset { name: "base", n_layer: 6, n_head: 6, d: 384, ctx: 256, train: schedule(64, 1e-3, 100, 5000) },
    Preset { name: "gpt2", n_layer: 12, n_head: 12, d: 768, ctx: 1024, train: schedule(8, 6e-5, 50, 1000) },
    Preset { name: "gpt2-medium", n_layer: 24, n_head: 16, d: 1024, ctx: 1024, train: schedule(4, 3e-5, 50, 1000) },
];

pub fn preset(name: &str) -> Result<Preset, Failure> {
    PRESETS.iter().find(|p| p.name == name).copied().ok_or_else(|| {
        let names: Vec<&str> = PRESETS.iter().map(|p| p.name).collect();
        Failure::BadInput(format!("unknown preset '{name}' (choose one of: {})", names.join(", ")))
    })
}

/// The largest width, context and depth srgpt accepts (the adapter's buffer limits may refuse
/// a model sooner; that check names the buffer).
pub const MAX_D: u32 = 65536;
pub const MAX_CTX: u32 = 65536;
pub const MAX_LAYERS: u32 = 1024;
/// What a large vocabulary's embedding rows are padded to a multiple of (see
/// [`ModelConfig::padded_vocab`]).
pub const VOCAB_PADDING: u32 = 128;
/// Vocabularies up to this size are not padded: up to 127 more rows would add much to a small
/// head (a byte vocabulary's 65 tokens would become 128) for nothing.
pub const PAD_VOCAB_ABOVE: u32 = 1024;

/// The largest vocabulary: token ids are kept as u16 in prepared corpora.
pub const MAX_VOCAB: u32 = 65536;
/// The most sequences per batch srgpt accepts.
pub const MAX_BATCH: u32 = 1 << 20;

/// `--preset tiny`: the names and their help come from `PRESETS`.
impl clap::ValueEnum for Preset {
    fn value_variants<'a>() -> &'a [Self] {
        &PRESETS
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        let help = format!("{} layers, {} heads, d {}, ctx {}", self.n_layer, self.n_head, self.d, self.ctx);
        Some(clap::builder::PossibleValue::new(self.name).help(help))
    }
}

impl ModelConfig {
    pub fn from_preset(p: &Preset, vocab: u32) -> ModelConfig {
        ModelConfig { n_layer: p.n_layer, n_head: p.n_head, d: p.d, ctx: p.ctx, vocab }
    }

    pub fn head_size(&self) -> u32 {
        self.d / self.n_head
    }

    /// Refuses shapes the kernels cannot run, with the reason in the words of the flags
    /// that set them.
    pub fn validate(&self) -> Result<(), Failure> {
        let bad = |m: String| Err(Failure::BadInput(m));
        for (flag, value) in [("--n-layer", self.n_layer), ("--n-head", self.n_head), ("--d", self.d), ("--ctx", self.ctx)] {
            if value == 0 {
                return bad(format!("{flag} must be positive (got 0)"));
            }
        }
        if self.vocab == 0 || self.vocab > MAX_VOCAB {
            return bad(format!("the vocabulary must hold 1 to {MAX_VOCAB} tokens (got {})", self.vocab));
        }
        for (flag, value, limit) in [("--d", self.d, MAX_D), ("--ctx", self.ctx, MAX_CTX), ("--n-layer", self.n_layer, MAX_LAYERS)] {
            if value > limit {
                return bad(format!("{flag} {value} is over srgpt's limit of {limit}"));
            }
        }
        if !self.d.is_multiple_of(self.n_head) {
            return bad(format!("--n-head {} does not divide --d {} (d must be divisible by n_head)", self.n_head, self.d));
        }
        // 16-bit tensors are packed two per u32: every row must hold whole pairs
        if !self.head_size().is_multiple_of(2) {
            return bad(format!("the head size --d / --n-head ({} / {} = {}) must be even", self.d, self.n_head, self.head_size()));
        }
        if !self.ctx.is_multiple_of(2) {
            return bad(format!("--ctx {} must be even", self.ctx));
        }
        Ok(())
    }

    /// Parameter count (wte is tied to the output head).
    /// The rows of the embedding (and the head's output columns): the vocabulary, rounded up
    /// to a multiple of [`VOCAB_PADDING`] above [`PAD_VOCAB_ABOVE`] tokens, as llm.c pads
    /// GPT-2's 50,257 to 50,304, so that the head's rows of logits and its weight come in
    /// whole tiles. The padding rows are zero and stay zero: no token has their id, the loss
    /// gives their columns no gradient, and checkpoints, exports and samples leave them out.
    pub fn padded_vocab(&self) -> u32 {
        if self.vocab > PAD_VOCAB_ABOVE {
            self.vocab.div_ceil(VOCAB_PADDING) * VOCAB_PADDING
        } else {
            self.vocab
        }
    }

    /// The trained parameters (the embedding's padding rows are not among them).
    pub fn num_params(&self) -> u64 {
        let (d, l, v, t) = (self.d as u64, self.n_layer as u64, self.vocab as u64, self.ctx as u64);
        v * d + t * d + l * (12 * d * d + 13 * d) + 2 * d
    }
}

impl TrainConfig {
    /// Sequences per micro-batch: what the model runs at once.
    pub fn micro_batch(&self) -> u32 {
        self.batch / self.grad_accum.max(1)
    }

    pub fn validate(&self) -> Result<(), Failure> {
        let bad = |m: String| Err(Failure::BadInput(m));
        if self.batch == 0 {
            return bad("--batch must be positive (got 0)".into());
        }
        if self.grad_accum == 0 || !self.batch.is_multiple_of(self.grad_accum) {
            return bad(format!(
                "--grad-accum {} must divide --batch {} (each update runs the batch in --grad-accum equal micro-batches)",
                self.grad_accum, self.batch
            ));
        }
        if self.steps == 0 {
            return bad("--steps must be positive (got 0)".into());
        }
        if !(self.lr.is_finite() && self.lr >= 0.0) {
            return bad(format!("--lr must be a finite, non-negative number (got {})", self.lr));
        }
        Ok(())
    }

    /// Learning rate of update `step` (0-based): linear warm-up from 0, then cosine decay to
    /// lr/10 at the last update.
    pub fn lr_at(&self, step: u32) -> f32 {
        let (lr, warmup, steps) = (self.lr as f64, self.warmup, self.steps);
        if step < warmup {
            return (lr * step as f64 / warmup as f64) as f32;
        }
        let min_lr = lr / 10.0;
        let span = steps.saturating_sub(1).saturating_sub(warmup);
        if span == 0 {
            return min_lr as f32;
        }
        let progress = ((step - warmup) as f64 / span as f64).min(1.0);
        (min_lr + 0.5 * (lr - min_lr) * (1.0 + (std::f64::consts::PI * progress).cos())) as f32
    }
}
