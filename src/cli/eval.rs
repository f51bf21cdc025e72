//! `srgpt eval`: a checkpoint's or an export's loss on a corpus, as JSON on stdout.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use srgpt::data::{Corpus, TokenizerChoice};
use srgpt::eval::{evaluate, split_tokens, Split, Weights};
use srgpt::export::SavedModel;
use srgpt::gpu::Gpu;
use srgpt::precision::Precision;

pub struct EvalArgs<'a> {
    pub model: &'a Path,
    pub corpus: &'a str,
    pub tokenizer: Option<TokenizerChoice>,
    pub split: Split,
    pub batch: u32,
    pub batches: Option<u64>,
}

pub fn eval(adapter: Option<&str>, args: EvalArgs) -> Result<ExitCode> {
    // a checkpoint in its own mode; an export in fp32
    let model = srgpt::export::load_model(args.model)?;
    let (cfg, tokenizer, precision) = match &model {
        SavedModel::Checkpoint(c) => (c.state.model, c.tokenizer.clone(), c.precision),
        SavedModel::Export(cfg, tokenizer, _) => (*cfg, tokenizer.clone(), Precision::Fp32),
    };
    if let Some(choice) = &args.tokenizer {
        choice.require(&tokenizer, &format!("{} was trained with", args.model.display()))?;
    }
    let corpus = Corpus::load_for(args.corpus, &tokenizer)?;
    let tokens = split_tokens(&corpus, args.split)?;
    let gpu = Gpu::new(adapter)?;
    let weights = match &model {
        SavedModel::Checkpoint(c) => Weights::Raw(c.precision, &c.raw),
        SavedModel::Export(_, _, weights) => Weights::F32(weights),
    };
    let result = evaluate(&gpu, cfg, weights, &corpus, &tokens, args.batch, args.batches.map(|n| n * args.batch as u64))?;
    let split = match args.split {
        Split::Val => "val",
        Split::All => "all",
    };
    let mut json = serde_json::to_value(&result)?;
    for (key, value) in [
        ("model", args.model.display().to_string()),
        ("corpus", corpus.source.clone()),
        ("tokenizer", tokenizer.name().to_string()),
        ("split", split.to_string()),
        ("precision", precision.name().to_string()),
    ] {
        json[key] = value.into();
    }
    println!("{json}");
    Ok(ExitCode::SUCCESS)
}
