//! The trainer: several precision modes side by side on the same batches from the same
//! initial weights, with the LR schedule, evaluation, metrics and checkpoints. A CLI loop or
//! a UI thread calls `step()`, which waits for the GPU as needed; a browser frame calls
//! `advance()`, which never waits and picks up each result on a later frame.

pub mod checkpoint;
pub mod curves;
pub mod output;
mod run;
pub mod session;
mod snapshot;
pub mod sweep;

pub use run::Run;
pub use snapshot::{SnapshotDone, SnapshotFiles};

use anyhow::Result;
use serde::Serialize;
use std::path::{Path, PathBuf};

use crate::data::{train_batch, val_batches, Batch, Corpus};
use crate::gpu::Gpu;
use crate::kernels::adamw::Fidelity;
use crate::model::config::{ModelConfig, Preset, TrainConfig};
use crate::model::gpt::{STAT_FIDELITY, STAT_GRAD_SUMSQ, STAT_TRAIN_LOSS};
use crate::model::params::ParamLayout;
use crate::precision::{Precision, Store};
use checkpoint::{Checkpoint, RunState};

/// What a run takes when nothing says otherwise: the command line, the dashboard and the page
/// all start from these (with a preset's model and schedule).
pub const DEFAULT_PRESET: &str = "tiny";
pub const DEFAULT_PRECISIONS: [Precision; 3] = [Precision::Fp32, Precision::Bf16, Precision::Bf16Sr];
pub const DEFAULT_SEED: u64 = 1;
pub const DEFAULT_EVAL_EVERY: u32 = 50;
pub const DEFAULT_EVAL_BATCHES: u32 = 16;
/// text from each run every N steps (where a session samples: the dashboard)
pub const DEFAULT_SAMPLE_EVERY: u32 = 100;

/// What to train.
#[derive(Clone, Debug)]
pub struct TrainSpec {
    pub preset: String,
    pub model: ModelConfig,
    pub train: TrainConfig,
    pub precisions: Vec<Precision>,
    pub seed: u64,
    pub eval_every: u32,
    pub eval_batches: u32,
    /// measure each update's fidelity (`update_ratio`, `lost_fraction`); off saves its small
    /// cost
    pub measure_fidelity: bool,
}

impl TrainSpec {
    /// Refuses a configuration that cannot train, in the words of the flags that set it.
    pub fn validate(&self) -> Result<(), crate::Failure> {
        self.model.validate()?;
        self.train.validate()?;
        if self.eval_batches == 0 {
            return Err(crate::Failure::BadInput("--eval-batches must be at least 1 (got 0)".into()));
        }
        if self.precisions.is_empty() {
            return Err(crate::Failure::BadInput("no precision mode chosen: give at least one".into()));
        }
        Ok(())
    }

    /// A preset's model (with this vocabulary) and schedule, and the defaults for the rest.
    pub fn from_preset(preset: &Preset, vocab: u32) -> TrainSpec {
        TrainSpec {
            preset: preset.name.to_string(),
            model: ModelConfig::from_preset(preset, vocab),
            train: preset.train,
            precisions: DEFAULT_PRECISIONS.to_vec(),
            seed: DEFAULT_SEED,
            eval_every: DEFAULT_EVAL_EVERY,
            eval_batches: DEFAULT_EVAL_BATCHES,
            measure_fidelity: true,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RunStatus {
    Running,
    Done,
    /// ended by the user before its last step
    Stopped,
    /// a non-finite loss or gradient norm at this step
    Diverged(u32),
}

impl RunStatus {
    pub fn name(&self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Done => "done",
            RunStatus::Stopped => "stopped",
            RunStatus::Diverged(_) => "diverged",
        }
    }
}

/// What may change when runs are resumed (each `None` keeps the checkpoint's value).
#[derive(Clone, Copy, Debug, Default)]
pub struct ResumeChanges {
    pub steps: Option<u32>,
    pub lr: Option<f32>,
    pub warmup: Option<u32>,
    pub eval_every: Option<u32>,
    pub eval_batches: Option<u32>,
    /// --no-fidelity: the resumed runs do not measure their updates' fidelity
    pub skip_fidelity: bool,
}

/// One line of metrics.jsonl.
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq)]
pub struct Metric {
    pub run: String,
    /// updates completed
    pub step: u32,
    pub tokens: u64,
    pub elapsed_s: f64,
    pub lr: f32,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub train_loss: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub val_loss: Option<f32>,
    /// the validation loss in bits per byte of text (comparable across tokenizers)
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub val_bits_per_byte: Option<f32>,
    pub tokens_per_s: f64,
    /// GPU seconds the run has trained so far, over all its sessions (timestamp queries,
    /// else its share of wall time)
    #[serde(default)]
    pub gpu_s: f64,
    /// train lines: how much of this step's intended weight change landed (see
    /// `kernels::adamw::Fidelity`)
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub update_ratio: Option<f32>,
    /// train lines: the share of the moving weights that this step left unchanged
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub lost_fraction: Option<f32>,
}

pub struct Trainer {
    pub spec: TrainSpec,
    pub corpus: Corpus,
    pub runs: Vec<Run>,
    /// index of the next update
    pub step: u32,
    /// wall time of earlier sessions of this run (from a checkpoint)
    pub elapsed_before_s: f64,
    /// the validation loss that counts as reached in the summary (else 1.01 x fp32's final)
    pub target_loss: Option<f32>,
    started: web_time::Instant,
    last_collect: web_time::Instant,
    val: Vec<Batch>,
    /// bytes of text per validation target token (1 for the byte tokenizer)
    pub val_bytes_per_token: f64,
    start_step: u32,
    /// lines read back outside `step()` (e.g. while checkpointing), handed out next
    pending: Vec<Metric>,
    /// most dispatches per submission: small when a renderer shares the queue (see
    /// [`Trainer::share_queue_with_renderer`]), unlimited otherwise
    chunk: usize,
    /// the evaluation before the first update has been submitted
    initial_eval_submitted: bool,
    /// wall seconds this session spent measuring deferred kernel choices
    tuning_s: f64,
    /// how much of the training time deferred measurements may take ([`TUNING_SHARE`])
    pub tuning_share: f64,
}

/// A run of each of `precisions` from `init`, built side by side on native threads: on a
/// driver that compiles pipelines as they are created (lavapipe, SwiftShader) the modes'
/// pipelines then compile on every core before the first step.
fn new_runs(gpu: &Gpu, spec: &TrainSpec, precisions: &[Precision], init: &[f32]) -> Result<Vec<Run>> {
    #[cfg(not(target_arch = "wasm32"))]
    return std::thread::scope(|scope| {
        let building: Vec<_> = precisions.iter().map(|&p| scope.spawn(move || Run::new(gpu, spec, p, init))).collect();
        building.into_iter().map(|b| b.join().expect("a run's build thread panicked")).collect()
    });
    #[cfg(target_arch = "wasm32")]
    precisions.iter().map(|&p| Run::new(gpu, spec, p, init)).collect()
}

/// Deferred kernel measurements may take this share of the training time (a fifth of the
/// wall time) until every choice is measured.
const TUNING_SHARE: f64 = 0.25;

impl Trainer {
    /// A fresh run of every mode in `spec`, all from the same RTN-rounded initial weights.
    pub fn new(gpu: &Gpu, corpus: Corpus, spec: TrainSpec) -> Result<Trainer> {
        let init = ParamLayout::new(&spec.model).init(spec.seed);
        Trainer::from_weights(gpu, corpus, spec, &init)
    }

    /// A fresh run of every mode in `spec` from `weights` (srgpt's layout, f32; `train
    /// --init`), rounded to bf16 (RTN) as fresh weights are, so every mode starts from the
    /// same point; optimizer state at zero.
    pub fn from_weights(gpu: &Gpu, corpus: Corpus, spec: TrainSpec, weights: &[f32]) -> Result<Trainer> {
        spec.validate()?;
        corpus.check_context(spec.model.ctx)?;
        if weights.len() != ParamLayout::new(&spec.model).total {
            return Err(crate::Failure::BadInput(format!("{} weights for a model of {}", weights.len(), spec.model.num_params())).into());
        }
        let init: Vec<f32> = weights.iter().map(|&x| Store::Bf16.round_rtn(x)).collect();
        let runs = new_runs(gpu, &spec, &spec.precisions, &init)?;
        Ok(Trainer::assemble(corpus, spec, runs, 0, 0.0))
    }

    /// Continues the runs saved in `checkpoints` (same configuration and step), with the
    /// settings that may change on resume changed as `changes` says.
    pub fn resume(gpu: &Gpu, corpus: Corpus, checkpoints: Vec<Checkpoint>, changes: &ResumeChanges) -> Result<Trainer> {
        let first = checkpoints.first().ok_or_else(|| crate::Failure::BadInput("nothing to resume".into()))?;
        let mut state = first.state.clone();
        if corpus.tokenizer != first.tokenizer {
            return Err(crate::Failure::BadInput(format!(
                "corpus {} ({:?}) has a different vocabulary from the checkpoint's (corpus {}, {:?})",
                corpus.source, corpus.tokenizer, state.corpus, first.tokenizer
            ))
            .into());
        }
        for c in &checkpoints[1..] {
            let same = RunState { precision: state.precision.clone(), tokens: state.tokens, elapsed_s: state.elapsed_s, ..c.state.clone() }
                == state;
            if !same {
                return Err(crate::Failure::BadInput("the checkpoints to resume differ in configuration or step".into()).into());
            }
        }
        if let Some(s) = changes.steps {
            if s < state.step {
                return Err(crate::Failure::BadInput(format!("--steps {s} is below the checkpoint's step {}", state.step)).into());
            }
            state.train.steps = s;
        }
        state.train.lr = changes.lr.unwrap_or(state.train.lr);
        state.train.warmup = changes.warmup.unwrap_or(state.train.warmup);
        let spec = TrainSpec {
            preset: state.preset.clone(),
            model: state.model,
            train: state.train,
            precisions: checkpoints.iter().map(|c| c.precision).collect(),
            seed: state.seed,
            eval_every: changes.eval_every.unwrap_or(state.eval_every),
            eval_batches: changes.eval_batches.unwrap_or(state.eval_batches),
            measure_fidelity: !changes.skip_fidelity,
        };
        spec.train.validate()?;
        corpus.check_context(spec.model.ctx)?;
        let already_done = state.step >= spec.train.steps;
        let placeholder = vec![0.0; ParamLayout::new(&spec.model).total];
        let precisions: Vec<Precision> = checkpoints.iter().map(|c| c.precision).collect();
        let mut runs = new_runs(gpu, &spec, &precisions, &placeholder)?;
        for (run, c) in runs.iter_mut().zip(&checkpoints) {
            run.model.write_raw(gpu, &c.raw)?;
            run.tokens = c.state.tokens;
            run.tokens_before = c.state.tokens;
            if already_done {
                run.status = RunStatus::Done;
            }
        }
        Ok(Trainer::assemble(corpus, spec, runs, state.step, state.elapsed_s))
    }

    /// The step the trainer started this session at (0, or a resumed checkpoint's).
    pub fn start_step(&self) -> u32 {
        self.start_step
    }

    /// The latest step whose losses have come back (what a progress line can report).
    pub fn reported_step(&self) -> u32 {
        self.runs.iter().map(|r| r.train_loss_step).max().unwrap_or(0).max(self.start_step)
    }

    /// Ends every live run as stopped by the user (after the steps in flight are flushed).
    pub fn mark_stopped(&mut self) {
        for run in self.runs.iter_mut().filter(|r| r.status == RunStatus::Running) {
            run.status = if self.step >= self.spec.train.steps { RunStatus::Done } else { RunStatus::Stopped };
        }
    }

    fn assemble(corpus: Corpus, spec: TrainSpec, runs: Vec<Run>, step: u32, elapsed_before_s: f64) -> Trainer {
        let val = val_batches(&corpus, spec.train.batch, spec.model.ctx, spec.seed, spec.eval_batches);
        let val_tokens: usize = val.iter().map(|b| b.targets.len()).sum();
        let val_bytes: usize = val.iter().map(|b| corpus.decode(&b.targets).len()).sum();
        let val_bytes_per_token = val_bytes as f64 / val_tokens.max(1) as f64;
        let now = web_time::Instant::now();
        Trainer {
            spec,
            corpus,
            runs,
            step,
            elapsed_before_s,
            target_loss: None,
            started: now,
            last_collect: now,
            val,
            val_bytes_per_token,
            start_step: step,
            pending: Vec::new(),
            chunk: usize::MAX,
            initial_eval_submitted: step > 0,
            tuning_s: 0.0,
            tuning_share: TUNING_SHARE,
        }
    }

    /// Submits each step in small pieces, one after the other finishes, so frames drawn on
    /// the same queue wait for at most one piece (a few ms) instead of a whole step.
    pub fn share_queue_with_renderer(&mut self, dispatches_per_submission: usize) {
        self.chunk = dispatches_per_submission.max(1);
    }

    pub fn finished(&self) -> bool {
        self.step >= self.spec.train.steps || self.runs.iter().all(|r| r.status != RunStatus::Running)
    }

    pub fn elapsed_s(&self) -> f64 {
        self.elapsed_before_s + self.started.elapsed().as_secs_f64()
    }

    fn tokens_per_step(&self) -> u64 {
        self.spec.train.batch as u64 * self.spec.model.ctx as u64
    }

    fn eval_due_after(&self, s: u32) -> bool {
        let k = s + 1;
        k == self.spec.train.steps || (self.spec.eval_every > 0 && k.is_multiple_of(self.spec.eval_every))
    }

    /// Runs one update of every live run, waiting for the GPU where it must; returns the
    /// metric lines that completed.
    pub fn step(&mut self, gpu: &Gpu) -> Result<Vec<Metric>> {
        let mut out = std::mem::take(&mut self.pending);
        if !self.initial_eval_submitted {
            out.extend(self.evaluate(gpu)?);
        }
        if self.finished() {
            return Ok(out);
        }
        self.tune_in_background(gpu)?;
        let s = self.step;
        self.submit_step(gpu, s)?;
        if s > self.start_step {
            out.extend(self.collect(gpu, s - 1, true)?);
        }
        if self.eval_due_after(s) {
            out.extend(self.collect(gpu, s, true)?);
            let evals = self.evaluate(gpu)?;
            merge_evals(&mut out, evals);
        }
        if self.step >= self.spec.train.steps {
            out.extend(self.collect(gpu, s, true)?);
            self.mark_done();
        }
        gpu.check_errors(&format!("training step {}", s + 1))?;
        Ok(out)
    }

    /// The frame-loop form of [`Trainer::step`]: never waits for the GPU. Hands out the lines
    /// of the steps and evaluations that have finished since the last call, and submits the
    /// next update when every live run has a free readback slot (so at most two steps are
    /// in flight).
    pub fn advance(&mut self, gpu: &Gpu) -> Result<Vec<Metric>> {
        let out = self.collect_finished(gpu)?;
        if !self.initial_eval_submitted {
            self.submit_evals(gpu)?;
        } else if !self.finished() && self.can_submit(self.step) {
            let s = self.step;
            self.submit_step(gpu, s)?;
            if self.eval_due_after(s) {
                self.submit_evals(gpu)?;
            }
        }
        if self.step >= self.spec.train.steps && self.idle() {
            self.mark_done();
        }
        gpu.check_errors(&format!("training step {}", self.step))?;
        Ok(out)
    }

    /// Writes the pipeline cache when pipelines were compiled since (see
    /// [`crate::gpu::pipeline_cache`]), then makes one measurement the tuner deferred (see
    /// [`crate::gpu::tune`]) once a step has run and while measuring has had less than its share of the time, and builds every
    /// run's dispatches again when it found a better choice. A choice never changes a bit,
    /// so the runs go on exactly as they would have.
    fn tune_in_background(&mut self, gpu: &Gpu) -> Result<()> {
        if self.step == self.start_step {
            return Ok(());
        }
        let started = web_time::Instant::now();
        // the pipelines compiled so far, for the next launch (only when new ones were)
        gpu.keep_pipelines();
        let training_s = self.started.elapsed().as_secs_f64() - self.tuning_s;
        if self.tuning_s > self.tuning_share * training_s {
            self.tuning_s += started.elapsed().as_secs_f64();
            return Ok(());
        }
        if gpu.measure_deferred()? == Some(true) {
            self.rebuild_dispatches(gpu)?;
        }
        self.tuning_s += started.elapsed().as_secs_f64();
        Ok(())
    }

    /// Builds every run's dispatches again with the kernel choices known now (between steps).
    pub fn rebuild_dispatches(&mut self, gpu: &Gpu) -> Result<()> {
        for run in &mut self.runs {
            run.model.rebuild_dispatches(gpu)?;
        }
        Ok(())
    }

    /// The lines of the steps and evaluations that have finished, without waiting or
    /// submitting anything.
    pub fn collect_finished(&mut self, gpu: &Gpu) -> Result<Vec<Metric>> {
        gpu.poll();
        let mut out = std::mem::take(&mut self.pending);
        for s in self.step.saturating_sub(2)..self.step {
            out.extend(self.collect(gpu, s, false)?);
        }
        out.extend(self.collect_evals(gpu, false)?);
        Ok(out)
    }

    /// Whether step `s` can be submitted without waiting: its readback slot is free in every
    /// live run, and so is the evaluation readback if an evaluation follows it.
    fn can_submit(&self, s: u32) -> bool {
        let eval = self.eval_due_after(s);
        self.runs
            .iter()
            .filter(|r| r.status == RunStatus::Running)
            .all(|r| r.readbacks[(s % 2) as usize].pending().is_none() && !(eval && r.eval_readback.pending().is_some()))
    }

    /// No step or evaluation of any run is still on its way back.
    pub fn idle(&self) -> bool {
        self.runs.iter().all(|r| r.readbacks.iter().all(|b| b.pending().is_none()) && r.eval_readback.pending().is_none())
    }

    fn mark_done(&mut self) {
        for run in self.runs.iter_mut().filter(|r| r.status == RunStatus::Running) {
            run.status = RunStatus::Done;
        }
    }

    /// Submits update `s` of every live run.
    fn submit_step(&mut self, gpu: &Gpu, s: u32) -> Result<()> {
        let batch = train_batch(&self.corpus, self.spec.train.batch, self.spec.model.ctx, self.spec.seed, s);
        let lr = self.spec.train.lr_at(s);
        for run in self.runs.iter_mut().filter(|r| r.status == RunStatus::Running) {
            run.submit_step(gpu, &batch, lr, s, self.spec.seed as u32, self.chunk)?;
        }
        self.step = s + 1;
        Ok(())
    }

    /// Reads back step `s` of every run that submitted it; with `wait`, waits for it, else
    /// only from the runs whose step has finished.
    fn collect(&mut self, gpu: &Gpu, s: u32, wait: bool) -> Result<Vec<Metric>> {
        let mut out = Vec::new();
        let live = self.runs.iter().filter(|r| r.readbacks.iter().any(|b| b.pending().is_some_and(|(step, _)| step == s))).count().max(1);
        let wall_share = self.last_collect.elapsed().as_secs_f64() / live as f64;
        let elapsed_s = self.elapsed_s();
        let tokens = self.tokens_per_step();
        let mut any = false;
        for run in &mut self.runs {
            let Some((stats, gpu_seconds, lr)) = run.read_step(gpu, s, wait)? else {
                continue;
            };
            any = true;
            let seconds = gpu_seconds.unwrap_or(wall_share).max(1e-9);
            run.busy_s += seconds;
            run.tokens += tokens;
            run.tokens_per_s = tokens as f64 / seconds;
            let (loss, sumsq) = (stats[STAT_TRAIN_LOSS], stats[STAT_GRAD_SUMSQ]);
            let fidelity = Fidelity::from_sums(&stats[STAT_FIDELITY..STAT_FIDELITY + 4]);
            run.train_loss = Some(loss);
            run.train_loss_step = s + 1;
            if !(loss.is_finite() && sumsq.is_finite()) && run.status == RunStatus::Running {
                run.status = RunStatus::Diverged(s + 1);
                run.message =
                    Some(format!("run {} diverged at step {}: train loss {loss}, gradient norm {}", run.precision, s + 1, sumsq.sqrt()));
            }
            out.push(run.remember(Metric {
                run: run.precision.name().into(),
                step: s + 1,
                tokens: run.tokens,
                elapsed_s,
                lr,
                train_loss: Some(loss),
                val_loss: None,
                val_bits_per_byte: None,
                tokens_per_s: run.tokens_per_s,
                gpu_s: run.busy_before_s + run.busy_s,
                update_ratio: fidelity.update_ratio().map(|r| r as f32),
                lost_fraction: fidelity.lost_fraction().map(|r| r as f32),
            }));
        }
        if any {
            self.last_collect = web_time::Instant::now();
        }
        Ok(out)
    }

    /// Takes in the runs' metric lines from earlier sessions (a resumed run's metrics), for
    /// the summary's late means and time to target.
    pub fn recall(&mut self, earlier: &[Metric]) {
        for run in &mut self.runs {
            run.recall(earlier.iter().cloned());
        }
    }

    /// Mean loss over the fixed validation batches for every live run, at the current step
    /// (waits for the GPU).
    pub fn evaluate(&mut self, gpu: &Gpu) -> Result<Vec<Metric>> {
        self.submit_evals(gpu)?;
        self.collect_evals(gpu, true)
    }

    /// Submits the evaluation of every live run at the current step.
    fn submit_evals(&mut self, gpu: &Gpu) -> Result<()> {
        self.initial_eval_submitted = true;
        let lr = if self.step == 0 { 0.0 } else { self.spec.train.lr_at(self.step - 1) };
        for run in self.runs.iter_mut().filter(|r| r.status == RunStatus::Running) {
            run.submit_eval(gpu, &self.val, self.step, lr, self.chunk)?;
        }
        Ok(())
    }

    /// The evaluations that have come back (with `wait`, every submitted one).
    fn collect_evals(&mut self, gpu: &Gpu, wait: bool) -> Result<Vec<Metric>> {
        let mut out = Vec::new();
        let elapsed_s = self.elapsed_s();
        let bytes_per_token = self.val_bytes_per_token;
        let tokens_per_step = self.tokens_per_step();
        for run in &mut self.runs {
            let Some((step, lr, mean)) = run.read_eval(gpu, wait)? else {
                continue;
            };
            run.val_loss = Some(mean);
            run.val_loss_step = step;
            out.push(run.remember(Metric {
                run: run.precision.name().into(),
                step,
                // the tokens at the evaluated step, not those trained by the time it is read
                tokens: step as u64 * tokens_per_step,
                elapsed_s,
                lr,
                train_loss: None,
                val_loss: Some(mean),
                val_bits_per_byte: Some((mean as f64 / std::f64::consts::LN_2 / bytes_per_token) as f32),
                tokens_per_s: run.tokens_per_s,
                gpu_s: run.busy_before_s + run.busy_s,
                update_ratio: None,
                lost_fraction: None,
            }));
        }
        Ok(out)
    }

    /// A validation loss (nats per token) in bits per byte of the validation text.
    pub fn bits_per_byte(&self, val_loss: f32) -> f64 {
        val_loss as f64 / std::f64::consts::LN_2 / self.val_bytes_per_token
    }

    /// The state a checkpoint of `run` records.
    pub fn run_state(&self, run: &Run) -> RunState {
        RunState {
            precision: run.precision.name().into(),
            preset: self.spec.preset.clone(),
            model: self.spec.model,
            train: self.spec.train,
            step: self.step,
            seed: self.spec.seed,
            tokens: run.tokens,
            elapsed_s: self.elapsed_s(),
            corpus: self.corpus.source.clone(),
            eval_every: self.spec.eval_every,
            eval_batches: self.spec.eval_batches,
        }
    }

    /// Waits for the last submitted step and returns every line not handed out yet.
    pub fn flush(&mut self, gpu: &Gpu) -> Result<Vec<Metric>> {
        if self.step > self.start_step {
            let lines = self.collect(gpu, self.step - 1, true)?;
            self.pending.extend(lines);
        }
        Ok(std::mem::take(&mut self.pending))
    }

    /// Writes `DIR/<precision>.safetensors` for every run that has not diverged (a diverged
    /// run keeps its last good checkpoint). Waits for the GPU first; the lines read back
    /// meanwhile come out of the next `step()` or `flush()`.
    pub fn save_checkpoints(&mut self, gpu: &Gpu, dir: &Path) -> Result<Vec<PathBuf>> {
        let lines = self.flush(gpu)?;
        self.pending = lines;
        let mut written = Vec::new();
        for run in self.runs.iter().filter(|r| !matches!(r.status, RunStatus::Diverged(_))) {
            let path = dir.join(format!("{}.safetensors", run.precision.name()));
            let raw = run.model.read_raw(gpu)?;
            checkpoint::save(&path, &self.run_state(run), run.precision, &self.corpus.tokenizer, &raw)?;
            written.push(path);
        }
        Ok(written)
    }
}

/// The metrics file of `path`: a run's folder (its metrics.jsonl) or the file itself.
pub fn metrics_path(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join("metrics.jsonl")
    } else {
        path.to_path_buf()
    }
}

/// Reads a metrics.jsonl; a malformed line is an error naming the file and line.
pub fn read_metrics(path: &Path) -> Result<Vec<Metric>> {
    let text =
        std::fs::read_to_string(path).map_err(|e| crate::Failure::BadInput(format!("cannot read metrics {}: {e}", path.display())))?;
    parse_metrics(&text, &path.display().to_string())
}

/// Parses the text of a metrics.jsonl called `name`.
pub fn parse_metrics(text: &str, name: &str) -> Result<Vec<Metric>> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| crate::Failure::BadInput(format!("{} line {}: not a metrics line ({e})", name, i + 1)).into())
        })
        .collect()
}

/// Puts each evaluation's val_loss on the train line of the same run and step, or appends it.
fn merge_evals(lines: &mut Vec<Metric>, evals: Vec<Metric>) {
    for e in evals {
        match lines.iter_mut().find(|l| l.run == e.run && l.step == e.step) {
            Some(line) => (line.val_loss, line.val_bits_per_byte) = (e.val_loss, e.val_bits_per_byte),
            None => lines.push(e),
        }
    }
}
