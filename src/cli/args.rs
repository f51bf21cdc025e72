//! The checks every flag value passes (ranges named in the error), and small parsers.

use anyhow::Result;
use srgpt::model::config::{preset, ModelConfig, Preset, TrainConfig, MAX_BATCH, MAX_CTX, MAX_D, MAX_LAYERS};
use srgpt::precision::Precision;
use srgpt::train::{DEFAULT_PRECISIONS, DEFAULT_PRESET};
use srgpt::Failure;

/// The most bytes `sample` generates in one call.
pub const MAX_SAMPLE_TOKENS: u64 = 1_000_000;

/// A value parser for whole numbers in `lo..=hi`, whose error names the accepted range.
pub fn whole(lo: u64, hi: u64) -> impl Fn(&str) -> Result<u64, String> + Clone + Send + Sync + 'static {
    move |text: &str| {
        let range = if hi == u64::MAX { format!("a whole number from {lo} up") } else { format!("a whole number from {lo} to {hi}") };
        match text.trim().parse::<u64>() {
            Ok(v) if (lo..=hi).contains(&v) => Ok(v),
            _ => Err(format!("expected {range}")),
        }
    }
}

/// `KEY=VALUE`, for `--define`.
pub fn key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err("expected KEY=VALUE, e.g. A=bf16".into()),
    }
}

/// A finite number above 0.
pub fn positive_number(text: &str) -> Result<f32, String> {
    match text.trim().parse::<f32>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err("expected a finite number above 0 (e.g. 3e-3)".into()),
    }
}

/// A finite number of 0 or more.
pub fn non_negative_number(text: &str) -> Result<f32, String> {
    match text.trim().parse::<f32>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err("expected a finite number of 0 or more".into()),
    }
}

/// The modes of a `--precision` list: each at most once, at least one; the default modes
/// where the flag is absent.
pub fn precisions(given: Option<&[Precision]>) -> Result<Vec<Precision>> {
    let Some(given) = given else {
        return Ok(DEFAULT_PRECISIONS.to_vec());
    };
    for (i, p) in given.iter().enumerate() {
        if given[..i].contains(p) {
            return Err(bad_input(format!("precision {p} is listed twice")));
        }
    }
    if given.is_empty() {
        return Err(bad_input("--precision lists no mode".into()));
    }
    Ok(given.to_vec())
}

/// The model flags `train` and `sweep` share: a preset, and the shape and batch that
/// override it.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct ModelFlags {
    /// Model and schedule preset [default: tiny].
    #[arg(long)]
    pub preset: Option<Preset>,
    /// Transformer blocks [default: the preset's].
    #[arg(long, value_parser = whole(1, MAX_LAYERS as u64))]
    pub n_layer: Option<u64>,
    /// Attention heads (they divide d) [default: the preset's].
    #[arg(long, value_parser = whole(1, MAX_D as u64))]
    pub n_head: Option<u64>,
    /// Channels (d) [default: the preset's].
    #[arg(long, value_parser = whole(1, MAX_D as u64))]
    pub d: Option<u64>,
    /// Context length (T) [default: the preset's].
    #[arg(long, value_parser = whole(2, MAX_CTX as u64))]
    pub ctx: Option<u64>,
    /// Sequences per batch (B) [default: the preset's].
    #[arg(long, value_parser = whole(1, MAX_BATCH as u64))]
    pub batch: Option<u64>,
    /// Run each batch in N equal micro-batches (N divides --batch) whose gradients add up
    /// before the update: the same update in less memory [default: 1].
    #[arg(long, value_parser = whole(1, MAX_BATCH as u64))]
    pub grad_accum: Option<u64>,
}

impl ModelFlags {
    /// The preset named, or the default one.
    pub fn preset(&self) -> Preset {
        self.preset.unwrap_or_else(|| preset(DEFAULT_PRESET).expect("the default preset exists"))
    }

    /// The preset's model (with this vocabulary), batch and micro-batches, overridden by the
    /// flags given.
    pub fn apply(&self, model: &mut ModelConfig, train: &mut TrainConfig) {
        let given = |v: Option<u64>, default: u32| v.map_or(default, |v| v as u32);
        model.n_layer = given(self.n_layer, model.n_layer);
        model.n_head = given(self.n_head, model.n_head);
        model.d = given(self.d, model.d);
        model.ctx = given(self.ctx, model.ctx);
        train.batch = given(self.batch, train.batch);
        train.grad_accum = given(self.grad_accum, train.grad_accum);
    }

    /// The model's shape flags, by name, as given (for the checks of resume and --init).
    pub fn shape(&self) -> [(&'static str, Option<u64>); 4] {
        [("--n-layer", self.n_layer), ("--n-head", self.n_head), ("--d", self.d), ("--ctx", self.ctx)]
    }

    /// The same flags as arguments of `srgpt train` (a sweep's runs).
    pub fn to_args(&self) -> Vec<String> {
        let mut out = vec!["--preset".to_string(), self.preset().name.to_string()];
        for (flag, value) in self.shape().into_iter().chain([("--batch", self.batch), ("--grad-accum", self.grad_accum)]) {
            if let Some(v) = value {
                out.extend([flag.to_string(), v.to_string()]);
            }
        }
        out
    }
}

pub fn bad_input(msg: String) -> anyhow::Error {
    Failure::BadInput(msg).into()
}
