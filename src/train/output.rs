//! A run's files: DIR/metrics.jsonl (appended, flushed line by line), DIR/summary.json and the
//! checkpoints — shared by the headless CLI and the dashboard.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use super::{Metric, RunStatus, Trainer};
use crate::gpu::{AdapterReport, Gpu};
use crate::Failure;

pub struct RunOutput {
    pub dir: PathBuf,
    metrics: File,
}

/// summary.json
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub adapter: AdapterReport,
    pub preset: String,
    pub steps: u32,
    pub runs: Vec<RunSummary>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RunSummary {
    pub precision: String,
    pub status: String,
    pub final_train_loss: Option<f32>,
    pub final_val_loss: Option<f32>,
    pub state_bytes_per_param: f64,
    pub tokens_per_s: f64,
    pub wall_s: f64,
}

/// A folder name for a run started now: runs/run-<unix seconds>.
pub fn default_dir() -> PathBuf {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    PathBuf::from(format!("runs/run-{secs}"))
}

impl RunOutput {
    pub fn open(dir: &Path) -> Result<RunOutput> {
        std::fs::create_dir_all(dir).map_err(|e| Failure::BadInput(format!("cannot create output folder {}: {e}", dir.display())))?;
        let path = dir.join("metrics.jsonl");
        let metrics = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Failure::BadInput(format!("cannot write {}: {e}", path.display())))?;
        Ok(RunOutput { dir: dir.to_path_buf(), metrics })
    }

    pub fn write_metrics(&mut self, lines: &[Metric]) -> Result<()> {
        for line in lines {
            writeln!(self.metrics, "{}", serde_json::to_string(line)?)?;
        }
        self.metrics.flush().context("writing metrics.jsonl")
    }

    /// Checkpoints of every live run; the metric lines read back meanwhile are written too.
    pub fn checkpoint(&mut self, trainer: &mut Trainer, gpu: &Gpu) -> Result<Vec<PathBuf>> {
        let written = trainer.save_checkpoints(gpu, &self.dir)?;
        let lines = trainer.flush(gpu)?;
        self.write_metrics(&lines)?;
        Ok(written)
    }

    /// Final checkpoints and summary.json.
    pub fn finish(&mut self, trainer: &mut Trainer, gpu: &Gpu) -> Result<(Vec<PathBuf>, Summary)> {
        let written = self.checkpoint(trainer, gpu)?;
        let summary = summarize(trainer, gpu);
        write_json_atomically(&self.dir.join("summary.json"), &serde_json::to_value(&summary)?)?;
        Ok((written, summary))
    }
}

pub fn summarize(trainer: &Trainer, gpu: &Gpu) -> Summary {
    Summary {
        adapter: gpu.report.clone(),
        preset: trainer.spec.preset.clone(),
        steps: trainer.step,
        runs: trainer
            .runs
            .iter()
            .map(|r| RunSummary {
                precision: r.precision.name().into(),
                status: r.status.name().into(),
                final_train_loss: r.train_loss,
                final_val_loss: r.val_loss,
                state_bytes_per_param: r.model.state_bytes_per_param(),
                tokens_per_s: if r.busy_s > 0.0 { r.tokens as f64 / r.busy_s } else { 0.0 },
                wall_s: r.busy_s,
            })
            .collect(),
    }
}

/// The messages of diverged runs, if any.
pub fn divergences(trainer: &Trainer) -> Vec<String> {
    trainer.runs.iter().filter(|r| matches!(r.status, RunStatus::Diverged(_))).filter_map(|r| r.message.clone()).collect()
}

/// Writes JSON through a temporary file and a rename, so a reader never sees half a file.
pub fn write_json_atomically(path: &Path, doc: &serde_json::Value) -> Result<()> {
    super::checkpoint::write_atomically(path, (serde_json::to_string_pretty(doc)? + "\n").as_bytes())
}
