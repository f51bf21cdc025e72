//! `srgpt eval`: a checkpoint's or an export's loss on a corpus, as JSON on stdout.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use srgpt::data::{Corpus, TokenizerKind};
use srgpt::eval::{evaluate, split_tokens, Split, Weights};
use srgpt::gpu::Gpu;

use super::args::bad_input;

pub struct EvalArgs<'a> {
    pub model: &'a Path,
    pub corpus: &'a str,
    pub tokenizer: Option<TokenizerKind>,
    pub split: Split,
    pub batch: u32,
    pub batches: Option<u64>,
}

pub fn eval(adapter: Option<&str>, args: EvalArgs) -> Result<ExitCode> {
    let bytes = std::fs::read(if args.model.is_dir() { args.model.join("model.safetensors") } else { args.model.to_path_buf() });
    let is_checkpoint = bytes.ok().and_then(|b| {
        let (_, header) = safetensors::SafeTensors::read_metadata(&b).ok()?;
        header.metadata().as_ref()?.get("format").map(|f| f == srgpt::train::checkpoint::FORMAT)
    });
    // a checkpoint in its own mode; an export (or anything else, which load_init explains) in fp32
    let (cfg, tokenizer, precision, checkpoint, weights) = if is_checkpoint == Some(true) {
        let c = srgpt::train::checkpoint::load(args.model)?;
        (c.state.model, c.tokenizer.clone(), c.precision, Some(c), Vec::new())
    } else {
        let (cfg, tokenizer, weights) = srgpt::export::load_init(args.model)?;
        (cfg, tokenizer, srgpt::precision::Precision::Fp32, None, weights)
    };
    if let Some(kind) = args.tokenizer.filter(|&k| k != TokenizerKind::of(&tokenizer)) {
        return Err(bad_input(format!(
            "--tokenizer {}, but {} was trained with the {} tokenizer",
            kind.name(),
            args.model.display(),
            tokenizer.name()
        )));
    }
    let corpus = Corpus::load_for(args.corpus, &tokenizer)?;
    let tokens = split_tokens(&corpus, args.split)?;
    let gpu = Gpu::new(adapter)?;
    let weights = match &checkpoint {
        Some(c) => Weights::Raw(c.precision, &c.raw),
        None => Weights::F32(&weights),
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
