//! A training session driven from the dashboard: the trainer, its output folder and the
//! periodic samples, advanced by `tick`. A native build runs it on a worker thread, where
//! `tick` may wait for the GPU; the browser calls `tick` once per frame, where it never waits
//! and picks up results on later frames.

use std::path::PathBuf;

use anyhow::Result;

use crate::data::Corpus;
use crate::gpu::Gpu;
use crate::sample::{Generation, SampleOptions, Sampler};
use crate::train::output::{CheckpointClock, CheckpointPolicy, RunOutput};
use crate::train::{Metric, RunStatus, TrainSpec, Trainer};

/// What the dashboard learns from a session.
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
    Saved(Vec<String>),
    Error(String),
    Done,
}

/// Pieces small enough (a few ms each on a CPU adapter) to keep 30+ frames per second.
const DISPATCHES_PER_SUBMISSION: usize = 1;

/// How the session shares the GPU with the dashboard's frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Driving {
    /// on its own thread: `tick` waits for the GPU, steps go in small submissions between
    /// which the renderer's frames slip in
    WorkerThread,
    /// between frames on the renderer's thread (a browser): `tick` never waits
    FrameLoop,
}

/// Where and how often a session writes, and how often it samples.
#[derive(Clone, Debug)]
pub struct SessionOptions {
    /// the run's folder (`None`: write nothing, as in a browser); refused if it holds a run
    pub out_dir: Option<PathBuf>,
    /// text from each run every N steps (0: never)
    pub sample_every: u32,
    pub checkpoints: CheckpointPolicy,
}

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
    sample_every: u32,
    driving: Driving,
    /// one batch-1 model per run, made at the first sample
    samplers: Vec<Option<Sampler>>,
    sampling: Vec<PendingSample>,
    stopping: bool,
    done: bool,
}

impl Session {
    /// Builds the models (compiling their pipelines) and opens the output folder
    /// (`None`: write nothing, as in a browser).
    pub fn start(gpu: &Gpu, corpus: Corpus, spec: TrainSpec, options: SessionOptions, driving: Driving) -> Result<(Session, Event)> {
        let SessionOptions { out_dir, sample_every, checkpoints } = options;
        let output = out_dir.as_deref().map(RunOutput::create).transpose()?;
        let mut trainer = Trainer::new(gpu, corpus, spec)?;
        if driving == Driving::WorkerThread {
            trainer.share_queue_with_renderer(DISPATCHES_PER_SUBMISSION);
        }
        let runs = trainer
            .runs
            .iter()
            .map(|r| (r.precision.name().to_string(), r.model.memory.training_state() as f64 / 1048576.0, r.model.state_bytes_per_param()))
            .collect();
        let started = Event::Started { runs, out_dir: out_dir.map(|d| d.display().to_string()).unwrap_or_default() };
        let samplers = trainer.runs.iter().map(|_| None).collect();
        let checkpoint_clock = CheckpointClock::new(checkpoints);
        let session = Session { trainer, output, checkpoint_clock, sample_every, driving, samplers, sampling: Vec::new(), stopping: false, done: false };
        Ok((session, started))
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
        let mut events = Vec::new();
        let wait = self.driving == Driving::WorkerThread;
        if self.stopping || self.trainer.finished() {
            if wait || (self.trainer.idle() && self.sampling.is_empty()) {
                events.extend(self.finish(gpu)?);
            } else {
                events.extend(self.advance_samples(gpu)?);
                events.push(Event::Metrics(self.trainer.collect_finished(gpu)?));
            }
            return Ok(events);
        }
        let before = self.trainer.step;
        let lines = if wait { self.trainer.step(gpu)? } else { self.trainer.advance(gpu)? };
        if let Some(out) = &mut self.output {
            out.write_metrics(&lines)?;
            let step = self.trainer.step;
            if wait && step != before && self.checkpoint_clock.due(step, self.trainer.spec.train.steps) {
                let paths = out.checkpoint(&mut self.trainer, gpu)?;
                self.checkpoint_clock.written();
                events.push(Event::Saved(paths.iter().map(|p| p.display().to_string()).collect()));
            }
        }
        events.push(Event::Metrics(lines));
        events.push(self.status());
        let step = self.trainer.step;
        if step != before && self.sample_every > 0 && (step.is_multiple_of(self.sample_every) || step == 1) {
            self.begin_samples(gpu)?;
        }
        events.extend(self.advance_samples(gpu)?);
        if wait && self.trainer.finished() {
            events.extend(self.finish(gpu)?);
        }
        Ok(events)
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
        let wait = self.driving == Driving::WorkerThread;
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

    /// Writes checkpoints now (the run goes on).
    pub fn save(&mut self, gpu: &Gpu) -> Result<Event> {
        match &mut self.output {
            Some(out) => {
                let paths = out.checkpoint(&mut self.trainer, gpu)?;
                Ok(Event::Saved(paths.iter().map(|p| p.display().to_string()).collect()))
            }
            None => Ok(Event::Error("this session writes no files".into())),
        }
    }

    /// Final checkpoints and summary; the session ends.
    pub fn finish(&mut self, gpu: &Gpu) -> Result<Vec<Event>> {
        if self.done {
            return Ok(Vec::new());
        }
        self.done = true;
        let mut events = Vec::new();
        let lines = self.trainer.flush(gpu)?;
        // the summary written below records how each run ended
        self.trainer.mark_stopped();
        match &mut self.output {
            Some(out) => {
                out.write_metrics(&lines)?;
                events.push(Event::Metrics(lines));
                let (paths, _) = out.finish(&mut self.trainer, gpu)?;
                events.push(Event::Saved(paths.iter().map(|p| p.display().to_string()).collect()));
            }
            None => events.push(Event::Metrics(lines)),
        }
        events.push(self.status());
        events.push(Event::Done);
        Ok(events)
    }
}
