//! `srgpt export`: a checkpoint's weights for Hugging Face transformers or nanoGPT.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use srgpt::export::ExportFormat;

pub fn export(checkpoint: &Path, format: ExportFormat, out: &Path) -> Result<ExitCode> {
    let ckpt = srgpt::train::checkpoint::load(checkpoint)?;
    for path in srgpt::export::export(&ckpt, format, out)? {
        println!("{}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}
