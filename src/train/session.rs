//! The one training driver: the trainer, its output folder (metrics, checkpoints on
//! schedule, the summary at the end), stop and finish, and the periodic samples, advanced by
//! `tick`. `srgpt train --headless` ticks it in a loop; the native dashboard on a worker
//! thread, where `tick` may wait for the GPU; the browser once per frame, where `tick` never
//! waits and picks up results on later frames. All three get the same metric lines.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;

use crate::data::Corpus;
use crate::gpu::Gpu;
use crate::sample::{Generation, SampleOptions, Sampler};
use crate::train::checkpoint::Checkpoint;
use crate::train::output::{CheckpointClock, CheckpointPolicy, RunOutput, Summary};
use crate::train::{Metric, ResumeChanges, RunStatus, TrainSpec, Trainer};

/// What a session's driver (the dashboard, the command line) learns from it.
#[derive(Clone, Debug)]
pub enum Event {
    /// the runs exist: (mode, training-state MiB, bytes per parameter)
    Started {
        runs: Vec<(String, f64, f64)>,
        out_dir: String,
    },
    Metrics(Vec<Metric>),
    Status(Vec<(String, String)>),
    Sample {
        run: String,
        step: u32,
        text: String,
    },
    /// checkpoints written after update `step`
    Saved {
        step: u32,
        paths: Vec<String>,
    },
    /// something a run has to say (why it diverged), once
    Note(String),
    Error(String),
    Done,
}

/// Pieces small enough (a few ms each on a CPU adapter) to keep 30+ frames per second.
const DISPATCHES_PER_SUBMISSION: usize = 1;

/// How the session shares the GPU, if it does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Driving {
    /// alone (the command line): `tick` waits for the GPU and submits whole steps
    Headless,
    /// on its own thread beside a renderer: `tick` waits for the GPU, steps go in small
    /// submissions between which the renderer's frames slip in
    WorkerThread,
    /// between frames on the renderer's thread (a browser): `tick` never waits
    FrameLoop,
}

/// Where and how often a session writes, and how often it samples.
#[derive(Clone)]
pub struct SessionOptions {
    /// the run's folder (`None`: write nothing, as in a browser); refused if it holds a run
    pub out_dir: Option<PathBuf>,
    /// text from each run every N steps (0: never)
    pub sample_every: u32,
    /// how often checkpoints are written to `out_dir`, or snapshots handed to `keep`
    pub checkpoints: CheckpointPolicy,
    /// where a session without a folder keeps its snapshots (a browser: its origin-private
    /// file system), taken on the frame loop as often as `checkpoints` says and at the end
    pub keep: Option<KeepSnapshot>,
}

/// A session's state at one step: every run's checkpoint (the bytes `srgpt train` writes)
/// and the metric lines up to that step.
#[derive(Clone, Debug)]
pub struct SavedSession {
    pub step: u32,
    /// (file name, bytes): `<precision>.safetensors` per run, then `metrics.jsonl`
    pub files: Vec<(String, Vec<u8>)>,
}

/// What receives a session's snapshots (called from a GPU map callback).
pub type KeepSnapshot = Arc<dyn Fn(Result<SavedSession, String>) + Send + Sync>;

/// The text of one run being generated.
struct PendingSample {
    run: usize,
    step: u32,
    generation: Generation,
}

pub struct Session {
    pub trainer: Trainer,
    output: Option<RunOutput>,
    checkpoint_clock: CheckpointClock,
    keep: Option<KeepSnapshot>,
    /// the step of the latest snapshot handed to `keep`, and whether one is due
    kept_step: u32,
    snapshot_due: bool,
    /// every metric line of a session that writes no folder (a browser's snapshot saves those
    /// up to its step); a session with a folder has them in its metrics.jsonl
    log: Vec<Metric>,
    /// events to hand out at the next tick
    queued: Vec<Event>,
    sample_every: u32,
    driving: Driving,
    /// one batch-1 model per run, made at the first sample
    samplers: Vec<Option<Sampler>>,
    sampling: Vec<PendingSample>,
    stopping: bool,
    done: bool,
    /// the runs' messages said so far (each is said once)
    noted: Vec<String>,
    /// summary.json as written at the end (a session with a folder)
    pub summary: Option<Summary>,
}

impl Session {
    /// Builds the models (compiling their pipelines) and opens the output folder
    /// (`None`: write nothing, as in a browser).
    pub fn start(gpu: &Gpu, corpus: Corpus, spec: TrainSpec, options: SessionOptions, driving: Driving) -> Result<(Session, Event)> {
        let output = options.out_dir.as_deref().map(RunOutput::create).transpose()?;
        let trainer = Trainer::new(gpu, corpus, spec)?;
        Ok(Session::new(trainer, output, options, driving, Vec::new()))
    }

    /// Continues the runs of `checkpoints` (one session's, at one step), their curves so far
    /// given by `log` (lines past the checkpoints' step are dropped): a saved browser session
    /// after a reload, or downloaded checkpoints. The lines come out of the first `tick`.
    pub fn resume(
        gpu: &Gpu,
        corpus: Corpus,
        checkpoints: Vec<Checkpoint>,
        log: Vec<Metric>,
        options: SessionOptions,
        driving: Driving,
    ) -> Result<(Session, Event)> {
        let output = options.out_dir.as_deref().map(RunOutput::create).transpose()?;
        let mut trainer = Trainer::resume(gpu, corpus, checkpoints, &ResumeChanges::default())?;
        let names: Vec<&str> = trainer.runs.iter().map(|r| r.precision.name()).collect();
        let log: Vec<Metric> = log.into_iter().filter(|l| l.step <= trainer.step && names.contains(&l.run.as_str())).collect();
        trainer.recall(&log);
        Ok(Session::new(trainer, output, options, driving, log))
    }

    /// A session of a trainer made already, writing to `output` (its folder opened, a
    /// resumed run's lines recalled) or nowhere; `log` holds the lines before the trainer's
    /// step, handed out at the first `tick`. `options.out_dir` is not read: `output` is it.
    pub fn new(
        mut trainer: Trainer,
        output: Option<RunOutput>,
        options: SessionOptions,
        driving: Driving,
        log: Vec<Metric>,
    ) -> (Session, Event) {
        if driving == Driving::WorkerThread {
            trainer.share_queue_with_renderer(DISPATCHES_PER_SUBMISSION);
        }
        let runs = trainer
            .runs
            .iter()
            .map(|r| (r.precision.name().to_string(), r.model.memory.training_state() as f64 / 1048576.0, r.model.state_bytes_per_param()))
            .collect();
        let out_dir = output.as_ref().map(|o| o.dir.display().to_string()).unwrap_or_default();
        let started = Event::Started { runs, out_dir };
        let samplers = trainer.runs.iter().map(|_| None).collect();
        let queued = if log.is_empty() { Vec::new() } else { vec![Event::Metrics(log.clone())] };
        let log = if output.is_none() { log } else { Vec::new() };
        let session = Session {
            kept_step: trainer.step,
            trainer,
            output,
            checkpoint_clock: CheckpointClock::new(options.checkpoints),
            keep: options.keep,
            snapshot_due: false,
            log,
            queued,
            sample_every: options.sample_every,
            driving,
            samplers,
            sampling: Vec::new(),
            stopping: false,
            done: false,
            noted: Vec::new(),
            summary: None,
        };
        (session, started)
    }

    /// Where the session keeps its snapshots, if it keeps them.
    pub fn keeper(&self) -> Option<KeepSnapshot> {
        self.keep.clone()
    }

    /// Hands every run's checkpoint at the latest submitted step, and the metric lines up to
    /// it, to `keep` once the GPU has copied them (without waiting). Taken while steps are in
    /// flight, the lines of those steps are not in it yet. Returns the step.
    pub fn snapshot(&self, gpu: &Gpu, keep: KeepSnapshot) -> Result<u32> {
        let step = self.trainer.step;
        let mut metrics = String::new();
        for line in self.log.iter().filter(|l| l.step <= step) {
            metrics.push_str(&serde_json::to_string(line)?);
            metrics.push('\n');
        }
        self.trainer.snapshot(
            gpu,
            Box::new(move |files| {
                keep(files.map(|mut files| {
                    files.push(("metrics.jsonl".into(), metrics.into_bytes()));
                    SavedSession { step, files }
                }))
            }),
        )
    }

    /// On a frame loop that keeps snapshots: when one is due, holds new steps back until
    /// those in flight are back, so the snapshot has every line up to its step.
    fn keep_snapshot_when_due(&mut self, gpu: &Gpu) -> Result<()> {
        let Some(keep) = self.keep.clone() else {
            return Ok(());
        };
        let step = self.trainer.step;
        if step != self.kept_step && self.checkpoint_clock.due(step, self.trainer.spec.train.steps) {
            self.snapshot_due = true;
        }
        if self.snapshot_due && self.trainer.idle() {
            self.kept_step = self.snapshot(gpu, keep)?;
            self.snapshot_due = false;
            self.checkpoint_clock.written();
        }
        Ok(())
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    /// One update of every live run (on a frame loop: whatever finished since the last
    /// frame, and the next update if there is room), with its metric lines, statuses and
    /// any samples due.
    pub fn tick(&mut self, gpu: &Gpu) -> Result<Vec<Event>> {
        if self.done {
            return Ok(Vec::new());
        }
        let wait = self.driving != Driving::FrameLoop;
        if self.stopping || self.trainer.finished() {
            let mut events = std::mem::take(&mut self.queued);
            if wait || (self.trainer.idle() && self.sampling.is_empty()) {
                events.extend(self.finish(gpu)?);
            } else {
                events.extend(self.advance_samples(gpu)?);
                let lines = self.trainer.collect_finished(gpu)?;
                self.take_lines(&lines)?;
                events.push(Event::Metrics(lines));
            }
            return Ok(events);
        }
        let mut events = std::mem::take(&mut self.queued);
        let before = self.trainer.step;
        let lines = if wait {
            self.trainer.step(gpu)?
        } else if self.snapshot_due {
            self.trainer.collect_finished(gpu)?
        } else {
            self.trainer.advance(gpu)?
        };
        self.take_lines(&lines)?;
        events.push(Event::Metrics(lines));
        events.extend(self.notes());
        let step = self.trainer.step;
        if wait && self.output.is_some() && step != before && self.checkpoint_clock.due(step, self.trainer.spec.train.steps) {
            events.extend(self.save(gpu)?);
            self.checkpoint_clock.written();
        }
        events.push(self.status());
        if !wait {
            self.keep_snapshot_when_due(gpu)?;
        }
        let step = self.trainer.step;
        // every sample_every steps, after the first, and after the last: a short run still ends
        // with text from its trained weights
        let last = step == self.trainer.spec.train.steps;
        if step != before && self.sample_every > 0 && (step.is_multiple_of(self.sample_every) || step == 1 || last) {
            self.begin_samples(gpu)?;
        }
        events.extend(self.advance_samples(gpu)?);
        if wait && self.trainer.finished() {
            events.extend(self.finish(gpu)?);
        }
        Ok(events)
    }

    /// Keeps metric lines: in the folder's metrics.jsonl, else in the log.
    fn take_lines(&mut self, lines: &[Metric]) -> Result<()> {
        match &mut self.output {
            Some(out) => out.write_metrics(lines),
            None => {
                self.log.extend_from_slice(lines);
                Ok(())
            }
        }
    }

    /// The runs' new messages (a divergence), each once.
    fn notes(&mut self) -> Vec<Event> {
        let mut events = Vec::new();
        for msg in self.trainer.runs.iter().filter_map(|r| r.message.clone()) {
            if !self.noted.contains(&msg) {
                self.noted.push(msg.clone());
                events.push(Event::Note(msg));
            }
        }
        events
    }

    /// Ends the session at the next `tick` (on a frame loop, once the GPU work in flight has
    /// come back).
    pub fn request_stop(&mut self) {
        self.stopping = true;
    }

    pub fn status(&self) -> Event {
        Event::Status(self.trainer.runs.iter().map(|r| (r.precision.name().to_string(), r.status.name().to_string())).collect())
    }

    /// Starts text generation from each live run's current weights (unless the last is
    /// still being written).
    fn begin_samples(&mut self, gpu: &Gpu) -> Result<()> {
        if !self.sampling.is_empty() {
            return Ok(());
        }
        let opts = SampleOptions { tokens: 120, temperature: 0.8, top_k: 0, seed: 7 };
        let prompt = self.trainer.corpus.encode("\n").unwrap_or_default();
        for (i, run) in self.trainer.runs.iter().enumerate() {
            if matches!(run.status, RunStatus::Diverged(_)) {
                continue;
            }
            if self.samplers[i].is_none() {
                self.samplers[i] = Some(Sampler::empty(gpu, self.trainer.spec.model, run.precision)?);
            }
            let sampler = self.samplers[i].as_ref().expect("made above");
            sampler.copy_weights_from(gpu, &run.model);
            self.sampling.push(PendingSample { run: i, step: self.trainer.step, generation: Generation::new(&prompt, &opts) });
        }
        Ok(())
    }

    /// Moves the generations on (to the end when the session may wait); finished ones
    /// become sample events.
    fn advance_samples(&mut self, gpu: &Gpu) -> Result<Vec<Event>> {
        let wait = self.driving != Driving::FrameLoop;
        let mut events = Vec::new();
        let mut still = Vec::new();
        for mut pending in std::mem::take(&mut self.sampling) {
            let sampler = self.samplers[pending.run].as_ref().expect("a sampler per sampled run");
            let mut finished = pending.generation.advance(gpu, sampler, wait)?;
            while wait && finished.is_none() {
                finished = pending.generation.advance(gpu, sampler, wait)?;
            }
            match finished {
                Some(ids) => {
                    let text = String::from_utf8_lossy(&self.trainer.corpus.decode(&ids)).into_owned();
                    let run = self.trainer.runs[pending.run].precision.name().into();
                    events.push(Event::Sample { run, step: pending.step, text });
                }
                None => still.push(pending),
            }
        }
        self.sampling = still;
        Ok(events)
    }

    /// Writes checkpoints now (the run goes on), with the metric lines of the steps in flight.
    pub fn save(&mut self, gpu: &Gpu) -> Result<Vec<Event>> {
        let Some(out) = &mut self.output else {
            return Ok(vec![Event::Error("this session writes no files".into())]);
        };
        let lines = self.trainer.flush(gpu)?;
        out.write_metrics(&lines)?;
        let paths = out.checkpoint(&mut self.trainer, gpu)?;
        let saved = Event::Saved { step: self.trainer.step, paths: paths.iter().map(|p| p.display().to_string()).collect() };
        Ok(vec![Event::Metrics(lines), saved])
    }

    /// Final checkpoints and summary; the session ends.
    pub fn finish(&mut self, gpu: &Gpu) -> Result<Vec<Event>> {
        if self.done {
            return Ok(Vec::new());
        }
        self.done = true;
        let mut events = std::mem::take(&mut self.queued);
        let lines = self.trainer.flush(gpu)?;
        self.take_lines(&lines)?;
        events.push(Event::Metrics(lines));
        events.extend(self.notes());
        // the summary written below records how each run ended
        self.trainer.mark_stopped();
        if let Some(keep) = self.keep.clone().filter(|_| self.kept_step != self.trainer.step) {
            self.kept_step = self.snapshot(gpu, keep)?;
        }
        if let Some(out) = &mut self.output {
            let (paths, summary) = out.finish(&mut self.trainer, gpu)?;
            self.summary = Some(summary);
            events.push(Event::Saved { step: self.trainer.step, paths: paths.iter().map(|p| p.display().to_string()).collect() });
        }
        events.push(self.status());
        events.push(Event::Done);
        Ok(events)
    }
}
