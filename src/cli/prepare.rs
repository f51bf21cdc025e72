//! `srgpt prepare`: text tokenized once into a folder that `train --corpus DIR` reads through a
//! memory map (the format: `srgpt::data::prepared`); and `srgpt tokenizer train`.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use srgpt::data::TokenizerChoice;
use srgpt::Failure;

pub fn prepare(corpus: &[String], tokenizer: &TokenizerChoice, out: &Path) -> Result<ExitCode> {
    let started = std::time::Instant::now();
    let (tokenizer, train, val) = srgpt::data::prepared::prepare(corpus, tokenizer, out)?;
    println!(
        "{}: {train} train and {val} validation tokens ({}) in {:.1} s",
        out.display(),
        tokenizer.describe(),
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn train_tokenizer(corpus: &[String], vocab: u32, out: &Path) -> Result<ExitCode> {
    if out.exists() {
        return Err(Failure::BadInput(format!(
            "{} exists: tokenizer train writes a new file (remove it first to replace it)",
            out.display()
        ))
        .into());
    }
    let started = std::time::Instant::now();
    let json = srgpt::data::hf_tokenizer::train_bpe(corpus, vocab)?;
    let tokenizer =
        srgpt::data::Tokenizer::from_json(&json).map_err(|e| anyhow::anyhow!("the trained tokenizer does not read back: {e}"))?;
    srgpt::files::write_atomically(out, json.as_bytes())?;
    println!("{}: a byte-level BPE of {} tokens in {:.1} s", out.display(), tokenizer.vocab_size(), started.elapsed().as_secs_f64());
    Ok(ExitCode::SUCCESS)
}
