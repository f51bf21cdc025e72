//! A run's folder: DIR/metrics.jsonl (appended, flushed line by line), DIR/summary.json and
//! one checkpoint per run — shared by the headless CLI and the dashboard. One folder holds one
//! run: a new run refuses a folder that holds another, and a resumed run continues in its
//! own folder, its curves cut back to the checkpoint's step.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use super::run::{EvalPoint, History};
use super::{Metric, RunStatus, Trainer};
use crate::gpu::{AdapterReport, Gpu};
use crate::model::config::{ModelConfig, TrainConfig};
use crate::precision::Precision;
use crate::Failure;

pub struct RunOutput {
    pub dir: PathBuf,
    metrics: File,
    /// a resumed run's metric lines up to its checkpoint, for the trainer to recall
    pub earlier: Vec<Metric>,
}

/// summary.json: everything needed to know what was run, with each run's outcome.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Summary {
    pub srgpt_version: String,
    pub adapter: AdapterReport,
    pub preset: String,
    /// n_layer, n_head, d, ctx, vocab
    #[serde(flatten)]
    pub model: ModelConfig,
    /// batch, lr, warmup, steps and grad_accum: the updates the runs were set to make
    #[serde(flatten)]
    pub train: TrainConfig,
    pub seed: u64,
    pub eval_every: u32,
    pub eval_batches: u32,
    pub corpus: String,
    pub corpus_sha256: String,
    /// `byte` or `gpt2`
    #[serde(default)]
    pub tokenizer: String,
    /// bytes of text per validation target token: val loss / ln 2 / this is bits per byte
    #[serde(default)]
    pub val_bytes_per_token: f64,
    /// the validation loss that counts as reached: --target-loss, else 1.01 x fp32's final
    /// validation loss when fp32 is among the runs, else null
    pub target_loss: Option<f32>,
    pub runs: Vec<RunSummary>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunSummary {
    pub precision: String,
    /// done, stopped, diverged (or running, while a dashboard run is in progress)
    pub status: String,
    pub steps_completed: u32,
    /// the train loss of the last completed step (null if it is not known)
    pub final_train_loss: Option<f32>,
    /// the validation loss measured after the last completed step; null when the last
    /// evaluation was earlier (see `last_val_loss`)
    pub final_val_loss: Option<f32>,
    /// the latest validation loss and the step it was measured at
    pub last_val_loss: Option<f32>,
    pub last_val_loss_step: Option<u32>,
    /// `last_val_loss` in bits per byte of the validation text
    #[serde(default)]
    pub last_val_bits_per_byte: Option<f64>,
    pub state_bytes_per_param: f64,
    /// over this session's steps
    pub tokens_per_s: f64,
    pub wall_s: f64,
    /// means over the last 10% of the completed steps (see `kernels::adamw::Fidelity`)
    pub update_ratio: Option<f64>,
    pub lost_fraction: Option<f64>,
    /// the first evaluation with validation loss at or below `target_loss`: its step, tokens,
    /// GPU seconds (timestamp queries) and wall seconds since the run began; null if never
    pub steps_to_target: Option<u32>,
    pub tokens_to_target: Option<u64>,
    pub gpu_seconds_to_target: Option<f64>,
    pub wall_seconds_to_target: Option<f64>,
    /// fp32's GPU seconds to target over this run's
    pub speedup_vs_fp32: Option<f64>,
}

impl Summary {
    /// DIR/summary.json, if the folder has one that parses.
    pub fn read(dir: &Path) -> Option<Summary> {
        let text = std::fs::read_to_string(dir.join("summary.json")).ok()?;
        serde_json::from_str(&text).ok()
    }
}

/// The means of update_ratio and lost_fraction over the last 10% of `completed` steps.
fn late_means(history: &History, completed: u32) -> (Option<f64>, Option<f64>) {
    let from = completed - (completed / 10).max(1).min(completed);
    let late: Vec<&(u32, f32, f32)> = history.fidelity.iter().filter(|f| f.0 > from && f.0 <= completed).collect();
    if late.is_empty() {
        return (None, None);
    }
    let n = late.len() as f64;
    (Some(late.iter().map(|f| f.1 as f64).sum::<f64>() / n), Some(late.iter().map(|f| f.2 as f64).sum::<f64>() / n))
}

/// The first evaluation at or below `target`, with its GPU seconds.
fn first_reaching(history: &History, target: f32) -> Option<(EvalPoint, f64)> {
    let hit = *history.evals.iter().find(|e| e.val_loss <= target)?;
    Some((hit, hit.gpu_s.unwrap_or(f64::NAN)))
}

/// A folder name for a run started now: runs/<local date>_<time>, e.g.
/// runs/2026-11-30_14-05-12 (with -2, -3, … when that folder exists already).
pub fn default_dir() -> PathBuf {
    let base = format!("runs/{}", chrono::Local::now().format("%Y-%m-%d_%H-%M-%S"));
    let mut dir = PathBuf::from(&base);
    let mut n = 2;
    while dir.exists() {
        dir = PathBuf::from(format!("{base}-{n}"));
        n += 1;
    }
    dir
}

/// Whether `dir` holds a run already: metrics, a summary or a checkpoint.
pub fn holds_run(dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries.filter_map(|e| e.ok()).any(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        name == "metrics.jsonl" || name == "summary.json" || name.ends_with(".safetensors")
    })
}

/// When checkpoints are written besides the end of a run: every `every_steps` updates or every
/// `every` of wall time, whichever comes first (0 / `None` turns either off).
#[derive(Clone, Copy, Debug)]
pub struct CheckpointPolicy {
    pub every_steps: u32,
    pub every: Option<std::time::Duration>,
}

impl CheckpointPolicy {
    /// 200 steps or 5 minutes: a crash loses at most that much.
    pub const DEFAULT: CheckpointPolicy = CheckpointPolicy { every_steps: 200, every: Some(std::time::Duration::from_secs(300)) };
}

/// Applies a [`CheckpointPolicy`] to a run in progress.
pub struct CheckpointClock {
    policy: CheckpointPolicy,
    last: web_time::Instant,
}

impl CheckpointClock {
    pub fn new(policy: CheckpointPolicy) -> CheckpointClock {
        CheckpointClock { policy, last: web_time::Instant::now() }
    }

    /// Whether a checkpoint is due after update `step` of a run of `total` (the end writes
    /// its own).
    pub fn due(&self, step: u32, total: u32) -> bool {
        let by_steps = self.policy.every_steps > 0 && step.is_multiple_of(self.policy.every_steps);
        let by_time = self.policy.every.is_some_and(|t| self.last.elapsed() >= t);
        step < total && (by_steps || by_time)
    }

    pub fn written(&mut self) {
        self.last = web_time::Instant::now();
    }
}

fn open_metrics(dir: &Path) -> Result<File> {
    let path = dir.join("metrics.jsonl");
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| Failure::BadInput(format!("cannot write {}: {e}", path.display())).into())
}

fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Failure::BadInput(format!("cannot create output folder {}: {e}", dir.display())).into())
}

/// The error for a new run aimed at a folder that holds one.
pub fn folder_taken(dir: &Path) -> anyhow::Error {
    Failure::BadInput(format!(
        "{} holds an earlier run (metrics, summary or checkpoints), which this run would mix with or overwrite. \
         Continue that run with `srgpt train --headless --resume {}`, or give this one a new folder with --out",
        dir.display(),
        dir.display()
    ))
    .into()
}

impl RunOutput {
    /// The folder of a new run: created if need be, refused if it holds a run already.
    pub fn create(dir: &Path) -> Result<RunOutput> {
        if holds_run(dir) {
            return Err(folder_taken(dir));
        }
        create_dir(dir)?;
        Ok(RunOutput { dir: dir.to_path_buf(), metrics: open_metrics(dir)?, earlier: Vec::new() })
    }

    /// The folder where resumed `runs` continue from update `step`. In the runs' own folder
    /// (`source`), their metric lines after `step` are dropped (a kill can leave lines past
    /// the newest checkpoint), so curves never jump back; in another folder, which must not
    /// hold a run, their lines up to `step` are copied first, so it has whole curves.
    pub fn resume(dir: &Path, source: &Path, runs: &[String], step: u32) -> Result<RunOutput> {
        let same = match (dir.canonicalize(), source.canonicalize()) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        };
        if !same && holds_run(dir) {
            return Err(folder_taken(dir));
        }
        create_dir(dir)?;
        let source_metrics = source.join("metrics.jsonl");
        let old = match std::fs::read_to_string(&source_metrics) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(Failure::BadInput(format!("cannot read {}: {e}", source_metrics.display())).into()),
        };
        let (mut kept, mut earlier) = (String::new(), Vec::new());
        for line in old.lines().filter(|l| !l.trim().is_empty()) {
            let keep = match serde_json::from_str::<Metric>(line) {
                Ok(m) if runs.contains(&m.run) => {
                    let keep = m.step <= step;
                    if keep {
                        earlier.push(m);
                    }
                    keep
                }
                Ok(_) => same,
                Err(_) => true,
            };
            if keep {
                kept.push_str(line);
                kept.push('\n');
            }
        }
        if !(same && kept.len() == old.len()) {
            crate::files::write_atomically(&dir.join("metrics.jsonl"), kept.as_bytes())?;
        }
        Ok(RunOutput { dir: dir.to_path_buf(), metrics: open_metrics(dir)?, earlier })
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

    /// Final checkpoints and summary.json (statuses as the trainer has them: done, stopped
    /// or diverged).
    pub fn finish(&mut self, trainer: &mut Trainer, gpu: &Gpu) -> Result<(Vec<PathBuf>, Summary)> {
        let written = self.checkpoint(trainer, gpu)?;
        let summary = summarize(trainer, gpu);
        self.write_summary(&summary)?;
        Ok((written, summary))
    }

    /// Writes summary.json, keeping the entries of runs in the folder that this session did
    /// not train (a resume of some of its runs).
    pub fn write_summary(&self, summary: &Summary) -> Result<()> {
        let mut merged = summary.clone();
        if let Some(earlier) = Summary::read(&self.dir) {
            let ours = &summary.runs;
            merged.runs =
                earlier.runs.iter().map(|old| ours.iter().find(|new| new.precision == old.precision).unwrap_or(old).clone()).collect();
            merged.runs.extend(ours.iter().filter(|new| !earlier.runs.iter().any(|old| old.precision == new.precision)).cloned());
        }
        // through text, so f32 values keep their short form (0.003, not 0.003000000026077032)
        let doc: serde_json::Value = serde_json::from_str(&serde_json::to_string(&merged)?)?;
        write_json_atomically(&self.dir.join("summary.json"), &doc)
    }
}

pub fn summarize(trainer: &Trainer, gpu: &Gpu) -> Summary {
    let (spec, model, train) = (&trainer.spec, &trainer.spec.model, &trainer.spec.train);
    let fp32 = trainer.runs.iter().find(|r| r.precision == Precision::Fp32);
    let target_loss = trainer.target_loss.or_else(|| fp32.and_then(|r| r.val_loss).map(|v| 1.01 * v));
    let fp32_to_target = fp32.zip(target_loss).and_then(|(r, t)| first_reaching(&r.history, t)).map(|(_, s)| s);
    Summary {
        srgpt_version: env!("CARGO_PKG_VERSION").into(),
        adapter: gpu.report.clone(),
        preset: spec.preset.clone(),
        model: *model,
        train: *train,
        seed: spec.seed,
        eval_every: spec.eval_every,
        eval_batches: spec.eval_batches,
        corpus: trainer.corpus.source.clone(),
        corpus_sha256: trainer.corpus.sha256.clone(),
        tokenizer: trainer.corpus.tokenizer.name().into(),
        val_bytes_per_token: trainer.val_bytes_per_token,
        target_loss,
        runs: trainer
            .runs
            .iter()
            .map(|r| {
                let completed = match r.status {
                    RunStatus::Diverged(s) => s,
                    _ => trainer.step,
                };
                let measured_at = |loss: Option<f32>, step: u32| loss.filter(|_| step == completed);
                let session_tokens = r.tokens - r.tokens_before;
                let reached = target_loss.and_then(|t| first_reaching(&r.history, t));
                let (update_ratio, lost_fraction) = late_means(&r.history, completed);
                RunSummary {
                    precision: r.precision.name().into(),
                    status: r.status.name().into(),
                    steps_completed: completed,
                    final_train_loss: measured_at(r.train_loss, r.train_loss_step),
                    final_val_loss: measured_at(r.val_loss, r.val_loss_step),
                    last_val_loss: r.val_loss,
                    last_val_loss_step: r.val_loss.map(|_| r.val_loss_step),
                    last_val_bits_per_byte: r.val_loss.map(|l| trainer.bits_per_byte(l)),
                    state_bytes_per_param: r.model.state_bytes_per_param(),
                    tokens_per_s: if r.busy_s > 0.0 { session_tokens as f64 / r.busy_s } else { 0.0 },
                    wall_s: r.busy_s,
                    update_ratio,
                    lost_fraction,
                    steps_to_target: reached.map(|(m, _)| m.step),
                    tokens_to_target: reached.map(|(m, _)| m.tokens),
                    gpu_seconds_to_target: reached.map(|(_, s)| s).filter(|s| s.is_finite()),
                    wall_seconds_to_target: reached.map(|(m, _)| m.elapsed_s),
                    speedup_vs_fp32: fp32_to_target.zip(reached).map(|(fp32_s, (_, s))| fp32_s / s.max(1e-9)).filter(|x| x.is_finite()),
                }
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
    crate::files::write_atomically(path, (serde_json::to_string_pretty(doc)? + "\n").as_bytes())
}
