//! `srgpt prepare`: text tokenized once into a folder that `train --corpus DIR` reads through a
//! memory map (the format: `srgpt::data::prepared`).

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use srgpt::data::TokenizerKind;

pub fn prepare(corpus: &[String], tokenizer: TokenizerKind, out: &Path) -> Result<ExitCode> {
    let started = std::time::Instant::now();
    let (train, val) = srgpt::data::prepared::prepare(corpus, tokenizer, out)?;
    println!(
        "{}: {train} train and {val} validation tokens ({} tokenizer) in {:.1} s",
        out.display(),
        tokenizer.name(),
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}
