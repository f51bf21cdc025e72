//! One precision mode's run inside the trainer: its model, the readbacks of its steps and
//! evaluations (two steps in flight), and its GPU timestamps.

use anyhow::Result;

use super::{Metric, RunStatus, TrainSpec};
use crate::data::Batch;
use crate::gpu::readback::Readback;
use crate::gpu::timing::{intervals, Timestamps};
use crate::gpu::Gpu;
use crate::model::gpt::{GptGpu, STATS_LEN, STAT_EVAL_LOSS};
use crate::precision::Precision;

/// One step's stats, its GPU seconds (with timestamp queries) and its learning rate.
pub(super) type StepReadback = ([f32; STATS_LEN], Option<f64>, f32);

/// The stats of a step, then its two GPU timestamps.
const READBACK_BYTES: u64 = (STATS_LEN * 4 + 16) as u64;

pub struct Run {
    pub precision: Precision,
    pub model: GptGpu,
    pub status: RunStatus,
    pub train_loss: Option<f32>,
    /// the step `train_loss` was measured at
    pub train_loss_step: u32,
    pub val_loss: Option<f32>,
    /// the step `val_loss` was measured at
    pub val_loss_step: u32,
    pub tokens: u64,
    /// tokens already trained when this session of the run began (from its checkpoint)
    pub tokens_before: u64,
    /// seconds this session's steps took (GPU timestamps, else its share of wall time)
    pub busy_s: f64,
    /// GPU seconds of the run's earlier sessions (from its metrics)
    pub busy_before_s: f64,
    pub tokens_per_s: f64,
    /// what the summary needs of the run's metric lines, earlier sessions' included
    pub history: History,
    pub message: Option<String>,
    /// two steps in flight: (step, lr) -> stats and timestamps
    pub(super) readbacks: [Readback<(u32, f32)>; 2],
    /// eval_batches f32: the loss of each validation batch
    pub(super) eval_losses: wgpu::Buffer,
    /// (step evaluated, lr of its update) -> eval_losses
    pub(super) eval_readback: Readback<(u32, f32)>,
    pub(super) timestamps: Option<Timestamps>,
}

impl Run {
    /// Keeps what the summary needs of a metric line and hands the line on.
    pub(super) fn remember(&mut self, line: Metric) -> Metric {
        self.history.take(&line);
        line
    }

    /// Takes in the run's lines from earlier sessions (a resumed run's metrics.jsonl), before
    /// this session's.
    pub fn recall(&mut self, earlier: impl IntoIterator<Item = Metric>) {
        let mut history = History::new(self.history.fidelity_capacity);
        for line in earlier.into_iter().filter(|m| m.run == self.precision.name()) {
            self.busy_before_s = self.busy_before_s.max(line.gpu_s);
            history.take(&line);
        }
        history.absorb(std::mem::replace(&mut self.history, History::new(0)));
        self.history = history;
    }
}

/// An evaluation, for the time to target.
#[derive(Clone, Copy, Debug)]
pub struct EvalPoint {
    pub step: u32,
    pub tokens: u64,
    pub elapsed_s: f64,
    pub val_loss: f32,
    /// GPU seconds once the update of `step` was done (from its train line, which can come
    /// back after the evaluation's)
    pub gpu_s: Option<f64>,
}

/// What the summary needs of a run's lines, in bounded memory: the fidelity of the last
/// tenth of the planned steps (the summary's late means), every evaluation (one per
/// eval_every steps), and the GPU seconds of the latest steps.
pub struct History {
    /// (step, update_ratio, lost_fraction), at most `fidelity_capacity` of the latest
    pub fidelity: std::collections::VecDeque<(u32, f32, f32)>,
    fidelity_capacity: usize,
    pub evals: Vec<EvalPoint>,
    /// (step, gpu_s) of the latest train lines, to complete an evaluation read back first
    recent_gpu_s: std::collections::VecDeque<(u32, f64)>,
}

impl History {
    /// For a run of `steps` updates: its last tenth (and one) are kept for the late means.
    pub fn for_steps(steps: u32) -> History {
        History::new(steps as usize / 10 + 1)
    }

    fn new(fidelity_capacity: usize) -> History {
        History { fidelity: Default::default(), fidelity_capacity, evals: Vec::new(), recent_gpu_s: Default::default() }
    }

    fn take(&mut self, line: &Metric) {
        if line.train_loss.is_some() {
            if let (Some(r), Some(l)) = (line.update_ratio, line.lost_fraction) {
                if self.fidelity.len() == self.fidelity_capacity {
                    self.fidelity.pop_front();
                }
                if self.fidelity_capacity > 0 {
                    self.fidelity.push_back((line.step, r, l));
                }
            }
            if let Some(e) = self.evals.iter_mut().rev().take(4).find(|e| e.step == line.step && e.gpu_s.is_none()) {
                e.gpu_s = Some(line.gpu_s);
            }
            if self.recent_gpu_s.len() == 8 {
                self.recent_gpu_s.pop_front();
            }
            self.recent_gpu_s.push_back((line.step, line.gpu_s));
        }
        if let Some(val_loss) = line.val_loss {
            let gpu_s = self.recent_gpu_s.iter().find(|(s, _)| *s == line.step).map(|&(_, g)| g);
            let step0 = (line.step == 0).then_some(0.0);
            let point = EvalPoint { step: line.step, tokens: line.tokens, elapsed_s: line.elapsed_s, val_loss, gpu_s: gpu_s.or(step0) };
            self.evals.push(point);
        }
    }

    /// Appends a later history (this session's lines after the earlier sessions').
    fn absorb(&mut self, later: History) {
        for f in later.fidelity {
            if self.fidelity.len() == self.fidelity_capacity {
                self.fidelity.pop_front();
            }
            self.fidelity.push_back(f);
        }
        self.evals.extend(later.evals);
        self.recent_gpu_s.extend(later.recent_gpu_s);
    }
}

/// Submits command buffers in order; between pieces, waits for the previous one so other
/// users of the queue (a renderer) get their turn.
pub(super) fn submit_in_turn(gpu: &Gpu, encoders: Vec<wgpu::CommandEncoder>) -> Result<()> {
    let n = encoders.len();
    for (i, encoder) in encoders.into_iter().enumerate() {
        gpu.queue.submit([encoder.finish()]);
        if i + 1 < n {
            // waits for the latest submission, whichever thread made it (a submission index
            // can race with another thread's submissions in wgpu's bookkeeping)
            gpu.wait_for_submissions("training")?;
        }
    }
    Ok(())
}

impl Run {
    pub(super) fn new(gpu: &Gpu, spec: &TrainSpec, precision: Precision, init: &[f32]) -> Result<Run> {
        let model = GptGpu::for_training(gpu, spec.model, &spec.train, precision, init, spec.measure_fidelity)?;
        // one loss per validation micro-batch
        let eval_bytes = (spec.eval_batches * spec.train.grad_accum * 4) as u64;
        let readback = || Readback::new(gpu, "step readback", READBACK_BYTES);
        let timestamps = Timestamps::new(gpu, "step time", 1);
        Ok(Run {
            precision,
            model,
            status: RunStatus::Running,
            train_loss: None,
            train_loss_step: 0,
            val_loss: None,
            val_loss_step: 0,
            tokens: 0,
            tokens_before: 0,
            busy_s: 0.0,
            busy_before_s: 0.0,
            history: History::for_steps(spec.train.steps),
            tokens_per_s: 0.0,
            message: None,
            readbacks: [readback(), readback()],
            eval_losses: gpu.storage_buffer("eval losses", eval_bytes)?,
            eval_readback: Readback::new(gpu, "eval readback", eval_bytes),
            timestamps,
        })
    }

    pub(super) fn submit_step(&mut self, gpu: &Gpu, batch: &Batch, lr: f32, s: u32, seed: u32, chunk: usize) -> Result<()> {
        let slot = (s % 2) as usize;
        if let Some((pending, _)) = self.readbacks[slot].pending() {
            self.read_step(gpu, pending, true)?;
        }
        let micro_batches = batch.split(self.model.micro_batches);
        let timestamps = self.timestamps.as_ref().map(|t| &t.set);
        let rb = &mut self.readbacks[slot];
        for (i, micro_batch) in micro_batches.iter().enumerate() {
            // the upload lands before the next submission, after the previous micro-batch's
            self.model.upload_batch(gpu, micro_batch);
            let mut encoders = self.model.micro_step_encoders(gpu, i as u32, lr, s, seed, timestamps, chunk);
            if i + 1 == micro_batches.len() {
                let last = encoders.last_mut().expect("a step has dispatches");
                last.copy_buffer_to_buffer(&self.model.stats, 0, &rb.buffer, 0, (STATS_LEN * 4) as u64);
                if let Some(t) = &self.timestamps {
                    t.resolve(last);
                    last.copy_buffer_to_buffer(&t.resolve, 0, &rb.buffer, (STATS_LEN * 4) as u64, 16);
                }
            }
            submit_in_turn(gpu, encoders)?;
        }
        rb.request((s, lr));
        Ok(())
    }

    /// The stats, GPU seconds and lr of step `s` if this run submitted it and has not read it
    /// yet, and it has finished (with `wait`, waits for it to finish).
    pub(super) fn read_step(&mut self, gpu: &Gpu, s: u32, wait: bool) -> Result<Option<StepReadback>> {
        let Some(rb) = self.readbacks.iter_mut().find(|b| b.pending().is_some_and(|(step, _)| step == s)) else {
            return Ok(None);
        };
        let Some(((_, lr), bytes)) = rb.take(gpu, wait, &format!("step {} of run {}", s + 1, self.precision))? else {
            return Ok(None);
        };
        let floats: &[f32] = bytemuck::cast_slice(&bytes[..STATS_LEN * 4]);
        let stats = std::array::from_fn(|i| floats[i]);
        let seconds = self.timestamps.as_ref().map(|_| intervals(gpu, &bytes[STATS_LEN * 4..])[0]);
        Ok(Some((stats, seconds, lr)))
    }

    /// Submits the forward pass over every validation batch (micro-batch by micro-batch), the
    /// losses going to `eval_readback` (the evaluation of step `step`, after the update with
    /// `lr`).
    pub(super) fn submit_eval(&mut self, gpu: &Gpu, val: &[Batch], step: u32, lr: f32, chunk: usize) -> Result<()> {
        if self.eval_readback.pending().is_some() {
            self.read_eval(gpu, true)?;
        }
        let val: Vec<Batch> = val.iter().flat_map(|b| b.split(self.model.micro_batches)).collect();
        for (e, batch) in val.iter().enumerate() {
            self.model.upload_batch(gpu, batch);
            let mut encoders = self.model.eval_encoders(gpu, chunk);
            let last = encoders.last_mut().expect("a forward has dispatches");
            last.copy_buffer_to_buffer(&self.model.stats, (STAT_EVAL_LOSS * 4) as u64, &self.eval_losses, e as u64 * 4, 4);
            if e + 1 == val.len() {
                last.copy_buffer_to_buffer(&self.eval_losses, 0, &self.eval_readback.buffer, 0, val.len() as u64 * 4);
            }
            submit_in_turn(gpu, encoders)?;
        }
        self.eval_readback.request((step, lr));
        Ok(())
    }

    /// (step, lr, mean validation loss) of the submitted evaluation once it has finished
    /// (with `wait`, waits for it).
    pub(super) fn read_eval(&mut self, gpu: &Gpu, wait: bool) -> Result<Option<(u32, f32, f32)>> {
        let doing = format!("evaluating run {}", self.precision);
        let Some(((step, lr), bytes)) = self.eval_readback.take(gpu, wait, &doing)? else {
            return Ok(None);
        };
        let losses: &[f32] = bytemuck::cast_slice(&bytes);
        let mean = (losses.iter().map(|&l| l as f64).sum::<f64>() / losses.len().max(1) as f64) as f32;
        Ok(Some((step, lr, mean)))
    }
}
