//! `srgpt plot`: a run's curves as a PNG, with no display.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;

pub fn plot(path: &Path, out: Option<PathBuf>) -> Result<ExitCode> {
    let folder = if path.is_dir() { path.to_path_buf() } else { path.parent().map(PathBuf::from).unwrap_or_default() };
    let out = out.unwrap_or_else(|| folder.join("curves.png"));
    srgpt::plot::plot(path, &out)?;
    println!("{}", out.display());
    Ok(ExitCode::SUCCESS)
}
