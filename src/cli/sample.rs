//! `srgpt sample`: text from a checkpoint, each byte printed as it is drawn.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use srgpt::data::Corpus;
use srgpt::gpu::Gpu;
use srgpt::sample::{Generation, SampleOptions, Sampler};

pub fn sample(adapter: Option<&str>, checkpoint: &Path, prompt: &str, opts: SampleOptions) -> Result<ExitCode> {
    let ckpt = srgpt::train::checkpoint::load(checkpoint)?;
    let corpus = Corpus::tokenizer_only(ckpt.tokenizer.clone());
    let prompt_ids = corpus.encode(prompt)?;
    let gpu = Gpu::new(adapter)?;
    let sampler = Sampler::new(&gpu, ckpt.state.model, ckpt.precision, &ckpt.raw)?;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(prompt.as_bytes())?;
    stdout.flush()?;
    let mut generation = Generation::new(&prompt_ids, &opts);
    let mut printed = 0;
    loop {
        let finished = generation.advance(&gpu, &sampler, true)?;
        let drawn = generation.drawn();
        stdout.write_all(&corpus.decode(&drawn[printed..]))?;
        stdout.flush()?;
        printed = drawn.len();
        if finished.is_some() {
            break;
        }
    }
    stdout.write_all(b"\n")?;
    Ok(ExitCode::SUCCESS)
}
