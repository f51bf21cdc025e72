//! The results of `srgpt sweep` as sweep.json holds them: one cell per mode and learning
//! rate, over the seeds. Written by the sweep command, read by `srgpt view`.

use std::path::Path;

use anyhow::Result;
use serde::{Deserialize, Serialize};

/// One mode at one learning rate, over the seeds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SweepCell {
    pub precision: String,
    pub lr: f32,
    pub seeds: usize,
    pub final_val_mean: Option<f64>,
    /// sample standard deviation over the seeds (0 with one seed)
    pub final_val_std: Option<f64>,
    /// means over the seeds of each run's late means
    pub update_ratio: Option<f64>,
    pub lost_fraction: Option<f64>,
    pub steps_to_target_mean: Option<f64>,
    /// of the seeds whose run reached its target
    pub reached_target: usize,
    pub speedup_vs_fp32_mean: Option<f64>,
    /// this mode's final val loss minus fp32's at the same learning rate and seed, mean and
    /// sample standard deviation over the seeds both finished (absent without an fp32 run)
    #[serde(default)]
    pub gap_to_fp32_mean: Option<f64>,
    #[serde(default)]
    pub gap_to_fp32_std: Option<f64>,
}

/// Mean and sample standard deviation (0 for one value); none for no values.
pub fn mean_std(values: &[f64]) -> Option<(f64, f64)> {
    if values.is_empty() {
        return None;
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let std = if values.len() < 2 { 0.0 } else { (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt() };
    Some((mean, std))
}

/// Whether `dir` is a sweep's folder.
pub fn is_sweep(dir: &Path) -> bool {
    dir.join("sweep.json").is_file()
}

/// The cells of DIR/sweep.json.
pub fn read_sweep(dir: &Path) -> Result<Vec<SweepCell>> {
    let path = dir.join("sweep.json");
    let text = std::fs::read_to_string(&path).map_err(|e| crate::Failure::BadInput(format!("cannot read {}: {e}", path.display())))?;
    let doc: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| crate::Failure::BadInput(format!("{}: not JSON ({e})", path.display())))?;
    serde_json::from_value(doc["cells"].clone())
        .map_err(|e| crate::Failure::BadInput(format!("{}: no sweep cells ({e})", path.display())).into())
}

/// The cells as a Markdown table.
pub fn markdown(cells: &[SweepCell]) -> String {
    let mut out = String::from(
        "| mode | lr | seeds | final val loss (mean ± std) | minus fp32's (mean ± std) | update ratio | lost fraction | steps to target | speed-up vs fp32 |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    let f = |v: Option<f64>, digits: usize| v.map_or("-".to_string(), |v| format!("{v:.digits$}"));
    for c in cells {
        out += &format!(
            "| {} | {:e} | {} | {} ± {} | {} ± {} | {} | {} | {} ({} of {}) | {} |\n",
            c.precision,
            c.lr,
            c.seeds,
            f(c.final_val_mean, 4),
            f(c.final_val_std, 4),
            f(c.gap_to_fp32_mean, 4),
            f(c.gap_to_fp32_std, 4),
            f(c.update_ratio, 3),
            f(c.lost_fraction, 3),
            f(c.steps_to_target_mean, 0),
            c.reached_target,
            c.seeds,
            f(c.speedup_vs_fp32_mean, 2)
        );
    }
    out
}
